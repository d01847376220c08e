"""segment.py end to end with a fake segmenter (no network, no checkpoint): its flags through
models.segformer.inference.segment_images, and the script itself for its exit status."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl import flags as absl_flags
from conftest import ROOT
from PIL import Image

import flags as cli
from core import io as core_io
from datasets.pairs import DatasetError
from evaluation.segmentation_metrics import metrics_from_confusion
from models.segformer.inference import SegmentError, segment_images

COLORS = [[0, 0, 0], [200, 0, 0], [0, 200, 0]]
_LOADER = None  # the fake segmenter's loader (fixture `fake`)


def _segment(args):
    """segment.py's command-line `args` -> segment_images with the fake model; errors raise."""
    flag_values = absl_flags.FlagValues()
    cli.define_segment_flags(flag_values)
    flag_values(["segment.py", *args])
    return segment_images(
        flag_values.input,
        flag_values.output_dir,
        checkpoint_dir=flag_values.checkpoint_dir,
        saved_model=flag_values.saved_model,
        mode=flag_values.mode,
        tile_size=flag_values.tile_size,
        overlap=flag_values.overlap,
        batch_size=flag_values.batch_size,
        gt_dir=flag_values.gt_dir,
        semantic_label_path=flag_values.semantic_label_path,
        ignore_dontcare=flag_values.ignore_dontcare,
        overwrite=flag_values.overwrite,
        load_segmenter=_LOADER,
    )


class FakeSegmenter:
    """Three classes: 0 where the image is dark, else 1 (red) or 2 (green), whichever channel
    is brighter; logits at 1/4 resolution like SegFormer's."""

    num_classes = 3

    def __init__(self, label_set_name):
        self.label_set_name = label_set_name
        self.batch_shapes = []

    def preprocess(self, images):
        return np.asarray(images, np.float32) / 127.5 - 1.0  # [B, H, W, 3] in [-1, 1]

    def predict_logits(self, batch):
        self.batch_shapes.append(tuple(batch.shape))
        pooled = tf.nn.avg_pool2d(batch, 4, 4, "VALID")  # [B, h/4, w/4, 3]
        red, green = pooled[..., 0], pooled[..., 1]
        dark = -0.5 - tf.maximum(red, green)  # > 0 only where both channels are dark
        return 20.0 * tf.stack([dark, red, green], axis=-1)  # [B, h/4, w/4, 3]


@pytest.fixture
def fake(tmp_path, monkeypatch):
    label_set = tmp_path / "three.json"
    label_set.write_text(
        json.dumps(
            {
                "name": "three",
                "dontcare_id": None,
                "classes": [
                    {"id": i, "name": n, "color": c}
                    for i, (n, c) in enumerate(zip(["dark", "red", "green"], COLORS))
                ],
            }
        )
    )
    segmenter = FakeSegmenter(str(label_set))
    calls = []

    def load(checkpoint_dir=None, saved_model=None):
        calls.append((checkpoint_dir, saved_model))
        return segmenter

    monkeypatch.setattr(sys.modules[__name__], "_LOADER", load)
    segmenter.calls = calls
    return segmenter


def _scene(height, width, split):
    """Red left of column `split`, green right of it, a dark 16 px band at the top."""
    image = np.zeros((height, width, 3), np.uint8)
    image[:, :split, 0] = 255
    image[:, split:, 1] = 255
    image[:16] = 0
    truth = np.where(np.arange(width)[None, :] < split, 1, 2).repeat(height, 0).astype(np.uint8)
    truth[:16] = 0
    return image, truth


def _write_images(folder, sizes):
    folder.mkdir(parents=True, exist_ok=True)
    truths = {}
    for index, (height, width) in enumerate(sizes):
        image, truth = _scene(height, width, split=8 * (index + 2))
        Image.fromarray(image).save(folder / f"img{index}.png")
        truths[f"img{index}"] = truth
    return truths


def _visible(folder):
    """The files of a folder without hidden ones (the progress file of a run)."""
    return [name for name in os.listdir(folder) if not name.startswith(".")]


