"""evaluate.py --mode=one_shot and --mode=palette end to end (random weights), and their input
and flag errors."""

import csv
import json

import numpy as np
import pytest
from absl import flags as absl_flags
from PIL import Image

import flags as cli
from core.config import ConfigError
from datasets.pairs import DatasetError
from evaluation import one_shot, palette_report
from evaluation.pair_folders import PairFolderError, read_pair_folder

THREE = {
    "name": "three",
    "dontcare_id": None,
    "classes": [
        {"id": i, "name": n, "color": c}
        for i, (n, c) in enumerate(
            zip(["sky", "grass", "road"], [[0, 0, 255], [0, 255, 0], [128, 128, 128]])
        )
    ],
}


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, np.uint8)).save(path)


def _pair(seed, size=32):
    """A layout of three horizontal bands (heights vary with the seed) and its image."""
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.integers(4, size - 4, 2))
    mask = np.zeros((size, size), np.uint8)
    mask[cuts[0] :] = 1
    mask[cuts[1] :] = 2
    colours = np.array(THREE_COLOURS, np.float64)[mask]  # [H, W, 3]
    image = np.clip(colours + rng.normal(0, 20, colours.shape), 0, 255)
    return image.astype(np.uint8), mask


THREE_COLOURS = [c["color"] for c in THREE["classes"]]


