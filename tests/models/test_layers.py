"""Tests for models/layers.py: SNConv2D, InstanceNormalization, param_free_norm, helpers.

Every layer runs through the shared `run_layer_test` (tests/layer_testing.py); the other tests
check what is specific to it (NumPy references, spectral norm, batch-norm equivalence)."""

import ast
import glob
import importlib
import inspect
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

from models.layers import (
    InstanceNormalization,
    ParamFreeBatchNorm,
    SNConv2D,
    leaky_relu,
    one_hot_conv,
    param_free_norm,
    resize_nearest,
    spectral_norm_conv2d,
    xavier_normal_init,
)


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)


def _numpy_conv(x, kernel, stride, pad):
    """Reference NHWC cross-correlation with symmetric zero padding (PyTorch semantics)."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    kh, kw, _, cout = kernel.shape
    n, h, w, _ = x.shape
    out_h, out_w = (h - kh) // stride + 1, (w - kw) // stride + 1
    out = np.zeros((n, out_h, out_w, cout), np.float64)
    for i in range(out_h):
        for j in range(out_w):
            patch = x[:, i * stride : i * stride + kh, j * stride : j * stride + kw, :]
            out[:, i, j, :] = np.einsum("nhwc,hwco->no", patch, kernel)
    return out


def _top_singular_value(kernel):
    return np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]


# --- helpers ---------------------------------------------------------------------------------


def test_xavier_normal_init_matches_torch_std():
    kernel = xavier_normal_init(0.02)((3, 3, 64, 128)).numpy()
    fan_in, fan_out = 3 * 3 * 64, 3 * 3 * 128
    expected_std = 0.02 * np.sqrt(2.0 / (fan_in + fan_out))
    assert abs(kernel.std() / expected_std - 1) < 0.02
    assert abs(kernel.mean()) < 0.05 * expected_std
    # Untruncated: a normal sample of this size has values beyond 2 std.
    assert np.abs(kernel).max() > 3 * expected_std


def test_resize_nearest_uses_pytorch_sampling_grid():
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    down = resize_nearest(x, (2, 2)).numpy()[0, :, :, 0]
    # floor(dst * 2): top-left pixel of each 2x2 block (tf.image.resize would take the centre).
    np.testing.assert_array_equal(down, [[0, 2], [8, 10]])
    up = resize_nearest(x[:, :2, :2], (4, 4)).numpy()[0, :, :, 0]
    np.testing.assert_array_equal(up, np.repeat(np.repeat([[0, 1], [4, 5]], 2, 0), 2, 1))


def test_resize_nearest_dynamic_size_in_tf_function():
    @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)] * 2)
    def resize_like(images, reference):
        return resize_nearest(images, tf.shape(reference)[1:3])

    out = resize_like(tf.ones((2, 8, 8, 3)), tf.zeros((2, 5, 7, 3)))
    assert out.shape == (2, 5, 7, 3)


# --- SNConv2D ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, expected_hw",
    [
        ({"padding": "same", "kernel_size": 3}, (32, 24)),
        ({"padding": "valid", "kernel_size": 3}, (30, 22)),
        ({"padding": 1, "strides": 2, "kernel_size": 3}, (16, 12)),
        ({"padding": 2, "strides": 2, "kernel_size": 4}, (17, 13)),  # discriminator
        ({"padding": 0, "kernel_size": 1, "spectral_norm": False}, (32, 24)),
        (
            {
                "kernel_size": (3, 5),
                "strides": 2,
                "padding": 2,
                "use_bias": False,
                "power_iterations": 2,
                "kernel_initializer": xavier_normal_init(),
            },
            (17, 12),
        ),
    ],
)
def test_snconv2d_layer(kwargs, expected_hw):
    x = np.random.randn(2, 32, 24, 4).astype("float32")
    run_layer_test(
        SNConv2D, {"filters": 8, **kwargs}, x, expected_output_shape=(2, *expected_hw, 8)
    )


def test_snconv2d_matches_numpy_conv_with_symmetric_padding():
    # padding=1, stride 2 is the reference's encoder conv; Keras "same" would shift the windows.
    conv = SNConv2D(5, 3, strides=2, padding=1, spectral_norm=False, bias_initializer="ones")
    x = np.random.randn(2, 8, 6, 3).astype("float32")
    out = conv(x).numpy()
    expected = _numpy_conv(x, conv.kernel.numpy(), stride=2, pad=1) + 1.0
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    same = SNConv2D(5, 3, strides=2, padding="same", spectral_norm=False, use_bias=False)
    same.build(x.shape)
    same.kernel.assign(conv.kernel)
    assert same(x).shape == out.shape
    assert not np.allclose(same(x).numpy(), out - 1.0, atol=1e-3)


@pytest.mark.parametrize("size", [1, 3, 5])
def test_one_hot_conv_equals_conv_over_one_hot_values_and_gradients(size):
    # Labels 6 and -1 are outside [0, 6): tf.one_hot gives them all-zero rows, so must the lookup.
    classes, channels = 6, 4
    labels = tf.constant(np.random.randint(-1, classes + 1, size=(2, 7, 5)), tf.int32)
    kernel = tf.Variable(np.random.randn(size, size, classes, channels).astype("float32"))
    bias = tf.Variable(np.random.randn(channels).astype("float32"))
    weights = tf.constant(np.random.randn(2, 7, 5, channels).astype("float32"))
    results = []
    for function in (
        lambda: one_hot_conv(labels, kernel, bias),
        lambda: tf.nn.conv2d(tf.one_hot(labels, classes), kernel, 1, "SAME") + bias,
    ):
        with tf.GradientTape() as tape:
            out = function()
            loss = tf.reduce_sum(out * weights)
        results.append([out.numpy()] + [g.numpy() for g in tape.gradient(loss, [kernel, bias])])
    for lookup, conv in zip(*results):
        np.testing.assert_allclose(lookup, conv, rtol=1e-5, atol=1e-5)
    assert np.abs(results[1][1]).max() > 0.1  # a real kernel gradient was compared
    assert tf.function(one_hot_conv)(labels, kernel).shape == (2, 7, 5, channels)
    with pytest.raises(ValueError, match="k odd"):
        one_hot_conv(labels, tf.zeros((2, 2, classes, channels)))


@pytest.mark.parametrize("kernel_size, strides, padding", [((4, 4), 2, 2), ((3, 2), (2, 1), 0)])
def test_one_hot_conv_strided_with_explicit_padding_equals_conv(kernel_size, strides, padding):
    classes, channels = 5, 3
    labels = tf.constant(np.random.randint(-1, classes + 1, size=(2, 9, 8)), tf.int32)
    kernel = tf.Variable(np.random.randn(*kernel_size, classes, channels).astype("float32"))
    stride_pair = strides if isinstance(strides, tuple) else (strides, strides)
    pads = [[0, 0], [padding, padding], [padding, padding], [0, 0]]
    results = []
    for function in (
        lambda: one_hot_conv(labels, kernel, strides=strides, padding=padding),
        lambda: tf.nn.conv2d(
            tf.pad(tf.one_hot(labels, classes), pads), kernel, [1, *stride_pair, 1], "VALID"
        ),
    ):
        with tf.GradientTape() as tape:
            out = function()
            loss = tf.reduce_sum(
                out * tf.reshape(tf.range(tf.size(out), dtype=tf.float32), out.shape)
            )
        results.append([out.numpy(), tape.gradient(loss, kernel).numpy()])
    assert results[0][0].shape == results[1][0].shape
    for lookup, conv in zip(*results):
        np.testing.assert_allclose(lookup, conv, rtol=1e-5, atol=1e-3)
    with pytest.raises(ValueError, match="padding"):
        one_hot_conv(labels, kernel, padding="valid")


def test_snconv2d_call_on_labels_equals_call_on_one_hot():
    conv = SNConv2D(5, 3, padding=1, spectral_norm=True, bias_initializer="ones")
    labels = np.random.randint(0, 4, size=(2, 6, 9))
    one_hot = np.eye(4, dtype="float32")[labels]  # [N, H, W, 4]
    expected = conv(one_hot).numpy()  # builds; inference: the stored sigma, no state change
    np.testing.assert_allclose(conv.call_on_labels(labels).numpy(), expected, rtol=1e-5, atol=1e-5)
    strided = SNConv2D(5, 3, strides=2, padding=1)
    strided.build(one_hot.shape)
    with pytest.raises(ValueError, match="stride 1"):
        strided.call_on_labels(labels)


def test_snconv2d_spectral_norm_adds_only_state():
    conv = SNConv2D(8, 3, use_bias=True)
    conv.build((None, 16, 16, 4))
    assert conv.count_params() == 3 * 3 * 4 * 8 + 8 + (8 + 3 * 3 * 4)
    trainable = sum(int(np.prod(w.shape)) for w in conv.trainable_weights)
    assert trainable == 3 * 3 * 4 * 8 + 8
    assert [tuple(w.shape) for w in conv.non_trainable_weights] == [(1, 8), (1, 36)]
    np.testing.assert_allclose(np.linalg.norm(conv.u.numpy()), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(conv.v.numpy()), 1.0, rtol=1e-5)
    plain = SNConv2D(8, 3, use_bias=False, spectral_norm=False)
    plain.build((None, 16, 16, 4))
    assert plain.count_params() == 3 * 3 * 4 * 8
    assert not plain.non_trainable_weights


def test_snconv2d_output_is_conv_with_kernel_over_sigma():
    conv = SNConv2D(6, 3, padding=1, use_bias=False)
    x = np.random.randn(1, 7, 7, 4).astype("float32")
    out = conv(x).numpy()
    kernel = conv.kernel.numpy()
    u, v = conv.u.numpy()[0], conv.v.numpy()[0]
    sigma = v @ kernel.reshape(-1, 6) @ u
    expected = _numpy_conv(x, kernel / sigma, stride=1, pad=1)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_snconv2d_sigma_converges_to_largest_singular_value():
    conv = SNConv2D(8, 3, kernel_initializer="glorot_normal")
    x = np.random.randn(2, 8, 8, 4).astype("float32")
    conv(x)
    raw_sigma = _top_singular_value(conv.kernel.numpy())
    assert abs(_top_singular_value(conv.normalized_kernel().numpy()) - 1) > 1e-3
    train_call = tf.function(lambda t: conv(t, training=True))
    # One power-iteration step per call; convergence speed depends on the gap between the top two
    # singular values (about 1.11 vs 1.05 for this seed), so give it plenty of steps.
    for _ in range(80):
        train_call(x)
    effective = conv.normalized_kernel().numpy()
    np.testing.assert_allclose(_top_singular_value(effective), 1.0, atol=1e-3)
    np.testing.assert_allclose(effective * raw_sigma, conv.kernel.numpy(), rtol=1e-3, atol=1e-6)


def test_snconv2d_inference_is_deterministic_and_leaves_state():
    conv = SNConv2D(8, 3)
    x = np.random.randn(2, 8, 8, 4).astype("float32")
    conv(x, training=True)
    u, v = conv.u.numpy().copy(), conv.v.numpy().copy()
    first = conv(x, training=False).numpy()
    second = tf.function(lambda t: conv(t, training=False))(x).numpy()
    third = conv(x).numpy()  # training=None counts as inference
    np.testing.assert_array_equal(conv.u.numpy(), u)
    np.testing.assert_array_equal(conv.v.numpy(), v)
    np.testing.assert_allclose(first, second, atol=1e-6)
    np.testing.assert_array_equal(first, third)
    conv(x, training=True)
    assert not np.array_equal(conv.u.numpy(), u)


def test_snconv2d_gradient_flows_through_sigma():
    conv = SNConv2D(6, 3, use_bias=False)
    x = tf.constant(np.random.randn(2, 6, 6, 4).astype("float32"))
    weights = tf.constant(np.random.randn(2, 6, 6, 6).astype("float32"))
    conv(x)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(conv(x, training=False) * weights)
    grad = tape.gradient(loss, conv.kernel.value).numpy()

    # Expected: L = <G, W / sigma>, sigma = v^T W u (u, v fixed) =>
    # dL/dW = G / sigma - <G, W> / sigma^2 * v u^T.
    kernel = conv.kernel.numpy()
    u, v = conv.u.numpy()[0], conv.v.numpy()[0]
    sigma = v @ kernel.reshape(-1, 6) @ u
    effective = tf.Variable(kernel / sigma)
    with tf.GradientTape() as tape:
        out = tf.nn.conv2d(x, effective, strides=1, padding="SAME")
        loss_eff = tf.reduce_sum(out * weights)
    g_eff = tape.gradient(loss_eff, effective).numpy()  # dL / d(W / sigma)
    expected = g_eff / sigma - np.sum(g_eff * kernel) / sigma**2 * np.outer(v, u).reshape(
        kernel.shape
    )
    np.testing.assert_allclose(grad, expected, rtol=1e-3, atol=1e-6)
    # Without the sigma term the gradient would be plainly different.
    assert not np.allclose(grad, g_eff / sigma, rtol=1e-2, atol=1e-6)


@pytest.mark.parametrize(
    "strides, padding", [((1, 1), "same"), ((2, 2), "valid"), ((2, 1), "same")]
)
def test_spectral_norm_conv2d_equals_autodiff_of_conv_with_kernel_over_sigma(strides, padding):
    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(size=(2, 9, 8, 5)).astype("float32"))
    kernel = tf.constant(rng.normal(size=(3, 4, 5, 6)).astype("float32"))
    u = tf.constant(rng.normal(size=(1, 6)).astype("float32"))
    v = tf.constant(rng.normal(size=(1, 3 * 4 * 5)).astype("float32"))

    def reference(x, kernel):
        sigma = tf.reduce_sum(tf.matmul(v, tf.reshape(kernel, (-1, 6))) * u)
        return tf.nn.conv2d(x, kernel / sigma, [1, *strides, 1], padding.upper())

    def ours(x, kernel):
        return spectral_norm_conv2d(x, kernel, u, v, strides, padding)

    out_shape = reference(x, kernel).shape
    weights = tf.constant(rng.normal(size=out_shape).astype("float32"))
    results = []
    for function in (reference, ours, tf.function(ours)):
        with tf.GradientTape() as tape:
            tape.watch([x, kernel])
            out = function(x, kernel)
            loss = tf.reduce_sum(out * weights)
        results.append([out.numpy(), *[g.numpy() for g in tape.gradient(loss, [x, kernel])]])
    for result in results[1:]:
        for got, expected in zip(result, results[0]):
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_leaky_relu_equals_tf_leaky_relu_values_and_gradients():
    x = tf.constant(
        np.concatenate([np.random.randn(50), [0.0, -0.0, 1e-30, -1e-30]]).astype("float32")
    )
    weights = tf.constant(np.random.randn(54).astype("float32"))
    results = []
    for function in (lambda t: leaky_relu(t, 0.2), lambda t: tf.nn.leaky_relu(t, alpha=0.2)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = function(x)
            loss = tf.reduce_sum(out * weights)
        results.append([out.numpy(), tape.gradient(loss, x).numpy()])
    for got, expected in zip(*results):
        np.testing.assert_array_equal(got, expected)
    assert leaky_relu(tf.constant([1.0], tf.bfloat16)).dtype == tf.bfloat16
    with pytest.raises(ValueError, match="negative_slope"):
        leaky_relu(x, 0.0)


def test_snconv2d_mixed_precision_sigma_in_float32():
    conv = SNConv2D(8, 3, dtype="mixed_bfloat16")
    x = np.random.randn(2, 8, 8, 4).astype("float32")
    out = conv(x, training=True)
    assert out.dtype == tf.bfloat16
    assert conv.kernel.dtype == "float32" and conv.u.dtype == "float32"
    assert conv.normalized_kernel().dtype == tf.float32


@pytest.mark.parametrize(
    "kwargs, named",
    [
        ({"padding": "full"}, "padding"),
        ({"padding": -1}, "padding"),
        ({"power_iterations": 0}, "power_iterations"),
        ({"strides": 0}, "strides"),
    ],
)
def test_snconv2d_bad_arguments(kwargs, named):
    with pytest.raises(ValueError, match=named):
        SNConv2D(4, 3, **kwargs)


# --- normalisation --------------------------------------------------------------------------


def test_instance_norm_zero_mean_unit_variance():
    x = np.random.randn(3, 16, 12, 5).astype("float32") * 4 + 7
    out = InstanceNormalization()(x).numpy()
    np.testing.assert_allclose(out.mean(axis=(1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(out.var(axis=(1, 2)), 1.0, atol=1e-3)
    expected = (x - x.mean(axis=(1, 2), keepdims=True)) / np.sqrt(
        x.var(axis=(1, 2), keepdims=True) + 1e-5
    )
    np.testing.assert_allclose(out, expected, atol=1e-4)


def test_instance_norm_mixed_bfloat16_keeps_dtype_and_is_accurate():
    x = np.random.randn(2, 32, 32, 4).astype("float32") * 3 + 50
    out = InstanceNormalization(dtype="mixed_bfloat16")(x)
    assert out.dtype == tf.bfloat16
    stats = tf.cast(out, tf.float32).numpy()
    np.testing.assert_allclose(stats.mean(axis=(1, 2)), 0.0, atol=0.05)
    np.testing.assert_allclose(stats.std(axis=(1, 2)), 1.0, atol=0.05)


def test_instance_norm_layer():
    x = np.random.randn(2, 8, 12, 3).astype("float32")
    layer = run_layer_test(
        InstanceNormalization,
        {"epsilon": 1e-3, "name": "inorm"},
        x,
        expected_output_shape=(2, 8, 12, 3),
    )
    assert layer.count_params() == 0


@pytest.mark.parametrize("synchronized", [False, True])
def test_param_free_batch_norm_layer(synchronized):
    x = np.random.randn(4, 8, 6, 3).astype("float32")
    layer = run_layer_test(
        ParamFreeBatchNorm, {"synchronized": synchronized}, x, expected_output_shape=x.shape
    )
    assert not layer.trainable_weights


@pytest.mark.parametrize("kind", ["instance", "batch", "syncbatch"])
def test_param_free_norm_kinds(kind):
    layer = param_free_norm(kind, name=f"{kind}_norm")
    x = np.random.randn(4, 8, 8, 3).astype("float32") * 2 + 1
    out = layer(x, training=True).numpy()
    assert layer.name == f"{kind}_norm"
    assert not layer.trainable_weights  # affine off
    if kind == "instance":
        assert isinstance(layer, InstanceNormalization)
        np.testing.assert_allclose(out.mean(axis=(1, 2)), 0.0, atol=1e-4)
    else:
        assert isinstance(layer, keras.layers.BatchNormalization)
        assert layer.synchronized == (kind == "syncbatch")
        assert (layer.momentum, layer.epsilon) == (0.9, 1e-5)
        np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
        np.testing.assert_allclose(out.var(axis=(0, 1, 2)), 1.0, atol=1e-3)
        # Moving averages move by 1 - momentum = 0.1 of the batch statistics; the variance's
        # is the unbiased one (ddof=1), as PyTorch's BatchNorm updates it.
        np.testing.assert_allclose(
            layer.moving_mean.numpy(), 0.1 * x.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-5
        )
        np.testing.assert_allclose(
            layer.moving_variance.numpy(), 0.9 + 0.1 * x.var(axis=(0, 1, 2), ddof=1), rtol=1e-5
        )


@pytest.mark.parametrize("synchronized", [False, True])
@pytest.mark.parametrize("graph", [False, True])
def test_param_free_batch_norm_equals_keras_batch_norm(synchronized, graph):
    # Values, input gradients and moving mean of Keras' BatchNormalization(center=False,
    # scale=False), in training and inference, from a hand-written gradient; the moving variance
    # is updated with the unbiased batch variance (PyTorch's), Keras' with the biased one.
    x = tf.constant(np.random.randn(3, 5, 4, 6).astype("float32") * 2 + 1)
    weights = tf.constant(np.random.randn(3, 5, 4, 6).astype("float32"))
    layers = [
        ParamFreeBatchNorm(momentum=0.9, epsilon=1e-5, synchronized=synchronized),
        keras.layers.BatchNormalization(
            center=False, scale=False, momentum=0.9, epsilon=1e-5, synchronized=synchronized
        ),
    ]
    results = []
    for layer in layers:

        def forward_backward(x, layer=layer):
            with tf.GradientTape() as tape:
                tape.watch(x)
                out = layer(x, training=True)
                loss = tf.reduce_sum(out * weights)
            return out, tape.gradient(loss, x)

        run = tf.function(forward_backward) if graph else forward_backward
        out, grad = run(x)
        results.append(
            [
                out.numpy(),
                grad.numpy(),
                layer.moving_mean.numpy(),
                layer.moving_variance.numpy(),
                layer(x, training=False).numpy(),
            ]
        )
    n = 3 * 5 * 4  # values per channel
    ours, keras_bn = results
    # Keras: 0.9 + 0.1 * biased; ours: 0.9 + 0.1 * biased * n / (n - 1).
    keras_bn[3] = 0.9 + (keras_bn[3] - 0.9) * n / (n - 1)
    for got, expected in zip(ours[:4], keras_bn[:4]):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(  # inference with our moving statistics
        ours[4], (x.numpy() - ours[2]) / np.sqrt(ours[3] + 1e-5), rtol=1e-4, atol=1e-4
    )
    assert np.abs(results[1][1]).max() > 0.1  # a real gradient was compared
    assert not layers[0].trainable_weights
    with pytest.raises(ValueError, match="center"):
        ParamFreeBatchNorm(center=True)


def test_param_free_norm_unknown_kind():
    with pytest.raises(ValueError, match="groupnorm"):
        param_free_norm("groupnorm")


# --- every layer goes through the shared helper -----------------------------------------------


def _classes_given_to_run_layer_test():
    """Class names that the test files pass to `run_layer_test`: its first argument, or the
    first entry of each tuple of a `LAYER_CASES` table (the parametrised form)."""
    names = set()
    for path in glob.glob(os.path.join(REPO_ROOT, "tests", "**", "*.py"), recursive=True):
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "run_layer_test":
                candidates = node.args[:1]
            elif isinstance(node, ast.Assign) and any(
                getattr(target, "id", "") == "LAYER_CASES" for target in node.targets
            ):
                candidates = [case.elts[0] for case in node.value.elts]
            else:
                continue
            for candidate in candidates:  # `SNConv2D` or `sg2.EqualDense`
                names.add(getattr(candidate, "id", getattr(candidate, "attr", None)))
    return names


def test_every_network_layer_goes_through_run_layer_test():
    # Shared layers and each family's networks (a new family's networks.py is picked up).
    modules = ["models.layers"] + [
        f"models.{os.path.basename(os.path.dirname(path))}.networks"
        for path in glob.glob(os.path.join(REPO_ROOT, "models", "*", "networks.py"))
    ]
    layers = set()
    for name in modules:
        module = importlib.import_module(name)
        layers.update(
            cls.__name__
            for _, cls in inspect.getmembers(module, inspect.isclass)
            if issubclass(cls, keras.layers.Layer) and cls.__module__ == name
        )
    assert len(layers) >= 24
    untested = sorted(layers - _classes_given_to_run_layer_test())
    assert not untested, f"layers without a run_layer_test (tests/layer_testing.py): {untested}"


_MIRRORED_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from models.layers import SNConv2D, param_free_norm
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        conv = SNConv2D(4, 3)
        norm = param_free_norm("syncbatch")
        conv.build((None, 8, 8, 3))
        norm.build((None, 8, 8, 4))
    u0 = conv.u.numpy().copy()
    x = np.random.RandomState(0).randn(4, 8, 8, 3).astype("float32")
    dataset = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(x))

    @tf.function
    def step(batch):
        return strategy.run(lambda t: norm(conv(t, training=True), training=True), args=(batch,))

    for batch in dataset:
        out = step(batch)
    local = [t.numpy() for t in strategy.experimental_local_results(out)]
    assert len(local) == 2
    full = np.concatenate(local)
    # Synchronised: global (not per-replica) batch statistics.
    assert np.abs(full.mean(axis=(0, 1, 2))).max() < 1e-4, full.mean(axis=(0, 1, 2))
    assert np.abs(local[0].mean(axis=(0, 1, 2))).max() > 1e-3
    replicas_u = [v.numpy() for v in conv.u.value.values]  # MirroredVariable copies
    assert not np.allclose(replicas_u[0], u0)
    np.testing.assert_array_equal(replicas_u[0], replicas_u[1])

    # The synchronised norm's hand-written gradient: each replica's input gradient is its
    # slice of the gradient of Keras' batch norm over the global batch.
    with strategy.scope():
        sync_norm = param_free_norm("syncbatch")
        sync_norm.build((None, 8, 8, 3))
    weights = np.random.RandomState(1).randn(4, 8, 8, 3).astype("float32")
    pairs = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors((x, weights)))

    @tf.function
    def grad_step(batch):
        def replica_fn(t, w):
            with tf.GradientTape() as tape:
                tape.watch(t)
                loss = tf.reduce_sum(sync_norm(t, training=True) * w)
            return tape.gradient(loss, t)
        return strategy.run(replica_fn, args=batch)

    for batch in pairs:
        grads = grad_step(batch)
    got = np.concatenate([g.numpy() for g in strategy.experimental_local_results(grads)])
    keras_norm = tf.keras.layers.BatchNormalization(center=False, scale=False, epsilon=1e-5)
    full_x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(full_x)
        loss = tf.reduce_sum(keras_norm(full_x, training=True) * weights)
    expected = tape.gradient(loss, full_x).numpy()
    assert np.abs(expected).max() > 0.1
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    # The moving variance takes the unbiased variance of the global batch (n = 4 * 8 * 8 values
    # per channel over both replicas), on every replica's copy.
    for copy in sync_norm.moving_variance.value.values:
        np.testing.assert_allclose(
            copy.numpy(), 0.9 + 0.1 * x.var(axis=(0, 1, 2), ddof=1), rtol=1e-5
        )
    print("OK")
    """
)


def test_syncbatch_and_spectral_norm_under_mirrored_strategy():
    # A fresh process: logical CPU devices must be configured before TF initialises.
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-c", _MIRRORED_SCRIPT],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("OK")


def test_param_free_batch_norm_backward_is_accurate_for_nearly_constant_gradients():
    """float32 vs float64 input gradients of the same batch norm: behind a GAN loss the upstream
    gradient is often nearly constant per channel, and g - mean(g) cancels most digits; the
    two-pass centring keeps the float32 gradient within 4e-5 of float64 (one pass: ~9e-5)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 16, 16, 8)) * 3 + 1
    upstream = 1.0 + 1e-3 * rng.standard_normal(x.shape)

    def input_gradient(dtype):
        norm = ParamFreeBatchNorm(dtype=dtype)
        inputs = tf.constant(x, dtype)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = tf.reduce_sum(tf.cast(norm(inputs, training=True), tf.float64) * upstream)
        return tape.gradient(loss, inputs).numpy().astype(np.float64)

    single, double = input_gradient("float32"), input_gradient("float64")
    relative = np.linalg.norm(single - double) / np.linalg.norm(double)
    assert relative < 4e-5, relative
