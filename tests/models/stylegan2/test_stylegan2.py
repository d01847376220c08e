"""StyleGAN2: exact reference parameter counts, FIR filters and modulated conv against direct
reference computations, truncation / style mixing, losses on known values, and the training
model (lazy regularisation, EMA, determinism, MirroredStrategy). Every layer and network runs
through the shared `run_layer_test` (tests/layer_testing.py)."""

import math
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT as REPO_ROOT
from layer_testing import run_layer_test

from losses import stylegan2 as sg2_losses
from models.stylegan2 import networks as sg2
from models.stylegan2.config import PRESETS, StyleGAN2Config
from models.stylegan2.trainer import StyleGAN2GAN, ema_decay

TINY = dict(resolution=32, z_dim=16, w_dim=16, mapping_layers=2, width=1.0 / 32)


def _count(layer):
    return sg2.count_parameters(layer)


# === Reference networks: exact parameter counts ===


@pytest.mark.parametrize(
    "cm, generator_count, discriminator_count",
    [(2, 30_034_338, 28_864_129), (1, 24_767_458, 24_001_089)],
)
def test_reference_parameter_counts(cm, generator_count, discriminator_count):
    generator = sg2.StyleGAN2Generator(resolution=256, channel_multiplier=cm)
    discriminator = sg2.StyleGAN2Discriminator(resolution=256, channel_multiplier=cm)
    assert _count(generator) == generator_count
    assert _count(generator.mapping) == 2_101_248
    assert _count(generator.synthesis) == generator_count - 2_101_248
    assert _count(discriminator) == discriminator_count
    assert generator.num_ws == 14
    # Per-module checks.
    assert _count(generator.synthesis.convs[1]) == 2_622_465  # StyledConv 512 -> 512 (8 px)
    assert _count(generator.synthesis.to_rgbs[0]) == 264_195  # ToRGB(512)
    assert _count(discriminator.final_dense) == 4_194_816  # Dense 8192 -> 512
    # Constant noise buffers are state, not parameters: one R x R map per StyledConv.
    noise = sum(int(np.prod(v.shape)) for v in generator.non_trainable_weights)
    assert noise == 16 + 2 * sum(4**k for k in range(3, 9))
    layers = generator.feature_layers()
    assert [layer["name"] for layer in layers][:3] == ["conv00_4px", "conv01_8px", "conv02_8px"]
    assert layers[-1] == {"name": "conv12_256px", "resolution": 256, "channels": 64 * cm}
    assert len(layers) == 13
    assert layers[7] == {"name": "conv07_64px", "resolution": 64, "channels": 256 * cm}
    assert layers[9] == {"name": "conv09_128px", "resolution": 128, "channels": 128 * cm}


def test_synthesis_channels():
    assert [sg2.synthesis_channels(r, 2) for r in (4, 32, 64, 128, 256, 512, 1024)] == [
        512,
        512,
        512,
        256,
        128,
        64,
        32,
    ]
    assert sg2.synthesis_channels(64, 2, width=1 / 32) == 16
    with pytest.raises(ValueError, match="resolution"):
        sg2.StyleGAN2Generator(resolution=48)


# === FIR filters against a direct upfirdn2d ===


def _upfirdn_reference(x, up, pad, gain):
    """Direct upfirdn2d with the [1,3,3,1] kernel: zero insertion, padding, 4x4 correlation."""
    n, h, w, c = x.shape
    upsampled = np.zeros((n, h * up, w * up, c), np.float64)
    upsampled[:, ::up, ::up] = x
    p0, p1 = pad
    padded = np.pad(upsampled, ((0, 0), (p0, p1), (p0, p1), (0, 0)))
    taps = np.array([1.0, 3.0, 3.0, 1.0])
    kernel = np.outer(taps, taps) / 64.0 * gain
    oh, ow = padded.shape[1] - 3, padded.shape[2] - 3
    out = np.zeros((n, oh, ow, c))
    for a in range(4):
        for b in range(4):
            out += kernel[a, b] * padded[:, a : a + oh, b : b + ow]
    return out


