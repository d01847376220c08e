"""Spherical k-means, cluster runs on disk (models/synthesis_in_style/clusters.py) and the fake
generator.

`FakeDocumentGenerator` is a fixed numpy "generator" of 32 px document pages: a printed block
(horizontal lines) and a handwritten block (diagonal strokes) whose positions depend on z. Every
layer's features are a per-class prototype direction (planted clusters) plus a small smooth
perturbation, times a positive, smoothly varying magnitude (which misleads Euclidean but not
spherical k-means), all deterministic functions of z.
Coarse layers (<= 16 px) carry the block ("region") class, the 32 px layers the ink class.
test_synthetic_pairs.py imports it.
"""

import json
import os

import numpy as np
import pytest
from PIL import Image

from models.synthesis_in_style import clusters as feature_clusters
from models.synthesis_in_style.clusters import (
    CLUSTER_COLORS,
    ClusterError,
    SphericalMiniBatchKMeans,
    assign,
    cluster_features,
    load_clusters,
)

RESOLUTION = 32
Z_DIM = 8
FAKE_LAYERS = [
    {"name": "conv00_4px", "resolution": 4, "channels": 6},
    {"name": "conv01_8px", "resolution": 8, "channels": 6},
    {"name": "conv02_8px", "resolution": 8, "channels": 6},
    {"name": "conv03_16px", "resolution": 16, "channels": 6},
    {"name": "conv04_16px", "resolution": 16, "channels": 6},
    {"name": "conv05_32px", "resolution": 32, "channels": 4},
    {"name": "conv06_32px", "resolution": 32, "channels": 4},
]
GENERATOR_META = {
    "fingerprint": "fake-generator-v1",
    "resolution": RESOLUTION,
    "checkpoint": "fake.ckpt",
}
PAPER, PRINTED, HANDWRITTEN = 0, 1, 2  # ids of documents.json
FRAME_THRESHOLD = 1.0  # z[4] above it draws a page frame (a full-page ink component)


def _bucket(value: float, count: int) -> int:
    return int(np.clip(np.floor((value + 1.5) / 3.0 * count), 0, count - 1))


class FakeDocumentGenerator:
    """feature_fn of the shared contract, with planted clusters; counts its calls."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.prototypes, self.mixing, self.frequencies = {}, {}, {}
        for layer in FAKE_LAYERS:
            channels = layer["channels"]
            basis, _ = np.linalg.qr(rng.standard_normal((channels, channels)))
            self.prototypes[layer["name"]] = basis[:3].astype(np.float32)  # [3, C] orthonormal
            self.mixing[layer["name"]] = rng.standard_normal((channels, Z_DIM))
            self.frequencies[layer["name"]] = rng.uniform(0.1, 0.4, (2, channels))
        self.calls = []  # batch size of every call

    @staticmethod
    def page(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(region classes [R, R], ink classes [R, R]) of one z; blocks on a 4-px grid."""
        region = np.zeros((RESOLUTION, RESOLUTION), np.int64)
        ink = np.zeros((RESOLUTION, RESOLUTION), np.int64)
        top, left = 4 * (1 + _bucket(z[0], 3)), 4 * _bucket(z[1], 2)
        region[top : top + 12, left : left + 12] = PRINTED
        for row in range(top + 1, top + 12, 3):
            ink[row, left + 1 : left + 11] = PRINTED
        top, left = 4 * (1 + _bucket(z[2], 3)), 16 + 4 * _bucket(z[3], 2)
        region[top : top + 12, left : left + 12] = HANDWRITTEN
        rows, cols = np.mgrid[top + 2 : top + 10, left + 2 : left + 10]
        ink[rows, cols] = np.where((rows + cols) % 4 == 0, HANDWRITTEN, ink[rows, cols])
        if z[4] > FRAME_THRESHOLD:
            ink[[0, -1], :] = PRINTED
            ink[:, [0, -1]] = PRINTED
        return region, ink

    @staticmethod
    def planted(layer: dict, z: np.ndarray) -> np.ndarray:
        """[r, r] planted class of every pixel of `layer` for one z."""
        region, ink = FakeDocumentGenerator.page(z)
        if layer["resolution"] == RESOLUTION:
            return ink
        step = RESOLUTION // layer["resolution"]
        return region[::step, ::step]

    def __call__(self, z: np.ndarray):
        z = np.asarray(z, np.float32)
        self.calls.append(z.shape[0])
        images, features = [], {layer["name"]: [] for layer in FAKE_LAYERS}
        for sample in z:
            _, ink = self.page(sample)
            shade = np.float32(10 * np.tanh(sample[5]))
            colours = np.array([[235, 230, 220], [20, 20, 120], [150, 20, 20]], np.float32)
            images.append(np.clip(colours[ink] + shade, 0, 255).astype(np.uint8))
            for layer in FAKE_LAYERS:
                name, size = layer["name"], layer["resolution"]
                classes = self.planted(layer, sample)  # [r, r]
                ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
                phase = self.mixing[name] @ sample  # [C]
                fy, fx = self.frequencies[name]
                wobble = np.sin(ys[..., None] * fy + xs[..., None] * fx + phase)  # [r, r, C]
                magnitude = 1.0 + 0.8 * np.sin(0.3 * ys + 0.2 * xs + sample[6])  # [r, r]
                value = (self.prototypes[name][classes] + 0.08 * wobble) * magnitude[..., None]
                features[name].append(value.astype(np.float32))
        return np.stack(images), {name: np.stack(v) for name, v in features.items()}


