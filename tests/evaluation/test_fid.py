"""FID / KID known answers (evaluation/fid.py) and the Inception feature extractor."""

import numpy as np
import pytest

from evaluation import fid
from evaluation.fid import FeatureStats, FIDImagesError


def _random_rotation(d, seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q * np.sign(np.diag(r))  # [d, d] orthogonal


def _diagonal_closed_form(mu1, var1, mu2, var2):
    """FD of N(mu1, diag(var1)) and N(mu2, diag(var2)): commuting covariances."""
    return float(np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2))


def test_frechet_distance_of_diagonal_gaussians_is_the_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    var1, var2 = rng.uniform(0.1, 3.0, 6), rng.uniform(0.1, 3.0, 6)
    expected = _diagonal_closed_form(mu1, var1, mu2, var2)
    got = fid.frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2))
    assert got == pytest.approx(expected, rel=1e-10)
    # One dimension by hand: (1 - 4)^2 + (sqrt(4) - sqrt(9))^2 = 9 + 1.
    assert fid.frechet_distance([1.0], [[4.0]], [4.0], [[9.0]]) == pytest.approx(10.0)


def test_frechet_distance_is_rotation_invariant():
    # Rotating both Gaussians by one R leaves the distance alone, so full (non-diagonal)
    # covariances R diag(v) R^T have the diagonal closed form too.
    rng = np.random.default_rng(1)
    d = 8
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    var1, var2 = rng.uniform(0.1, 3.0, d), rng.uniform(0.1, 3.0, d)
    rotation = _random_rotation(d, 2)
    got = fid.frechet_distance(
        rotation @ mu1,
        rotation @ np.diag(var1) @ rotation.T,
        rotation @ mu2,
        rotation @ np.diag(var2) @ rotation.T,
    )
    assert got == pytest.approx(_diagonal_closed_form(mu1, var1, mu2, var2), rel=1e-9)


def test_frechet_distance_matches_scipy_sqrtm_for_non_commuting_covariances():
    linalg = pytest.importorskip("scipy.linalg")  # not a dependency; only the reference here
    rng = np.random.default_rng(3)
    d = 10
    a, b = rng.normal(size=(d, 2 * d)), rng.normal(size=(d, 2 * d))
    sigma1, sigma2 = a @ a.T / d, b @ b.T / d
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    covmean = linalg.sqrtm(sigma1 @ sigma2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(sigma1 + sigma2 - 2 * covmean)
    assert fid.frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_handles_singular_covariances_and_checks_shapes():
    rng = np.random.default_rng(4)
    features = rng.normal(size=(5, 20))  # 5 images in 20 dimensions: rank-4 covariances
    other = rng.normal(size=(5, 20)) + 1.0
    assert fid.fid_from_features(features, features) == pytest.approx(0.0, abs=1e-9)
    value = fid.fid_from_features(features, other)
    assert np.isfinite(value) and value > 20.0  # the means alone differ by sqrt(20)
    with pytest.raises(ValueError, match=r"sigma2 must be \[3, 3\]"):
        fid.frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(4))
    with pytest.raises(ValueError, match="mu1 and mu2"):
        fid.frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(3))


def test_feature_stats_stream_equals_the_two_pass_statistics():
    rng = np.random.default_rng(5)
    # A large common offset is where a naive sum-of-squares covariance loses every digit.
    features = rng.normal(size=(103, 7)) * rng.uniform(0.5, 2.0, 7) + 1e6
    stats = FeatureStats()
    for start, stop in [(0, 1), (1, 11), (11, 11), (11, 60), (60, 103)]:
        stats.update(features[start:stop])
    assert stats.count == 103 and stats.dim == 7
    np.testing.assert_allclose(stats.mean, features.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.covariance(), np.cov(features, rowvar=False), rtol=1e-7)
    assert not stats.covariance_full_rank or stats.count > stats.dim
    with pytest.raises(ValueError, match="features were not kept"):
        _ = stats.features
    with pytest.raises(ValueError, match="dim 3"):
        stats.update(np.zeros((2, 3)))


def test_fid_of_a_set_with_itself_is_zero_and_too_few_images_are_refused():
    rng = np.random.default_rng(6)
    features = rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16))
    assert fid.fid_from_features(features, features) == pytest.approx(0.0, abs=1e-8)
    one = FeatureStats(name="--real_dir=r")
    one.update(features[:1])
    many = FeatureStats(name="--synth_dir=s")
    many.update(features)
    with pytest.raises(FIDImagesError, match=r"at least 2 images per set.*--real_dir=r has 1"):
        fid.fid_from_stats(one, many)
    with pytest.raises(FIDImagesError, match="--real_dir=r has 1"):
        fid.kid_from_features(features[:1], features, names=("--real_dir=r", "s"))