def test_fir_blur_and_upsample_match_upfirdn():
    x = np.random.RandomState(0).randn(2, 6, 6, 3).astype("float32")
    for pad, gain in [((1, 1), 4.0), ((2, 2), 1.0), ((1, 1), 1.0)]:
        np.testing.assert_allclose(
            sg2.fir_blur(x, pad, gain).numpy(), _upfirdn_reference(x, 1, pad, gain), atol=1e-5
        )
    up = sg2.fir_upsample_2x(x).numpy()
    assert up.shape == (2, 12, 12, 3)
    np.testing.assert_allclose(up, _upfirdn_reference(x, 2, (2, 1), 4.0), atol=1e-5)
    # Gain: a constant stays constant in the interior (zero padding shows at the border).
    const = sg2.fir_upsample_2x(np.full((1, 8, 8, 1), 2.0, np.float32)).numpy()
    np.testing.assert_allclose(const[0, 1:-1, 1:-1, 0], 2.0, atol=1e-6)
    assert const[0, 0, 0, 0] < 2.0
    blurred = sg2.fir_blur(np.full((1, 8, 8, 1), 2.0, np.float32), (2, 2)).numpy()
    np.testing.assert_allclose(blurred[0, 2:-2, 2:-2, 0], 2.0, atol=1e-6)


# === Every layer through the shared helper (tiny widths; noise_mode "const": deterministic) ===


def _normal(*shape):
    return np.random.RandomState(sum(shape)).randn(*shape).astype("float32")


TINY_NETWORK = dict(resolution=8, width=1 / 32)  # 16 channels at 4 and 8 px
LAYER_CASES = [
    (
        sg2.EqualDense,
        dict(units=8, lr_mul=0.01, bias_init=1.0, activation="lrelu"),
        _normal(2, 16),
        (2, 8),
        {},
    ),
    (
        sg2.EqualConv2D,
        dict(filters=8, kernel_size=3, activation="lrelu"),
        _normal(2, 8, 8, 4),
        (2, 8, 8, 8),
        {},
    ),
    (
        sg2.EqualConv2D,
        dict(filters=8, kernel_size=3, down=True, activation="lrelu"),
        _normal(2, 16, 16, 4),
        (2, 8, 8, 8),
        {},
    ),
    (
        sg2.EqualConv2D,
        dict(filters=5, kernel_size=1, down=True, use_bias=False),
        _normal(2, 16, 16, 4),
        (2, 8, 8, 5),
        {},
    ),
    (
        sg2.ModulatedConv2D,
        dict(filters=8, kernel_size=3, up=True),
        {"x": _normal(2, 4, 4, 6), "w": _normal(2, 16)},
        (2, 8, 8, 8),
        {},
    ),
    (
        sg2.StyledConv,
        dict(filters=8, resolution=8, up=True),
        {"x": _normal(2, 4, 4, 6), "w": _normal(2, 16)},
        (2, 8, 8, 8),
        {"noise_mode": "const"},
    ),
    (
        sg2.ToRGB,
        dict(),
        {"x": _normal(2, 8, 8, 8), "w": _normal(2, 16), "skip": _normal(2, 4, 4, 3)},
        (2, 8, 8, 3),
        {},
    ),
    (sg2.MappingNetwork, dict(z_dim=16, w_dim=16, num_layers=2), _normal(2, 16), (2, 16), {}),
    (
        sg2.SynthesisNetwork,
        dict(TINY_NETWORK, w_dim=16),
        _normal(2, 4, 16),
        (2, 8, 8, 3),
        {"noise_mode": "const"},
    ),
    (
        sg2.StyleGAN2Generator,
        dict(TINY_NETWORK, z_dim=16, w_dim=16, mapping_layers=2),
        _normal(2, 16),
        (2, 8, 8, 3),
        {"noise_mode": "const"},
    ),
    (
        sg2.DiscriminatorBlock,
        dict(in_channels=4, out_channels=8),
        _normal(2, 8, 8, 4),
        (2, 4, 4, 8),
        {},
    ),
    (sg2.StyleGAN2Discriminator, TINY_NETWORK, _normal(2, 8, 8, 3), (2, 1), {}),
]