def make_cluster_run(
    out_dir, *, num_samples=12, batch_size=5, k_values=(3, 4), seed=0, generator=None, **kwargs
):
    generator = generator or FakeDocumentGenerator()
    run = cluster_features(
        generator,
        num_samples=num_samples,
        batch_size=batch_size,
        k_values=k_values,
        out_dir=str(out_dir),
        z_dim=Z_DIM,
        seed=seed,
        generator_meta=GENERATOR_META,
        layers=FAKE_LAYERS,
        progress=False,
        **kwargs,
    )
    return run, generator


def purity(ids: np.ndarray, truth: np.ndarray) -> float:
    """Share of pixels whose cluster's majority planted class is their own."""
    hits = 0
    for cluster in np.unique(ids):
        hits += np.bincount(truth[ids == cluster]).max()
    return hits / ids.size


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory):
    run, generator = make_cluster_run(tmp_path_factory.mktemp("clusters") / "run")
    generator.calls_during_run = list(generator.calls)
    return run, generator


# === Spherical k-means ===


def _planted_unit_vectors(seed=0, num_vectors=1600, channels=16):
    rng = np.random.default_rng(seed)
    directions, _ = np.linalg.qr(rng.standard_normal((channels, channels)))
    directions = directions[:4]  # [4, 16] orthonormal
    # Unbalanced like page pixels: small clusters are the ones a poor seeding misses.
    truth = rng.choice(4, num_vectors, p=[0.7, 0.2, 0.06, 0.04])
    # Random magnitudes: Euclidean k-means would split by length, spherical must not.
    scale = rng.uniform(0.1, 10.0, (truth.size, 1))
    vectors = (directions[truth] + 0.1 * rng.standard_normal((truth.size, channels))) * scale
    return vectors.astype(np.float32), truth, directions


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spherical_kmeans_recovers_planted_directions(seed):
    vectors, truth, directions = _planted_unit_vectors(seed)
    model = SphericalMiniBatchKMeans(4, seed=seed)
    for chunk in np.array_split(np.arange(truth.size), 8):
        model.partial_fit(vectors[chunk])
    assert model.num_steps == 8
    centers = model.centers
    assert centers.shape == (4, 16) and centers.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(centers, axis=1), 1.0, atol=1e-5)
    ids = model.predict(vectors)
    assert purity(ids, truth) > 0.99
    # Every planted direction has a centre within a few degrees.
    assert (directions @ centers.T).max(axis=1).min() > 0.98


