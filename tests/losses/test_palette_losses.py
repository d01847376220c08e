"""Tests for losses/palette.py: every loss against a NumPy reference on small tensors."""

import numpy as np
import pytest
import tensorflow as tf

from losses import palette as losses


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def test_wgan_losses_match_numpy(rng):
    real, fake = rng.normal(size=(4, 1)), rng.normal(size=(6, 1))
    np.testing.assert_allclose(losses.wgan_d_loss(real, fake), fake.mean() - real.mean(), 1e-6)
    np.testing.assert_allclose(losses.wgan_g_loss(fake), -fake.mean(), 1e-6)
    np.testing.assert_allclose(losses.drift_penalty(real), np.mean(real**2), 1e-6)
    assert losses.wgan_d_loss(real.astype(np.float16), fake).dtype == tf.float32


def test_interpolate_uses_one_epsilon_per_sample(rng):
    real, fake = rng.normal(size=(3, 2, 4, 5)), rng.normal(size=(3, 2, 4, 5))
    eps = np.array([0.0, 0.25, 1.0])
    got = losses.interpolate(tf.constant(real, tf.float32), fake, eps).numpy()
    np.testing.assert_allclose(
        got,
        eps[:, None, None, None] * real + (1 - eps[:, None, None, None]) * fake,
        rtol=1e-5,
        atol=1e-6,
    )


def test_gradient_penalty_matches_numpy_and_autodiff(rng):
    # A quadratic critic D(x) = sum(w * x^2) per sample: grad = 2 w x, known in closed form.
    w = rng.normal(size=(2, 4, 3)).astype(np.float32)
    x = rng.normal(size=(5, 2, 4, 3)).astype(np.float32)
    x_t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        total = tf.reduce_sum(w * x_t**2)
    penalty = losses.gradient_penalty(tape.gradient(total, x_t))
    norms = np.sqrt(((2 * w * x) ** 2).reshape(5, -1).sum(axis=1))
    np.testing.assert_allclose(float(penalty), np.mean((norms - 1) ** 2), rtol=1e-5)
    # A unit-norm linear critic has penalty 0.
    unit = np.zeros((2, 3, 4), np.float32)
    unit[0, 0, 0] = 1.0
    assert float(losses.gradient_penalty(np.repeat(unit[None], 4, 0))) == pytest.approx(0, abs=1e-6)


def test_pixel_entropy_matches_numpy(rng):
    layout = _softmax(rng.normal(size=(2, 3, 4, 5)) * 2)
    expected = np.mean(-(layout * np.log(layout)).sum(-1))
    np.testing.assert_allclose(float(losses.pixel_entropy(layout)), expected, rtol=1e-5)
    one_hot = np.eye(5)[rng.integers(0, 5, size=(2, 3, 4))]
    assert float(losses.pixel_entropy(one_hot)) == pytest.approx(0.0, abs=1e-5)
    uniform = np.full((1, 2, 2, 5), 0.2)
    assert float(losses.pixel_entropy(uniform)) == pytest.approx(np.log(5), rel=1e-5)


def test_spread_loss_matches_numpy(rng):
    mask = rng.uniform(size=(2, 3, 4, 5))
    expected = np.mean((mask.sum(-1) - 1) ** 2)
    np.testing.assert_allclose(float(losses.spread_loss(mask)), expected, rtol=1e-5)
    assert float(losses.spread_loss(_softmax(mask))) == pytest.approx(0.0, abs=1e-6)


def test_proportion_kl_matches_numpy(rng):
    layout = _softmax(rng.normal(size=(3, 4, 6, 5)))
    target = _softmax(rng.normal(size=(3, 5)))
    achieved = layout.mean(axis=(1, 2))
    expected = np.mean((target * np.log(target / achieved)).sum(-1))
    np.testing.assert_allclose(float(losses.proportion_kl(layout, target)), expected, rtol=1e-4)
    assert float(losses.proportion_kl(layout, achieved)) == pytest.approx(0.0, abs=1e-5)
