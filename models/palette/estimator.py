"""The palette estimator: a Gaussian mixture over the class proportions of real layouts.

A "palette" is the vector of class proportions of one layout (pixels of class c / labelled
pixels, over C classes, summing to 1). Semantic Palette samples the palettes it asks the layout
synthesizer for from a Gaussian mixture fitted to the palettes of the training layouts:
scikit-learn's GaussianMixture with full covariances for n = 1 .. max_components components,
keeping the n of lowest AIC. Samples are clipped to [0, 1], optionally raised to per-class
minimums, and renormalised to sum to 1.

The fitted mixture is saved as JSON (or .npz) with the label set's name and class names, so
that a palette file or a run of another label set is refused instead of silently misread.
Sampling and the log-likelihood use NumPy only (no scikit-learn at inference time).

Example:
    estimator = PaletteEstimator.fit(proportions_array, label_set, max_components=30)
    estimator.save("runs/palette/palette_estimator.json")
    palettes = estimator.sample(16, np.random.default_rng(0))         # [16, C]
    loaded = PaletteEstimator.load(path, label_set=load_label_set("cityscapes"))
"""

from __future__ import annotations

import json
import os

import numpy as np

from core import io as core_io
from core.errors import UserError

FORMAT = "semsynth_palette_estimator"
VERSION = 1
IGNORE = 255


class PaletteEstimatorError(UserError):
    """An estimator file is unreadable or belongs to another label set; named in the message."""


def proportions(label_map, num_classes, ignore=IGNORE):
    """Class proportions of label maps: pixels of each class / labelled pixels.

    Args:
        label_map: [H, W] or [N, H, W] integer train ids in [0, num_classes), `ignore` = not
            labelled (not counted).
        num_classes: C.
        ignore: the label value of unlabelled pixels.

    Returns:
        float64 [C] (or [N, C]) rows summing to 1; a map without labelled pixels gives a row of
        zeros (callers drop such rows).

    Raises:
        ValueError: a value outside [0, num_classes) that is not `ignore`.
    """
    labels = np.asarray(label_map)
    single = labels.ndim == 2
    if single:
        labels = labels[None]
    if labels.ndim != 3:
        raise ValueError(f"label maps must be [H, W] or [N, H, W], got shape {labels.shape}")
    flat = labels.reshape(labels.shape[0], -1).astype(np.int64)  # [N, HW]
    valid = flat != ignore
    bad = flat[valid & ((flat < 0) | (flat >= num_classes))]
    if bad.size:
        raise ValueError(
            f"label values {sorted(set(bad.tolist()))[:10]} are outside the {num_classes} "
            f"classes (0..{num_classes - 1}, {ignore} = ignore)"
        )
    counts = np.zeros((flat.shape[0], num_classes), np.float64)
    for i in range(flat.shape[0]):
        counts[i] = np.bincount(flat[i][valid[i]], minlength=num_classes)[:num_classes]
    totals = counts.sum(axis=1, keepdims=True)
    result = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    return result[0] if single else result


def _check_label_set(names, label_set_name, label_set, where):
    """Raises PaletteEstimatorError unless (label_set_name, names) are label_set's."""
    if label_set is None:
        return
    expected = tuple(label_set.names)
    if tuple(names) != expected:
        raise PaletteEstimatorError(
            f"{where} was fitted on the label set {label_set_name!r} with {len(names)} classes "
            f"({', '.join(names[:6])}{', ...' if len(names) > 6 else ''}), but this run uses "
            f"{label_set.name!r} with {len(expected)} classes ({', '.join(expected)}); fit an "
            "estimator on layouts of this label set"
        )


