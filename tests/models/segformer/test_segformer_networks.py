"""SegFormer (models/segformer/networks.py): layers, dynamic shapes, parameter counts, mixed
precision, stochastic depth, serialisation, and equivalence with keras-hub's SegFormer after
loading its weights. Every layer runs through the shared `run_layer_test`
(tests/layer_testing.py)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from layer_testing import run_layer_test

from models.segformer import networks as sf
from models.segformer.networks import (
    ARCHITECTURES,
    EfficientMultiHeadAttention,
    MiTBlock,
    MiTEncoder,
    MixFFN,
    OverlappingPatchEmbedding,
    SegFormer,
    SegFormerHead,
    load_keras_hub_weights,
    preprocess,
    upsample_logits,
)

to_numpy = keras.ops.convert_to_numpy


def trainable_count(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


def random_images(shape, seed=0):
    return np.random.RandomState(seed).randn(*shape).astype("float32")


# Under batch statistics the head's Dense biases only shift the BatchNorm input: their gradient
# is zero (see test_segformer_head_folded_fuse_equals_concatenation).
HEAD_BIASES = tuple(f"linear_c{i}/bias" for i in range(1, 5))


# --- Layers --------------------------------------------------------------------------------


def test_overlapping_patch_embedding_layer_and_params():
    first = run_layer_test(
        OverlappingPatchEmbedding,
        {"filters": 8, "patch_size": 7, "stride": 4},
        random_images((2, 32, 48, 3)),
        expected_output_shape=(2, 8, 12, 8),
    )
    # conv 7x7x3x8 + bias 8 + LayerNorm gamma/beta 2x8.
    assert trainable_count(first) == 7 * 7 * 3 * 8 + 8 + 16
    assert first.norm.epsilon == pytest.approx(1e-5)

    later = run_layer_test(
        OverlappingPatchEmbedding,
        {"filters": 16, "patch_size": 3, "stride": 2},
        random_images((2, 8, 12, 8)),
        expected_output_shape=(2, 4, 6, 16),
    )
    # Odd sizes round up, like PyTorch's conv with padding k // 2.
    assert later(random_images((1, 9, 7, 8))).shape == (1, 5, 4, 16)


@pytest.mark.parametrize("sr_ratio", [1, 4])
def test_efficient_attention_layer_and_values(sr_ratio):
    x = random_images((2, 8, 12, 8))
    attention = run_layer_test(
        EfficientMultiHeadAttention,
        {"dim": 8, "num_heads": 2, "sr_ratio": sr_ratio},
        x,
        expected_output_shape=(2, 8, 12, 8),
    )
    out = attention(x)
    assert (attention.sr is not None) == (sr_ratio > 1)

    # Reference computation in numpy from the layer's own weights.
    keys_from = x
    if sr_ratio > 1:
        keys_from = to_numpy(attention.sr_norm(attention.sr(x)))  # [N, 2, 3, C]
    n, h, w, c = x.shape
    heads, d = 2, 4

    def dense(layer, t):
        return t @ layer.kernel.numpy() + layer.bias.numpy()

    q = dense(attention.q, x.reshape(n, h * w, c)).reshape(n, h * w, heads, d)
    kv = dense(attention.kv, keys_from.reshape(n, -1, c))  # [N, M, 2C], keys first
    k = kv[..., :c].reshape(n, -1, heads, d)
    v = kv[..., c:].reshape(n, -1, heads, d)
    logits = np.einsum("nqhd,nkhd->nhqk", q, k) / np.sqrt(d)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    mixed = np.einsum("nhqk,nkhd->nqhd", weights, v).reshape(n, h * w, c)
    expected = dense(attention.proj, mixed).reshape(n, h, w, c)
    np.testing.assert_allclose(to_numpy(out), expected, atol=1e-5)


def test_efficient_attention_rejects_indivisible_heads():
    with pytest.raises(ValueError, match="num_heads"):
        EfficientMultiHeadAttention(10, 3)


@pytest.mark.parametrize("approximate_gelu", [True, False])
def test_mix_ffn_layer_and_params(approximate_gelu):
    ffn = run_layer_test(
        MixFFN,
        {"dim": 8, "hidden_dim": 32, "approximate_gelu": approximate_gelu},
        random_images((2, 4, 6, 8)),
        expected_output_shape=(2, 4, 6, 8),
    )
    # fc1 8x32+32, depthwise 3x3x32+32, fc2 32x8+8.
    assert trainable_count(ffn) == (8 * 32 + 32) + (9 * 32 + 32) + (32 * 8 + 8)


def test_mix_ffn_gelu_forms_differ_only_slightly():
    x = random_images((1, 4, 4, 8))
    approximate = MixFFN(8, 32, approximate_gelu=True)
    exact = MixFFN(8, 32, approximate_gelu=False)
    approximate(x)
    exact(x)
    exact.set_weights(approximate.get_weights())
    difference = np.abs(to_numpy(approximate(x)) - to_numpy(exact(x))).max()
    assert 0 < difference < 1e-2


def test_mit_block_layer_and_norm_epsilon():
    block = run_layer_test(
        MiTBlock,
        {"dim": 8, "num_heads": 2, "sr_ratio": 2, "drop_path": 0.1, "seed": 1},
        random_images((2, 8, 12, 8)),
        expected_output_shape=(2, 8, 12, 8),
    )
    # The original SegFormer: every LayerNorm eps 1e-5 (keras-hub: 1e-6 for the pre-norms).
    assert block.norm1.epsilon == pytest.approx(1e-5)
    assert block.norm2.epsilon == pytest.approx(1e-5)
    assert block.attn.sr_norm.epsilon == pytest.approx(1e-5)
    hub = MiTBlock(8, 2, block_norm_epsilon=1e-6)
    assert (hub.norm1.epsilon, hub.norm2.epsilon) == (1e-6, 1e-6)


def test_mit_block_stochastic_depth_only_in_training():
    keras.utils.set_random_seed(3)
    block = MiTBlock(8, 2, sr_ratio=1, drop_path=0.5)
    x = random_images((64, 4, 4, 8))
    inference = to_numpy(block(x, training=False))
    np.testing.assert_array_equal(inference, to_numpy(block(x, training=False)))
    np.testing.assert_array_equal(inference, to_numpy(block(x)))
    trained = to_numpy(block(x, training=True))
    # Some samples had a branch dropped (or kept ones rescaled): not the inference output.
    per_sample_equal = np.all(np.isclose(trained, inference, atol=1e-6), axis=(1, 2, 3))
    assert not per_sample_equal.all()
    with pytest.raises(ValueError, match="drop_path"):
        MiTBlock(8, 2, drop_path=1.0)


def test_mit_encoder_layer_and_explicit_lists():
    # 64 px: stage 1 (16 x 16, reduction 8) still attends over 2 x 2 keys, so the queries get a
    # gradient (over a single key the softmax is constant).
    encoder = run_layer_test(
        MiTEncoder,
        {"variant": "tiny", "drop_path_rate": 0.1},
        random_images((2, 64, 96, 3)),
        expected_output_shape=[(2, 16, 24, 8), (2, 8, 12, 16), (2, 4, 6, 32), (2, 2, 3, 64)],
    )
    assert [n.epsilon for n in encoder.stage_norms] == pytest.approx([1e-5] * 4)
    # Stochastic-depth rates grow linearly from 0 to drop_path_rate over all blocks.
    assert [b.drop_path for b in encoder.blocks] == pytest.approx([0.0, 1 / 30, 2 / 30, 0.1])

    tiny = sf.MIT_VARIANTS["tiny"]
    explicit = MiTEncoder(
        dims=tiny["dims"],
        depths=tiny["depths"],
        num_heads=tiny["num_heads"],
        sr_ratios=tiny["sr_ratios"],
    )
    explicit(random_images((1, 32, 32, 3)))
    assert trainable_count(explicit) == trainable_count(encoder)


def test_mit_encoder_bad_arguments():
    with pytest.raises(ValueError, match="variant"):
        MiTEncoder("b9")
    with pytest.raises(ValueError, match="dims"):
        MiTEncoder("tiny", dims=(8, 8, 8, 8))
    with pytest.raises(ValueError, match="depths"):
        MiTEncoder(dims=(8, 16, 32, 64), depths=(1, 1), num_heads=(1,) * 4, sr_ratios=(1,) * 4)


def _head_features():
    """Four non-square stage maps [2, H_i, W_i, C_i] for a head, 1/4 to 1/32 of 64 x 96."""
    return [random_images((2, 16 // 2**i, 24 // 2**i, 8 * 2**i), i + 1) for i in range(4)]


def test_segformer_head_layer_and_params():
    head = run_layer_test(
        SegFormerHead,
        {"embed_dim": 16, "num_classes": 5, "dropout": 0.1},
        _head_features(),
        expected_output_shape=(2, 16, 24, 5),
        allow_zero_gradients=HEAD_BIASES,
    )
    linear = (8 + 16 + 32 + 64) * 16 + 4 * 16
    fuse = 4 * 16 * 16 + 2 * 16  # 1x1 conv without bias + BatchNorm gamma/beta
    classifier = 16 * 5 + 5
    assert trainable_count(head) == linear + fuse + classifier
    assert head.fuse_conv.use_bias is False and head.classifier.use_bias is True
    assert len(head.non_trainable_weights) == 2  # BatchNorm moving mean / variance


def _head_by_concatenation(head, features, training):
    """The head as the paper writes it: project, resize, concatenate [c4..c1], 1x1 fuse conv."""
    size = features[0].shape[1:3]
    embedded = [
        tf.image.resize(linear(f), size, method="bilinear")
        for linear, f in zip(head.linear_c, features)
    ]
    x = head.fuse_conv(tf.concat(embedded[::-1], axis=-1))  # [N, h, w, E]
    x = tf.nn.relu(head.fuse_bn(x, training=training))
    return head.classifier(x)  # dropout left out: compared with dropout 0


@pytest.mark.parametrize("training", [False, True])
def test_segformer_head_folded_fuse_equals_concatenation(training):
    # The head never builds the [N, h, w, 4E] concatenation: it folds each Dense kernel into its
    # slice of the fuse kernel. Outputs and every gradient must equal the literal formula.
    head = SegFormerHead(16, 5, dropout=0.0)
    features = _head_features()
    head(features, training=False)
    rng = np.random.default_rng(0)
    for variable in head.trainable_weights:  # non-trivial biases and norm parameters
        variable.assign(rng.normal(0.0, 0.5, variable.shape).astype("float32"))
    results = []
    for function in (
        lambda: head(features, training=training),
        lambda: _head_by_concatenation(head, features, training),
    ):
        with tf.GradientTape() as tape:
            out = function()
            loss = tf.reduce_sum(out * tf.sin(out))
        results.append((out.numpy(), tape.gradient(loss, head.trainable_weights)))
    (folded, folded_grads), (literal, literal_grads) = results
    np.testing.assert_allclose(folded, literal, rtol=1e-4, atol=1e-4)
    assert np.abs(literal).max() > 0.1  # not a trivially zero comparison
    # Under batch statistics the Dense biases only shift the BatchNorm input: their true
    # gradient is 0, so tolerances are relative to the largest gradient of all.
    scale = max(np.abs(g.numpy()).max() for g in literal_grads)
    assert scale > 0.1
    for variable, a, b in zip(head.trainable_weights, folded_grads, literal_grads):
        np.testing.assert_allclose(
            a.numpy(), b.numpy(), rtol=1e-3, atol=1e-5 * scale, err_msg=variable.path
        )


# --- Whole model ---------------------------------------------------------------------------


def test_segformer_layer():
    run_layer_test(
        SegFormer,
        {"variant": "tiny", "num_classes": 5, "dropout": 0.2},
        random_images((2, 64, 64, 3)),
        expected_output_shape=(2, 16, 16, 5),
        allow_zero_gradients=HEAD_BIASES,
    )


def test_segformer_dynamic_non_square_sizes_in_one_tf_function():
    model = SegFormer("tiny", num_classes=5)
    model.build((None, None, None, 3))  # variables exist before tracing: one trace only
    serve = tf.function(
        lambda images: model(images, training=False),
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)],
    )
    for size, expected in [
        ((64, 96), (16, 24)),
        ((96, 64), (24, 16)),
        ((128, 128), (32, 32)),
        ((80, 48), (20, 12)),  # not a multiple of 32: ceil(H / 4)
    ]:
        images = random_images((2, *size, 3))
        logits = serve(images)
        assert logits.shape == (2, *expected, 5)
        assert logits.dtype == tf.float32
        np.testing.assert_allclose(logits, model(images, training=False), atol=1e-5)
    assert serve.experimental_get_tracing_count() == 1


def test_segformer_rejects_bad_images_and_variant():
    model = SegFormer("tiny", num_classes=5)
    with pytest.raises(ValueError, match="images"):
        model(random_images((1, 16, 16, 3)))
    with pytest.raises(ValueError, match="images"):
        model(random_images((1, 64, 64, 4)))
    with pytest.raises(ValueError, match="variant"):
        SegFormer("b6")


def test_segformer_b0_parameter_counts_match_reference():
    model_150 = SegFormer("b0", num_classes=150)
    model_150.build((None, None, None, 3))
    assert trainable_count(model_150) == 3_752_694
    assert trainable_count(model_150.encoder) == 3_319_392
    # BatchNorm moving statistics are the only non-trainable state.
    assert sum(int(np.prod(v.shape)) for v in model_150.non_trainable_weights) == 2 * 256

    model_19 = SegFormer("b0", num_classes=19)
    model_19.build((None, None, None, 3))
    assert trainable_count(model_19) == 3_719_027
    assert model_19.head_embed_dim == 256


# keras-hub's published preset sizes (keras_hub .../segformer_presets.py "params": all weights,
# 19 classes, 256-wide head): our encoders must match theirs exactly.
KERAS_HUB_PRESET_PARAMS = {
    "b1": 13_682_643,
    "b2": 24_727_507,
    "b3": 44_603_347,
    "b4": 61_373_907,
    "b5": 81_974_227,
}


@pytest.mark.parametrize(
    "variant",
    ["b1", "b2"] + [pytest.param(v, marks=pytest.mark.slow) for v in ("b3", "b4", "b5")],
)
def test_larger_variants_build_with_keras_hub_sizes(variant):
    assert SegFormer(variant, num_classes=19).head_embed_dim == (256 if variant == "b1" else 768)
    model = SegFormer(variant, num_classes=19, head_embed_dim=256)
    model.build((None, None, None, 3))
    assert model.count_params() == KERAS_HUB_PRESET_PARAMS[variant]


def test_segformer_float32_logits_under_mixed_bfloat16(float32_policy):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = SegFormer("tiny", num_classes=5)
    for training in (True, False):
        logits = model(random_images((2, 64, 96, 3)), training=training)
        assert logits.dtype == tf.float32
        assert np.isfinite(to_numpy(logits)).all()
    assert model.head.classifier.compute_dtype == "bfloat16"
    assert model.head.classifier.kernel.dtype == "float32"


def test_segformer_stochastic_depth_inactive_at_inference():
    keras.utils.set_random_seed(7)
    model = SegFormer("tiny", num_classes=5, drop_path_rate=0.5, dropout=0.0)
    images = random_images((4, 64, 64, 3))
    first = to_numpy(model(images, training=False))
    np.testing.assert_array_equal(first, to_numpy(model(images, training=False)))
    np.testing.assert_array_equal(first, to_numpy(model(images)))
    # In training, BatchNorm batch statistics are deterministic, so only stochastic depth can
    # make two calls differ.
    trained_a = to_numpy(model(images, training=True))
    trained_b = to_numpy(model(images, training=True))
    assert not np.allclose(trained_a, trained_b)


def test_segformer_config_and_keras_file_round_trip(tmp_path):
    model = SegFormer("tiny", num_classes=5, dropout=0.2)
    images = random_images((1, 64, 96, 3))
    expected = to_numpy(model(images, training=False))
    clone = SegFormer.from_config(model.get_config())
    assert clone.get_config()["head_embed_dim"] == 32
    assert clone.get_config()["dropout"] == pytest.approx(0.2)

    path = str(tmp_path / "segformer_tiny.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, SegFormer)
    np.testing.assert_allclose(loaded(images, training=False), expected, atol=1e-6)


def test_preprocess_imagenet_normalisation():
    mean = np.array([0.485, 0.456, 0.406]) * 255
    pixels = np.stack([np.zeros(3), mean, np.full(3, 255.0)])  # [3 pixels, 3]
    images = np.round(pixels).astype("uint8").reshape(1, 1, 3, 3)
    out = to_numpy(preprocess(images))
    assert out.dtype == np.float32
    std = np.array([0.229, 0.224, 0.225]) * 255
    np.testing.assert_allclose(out[0, 0], (np.round(pixels) - mean) / std, rtol=1e-5)
    np.testing.assert_allclose(out[0, 0, 1], 0.0, atol=0.01)  # mean colour -> ~0
    with pytest.raises(ValueError, match="images"):
        preprocess(np.zeros((1, 4, 4, 4), "uint8"))


def test_upsample_logits_size_dtype_and_values():
    logits = tf.cast(tf.fill((2, 4, 6, 3), 1.5), tf.bfloat16)
    up = upsample_logits(logits, (16, 24))
    assert up.shape == (2, 16, 24, 3) and up.dtype == tf.float32
    np.testing.assert_allclose(up, 1.5)
    # Bilinear with half-pixel centres: a 2-pixel ramp [0, 1] upsampled x2 -> 0, .25, .75, 1.
    ramp = tf.constant([0.0, 1.0])[None, None, :, None]  # [1, 1, 2, 1]
    np.testing.assert_allclose(upsample_logits(ramp, (1, 4))[0, 0, :, 0], [0, 0.25, 0.75, 1])


# --- keras-hub weights ---------------------------------------------------------------------

B0 = {
    "hidden_dims": [32, 64, 160, 256],
    "layerwise_depths": [2, 2, 2, 2],
    "layerwise_num_heads": [1, 2, 5, 8],
    "layerwise_sr_ratios": [8, 4, 2, 1],
}


@pytest.fixture(scope="module")
def keras_hub_b0(tmp_path_factory):
    """A keras-hub SegFormer-B0 (19 classes, 64x64) with random weights everywhere (biases,
    norms and BatchNorm statistics too), saved as a segmenter preset and as a MiT preset."""
    keras_hub = pytest.importorskip("keras_hub")
    keras.utils.set_random_seed(11)
    mit = keras_hub.models.MiTBackbone(
        num_layers=4,
        max_drop_path_rate=0.1,
        layerwise_patch_sizes=[7, 3, 3, 3],
        layerwise_strides=[4, 2, 2, 2],
        image_shape=(64, 64, 3),
        **B0,
    )
    backbone = keras_hub.models.SegFormerBackbone(image_encoder=mit, projection_filters=256)
    segmenter = keras_hub.models.SegFormerImageSegmenter(backbone=backbone, num_classes=19)
    rng = np.random.RandomState(5)
    for variable in segmenter.weights:
        shape = tuple(variable.shape)
        if variable.name in ("moving_variance", "gamma"):
            value = rng.uniform(0.5, 1.5, shape)
        elif variable.name in ("kernel",):
            value = variable.numpy() * rng.uniform(0.5, 1.5, shape)
        else:
            value = 0.1 * rng.randn(*shape)
        variable.assign(value.astype("float32"))
    root = tmp_path_factory.mktemp("keras_hub")
    segmenter_dir, mit_dir = str(root / "segformer_b0"), str(root / "mit_b0")
    segmenter.save_to_preset(segmenter_dir)
    mit.save_to_preset(mit_dir)
    return {"segmenter": segmenter, "mit": mit, "segmenter_dir": segmenter_dir, "mit_dir": mit_dir}


@pytest.mark.slow
def test_keras_hub_segmenter_preset_gives_same_logits(keras_hub_b0):
    model = SegFormer("b0", num_classes=19, **ARCHITECTURES["keras_hub"])
    loaded = load_keras_hub_weights(model, keras_hub_b0["segmenter_dir"])
    assert len(loaded) == len(model.weights)  # every variable, BatchNorm statistics included

    segmenter = keras_hub_b0["segmenter"]
    images = random_images((2, 64, 64, 3))  # already "preprocessed"
    ours = model(images, training=False)  # [2, 16, 16, 19]
    # Like with like at 1/4 resolution: keras-hub's backbone + classifier, before its resize.
    theirs_quarter = segmenter.output_segmentation_head(segmenter.backbone(images, training=False))
    np.testing.assert_allclose(ours, theirs_quarter, atol=1e-4)
    # And its full segmenter (which resizes to the input size) against our upsampled logits.
    theirs_full = segmenter(images, training=False)  # [2, 64, 64, 19]
    np.testing.assert_allclose(upsample_logits(ours, (64, 64)), theirs_full, atol=1e-4)
    assert np.abs(to_numpy(theirs_full)).max() > 0.1  # not a trivially zero comparison


@pytest.mark.slow
def test_keras_hub_mit_preset_loads_encoder_only(keras_hub_b0):
    model = SegFormer("b0", num_classes=19, **ARCHITECTURES["keras_hub"])
    model.build((None, None, None, 3))
    head_before = [v.numpy() for v in model.head.weights]
    loaded = load_keras_hub_weights(model, keras_hub_b0["mit_dir"])
    assert len(loaded) == len(model.encoder.weights)
    assert all(path.startswith(model.encoder.path + "/") for path in loaded)
    for before, after in zip(head_before, model.head.weights):
        np.testing.assert_array_equal(before, after.numpy())

    mit = keras_hub_b0["mit"]
    pyramid = keras.Model(mit.input, mit.pyramid_outputs)
    images = random_images((2, 64, 64, 3), seed=1)
    theirs = pyramid(images, training=False)
    ours = model.encoder(images, training=False)
    for stage, feature in enumerate(ours):
        np.testing.assert_allclose(feature, theirs[f"P{stage + 1}"], atol=1e-4)


@pytest.mark.slow
def test_keras_hub_preset_class_count_and_variant_mismatch(keras_hub_b0):
    model = SegFormer("b0", num_classes=150, **ARCHITECTURES["keras_hub"])
    model.build((None, None, None, 3))
    first_before = model.encoder.weights[0].numpy()
    with pytest.raises(ValueError) as error:
        load_keras_hub_weights(model, keras_hub_b0["segmenter_dir"])
    message = str(error.value)
    assert "head/classifier/kernel" in message
    assert "(1, 1, 256, 150)" in message and "(1, 1, 256, 19)" in message
    # Checked before copying: nothing was overwritten.
    np.testing.assert_array_equal(first_before, model.encoder.weights[0].numpy())

    with pytest.raises(ValueError, match=r"encoder dims \(8, 16, 32, 64\).*\(32, 64, 160, 256\)"):
        load_keras_hub_weights(
            SegFormer("tiny", num_classes=19, **ARCHITECTURES["keras_hub"]),
            keras_hub_b0["mit_dir"],
        )
    with pytest.raises(ValueError, match="head_embed_dim=256"):
        wide = SegFormer("b0", num_classes=19, head_embed_dim=128, **ARCHITECTURES["keras_hub"])
        load_keras_hub_weights(wide, keras_hub_b0["segmenter_dir"])


def test_keras_hub_missing_or_unknown_preset(tmp_path):
    pytest.importorskip("keras_hub")
    model = SegFormer("tiny", num_classes=5, **ARCHITECTURES["keras_hub"])
    missing = str(tmp_path / "no_such_preset")
    with pytest.raises(FileNotFoundError, match="no_such_preset"):
        load_keras_hub_weights(model, missing)
    with pytest.raises(FileNotFoundError, match="segformer_b9_nowhere"):
        load_keras_hub_weights(model, "segformer_b9_nowhere")
    # An existing directory without keras-hub files names the file it looked for.
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_keras_hub_weights(model, str(tmp_path))
    with pytest.raises(ValueError, match="model"):
        load_keras_hub_weights(keras.Sequential(), str(tmp_path))


def test_keras_hub_named_preset_without_network_says_what_to_do(monkeypatch):
    keras_hub = pytest.importorskip("keras_hub")

    def offline(cls, preset, **kwargs):
        raise ConnectionError("Failed to resolve 'api.kaggle.com'")

    # Simulated offline hub, so the test never downloads even where the network works.
    monkeypatch.setattr(
        keras_hub.models.SegFormerImageSegmenter, "from_preset", classmethod(offline)
    )
    with pytest.raises(FileNotFoundError) as error:
        load_keras_hub_weights(
            SegFormer("b0", num_classes=150, **ARCHITECTURES["keras_hub"]),
            "segformer_b0_ade20k_512",
        )
    message = str(error.value)
    assert "segformer_b0_ade20k_512" in message
    assert "save_to_preset" in message and "pass its path" in message


def test_architecture_follows_the_weights_origin(tmp_path):
    # The original SegFormer (and Hugging Face): exact erf GELU, every LayerNorm eps 1e-5;
    # keras-hub's MiT: tanh GELU, 1e-6 block pre-norms. Ours defaults to the original.
    model = SegFormer("tiny", num_classes=5)
    model.build((None, 64, 64, 3))
    assert (model.approximate_gelu, model.block_norm_epsilon) == (False, 1e-5)
    block = model.encoder.blocks[0]
    assert (block.mlp.approximate_gelu, block.norm1.epsilon, block.norm2.epsilon) == (
        False,
        1e-5,
        1e-5,
    )
    hub = SegFormer("tiny", num_classes=5, **ARCHITECTURES["keras_hub"])
    hub.build((None, 64, 64, 3))
    assert (hub.encoder.blocks[0].mlp.approximate_gelu, hub.encoder.blocks[0].norm1.epsilon) == (
        True,
        1e-6,
    )
    assert SegFormer.from_config(hub.get_config()).block_norm_epsilon == 1e-6
    hub.set_weights(model.get_weights())
    images = random_images((1, 64, 64, 3), seed=3)
    assert np.abs(to_numpy(hub(images)) - to_numpy(model(images))).max() > 0
    # keras-hub weights refuse the original architecture, naming the fix.
    with pytest.raises(ValueError, match=r"ARCHITECTURES\['keras_hub'\]"):
        load_keras_hub_weights(model, str(tmp_path))


def test_run_config_records_the_architecture():
    from models.segformer.config import SegFormerConfig

    assert SegFormerConfig().architecture == "original"
    assert SegFormerConfig(pretrained="mit_b0_ade20k_512").architecture == "keras_hub"
    with pytest.raises(ValueError, match="architecture=keras_hub"):
        SegFormerConfig(pretrained="mit_b0_ade20k_512", architecture="original")
