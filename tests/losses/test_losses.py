"""Tests for losses/: known values on hand-made inputs, VGG loss on random (weights=None) VGG."""

import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from losses import (
    VGGPerceptualLoss,
    feature_matching_loss,
    hinge_d_loss,
    hinge_g_loss,
    kl_divergence,
    split_real_fake,
)
from losses.perceptual import VGG19_NOTOP_FILENAME


def logits(values, shape):
    return tf.reshape(tf.constant(values, tf.float32), shape)


def two_scale_outputs(scale0_logits, scale1_logits):
    # Intermediate features are huge so that using them instead of the logits would show.
    big = tf.fill((1, 4, 4, 2), 1000.0)
    return [
        [big, -big, logits(scale0_logits, (1, 2, 2, 1))],
        [big, logits(scale1_logits, (1, 1, 2, 1))],
    ]


REAL = two_scale_outputs([0.5, 2.0, -1.0, 1.0], [3.0, -3.0])
FAKE = two_scale_outputs([-2.0, 0.0, 0.5, -1.5], [2.0, -1.0])


def test_hinge_d_loss_known_value():
    # scale 0: relu(1 - real) = [0.5, 0, 2, 0] -> 0.625; relu(1 + fake) = [0, 1, 1.5, 0] -> 0.625
    # scale 1: relu(1 - real) = [0, 4] -> 2;          relu(1 + fake) = [3, 0] -> 1.5
    expected = ((0.625 + 0.625) + (2.0 + 1.5)) / 2
    loss = hinge_d_loss(REAL, FAKE)
    assert loss.dtype == tf.float32
    assert float(loss) == pytest.approx(expected)


def test_hinge_g_loss_known_value():
    # scale 0: -mean([-2, 0, 0.5, -1.5]) = 0.75; scale 1: -mean([2, -1]) = -0.5
    assert float(hinge_g_loss(FAKE)) == pytest.approx((0.75 - 0.5) / 2)


def test_hinge_accepts_bare_logits_per_scale_and_bfloat16():
    fake = [tf.cast(logits([-2.0, 0.0, 0.5, -1.5], (1, 2, 2, 1)), tf.bfloat16)]
    loss = hinge_g_loss(fake)
    assert loss.dtype == tf.float32
    assert float(loss) == pytest.approx(0.75)


def test_hinge_d_loss_rejects_mismatched_scales():
    with pytest.raises(ValueError, match="fake_outputs"):
        hinge_d_loss(REAL, FAKE[:1])
    with pytest.raises(ValueError, match="real_outputs"):
        hinge_d_loss([], FAKE)


def test_feature_matching_known_value_excludes_logits_and_divides_by_num_d():
    real = [
        [tf.zeros((1, 2, 2, 1)), tf.constant([[[[1.0, 1.0]]]]), tf.fill((1, 2, 2, 1), -100.0)],
        [tf.zeros((1, 2, 2, 3)), tf.fill((1, 1, 1, 1), -100.0)],
    ]
    fake = [
        [tf.ones((1, 2, 2, 1)), tf.constant([[[[3.0, -1.0]]]]), tf.fill((1, 2, 2, 1), 100.0)],
        [tf.fill((1, 2, 2, 3), 0.5), tf.fill((1, 1, 1, 1), 100.0)],
    ]
    # scale 0: L1 = 1 and 2; scale 1: L1 = 0.5; logits ignored; each term / num_D = 2.
    loss = feature_matching_loss(real, fake)
    assert loss.dtype == tf.float32
    assert float(loss) == pytest.approx((1.0 + 2.0 + 0.5) / 2)


def test_feature_matching_gradient_reaches_fake_only():
    real_feature = tf.Variable(tf.zeros((1, 2, 2, 1)))
    fake_feature = tf.Variable(tf.ones((1, 2, 2, 1)))
    with tf.GradientTape(persistent=True) as tape:
        loss = feature_matching_loss(
            [[real_feature, tf.zeros((1, 1, 1, 1))]], [[fake_feature, tf.zeros((1, 1, 1, 1))]]
        )
    assert tape.gradient(loss, real_feature) is None
    # d/dx mean|x - 0| = sign / 4 elements
    np.testing.assert_allclose(tape.gradient(loss, fake_feature).numpy(), 0.25)


def test_kl_divergence_zero_for_standard_normal():
    zeros = tf.zeros((3, 8))
    for reduction in ("sum", "mean"):
        assert float(kl_divergence(zeros, zeros, reduction=reduction)) == pytest.approx(0.0)