@pytest.mark.parametrize(
    "layer_cls, init_kwargs, input_data, expected_shape, call_kwargs",
    LAYER_CASES,
    ids=[f"{case[0].__name__}-{i}" for i, case in enumerate(LAYER_CASES)],
)
def test_layer(layer_cls, init_kwargs, input_data, expected_shape, call_kwargs):
    run_layer_test(
        layer_cls,
        init_kwargs,
        input_data,
        expected_output_shape=expected_shape,
        call_kwargs=call_kwargs,
    )


# === Modulated conv against per-sample kernels ===


def _modulated_reference(x, styles, kernel, demodulate, up):
    """Per-sample kernels w * s (* d), convolved sample by sample (NumPy, float64)."""
    n = x.shape[0]
    k = kernel.shape[0]
    outputs = []
    for i in range(n):
        weight = kernel * styles[i][None, None, :, None]  # [k, k, Cin, Cout]
        if demodulate:
            weight = weight / np.sqrt(np.sum(weight**2, axis=(0, 1, 2)) + 1e-8)
        xi = x[i]
        h, w, _ = xi.shape
        if up:
            # Transposed conv, stride 2, no padding: scatter each input pixel's k x k patch.
            out = np.zeros((2 * h + k - 2, 2 * w + k - 2, weight.shape[-1]))
            for a in range(k):
                for b in range(k):
                    out[a : a + 2 * h : 2, b : b + 2 * w : 2] += xi @ weight[a, b]
            out = _upfirdn_reference(out[None], 1, (1, 1), 4.0)[0]
        else:
            p = k // 2
            padded = np.pad(xi, ((p, p), (p, p), (0, 0)))
            out = sum(
                padded[a : a + h, b : b + w] @ weight[a, b] for a in range(k) for b in range(k)
            )
        outputs.append(out)
    return np.stack(outputs)


@pytest.mark.parametrize(
    "up, demodulate, kernel_size", [(False, True, 3), (True, True, 3), (False, False, 1)]
)
def test_modulated_conv_equals_per_sample_kernels(up, demodulate, kernel_size):
    rng = np.random.RandomState(1)
    x = rng.randn(3, 5, 5, 4).astype("float32")
    w = rng.randn(3, 6).astype("float32")
    layer = sg2.ModulatedConv2D(7, kernel_size, demodulate=demodulate, up=up)
    layer.build(x.shape, w.shape)
    layer.style.bias.assign(rng.randn(4).astype("float32"))  # styles of both signs
    out = layer(x, w).numpy()
    styles = layer.style(w).numpy().astype(np.float64)
    kernel = layer.kernel.numpy().astype(np.float64) * layer.weight_gain
    expected = _modulated_reference(x.astype(np.float64), styles, kernel, demodulate, up)
    assert out.shape == expected.shape == ((3, 10, 10, 7) if up else (3, 5, 5, 7))
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


# === Generator behaviour ===


@pytest.fixture(scope="module")
def tiny_generator():
    keras.utils.set_random_seed(0)
    return sg2.StyleGAN2Generator(**TINY)


def test_generator_shapes_features_and_noise(tiny_generator):
    generator = tiny_generator
    z = tf.random.normal((3, 16))
    images, features = generator(z, return_features=True, noise_mode="const")
    assert images.shape == (3, 32, 32, 3)
    layers = generator.feature_layers()
    assert [layer["name"] for layer in layers] == [
        "conv00_4px",
        "conv01_8px",
        "conv02_8px",
        "conv03_16px",
        "conv04_16px",
        "conv05_32px",
        "conv06_32px",
    ]
    assert generator.num_ws == 8
    for layer, feature in zip(layers, features):
        r = layer["resolution"]
        assert feature.shape == (3, r, r, layer["channels"])
    # Noise: const is a pure function of z; random differs once the strengths are non-zero.
    for conv in generator.synthesis.convs:
        conv.noise_strength.assign(0.5)
    try:
        const_a = generator(z, noise_mode="const").numpy()
        const_b = generator(z, noise_mode="const").numpy()
        random_a = generator(z, noise_mode="random").numpy()
        seed = tf.constant([3, 4], tf.int64)
        seeded_a = generator(z, noise_seed=seed).numpy()
        seeded_b = generator(z, noise_seed=seed).numpy()
    finally:
        for conv in generator.synthesis.convs:
            conv.noise_strength.assign(0.0)
    np.testing.assert_array_equal(const_a, const_b)
    np.testing.assert_array_equal(seeded_a, seeded_b)
    assert np.abs(const_a - random_a).max() > 1e-4
    with pytest.raises(ValueError, match="noise_mode"):
        generator(z, noise_mode="fixed")


