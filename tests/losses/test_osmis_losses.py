"""OSMIS losses against direct NumPy computations on small tensors."""

import numpy as np
import pytest
import tensorflow as tf

from losses import osmis as osmis_losses


def _sigmoid_bce(x, target):
    return np.mean(np.maximum(x, 0) - x * target + np.log1p(np.exp(-np.abs(x))))


def test_adversarial_losses_match_numpy():
    x = np.random.RandomState(0).randn(2, 3, 4, 1).astype("float32") * 2
    for real in (True, False):
        got = osmis_losses.adversarial_loss(x, real, True, "bce").numpy()
        np.testing.assert_allclose(got, _sigmoid_bce(x, float(real)), rtol=1e-5)
    np.testing.assert_allclose(
        osmis_losses.adversarial_loss(x, True, True, "hinge"), np.mean(np.maximum(0, 1 - x)), 1e-5
    )
    np.testing.assert_allclose(
        osmis_losses.adversarial_loss(x, False, True, "hinge"), np.mean(np.maximum(0, 1 + x)), 1e-5
    )
    np.testing.assert_allclose(
        osmis_losses.adversarial_loss(x, True, False, "hinge"), -np.mean(x), 1e-5
    )
    # The generator's BCE loss targets real, like D's loss on reals.
    np.testing.assert_allclose(
        osmis_losses.adversarial_loss(x, True, False, "bce"), _sigmoid_bce(x, 1.0), 1e-5
    )
    with pytest.raises(ValueError, match="wgan"):
        osmis_losses.adversarial_loss(x, True, True, "wgan")


def _content_reference(logits, masks, real):
    """Weighted CE as PyTorch's cross_entropy(weight=w): sum w_t nll / sum w_t."""
    n, k = masks.shape[0], masks.shape[-1]
    counts = masks.sum(axis=(0, 1, 2))
    weights = np.concatenate([np.where(counts > 0, 1 / np.maximum(counts, 1e-30), 0.0), [1.0]])
    num = den = 0.0
    for row in range(logits.shape[0]):
        target = row // n if real else k
        for y in range(logits.shape[1]):
            for x in range(logits.shape[2]):
                z = logits[row, y, x].astype(np.float64)
                nll = -(z[target] - np.log(np.sum(np.exp(z))))
                num += weights[target] * nll
                den += weights[target]
    return num / den


def test_content_segmentation_loss_matches_numpy():
    rng = np.random.RandomState(1)
    n, k = 2, 3
    classes = rng.randint(0, 2, (n, 4, 4))  # class 2 absent: weight 0
    masks = np.eye(k, dtype="float32")[classes]  # [N, 4, 4, K]
    logits = rng.randn(k * n, 1, 1, k + 1).astype("float32")
    for real in (True, False):
        got = osmis_losses.content_segmentation_loss(logits, masks, real).numpy()
        np.testing.assert_allclose(got, _content_reference(logits, masks, real), rtol=1e-5)
    weights = osmis_losses.content_class_weights(masks).numpy()
    assert weights[2] == 0 and weights[-1] == 1
    np.testing.assert_allclose(weights[0], 1 / (classes == 0).sum(), rtol=1e-6)


def test_diversity_loss_matches_numpy():
    rng = np.random.RandomState(2)
    features = [rng.randn(3, 2, 2, 4).astype("float32"), rng.randn(3, 4, 4, 2).astype("float32")]
    total = 0.0
    for f in features:
        for a in range(3):
            for b in range(a + 1, 3):
                total += np.mean(np.abs(f[a] - f[b]))
    num_blocks = len(features)
    expected = -total * 2 / (num_blocks * (num_blocks - 1))
    np.testing.assert_allclose(osmis_losses.diversity_loss(features), expected, rtol=1e-5)
    mean = np.mean(
        [
            np.mean([np.mean(np.abs(f[a] - f[b])) for a in range(3) for b in range(a + 1, 3)])
            for f in features
        ]
    )
    np.testing.assert_allclose(osmis_losses.mean_pairwise_distance(features), mean, rtol=1e-5)
    # Identical samples: no diversity; the loss gradient pushes them apart.
    same = tf.Variable(np.ones((2, 2, 2, 1), "float32") * np.array([1, 1.1]).reshape(2, 1, 1, 1))
    with tf.GradientTape() as tape:
        loss = osmis_losses.diversity_loss([same, same])
    grad = tape.gradient(loss, same).numpy()
    assert grad[0].mean() > 0 > grad[1].mean()  # descent lowers sample 0, raises sample 1
    with pytest.raises(ValueError, match="2 blocks"):
        osmis_losses.diversity_loss(features[:1])


def test_branch_weights():
    assert osmis_losses.branch_weights(4) == {"low_level": 0.25, "content": 0.125, "layout": 0.125}
