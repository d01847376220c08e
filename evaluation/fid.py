"""Frechet Inception Distance (FID) and Kernel Inception Distance (KID) from features (numpy).

FID (Heusel et al. 2017) fits a Gaussian to each set of Inception features and measures

    FID = ||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2)).

KID (Binkowski et al. 2018) is the unbiased estimate of the squared MMD between the two sets
with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets; it
has no Gaussian assumption and no bias in the number of images, so small sets can be compared.

The feature statistics stream: `FeatureStats.update` merges each batch into a running mean and
sum of squared deviations in float64 (Chan et al.'s pairwise update), so a covariance over
tens of thousands of 2048-d features is as accurate as the two-pass formula and no batch of
images is kept. KID needs the features themselves ([n, 2048] float32, 8 KiB per image), so
`FeatureStats(keep_features=True)` also keeps them.

How many images FID needs (the rule enforced here): at least MIN_IMAGES = 2 per set, below
which no covariance exists (FIDImagesError). With n <= d images (d = 2048 for Inception) the
covariance has rank < d; FID is still defined and computed, but biased upwards and not
comparable to published values, which use 10k-50k images (`covariance_full_rank` says which).

Example:
    real, fake = FeatureStats(keep_features=True), FeatureStats(keep_features=True)
    for batch in ...: real.update(inception(batch))          # [N, 2048]
    fid = fid_from_stats(real, fake)
    kid_mean, kid_std = kid_from_features(real.features, fake.features)
"""

from __future__ import annotations

import numpy as np

from core.errors import UserError

MIN_IMAGES = 2  # fewest images per set with a covariance (and an unbiased KID subset)
KID_SUBSET_SIZE = 1000  # images per KID subset (Binkowski et al.; fewer when a set is smaller)
KID_NUM_SUBSETS = 100


class FIDImagesError(UserError):
    """Too few images (or features) for the statistic; the message says how many are needed."""


class FeatureStats:
    """Running mean and covariance of feature vectors, batch by batch, in float64.

    Args:
        keep_features: also keep every feature vector (float32), e.g. for KID.
        name: what the features describe (a folder, a flag), named in error messages.
    """

    def __init__(self, keep_features: bool = False, name: str = "features"):
        self.keep_features = bool(keep_features)
        self.name = name
        self.count = 0
        self.dim = None
        self._mean = None  # [d] float64
        self._m2 = None  # [d, d] float64, sum of outer products of deviations from the mean
        self._features = []  # list of [b, d] float32 when keep_features

    def update(self, features) -> None:
        """Adds a batch of feature vectors [b, d] (any float dtype; b may be 0)."""
        features = np.asarray(features)
        if features.ndim != 2:
            raise ValueError(
                f"{self.name}: features must be [batch, dim], got shape {list(features.shape)}"
            )
        if self.dim is None:
            self.dim = features.shape[1]
            self._mean = np.zeros(self.dim, np.float64)
            self._m2 = np.zeros((self.dim, self.dim), np.float64)
        elif features.shape[1] != self.dim:
            raise ValueError(
                f"{self.name}: features of dim {features.shape[1]} added to "
                f"statistics of dim {self.dim}"
            )
        batch = features.shape[0]
        if batch == 0:
            return
        if not np.all(np.isfinite(features)):
            raise ValueError(f"{self.name}: non-finite feature values")
        if self.keep_features:
            self._features.append(features.astype(np.float32))
        x = features.astype(np.float64)
        batch_mean = x.mean(axis=0)  # [d]
        centred = x - batch_mean  # [b, d]
        batch_m2 = centred.T @ centred  # [d, d]
        total = self.count + batch
        delta = batch_mean - self._mean  # [d]
        # Chan et al.: merging two sets' (count, mean, M2) without revisiting either.
        self._m2 += batch_m2 + np.outer(delta, delta) * (self.count * batch / total)
        self._mean += delta * (batch / total)
        self.count = total

    def _require(self, needed: int, what: str) -> None:
        if self.count < needed:
            raise FIDImagesError(
                f"{what} needs at least {needed} images per set; {self.name} has {self.count}"
            )

    @property
    def mean(self) -> np.ndarray:
        """[d] float64 mean of the features."""
        self._require(1, "a mean")
        return self._mean.copy()

    def covariance(self) -> np.ndarray:
        """[d, d] float64 unbiased sample covariance (divides by n - 1)."""
        self._require(MIN_IMAGES, "a covariance")
        cov = self._m2 / (self.count - 1)
        return (cov + cov.T) / 2.0  # exact symmetry, which the eigen-decompositions rely on

    @property
    def covariance_full_rank(self) -> bool:
        """True when there are more images than feature dimensions (n > d)."""
        return self.dim is not None and self.count > self.dim

    @property
    def features(self) -> np.ndarray:
        """[n, d] float32 of every feature vector added (keep_features=True only)."""
        if not self.keep_features:
            raise ValueError(f"{self.name}: features were not kept (keep_features=False)")
        if not self._features:
            return np.zeros((0, self.dim or 0), np.float32)
        return np.concatenate(self._features, axis=0)


