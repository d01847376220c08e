"""evaluate.py (evaluation/report.py): synthesis metrics end to end, its input errors, semantic
consistency, and the synthetic-to-real experiment (mixed batches, three runs, results files)."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from absl import flags as absl_flags
from conftest import ROOT, TINY_SCENES
from PIL import Image

import flags as cli
from core.config import ConfigError
from core.errors import UserError
from datasets.pairs import DatasetError
from evaluation import report
from evaluation.report import EvaluationError

THREE_CLASSES = {
    "name": "three",
    "dontcare_id": None,
    "classes": [
        {"id": i, "name": n, "color": c}
        for i, (n, c) in enumerate(
            zip(["red", "green", "blue"], [[255, 0, 0], [0, 255, 0], [0, 0, 255]])
        )
    ],
}


def _save(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.asarray(array, np.uint8)).save(path)


def _noise(seed, size=32, offset=0):
    rng = np.random.default_rng(seed)
    return np.clip(rng.integers(0, 200, (size, size, 3)) + offset, 0, 255)


def _folders(root, num_real=5, num_synth=4):
    """real/ noise, synth/ brighter noise (one in a sub-folder), labels/ class-id maps."""
    rng = np.random.default_rng(0)
    for i in range(num_real):
        _save(f"{root}/real/r{i}.png", _noise(i))
    stems = [f"s{i}" for i in range(num_synth - 1)] + ["nested/s9"]
    for i, stem in enumerate(stems):
        _save(f"{root}/synth/{stem}.png", _noise(100 + i, offset=50))
        # FaceSynthetics-style <stem>_seg.png for one of them.
        suffix = "_seg" if i == 0 else ""
        _save(f"{root}/labels/{stem}{suffix}.png", rng.integers(0, 3, (32, 32)))
    return {name: str(root / name) for name in ("real", "synth", "labels")}


def _evaluate(args):
    """evaluate.py's command-line `args` -> the evaluation.report call it makes; errors raise."""
    f = absl_flags.FlagValues()
    cli.define_evaluate_flags(f)
    f(["evaluate.py", *args])
    if f.mode == "synthesis":
        return report.evaluate_synthesis(
            f.synth_dir,
            f.real_dir,
            label_dir=f.label_dir,
            segmenter=f.segmenter,
            inception_weights=f.inception_weights,
            image_size=f.image_size,
            batch_size=f.batch_size,
            kid_subsets=f.kid_subsets,
            kid_subset_size=f.kid_subset_size,
            seed=f.seed,
            output=f.output,
            overwrite=f.overwrite,
        )
    config, train_args = cli.parse_train_flags_string(f.train_flags)
    return report.report_synthetic_to_real(
        config,
        train_args,
        f.output_dir,
        spade_model=f.spade_model,
        synthetic_list=f.synthetic_list,
        synthetic_image_dir=f.synthetic_image_dir,
        synthetic_label_dir=f.synthetic_label_dir,
        overwrite=f.overwrite,
        synth_batch_size=f.batch_size,
    )


def _synthesis_args(dirs, *extra):
    return [
        "--mode=synthesis",
        f"--synth_dir={dirs['synth']}",
        f"--real_dir={dirs['real']}",
        "--inception_weights=random",
        *extra,
    ]


# ---------------------------------------------------------------------------------------------
# Semantic consistency with a segmenter of known predictions
# ---------------------------------------------------------------------------------------------


class ColourSegmenter:
    """Class = the brightest channel (red 0, green 1, blue 2); logits at 1/4 resolution."""

    num_classes = 3
    label_set_name = None

    def __init__(self, label_map=None):
        self.label_map = label_map

    def preprocess(self, images):
        return np.asarray(images, np.float32) / 255.0  # [B, H, W, 3]

    def predict_logits(self, batch):
        import tensorflow as tf

        return 20.0 * tf.nn.avg_pool2d(batch, 4, 4, "VALID")  # [B, h/4, w/4, 3]


