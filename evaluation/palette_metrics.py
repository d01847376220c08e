"""Class-proportion ("palette") metrics of Semantic Palette (Le Moing et al., CVPR 2021), numpy.

A layout's palette is its class-proportion vector: the share of each class among its labelled
pixels. A palette-conditioned generator is judged twice:

Per sample, target vs achieved (the palette asked for vs the proportions of the mask made):
    kl_divergence  KL(target || achieved) = sum_c t_c log(t_c / a_c). Both vectors first get
                   EPSILON = 1e-6 added to every class and are renormalised, so a class the
                   target asks for and the mask lacks costs log(t_c / 1e-6) instead of
                   infinity; identical vectors still give exactly 0. Not symmetric.
    js_divergence  Jensen-Shannon: (KL(t || m) + KL(a || m)) / 2 with m = (t + a) / 2, in nats
                   (0 .. ln 2), symmetric; needs no epsilon (m > 0 wherever t or a is).
    mae            mean over classes of |t_c - a_c|.

Between sets, real vs generated palettes (n x C each):
    frechet_distance   of Gaussians fitted to the two sets (evaluation.fid.frechet_distance;
                       palettes sum to 1, so the covariances are singular, which it handles).
    emd                earth mover's distance between the two sets as uniform point clouds,
                       ground distance Euclidean (or L1). Exact: with equal sizes the optimal
                       transport is an assignment (scipy.optimize.linear_sum_assignment; scipy
                       comes with scikit-learn); unequal sizes n1, n2 are replicated to their
                       least common multiple L (each point L / n times), exact as long as
                       L <= EXACT_EMD_MAX_POINTS. Otherwise (or without scipy) the sliced
                       Wasserstein-1 distance (mean over random unit directions of the exact
                       1-D distance of the projections), a different, smaller number: the
                       result says which method was used.
    gmm_log_likelihood mean log-likelihood of palettes under a density estimator fitted to real
                       palettes: any object with `log_likelihood(palettes)` (per-sample values)
                       or sklearn's `score_samples` (GaussianMixture). `fit_gmm` fits the
                       paper's estimator: full-covariance mixtures of 1..30 components, lowest
                       AIC wins, with at most one component per GMM_PALETTES_PER_COMPONENT
                       palettes (with fewer, AIC rewards components that collapse onto single
                       palettes). Palettes sum to 1, so every covariance is singular along
                       (1, .., 1); reg_covar = 1e-6 keeps them invertible, and the
                       log-likelihoods are large: compare the generated value with the real
                       palettes' own under the same mixture, not with other papers.

Example:
    achieved = proportions(masks, num_classes=19)       # [N, 19]
    per_sample = target_metrics(targets, achieved)      # {"kl": [N], "js": [N], "mae": [N]}
    emd(real_palettes, achieved)                        # {"value": ..., "method": "exact"}
"""

from __future__ import annotations

import math

import numpy as np

from evaluation.fid import frechet_distance

EPSILON = 1e-6  # added to every class before KL (module docstring)
IGNORE = 255
EXACT_EMD_MAX_POINTS = 2000  # largest replicated set solved exactly (an L x L assignment)
SLICED_DIRECTIONS = 256
GMM_MAX_COMPONENTS = 30
GMM_PALETTES_PER_COMPONENT = 10


def proportions(label_map, num_classes: int, ignore: int = IGNORE) -> np.ndarray:
    """Class proportions of a label map [H, W] -> [C], or of a batch [N, H, W] -> [N, C].

    Pixels of value `ignore` are not counted; the proportions of each map sum to 1.

    Raises:
        ValueError: a value outside [0, num_classes) that is not `ignore`, or a map with no
            labelled pixel.
    """
    label_map = np.asarray(label_map)
    if label_map.ndim not in (2, 3):
        raise ValueError(f"label maps must be [H, W] or [N, H, W], got {list(label_map.shape)}")
    if label_map.ndim == 2:
        return proportions(label_map[None], num_classes, ignore)[0]
    flat = label_map.reshape(label_map.shape[0], -1).astype(np.int64)  # [N, HW]
    valid = flat != ignore
    bad = valid & ((flat < 0) | (flat >= num_classes))
    if bad.any():
        raise ValueError(
            f"label values {sorted(set(flat[bad].tolist()))[:5]} are outside the "
            f"{num_classes} classes (and not the ignore value {ignore})"
        )
    counts = np.stack(
        [np.bincount(row[keep], minlength=num_classes) for row, keep in zip(flat, valid)]
    ).astype(np.float64)  # [N, C]
    totals = counts.sum(axis=1, keepdims=True)  # [N, 1]
    if np.any(totals == 0):
        raise ValueError("a label map has no labelled pixel (all ignored)")
    return counts / totals


