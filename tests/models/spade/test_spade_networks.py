"""Tests for models/spade/networks.py: SPADE blocks, generator, encoder, discriminators, counts.

Every layer and network runs through the shared `run_layer_test` (tests/layer_testing.py)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from layer_testing import run_layer_test

from models.layers import InstanceNormalization
from models.spade.networks import (
    SPADE,
    MultiscaleDiscriminator,
    NLayerDiscriminator,
    SPADEGenerator,
    SPADEResnetBlock,
    VAEEncoder,
    avg_pool_exclude_pad,
    build_spade_networks,
    reparameterize,
)

NUM_CLASSES = 8
# Tiny preset: 8 classes, widths 4-16.
TINY_G = dict(num_classes=NUM_CLASSES, ngf=4, z_dim=8, num_hidden=8, norm_type="batch")


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(7)


def _one_hot(n, h, w, num_classes=NUM_CLASSES):
    labels = np.random.randint(0, num_classes, size=(n, h, w))
    return np.eye(num_classes, dtype="float32")[labels]  # [N, H, W, S]


def _trainable(layer):
    return sum(int(np.prod(w.shape)) for w in layer.trainable_weights)


def _spade_params(label_nc, norm_nc, hidden, k=3):
    return label_nc * k * k * hidden + hidden + 2 * (hidden * k * k * norm_nc + norm_nc)


# --- SPADE -----------------------------------------------------------------------------------


@pytest.mark.parametrize("norm_type", ["instance", "batch", "syncbatch"])
def test_spade_layer_params_and_dynamic_sizes(norm_type):
    x = np.random.randn(2, 16, 24, 6).astype("float32")
    segmap = _one_hot(2, 32, 48)  # finer than x: resized inside
    layer = run_layer_test(
        SPADE,
        {"norm_type": norm_type, "num_hidden": 8},
        {"x": x, "segmap": segmap},
        expected_output_shape=(2, 16, 24, 6),
    )
    out = layer(x, segmap)
    assert _trainable(layer) == _spade_params(NUM_CLASSES, 6, 8)

    @tf.function(
        input_signature=[
            tf.TensorSpec((None, None, None, 6), tf.float32),
            tf.TensorSpec((None, None, None, NUM_CLASSES), tf.float32),
        ]
    )
    def dynamic_call(features, labels):
        return layer(features, labels)

    np.testing.assert_allclose(dynamic_call(x, segmap).numpy(), out.numpy(), atol=1e-5)
    # Non-square x of another size, same weights: the resize follows x's dynamic shape.
    assert dynamic_call(x[:, :8, :20], segmap).shape == (2, 8, 20, 6)


def test_spade_layer_from_labels():
    # Integer labels take the lookup path of the shared conv (`SNConv2D.call_on_labels`).
    labels = np.random.randint(0, NUM_CLASSES, size=(2, 16, 24)).astype("int32")
    run_layer_test(
        SPADE,
        {"norm_type": "instance", "num_hidden": 8, "kernel_size": 5, "num_classes": NUM_CLASSES},
        {"x": np.random.randn(2, 8, 12, 6).astype("float32"), "segmap": labels},
        expected_output_shape=(2, 8, 12, 6),
    )


def test_spade_formula_on_known_weights():
    layer = SPADE("instance", num_hidden=4)
    x = np.random.randn(1, 8, 8, 3).astype("float32") * 2 + 1
    segmap = _one_hot(1, 8, 8)
    layer(x, segmap)
    normalized = InstanceNormalization()(x).numpy()
    for conv in (layer.mlp_gamma, layer.mlp_beta):
        conv.kernel.assign(np.zeros(conv.kernel.shape, "float32"))
    layer.mlp_gamma.bias.assign(np.full((3,), 0.5, "float32"))
    layer.mlp_beta.bias.assign(np.array([1.0, -1.0, 2.0], "float32"))
    expected = normalized * 1.5 + np.array([1.0, -1.0, 2.0])
    np.testing.assert_allclose(layer(x, segmap).numpy(), expected, atol=1e-5)


def test_spade_uses_the_label_at_each_position():
    layer = SPADE("instance", num_hidden=4)
    x = np.zeros((1, 4, 4, 2), "float32")  # normalised to zeros: output = beta
    segmap = np.zeros((1, 4, 4, NUM_CLASSES), "float32")
    segmap[..., 0] = 1.0
    layer(x, segmap)
    base = layer(x, segmap).numpy()
    segmap[0, 0, 0] = np.eye(NUM_CLASSES)[3]
    changed = layer(x, segmap).numpy()
    # The 3x3 convs see the change only within two pixels of (0, 0).
    assert not np.allclose(changed[0, 0, 0], base[0, 0, 0])
    np.testing.assert_allclose(changed[0, 3, 3], base[0, 3, 3], atol=1e-7)


def test_spade_bad_arguments():
    with pytest.raises(ValueError, match="layernorm"):
        SPADE("layernorm")
    with pytest.raises(ValueError, match="kernel_size"):
        SPADE("instance", kernel_size=4)


# --- SPADEResnetBlock ------------------------------------------------------------------------


def test_resnet_block_learned_shortcut():
    block = SPADEResnetBlock(8, 4, "instance", num_hidden=8)
    x = np.random.randn(2, 8, 12, 8).astype("float32")
    out = block(x, _one_hot(2, 16, 16))
    assert out.shape == (2, 8, 12, 4)
    assert block.learned_shortcut
    fmid = 4
    expected = (
        _spade_params(NUM_CLASSES, 8, 8)
        + 8 * 9 * fmid
        + fmid  # norm_0, conv_0
        + _spade_params(NUM_CLASSES, fmid, 8)
        + fmid * 9 * 4
        + 4  # norm_1, conv_1
        + _spade_params(NUM_CLASSES, 8, 8)
        + 8 * 4  # norm_s, conv_s (1x1, no bias)
    )
    assert _trainable(block) == expected
    assert block.conv_s.use_bias is False and block.conv_s.kernel_size == (1, 1)
    assert all(c.spectral_norm for c in (block.conv_0, block.conv_1, block.conv_s))
    assert all(c.kernel_size == (3, 3) and c.use_bias for c in (block.conv_0, block.conv_1))


def test_resnet_block_identity_shortcut_and_no_spectral_norm():
    block = SPADEResnetBlock(4, 4, "batch", spectral_norm=False, num_hidden=8)
    x = np.random.randn(2, 8, 8, 4).astype("float32")
    segmap = _one_hot(2, 8, 8)
    out = block(x, segmap)
    assert not block.learned_shortcut and not hasattr(block, "conv_s")
    assert not block.conv_0.spectral_norm
    assert not any(w.name.startswith("sn_") for w in block.weights)
    assert len(block.non_trainable_weights) == 4  # only the two BNs' moving mean / variance
    # Zero residual branch => out == x (identity shortcut).
    block.conv_1.kernel.assign(np.zeros(block.conv_1.kernel.shape, "float32"))
    np.testing.assert_allclose(block(x, segmap).numpy(), x, atol=1e-6)
    assert out.shape == x.shape


@pytest.mark.parametrize("fout, spectral_norm", [(4, True), (8, False)])
def test_resnet_block_layer(fout, spectral_norm):
    run_layer_test(
        SPADEResnetBlock,
        {
            "fin": 8,
            "fout": fout,
            "norm_type": "instance",
            "spectral_norm": spectral_norm,
            "num_hidden": 8,
        },
        {"x": np.random.randn(2, 8, 12, 8).astype("float32"), "segmap": _one_hot(2, 16, 16)},
        expected_output_shape=(2, 8, 12, fout),
    )


def test_resnet_block_fin_check():
    block = SPADEResnetBlock(8, 4, "instance", spectral_norm=False, num_hidden=8, name="blk")
    with pytest.raises(ValueError, match="fin=8"):
        block(np.zeros((1, 4, 4, 6), "float32"), _one_hot(1, 4, 4))


# --- SPADEGenerator --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "use_vae, num_up, crop, aspect_ratio, expected_hw",
    [
        (False, "normal", 32, 1.0, (32, 32)),
        (True, "normal", 32, 1.0, (32, 32)),
        (False, "more", 64, 1.0, (64, 64)),
        (True, "most", 128, 1.0, (128, 128)),
        (False, "normal", 64, 2.0, (32, 64)),  # sw = 2, sh = round(2 / 2) = 1
    ],
)
def test_generator_output_shapes(use_vae, num_up, crop, aspect_ratio, expected_hw):
    generator = SPADEGenerator(
        **TINY_G,
        use_vae=use_vae,
        crop_size=crop,
        aspect_ratio=aspect_ratio,
        num_upsampling_layers=num_up,
    )
    segmap = _one_hot(2, *expected_hw)
    image = generator(segmap, training=True)
    assert image.shape == (2, *expected_hw, 3)
    assert image.dtype == tf.float32
    assert np.all(np.abs(image.numpy()) <= 1.0)
    assert generator.output_size == expected_hw
    if num_up == "most":
        assert generator.up_4.fout == 2  # ngf / 2


def test_generator_blocks_and_widths():
    generator = SPADEGenerator(**TINY_G, crop_size=32)
    widths = [
        (b.name, b.fin, b.fout)
        for b in [
            generator.head_0,
            generator.g_middle_0,
            generator.g_middle_1,
            generator.up_0,
            generator.up_1,
            generator.up_2,
            generator.up_3,
        ]
    ]
    assert widths == [
        ("head_0", 64, 64),
        ("G_middle_0", 64, 64),
        ("G_middle_1", 64, 64),
        ("up_0", 64, 32),
        ("up_1", 32, 16),
        ("up_2", 16, 8),
        ("up_3", 8, 4),
    ]
    assert not hasattr(generator, "up_4")


def test_generator_vae_z_handling_and_graph_mode():
    generator = SPADEGenerator(**TINY_G, use_vae=True, crop_size=32)
    segmap = _one_hot(3, 32, 32)
    z = np.random.randn(3, 8).astype("float32")
    with_z = generator(segmap, z).numpy()
    np.testing.assert_allclose(generator(segmap, z).numpy(), with_z, atol=1e-6)
    sampled_a = generator(segmap).numpy()  # z ~ N(0, I), batch size read from segmap
    sampled_b = generator(segmap).numpy()
    assert sampled_a.shape == (3, 32, 32, 3)
    assert not np.allclose(sampled_a, sampled_b)

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, NUM_CLASSES), tf.float32)])
    def sample(labels):
        return generator(labels)

    assert sample(segmap[:2]).shape == (2, 32, 32, 3)
    assert sample(_one_hot(1, 16, 16)).shape == (1, 32, 32, 3)  # any segmap resolution


def test_generator_layer():
    run_layer_test(
        SPADEGenerator,
        dict(TINY_G, use_vae=True, crop_size=32, seed=3),
        {"segmap": _one_hot(2, 32, 32), "z": np.random.randn(2, 8).astype("float32")},
        expected_output_shape=(2, 32, 32, 3),
    )


@pytest.mark.parametrize("use_vae", [False, True])
def test_generator_from_labels_equals_generator_from_one_hot(use_vae):
    # Integer labels take the lookup path for every conv over the one-hot map (SPADE shared
    # convs, and fc without the VAE): same image and same gradients as the one-hot input.
    # No spectral norm: its power iteration would change the state between the two calls.
    generator = SPADEGenerator(**TINY_G, use_vae=use_vae, crop_size=32, spectral_norm=False)
    labels = np.random.randint(0, NUM_CLASSES, size=(2, 32, 32))
    labels[0, :4] = NUM_CLASSES  # out of range: an all-zero one-hot row either way
    one_hot = tf.one_hot(labels, NUM_CLASSES)
    z = np.random.randn(2, 8).astype("float32")
    generator(tf.constant(labels, tf.int32), z)  # built from labels
    for variable in generator.trainable_variables:  # away from the tiny reference init
        variable.assign(np.random.normal(0.0, 0.3, variable.shape).astype("float32"))
    results = []
    for segmap in (one_hot, tf.constant(labels, tf.uint8)):
        with tf.GradientTape() as tape:
            out = generator(segmap, z, training=True)
            loss = tf.reduce_sum(out * tf.cos(3.0 * out))
        results.append((out.numpy(), tape.gradient(loss, generator.trainable_variables)))
    (from_one_hot, grads_one_hot), (from_labels, grads_labels) = results
    np.testing.assert_allclose(from_labels, from_one_hot, rtol=1e-5, atol=1e-5)
    assert np.std(from_one_hot) > 0.05
    scale = max(float(tf.reduce_max(tf.abs(g))) for g in grads_one_hot)
    assert scale > 0
    for variable, a, b in zip(generator.trainable_variables, grads_labels, grads_one_hot):
        np.testing.assert_allclose(
            a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5 * scale, err_msg=variable.path
        )


def test_spade_layer_needs_num_classes_to_build_from_labels():
    labels = tf.zeros((1, 8, 8), tf.int32)
    x = tf.zeros((1, 8, 8, 4))
    with pytest.raises(ValueError, match="num_classes"):
        SPADE("instance", 8)(x, labels)
    assert SPADE("instance", 8, num_classes=5)(x, labels).shape == (1, 8, 8, 4)


def test_generator_mixed_bfloat16_returns_float32():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        generator = SPADEGenerator(**TINY_G, use_vae=True, crop_size=32)
        image = generator(_one_hot(2, 32, 32), training=True)
        assert generator.compute_dtype == "bfloat16"
        assert generator.head_0.conv_0.kernel.dtype == "float32"
        encoder = VAEEncoder(ndf=4, z_dim=8, input_size=32)
        mu, logvar = encoder(np.zeros((2, 32, 32, 3), "float32"))
        discriminator = MultiscaleDiscriminator(num_D=2, ndf=4, n_layers=2)
        outputs = discriminator(np.zeros((2, 32, 32, 11), "float32"))
    finally:
        keras.config.set_dtype_policy(previous)
    assert image.dtype == tf.float32 and image.shape == (2, 32, 32, 3)
    assert np.all(np.isfinite(image.numpy()))
    assert mu.dtype == tf.float32 and logvar.dtype == tf.float32
    assert all(t.dtype == tf.float32 for scale in outputs for t in scale)


def test_generator_keras_file_round_trip(tmp_path):
    generator = SPADEGenerator(**TINY_G, use_vae=True, crop_size=32, seed=3, name="g")
    segmap = _one_hot(2, 32, 32)
    z = np.random.randn(2, 8).astype("float32")
    image = generator(segmap, z).numpy()
    path = str(tmp_path / "generator.keras")
    generator.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded(segmap, z).numpy(), image, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, named",
    [
        ({"crop_size": 16}, "crop_size"),
        ({"crop_size": 64, "num_upsampling_layers": "most"}, "crop_size"),
        ({"num_upsampling_layers": "many"}, "num_upsampling_layers"),
        ({"aspect_ratio": 0.0}, "aspect_ratio"),
        ({"norm_type": "group"}, "group"),
    ],
)
def test_generator_bad_arguments(kwargs, named):
    args = dict(TINY_G, crop_size=32)
    args.update(kwargs)
    with pytest.raises(ValueError, match=named):
        SPADEGenerator(**args)


# --- VAEEncoder -------------------------------------------------------------------------------


def test_encoder_shapes_params_and_resize():
    encoder = VAEEncoder(ndf=4, z_dim=8, input_size=32)
    assert encoder.num_convs == 3  # 32 -> 16 -> 8 -> 4
    mu, logvar = encoder(np.random.uniform(-1, 1, (2, 48, 40, 3)).astype("float32"))
    assert mu.shape == (2, 8) and logvar.shape == (2, 8)
    assert mu.dtype == tf.float32
    convs = 3 * 9 * 4 + 4 * 9 * 8 + 8 * 9 * 16  # no bias
    dense = 2 * (4 * 4 * 16 * 8 + 8)
    assert _trainable(encoder) == convs + dense
    assert all(c.padding == 1 and c.strides == (2, 2) and c.spectral_norm for c in encoder.convs)
    graph = tf.function(lambda t: encoder(t))(np.zeros((1, 32, 32, 3), "float32"))
    assert graph[0].shape == (1, 8)


def test_encoder_widths_cap_at_8_ndf_and_bad_size():
    encoder = VAEEncoder(ndf=2, z_dim=4, input_size=256)
    assert [c.filters for c in encoder.convs] == [2, 4, 8, 16, 16, 16]
    for bad in (48, 4, 100):
        with pytest.raises(ValueError, match="input_size"):
            VAEEncoder(ndf=4, z_dim=8, input_size=bad)


@pytest.mark.parametrize("spectral_norm", [True, False])
def test_encoder_layer(spectral_norm):
    image = np.random.uniform(-1, 1, (2, 24, 20, 3)).astype("float32")  # resized to 16 x 16
    run_layer_test(
        VAEEncoder,
        {"ndf": 4, "z_dim": 8, "input_size": 16, "spectral_norm": spectral_norm},
        image,
        expected_output_shape=((2, 8), (2, 8)),
    )


def test_reparameterize_known_values():
    mu = np.array([[0.0, 1.0], [-2.0, 3.0]], "float32")
    logvar = np.array([[0.0, np.log(4.0)], [np.log(0.25), 0.0]], "float32")
    eps = np.array([[1.0, -1.0], [2.0, 0.5]], "float32")
    z = reparameterize(mu, logvar, eps).numpy()
    np.testing.assert_allclose(z, [[1.0, -1.0], [-1.0, 3.5]], atol=1e-6)


# --- discriminators ---------------------------------------------------------------------------


def _patch_sizes(size, n_layers):
    sizes = []
    for i in range(n_layers + 1):
        stride = 2 if i < n_layers - 1 else 1
        size = (size + 4 - 4) // stride + 1
        sizes.append(size)
    return sizes


def test_nlayer_discriminator_layer_and_params():
    x = np.random.randn(2, 32, 48, 11).astype("float32")
    heights, widths = _patch_sizes(32, 4), _patch_sizes(48, 4)
    channels = [4, 8, 16, 32, 1]
    disc = run_layer_test(
        NLayerDiscriminator,
        {"ndf": 4, "n_layers": 4},
        x,
        expected_output_shape=[(2, h, w, c) for h, w, c in zip(heights, widths, channels)],
    )
    outputs = disc(x)
    assert all(o.dtype == tf.float32 for o in outputs)
    expected = (11 * 16 * 4 + 4) + 4 * 16 * 8 + 8 * 16 * 16 + 16 * 16 * 32 + (32 * 16 + 1)
    assert _trainable(disc) == expected
    assert not disc.conv_in.spectral_norm and disc.conv_in.use_bias
    assert not disc.conv_out.spectral_norm and disc.conv_out.use_bias
    assert all(c.spectral_norm and not c.use_bias and c.padding == 2 for c in disc.convs)


def _numpy_avg_pool_exclude_pad(x):
    n, h, w, c = x.shape
    out = np.zeros((n, (h + 1) // 2, (w + 1) // 2, c))
    for i in range(out.shape[1]):
        for j in range(out.shape[2]):
            rows = slice(max(2 * i - 1, 0), min(2 * i + 2, h))
            cols = slice(max(2 * j - 1, 0), min(2 * j + 2, w))
            out[:, i, j] = x[:, rows, cols].mean(axis=(1, 2))
    return out


def test_avg_pool_does_not_count_padding():
    x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
    out = avg_pool_exclude_pad(x).numpy()[0, :, :, 0]
    # Corner windows average only their 4 real pixels, edges 6, the interior 9.
    np.testing.assert_allclose(out, [[2.5, 4.0], [8.5, 10.0]], rtol=1e-6)
    odd = np.random.randn(2, 5, 7, 3).astype("float32")
    np.testing.assert_allclose(
        avg_pool_exclude_pad(odd).numpy(), _numpy_avg_pool_exclude_pad(odd), atol=1e-6
    )


def test_multiscale_discriminator_layer_and_pooling():
    x = np.random.randn(2, 32, 24, 11).astype("float32")
    disc = run_layer_test(
        MultiscaleDiscriminator,
        {"num_D": 2, "ndf": 4, "n_layers": 3, "norm_type": "instance"},
        x,
        expected_output_shape=[
            [
                (2, h, w, c)
                for h, w, c in zip(_patch_sizes(size_h, 3), _patch_sizes(size_w, 3), [4, 8, 16, 1])
            ]
            for size_h, size_w in [(32, 24), (16, 12)]
        ],
    )
    results = disc(x)
    # The second scale sees the count_include_pad=False average-pooled input.
    expected = disc.discriminators[1](avg_pool_exclude_pad(x))
    np.testing.assert_allclose(results[1][-1].numpy(), expected[-1].numpy(), atol=1e-5)


@pytest.mark.parametrize("from_labels", [True, False])
def test_discriminator_call_conditioned_equals_call_on_concatenated_pairs(from_labels):
    # What SPADE training runs: the map's share of each scale's first conv computed once (by
    # lookup from labels), against D on concat(one-hot map, image) for each image.
    disc = MultiscaleDiscriminator(num_D=2, ndf=4, n_layers=3, norm_type="instance")
    labels = np.random.randint(0, NUM_CLASSES, size=(2, 32, 24))
    one_hot = np.eye(NUM_CLASSES, dtype="float32")[labels]  # [N, H, W, S]
    images = [tf.constant(np.random.randn(2, 32, 24, 3).astype("float32")) for _ in range(2)]
    disc(np.concatenate([one_hot, images[0].numpy()], axis=-1))  # builds
    segmap = tf.constant(labels, tf.int32) if from_labels else tf.constant(one_hot)

    def loss_of(outputs):  # every output of every scale, with fixed random weights
        rng = np.random.default_rng(0)
        return tf.add_n(
            [
                tf.reduce_sum(f * rng.normal(size=f.shape).astype("float32"))
                for f in tf.nest.flatten(outputs)
            ]
        )

    state = [w.numpy() for w in disc.non_trainable_weights]  # spectral-norm u, v
    results = []
    for conditioned in (True, False):
        for weight, value in zip(disc.non_trainable_weights, state):
            weight.assign(value)
        with tf.GradientTape() as tape:
            tape.watch(images)
            if conditioned:
                outputs = disc.call_conditioned(segmap, images, training=True)
            else:  # the reference: both pairs in one batch
                pairs = tf.concat([tf.concat([one_hot, image], -1) for image in images], 0)
                batch_outputs = disc(pairs, training=True)
                outputs = [
                    [[tf.split(f, 2, axis=0)[i] for f in scale] for scale in batch_outputs]
                    for i in range(2)
                ]
            loss = loss_of(outputs)
        grads = tape.gradient(loss, disc.trainable_variables + images)
        results.append(
            [o.numpy() for o in tf.nest.flatten(outputs)]
            + [g.numpy() for g in grads]
            + [w.numpy() for w in disc.non_trainable_weights]
        )
    assert (
        len(results[0])
        == len(results[1])
        == (2 * 2 * 4 + len(disc.trainable_variables) + 2 + len(state))
    )
    for got, expected in zip(*results):  # float32 sums in another order
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
    assert np.abs(results[1][2 * 2 * 4 + len(disc.trainable_variables)]).max() > 1e-3
    assert not np.allclose(results[1][-1], state[-1])  # one power iteration ran in both


# --- build_spade_networks ---------------------------------------------------------------------


def test_build_spade_networks_tiny():
    nets = build_spade_networks(
        NUM_CLASSES,
        crop_size=32,
        ngf=4,
        ndf=4,
        z_dim=8,
        use_vae=True,
        num_upsampling_layers="normal",
        norm_G="batch",
        num_hidden=8,
        num_D=2,
        n_layers_D=4,
        encoder_ndf=4,
        encoder_input_size=32,
    )
    assert set(nets) == {"generator", "discriminator", "encoder"}
    assert all(net.built and net.weights for net in nets.values())
    assert nets["discriminator"].discriminators[0].conv_in.kernel.shape[2] == NUM_CLASSES + 3
    mu, logvar = nets["encoder"](np.zeros((2, 32, 32, 3), "float32"))
    z = reparameterize(mu, logvar, np.random.randn(2, 8).astype("float32"))
    fake = nets["generator"](_one_hot(2, 32, 32), z)
    assert fake.shape == (2, 32, 32, 3)

    plain = build_spade_networks(
        NUM_CLASSES,
        crop_size=64,
        ngf=4,
        ndf=4,
        z_dim=8,
        use_vae=False,
        num_upsampling_layers="normal",
        norm_G="instance",
        num_hidden=8,
        num_D=1,
        n_layers_D=2,
        encoder_ndf=4,
        encoder_input_size=32,
        spectral_norm=False,
        aspect_ratio=2.0,
    )
    assert plain["encoder"] is None
    assert plain["generator"].output_size == (32, 64)
    assert not plain["generator"].head_0.conv_0.spectral_norm


# --- reference parameter counts (ADE20K: 151 classes, crop 256, ngf = ndf = 64) ----------------


def _build_symbolic(model, *shapes):
    """Create the weights by a symbolic call: traces the graph, runs no 256 px forward pass."""
    model(*[keras.KerasTensor(shape) for shape in shapes])
    return model


@pytest.fixture(scope="module")
def ade20k_generator():
    generator = SPADEGenerator(151, ngf=64, z_dim=256, crop_size=256, num_hidden=128)
    return _build_symbolic(generator, (1, 256, 256, 151))


def test_ade20k_generator_no_vae_count(ade20k_generator):
    assert _trainable(ade20k_generator) == 96_492_483


def test_ade20k_generator_block_counts(ade20k_generator):
    g = ade20k_generator
    assert _trainable(g.fc) == 1_392_640
    for block in (g.head_0, g.g_middle_0, g.g_middle_1):
        assert _trainable(block) == 23_947_264
    assert [_trainable(b) for b in (g.up_0, g.up_1, g.up_2, g.up_3)] == [
        14_028_800,
        5_374_976,
        2_473_472,
        1_379_072,
    ]
    spade_layers = [
        norm
        for block in (g.head_0, g.g_middle_0, g.g_middle_1, g.up_0, g.up_1, g.up_2, g.up_3)
        for norm in (block.norm_0, block.norm_1, getattr(block, "norm_s", None))
        if norm is not None
    ]
    assert sum(_trainable(s) for s in spade_layers) == 28_370_304
    # Spectral-norm vectors are state, not parameters.
    assert all(not w.trainable for w in g.non_trainable_weights)


@pytest.mark.parametrize("num_up, expected", [("normal", 111_942_595), ("more", 99_310_531)])
def test_ade20k_generator_vae_counts(num_up, expected):
    generator = SPADEGenerator(
        151,
        ngf=64,
        z_dim=256,
        use_vae=True,
        crop_size=256,
        num_upsampling_layers=num_up,
    )
    _build_symbolic(generator, (1, 256, 256, 151))
    assert _trainable(generator) == expected


def test_ade20k_encoder_count():
    encoder = _build_symbolic(VAEEncoder(ndf=64, z_dim=256, input_size=256), (1, 256, 256, 3))
    assert _trainable(encoder) == 10_463_424


def test_ade20k_discriminator_count():
    disc = _build_symbolic(MultiscaleDiscriminator(num_D=2, ndf=64, n_layers=4), (1, 256, 256, 154))
    assert _trainable(disc) == 5_836_930
    assert [_trainable(d) for d in disc.discriminators] == [2_918_465, 2_918_465]