def _symmetric_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric PSD matrix by eigen-decomposition (round-off negatives -> 0)."""
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    roots = np.sqrt(np.clip(eigenvalues, 0.0, None))
    return (eigenvectors * roots) @ eigenvectors.T


def trace_sqrt_product(sigma1, sigma2) -> float:
    """tr((sigma1 sigma2)^(1/2)) of two symmetric PSD matrices, without a general sqrtm.

    sigma1 sigma2 = S (S sigma2) with S = sigma1^(1/2), and XY has the eigenvalues of YX, so
    the eigenvalues of sigma1 sigma2 are those of the symmetric PSD matrix S sigma2 S: real,
    non-negative, and found with a symmetric eigen-solver (no complex round-off, unlike scipy's
    sqrtm of the non-symmetric product, and no inverse, so singular covariances are fine).
    """
    root1 = _symmetric_sqrt(sigma1)
    inner = root1 @ sigma2 @ root1  # [d, d], symmetric PSD
    eigenvalues = np.linalg.eigvalsh((inner + inner.T) / 2.0)
    return float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2).

    Args:
        mu1, mu2: [d] means.
        sigma1, sigma2: [d, d] symmetric PSD covariances.

    Returns:
        ||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2)), >= 0 (tiny
        negative round-off is clipped to 0).
    """
    mu1 = np.asarray(mu1, np.float64)
    mu2 = np.asarray(mu2, np.float64)
    sigma1 = np.asarray(sigma1, np.float64)
    sigma2 = np.asarray(sigma2, np.float64)
    if mu1.ndim != 1 or mu1.shape != mu2.shape:
        raise ValueError(
            f"mu1 and mu2 must be vectors of one length, got shapes "
            f"{list(mu1.shape)} and {list(mu2.shape)}"
        )
    d = mu1.shape[0]
    for name, sigma in (("sigma1", sigma1), ("sigma2", sigma2)):
        if sigma.shape != (d, d):
            raise ValueError(
                f"{name} must be [{d}, {d}] to match the means, got {list(sigma.shape)}"
            )
        if not np.all(np.isfinite(sigma)):
            raise ValueError(f"{name} holds non-finite values")
    if not (np.all(np.isfinite(mu1)) and np.all(np.isfinite(mu2))):
        raise ValueError("mu1 / mu2 hold non-finite values")
    sigma1 = (sigma1 + sigma1.T) / 2.0
    sigma2 = (sigma2 + sigma2.T) / 2.0
    diff = mu1 - mu2
    distance = (
        diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2)
    )
    return max(float(distance), 0.0)


def fid_from_stats(stats1: FeatureStats, stats2: FeatureStats) -> float:
    """FID between the Gaussians fitted to two FeatureStats (each with >= 2 images)."""
    for stats in (stats1, stats2):
        if stats.count < MIN_IMAGES:
            raise FIDImagesError(
                f"FID needs at least {MIN_IMAGES} images per set to estimate a covariance; "
                f"{stats.name} has {stats.count} (a full-rank {stats.dim or 2048}-d covariance "
                f"needs more than {stats.dim or 2048})"
            )
    return frechet_distance(stats1.mean, stats1.covariance(), stats2.mean, stats2.covariance())


def fid_from_features(features1, features2) -> float:
    """FID between two feature sets [n1, d] and [n2, d] (n1, n2 >= 2)."""
    stats = []
    for index, features in enumerate((features1, features2), start=1):
        stat = FeatureStats(name=f"features{index}")
        stat.update(features)
        stats.append(stat)
    return fid_from_stats(*stats)


def polynomial_kernel(x, y) -> np.ndarray:
    """KID's kernel k(x, y) = (x.y / d + 1)^3 for all rows: x [n, d], y [m, d] -> [n, m]."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x, y) -> float:
    """Unbiased MMD^2 of two samples of one size m >= 2 with the polynomial kernel.

    (sum_{i != j} k(x_i, x_j) + sum_{i != j} k(y_i, y_j)) / (m (m - 1))
        - 2 sum_{i, j} k(x_i, y_j) / m^2
    """
    m = x.shape[0]
    if y.shape[0] != m or m < MIN_IMAGES:
        raise ValueError(
            f"mmd2_unbiased needs two samples of one size >= {MIN_IMAGES}, got "
            f"{x.shape[0]} and {y.shape[0]}"
        )
    k_xx = polynomial_kernel(x, x)  # [m, m]
    k_yy = polynomial_kernel(y, y)  # [m, m]
    k_xy = polynomial_kernel(x, y)  # [m, m]
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def kid_from_features(
    features1,
    features2,
    *,
    num_subsets: int = KID_NUM_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    seed: int = 0,
    names=("features1", "features2"),
) -> tuple[float, float]:
    """KID: mean and standard deviation of mmd2_unbiased over random subsets.

    Each of num_subsets draws m = min(subset_size, n1, n2) features from each set without
    replacement (the two draws independent); the result is not clipped at zero, so two sets
    from one distribution give values scattered around 0.

    Args:
        features1, features2: [n1, d] and [n2, d] features.
        num_subsets: number of subset pairs averaged.
        subset_size: largest subset size (1000 in the KID paper and common implementations).
        seed: seed of the subset draws.
        names: what the two sets are (folders, flags), named in errors.

    Returns:
        (mean, std) over the subsets (std 0.0 with one subset).
    """
    x = np.asarray(features1)
    y = np.asarray(features2)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(
            f"features must be [n1, d] and [n2, d] of one d, got "
            f"{list(x.shape)} and {list(y.shape)}"
        )
    if num_subsets < 1 or subset_size < MIN_IMAGES:
        raise ValueError(
            f"num_subsets must be >= 1 and subset_size >= {MIN_IMAGES}, got "
            f"{num_subsets} and {subset_size}"
        )
    for name, features in zip(names, (x, y)):
        if features.shape[0] < MIN_IMAGES:
            raise FIDImagesError(
                f"KID needs at least {MIN_IMAGES} images per set; {name} has {features.shape[0]}"
            )
    m = min(subset_size, x.shape[0], y.shape[0])
    rng = np.random.default_rng(seed)
    values = np.array(
        [
            mmd2_unbiased(
                x[rng.choice(x.shape[0], m, replace=False)],
                y[rng.choice(y.shape[0], m, replace=False)],
            )
            for _ in range(num_subsets)
        ]
    )
    return float(values.mean()), float(values.std()) if num_subsets > 1 else 0.0
