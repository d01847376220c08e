"""Clusters a generator's synthesis activations per layer (Synthesis in Style, step 3).

Every layer is clustered on its own, at its native resolution, with a mini-batch *spherical*
k-means: pixels' feature vectors and the centres live on the unit sphere, and a pixel belongs to
the centre of largest cosine similarity. One model is fitted per (layer, k).

`cluster_features` streams the samples twice and never holds more than one batch of activations:

- pass 1 draws z from a seeded RNG (saved to latents.npy), saves the images and feeds a bounded,
  seeded random subset of each layer's pixels to every (layer, k) model;
- pass 2 re-synthesizes every batch from the saved z and assigns *all* pixels to the fitted
  centres, writing the cluster-id maps, their colour renderings and one overview per k.

Pass 2 only reproduces pass 1 when the feature function is deterministic for a given z: the
caller must use constant noise inputs (StyleGAN2 noise_mode="const") and a fixed truncation.
The images of the first batch are compared to check this.

The feature function (shared with dataset synthesis):

    feature_fn(z [N, z_dim] float32) -> (images uint8 [N, R, R, 3],
                                         {layer_name: float32 [N, r, r, C]})

The run directory (read by the annotation app and by models/synthesis_in_style/labels.py):

    clusters.json    {"format": "semsynth-clusters/1", "generator": {"fingerprint",
                      "resolution", "checkpoint"}, "num_samples", "k_values", "seed", "z_dim",
                      "layers": [{"name", "resolution", "channels"}, ...]}  (written last)
    latents.npy      [N, z_dim] float32
    samples/000000.png                 the RGB samples, R x R
    k03/centers/<layer>.npy            [k, C] float32 unit rows
    k03/maps/<layer>/000000.png        8-bit cluster ids at the layer's native resolution
    k03/colour/<layer>/000000.png      the ids in CLUSTER_COLORS
    k03/overview.png                   one row per layer (upsampled nearest to R), one column
                                       per sample (the first `overview_samples`), no gaps

Example:
    run = cluster_features(feature_fn, num_samples=100, batch_size=8, k_values=range(3, 24),
                           out_dir="runs/clusters", z_dim=512, seed=0, generator_meta={
                               "fingerprint": "...", "resolution": 256, "checkpoint": "..."})
    run = load_clusters("runs/clusters")
    ids = assign(features, run.centers(20, "conv09_64px"))  # [N, 64, 64] cluster ids
"""

from __future__ import annotations

import colorsys
import glob
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable

import numpy as np
from PIL import Image
from sklearn.cluster import MiniBatchKMeans

from core.errors import UserError

CLUSTERS_FORMAT = "semsynth-clusters/1"
CLUSTERS_FILE = "clusters.json"
LATENTS_FILE = "latents.npy"
MAX_CLUSTERS = 256  # cluster-id maps are 8-bit PNGs
# Rows per matrix product when assigning pixels: bounds the [rows, k] score matrix and the
# float32 copy of the features to a few tens of MB whatever the layer size.
ASSIGN_CHUNK_ROWS = 65536

FeatureFn = Callable[[np.ndarray], "tuple[np.ndarray, dict[str, np.ndarray]]"]


class ClusterError(UserError):
    """A cluster run, its arguments or its files are invalid; the message names the culprit."""


class ClusterFileNotFoundError(ClusterError, FileNotFoundError):
    """A cluster run file does not exist (catchable as ValueError or FileNotFoundError)."""


# === Colours ===