def test_assign_is_cosine_argmax():
    rng = np.random.default_rng(1)
    features = rng.standard_normal((2, 5, 5, 8)).astype(np.float32) * rng.uniform(
        0.1, 5, (2, 5, 5, 1)
    ).astype(np.float32)
    centers = rng.standard_normal((6, 8)).astype(np.float32) * 3.0  # not unit: normalised
    unit_f = features / np.linalg.norm(features, axis=-1, keepdims=True)
    unit_c = centers / np.linalg.norm(centers, axis=-1, keepdims=True)
    expected = np.argmax(unit_f @ unit_c.T, axis=-1)
    ids = assign(features, centers)
    assert ids.shape == (2, 5, 5)
    np.testing.assert_array_equal(ids, expected)


def test_assign_streams_in_chunks(monkeypatch):
    monkeypatch.setattr(feature_clusters, "ASSIGN_CHUNK_ROWS", 7)
    rng = np.random.default_rng(2)
    features, centers = rng.standard_normal((3, 4, 4, 5)), rng.standard_normal((3, 5))
    unit_centers = centers / np.linalg.norm(centers, axis=1, keepdims=True)
    np.testing.assert_array_equal(
        assign(features, centers), np.argmax(features @ unit_centers.T, axis=-1)
    )


def test_assign_rejects_channel_mismatch():
    with pytest.raises(ClusterError, match="4 channels.*centers have 3"):
        assign(np.zeros((2, 2, 2, 4)), np.ones((5, 3)))


def test_first_partial_fit_needs_k_vectors():
    with pytest.raises(ClusterError, match="at least k=5"):
        SphericalMiniBatchKMeans(5).partial_fit(np.ones((3, 4)))


def test_cluster_colours_are_fixed_and_distinct():
    assert CLUSTER_COLORS.shape == (256, 3) and CLUSTER_COLORS.dtype == np.uint8
    assert len({tuple(c) for c in CLUSTER_COLORS}) == 256
    np.testing.assert_array_equal(CLUSTER_COLORS[0], [0xF3, 0xC3, 0x00])


# === cluster_features ===


def test_cluster_run_layout(fake_run):
    run, _ = fake_run
    root = run.directory
    with open(os.path.join(root, "clusters.json")) as file:
        meta = json.load(file)
    assert meta["format"] == "semsynth-clusters/1"
    assert meta["generator"] == GENERATOR_META
    assert meta["num_samples"] == 12 and meta["k_values"] == [3, 4]
    assert meta["seed"] == 0 and meta["z_dim"] == Z_DIM and meta["layers"] == FAKE_LAYERS
    latents = np.load(os.path.join(root, "latents.npy"))
    assert latents.shape == (12, Z_DIM) and latents.dtype == np.float32
    np.testing.assert_array_equal(
        latents, np.random.default_rng(0).standard_normal((12, Z_DIM)).astype(np.float32)
    )
    assert sorted(os.listdir(os.path.join(root, "samples"))) == [f"{i:06d}.png" for i in range(12)]
    sample = Image.open(os.path.join(root, "samples", "000003.png"))
    assert sample.mode == "RGB" and sample.size == (RESOLUTION, RESOLUTION)
    for k in (3, 4):
        k_dir = os.path.join(root, f"k{k:02d}")
        assert sorted(os.listdir(k_dir)) == ["centers", "colour", "maps", "overview.png"]
        assert sorted(os.listdir(os.path.join(k_dir, "centers"))) == sorted(
            f"{layer['name']}.npy" for layer in FAKE_LAYERS
        )
        for layer in FAKE_LAYERS:
            name, size = layer["name"], layer["resolution"]
            centers = np.load(os.path.join(k_dir, "centers", f"{name}.npy"))
            assert centers.shape == (k, layer["channels"]) and centers.dtype == np.float32
            np.testing.assert_allclose(np.linalg.norm(centers, axis=1), 1.0, atol=1e-5)
            for kind, mode in (("maps", "L"), ("colour", "RGB")):
                files = sorted(os.listdir(os.path.join(k_dir, kind, name)))
                assert files == [f"{i:06d}.png" for i in range(12)]
                image = Image.open(os.path.join(k_dir, kind, name, "000011.png"))
                assert image.mode == mode and image.size == (size, size)
            ids = np.asarray(Image.open(run.map_path(k, name, 5)))
            colours = np.asarray(Image.open(run.colour_path(k, name, 5)))
            assert ids.max() < k
            np.testing.assert_array_equal(colours, CLUSTER_COLORS[ids])
        overview = Image.open(os.path.join(k_dir, "overview.png"))
        # One row per layer, the first 8 samples as columns, every tile R x R.
        assert overview.size == (8 * RESOLUTION, len(FAKE_LAYERS) * RESOLUTION)
        row = len(FAKE_LAYERS) - 1  # the last layer is at full resolution
        tile = np.asarray(overview)[
            row * RESOLUTION : (row + 1) * RESOLUTION, 2 * RESOLUTION : 3 * RESOLUTION
        ]
        ids = np.asarray(Image.open(run.map_path(k, FAKE_LAYERS[row]["name"], 2)))
        np.testing.assert_array_equal(tile, CLUSTER_COLORS[ids])