def test_semantic_consistency_known_answer(tmp_path):
    from evaluation.semantic_consistency import semantic_consistency

    image = np.zeros((32, 32, 3), np.uint8)
    image[:, :16, 0] = 255  # left half red: predicted 0
    image[:, 16:, 1] = 255  # right half green: predicted 1
    label = np.zeros((32, 32), np.uint8)
    label[:16, 16:] = 1  # right top truly green
    label[16:, 16:] = 2  # right bottom says blue: 256 pixels wrong
    _save(tmp_path / "a.png", image)
    _save(tmp_path / "a_label.png", label)
    # A 16 x 16 map of the same layout is resized (nearest) to the 32 x 32 image.
    _save(tmp_path / "small_label.png", label[::2, ::2])
    # Ignored pixels (255) are not counted.
    ignored = label.copy()
    ignored[16:, 16:] = 255
    _save(tmp_path / "ignored_label.png", ignored)

    metrics = semantic_consistency(
        ColourSegmenter(), [(tmp_path / "a.png", tmp_path / "a_label.png")]
    )
    # Confusion: gt 0 -> 0: 512, gt 1 -> 1: 256, gt 2 -> 1: 256.
    np.testing.assert_array_equal(metrics["confusion"], [[512, 0, 0], [0, 256, 0], [0, 256, 0]])
    np.testing.assert_allclose(metrics["iou"], [1.0, 0.5, 0.0])
    assert metrics["miou"] == pytest.approx(0.5)
    assert metrics["pixel_accuracy"] == pytest.approx(0.75)
    assert metrics["num_images"] == 1
    small = semantic_consistency(
        ColourSegmenter(), [(tmp_path / "a.png", tmp_path / "small_label.png")]
    )
    np.testing.assert_array_equal(small["confusion"], metrics["confusion"])
    clean = semantic_consistency(
        ColourSegmenter(), [(tmp_path / "a.png", tmp_path / "ignored_label.png")]
    )
    assert clean["miou"] == pytest.approx(1.0) and clean["num_pixels"] == 768

    # Raw label values go through the segmenter's raw -> train-id table (10, 11, 12 -> 0, 1, 2).
    table = np.full(256, -1, np.int32)
    table[[10, 11, 12]] = [0, 1, 2]
    table[255] = 255
    _save(tmp_path / "raw_label.png", label + 10)
    raw = semantic_consistency(
        ColourSegmenter(table), [(tmp_path / "a.png", tmp_path / "raw_label.png")]
    )
    np.testing.assert_array_equal(raw["confusion"], metrics["confusion"])
    with pytest.raises(DatasetError, match=r"a_label.png holds values \[0, 1, 2\] that belong"):
        semantic_consistency(
            ColourSegmenter(table), [(tmp_path / "a.png", tmp_path / "a_label.png")]
        )
    _save(tmp_path / "bad_label.png", np.full((32, 32), 7))
    with pytest.raises(DatasetError, match=r"bad_label.png holds values \[7\] outside"):
        semantic_consistency(ColourSegmenter(), [(tmp_path / "a.png", tmp_path / "bad_label.png")])


# ---------------------------------------------------------------------------------------------
# --mode=synthesis
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def tiny_segformer_export(tmp_path):
    """A random tiny SegFormer (3 classes) exported as a SavedModel, with its label set."""
    import tensorflow as tf

    from models.segformer.export import export_segformer
    from models.segformer.networks import SegFormer

    label_set = tmp_path / "three.json"
    label_set.write_text(json.dumps(THREE_CLASSES))
    model = SegFormer("tiny", num_classes=3)
    model(tf.zeros((1, 32, 32, 3)), training=False)
    return export_segformer(model, str(tmp_path / "segformer_export"), str(label_set))


@pytest.mark.slow
def test_synthesis_mode_end_to_end(tmp_path, tiny_segformer_export, capsys):
    dirs = _folders(tmp_path)
    output = tmp_path / "out" / "results.json"
    results = _evaluate(
        _synthesis_args(
            dirs,
            f"--label_dir={dirs['labels']}",
            f"--segmenter={tiny_segformer_export}",
            f"--output={output}",
            "--kid_subsets=5",
            "--batch_size=3",
        )
    )
    written = json.loads(output.read_text())
    assert written == json.loads(json.dumps(results))
    assert written["num_real"] == 5 and written["num_synth"] == 4
    assert np.isfinite(written["fid"]) and written["fid"] > 0.0
    assert np.isfinite(written["kid_mean"]) and np.isfinite(written["kid_std"])
    assert written["kid_subset_size"] == 4  # min(1000, 5, 4)
    assert written["comparable_to_published"] is False
    assert not written["covariance_full_rank"]
    assert any("NOT comparable to published FIDs" in note for note in written["notes"])
    consistency = written["semantic_consistency"]
    assert consistency["num_images"] == 4
    assert 0.0 <= consistency["miou"] <= 1.0 and 0.0 <= consistency["pixel_accuracy"] <= 1.0
    assert set(consistency["per_class_iou"]) <= {"red", "green", "blue"}
    out = capsys.readouterr().out
    assert "FID" in out and "NOT comparable" in out and "mIoU" in out
    with pytest.raises(FileExistsError, match="--output=.*results.json already exists"):
        _evaluate(_synthesis_args(dirs, f"--output={output}"))


