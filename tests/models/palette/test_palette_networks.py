"""Tests for models/palette/networks.py: every layer through run_layer_test, the assisted
activation's proportion property, equalised learning rate, progressive fade-in continuity."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from layer_testing import run_layer_test

from models.palette.networks import (
    AssistedActivation,
    EqualizedConv2D,
    EqualizedDense,
    PartialLayoutGenerator,
    PixelNorm,
    ProgressiveDiscriminator,
    ProgressiveLayoutGenerator,
    level_channels,
    upsample2x,
)

TINY = dict(num_classes=5, num_levels=3, channel_base=16, max_channels=8)


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)


def _palettes(rng, n, c):
    return rng.dirichlet(np.ones(c), size=n).astype("float32")


def test_equalized_conv2d_layer_scales_at_run_time():
    x = np.random.randn(2, 4, 8, 3).astype("float32")
    layer = run_layer_test(
        EqualizedConv2D, {"filters": 6, "kernel_size": 3}, x, expected_output_shape=(2, 4, 8, 6)
    )
    # He's constant applied at run time: the stored weights stay N(0, 1).
    assert layer.scale == pytest.approx(math.sqrt(2) / math.sqrt(3 * 3 * 3))
    expected = tf.nn.conv2d(x, layer.kernel * layer.scale, 1, "SAME") + layer.bias
    np.testing.assert_allclose(layer(x), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="odd"):
        EqualizedConv2D(4, 2)


def test_equalized_dense_layer():
    x = np.random.randn(3, 10).astype("float32")
    layer = run_layer_test(
        EqualizedDense, {"units": 4, "gain": 1.0}, x, expected_output_shape=(3, 4)
    )
    np.testing.assert_allclose(
        layer(x), x @ (layer.kernel.numpy() / math.sqrt(10)) + layer.bias.numpy(), rtol=1e-5
    )


def test_pixel_norm_layer_gives_unit_rms_features():
    x = np.random.randn(2, 3, 4, 6).astype("float32") * 5
    layer = run_layer_test(PixelNorm, {}, x, expected_output_shape=x.shape)
    np.testing.assert_allclose(np.mean(layer(x).numpy() ** 2, axis=-1), 1.0, rtol=1e-4)


def test_assisted_activation_layer():
    rng = np.random.default_rng(0)
    inputs = {
        "logits": rng.normal(size=(2, 4, 8, 5)).astype("float32"),
        "proportions": _palettes(rng, 2, 5),
    }
    run_layer_test(AssistedActivation, {}, inputs, expected_output_shape=[(2, 4, 8, 5)] * 2)


def test_assisted_activation_class_mass_equals_the_target():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 6, 12, 4)).astype("float32") * 3
    target = _palettes(rng, 3, 4)
    layout, mask = AssistedActivation()(logits, target)
    # Each class's mask covers exactly its target share of the H * W pixels.
    np.testing.assert_allclose(mask.numpy().sum(axis=(1, 2)) / (6 * 12), target, rtol=1e-5)
    np.testing.assert_allclose(layout.numpy().sum(-1), 1.0, rtol=1e-5)  # per-pixel distributions
    # Where the masks already sum to 1 per pixel (spread loss 0) the layout is the mask itself,
    # so the soft layout's class mass is the target: logits = log of a layout with that mass.
    soft = rng.dirichlet(np.ones(4), size=(1, 6, 12)).astype("float32")  # [1, 6, 12, 4]
    mass = soft.mean(axis=(1, 2))  # [1, 4]
    layout, mask = AssistedActivation()(np.log(soft), mass)
    np.testing.assert_allclose(mask, soft, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(layout.numpy().mean(axis=(1, 2)), mass, rtol=1e-4)


def test_layout_generator_layer():
    rng = np.random.default_rng(2)
    inputs = {"z": rng.normal(size=(2, 8)).astype("float32"), "proportions": _palettes(rng, 2, 5)}
    shapes = [(2, 16, 32, 5), [(2, 4, 8, 5), (2, 8, 16, 5), (2, 16, 32, 5)]]
    run_layer_test(
        ProgressiveLayoutGenerator,
        {"z_dim": 8, **TINY},
        inputs,
        expected_output_shape=[shapes[0], shapes[1], shapes[1]],
        call_kwargs={"alpha": 0.5},
    )


def test_discriminator_layer():
    rng = np.random.default_rng(3)
    layout = rng.dirichlet(np.ones(5), size=(4, 16, 32)).astype("float32")
    run_layer_test(
        ProgressiveDiscriminator,
        TINY,
        layout,
        expected_output_shape=(4, 1),
        call_kwargs={"alpha": 0.5},
        allow_zero_gradients=("level0_from_layout",),  # level 0's input conv: unused at level 2
    )


def test_generator_widths_and_level_sizes_follow_the_paper():
    # min(512, 2**(12 - level)): 512 up to level 3, then 256, 128.
    assert [level_channels(k) for k in range(6)] == [512, 512, 512, 512, 256, 128]
    g = ProgressiveLayoutGenerator(num_classes=19, z_dim=512)
    assert [g.size(k) for k in range(6)] == [
        (4, 8),
        (8, 16),
        (16, 32),
        (32, 64),
        (64, 128),
        (128, 256),
    ]


def test_generator_fade_in_is_continuous():
    rng = np.random.default_rng(4)
    g = ProgressiveLayoutGenerator(z_dim=8, **TINY)
    z, p = rng.normal(size=(3, 8)).astype("float32"), _palettes(rng, 3, 5)
    previous, _, _ = g(z, p, level=1, alpha=1.0)
    start, layouts, masks = g(z, p, level=2, alpha=0.0)
    # Growing to level 2 starts from exactly the level-1 output, upsampled ...
    np.testing.assert_allclose(start, upsample2x(previous), rtol=1e-6, atol=1e-7)
    assert len(layouts) == len(masks) == 3
    # ... ends at the new level's own output, and blends linearly in between.
    end, _, _ = g(z, p, level=2, alpha=1.0)
    np.testing.assert_allclose(end, layouts[2], rtol=1e-6)
    middle, _, _ = g(z, p, level=2, alpha=0.25)
    np.testing.assert_allclose(middle, 0.25 * end + 0.75 * start, rtol=1e-5, atol=1e-6)
    assert not np.allclose(end, start, atol=1e-3)
    # Every level's output is a per-pixel distribution whose masks hold the target mass.
    for layout, mask in zip(layouts, masks):
        np.testing.assert_allclose(layout.numpy().sum(-1), 1.0, rtol=1e-5)
        hw = mask.shape[1] * mask.shape[2]
        np.testing.assert_allclose(mask.numpy().sum(axis=(1, 2)) / hw, p, rtol=1e-4)
    with pytest.raises(ValueError, match="level"):
        g(z, p, level=3)


def test_discriminator_fade_in_is_continuous():
    rng = np.random.default_rng(5)
    d = ProgressiveDiscriminator(**TINY)
    layout = rng.dirichlet(np.ones(5), size=(4, 16, 32)).astype("float32")
    # At alpha 0 the level-2 critic is the level-1 critic on the 2x average-pooled input.
    pooled = tf.nn.avg_pool2d(layout, 2, 2, "VALID")
    np.testing.assert_allclose(
        d(layout, level=2, alpha=0.0), d(pooled, level=1, alpha=1.0), rtol=1e-5, atol=1e-6
    )
    assert not np.allclose(d(layout, level=2, alpha=1.0), d(pooled, level=1), atol=1e-4)


def _partial_inputs(rng, n=2, c=5, size=(16, 32), band=(10, 20)):
    layout = np.eye(c, dtype="float32")[rng.integers(0, c, size=(n, *size))]
    keep = np.ones((n, *size, 1), "float32")
    keep[:, :, band[0] : band[1]] = 0.0
    delta = np.zeros((n, c), "float32")
    delta[:, 0], delta[:, 1] = 0.1, -0.1
    return {
        "z": rng.normal(size=(n, 8)).astype("float32"),
        "layout": layout,
        "keep": keep,
        "delta": delta,
    }


def test_partial_layout_generator_layer():
    inputs = _partial_inputs(np.random.default_rng(6))
    shapes = [(2, 4, 8, 5), (2, 8, 16, 5), (2, 16, 32, 5)]
    run_layer_test(
        PartialLayoutGenerator,
        {"z_dim": 8, "spade_hidden": 4, **TINY},
        inputs,
        expected_output_shape=[shapes[2], shapes, shapes],
        call_kwargs={"alpha": 0.5},
    )


def test_partial_layout_generator_keeps_the_input_outside_the_band():
    inputs = _partial_inputs(np.random.default_rng(7))
    g = PartialLayoutGenerator(z_dim=8, spade_hidden=4, **TINY)
    out, layouts, _ = g(**inputs)
    out = out.numpy()
    outside = inputs["keep"][..., 0] == 1
    np.testing.assert_allclose(out[outside], inputs["layout"][outside], atol=1e-6)
    assert not np.allclose(out[~outside], inputs["layout"][~outside], atol=1e-3)
    np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-5)