def _read(path):
    with Image.open(path) as image:
        return np.asarray(image), image.mode


def test_folder_input_writes_ids_colours_and_overlay(tmp_path, fake):
    truths = _write_images(tmp_path / "in", [(40, 56), (72, 48)])
    out = tmp_path / "out"
    assert (
        _segment(
            [
                f"--input={tmp_path / 'in'}",
                f"--output_dir={out}",
                "--checkpoint_dir=RUN",
                "--tile_size=32",
                "--batch_size=3",
            ]
        )
        is None
    )
    assert fake.calls == [("RUN", None)]
    assert sorted(_visible(out)) == sorted(
        f"img{i}{suffix}.png" for i in range(2) for suffix in ("", "_color", "_overlay")
    )
    for stem, truth in truths.items():
        ids, mode = _read(out / f"{stem}.png")
        assert mode == "L" and ids.shape == truth.shape
        # The fake is exact away from class borders (bilinear upsampling blurs 2 px there).
        interior = np.ones_like(truth, bool)
        interior[14:18] = False
        interior[:, 8 * (int(stem[-1]) + 2) - 2 : 8 * (int(stem[-1]) + 2) + 2] = False
        np.testing.assert_array_equal(ids[interior], truth[interior])
        colors, mode = _read(out / f"{stem}_color.png")
        assert mode == "RGB"
        np.testing.assert_array_equal(colors, np.array(COLORS, np.uint8)[ids])
        overlay, _ = _read(out / f"{stem}_overlay.png")
        image, _ = _read(tmp_path / "in" / f"{stem}.png")
        np.testing.assert_allclose(overlay, (image.astype(int) + colors) / 2, atol=0.5)
    # Slide mode sees only 32 px tiles, at most 3 per call.
    assert {shape[1:] for shape in fake.batch_shapes} == {(32, 32, 3)}
    assert max(shape[0] for shape in fake.batch_shapes) == 3


def test_glob_input_whole_mode_and_overwrite(tmp_path, fake):
    _write_images(tmp_path / "in", [(40, 56), (36, 36), (50, 33)])
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    args = [
        f"--input={tmp_path / 'in' / 'img[02].*'}",
        f"--output_dir={out}",
        "--saved_model=EXPORT",
        "--mode=whole",
    ]
    _segment(args)
    assert fake.calls == [(None, "EXPORT")]
    assert sorted(_visible(out)) == sorted(
        f"img{i}{suffix}.png" for i in (0, 2) for suffix in ("", "_color", "_overlay")
    )
    assert _read(out / "img2.png")[0].shape == (50, 33)
    assert fake.batch_shapes == [(1, 64, 64, 3), (1, 64, 64, 3)]  # padded to multiples of 32

    before = (out / "img0.png").stat().st_mtime_ns
    # A rerun of the same command resumes: everything is done, nothing is rewritten.
    _segment(args)
    assert fake.batch_shapes == [(1, 64, 64, 3), (1, 64, 64, 3)]
    assert (out / "img0.png").stat().st_mtime_ns == before
    # Outputs that no run of ours recorded are refused.
    (out / core_io.PROGRESS_FILE).unlink()
    with pytest.raises(FileExistsError, match="img0.png.*pass --overwrite"):
        _segment(args)
    assert (out / "img0.png").stat().st_mtime_ns == before
    _segment(args + ["--overwrite"])
    # A single file works too.
    _segment(
        [
            f"--input={tmp_path / 'in' / 'img1.png'}",
            f"--output_dir={tmp_path / 'one'}",
            "--saved_model=EXPORT",
        ]
    )
    assert sorted(_visible(tmp_path / "one"))[0] == "img1.png"