def test_synthesis_input_errors_name_the_folder_and_files(tmp_path):
    dirs = _folders(tmp_path)
    # Fewer label maps than synthesized images: the counts and the stems are named.
    os.remove(f"{dirs['labels']}/nested/s9.png")
    with pytest.raises(
        DatasetError,
        match=r"--synth_dir=.*synth has 4 images and --label_dir="
        r".*labels 3 label maps.*without a label map: "
        r"nested/s9",
    ):
        _evaluate(_synthesis_args(dirs, f"--label_dir={dirs['labels']}", "--segmenter=SEG"))
    # Same counts, other stems.
    _save(f"{dirs['labels']}/zz.png", np.zeros((32, 32)))
    with pytest.raises(
        DatasetError,
        match=r"without a label map: nested/s9; label maps without "
        r"an image: zz",
    ):
        _evaluate(_synthesis_args(dirs, f"--label_dir={dirs['labels']}", "--segmenter=SEG"))
    # Mixed sizes: one file of each size is named.
    _save(f"{dirs['real']}/big.png", _noise(7, size=48))
    with pytest.raises(
        DatasetError,
        match=r"--real_dir=.*real holds images of 2 sizes "
        r"\(.*big.png is 48x48, .*r0.png is 32x32.*"
        r"--image_size",
    ):
        _evaluate(_synthesis_args(dirs))
    os.remove(f"{dirs['real']}/big.png")
    # Too few images for FID.
    for i in range(1, 5):
        os.remove(f"{dirs['real']}/r{i}.png")
    with pytest.raises(
        DatasetError,
        match=r"--real_dir=.*real has 1 image\(s\): FID and KID "
        r"need at least 2",
    ):
        _evaluate(_synthesis_args(dirs))
    with pytest.raises(DatasetError, match=r"--synth_dir=.*missing does not exist"):
        _evaluate(_synthesis_args(dict(dirs, synth=str(tmp_path / "missing"))))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match=r"--real_dir=.*empty holds no files"):
        _evaluate(_synthesis_args(dict(dirs, real=str(empty))))


def test_synthesis_flag_errors(tmp_path, monkeypatch):
    dirs = _folders(tmp_path)
    with pytest.raises(EvaluationError, match="--label_dir was given without --segmenter"):
        _evaluate(_synthesis_args(dirs, f"--label_dir={dirs['labels']}"))
    with pytest.raises(EvaluationError, match="--synth_dir is required"):
        _evaluate(["--mode=synthesis", f"--real_dir={dirs['real']}"])
    with pytest.raises(EvaluationError, match="--kid_subset_size must be >= 2"):
        _evaluate(_synthesis_args(dirs, "--kid_subset_size=1"))
    with pytest.raises(EvaluationError, match=r"--segmenter=.*nothing does not exist"):
        _evaluate(
            _synthesis_args(
                dirs, f"--label_dir={dirs['labels']}", f"--segmenter={tmp_path / 'nothing'}"
            )
        )
    with pytest.raises(EvaluationError, match=r"--segmenter=.*real is neither an exported"):
        _evaluate(
            _synthesis_args(dirs, f"--label_dir={dirs['labels']}", f"--segmenter={dirs['real']}")
        )
    from models.segformer.export import META_FILE

    assert report.SEGMENTER_META == META_FILE  # what evaluate.py checks without TF

    # Offline, the default ImageNet weights fail with a message that says what to do.
    from evaluation import inception

    def offline(weights):
        raise Exception("URL fetch failure: [Errno -2] Name or service not known")

    monkeypatch.setattr(inception, "_keras_inception", offline)
    with pytest.raises(UserError, match=r"--inception_weights=imagenet.*pass the local file"):
        _evaluate(
            ["--mode=synthesis", f"--synth_dir={dirs['synth']}", f"--real_dir={dirs['real']}"]
        )
    with pytest.raises(FileNotFoundError, match=r"--inception_weights=.*none.h5"):
        _evaluate(_synthesis_args(dirs, f"--inception_weights={tmp_path / 'none.h5'}"))