def _cluster_color_table() -> np.ndarray:
    # Kelly's colours of maximum contrast (without white and black) first, so small k get
    # colours that are easy to tell apart; then golden-ratio hues at varying saturation/value.
    kelly = [
        "F3C300",
        "875692",
        "F38400",
        "A1CAF1",
        "BE0032",
        "C2B280",
        "848482",
        "008856",
        "E68FAC",
        "0067A5",
        "F99379",
        "604E97",
        "F6A600",
        "B3446C",
        "DCD300",
        "882D17",
        "8DB600",
        "654522",
        "E25822",
        "2B3D26",
    ]
    colors = [tuple(int(h[i : i + 2], 16) for i in (0, 2, 4)) for h in kelly]
    seen = set(colors)
    step = 0
    while len(colors) < MAX_CLUSTERS:
        hue = (step * 0.618033988749895) % 1.0
        saturation = (0.95, 0.55, 0.75)[step % 3]
        value = (0.95, 0.7, 0.45, 0.85)[(step // 3) % 4]
        color = tuple(int(round(c * 255)) for c in colorsys.hsv_to_rgb(hue, saturation, value))
        step += 1
        if color not in seen:
            seen.add(color)
            colors.append(color)
    table = np.array(colors, dtype=np.uint8)  # [256, 3]
    table.setflags(write=False)
    return table


CLUSTER_COLORS = _cluster_color_table()  # [256, 3] uint8, distinct, fixed across runs


def colorize_clusters(ids: np.ndarray) -> np.ndarray:
    """Cluster ids [...] (ints in [0, 256)) -> [..., 3] uint8 colours of CLUSTER_COLORS."""
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= MAX_CLUSTERS):
        raise ClusterError(
            f"colorize_clusters: ids must lie in [0, {MAX_CLUSTERS - 1}], got "
            f"{int(ids.min())}..{int(ids.max())}"
        )
    return CLUSTER_COLORS[ids.astype(np.intp)]


# === Spherical k-means ===


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of x [..., C] scaled to unit L2 norm (all-zero rows stay zero), as float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.sqrt(np.einsum("...c,...c->...", x, x))[..., None]  # [..., 1]
    return x / np.maximum(norms, eps)


def assign(features: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Cluster id of every pixel: argmax over centres of the cosine similarity.

    Args:
        features: [..., C] feature vectors, e.g. [N, h, w, C] activations of one layer.
        centers: [k, C] centres (normalised here, so any positive scale gives the same ids).

    Returns:
        [...] int32 ids in [0, k), e.g. [N, h, w]. Scaling a pixel's vector does not change
        its argmax, so only the centres are normalised; all-zero pixels get id 0.
    """
    features = np.asarray(features)
    centers = np.asarray(centers)
    if centers.ndim != 2 or centers.shape[0] < 1:
        raise ClusterError(f"assign: centers must have shape [k, C], got {list(centers.shape)}")
    channels = centers.shape[1]
    if features.ndim < 1 or features.shape[-1] != channels:
        raise ClusterError(
            f"assign: features have {features.shape[-1] if features.ndim else 0} channels "
            f"(shape {list(features.shape)}) but centers have {channels}"
        )
    unit_centers_t = l2_normalize(centers).T  # [C, k]
    flat = features.reshape(-1, channels)  # [M, C], a view for contiguous input
    ids = np.empty(flat.shape[0], dtype=np.int32)  # [M]
    for start in range(0, flat.shape[0], ASSIGN_CHUNK_ROWS):
        chunk = flat[start : start + ASSIGN_CHUNK_ROWS].astype(np.float32, copy=False)
        ids[start : start + chunk.shape[0]] = np.argmax(chunk @ unit_centers_t, axis=1)
    return ids.reshape(features.shape[:-1])


def spherical_kmeans_plus_plus(
    x: np.ndarray, num_clusters: int, rng: np.random.Generator, max_points: int = 4096
) -> np.ndarray:
    """Greedy k-means++ seeding on the unit sphere.

    Our own seeding instead of scikit-learn's: its k-means++ upcasts float32 data to float64
    in blocks and dominated the clustering time at 256 px (seconds per (layer, k)).

    Args:
        x: [M, C] unit vectors (M >= num_clusters).
        num_clusters: k.
        rng: source of randomness (seeded by the caller).
        max_points: seeding looks at a random subset of at most this many vectors.

    Returns:
        [k, C] float32 initial centres, rows of x.
    """
    if x.shape[0] > max_points:
        x = x[rng.choice(x.shape[0], max_points, replace=False)]
    num_points = x.shape[0]
    trials = 2 + int(np.log(num_clusters))  # candidates per centre, as in greedy k-means++
    chosen = [int(rng.integers(num_points))]
    # For unit vectors the squared Euclidean distance is 2 - 2 cos.
    distance = np.maximum(2.0 - 2.0 * (x @ x[chosen[0]]), 0.0)  # [M]
    for _ in range(1, num_clusters):
        total = distance.sum(dtype=np.float64)
        # float64 so the probabilities sum to 1 within numpy's tolerance; all points equal to
        # a centre already (total 0): uniform.
        probabilities = distance.astype(np.float64) / total if total > 0 else None
        candidates = rng.choice(num_points, trials, p=probabilities)  # [trials]
        cosine = (x @ x[candidates].T).T  # [trials, M]; this product order is the faster one
        candidate_distance = np.minimum(np.maximum(2.0 - 2.0 * cosine, 0.0), distance)
        best = int(np.argmin(candidate_distance.sum(axis=1)))
        chosen.append(int(candidates[best]))
        distance = candidate_distance[best]
    return np.array(x[chosen], dtype=np.float32)


def seed_centers(
    x: np.ndarray,
    num_clusters: int,
    rng: np.random.Generator,
    *,
    restarts: int = 5,
    iterations: int = 3,
    max_points: int = 1024,
) -> np.ndarray:
    """Initial centres: the best of a few seeded, briefly refined k-means++ runs.

    One k-means++ draw can miss a small cluster (two seeds in a big one); mini-batch updates
    rarely recover from that, so a few draws are refined with full spherical Lloyd steps on a
    subset and the one with the largest summed cosine wins (scikit-learn's n_init, which
    partial_fit does not offer).

    Args:
        x: [M, C] unit vectors (M >= num_clusters).
        num_clusters: k.
        rng: source of randomness.
        restarts: k-means++ draws compared.
        iterations: spherical Lloyd steps refining each draw.
        max_points: size of the random subset used.

    Returns:
        [k, C] float32 unit centres.
    """
    if x.shape[0] > max_points:
        x = x[rng.choice(x.shape[0], max_points, replace=False)]  # [m, C]
    best_centers, best_score = None, -np.inf
    for _ in range(restarts):
        centers = spherical_kmeans_plus_plus(x, num_clusters, rng, max_points)  # [k, C]
        for _ in range(iterations):
            ids = np.argmax(x @ centers.T, axis=1)  # [m]
            members = (ids[:, None] == np.arange(num_clusters)).astype(np.float32)  # [m, k]
            sums = members.T @ x  # [k, C]
            filled = members.sum(axis=0) > 0  # [k]
            centers[filled] = l2_normalize(sums[filled])  # empty clusters keep their seed
        score = float((x @ centers.T).max(axis=1).sum())
        if score > best_score:
            best_centers, best_score = centers, score
    return best_centers


class SphericalMiniBatchKMeans:
    """Mini-batch spherical k-means on top of scikit-learn's MiniBatchKMeans.partial_fit.

    Inputs are L2-normalised before every update and the centres are projected back onto the
    unit sphere after it. For unit vectors, Euclidean nearest centre == largest cosine, so
    scikit-learn's assignment step is the spherical one; its running-mean update followed by
    renormalisation is the spherical centre update (the normalised mean direction). The first
    call seeds the centres with `seed_centers` on that call's vectors.

    Args:
        num_clusters: k, the number of centres (2..256).
        seed: seed of the centre initialisation and of scikit-learn's reassignment of
            near-empty clusters.
    """

    def __init__(self, num_clusters: int, *, seed: int = 0):
        if not isinstance(num_clusters, int) or not 2 <= num_clusters <= MAX_CLUSTERS:
            raise ClusterError(
                f"num_clusters must be an integer in [2, {MAX_CLUSTERS}], got {num_clusters!r}"
            )
        self.num_clusters = num_clusters
        self.seed = seed
        self._kmeans = None  # built on the first partial_fit, from its seeded centres

    @property
    def is_fitted(self) -> bool:
        """True once partial_fit has been called."""
        return self._kmeans is not None

    @property
    def num_steps(self) -> int:
        """Number of partial_fit updates so far."""
        return int(getattr(self._kmeans, "n_steps_", 0))

    @property
    def centers(self) -> np.ndarray:
        """[k, C] float32 unit-norm centres (a copy)."""
        if not self.is_fitted:
            raise ClusterError("SphericalMiniBatchKMeans: not fitted yet; call partial_fit first")
        return np.array(self._kmeans.cluster_centers_, dtype=np.float32)

    def partial_fit(self, x: np.ndarray) -> SphericalMiniBatchKMeans:
        """One mini-batch update on x [M, C] (M >= k for the first call)."""
        x = np.asarray(x)
        if x.ndim != 2:
            raise ClusterError(f"partial_fit: x must have shape [M, C], got {list(x.shape)}")
        if not self.is_fitted and x.shape[0] < self.num_clusters:
            raise ClusterError(
                f"partial_fit: the first batch needs at least k={self.num_clusters} vectors, "
                f"got {x.shape[0]}"
            )
        x = l2_normalize(x)  # [M, C]
        if self._kmeans is None:
            rng = np.random.default_rng((self.seed, self.num_clusters))
            self._kmeans = MiniBatchKMeans(
                n_clusters=self.num_clusters,
                init=seed_centers(x, self.num_clusters, rng),
                n_init=1,
                random_state=self.seed,
                compute_labels=False,
            )
        self._kmeans.partial_fit(x)
        # scikit-learn updates `cluster_centers_` in place on the next call, so projecting it
        # back onto the sphere here makes every update start from unit centres.
        self._kmeans.cluster_centers_ = np.ascontiguousarray(
            l2_normalize(self._kmeans.cluster_centers_)
        )
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Cluster ids of x [..., C] -> [...] int32 (see `assign`)."""
        return assign(x, self.centers)


# === Cluster runs on disk ===


def k_folder(k: int) -> str:
    """Name of the folder of one k inside a run, e.g. "k03"."""
    return f"k{k:02d}"


def sample_name(index: int) -> str:
    """File name of sample `index`, e.g. "000042.png"."""
    return f"{index:06d}.png"


class ClusterRun:
    """A cluster run directory written by `cluster_features` (read-only view).

    Attributes:
        directory: absolute path of the run.
        meta: the parsed clusters.json.
    """

    def __init__(self, directory: str, meta: dict):
        self.directory = directory
        self.meta = meta

    def __repr__(self):
        return (
            f"ClusterRun({self.directory!r}, k_values={list(self.k_values)}, "
            f"layers={len(self.layers)}, num_samples={self.num_samples})"
        )

    @property
    def layers(self) -> tuple[dict, ...]:
        """Layer metadata {"name", "resolution", "channels"} in synthesis order."""
        return tuple(self.meta["layers"])

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(layer["name"] for layer in self.meta["layers"])

    @property
    def k_values(self) -> tuple[int, ...]:
        return tuple(self.meta["k_values"])

    @property
    def fingerprint(self) -> str:
        """Fingerprint of the generator the run was made with."""
        return self.meta["generator"]["fingerprint"]

    @property
    def resolution(self) -> int:
        """R, the generator's image resolution."""
        return int(self.meta["generator"]["resolution"])

    @property
    def num_samples(self) -> int:
        return int(self.meta["num_samples"])

    @property
    def z_dim(self) -> int:
        return int(self.meta["z_dim"])

    @property
    def seed(self) -> int:
        return int(self.meta["seed"])

    def layer(self, name: str) -> dict:
        """Metadata of layer `name`; raises ClusterError listing the run's layers."""
        for layer in self.meta["layers"]:
            if layer["name"] == name:
                return layer
        raise ClusterError(
            f"cluster run {self.directory} has no layer {name!r}; its layers are "
            f"{list(self.layer_names)}"
        )

    def check_k(self, k) -> int:
        """k if the run has it; raises ClusterError listing the available k otherwise."""
        if k not in self.meta["k_values"]:
            raise ClusterError(
                f"cluster run {self.directory} has no k={k!r}; available k: {list(self.k_values)}"
            )
        return int(k)

    def k_dir(self, k: int) -> str:
        return os.path.join(self.directory, k_folder(self.check_k(k)))

    def centers(self, k: int, layer: str) -> np.ndarray:
        """[k, C] float32 unit-norm centres of `layer` for this k."""
        meta = self.layer(layer)
        path = os.path.join(self.k_dir(k), "centers", f"{layer}.npy")
        if not os.path.isfile(path):
            raise ClusterFileNotFoundError(f"centres file {path} does not exist")
        try:
            centers = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as error:
            raise ClusterError(f"{path}: not a readable .npy array ({error})") from None
        if centers.shape != (k, meta["channels"]):
            raise ClusterError(
                f"{path}: expected shape [{k}, {meta['channels']}], got {list(centers.shape)}"
            )
        return centers.astype(np.float32, copy=False)

    def centers_for(self, k: int, layers: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """{layer: [k, C] centres} for the given layers (default: all)."""
        names = self.layer_names if layers is None else tuple(layers)
        return {name: self.centers(k, name) for name in names}

    def latents(self) -> np.ndarray:
        """[N, z_dim] float32, the z of every sample."""
        path = os.path.join(self.directory, LATENTS_FILE)
        if not os.path.isfile(path):
            raise ClusterFileNotFoundError(f"latents file {path} does not exist")
        latents = np.load(path, allow_pickle=False)
        if latents.shape != (self.num_samples, self.z_dim):
            raise ClusterError(
                f"{path}: expected shape [{self.num_samples}, {self.z_dim}], got "
                f"{list(latents.shape)}"
            )
        return latents

    def sample_path(self, index: int) -> str:
        return os.path.join(self.directory, "samples", sample_name(index))

    def map_path(self, k: int, layer: str, index: int) -> str:
        """8-bit PNG of the cluster ids of sample `index` at the layer's resolution."""
        return os.path.join(self.k_dir(k), "maps", layer, sample_name(index))

    def colour_path(self, k: int, layer: str, index: int) -> str:
        return os.path.join(self.k_dir(k), "colour", layer, sample_name(index))

    def overview_path(self, k: int) -> str:
        return os.path.join(self.k_dir(k), "overview.png")


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_meta(path: str, meta) -> None:
    """Validates a parsed clusters.json; raises ClusterError naming the file and the key."""
    if not isinstance(meta, dict):
        raise ClusterError(f"{path}: the top level must be a JSON object")
    if meta.get("format") != CLUSTERS_FORMAT:
        raise ClusterError(
            f"{path}: 'format' must be {CLUSTERS_FORMAT!r}, got {meta.get('format')!r}"
        )
    generator = meta.get("generator")
    if not (
        isinstance(generator, dict)
        and isinstance(generator.get("fingerprint"), str)
        and _is_int(generator.get("resolution"))
        and generator["resolution"] > 0
    ):
        raise ClusterError(
            f'{path}: \'generator\' must be {{"fingerprint": str, "resolution": int, '
            f'"checkpoint": str}}, got {generator!r}'
        )
    for key in ("num_samples", "z_dim", "seed"):
        if not _is_int(meta.get(key)) or meta[key] < (0 if key == "seed" else 1):
            raise ClusterError(f"{path}: {key!r} must be a positive integer, got {meta.get(key)!r}")
    k_values = meta.get("k_values")
    if (
        not isinstance(k_values, list)
        or not k_values
        or not all(_is_int(k) and 2 <= k <= MAX_CLUSTERS for k in k_values)
    ):
        raise ClusterError(
            f"{path}: 'k_values' must be a non-empty list of integers in [2, {MAX_CLUSTERS}], "
            f"got {k_values!r}"
        )
    layers = meta.get("layers")
    if not isinstance(layers, list) or not layers:
        raise ClusterError(f"{path}: 'layers' must be a non-empty list")
    for position, layer in enumerate(layers):
        if not (
            isinstance(layer, dict)
            and isinstance(layer.get("name"), str)
            and layer["name"]
            and all(
                _is_int(layer.get(key)) and layer[key] > 0 for key in ("resolution", "channels")
            )
        ):
            raise ClusterError(
                f'{path}: layers[{position}] must be {{"name": str, "resolution": int, '
                f'"channels": int}}, got {layer!r}'
            )
    names = [layer["name"] for layer in layers]
    if len(set(names)) != len(names):
        repeated = sorted({name for name in names if names.count(name) > 1})
        raise ClusterError(f"{path}: duplicate layer names {repeated}")


def load_clusters(clusters_dir: str) -> ClusterRun:
    """Opens a cluster run directory; raises ClusterError naming the file for any problem."""
    clusters_dir = os.path.abspath(os.fspath(clusters_dir))
    if not os.path.isdir(clusters_dir):
        raise ClusterFileNotFoundError(f"cluster run directory {clusters_dir} does not exist")
    path = os.path.join(clusters_dir, CLUSTERS_FILE)
    if not os.path.isfile(path):
        raise ClusterFileNotFoundError(
            f"{path} does not exist: {clusters_dir} is not a (finished) cluster run"
        )
    try:
        with open(path, encoding="utf-8") as file:
            meta = json.load(file)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ClusterError(f"{path}: not valid JSON ({error})") from None
    _check_meta(path, meta)
    return ClusterRun(clusters_dir, meta)


# === Clustering ===


def _check_positive_int(name: str, value) -> int:
    if not _is_int(value) or value < 1:
        raise ClusterError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_k_values(k_values) -> list[int]:
    try:
        values = list(k_values)
    except TypeError:
        raise ClusterError(f"k_values must be a list of integers, got {k_values!r}") from None
    if not values or not all(_is_int(k) and 2 <= k <= MAX_CLUSTERS for k in values):
        raise ClusterError(
            f"k_values must be a non-empty list of integers in [2, {MAX_CLUSTERS}], got {values!r}"
        )
    if len(set(values)) != len(values):
        raise ClusterError(f"k_values repeats a value: {values!r}")
    return sorted(int(k) for k in values)


def _check_generator_meta(generator_meta) -> dict:
    if not (
        isinstance(generator_meta, dict)
        and isinstance(generator_meta.get("fingerprint"), str)
        and generator_meta["fingerprint"]
        and _is_int(generator_meta.get("resolution"))
    ):
        raise ClusterError(
            'generator_meta must be {"fingerprint": non-empty str, "resolution": int, '
            f'"checkpoint": str}}, got {generator_meta!r}'
        )
    return {
        "fingerprint": generator_meta["fingerprint"],
        "resolution": int(generator_meta["resolution"]),
        "checkpoint": str(generator_meta.get("checkpoint", "")),
        **{
            k: v
            for k, v in generator_meta.items()
            if k not in ("fingerprint", "resolution", "checkpoint")
        },
    }


def _prepare_out_dir(out_dir: str, overwrite: bool) -> None:
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        if not overwrite:
            raise ClusterError(
                f"out_dir {out_dir} is not empty; choose another folder or pass overwrite=True"
            )
        annotations = sorted(glob.glob(os.path.join(out_dir, "annotations_k*.json")))
        if annotations:
            # New clusters renumber the ids, so the old annotations would silently mislabel.
            raise ClusterError(
                f"out_dir {out_dir} holds annotations {[os.path.basename(a) for a in annotations]}"
                " that would no longer match new clusters; move them away before overwriting"
            )
        for name in (CLUSTERS_FILE, LATENTS_FILE):
            if os.path.isfile(os.path.join(out_dir, name)):
                os.remove(os.path.join(out_dir, name))
        for folder in ["samples"] + sorted(glob.glob(os.path.join(out_dir, "k[0-9][0-9]*"))):
            folder = os.path.join(out_dir, folder)
            if os.path.isdir(folder):
                shutil.rmtree(folder)
    os.makedirs(out_dir, exist_ok=True)


def _check_batch(images, features, z, layers, resolution) -> tuple[np.ndarray, dict]:
    """Validates one feature_fn output against the layer metadata; returns (images, features)."""
    n = z.shape[0]
    images = np.asarray(images)
    if images.shape != (n, resolution, resolution, 3):
        raise ClusterError(
            f"feature_fn returned images of shape {list(images.shape)}, expected "
            f"[{n}, {resolution}, {resolution}, 3] (generator_meta resolution {resolution})"
        )
    if images.dtype != np.uint8:
        raise ClusterError(f"feature_fn must return uint8 images, got {images.dtype}")
    if not isinstance(features, dict):
        raise ClusterError(f"feature_fn must return a dict of layer features, got {type(features)}")
    checked = {}
    for layer in layers:
        name = layer["name"]
        if name not in features:
            raise ClusterError(
                f"feature_fn returned no layer {name!r}; it returned {sorted(features)}"
            )
        value = np.asarray(features[name])
        expected = (n, layer["resolution"], layer["resolution"], layer["channels"])
        if value.shape != expected:
            raise ClusterError(
                f"feature_fn layer {name!r} has shape {list(value.shape)}, expected "
                f"{list(expected)} (resolution {layer['resolution']}, {layer['channels']} channels)"
            )
        checked[name] = value
    return images, checked


def _infer_layers(features: dict) -> list[dict]:
    layers = []
    for name, value in features.items():
        value = np.asarray(value)
        if value.ndim != 4 or value.shape[1] != value.shape[2]:
            raise ClusterError(
                f"feature_fn layer {name!r} must have shape [N, r, r, C], got {list(value.shape)}"
            )
        layers.append(
            {"name": name, "resolution": int(value.shape[1]), "channels": int(value.shape[3])}
        )
    return layers


def _check_layers(layers) -> list[dict]:
    if not isinstance(layers, (list, tuple)) or not layers:
        raise ClusterError(f"layers must be a non-empty list of layer dicts, got {layers!r}")
    _check_meta(
        "layers argument",
        {
            "format": CLUSTERS_FORMAT,
            "generator": {"fingerprint": "", "resolution": 1},
            "num_samples": 1,
            "z_dim": 1,
            "seed": 0,
            "k_values": [2],
            "layers": list(layers),
        },
    )
    return [
        {
            "name": layer["name"],
            "resolution": int(layer["resolution"]),
            "channels": int(layer["channels"]),
        }
        for layer in layers
    ]


def _save_png(array: np.ndarray, path: str) -> None:
    # Low zlib effort: these are many small working files, written once and read by the app.
    Image.fromarray(array).save(path, compress_level=1)


def _log(progress: bool, message: str) -> None:
    if progress:
        print(f"[cluster_features] {message}", flush=True)


def cluster_features(
    feature_fn: FeatureFn,
    *,
    num_samples: int = 100,
    batch_size: int = 8,
    k_values: Iterable[int] = range(3, 24),
    out_dir: str,
    z_dim: int,
    seed: int = 0,
    generator_meta: dict,
    layers: list[dict] | None = None,
    max_pixels_per_layer_batch: int = 20000,
    overview_samples: int = 8,
    overwrite: bool = False,
    progress: bool = True,
) -> ClusterRun:
    """Clusters every layer's activations for every k and writes a cluster run directory.

    Memory stays bounded by one batch of activations, the centres and, per layer, at most
    2 * max_pixels_per_layer_batch pending fitting vectors: nothing is kept across batches.

    Args:
        feature_fn: z [n, z_dim] float32 -> (images uint8 [n, R, R, 3], {layer: float32
            [n, r, r, C]}); must be deterministic in z (constant noise), because pass 2
            re-synthesizes every batch from the saved z. Truncation, if any, is its business.
        num_samples: N, the number of samples drawn (the reference default is 100).
        batch_size: samples per feature_fn call.
        k_values: the numbers of clusters, each in [2, 256] (reference: 3..23).
        out_dir: the run directory; must be empty or absent unless overwrite.
        z_dim: length of z.
        seed: seed of z (saved to latents.npy), of the pixel subsampling and of k-means.
        generator_meta: {"fingerprint": str, "resolution": R, "checkpoint": str}, written to
            clusters.json; label mappings are tied to the fingerprint.
        layers: [{"name", "resolution", "channels"}] to cluster, in synthesis order; None:
            every layer feature_fn returns, in its order.
        max_pixels_per_layer_batch: at most this many pixels of a layer, drawn at random with a
            fixed seed, feed one k-means update per batch; assignment always uses all pixels.
            Must be >= max(k_values).
        overview_samples: columns (first samples) of each overview.png.
        overwrite: replace an earlier run's files in out_dir (refused while annotation files
            are there: new clusters would not match them).
        progress: print one line per batch.

    Returns:
        The written run, as `load_clusters(out_dir)`.
    """
    num_samples = _check_positive_int("num_samples", num_samples)
    batch_size = _check_positive_int("batch_size", batch_size)
    z_dim = _check_positive_int("z_dim", z_dim)
    overview_samples = _check_positive_int("overview_samples", overview_samples)
    max_pixels = _check_positive_int("max_pixels_per_layer_batch", max_pixels_per_layer_batch)
    if not _is_int(seed) or seed < 0:
        raise ClusterError(f"seed must be a non-negative integer, got {seed!r}")
    k_values = _check_k_values(k_values)
    if max_pixels < max(k_values):
        raise ClusterError(
            f"max_pixels_per_layer_batch={max_pixels} must be >= the largest k ({max(k_values)})"
        )
    generator = _check_generator_meta(generator_meta)
    resolution = generator["resolution"]
    if layers is not None:
        layers = _check_layers(layers)
    out_dir = os.path.abspath(os.fspath(out_dir))
    _prepare_out_dir(out_dir, overwrite)

    latents = np.random.default_rng(seed).standard_normal((num_samples, z_dim))
    latents = latents.astype(np.float32)  # [N, z_dim]
    np.save(os.path.join(out_dir, LATENTS_FILE), latents)
    os.makedirs(os.path.join(out_dir, "samples"), exist_ok=True)
    batches = [
        (start, min(start + batch_size, num_samples)) for start in range(0, num_samples, batch_size)
    ]
    started = time.time()

    # --- Pass 1: fit every (layer, k) on bounded pixel subsets, one batch at a time.
    models: dict[str, dict[int, SphericalMiniBatchKMeans]] = {}
    pending: dict[str, np.ndarray] = {}
    first_images = None

    def fit(name: str, vectors: np.ndarray) -> None:
        for k, model in models[name].items():
            if model.is_fitted or vectors.shape[0] >= k:
                model.partial_fit(vectors)

    for batch_index, (start, stop) in enumerate(batches):
        z = latents[start:stop]  # [n, z_dim]
        images, features = feature_fn(z)
        if layers is None:
            layers = _infer_layers(features)
        images, features = _check_batch(images, features, z, layers, resolution)
        if first_images is None:
            first_images = images.copy()
            models = {
                layer["name"]: {k: SphericalMiniBatchKMeans(k, seed=seed) for k in k_values}
                for layer in layers
            }
            pending = {
                layer["name"]: np.zeros((0, layer["channels"]), np.float32) for layer in layers
            }
        for offset, image in enumerate(images):
            _save_png(image, os.path.join(out_dir, "samples", sample_name(start + offset)))
        for layer_index, layer in enumerate(layers):
            name = layer["name"]
            flat = features[name].reshape(-1, layer["channels"])  # [n*r*r, C]
            if flat.shape[0] > max_pixels:
                rng = np.random.default_rng((seed, batch_index, layer_index))
                flat = flat[np.sort(rng.choice(flat.shape[0], max_pixels, replace=False))]
            vectors = l2_normalize(flat)  # [<= max_pixels, C]
            if not np.isfinite(vectors).all():
                raise ClusterError(
                    f"feature_fn layer {name!r} returned non-finite values (batch of samples "
                    f"{start}..{stop - 1})"
                )
            # Small layers collect several batches so every update sees enough pixels.
            pending[name] = np.concatenate([pending[name], vectors])
            while pending[name].shape[0] >= max_pixels:
                fit(name, pending[name][:max_pixels])
                pending[name] = pending[name][max_pixels:]
        # `flat` may be a view of the last layer: drop every reference before the next batch.
        del features, flat, vectors
        _log(
            progress,
            f"pass 1/2 (fit): samples {stop}/{num_samples} ({time.time() - started:.1f} s)",
        )
    for layer in layers:
        name = layer["name"]
        if pending[name].shape[0]:
            fit(name, pending[name])
        pending[name] = None
        for k, model in models[name].items():
            if not model.is_fitted:
                raise ClusterError(
                    f"layer {name!r} has only {num_samples * layer['resolution'] ** 2} pixels "
                    f"in {num_samples} samples, fewer than k={k}; use more samples or smaller k"
                )

    centers = {k: {} for k in k_values}
    for k in k_values:
        for layer in layers:
            centers[k][layer["name"]] = models[layer["name"]][k].centers  # [k, C]
            folder = os.path.join(out_dir, k_folder(k), "centers")
            os.makedirs(folder, exist_ok=True)
            np.save(os.path.join(folder, f"{layer['name']}.npy"), centers[k][layer["name"]])
    models.clear()

    # --- Pass 2: re-synthesize, assign every pixel, write maps, colours and overviews.
    for k in k_values:
        for kind in ("maps", "colour"):
            for layer in layers:
                os.makedirs(os.path.join(out_dir, k_folder(k), kind, layer["name"]), exist_ok=True)
    num_overview = min(overview_samples, num_samples)
    overview_ids = {k: {layer["name"]: [] for layer in layers} for k in k_values}
    for batch_index, (start, stop) in enumerate(batches):
        z = latents[start:stop]
        images, features = _check_batch(*feature_fn(z), z, layers, resolution)
        if batch_index == 0:
            difference = np.abs(images.astype(np.int16) - first_images.astype(np.int16)).mean()
            if difference > 1.0:
                raise ClusterError(
                    "feature_fn is not deterministic: re-synthesizing the first batch from the "
                    f"same z changed the images (mean absolute difference {difference:.2f}); use "
                    "constant noise (noise_mode='const') so pass 2 reproduces pass 1"
                )
        for layer in layers:
            name = layer["name"]
            for k in k_values:
                ids = assign(features[name], centers[k][name]).astype(np.uint8)  # [n, r, r]
                colours = CLUSTER_COLORS[ids]  # [n, r, r, 3]
                k_dir = os.path.join(out_dir, k_folder(k))
                for offset in range(stop - start):
                    file_name = sample_name(start + offset)
                    _save_png(ids[offset], os.path.join(k_dir, "maps", name, file_name))
                    _save_png(colours[offset], os.path.join(k_dir, "colour", name, file_name))
                    if start + offset < num_overview:
                        overview_ids[k][name].append(ids[offset])
        del features
        _log(
            progress,
            f"pass 2/2 (assign): samples {stop}/{num_samples} ({time.time() - started:.1f} s)",
        )

    for k in k_values:
        overview = render_overview([overview_ids[k][layer["name"]] for layer in layers], resolution)
        _save_png(overview, os.path.join(out_dir, k_folder(k), "overview.png"))

    meta = {
        "format": CLUSTERS_FORMAT,
        "generator": generator,
        "num_samples": num_samples,
        "k_values": k_values,
        "seed": int(seed),
        "z_dim": z_dim,
        "layers": layers,
        "max_pixels_per_layer_batch": max_pixels,
        "batch_size": batch_size,
    }
    # Written last (and atomically): its presence marks a finished run.
    temporary = os.path.join(out_dir, CLUSTERS_FILE + ".tmp")
    with open(temporary, "w", encoding="utf-8") as file:
        json.dump(meta, file, indent=2)
    os.replace(temporary, os.path.join(out_dir, CLUSTERS_FILE))
    _log(progress, f"wrote {out_dir} ({time.time() - started:.1f} s)")
    return load_clusters(out_dir)


def upsample_nearest(array: np.ndarray, size: int) -> np.ndarray:
    """[h, w, ...] -> [size, size, ...] by nearest neighbour (exact repeats for integer ratios)."""
    rows = (np.arange(size) * array.shape[0]) // size  # [size]
    cols = (np.arange(size) * array.shape[1]) // size  # [size]
    return array[rows][:, cols]


def render_overview(ids_per_layer: list[list[np.ndarray]], resolution: int) -> np.ndarray:
    """The overview image: one row per layer, one column per sample, tiles R x R.

    Args:
        ids_per_layer: per layer (synthesis order), the [r, r] cluster-id maps of the first
            samples (the same count for every layer).
        resolution: R, the tile size; every map is upsampled nearest to it.

    Returns:
        [num_layers * R, num_samples * R, 3] uint8.
    """
    rows = []
    for maps in ids_per_layer:
        tiles = [colorize_clusters(upsample_nearest(ids, resolution)) for ids in maps]
        rows.append(np.concatenate(tiles, axis=1))  # [R, n * R, 3]
    return np.concatenate(rows, axis=0)  # [L * R, n * R, 3]


__all__ = [
    "CLUSTER_COLORS",
    "CLUSTERS_FORMAT",
    "ClusterError",
    "ClusterFileNotFoundError",
    "ClusterRun",
    "SphericalMiniBatchKMeans",
    "assign",
    "cluster_features",
    "colorize_clusters",
    "k_folder",
    "l2_normalize",
    "load_clusters",
    "render_overview",
    "sample_name",
    "seed_centers",
    "spherical_kmeans_plus_plus",
    "upsample_nearest",
]