def _pair_folder(root, count, *, seed=0, targets=True, size=32):
    """A synthetic pair folder as datasets/synthetic_pairs.py writes it."""
    entries = []
    achieved = []
    for i in range(count):
        image, mask = _pair(seed + i, size)
        _save(root / "images" / f"{i:06d}.png", image)
        _save(root / "masks" / f"{i:06d}.png", mask)
        entries.append({"image": f"images/{i:06d}.png", "label": f"masks/{i:06d}.png"})
        achieved.append(np.bincount(mask.ravel(), minlength=3) / mask.size)
    split = max(1, count // 4)
    (root / "train.json").write_text(json.dumps({"pairs": entries[split:], "label_set": "three"}))
    (root / "val.json").write_text(json.dumps({"pairs": entries[:split], "label_set": "three"}))
    (root / "label_set.json").write_text(json.dumps(THREE))
    if targets:
        # Targets: what was asked; pair 0 got exactly its target, the others a shifted one.
        wanted = np.array(achieved, np.float32)
        wanted[1:] = 0.5 * wanted[1:] + 0.5 / 3
        np.save(root / "targets.npy", wanted)
    return str(root)


def _flags(args):
    f = absl_flags.FlagValues()
    cli.define_evaluate_flags(f)
    f(["evaluate.py", *args])
    cli.check_evaluate_mode_flags(f)
    return f


def test_pair_folder_order_label_set_and_targets(tmp_path):
    folder = read_pair_folder(_pair_folder(tmp_path / "s", 5), "--synth_dir", with_targets=True)
    # train.json + val.json in pair order (val holds pair 0 here).
    assert [p[0].rsplit("/", 1)[1] for p in folder.pairs] == [f"{i:06d}.png" for i in range(5)]
    assert folder.label_set.names == ("sky", "grass", "road")
    assert folder.targets.shape == (5, 3)
    np.save(tmp_path / "s" / "targets.npy", np.zeros((4, 3)))
    with pytest.raises(
        PairFolderError, match=r"targets.npy must hold one target palette per pair, \[5, C\]"
    ):
        read_pair_folder(str(tmp_path / "s"), "--synth_dir", with_targets=True)
    (tmp_path / "plain" / "images").mkdir(parents=True)
    with pytest.raises(PairFolderError, match="--real_dir=.*plain is not a pair folder"):
        read_pair_folder(str(tmp_path / "plain"), "--real_dir")


class _ColourInception:
    """A stand-in for InceptionFeatures (whose 299 px passes take a minute on a CPU): per-image
    mean and std of each channel as 6-d features. FID itself is tested in test_fid.py."""

    comparable = False

    def __init__(self, weights, *, seed=0, batch_size=32):
        pass

    def stats_from_files(self, paths, *, name, image_size=None, keep_features=True):
        from datasets.pipeline import load_image
        from evaluation.fid import FeatureStats

        stats = FeatureStats(name=name)
        images = [load_image(path).reshape(-1, 3).astype(np.float64) for path in paths]
        stats.update(np.stack([np.concatenate([x.mean(0), x.std(0)]) for x in images]))
        return stats


def test_palette_mode_end_to_end(tmp_path, monkeypatch):
    from evaluation import inception

    monkeypatch.setattr(inception, "InceptionFeatures", _ColourInception)
    synth = _pair_folder(tmp_path / "synth", 6)
    real = tmp_path / "real"
    for i in range(5):  # images/ + masks/ folders matched by stem
        image, mask = _pair(100 + i)
        _save(real / "images" / f"r{i}.png", image)
        _save(real / "masks" / f"r{i}.png", mask)
    out = tmp_path / "out"
    f = _flags(
        [
            "--mode=palette",
            f"--synth_dir={synth}",
            f"--real_dir={real}",
            "--inception_weights=random",
            f"--output_dir={out}",
            "--batch_size=4",
        ]
    )
    results = palette_report.run_palette(
        f.synth_dir, f.real_dir, f.output_dir, inception_weights=f.inception_weights,
        batch_size=f.batch_size, log=lambda _: None,
    )  # fmt: skip
    assert results["num_generated"] == 6 and results["num_real"] == 5
    assert np.isfinite(results["fid"]) and results["fid"] > 0
    assert results["emd_method"] == "exact" and results["emd"] > 0
    assert results["gmm_components"] == 1  # 5 real palettes: one component
    kl = results["target_metrics"]["kl"]
    assert kl["count"] == 6 and kl["mean"] > 0
    rows = list(csv.DictReader(open(out / "per_sample.csv")))
    assert float(rows[0]["kl"]) == pytest.approx(0.0, abs=1e-9)  # pair 0 hit its target
    assert float(rows[1]["mae"]) > 0
    table = {row["metric"]: row for row in csv.DictReader(open(out / "results.csv"))}
    assert {"fid", "emd_exact", "palette_frechet_distance", "target_js"} <= set(table)
    markdown = (out / "results.md").read_text()
    assert "| gmm_log_likelihood_generated |" in markdown and "NOT comparable" in markdown
    with pytest.raises(FileExistsError, match="--output_dir=.*out already holds results"):
        palette_report.run_palette(synth, str(real), str(out), inception_weights="random")
    # No targets: the set metrics still come, the report says what is missing.
    (tmp_path / "synth" / "targets.npy").unlink()
    again = palette_report.run_palette(
        synth, str(real), str(out), inception_weights="random", overwrite=True, log=print
    )
    assert again["target_metrics"] is None
    assert any("holds no targets.npy" in note for note in again["notes"])


def test_one_shot_mode_without_segmenter(tmp_path):
    synth = _pair_folder(tmp_path / "synth", 4, targets=False)
    image, mask = _pair(50, size=40)  # another size: resized to the generated 32 px
    _save(tmp_path / "real.png", image)
    _save(tmp_path / "real_mask.png", mask)
    f = _flags(
        [
            "--mode=one_shot",
            f"--synth_dir={synth}",
            f"--real_image={tmp_path / 'real.png'}",
            f"--real_mask={tmp_path / 'real_mask.png'}",
            "--inception_weights=random",
            "--lpips_backbone_weights=random",
            "--seg_steps=0",
            f"--output_dir={tmp_path / 'out'}",
            "--sheet_pairs=3",
        ]
    )
    config, _ = cli.one_shot_segmenter_config(f.train_flags, f.seg_steps, f.synth_dir)
    assert config is None
    results = one_shot.run_one_shot(
        f.synth_dir, f.real_image, f.real_mask, f.output_dir,
        inception_weights=f.inception_weights, lpips_backbone_weights=f.lpips_backbone_weights,
        lpips_linear_weights=f.lpips_linear_weights, sheet_pairs=f.sheet_pairs,
        segmenter_config=config, log=lambda _: None,
    )  # fmt: skip
    assert results["num_generated"] == 4 and results["segmentation"] is None
    assert results["sifid"]["pool1"]["count"] == 4 and results["sifid"]["pool1"]["mean"] > 0
    assert results["lpips_diversity"]["count"] == 6  # all pairs of 4
    assert results["lpips_distance_to_train"]["min"] > 0
    assert any("resized to the generated size 32x32" in n for n in results["notes"])
    assert any(n.startswith("LPIPS (random weights: not comparable") for n in results["notes"])
    out = tmp_path / "out"
    rows = {row["metric"] for row in csv.DictReader(open(out / "results.csv"))}
    assert {"sifid_pool1", "lpips_diversity", "lpips_distance_to_train"} <= rows
    assert len(list(csv.DictReader(open(out / "per_image.csv")))) == 4
    assert "LPIPS (random weights" in (out / "results.md").read_text()
    sheet = np.asarray(Image.open(out / "sheet.png"))
    # Real pair + 3 generated, 4 per row: one row of (2 * 32 + 4 gap + 2 * 2 frame) wide cells.
    assert sheet.shape == (32 + 4 + 4, 4 * (72 + 4), 3)
    assert tuple(sheet[0, 0]) == (255, 0, 0)  # the real pair's red frame


def test_one_shot_and_palette_errors(tmp_path):
    synth = _pair_folder(tmp_path / "synth", 3, targets=False)
    image, mask = _pair(9)
    _save(tmp_path / "real.png", image)
    _save(tmp_path / "bad_mask.png", np.full((32, 32), 7))
    with pytest.raises(ConfigError, match="--kid_subsets is not used by --mode=one_shot"):
        _flags(["--mode=one_shot", "--kid_subsets=3"])
    with pytest.raises(ConfigError, match="--real_image is not used by --mode=palette"):
        _flags(["--mode=palette", "--real_image=x.png"])
    with pytest.raises(ConfigError, match="must not set --max_steps.*the budget is --seg_steps"):
        cli.one_shot_segmenter_config("--max_steps=5", 10, synth)
    with pytest.raises(ConfigError, match="--train_flags: .*bogus"):
        cli.one_shot_segmenter_config("--bogus=1", 10, synth)
    config, _ = cli.one_shot_segmenter_config("--batch_size=2", 7, synth)
    assert config.model == "segformer" and config.max_steps == 7 and config.batch_size == 2
    with pytest.raises(one_shot.OneShotError, match="--real_mask is required"):
        one_shot.run_one_shot(synth, str(tmp_path / "real.png"), None, str(tmp_path / "o"))
    with pytest.raises(DatasetError, match=r"bad_mask.png holds values \[7\] outside"):
        one_shot.run_one_shot(
            synth, str(tmp_path / "real.png"), str(tmp_path / "bad_mask.png"), str(tmp_path / "o")
        )
    assert not (tmp_path / "o").exists()  # nothing written before the inputs are checked
    with pytest.raises(palette_report.PaletteEvaluationError, match="--gmm_components=9 exceeds"):
        palette_report.run_palette(synth, synth, str(tmp_path / "p"), gmm_components=9)


class _CheapSIFID:
    """Stand-ins for SIFID and LPIPS: this test is about the segmenters."""

    comparable = True

    def __init__(self, *args, stages=("pool1",), **kwargs):
        self.stages = stages

    def check_size(self, *args, **kwargs):
        pass

    def sifid(self, real, images):
        return {"pool1": np.abs(np.asarray(images, float) - real).mean(axis=(1, 2, 3))}


class _CheapLPIPS:
    comparability, note = "published", None

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, a, b):
        return np.abs(np.asarray(a, np.float32) - b).mean(axis=(1, 2, 3)) + 1.0


