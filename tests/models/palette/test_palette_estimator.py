"""Tests for models/palette/estimator.py: proportions, the AIC choice, sampling, files."""

import json

import numpy as np
import pytest

from models.palette.estimator import PaletteEstimator, PaletteEstimatorError, proportions
from semantic_labels import LabelSet, load_label_set


def _label_set(names, name="toy"):
    colors = [[10 * i, 0, 0] for i in range(len(names))]
    return LabelSet(name, tuple(names), colors, tuple(range(len(names))), None)


TOY = _label_set(["road", "sky", "car", "tree"])


def _known_mixture(rng, n_per=150):
    """Palettes from 3 well separated Dirichlet-like clusters on the simplex."""
    centres = np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]])
    rows = [rng.dirichlet(200 * c, size=n_per) for c in centres]
    return np.concatenate(rows)


def test_proportions_counts_labelled_pixels_only():
    label = np.array([[0, 0, 1, 255], [2, 2, 2, 255]])
    np.testing.assert_allclose(proportions(label, 4), [2 / 6, 1 / 6, 3 / 6, 0])
    batch = proportions(np.stack([label, np.full((2, 4), 255)]), 4)
    assert batch.shape == (2, 4)
    np.testing.assert_array_equal(batch[1], 0)  # no labelled pixel: a row of zeros
    with pytest.raises(ValueError, match=r"\[7\]"):
        proportions(np.array([[0, 7]]), 4)


def test_fit_recovers_the_number_of_components_by_aic():
    palettes = _known_mixture(np.random.default_rng(0))
    estimator = PaletteEstimator.fit(palettes, TOY, max_components=6)
    assert estimator.num_components == 3
    assert sorted(estimator.aic) == [1, 2, 3, 4, 5, 6]
    assert min(estimator.aic, key=estimator.aic.get) == 3
    np.testing.assert_allclose(sorted(estimator.weights), [1 / 3] * 3, atol=0.02)


def test_sample_is_on_the_simplex_and_keeps_minimums():
    estimator = PaletteEstimator.fit(_known_mixture(np.random.default_rng(1)), TOY, 4)
    draws = estimator.sample(500, np.random.default_rng(0))
    assert draws.shape == (500, 4) and draws.dtype == np.float32
    assert draws.min() >= 0 and draws.max() <= 1
    np.testing.assert_allclose(draws.sum(1), 1, atol=1e-5)
    again = estimator.sample(500, np.random.default_rng(0))
    np.testing.assert_array_equal(draws, again)  # a function of the rng
    minimums = np.array([0.0, 0.0, 0.3, 0.0])  # "at least 30 % cars"
    forced = estimator.sample(200, np.random.default_rng(2), minimums=minimums)
    assert forced[:, 2].min() >= 0.3 - 1e-6
    np.testing.assert_allclose(forced.sum(1), 1, atol=1e-5)
    with pytest.raises(ValueError, match="minimums"):
        estimator.sample(2, np.random.default_rng(0), minimums=[0.6, 0.6, 0, 0])


def test_log_likelihood_equals_scikit_learn():
    from sklearn.mixture import GaussianMixture

    palettes = _known_mixture(np.random.default_rng(3), 60)
    estimator = PaletteEstimator.fit(palettes, TOY, max_components=3)
    gmm = GaussianMixture(estimator.num_components, covariance_type="full", random_state=0)
    gmm.fit(palettes)
    np.testing.assert_allclose(
        estimator.log_likelihood(palettes[:20]), gmm.score_samples(palettes[:20]), rtol=1e-6
    )


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_save_load_round_trip_and_another_label_set_is_refused(tmp_path, suffix):
    estimator = PaletteEstimator.fit(_known_mixture(np.random.default_rng(4), 40), TOY, 3)
    path = str(tmp_path / f"estimator{suffix}")
    estimator.save(path)
    loaded = PaletteEstimator.load(path, label_set=TOY)
    assert loaded.class_names == TOY.names and loaded.label_set_name == "toy"
    np.testing.assert_allclose(loaded.means, estimator.means)
    np.testing.assert_array_equal(
        loaded.sample(5, np.random.default_rng(0)), estimator.sample(5, np.random.default_rng(0))
    )
    with pytest.raises(PaletteEstimatorError, match=r"'toy' with 4 classes.*'cityscapes'.*road"):
        PaletteEstimator.load(path, label_set=load_label_set("cityscapes"))


def test_load_names_the_bad_file(tmp_path):
    with pytest.raises(PaletteEstimatorError, match="does not exist"):
        PaletteEstimator.load(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"weights": [1.0]}))
    with pytest.raises(PaletteEstimatorError, match=r"bad.json is not a palette estimator"):
        PaletteEstimator.load(str(bad))
    bad.write_text("{not json")
    with pytest.raises(PaletteEstimatorError, match="unreadable"):
        PaletteEstimator.load(str(bad))