def _mmd2_by_loops(x, y):
    """The unbiased MMD^2 written out term by term."""
    m, d = len(x), x.shape[1]

    def k(a, b):
        return (float(np.dot(a, b)) / d + 1.0) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2.0 * xy


def test_kid_equals_the_direct_computation():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(9, 5)), rng.normal(size=(9, 5)) + 0.5
    expected = _mmd2_by_loops(x, y)
    assert fid.mmd2_unbiased(x, y) == pytest.approx(expected, rel=1e-10)
    # One subset of all n images is the whole set, in some order: the same value.
    mean, std = fid.kid_from_features(x, y, num_subsets=1, subset_size=1000)
    assert mean == pytest.approx(expected, rel=1e-10) and std == 0.0
    # Subsets of 4: each value is the loop formula on the drawn rows (same generator).
    rng_subsets = np.random.default_rng(11)
    values = [
        _mmd2_by_loops(
            x[rng_subsets.choice(9, 4, replace=False)], y[rng_subsets.choice(9, 4, replace=False)]
        )
        for _ in range(5)
    ]
    mean, std = fid.kid_from_features(x, y, num_subsets=5, subset_size=4, seed=11)
    assert mean == pytest.approx(np.mean(values), rel=1e-10)
    assert std == pytest.approx(np.std(values), rel=1e-8)


def test_kid_of_one_distribution_is_zero_in_expectation():
    rng = np.random.default_rng(8)
    same = [
        fid.mmd2_unbiased(rng.normal(size=(20, 8)), rng.normal(size=(20, 8))) for _ in range(300)
    ]
    standard_error = np.std(same) / np.sqrt(len(same))
    assert abs(np.mean(same)) < 4 * standard_error  # unbiased: no systematic offset
    shifted = [
        fid.mmd2_unbiased(rng.normal(size=(20, 8)), rng.normal(size=(20, 8)) + 0.5)
        for _ in range(50)
    ]
    assert np.mean(shifted) > 20 * standard_error


# ---------------------------------------------------------------------------------------------
# Inception
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_inception():
    from evaluation.inception import InceptionFeatures

    return InceptionFeatures("random", seed=0, batch_size=2)


def test_inception_random_features_shape_batching_and_files(random_inception, tmp_path):
    from PIL import Image

    from evaluation.inception import FEATURE_DIM

    assert not random_inception.comparable
    rng = np.random.default_rng(9)
    images = rng.integers(0, 256, (3, 40, 48, 3)).astype(np.uint8)
    features = random_inception(images)  # batches of 2 and 1
    assert features.shape == (3, FEATURE_DIM) and features.dtype == np.float32
    assert np.all(np.isfinite(features)) and features.std() > 1e-2  # not collapsed to zero
    np.testing.assert_allclose(random_inception(images[1:2]), features[1:2], rtol=1e-4, atol=1e-5)
    # Floats in [-1, 1] (our pipelines' images) are the same pixels.
    np.testing.assert_allclose(
        random_inception(images / 127.5 - 1.0), features, rtol=1e-4, atol=1e-4
    )
    paths = []
    for index, image in enumerate(images):
        paths.append(str(tmp_path / f"{index}.png"))
        Image.fromarray(image).save(paths[-1])
    stats = random_inception.stats_from_files(paths, name="three")
    assert stats.count == 3
    np.testing.assert_allclose(stats.features, features, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stats.mean, features.mean(axis=0), rtol=1e-4, atol=1e-5)


def test_inception_weights_errors(monkeypatch, tmp_path):
    from evaluation import inception

    missing = tmp_path / "missing_inception.h5"
    with pytest.raises(FileNotFoundError, match="missing_inception.h5"):
        inception.build_inception(str(missing))
    wrong = tmp_path / "weights.bin"
    wrong.write_bytes(b"x")
    with pytest.raises(inception.InceptionWeightsError, match=r"weights.bin.*\.h5"):
        inception.build_inception(str(wrong))

    def offline(weights):
        raise Exception(
            "URL fetch failure on https://storage.googleapis.com/...: None -- "
            "[Errno -2] Name or service not known"
        )

    monkeypatch.setattr(inception, "_keras_inception", offline)
    with pytest.raises(
        inception.InceptionWeightsError, match=r"--inception_weights=imagenet.*offline.*local file"
    ):
        inception.build_inception("imagenet")


@pytest.mark.slow
def test_inception_loads_a_local_weights_file(random_inception, tmp_path):
    from evaluation.inception import InceptionFeatures

    path = str(tmp_path / "inception.weights.h5")
    random_inception.model.save_weights(path)
    loaded = InceptionFeatures(path)
    assert loaded.comparable
    images = np.random.default_rng(10).integers(0, 256, (2, 32, 32, 3)).astype(np.uint8)
    np.testing.assert_allclose(loaded(images), random_inception(images), rtol=1e-5, atol=1e-6)
