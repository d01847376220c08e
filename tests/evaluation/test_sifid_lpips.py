"""evaluation/sifid.py and evaluation/lpips.py: known answers (identical inputs -> 0, symmetric,
monotone under growing noise) and their weight files."""

import json

import numpy as np
import pytest

from evaluation import lpips as lpips_lib
from evaluation import sifid as sifid_lib


def _noisy(image, sigmas, seed=0):
    """The image plus Gaussian noise of each sigma (clipped to uint8): [len(sigmas), H, W, 3]."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(image.shape)
    return np.stack([np.clip(image + sigma * noise, 0, 255).astype(np.uint8) for sigma in sigmas])


def _scene(size=32, seed=0):
    """A smooth image with structure (noise then blur), so that added noise is a change."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (size // 8, size // 8, 3)).astype(np.float64)
    return np.kron(coarse, np.ones((8, 8, 1))).astype(np.uint8)  # [size, size, 3]


@pytest.fixture(scope="module")
def random_sifid():
    return sifid_lib.SIFIDFeatures("random", seed=0)


@pytest.fixture(scope="module")
def random_lpips():
    return lpips_lib.LPIPS("random", "uniform", seed=0, batch_size=3)


# ---------------------------------------------------------------------------------------------
# SIFID
# ---------------------------------------------------------------------------------------------


def test_sifid_identical_zero_symmetric_monotone(random_sifid):
    real = _scene()
    fakes = _noisy(real, [0.0, 8.0, 32.0, 96.0])
    values = random_sifid.sifid(real, fakes)["pool1"]
    assert values.shape == (4,)
    assert values[0] == pytest.approx(0.0, abs=1e-6)
    assert np.all(np.diff(values) > 0), values  # more noise, further from the real image
    other = _scene(seed=1)
    forward = random_sifid.sifid(real, other[None])["pool1"][0]
    backward = random_sifid.sifid(other, real[None])["pool1"][0]
    assert forward > 0 and forward == pytest.approx(backward, rel=1e-6)
    # pool1 is a 6 x 6 map of 64 channels at 32 px: positions are the samples.
    maps = random_sifid.feature_maps(real[None])
    assert maps["pool1"].shape == (1, 6, 6, 64)
    mean, cov = sifid_lib.position_statistics(maps["pool1"][0])
    np.testing.assert_allclose(mean, maps["pool1"][0].reshape(36, 64).mean(axis=0), rtol=1e-6)
    assert cov.shape == (64, 64)
    assert not random_sifid.comparable


def test_sifid_refuses_small_or_mismatched_images(random_sifid):
    with pytest.raises(sifid_lib.SIFIDError, match="12x12 px.*at least 15 px"):
        random_sifid.sifid(np.zeros((12, 12, 3), np.uint8), np.zeros((1, 12, 12, 3), np.uint8))
    with pytest.raises(sifid_lib.SIFIDError, match="compares images of one size"):
        random_sifid.sifid(_scene(32), _scene(40)[None])
    with pytest.raises(sifid_lib.SIFIDError, match="stages must be among"):
        sifid_lib.SIFIDFeatures("random", stages=("pool9",))


@pytest.mark.slow
def test_sifid_all_layers_stages():
    sifid = sifid_lib.SIFIDFeatures("random", stages=sifid_lib.ALL_STAGES)
    real = _scene(80)
    values = sifid.sifid(real, _noisy(real, [0.0, 64.0]))
    assert set(values) == {"pool1", "pool2", "mixed7"}
    for stage, stage_values in values.items():
        assert stage_values[0] == pytest.approx(0.0, abs=1e-6) and stage_values[1] > 0, stage
    maps = sifid.feature_maps(real[None])
    assert [maps[s].shape[-1] for s in sifid_lib.ALL_STAGES] == [64, 192, 768]
    with pytest.raises(sifid_lib.SIFIDError, match="at least 75 px.*drop --sifid_all_layers"):
        sifid.check_size(64, 64)