def _as_palettes(values, name: str) -> np.ndarray:
    values = np.asarray(values, np.float64)
    if values.ndim == 1:
        values = values[None]
    if values.ndim != 2:
        raise ValueError(f"{name} must be [C] or [N, C], got {list(values.shape)}")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(f"{name} must be finite and non-negative")
    return values


def _check_pair(target, achieved):
    target = _as_palettes(target, "target")
    achieved = _as_palettes(achieved, "achieved")
    if target.shape != achieved.shape:
        raise ValueError(
            f"target and achieved must have one shape, got {list(target.shape)} and "
            f"{list(achieved.shape)}"
        )
    return target, achieved


def _normalise(values, epsilon: float = 0.0) -> np.ndarray:
    values = values + epsilon
    totals = values.sum(axis=1, keepdims=True)
    if np.any(totals == 0):
        raise ValueError("a palette sums to 0")
    return values / totals


def _kl_rows(p, q) -> np.ndarray:
    """sum_c p log(p / q) per row, with 0 log 0 = 0 (q > 0 wherever p > 0)."""
    safe_q = np.where(p > 0, q, 1.0)
    terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0) / safe_q), 0.0)
    return np.maximum(terms.sum(axis=1), 0.0)


def kl_divergence(target, achieved, epsilon: float = EPSILON) -> np.ndarray:
    """KL(target || achieved) per sample [N] (nats), after adding `epsilon` and renormalising."""
    target, achieved = _check_pair(target, achieved)
    return _kl_rows(_normalise(target, epsilon), _normalise(achieved, epsilon))


def js_divergence(target, achieved) -> np.ndarray:
    """Jensen-Shannon divergence per sample [N] (nats, 0 .. ln 2), symmetric."""
    target, achieved = _check_pair(target, achieved)
    p, q = _normalise(target), _normalise(achieved)
    m = (p + q) / 2.0
    return (_kl_rows(p, m) + _kl_rows(q, m)) / 2.0


def mae(target, achieved) -> np.ndarray:
    """Mean absolute difference over classes per sample [N]."""
    target, achieved = _check_pair(target, achieved)
    return np.abs(target - achieved).mean(axis=1)


def target_metrics(target, achieved) -> dict[str, np.ndarray]:
    """{"kl": [N], "js": [N], "mae": [N]} of target vs achieved palettes [N, C]."""
    return {
        "kl": kl_divergence(target, achieved),
        "js": js_divergence(target, achieved),
        "mae": mae(target, achieved),
    }


def palette_frechet_distance(palettes1, palettes2) -> float:
    """Frechet distance of Gaussians fitted to two palette sets [n1, C], [n2, C] (n >= 2)."""
    a, b = _as_palettes(palettes1, "palettes1"), _as_palettes(palettes2, "palettes2")
    if a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(
            f"Frechet distance needs two sets of >= 2 palettes of one length, got "
            f"{list(a.shape)} and {list(b.shape)}"
        )
    return frechet_distance(
        a.mean(axis=0), np.cov(a, rowvar=False), b.mean(axis=0), np.cov(b, rowvar=False)
    )


def _ground_distance(a, b, ground: str) -> np.ndarray:
    diff = a[:, None, :] - b[None, :, :]  # [n1, n2, C]
    if ground == "l2":
        return np.sqrt(np.square(diff).sum(axis=-1))
    if ground == "l1":
        return np.abs(diff).sum(axis=-1)
    raise ValueError(f"ground must be 'l2' or 'l1', got {ground!r}")