def test_truncation_and_style_mixing(tiny_generator):
    generator = tiny_generator
    z = tf.random.normal((2, 16))
    w_avg = generator.mean_w(num=256, seed=0)
    np.testing.assert_array_equal(w_avg.numpy(), generator.mean_w(num=256, seed=0).numpy())
    assert w_avg.shape == (16,)
    # psi = 0: every sample becomes the image of w_avg.
    truncated = generator(z, truncation_psi=0.0, w_avg=w_avg, noise_mode="const").numpy()
    ws_avg = generator.broadcast_ws(tf.tile(w_avg[None], [2, 1]))
    expected = generator.synthesis(ws_avg, noise_mode="const").numpy()
    np.testing.assert_allclose(truncated, expected, atol=1e-5)
    with pytest.raises(ValueError, match="w_avg"):
        generator(z, truncation_psi=0.5)
    # Style mixing: ws rows before the crossover come from z, the others from mixing_z.
    w, w2 = generator.mapping(z), generator.mapping(tf.random.normal((2, 16)))
    ws = generator.mix_ws(w, w2, 3).numpy()
    np.testing.assert_array_equal(ws[:, :3], np.repeat(w.numpy()[:, None], 3, axis=1))
    np.testing.assert_array_equal(ws[:, 3:], np.repeat(w2.numpy()[:, None], 5, axis=1))
    mixing_z = tf.random.normal((2, 16))
    unmixed = generator(z, noise_mode="const").numpy()
    no_crossover = generator(z, mixing_z=mixing_z, crossover=8, noise_mode="const").numpy()
    mixed = generator(z, mixing_z=mixing_z, crossover=2, noise_mode="const").numpy()
    np.testing.assert_allclose(no_crossover, unmixed, atol=1e-6)
    assert np.abs(mixed - unmixed).max() > 1e-5


# === Discriminator ===


def test_minibatch_stddev_known_values():
    # Sample n is constant n: the std over a group is the population std of its indices.
    for n, group_members in [(4, [0, 1, 2, 3]), (6, [0, 2, 4]), (1, [0])]:
        x = np.tile(np.arange(n, dtype=np.float32)[:, None, None, None], (1, 2, 2, 3))
        out = sg2.minibatch_stddev(tf.constant(x)).numpy()
        assert out.shape == (n, 2, 2, 4)
        expected = math.sqrt(np.var(group_members) + 1e-8)
        np.testing.assert_allclose(out[..., 3], expected, rtol=1e-5)
        np.testing.assert_array_equal(out[..., :3], x)


def test_discriminator_any_batch_size():
    discriminator = sg2.StyleGAN2Discriminator(resolution=32, width=1 / 32)
    for n in (1, 3, 4, 6):
        assert discriminator(tf.random.normal((n, 32, 32, 3))).shape == (n, 1)


# === Losses ===