@pytest.mark.slow
def test_one_shot_mode_with_segmenters(tmp_path, monkeypatch):
    from evaluation import lpips, sifid

    monkeypatch.setattr(sifid, "SIFIDFeatures", _CheapSIFID)
    monkeypatch.setattr(lpips, "LPIPS", _CheapLPIPS)
    synth = _pair_folder(tmp_path / "synth", 4, targets=False)
    image, mask = _pair(60)
    _save(tmp_path / "real.png", image)
    _save(tmp_path / "real_mask.png", mask)
    for i in range(2):
        image, mask = _pair(70 + i)
        _save(tmp_path / "more" / "images" / f"m{i}.png", image)
        _save(tmp_path / "more" / "masks" / f"m{i}.png", mask)
    config, _ = cli.one_shot_segmenter_config(
        "--batch_size=2 --crop_size=32 --progress=false", 2, synth
    )
    results = one_shot.run_one_shot(
        synth, str(tmp_path / "real.png"), str(tmp_path / "real_mask.png"), str(tmp_path / "out"),
        real_dir=str(tmp_path / "more"), inception_weights="random",
        lpips_backbone_weights="random", segmenter_config=config, seg_steps=2,
        log=lambda _: None,
    )  # fmt: skip
    scores = results["segmentation"]
    assert set(scores) == {"synthetic_to_real", "synthetic_to_real_dir", "real_to_synthetic"}
    assert scores["synthetic_to_real"]["test_pairs"] == 1
    assert scores["synthetic_to_real_dir"]["test_pairs"] == 2
    assert scores["real_to_synthetic"]["train_pairs"] == 3
    assert scores["real_to_synthetic"]["test_pairs"] == 4
    for score in scores.values():
        assert 0.0 <= score["miou"] <= 1.0 and score["steps"] == 2
    rows = {row["metric"] for row in csv.DictReader(open(tmp_path / "out" / "results.csv"))}
    assert {"miou_synthetic_to_real", "miou_real_to_synthetic"} <= rows
    assert (tmp_path / "out" / "runs" / "real_to_synthetic" / "config.json").is_file()