def test_gt_dir_metrics_match_the_predictions(tmp_path, fake, capsys):
    truths = _write_images(tmp_path / "in", [(40, 56), (72, 48)])
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    truths["img0"][30:, :4] = 255  # ignored
    truths["img1"][40:, 20:] = 1  # wrong on purpose: the model says green
    Image.fromarray(truths["img0"]).save(gt_dir / "img0.png")
    Image.fromarray(truths["img1"]).save(gt_dir / "img1_seg.png")  # FaceSynthetics naming
    out = tmp_path / "out"
    metrics = _segment(
        [
            f"--input={tmp_path / 'in'}",
            f"--output_dir={out}",
            "--checkpoint_dir=RUN",
            "--tile_size=32",
            f"--gt_dir={gt_dir}",
        ]
    )

    expected_cm = np.zeros((3, 3), np.int64)
    for stem, truth in truths.items():
        prediction = _read(out / f"{stem}.png")[0]
        keep = truth != 255
        np.add.at(expected_cm, (truth[keep], prediction[keep]), 1)
    expected = metrics_from_confusion(expected_cm)
    np.testing.assert_allclose(metrics["iou"], expected["iou"])
    assert metrics["miou"] == pytest.approx(expected["miou"])
    assert metrics["pixel_accuracy"] == pytest.approx(expected["pixel_accuracy"])
    assert 0.5 < metrics["miou"] < 0.95  # the planted error shows

    printed = capsys.readouterr().out
    assert f"mIoU {100 * expected['miou']:.2f}" in printed and "green" in printed
    with open(out / "metrics.csv", newline="") as file:
        rows = {row["class_name"]: row for row in csv.DictReader(file)}
    assert float(rows["mean"]["iou"]) == pytest.approx(expected["miou"], abs=1e-6)
    assert float(rows["red"]["recall"]) == pytest.approx(expected["recall"][1], abs=1e-6)
    assert (out / "confusion.png").stat().st_size > 0

    # A label set with a dontcare class: its ground-truth pixels are ignored, the class is left
    # out of the means (the ADE20K protocol for "other").
    spec = json.loads(open(fake.label_set_name).read())
    spec["dontcare_id"] = 0
    (tmp_path / "dontcare.json").write_text(json.dumps(spec))
    metrics = _segment(
        [
            f"--input={tmp_path / 'in'}",
            f"--output_dir={out}",
            "--overwrite",
            "--checkpoint_dir=RUN",
            "--tile_size=32",
            f"--gt_dir={gt_dir}",
            f"--semantic_label_path={tmp_path / 'dontcare.json'}",
        ]
    )
    expected_cm[0] = 0  # ground truth "dark" (row 0) is ignored now
    expected = metrics_from_confusion(expected_cm, exclude_classes=[0])
    assert np.isnan(metrics["iou"][0])
    np.testing.assert_allclose(metrics["iou"], expected["iou"])
    assert metrics["pixel_accuracy"] == pytest.approx(expected["pixel_accuracy"])


def test_gt_dir_errors_name_the_files(tmp_path, fake):
    truths = _write_images(tmp_path / "in", [(40, 56), (36, 36)])
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    args = [
        f"--input={tmp_path / 'in'}",
        "--checkpoint_dir=RUN",
        "--tile_size=32",
        f"--gt_dir={gt_dir}",
    ]
    Image.fromarray(truths["img0"]).save(gt_dir / "img0.png")
    with pytest.raises(DatasetError, match="no label map .* for 1 of 2 images: img1"):
        _segment(args + [f"--output_dir={tmp_path / 'a'}"])

    Image.fromarray(truths["img0"][:, :50]).save(gt_dir / "img1.png")
    with pytest.raises(DatasetError, match="img1.png is 50x40 but image .*img1.png is 36x36"):
        _segment(args + [f"--output_dir={tmp_path / 'b'}"])

    bad = truths["img1"].copy()
    bad[0, 0], bad[1, 1] = 7, 255  # 255 is fine, 7 is not a class
    Image.fromarray(bad).save(gt_dir / "img1.png")
    with pytest.raises(DatasetError, match=r"gt.img1.png holds values 7 outside .* \[0, 2\]"):
        _segment(args + [f"--output_dir={tmp_path / 'c'}"])
    assert fake.calls  # the checks before the model passed