def test_losses_known_values():
    zeros = tf.zeros((4, 1))
    np.testing.assert_allclose(sg2_losses.d_logistic_loss(zeros, zeros), 2 * math.log(2), 1e-6)
    np.testing.assert_allclose(sg2_losses.g_nonsaturating_loss(zeros), math.log(2), rtol=1e-6)
    real, fake = tf.constant([[2.0], [-1.0]]), tf.constant([[0.5]])
    expected = np.mean(np.log1p(np.exp([-2.0, 1.0]))) + np.log1p(np.exp(0.5))
    np.testing.assert_allclose(sg2_losses.d_logistic_loss(real, fake), expected, rtol=1e-6)
    grads = np.zeros((2, 2, 2, 3), np.float32)
    grads[0, 0, 0, 0], grads[1, 1, 1, 2] = 3.0, 1.0
    np.testing.assert_allclose(sg2_losses.r1_penalty(grads), (9.0 + 1.0) / 2, rtol=1e-6)
    # Path lengths: sqrt(mean over layers of the squared norms) = sqrt((4 + 0) / 2).
    ws_grads = np.zeros((1, 2, 3), np.float32)
    ws_grads[0, 0, :2] = [2.0, 0.0]
    np.testing.assert_allclose(sg2_losses.path_lengths(ws_grads), [math.sqrt(2.0)], rtol=1e-6)
    penalty, new_mean = sg2_losses.path_length_penalty(tf.constant([1.0, 3.0]), 0.0, decay=0.5)
    np.testing.assert_allclose(new_mean, 1.0)
    np.testing.assert_allclose(penalty, (0.0 + 4.0) / 2)
    np.testing.assert_allclose(
        sg2_losses.path_length_noise_scale(tf.zeros((1, 4, 4, 3))), 0.25, rtol=1e-6
    )


def test_r1_positive_for_nonconstant_discriminator():
    discriminator = sg2.StyleGAN2Discriminator(resolution=16, width=1 / 32)
    real = tf.random.normal((2, 16, 16, 3))
    with tf.GradientTape() as tape:
        tape.watch(real)
        total = tf.reduce_sum(discriminator(real))
    r1 = float(sg2_losses.r1_penalty(tape.gradient(total, real)))
    assert np.isfinite(r1) and r1 > 0


# === Training model ===


def _tiny_config(**overrides):
    defaults = dict(resolution=16, z_dim=8, w_dim=8, r1_interval=2, pl_interval=2, seed=3)
    return PRESETS["tiny"].replace(**{**defaults, **overrides})


def _values(variables):
    return [v.numpy().copy() for v in variables]


def test_ema_rampup_caps_the_half_life_by_the_images_seen():
    """StyleGAN2-ADA's ramp-up: beta = 0.5 ** (batch / min(half-life, rampup * images seen))."""
    gan = StyleGAN2GAN.from_run_config(_tiny_config(ema_rampup=0.05), for_training=False)
    assert gan.ema_rampup == 0.05 and gan.batch_size == 4
    assert float(gan.current_ema_beta()) == 0.0  # step 0: the EMA takes G as it is
    for step, seen in ((10, 40), (1000, 4000), (100000, 400000)):
        gan.step.assign(step)
        half_life = min(10000.0, 0.05 * seen)
        expected = 0.5 ** (4 / half_life)
        assert float(gan.current_ema_beta()) == pytest.approx(expected, rel=1e-5), step
    assert float(gan.current_ema_beta()) == pytest.approx(ema_decay(4, 10.0), rel=1e-6)  # capped
    # The demo's 3,144 tiny steps: a half-life of 629 images, not 10,000 (which kept 42 % of
    # the random initialisation).
    gan.step.assign(3144)
    assert float(gan.current_ema_beta()) == pytest.approx(0.5 ** (4 / 628.8), rel=1e-5)
    fixed = StyleGAN2GAN.from_run_config(_tiny_config(ema_rampup=0.0), for_training=False)
    fixed.step.assign(10)
    assert float(fixed.current_ema_beta()) == pytest.approx(0.5 ** (4 / 10000), rel=1e-6)
    assert PRESETS["stylegan2_256"].ema_rampup == 0.0  # Synthesis in Style's (rosinality's) EMA


def test_presets_registered():
    from training import registry

    tiny, reference = PRESETS["tiny"], registry.preset("stylegan2", "stylegan2_256")
    assert isinstance(reference, StyleGAN2Config)
    assert tiny.resolution == 32 and reference.resolution == 256
    assert (reference.channel_multiplier, reference.batch_size, reference.lr) == (2, 8, 0.001)
    assert reference.lr_schedule == "cosine" and reference.max_steps == 100000
    with pytest.raises(ValueError, match="preset"):
        registry.preset("stylegan2", "ffhq")