def test_cluster_maps_recover_planted_classes(fake_run):
    run, generator = fake_run
    latents = run.latents()
    for k in run.k_values:
        for layer in FAKE_LAYERS:
            if layer["resolution"] < 8:
                continue  # 4 px: blocks are not on its grid, classes are mixed
            ids = np.stack(
                [
                    np.asarray(Image.open(run.map_path(k, layer["name"], i)))
                    for i in range(run.num_samples)
                ]
            )
            truth = np.stack([generator.planted(layer, z) for z in latents])
            assert purity(ids, truth) > 0.99, (k, layer["name"])
            # The maps are the centres' assignment of the re-synthesized features.
            _, features = generator(latents[:2])
            np.testing.assert_array_equal(
                ids[:2], assign(features[layer["name"]], run.centers(k, layer["name"]))
            )


def test_streaming_calls_feature_fn_per_batch(fake_run):
    _, generator = fake_run
    # Pass 1 and pass 2 each see the 12 samples in batches of at most 5, never all at once.
    assert generator.calls_during_run == [5, 5, 2, 5, 5, 2]


def test_fitting_uses_bounded_pixel_subsets(tmp_path, monkeypatch):
    sizes = []
    original = SphericalMiniBatchKMeans.partial_fit

    def recording(self, x):
        sizes.append(np.shape(x)[0])
        return original(self, x)

    monkeypatch.setattr(SphericalMiniBatchKMeans, "partial_fit", recording)
    run, _ = make_cluster_run(
        tmp_path / "run", num_samples=6, batch_size=3, k_values=(3,), max_pixels_per_layer_batch=100
    )
    assert sizes and max(sizes) <= 100
    # Assignment still covers every pixel at native resolution.
    ids = np.asarray(Image.open(run.map_path(3, "conv06_32px", 5)))
    assert ids.shape == (RESOLUTION, RESOLUTION)


def test_cluster_features_refuses_non_empty_out_dir(tmp_path):
    (tmp_path / "old.txt").write_text("x")
    with pytest.raises(ClusterError, match=f"{tmp_path}.*not empty"):
        make_cluster_run(tmp_path, num_samples=2, batch_size=2, k_values=(3,))


def test_cluster_features_overwrite_keeps_annotations_safe(tmp_path):
    make_cluster_run(tmp_path, num_samples=2, batch_size=2, k_values=(3,))
    (tmp_path / "annotations_k03.json").write_text("{}")
    with pytest.raises(ClusterError, match="annotations_k03.json"):
        make_cluster_run(tmp_path, num_samples=2, batch_size=2, k_values=(3,), overwrite=True)
    os.remove(tmp_path / "annotations_k03.json")
    run, _ = make_cluster_run(tmp_path, num_samples=3, batch_size=2, k_values=(4,), overwrite=True)
    assert run.k_values == (4,) and not os.path.exists(tmp_path / "k03")


