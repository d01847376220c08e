"""SegFormer training, export and segment.py end to end on tiny configs."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, TINY_SCENES

import flags as cli


def _args(scenes_root, run_dir, *extra):
    return [
        "--model=segformer",
        "--preset=tiny",
        "--dataset=scenes",
        f"--data_root={scenes_root}",
        f"--num_scenes={TINY_SCENES['num_scenes']}",
        f"--scenes_size={TINY_SCENES['scenes_size']}",
        f"--checkpoint_dir={run_dir}",
        "--batch_size=2",
        "--progress=false",
        *extra,
    ]


def _run(args, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.mark.slow
def test_dry_run_prints_reference_segformer_b0_counts():
    proc = _run(
        ["train.py", "--model=segformer", "--preset=segformer_b0", "--dataset=ade20k", "--dry_run"]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "3,752,694" in proc.stdout  # SegFormer-B0, 150 classes
    assert "3,319,392" in proc.stdout  # MiT-B0 encoder
    proc = _run(
        [
            "train.py",
            "--model=segformer",
            "--preset=segformer_b0",
            "--dataset=cityscapes",
            "--dry_run",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "3,719,027" in proc.stdout  # 19 classes


@pytest.mark.slow
def test_segformer_trains_evaluates_exports_and_segments(scenes_root, tmp_path):
    import tensorflow as tf

    from models.segformer.export import whole_image_probabilities
    from training import loop

    run_dir = tmp_path / "run"
    config = cli.config_from_args(_args(scenes_root, run_dir, "--max_steps=4", "--eval_freq=2"))
    result = loop.train(config, log=lambda *_: None)
    assert result["step"] == 4
    assert all(np.isfinite(v) for v in result["losses"].values())
    assert set(result["losses"]) == {"CE", "loss"}
    metrics = result["metrics"]
    assert 0.0 <= metrics["pixel_accuracy"] <= 1.0 and metrics["num_pixels"] > 0
    best = json.loads((run_dir / "best.json").read_text())
    assert best["step"] in (2, 4)
    assert tf.train.latest_checkpoint(str(run_dir / "best")) is not None

    # The SavedModel (dynamic H, W, inference mode) equals the Keras model.
    model = result["model"].segformer
    loaded = tf.saved_model.load(str(run_dir / "export"))
    images = np.random.default_rng(0).integers(0, 256, (2, 50, 70, 3)).astype(np.uint8)
    expected = whole_image_probabilities(model, tf.constant(images))
    got = loaded.serve(tf.constant(images))
    np.testing.assert_allclose(got["probabilities"], expected, atol=1e-5)
    assert got["label"].shape == (2, 50, 70) and got["label"].dtype == tf.uint8
    x = tf.random.normal((1, 64, 96, 3))
    np.testing.assert_allclose(loaded.logits(x)["logits"], model(x, training=False), atol=1e-5)

    # segment.py with the exported model and ground truth (raw ADE20K ids, mapped as in training).
    scenes = os.path.join(scenes_root, "scenes_64", "ADEChallengeData2016")
    out = tmp_path / "seg"
    proc = _run(
        [
            "segment.py",
            f"--input={scenes}/images/validation",
            f"--saved_model={run_dir / 'export'}",
            f"--output_dir={out}",
            f"--gt_dir={scenes}/annotations/validation",
            "--tile_size=32",
            "--overlap=0.5",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    stems = [os.path.splitext(n)[0] for n in os.listdir(f"{scenes}/images/validation")]
    for stem in stems:
        for suffix in ("", "_color", "_overlay"):
            assert (out / f"{stem}{suffix}.png").exists()
    assert (out / "metrics.csv").exists() and (out / "confusion.png").exists()
    assert "mIoU" in proc.stdout
    # The same from the run directory's checkpoint gives the same class map.
    proc = _run(
        [
            "segment.py",
            f"--input={scenes}/images/validation",
            f"--checkpoint_dir={run_dir}",
            f"--output_dir={tmp_path / 'seg2'}",
            "--tile_size=32",
            "--overlap=0.5",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    from PIL import Image

    for stem in stems:
        np.testing.assert_array_equal(
            np.asarray(Image.open(out / f"{stem}.png")),
            np.asarray(Image.open(tmp_path / "seg2" / f"{stem}.png")),
        )


def test_segformer_flag_errors(scenes_root, tmp_path):
    with pytest.raises(ValueError, match="--crop_size=100 must be a multiple of 32"):
        cli.config_from_args(_args(scenes_root, tmp_path, "--crop_size=100"))
    with pytest.raises(ValueError, match="--dataset=facesynthetics is a segmentation dataset"):
        cli.config_from_args(["--model=spade", "--dataset=facesynthetics"])
    from models.segformer.task import SegFormerTask

    config = cli.config_from_args(
        _args(scenes_root, tmp_path, f"--class_weights={tmp_path / 'missing.json'}")
    )
    with pytest.raises(FileNotFoundError, match="--class_weights=.*missing.json"):
        SegFormerTask(config)