def test_train_steps_lazy_regularisation_ema_and_determinism(tmp_path):
    keras.utils.set_random_seed(0)
    gan = StyleGAN2GAN.from_run_config(_tiny_config())
    keras.utils.set_random_seed(0)
    twin = StyleGAN2GAN.from_run_config(_tiny_config())
    # Adam adjusted for lazy regularisation: c = k / (k + 1) with k = 2 here.
    c = 2 / 3
    assert math.isclose(float(gan.g_optimizer.learning_rate), 0.002 * c, rel_tol=1e-6)
    assert math.isclose(float(gan.d_optimizer.beta_2), 0.99**c, rel_tol=1e-6)
    assert float(gan.d_optimizer.beta_1) == 0.0
    assert math.isclose(gan.ema_beta, 0.5 ** (4 / 10000))
    counts = gan.parameter_counts()
    assert counts["generator"] == counts["mapping"] + counts["synthesis"]
    assert counts["generator"] == _count(gan.generator) and counts["discriminator"] > 0
    for ema_variable, variable in zip(gan.generator_ema.weights, gan.generator.weights):
        np.testing.assert_array_equal(ema_variable.numpy(), variable.numpy())
    assert not gan.generator_ema.trainable_weights

    images = tf.constant(np.random.RandomState(0).uniform(-1, 1, (4, 16, 16, 3)), tf.float32)
    g_before, d_before = (
        _values(gan.generator.trainable_weights),
        _values(gan.discriminator.trainable_weights),
    )
    ema_before = _values(gan.generator_ema.weights)
    history = []
    for _ in range(3):
        history.append({k: float(v) for k, v in gan.train_step({"image": images}).items()})
        gan.step.assign_add(1)
    for losses in history:
        assert all(np.isfinite(v) for v in losses.values()), losses
    # Lazy regularisation on steps 0 and 2 (interval 2), not on step 1.
    assert history[0]["r1"] > 0 and history[2]["r1"] > 0 and history[1]["r1"] == 0
    assert history[0]["pl"] > 0 and history[2]["pl"] > 0 and history[1]["pl"] == 0
    assert history[1]["pl_mean"] == history[0]["pl_mean"] > 0
    assert history[2]["pl_mean"] != history[1]["pl_mean"]
    assert float(gan.pl_mean.numpy()) == pytest.approx(history[2]["pl_mean"])
    for before, variable in zip(g_before, gan.generator.trainable_weights):
        if variable.name != "noise_strength":
            assert not np.array_equal(before, variable.numpy()), variable.path
    assert all(
        not np.array_equal(b, v.numpy()) for b, v in zip(d_before, gan.discriminator.weights)
    )
    # EMA moved towards G, by the rule ema = g + beta (ema - g).
    moved = [
        not np.array_equal(b, v.numpy()) for b, v in zip(ema_before, gan.generator_ema.weights)
    ]
    assert sum(moved) >= len(moved) - len(gan.generator.synthesis.convs)  # noise buffers fixed
    ema_now, g_now = _values(gan.generator_ema.weights), _values(gan.generator.weights)
    beta = float(gan.current_ema_beta())
    gan._update_ema()
    for e0, g, ema_variable, variable in zip(
        ema_now, g_now, gan.generator_ema.weights, gan.generator.weights
    ):
        expected = g + beta * (e0 - g) if variable.trainable else e0
        np.testing.assert_allclose(ema_variable.numpy(), expected, rtol=1e-6, atol=1e-7)

    # Same (seed, step) and initial weights -> the same losses.
    twin_losses = {k: float(v) for k, v in twin.train_step({"image": images}).items()}
    for name, value in history[0].items():
        assert twin_losses[name] == pytest.approx(value, rel=1e-5, abs=1e-6), name

    # Samples from the EMA generator: a pure function of z (constant noise), truncation works.
    z = tf.random.normal((2, 8))
    np.testing.assert_array_equal(gan.sample(z).numpy(), gan.sample(z).numpy())
    assert gan.sample(z, truncation_psi=0.5).shape == (2, 16, 16, 3)

    # A checkpoint restores the EMA generator into an inference-only model.
    path = tf.train.Checkpoint(**gan.checkpoint_objects()).save(str(tmp_path / "ckpt"))
    inference = StyleGAN2GAN.from_run_config(_tiny_config(), for_training=False)
    tf.train.Checkpoint(**inference.checkpoint_objects()).restore(path).expect_partial()
    assert int(inference.step.numpy()) == 3
    assert inference.generator is None
    assert inference.parameter_counts()["generator"] == counts["generator"]
    np.testing.assert_array_equal(inference.sample(z).numpy(), gan.sample(z).numpy())