def test_command_line_errors_are_one_line(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [
            sys.executable,
            "evaluate.py",
            f"--synth_dir={tmp_path / 'nope'}",
            f"--real_dir={tmp_path}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("evaluate.py: error: --synth_dir=")
    assert "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------------------------
# --mode=synthetic_to_real
# ---------------------------------------------------------------------------------------------


def _one_class_pairs(folder, class_id, count, size=40):
    pairs = []
    for i in range(count):
        image, label = f"{folder}/img/{i}.png", f"{folder}/lab/{i}.png"
        _save(image, _noise(class_id * 100 + i, size=size))
        _save(label, np.full((size, size), class_id))
        pairs.append((image, label))
    return pairs


def test_mixed_batches_are_half_real_half_synthetic(tmp_path):
    from datasets.segmentation import make_mixed_seg_train_dataset, make_seg_train_dataset

    real = _one_class_pairs(tmp_path / "real", 1, 3)
    synthetic = _one_class_pairs(tmp_path / "synthetic", 2, 5)
    common = dict(num_classes=3, crop_size=32, global_batch_size=6, seed=3)
    dataset = make_mixed_seg_train_dataset(real, synthetic, **common)
    batches = list(dataset.take(4))
    for batch in batches:
        assert batch["image"].shape == (6, 32, 32, 3) and batch["label"].shape == (6, 32, 32)
        labels = batch["label"].numpy()
        # Every label pixel of a real pair is 1, of a synthetic pair 2 (255: crop padding).
        assert set(np.unique(labels[:3])) <= {1, 255} and 1 in labels[:3]
        assert set(np.unique(labels[3:])) <= {2, 255} and 2 in labels[3:]
        for row in labels[:3]:
            assert 1 in row
        for row in labels[3:]:
            assert 2 in row
    # The first half is exactly the real stream of batch 3; resuming repeats the batches.
    real_only = next(iter(make_seg_train_dataset(real, **dict(common, global_batch_size=3))))
    np.testing.assert_array_equal(batches[0]["image"][:3], real_only["image"])
    resumed = next(iter(make_mixed_seg_train_dataset(real, synthetic, start_step=2, **common)))
    np.testing.assert_array_equal(resumed["image"], batches[2]["image"])
    with pytest.raises(ValueError, match="--batch_size=5 must be even"):
        make_mixed_seg_train_dataset(real, synthetic, **dict(common, global_batch_size=5))


def _s2r_train_flags(scenes_root, *extra):
    return " ".join(
        [
            "--preset=tiny",
            "--dataset=scenes",
            f"--data_root={scenes_root}",
            f"--num_scenes={TINY_SCENES['num_scenes']}",
            f"--scenes_size={TINY_SCENES['scenes_size']}",
            "--batch_size=2",
            "--crop_size=32",
            "--progress=false",
            "--export=false",
            "--save_img_freq=1000",
            *extra,
        ]
    )


def _synthetic_folders(scenes_root, root):
    """Synthetic pairs: the scenes' training label maps with their images colour-inverted."""
    import datasets

    pairs = datasets.resolve_pairs("scenes", "training", data_root=scenes_root, **TINY_SCENES)
    for image_path, label_path in pairs[:5]:
        stem = os.path.splitext(os.path.basename(label_path))[0]
        _save(f"{root}/images/{stem}.png", 255 - np.asarray(Image.open(image_path)))
        _save(f"{root}/labels/{stem}.png", np.asarray(Image.open(label_path)))
    return f"{root}/images", f"{root}/labels"


def test_synthetic_to_real_flag_errors(scenes_root, tmp_path):
    flags = _s2r_train_flags(scenes_root, "--max_steps=2")
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="--train_flags must not set --checkpoint_dir"):
        _evaluate(
            [
                "--mode=synthetic_to_real",
                f"--train_flags={flags} --checkpoint_dir=x",
                "--spade_model=M",
                f"--output_dir={out}",
            ]
        )
    with pytest.raises(ConfigError, match="--train_flags: .*no_such_flag"):
        _evaluate(
            [
                "--mode=synthetic_to_real",
                f"--train_flags={flags} --no_such_flag=1",
                "--spade_model=M",
                f"--output_dir={out}",
            ]
        )
    with pytest.raises(ConfigError, match="--batch_size=3 must be even"):
        _evaluate(
            [
                "--mode=synthetic_to_real",
                f"--train_flags={flags} --batch_size=3",
                "--spade_model=M",
                f"--output_dir={out}",
            ]
        )
    with pytest.raises(ConfigError, match="exactly one source of synthetic data"):
        _evaluate(
            [
                "--mode=synthetic_to_real",
                f"--train_flags={flags}",
                "--spade_model=M",
                "--synthetic_list=L",
                f"--output_dir={out}",
            ]
        )
    with pytest.raises(FileNotFoundError, match="--spade_model=.*missing does not exist"):
        _evaluate(
            [
                "--mode=synthetic_to_real",
                f"--train_flags={flags}",
                f"--spade_model={tmp_path / 'missing'}",
                f"--output_dir={out}",
            ]
        )
    out.mkdir()
    (out / "results.md").write_text("an earlier experiment")
    with pytest.raises(FileExistsError, match="--output_dir=.*out already holds results"):
        _evaluate(
            [
                "--mode=synthetic_to_real",
                f"--train_flags={flags}",
                f"--spade_model={tmp_path}",
                f"--output_dir={out}",
            ]
        )


@pytest.mark.slow
def test_synthetic_to_real_three_runs_and_results_files(scenes_root, tmp_path):
    image_dir, label_dir = _synthetic_folders(scenes_root, tmp_path / "synthetic")
    out = tmp_path / "s2r"
    results = _evaluate(
        [
            "--mode=synthetic_to_real",
            f"--train_flags={_s2r_train_flags(scenes_root)} --max_steps=2",
            f"--synthetic_image_dir={image_dir}",
            f"--synthetic_label_dir={label_dir}",
            f"--output_dir={out}",
        ]
    )
    settings = results["settings"]
    assert list(settings) == ["real", "synthetic", "mixed"]
    num_real = TINY_SCENES["num_scenes"]
    assert [settings[s]["num_train_pairs"] for s in settings] == [num_real, 5, num_real + 5]
    for values in settings.values():
        assert values["steps"] == 2
        for key in ("miou", "pixel_accuracy", "mean_accuracy"):
            assert values[key] is not None and 0.0 <= values[key] <= 1.0
        present = [iou for iou in values["iou"] if iou is not None]
        assert present and all(0.0 <= iou <= 1.0 for iou in present)
    # Each run trained on its own data: their configs say so.
    for setting in settings:
        config = json.loads((out / "runs" / setting / "config.json").read_text())
        assert config["train_mix"] == setting and config["max_steps"] == 2
    with open(out / "results.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["setting"] for row in rows] == ["real", "synthetic", "mixed"]
    assert all(0.0 <= float(row["miou"]) <= 1.0 for row in rows)
    markdown = (out / "results.md").read_text()
    assert "| real + synthetic (1:1 per batch) |" in markdown and "Per-class IoU" in markdown
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "results.json").read_text())["settings"]["mixed"]["steps"] == 2
    with pytest.raises(FileExistsError, match="already holds results"):
        _evaluate(
            [
                "--mode=synthetic_to_real",
                f"--train_flags={_s2r_train_flags(scenes_root)}",
                f"--synthetic_image_dir={image_dir}",
                f"--synthetic_label_dir={label_dir}",
                f"--output_dir={out}",
            ]
        )