def test_kl_divergence_hand_computed_both_reductions():
    mu = tf.constant([[1.0, 0.0], [0.0, 2.0]])
    logvar = tf.constant([[0.0, math.log(2.0)], [0.0, 0.0]])
    # elementwise -0.5 * (1 + logvar - mu^2 - exp(logvar)):
    # (1, 0) -> 0.5; (0, ln2) -> 0.5 - 0.5 ln2; (0, 0) -> 0; (2, 0) -> 2
    total = 0.5 + (0.5 - 0.5 * math.log(2.0)) + 0.0 + 2.0
    assert float(kl_divergence(mu, logvar)) == pytest.approx(total, rel=1e-6)
    assert float(kl_divergence(mu, logvar, reduction="sum")) == pytest.approx(total, rel=1e-6)
    assert float(kl_divergence(mu, logvar, reduction="mean")) == pytest.approx(total / 2, rel=1e-6)


def test_kl_divergence_rejects_unknown_reduction():
    with pytest.raises(ValueError, match="reduction"):
        kl_divergence(tf.zeros((1, 2)), tf.zeros((1, 2)), reduction="batchmean")


def test_split_real_fake_order_and_structure():
    def rows(offset, shape):
        # Row i of the batch is filled with offset + i so halves are recognisable.
        values = offset + tf.range(4, dtype=tf.float32)
        return tf.broadcast_to(tf.reshape(values, (4, 1, 1, 1)), (4,) + shape)

    outputs = [[rows(0, (2, 2, 3)), rows(10, (1, 1, 1))], [rows(20, (1, 1, 1))]]
    for batch_size in (2, tf.constant(2)):
        fake, real = split_real_fake(outputs, batch_size)
        assert [len(scale) for scale in fake] == [2, 1]
        assert [len(scale) for scale in real] == [2, 1]
        assert fake[0][0].shape == (2, 2, 2, 3)
        np.testing.assert_array_equal(fake[0][1].numpy().ravel(), [10, 11])
        np.testing.assert_array_equal(real[0][1].numpy().ravel(), [12, 13])
        np.testing.assert_array_equal(fake[1][0].numpy().ravel(), [20, 21])
        np.testing.assert_array_equal(real[1][0].numpy().ravel(), [22, 23])


def test_split_real_fake_rejects_wrong_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        split_real_fake([[tf.zeros((4, 1, 1, 1))]], 3)