# ---------------------------------------------------------------------------------------------
# LPIPS
# ---------------------------------------------------------------------------------------------


def test_lpips_identical_zero_symmetric_monotone(random_lpips):
    real = _scene()
    noisy = _noisy(real, [0.0, 8.0, 32.0, 96.0])
    same = np.broadcast_to(real, noisy.shape)
    forward = random_lpips(same, noisy)  # batches of 3 and 1
    assert forward.shape == (4,) and forward[0] == pytest.approx(0.0, abs=1e-7)
    assert np.all(np.diff(forward) > 0), forward
    np.testing.assert_allclose(random_lpips(noisy, same), forward, rtol=1e-5, atol=1e-8)
    assert random_lpips.comparability == "random" and not random_lpips.comparable
    assert random_lpips.note.startswith(lpips_lib.NOT_COMPARABLE)
    with pytest.raises(ValueError, match="at least 16 px"):
        random_lpips(np.zeros((1, 8, 8, 3), np.uint8), np.zeros((1, 8, 8, 3), np.uint8))
    # Diversity over all pairs of 4 images (6), or a seeded draw; distance to train per image.
    assert len(lpips_lib.pair_indices(4, 200)) == 6
    drawn = lpips_lib.pair_indices(10, 5, seed=3)
    assert drawn.shape == (5, 2) and np.all(drawn[:, 0] < drawn[:, 1])
    diversity = lpips_lib.diversity(random_lpips, noisy)
    assert diversity.shape == (6,) and np.all(diversity > 0)
    to_train = lpips_lib.distance_to_train(random_lpips, noisy, np.stack([real, noisy[3]]))
    np.testing.assert_allclose(to_train[[0, 3]], 0.0, atol=1e-7)  # each is one of the two
    assert np.all(to_train <= forward + 1e-7)


