"""evaluation/palette_metrics.py: known answers of every class-proportion metric."""

import math

import numpy as np
import pytest

from evaluation import palette_metrics as pm


def test_proportions_count_classes_and_skip_ignored_pixels():
    label = np.array([[0, 0, 1, 255], [2, 2, 2, 255]], np.uint8)
    np.testing.assert_allclose(pm.proportions(label, 4), [2 / 6, 1 / 6, 3 / 6, 0.0])
    batch = pm.proportions(np.stack([label, np.full((2, 4), 3, np.uint8)]), 4)
    assert batch.shape == (2, 4)
    np.testing.assert_allclose(batch[1], [0, 0, 0, 1])
    np.testing.assert_allclose(batch.sum(axis=1), 1.0)
    with pytest.raises(ValueError, match=r"label values \[7\] are outside the 4 classes"):
        pm.proportions(np.array([[7, 0]]), 4)
    with pytest.raises(ValueError, match="no labelled pixel"):
        pm.proportions(np.full((2, 2), 255), 4)


def test_kl_js_mae_known_answers():
    target = np.array([[0.5, 0.5, 0.0], [0.25, 0.25, 0.5]])
    achieved = np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]])
    # Identical palettes: exactly 0 for all three, epsilon or not.
    assert pm.kl_divergence(target[:1], achieved[:1])[0] == 0.0
    assert pm.js_divergence(target[:1], achieved[:1])[0] == 0.0
    assert pm.mae(target[:1], achieved[:1])[0] == 0.0
    # Hand example: MAE = (0.25 + 0.25 + 0.5) / 3.
    assert pm.mae(target, achieved)[1] == pytest.approx(1.0 / 3.0)
    # JS of disjoint supports is ln 2; symmetric.
    p, q = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    assert pm.js_divergence(p, q)[0] == pytest.approx(math.log(2.0))
    js = pm.js_divergence(target, achieved)
    np.testing.assert_allclose(js, pm.js_divergence(achieved, target))
    # JS by hand for row 1: m = (0.375, 0.375, 0.25).
    m = np.array([0.375, 0.375, 0.25])
    by_hand = 0.5 * (
        np.sum(target[1] * np.log(target[1] / m))
        + np.sum(achieved[1, :2] * np.log(achieved[1, :2] / m[:2]))
    )
    assert js[1] == pytest.approx(by_hand)
    # KL with the epsilon: a class asked for and missing costs log(t / eps), finite.
    kl = pm.kl_divergence(target, achieved)
    eps = pm.EPSILON
    t = (target[1] + eps) / (1 + 3 * eps)
    a = (achieved[1] + eps) / (1 + 3 * eps)
    assert kl[1] == pytest.approx(np.sum(t * np.log(t / a)))
    assert kl[1] > pm.kl_divergence(achieved, target)[1]  # not symmetric
    metrics = pm.target_metrics(target, achieved)
    assert set(metrics) == {"kl", "js", "mae"} and metrics["kl"].shape == (2,)
    with pytest.raises(ValueError, match="one shape"):
        pm.mae(target, achieved[:1])


def test_set_distances_zero_for_identical_sets_symmetric_and_hand_examples():
    rng = np.random.default_rng(0)
    a = rng.dirichlet(np.ones(4), 12)
    b = rng.dirichlet(np.ones(4) * 3, 8)
    assert pm.emd(a, a) == {"value": 0.0, "method": "exact"}
    assert pm.palette_frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    forward, backward = pm.emd(a, b), pm.emd(b, a)
    assert forward["method"] == "exact"  # lcm(12, 8) = 24 points
    assert forward["value"] == pytest.approx(backward["value"])
    assert pm.palette_frechet_distance(a, b) == pytest.approx(pm.palette_frechet_distance(b, a))
    # Hand example: every point moves from (1, 0) to (0, 1): sqrt(2) (L2), 2 (L1).
    one = np.array([[1.0, 0.0], [1.0, 0.0]])
    other = np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])  # unequal sizes: 6 points
    assert pm.emd(one, other)["value"] == pytest.approx(math.sqrt(2.0))
    assert pm.emd(one, other, ground="l1")["value"] == pytest.approx(2.0)
    # Shifting a set by d moves the Frechet mean term by |d|^2 only.
    shifted = a + np.array([0.1, 0.1, 0.0, 0.0])  # (not palettes any more: any vectors work)
    assert pm.palette_frechet_distance(a, shifted) == pytest.approx(0.02, abs=1e-9)


def test_sliced_emd_for_large_sets_and_in_one_dimension(monkeypatch):
    # In 1-D every direction is +-1: the sliced value is the exact 1-D Wasserstein distance.
    a = np.array([[0.0], [1.0], [2.0]])
    b = np.array([[0.5], [1.5]])
    # Quantiles: a steps 0, 1, 2 at thirds; b 0.5, 1.5 at halves -> 1/3 * 0.5 + 1/6 * 0.5 +
    # 1/6 * 0.5 + 1/3 * 0.5 = 0.5.
    assert pm.sliced_wasserstein(a, b) == pytest.approx(0.5)
    assert pm.emd(a, b)["value"] == pytest.approx(0.5)  # exact agrees
    monkeypatch.setattr(pm, "EXACT_EMD_MAX_POINTS", 4)
    result = pm.emd(a, b)
    assert result == {"value": pytest.approx(0.5), "method": "sliced"}
    rng = np.random.default_rng(1)
    c = rng.dirichlet(np.ones(5), 7)
    assert pm.sliced_wasserstein(c, c) == pytest.approx(0.0)


class _Estimator:
    """A density with per-sample log-likelihood -|x|_1 (the protocol of gmm_log_likelihood)."""

    def log_likelihood(self, palettes):
        return -np.abs(palettes).sum(axis=1)


def test_gmm_log_likelihood_accepts_both_protocols_and_fit_gmm_prefers_the_data():
    palettes = np.array([[0.5, 0.5], [1.0, 0.0]])
    assert pm.gmm_log_likelihood(_Estimator(), palettes) == pytest.approx(-1.0)
    with pytest.raises(TypeError, match="neither log_likelihood"):
        pm.gmm_log_likelihood(object(), palettes)
    rng = np.random.default_rng(2)
    real = rng.dirichlet([8.0, 2.0, 1.0], 60)
    gmm = pm.fit_gmm(real, max_components=3)
    assert 1 <= gmm.n_components <= 3
    close = rng.dirichlet([8.0, 2.0, 1.0], 30)
    far = rng.dirichlet([1.0, 2.0, 8.0], 30)
    assert pm.gmm_log_likelihood(gmm, close) > pm.gmm_log_likelihood(gmm, far)
    # With few palettes the mixture stays small (one component per 10 palettes).
    assert pm.fit_gmm(real[:19]).n_components == 1