@pytest.mark.slow
def test_synthesize_pairs_with_an_exported_spade(scenes_root, tmp_path):
    from conftest import tiny_train_args

    import flags as cli
    from datasets.pairs import json_list_pairs
    from evaluation.synthetic_to_real import synthesize_pairs
    from models.spade import task as spade_task
    from models.spade.export import export_spade
    from models.spade.trainer import SPADEGAN

    config = cli.config_from_args(tiny_train_args(scenes_root, str(tmp_path / "run")))
    label_set, pairs, _ = spade_task.build_dataset_info(config)
    gan = SPADEGAN.from_run_config(config, label_set.num_classes, for_training=False)
    export = export_spade(gan, str(tmp_path / "spade_export"), config.semantic_label_path)
    labels = [label for _, label in pairs[:3]]
    pair_list = synthesize_pairs(
        export, labels, str(tmp_path / "synthetic"), batch_size=2, progress=False
    )
    synthesized = json_list_pairs(pair_list)
    assert len(synthesized) == 3
    for (image_path, label_path), original in zip(synthesized, labels):
        image = np.asarray(Image.open(image_path))
        label = np.asarray(Image.open(label_path))
        assert image.shape == (32, 32, 3) and image.dtype == np.uint8
        # The label written is the map the generator saw: the original, resized (nearest).
        source = Image.open(original)
        np.testing.assert_array_equal(label, np.asarray(source.resize((32, 32), Image.NEAREST)))
