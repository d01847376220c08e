"""The differentiable augmentation: image and mask stay aligned, gradients flow, it is a pure
function of its seed, and the identity / flip cases give exact results."""

import numpy as np
import tensorflow as tf

from models.osmis import augment as aug

COLOURS = np.random.RandomState(0).uniform(-1, 1, (4, 3)).astype("float32")  # [K, 3]


def _painted(n=3, h=12, w=20):
    """Masks [N, H, W, K] one-hot and images painted from them (image = mask @ colours)."""
    rng = np.random.RandomState(1)
    classes = rng.randint(0, 4, (n, h // 4, w // 4)).repeat(4, axis=1).repeat(4, axis=2)
    masks = np.eye(4, dtype="float32")[classes]
    return masks @ COLOURS, masks


def test_image_and_mask_stay_aligned_at_every_scale():
    images, masks = _painted()
    half = images[:, ::2, ::2]  # the same scene at half the resolution
    half_masks = masks[:, ::2, ::2]
    seed = tf.constant([3, 4])
    (out, out_half), (out_mask, out_half_mask) = aug.augment(
        [images, half], [masks, half_masks], seed=seed, prob=1.0, colour=False
    )
    # Sampling is linear: the augmented image is the augmented mask painted, to float precision.
    np.testing.assert_allclose(out.numpy(), out_mask.numpy() @ COLOURS, atol=1e-5)
    np.testing.assert_allclose(out_half.numpy(), out_half_mask.numpy() @ COLOURS, atol=1e-5)
    assert not np.allclose(out.numpy(), images, atol=1e-3)  # it did transform
    # Soft masks stay distributions.
    np.testing.assert_allclose(out_mask.numpy().sum(-1), 1.0, atol=1e-5)
    # With colour on, the masks get the same geometry (colour touches images only).
    _, coloured_mask = aug.augment(images, masks, seed=seed, prob=1.0)
    np.testing.assert_allclose(coloured_mask.numpy(), out_mask.numpy(), atol=1e-6)


def test_pure_function_of_seed_eager_and_graph():
    images, masks = _painted()
    seed = tf.constant([5, 6])
    a = aug.augment(images, masks, seed=seed, prob=0.7)
    b = tf.function(lambda x, m: aug.augment(x, m, seed=seed, prob=0.7))(images, masks)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.numpy(), y.numpy(), atol=1e-5)
    c = aug.augment(images, masks, seed=tf.constant([5, 7]), prob=0.7)
    assert not np.allclose(a[0].numpy(), c[0].numpy())
    # prob 0 returns the inputs.
    same, same_mask = aug.augment(images, masks, seed=seed, prob=0.0)
    assert same is images and same_mask is masks


def test_identity_and_flip_are_exact():
    images, _ = _painted(n=2)
    identity = tf.constant([[[1.0, 0, 0], [0, 1.0, 0]]] * 2)
    np.testing.assert_allclose(aug.warp(images, identity).numpy(), images, atol=1e-6)
    flip = tf.constant([[[-1.0, 0, 0], [0, 1.0, 0]]] * 2)
    np.testing.assert_allclose(aug.warp(images, flip).numpy(), images[:, :, ::-1], atol=1e-5)
    # Shift by a quarter of the width: pixel x comes from x + W/4, reflected at the border.
    quarter = tf.constant([[[1.0, 0, 0.25], [0, 1.0, 0]]] * 2)
    out = aug.warp(images, quarter).numpy()
    np.testing.assert_allclose(out[:, :, :15], images[:, :, 5:], atol=1e-5)


def test_gradients_flow_to_images_and_masks():
    images, masks = _painted(n=2)
    images, masks = tf.Variable(images), tf.Variable(masks)
    weights = tf.constant(np.random.RandomState(2).randn(2, 12, 20, 3).astype("float32"))
    with tf.GradientTape() as tape:
        out, out_mask = aug.augment(images, masks, seed=tf.constant([1, 2]), prob=1.0)
        loss = tf.reduce_sum(out * weights) + tf.reduce_sum(out_mask[..., 0])
    grad_images, grad_masks = tape.gradient(loss, [images, masks])
    for grad in (grad_images, grad_masks):
        assert grad is not None and np.all(np.isfinite(grad.numpy()))
        assert np.abs(grad.numpy()).sum() > 0
    # Every sample gets its own gradient (no sample is cut from the graph).
    assert np.all(np.abs(grad_images.numpy()).sum(axis=(1, 2, 3)) > 0)


def test_probability_controls_how_often():
    params = aug.sample_parameters(tf.constant([0, 1]), 2000, 0.3)
    moved = np.abs(params["matrix"].numpy() - np.array([[1, 0, 0], [0, 1, 0]])).max(axis=(1, 2))
    brightness = params["brightness"].numpy()
    # P(no geometric transform) = 0.7 ** 4 (a flip draw may also keep the image as it is).
    assert 0.2 < np.mean(moved < 1e-7) < 0.35
    assert 0.25 < np.mean(brightness != 0) < 0.35


def _colour_statistics(x):
    """[N, C] per-sample, per-channel mean and standard deviation of [N, H, W, C] images."""
    x = np.asarray(x, np.float64)
    return np.concatenate([x.mean(axis=(1, 2)), x.std(axis=(1, 2))], axis=-1)


def test_trainer_colour_switch(monkeypatch):
    """aug_colour reaches the trainer's augmentation: with the geometric ranges at zero (only
    x-flips left, which keep every channel's statistics), off leaves the images' colour
    statistics as they were and on changes them; the masks get the same geometry either way."""
    from models.osmis.config import PRESETS
    from models.osmis.inputs import choose_layout
    from models.osmis.trainer import OSMISGAN

    for name in ("ZOOM_STD", "MAX_ROTATION_DEG", "MAX_TRANSLATION"):
        monkeypatch.setattr(aug, name, 0.0)
    images, masks = _painted(n=4, h=16, w=24)
    layout = choose_layout(16, 24, max_size=24)
    outputs = {}
    for colour in (False, True):
        config = PRESETS["tiny"].replace(max_size=24, z_dim=8, aug_prob=1.0, aug_colour=colour)
        gan = OSMISGAN.from_run_config(config, layout=layout, num_classes=4)
        assert gan.aug_colour is colour
        outputs[colour] = gan._augment([tf.constant(images)], tf.constant(masks), phase=100)
    (off_images,), off_mask = outputs[False]
    (on_images,), on_mask = outputs[True]
    np.testing.assert_allclose(
        _colour_statistics(off_images), _colour_statistics(images), atol=1e-5
    )
    change = np.abs(_colour_statistics(on_images) - _colour_statistics(images)).max(axis=-1)
    assert np.all(change > 1e-2), change  # every sample's colour changed (prob 1)
    np.testing.assert_allclose(on_mask.numpy(), off_mask.numpy(), atol=1e-6)
    assert not np.allclose(off_images.numpy(), images)  # the flips did happen