def sliced_wasserstein(a, b, *, directions: int = SLICED_DIRECTIONS, seed: int = 0) -> float:
    """Mean over random unit directions of the 1-D Wasserstein-1 distance of the projections
    (exact in 1-D for any sizes: the integral of |F_a^-1 - F_b^-1| over the quantiles)."""
    rng = np.random.default_rng(seed)
    units = rng.standard_normal((directions, a.shape[1]))
    units /= np.linalg.norm(units, axis=1, keepdims=True)  # [D, C]
    # The quantile functions are step functions; merge their breakpoints.
    levels = np.union1d(np.arange(1, len(a) + 1) / len(a), np.arange(1, len(b) + 1) / len(b))
    widths = np.diff(np.concatenate([[0.0], levels]))  # [K]
    total = 0.0
    for unit in units:
        pa, pb = np.sort(a @ unit), np.sort(b @ unit)
        qa = pa[np.minimum(np.ceil(levels * len(a) - 1e-9).astype(int) - 1, len(a) - 1)]
        qb = pb[np.minimum(np.ceil(levels * len(b) - 1e-9).astype(int) - 1, len(b) - 1)]
        total += float(np.sum(widths * np.abs(qa - qb)))
    return total / directions


def emd(palettes1, palettes2, *, ground: str = "l2", seed: int = 0) -> dict:
    """Earth mover's distance between two palette sets (module docstring).

    Returns:
        {"value": float, "method": "exact" or "sliced"}.
    """
    a, b = _as_palettes(palettes1, "palettes1"), _as_palettes(palettes2, "palettes2")
    if a.shape[1] != b.shape[1] or min(len(a), len(b)) < 1:
        raise ValueError(
            f"EMD needs two non-empty sets of palettes of one length, got {list(a.shape)} and "
            f"{list(b.shape)}"
        )
    points = math.lcm(len(a), len(b))
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:
        linear_sum_assignment = None
    if linear_sum_assignment is None or points > EXACT_EMD_MAX_POINTS:
        return {"value": sliced_wasserstein(a, b, seed=seed), "method": "sliced"}
    # Uniform weights 1 / n1 and 1 / n2 become L points of weight 1 / L each, and between two
    # uniform sets of one size an optimal plan is a permutation (Birkhoff).
    a = np.repeat(a, points // len(a), axis=0)  # [L, C]
    b = np.repeat(b, points // len(b), axis=0)  # [L, C]
    cost = _ground_distance(a, b, ground)  # [L, L]
    rows, cols = linear_sum_assignment(cost)
    return {"value": float(cost[rows, cols].mean()), "method": "exact"}


def gmm_log_likelihood(estimator, palettes) -> float:
    """Mean log-likelihood of palettes [N, C] under a fitted density estimator.

    Args:
        estimator: an object with `log_likelihood(palettes)` or `score_samples(palettes)`
            returning one value per palette (e.g. sklearn.mixture.GaussianMixture).
        palettes: [N, C].
    """
    palettes = _as_palettes(palettes, "palettes")
    if hasattr(estimator, "log_likelihood"):
        values = estimator.log_likelihood(palettes)
    elif hasattr(estimator, "score_samples"):
        values = estimator.score_samples(palettes)
    else:
        raise TypeError(
            f"{type(estimator).__name__} has neither log_likelihood(palettes) nor "
            "score_samples(palettes)"
        )
    values = np.asarray(values, np.float64).reshape(-1)
    if values.shape[0] != palettes.shape[0]:
        raise ValueError(
            f"the estimator returned {values.shape[0]} values for {palettes.shape[0]} palettes"
        )
    return float(values.mean())


def fit_gmm(palettes, *, max_components: int = GMM_MAX_COMPONENTS, seed: int = 0):
    """sklearn GaussianMixture (full covariances) of 1..max_components components (at most
    one per GMM_PALETTES_PER_COMPONENT palettes) fitted to palettes [N, C]; lowest AIC wins."""
    from sklearn.mixture import GaussianMixture

    palettes = _as_palettes(palettes, "palettes")
    if len(palettes) < 2:
        raise ValueError(f"a GMM needs at least 2 palettes, got {len(palettes)}")
    best, best_aic = None, np.inf
    most = max(1, min(max_components, len(palettes) // GMM_PALETTES_PER_COMPONENT))
    for components in range(1, most + 1):
        # reg_covar keeps the covariances invertible: palettes sum to 1 (a singular direction).
        gmm = GaussianMixture(
            components, covariance_type="full", reg_covar=1e-6, random_state=seed
        ).fit(palettes)
        aic = gmm.aic(palettes)
        if aic < best_aic:
            best, best_aic = gmm, aic
    return best