def test_flag_and_input_errors(tmp_path, fake):
    _write_images(tmp_path / "in", [(40, 56)])
    base = [f"--input={tmp_path / 'in'}", f"--output_dir={tmp_path / 'out'}"]
    with pytest.raises(SegmentError, match="exactly one of --checkpoint_dir and --saved_model"):
        _segment(base)
    with pytest.raises(SegmentError, match="--tile_size=48 must be a multiple of 32"):
        _segment(base + ["--checkpoint_dir=RUN", "--tile_size=48"])
    with pytest.raises(SegmentError, match="--overlap must lie in"):
        _segment(base + ["--checkpoint_dir=RUN", "--overlap=1"])
    with pytest.raises(FileNotFoundError, match="--input=.*missing.png does not exist"):
        _segment([f"--input={tmp_path / 'missing.png'}", "--checkpoint_dir=RUN"])
    with pytest.raises(SegmentError, match="matches no image files"):
        _segment([f"--input={tmp_path / 'in' / '*.jpg'}", "--checkpoint_dir=RUN"])
    with pytest.raises(SegmentError, match="would overwrite input images"):
        _segment(
            [
                f"--input={tmp_path / 'in'}",
                f"--output_dir={tmp_path / 'in'}",
                "--checkpoint_dir=RUN",
                "--overwrite",
            ]
        )
    with pytest.raises(
        SegmentError, match="--semantic_label_path=ade20k has 151 classes but the model predicts 3"
    ):
        _segment(base + ["--checkpoint_dir=RUN", "--semantic_label_path=ade20k"])
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="cannot read image .*bad.png"):
        _segment([f"--input={broken}", f"--output_dir={tmp_path / 'o2'}", "--checkpoint_dir=RUN"])


def test_command_line_errors_are_one_line(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "segment.py",
            f"--input={tmp_path / 'nothing.png'}",
            "--checkpoint_dir=RUN",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "segment.py: error: --input=" in proc.stderr and "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_killed_run_resumes_with_the_same_metrics(tmp_path, fake, monkeypatch):
    truths = _write_images(tmp_path / "in", [(40, 56), (72, 48), (36, 36)])
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    for stem, truth in truths.items():
        Image.fromarray(truth).save(gt_dir / f"{stem}.png")
    args = [
        f"--input={tmp_path / 'in'}",
        "--checkpoint_dir=RUN",
        "--tile_size=32",
        f"--gt_dir={gt_dir}",
    ]
    straight = _segment(args + [f"--output_dir={tmp_path / 'straight'}"])

    save, calls = core_io.save_image_atomic, []

    def killed_after_four(image, path, **kwargs):
        if len(calls) == 4:  # the second image's colours
            raise KeyboardInterrupt
        calls.append(path)
        return save(image, path, **kwargs)

    monkeypatch.setattr(core_io, "save_image_atomic", killed_after_four)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        _segment(args + [f"--output_dir={out}"])
    monkeypatch.setattr(core_io, "save_image_atomic", save)
    assert sorted(_visible(out)) == ["img0.png", "img0_color.png", "img0_overlay.png", "img1.png"]
    before = (out / "img0.png").stat().st_mtime_ns
    calls_before = len(fake.batch_shapes)
    resumed = _segment(args + [f"--output_dir={out}"])
    assert (out / "img0.png").stat().st_mtime_ns == before  # done: not segmented again
    shapes = fake.batch_shapes[calls_before:]
    assert len(shapes) < calls_before / 2 + 1  # only img1 and img2
    assert resumed["miou"] == pytest.approx(straight["miou"])
    np.testing.assert_allclose(resumed["iou"], straight["iou"])
    for name in sorted(_visible(tmp_path / "straight")):
        if name.endswith(".png") and name != "confusion.png":
            np.testing.assert_array_equal(
                _read(out / name)[0], _read(tmp_path / "straight" / name)[0]
            )