# --- VGG perceptual loss ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vgg_weights_file(tmp_path_factory):
    keras.utils.set_random_seed(0)
    vgg = keras.applications.VGG19(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path_factory.mktemp("vgg") / "vgg19.weights.h5"
    vgg.save_weights(str(path))
    kernels = {
        name: vgg.get_layer(name).kernel.numpy() for name in ("block1_conv1", "block5_conv1")
    }
    return path, kernels


@pytest.fixture(scope="module")
def vgg_loss(vgg_weights_file):
    return VGGPerceptualLoss(weights=str(vgg_weights_file[0]))


def random_images(seed, n=2):
    return tf.random.stateless_uniform((n, 32, 32, 3), (seed, 0), minval=-1.0, maxval=1.0)


def test_vgg_loads_saved_kernels_and_is_frozen(vgg_loss, vgg_weights_file):
    _, kernels = vgg_weights_file
    for name, kernel in kernels.items():
        loaded = vgg_loss.feature_extractor.get_layer(name).kernel.numpy()
        np.testing.assert_array_equal(loaded, kernel)
    extractor = vgg_loss.feature_extractor
    assert len(extractor.outputs) == 5
    assert extractor.layers[-1].name == "block5_conv1"  # truncated: no block5_conv2 and later
    assert extractor.trainable_weights == []


def test_vgg_not_tracked_by_caller_model(vgg_loss):
    class Trainer(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)
            self.vgg_loss = vgg_loss

        def call(self, x):
            return self.dense(x)

    trainer = Trainer()
    trainer(tf.zeros((1, 3)))
    assert len(trainer.trainable_weights) == 2
    assert len(trainer.weights) == 2


def test_vgg_preprocess_matches_keras_preprocess_input():
    images = random_images(1)
    expected = keras.applications.vgg19.preprocess_input((images.numpy() + 1.0) * 127.5)
    np.testing.assert_allclose(VGGPerceptualLoss.preprocess(images).numpy(), expected, atol=1e-4)


def test_vgg_loss_zero_for_identical_and_matches_manual_value(vgg_loss):
    x, y = random_images(1), random_images(2)
    assert float(vgg_loss(x, x)) == pytest.approx(0.0, abs=1e-6)

    loss = vgg_loss(x, y)
    assert loss.dtype == tf.float32
    assert np.isfinite(float(loss)) and float(loss) > 0.0

    # Same value from separate passes with Keras' own preprocessing and the documented weights.
    def features(images):
        vgg_input = keras.applications.vgg19.preprocess_input((images.numpy() + 1.0) * 127.5)
        return vgg_loss.feature_extractor(vgg_input)

    weights = [1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0]
    expected = sum(
        w * np.mean(np.abs(f.numpy() - r.numpy()))
        for w, f, r in zip(weights, features(x), features(y))
    )
    assert float(loss) == pytest.approx(expected, rel=1e-4)


def test_vgg_loss_in_tf_function_with_unknown_batch(vgg_loss):
    x, y = random_images(7, n=3), random_images(8, n=3)
    spec = tf.TensorSpec((None, 32, 32, 3), tf.float32)
    compiled = tf.function(vgg_loss.__call__, input_signature=[spec, spec])
    assert float(compiled(x, y)) == pytest.approx(float(vgg_loss(x, y)), rel=1e-5)


def test_vgg_loads_legacy_keras_h5_layout(tmp_path, vgg_weights_file, vgg_loss):
    # The ImageNet notop file uses the legacy (Keras 2) HDF5 layout; write one from our weights.
    h5py = pytest.importorskip("h5py")
    legacy_h5_format = pytest.importorskip("keras.src.legacy.saving.legacy_h5_format")
    vgg = keras.applications.VGG19(include_top=False, weights=str(vgg_weights_file[0]))
    path = tmp_path / VGG19_NOTOP_FILENAME
    with h5py.File(path, "w") as h5_file:
        legacy_h5_format.save_weights_to_hdf5_group(h5_file, vgg)
    legacy_loss = VGGPerceptualLoss(weights=str(path))
    x, y = random_images(9), random_images(10)
    assert float(legacy_loss(x, y)) == pytest.approx(float(vgg_loss(x, y)), rel=1e-6)


def test_vgg_loss_gradient_flows_to_fake_only(vgg_loss):
    fake = tf.Variable(random_images(3))
    real = tf.Variable(random_images(4))
    with tf.GradientTape(persistent=True) as tape:
        loss = vgg_loss(fake, real)
    fake_grad = tape.gradient(loss, fake)
    assert fake_grad is not None and float(tf.reduce_max(tf.abs(fake_grad))) > 0.0
    assert tape.gradient(loss, real) is None


def test_vgg_loss_rejects_mismatched_images(vgg_loss):
    with pytest.raises(ValueError, match="real"):
        vgg_loss(random_images(1), tf.zeros((2, 64, 64, 3)))
    with pytest.raises(ValueError, match="fake"):
        vgg_loss(tf.zeros((2, 32, 32, 1)), random_images(1))


def test_vgg_loss_float32_under_mixed_bfloat16(vgg_weights_file, vgg_loss):
    x, y = random_images(5), random_images(6)
    reference = float(vgg_loss(x, y))
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed_loss = VGGPerceptualLoss(weights=str(vgg_weights_file[0]), input_shape=(32, 32, 3))
        conv = mixed_loss.feature_extractor.get_layer("block1_conv1")
        assert conv.compute_dtype == "bfloat16"
        loss = mixed_loss(tf.cast(x, tf.bfloat16), y)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert loss.dtype == tf.float32
    assert float(loss) == pytest.approx(reference, rel=0.1)


def test_vgg_missing_file_names_path(tmp_path):
    missing = tmp_path / "no_such_vgg19.h5"
    with pytest.raises(FileNotFoundError, match="no_such_vgg19.h5") as info:
        VGGPerceptualLoss(weights=str(missing))
    assert "--vgg_weights=none" in str(info.value)


def test_vgg_unfit_file_names_file(tmp_path):
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    wrong = tmp_path / "dense.weights.h5"
    other.save_weights(str(wrong))
    with pytest.raises(ValueError, match="dense.weights.h5"):
        VGGPerceptualLoss(weights=str(wrong))
    garbage = tmp_path / "garbage.h5"
    garbage.write_text("not an hdf5 file")
    with pytest.raises(ValueError, match="garbage.h5"):
        VGGPerceptualLoss(weights=str(garbage))


def test_vgg_none_weights_rejected():
    with pytest.raises(ValueError, match="weights"):
        VGGPerceptualLoss(weights="none")


def test_vgg_imagenet_download_failure_gives_guidance(monkeypatch):
    cache_dir = os.path.expanduser(os.path.join("~", ".keras", "models"))
    before = sorted(os.listdir(cache_dir)) if os.path.isdir(cache_dir) else None

    def failing_get_file(*args, **kwargs):
        raise Exception("URL fetch failure: no network in tests")

    monkeypatch.setattr(keras.utils, "get_file", failing_get_file)
    with pytest.raises(RuntimeError) as info:
        VGGPerceptualLoss(weights="imagenet")
    message = str(info.value)
    assert "Could not download ImageNet VGG19 weights" in message
    assert f"--vgg_weights=/path/to/{VGG19_NOTOP_FILENAME}" in message
    assert "--vgg_weights=none" in message
    after = sorted(os.listdir(cache_dir)) if os.path.isdir(cache_dir) else None
    assert after == before