class PaletteEstimator:
    """A fitted Gaussian mixture over palettes (class-proportion vectors).

    Args:
        weights: [K] mixture weights (sum 1).
        means: [K, C] component means.
        covariances: [K, C, C] full covariance matrices.
        class_names: the C class names, in train-id order.
        label_set_name: the label set's name (e.g. "cityscapes").
        aic: {n: AIC} of every candidate fitted (informative; may be empty).

    Example:
        >>> estimator = PaletteEstimator.fit(props, label_set, max_components=5)
        >>> estimator.num_components, estimator.sample(4, np.random.default_rng(0)).shape
        (2, (4, 19))
    """

    def __init__(self, weights, means, covariances, class_names, label_set_name, aic=None):
        self.weights = np.asarray(weights, np.float64)
        self.means = np.asarray(means, np.float64)
        self.covariances = np.asarray(covariances, np.float64)
        self.class_names = tuple(str(n) for n in class_names)
        self.label_set_name = str(label_set_name)
        self.aic = {int(k): float(v) for k, v in (aic or {}).items()}
        k, c = self.means.shape
        if self.weights.shape != (k,) or self.covariances.shape != (k, c, c):
            raise ValueError(
                f"inconsistent mixture: weights {self.weights.shape}, means {self.means.shape}, "
                f"covariances {self.covariances.shape}"
            )
        if len(self.class_names) != c:
            raise ValueError(f"{len(self.class_names)} class names for {c}-d palettes")
        # Cholesky factors for sampling and the density (covariances are regularised: PD).
        self._cholesky = np.linalg.cholesky(self.covariances)  # [K, C, C]

    @property
    def num_classes(self):
        return self.means.shape[1]

    @property
    def num_components(self):
        return self.means.shape[0]

    # === Fitting ===

    @classmethod
    def fit(cls, palettes, label_set, max_components=30, seed=0, reg_covar=1e-6):
        """Fits GaussianMixture(n, "full") for n = 1..max_components; keeps the lowest AIC.

        Args:
            palettes: [M, C] class proportions of the training layouts (rows of zeros, maps
                without labelled pixels, are dropped).
            label_set: the semantic_labels.LabelSet of the layouts (C = its num_classes).
            max_components: the largest n tried (30 in the paper; capped at the row count).
            seed: random_state of scikit-learn's k-means initialisation.
            reg_covar: added to the covariances' diagonals (palettes lie on the simplex, so the
                full covariances are singular without it).
        """
        from sklearn.mixture import GaussianMixture

        palettes = np.asarray(palettes, np.float64)
        if palettes.ndim != 2 or palettes.shape[1] != label_set.num_classes:
            raise ValueError(
                f"palettes must be [M, {label_set.num_classes}] for the label set "
                f"{label_set.name!r}, got shape {palettes.shape}"
            )
        palettes = palettes[palettes.sum(axis=1) > 0]
        if len(palettes) < 2:
            raise ValueError(f"need at least 2 layouts with labelled pixels, got {len(palettes)}")
        best, aic = None, {}
        for n in range(1, min(int(max_components), len(palettes)) + 1):
            gmm = GaussianMixture(
                n, covariance_type="full", random_state=seed, reg_covar=reg_covar
            ).fit(palettes)
            aic[n] = float(gmm.aic(palettes))
            if best is None or aic[n] < aic[best.n_components]:
                best = gmm
        return cls(
            best.weights_, best.means_, best.covariances_, label_set.names, label_set.name, aic
        )

    # === Sampling and density ===

    def sample(self, n, rng, minimums=None):
        """n palettes: mixture draws clipped to [0, 1], raised to `minimums`, renormalised.

        Args:
            n: how many.
            rng: a numpy.random.Generator.
            minimums: None, or [C] per-class minimum proportions (sum <= 1); the result keeps
                exactly these minimums and shares the rest of the mass as the draw did.

        Returns:
            float32 [n, C], rows summing to 1.
        """
        c = self.num_classes
        components = rng.choice(self.num_components, size=n, p=self.weights / self.weights.sum())
        noise = rng.standard_normal((n, c))
        draws = self.means[components] + np.einsum(
            "nij,nj->ni", self._cholesky[components], noise
        )  # [n, C]
        draws = np.clip(draws, 0.0, 1.0)
        draws = _renormalise(draws)
        if minimums is not None:
            minimums = np.asarray(minimums, np.float64)
            if minimums.shape != (c,) or np.any(minimums < 0) or minimums.sum() > 1 + 1e-6:
                raise ValueError(
                    f"minimums must be {c} values >= 0 summing to at most 1, got {minimums}"
                )
            # Keep the minimums exactly; the rest of the mass goes as the draw's excess did.
            excess = _renormalise(np.maximum(draws - minimums, 0.0))
            draws = minimums + (1.0 - minimums.sum()) * excess
        return draws.astype(np.float32)

    def log_likelihood(self, palettes):
        """Per-palette log density under the mixture: float64 [M] (as GaussianMixture's
        score_samples)."""
        x = np.asarray(palettes, np.float64)
        if x.ndim == 1:
            x = x[None]
        if x.shape[1] != self.num_classes:
            raise ValueError(
                f"palettes have {x.shape[1]} classes, the estimator {self.num_classes}"
            )
        c = self.num_classes
        logs = []
        for k in range(self.num_components):
            chol = self._cholesky[k]
            diff = (x - self.means[k]).T  # [C, M]
            solved = np.linalg.solve(chol, diff)  # L^-1 (x - mu): [C, M]
            mahalanobis = np.sum(solved**2, axis=0)  # [M]
            log_det = 2.0 * np.sum(np.log(np.diag(chol)))
            logs.append(
                np.log(self.weights[k]) - 0.5 * (c * np.log(2 * np.pi) + log_det + mahalanobis)
            )
        logs = np.stack(logs)  # [K, M]
        top = logs.max(axis=0)
        return top + np.log(np.exp(logs - top).sum(axis=0))

    # === Files ===

    def to_dict(self):
        return {
            "format": FORMAT,
            "version": VERSION,
            "label_set": self.label_set_name,
            "class_names": list(self.class_names),
            "num_components": self.num_components,
            "weights": self.weights.tolist(),
            "means": self.means.tolist(),
            "covariances": self.covariances.tolist(),
            "aic": {str(k): v for k, v in sorted(self.aic.items())},
        }

    def save(self, path):
        """Writes the estimator atomically as JSON (.json) or NumPy arrays (.npz)."""
        path = os.fspath(path)
        if path.endswith(".npz"):
            data = self.to_dict()
            with core_io.atomic_write(path, "wb") as file:
                np.savez(
                    file,
                    **{k: np.asarray(v) for k, v in data.items() if k != "aic"},
                    aic_n=np.array(list(self.aic), np.int64),
                    aic_value=np.array(list(self.aic.values()), np.float64),
                )
            return path
        return core_io.write_json_atomic(path, self.to_dict(), indent=None)

    @classmethod
    def load(cls, path, label_set=None, flag="estimator file"):
        """Reads an estimator written by save(); with `label_set`, refuses another label set.

        Raises:
            PaletteEstimatorError: the file is missing, unreadable, not an estimator, or of
                another label set (naming the file, both label sets and their classes).
        """
        path = os.fspath(path)
        where = f"{flag} {path}"
        if not os.path.isfile(path):
            raise PaletteEstimatorError(f"{where} does not exist")
        try:
            if path.endswith(".npz"):
                with np.load(path, allow_pickle=False) as data:
                    values = {k: data[k] for k in data.files}
                values = {
                    "format": str(values["format"]),
                    "label_set": str(values["label_set"]),
                    "class_names": [str(n) for n in values["class_names"]],
                    "weights": values["weights"],
                    "means": values["means"],
                    "covariances": values["covariances"],
                    "aic": dict(zip(values["aic_n"].tolist(), values["aic_value"].tolist())),
                }
            else:
                with open(path) as f:
                    values = json.load(f)
        except (OSError, ValueError, KeyError) as error:
            raise PaletteEstimatorError(f"{where} is unreadable ({error})") from None
        if not isinstance(values, dict) or values.get("format") != FORMAT:
            raise PaletteEstimatorError(f"{where} is not a palette estimator (format {FORMAT})")
        _check_label_set(values["class_names"], values["label_set"], label_set, where)
        try:
            return cls(
                values["weights"],
                values["means"],
                values["covariances"],
                values["class_names"],
                values["label_set"],
                values.get("aic"),
            )
        except (ValueError, KeyError, np.linalg.LinAlgError) as error:
            raise PaletteEstimatorError(f"{where} holds an invalid mixture ({error})") from None


def _renormalise(rows):
    """Rows divided by their sums; an all-zero row becomes uniform."""
    totals = rows.sum(axis=1, keepdims=True)
    uniform = np.full_like(rows, 1.0 / rows.shape[1])
    return np.where(totals > 0, rows / np.where(totals > 0, totals, 1.0), uniform)