def _write_safetensors(path, tensors):
    """A minimal safetensors writer (the format: 8-byte header size, JSON header, data)."""
    header, body, offset = {}, b"", 0
    for name, array in tensors.items():
        data = np.ascontiguousarray(array, "<f4").tobytes()
        header[name] = {
            "dtype": "F32",
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        body += data
        offset += len(data)
    encoded = json.dumps(header).encode()
    path.write_bytes(len(encoded).to_bytes(8, "little") + encoded + body)


def test_lpips_linear_weight_files(tmp_path, random_lpips):
    rng = np.random.default_rng(0)
    ours = {
        key: rng.random(c).astype(np.float32)
        for key, c in zip(lpips_lib.LINEAR_KEYS, lpips_lib.CHANNELS)
    }
    official = {
        lpips_lib.OFFICIAL_LINEAR_KEY.format(index=i): ours[key].reshape(1, -1, 1, 1)
        for i, key in enumerate(lpips_lib.LINEAR_KEYS)
    }
    np.savez(tmp_path / "ours.npz", **ours)
    np.savez(tmp_path / "official.npz", **official)
    _write_safetensors(tmp_path / "official.safetensors", official)
    for name in ("ours.npz", "official.npz", "official.safetensors"):
        loaded = lpips_lib.load_linear_weights(str(tmp_path / name))
        for got, want in zip(loaded, ours.values()):
            np.testing.assert_array_equal(got, want)
    converted = lpips_lib.convert_linear_weights(
        str(tmp_path / "official.safetensors"), str(tmp_path / "canonical.npz")
    )
    with np.load(converted) as archive:
        assert sorted(archive.files) == list(lpips_lib.LINEAR_KEYS)
        np.testing.assert_array_equal(archive["lin4"], ours["lin4"])
    uniform = lpips_lib.load_linear_weights("uniform")
    assert [w.shape[0] for w in uniform] == list(lpips_lib.CHANNELS)
    np.testing.assert_allclose(uniform[0], 1 / 64)

    # Errors name the flag and file.
    np.savez(tmp_path / "negative.npz", **dict(ours, lin2=-ours["lin2"]))
    with pytest.raises(
        lpips_lib.LPIPSWeightsError, match="negative.npz: lin2 must be finite and non-negative"
    ):
        lpips_lib.load_linear_weights(str(tmp_path / "negative.npz"))
    np.savez(tmp_path / "partial.npz", lin0=ours["lin0"])
    with pytest.raises(
        lpips_lib.LPIPSWeightsError, match=r"--lpips_linear_weights=.*partial.npz: no 'lin1'"
    ):
        lpips_lib.load_linear_weights(str(tmp_path / "partial.npz"))
    with pytest.raises(FileNotFoundError, match="--lpips_linear_weights=.*missing.npz"):
        lpips_lib.load_linear_weights(str(tmp_path / "missing.npz"))
    (tmp_path / "w.pth").write_bytes(b"torch")
    with pytest.raises(lpips_lib.LPIPSWeightsError, match="expected a .npz or .safetensors"):
        lpips_lib.load_linear_weights(str(tmp_path / "w.pth"))

    # LPIPS is linear in the weights: doubling every weight doubles the distance. The uniform
    # run above and one with 2 / C weights share the random backbone (same seed).
    doubled = {key: 2.0 * w for key, w in zip(lpips_lib.LINEAR_KEYS, uniform)}
    np.savez(tmp_path / "doubled.npz", **doubled)
    scaled = lpips_lib.LPIPS("random", str(tmp_path / "doubled.npz"), seed=0)
    a, b = _scene(), _scene(seed=1)
    np.testing.assert_allclose(
        scaled(a[None], b[None]), 2.0 * random_lpips(a[None], b[None]), rtol=1e-5
    )
    assert scaled.comparability == "random"  # a random backbone is never comparable


def test_lpips_backbones(tmp_path, monkeypatch):
    # A torchvision-layout features file ([out, in, kh, kw]) lands in Keras' [kh, kw, in, out].
    source = lpips_lib._keras_vgg16(None)
    lpips_lib._randomize(source, seed=5)
    tensors = {}
    for index, layer in zip(lpips_lib.TORCHVISION_CONV_INDICES, lpips_lib.KERAS_CONV_LAYERS):
        kernel = source.get_layer(layer).kernel.numpy()
        tensors[f"features.{index}.weight"] = np.transpose(kernel, (3, 2, 0, 1))
        tensors[f"features.{index}.bias"] = np.full(kernel.shape[-1], 0.01 * index, np.float32)
    np.savez(tmp_path / "vgg16_features.npz", **tensors)
    model, convention = lpips_lib.build_backbone(str(tmp_path / "vgg16_features.npz"))
    assert convention == "torchvision"
    for layer in ("block1_conv1", "block3_conv2", "block5_conv3"):
        np.testing.assert_array_equal(
            model.get_layer(layer).kernel.numpy(), source.get_layer(layer).kernel.numpy()
        )
    np.testing.assert_allclose(model.get_layer("block5_conv3").bias.numpy(), 0.28)
    assert lpips_lib.comparability("x.npz", "lin.npz", "torchvision") == "published"
    assert lpips_lib.comparability("imagenet", "lin.npz", "caffe") == "close"
    assert lpips_lib.comparability("imagenet", "uniform", "caffe") == "random"

    del tensors["features.28.weight"]
    np.savez(tmp_path / "short.npz", **tensors)
    with pytest.raises(lpips_lib.LPIPSWeightsError, match=r"short.npz: no '28.weight'"):
        lpips_lib.build_backbone(str(tmp_path / "short.npz"))

    def offline(weights):
        raise Exception("URL fetch failure")

    monkeypatch.setattr(lpips_lib, "_keras_vgg16", offline)
    with pytest.raises(lpips_lib.LPIPSWeightsError, match="imagenet.*offline.*PATH.h5"):
        lpips_lib.build_backbone("imagenet")
    with pytest.raises(FileNotFoundError, match="--lpips_backbone_weights=.*none.h5"):
        lpips_lib.build_backbone(str(tmp_path / "none.h5"))