def test_cluster_features_detects_non_deterministic_feature_fn(tmp_path):
    generator = FakeDocumentGenerator()
    calls = []

    def noisy(z):
        calls.append(1)
        images, features = generator(z + np.float32(len(calls)))
        return images, features

    with pytest.raises(ClusterError, match="not deterministic.*const"):
        cluster_features(
            noisy,
            num_samples=4,
            batch_size=4,
            k_values=[3],
            out_dir=str(tmp_path / "run"),
            z_dim=Z_DIM,
            seed=0,
            generator_meta=GENERATOR_META,
            layers=FAKE_LAYERS,
            progress=False,
        )


def test_cluster_features_checks_layer_shapes(tmp_path):
    wrong = [dict(FAKE_LAYERS[0], channels=9)]
    with pytest.raises(ClusterError, match="conv00_4px.*expected \\[2, 4, 4, 9\\]"):
        cluster_features(
            FakeDocumentGenerator(),
            num_samples=2,
            batch_size=2,
            k_values=[3],
            out_dir=str(tmp_path / "run"),
            z_dim=Z_DIM,
            seed=0,
            generator_meta=GENERATOR_META,
            layers=wrong,
            progress=False,
        )


def test_cluster_features_too_few_pixels_for_k(tmp_path):
    layers = [FAKE_LAYERS[0]]  # 4 x 4 = 16 pixels per sample
    with pytest.raises(ClusterError, match="conv00_4px.*16 pixels.*k=20"):
        cluster_features(
            FakeDocumentGenerator(),
            num_samples=1,
            batch_size=1,
            k_values=[3, 20],
            out_dir=str(tmp_path / "run"),
            z_dim=Z_DIM,
            seed=0,
            generator_meta=GENERATOR_META,
            layers=layers,
            progress=False,
        )


# === load_clusters ===


def test_load_clusters_reads_the_run(fake_run):
    run, _ = fake_run
    loaded = load_clusters(run.directory)
    assert loaded.k_values == (3, 4)
    assert loaded.layer_names == tuple(layer["name"] for layer in FAKE_LAYERS)
    assert loaded.fingerprint == "fake-generator-v1" and loaded.resolution == RESOLUTION
    assert loaded.centers(4, "conv05_32px").shape == (4, 4)


def test_load_clusters_errors(tmp_path, fake_run):
    run, _ = fake_run
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_clusters(tmp_path / "nowhere")
    with pytest.raises(ClusterError, match="clusters.json does not exist"):
        load_clusters(tmp_path)
    (tmp_path / "clusters.json").write_text("{not json")
    with pytest.raises(ClusterError, match="clusters.json: not valid JSON"):
        load_clusters(tmp_path)
    (tmp_path / "clusters.json").write_text(json.dumps({"format": "other/1"}))
    with pytest.raises(ClusterError, match="'format' must be 'semsynth-clusters/1'"):
        load_clusters(tmp_path)
    with pytest.raises(ClusterError, match=r"no k=7; available k: \[3, 4\]"):
        run.centers(7, "conv05_32px")
    with pytest.raises(ClusterError, match="no layer 'conv99_1px'.*conv00_4px"):
        run.centers(3, "conv99_1px")


def test_load_clusters_missing_centres_file(tmp_path, fake_run):
    import shutil

    run, _ = fake_run
    copy = tmp_path / "copy"
    shutil.copytree(run.directory, copy)
    os.remove(copy / "k03" / "centers" / "conv01_8px.npy")
    with pytest.raises(FileNotFoundError, match="conv01_8px.npy does not exist"):
        load_clusters(copy).centers(3, "conv01_8px")