def test_config_errors_and_schedules():
    with pytest.raises(ValueError, match="mixed_precision"):
        StyleGAN2GAN.from_run_config(
            _tiny_config(mixed_precision="mixed_float16"), for_training=False
        )
    with pytest.raises(ValueError, match="lr_schedule"):
        StyleGAN2GAN.from_run_config(_tiny_config(lr_schedule="step"), for_training=False)
    gan = StyleGAN2GAN.from_run_config(
        _tiny_config(lr_schedule="cosine", max_steps=100, pl_weight=0.0)
    )
    # G without path-length regularisation: c = 1; D with R1 every 2 steps: c = 2 / 3.
    assert math.isclose(float(gan.g_optimizer.learning_rate), 0.002, rel_tol=1e-6)
    assert math.isclose(float(gan.d_optimizer.learning_rate), 0.002 * 2 / 3, rel_tol=1e-6)
    gan.g_optimizer.iterations.assign(100)
    assert float(gan.g_optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)
    gan.g_optimizer.iterations.assign(50)
    assert float(gan.g_optimizer.learning_rate) == pytest.approx(0.001, rel=1e-5)
    assert ema_decay(32, 10) == pytest.approx(0.99778, abs=1e-5)
    assert ema_decay(8, 0) == 0.0


_MIRRORED_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from models.stylegan2.config import PRESETS
    from models.stylegan2.trainer import StyleGAN2GAN
    config = PRESETS["tiny"].replace(resolution=8, mapping_layers=1, z_dim=8,
                                     w_dim=8, r1_interval=2, pl_interval=2, batch_size=4, seed=0)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    keras.utils.set_random_seed(0)
    with strategy.scope():
        gan = StyleGAN2GAN.from_run_config(config)
    ema_before = [v.numpy().copy() for v in gan.generator_ema.weights]
    images = np.random.RandomState(0).uniform(-1, 1, (4, 8, 8, 3)).astype("float32")
    dataset = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors({"image": images}).repeat()
    )
    iterator = iter(dataset)

    @tf.function
    def train_step(iterator):
        # As training/loop.py: one trace, the step incremented outside the replica function.
        per_replica = strategy.run(gan.train_step, args=(next(iterator),))
        gan.step.assign_add(1)
        return {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                for k, v in per_replica.items()}

    history = [{k: float(v) for k, v in train_step(iterator).items()} for _ in range(3)]
    for losses in history:
        assert all(np.isfinite(v) for v in losses.values()), losses
    assert history[0]["r1"] > 0 and history[1]["r1"] == 0 and history[2]["r1"] > 0, history
    assert history[0]["pl"] > 0 and history[1]["pl"] == 0, history
    # Every replica holds the same EMA weights and pl_mean, and the EMA moved.
    for variable in gan.generator_ema.weights:
        copies = [c.numpy() for c in variable.value.values]
        np.testing.assert_array_equal(copies[0], copies[1])
    pl_copies = [c.numpy() for c in gan.pl_mean.values]
    assert pl_copies[0] == pl_copies[1] > 0, pl_copies
    assert any(not np.array_equal(b, v.numpy())
               for b, v in zip(ema_before, gan.generator_ema.weights))
    print("OK")
    """
)


@pytest.mark.slow
def test_train_step_under_mirrored_strategy():
    # A fresh process: logical CPU devices must be configured before TF initialises.
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-c", _MIRRORED_SCRIPT],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("OK")
