"""evaluate.py --mode=coco (evaluation/coco.py): pycocotools segm AP / AR of a segmenter against
the coco_gt_val.json a synthetic dataset writes, run with evaluate.py's flags and a fake
segmenter (no network)."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from absl import flags as absl_flags
from PIL import Image

import flags as cli
from core.config import ConfigError
from core.io import InputNotFoundError, OutputExistsError
from datasets.synthetic_pairs import coco_ground_truth
from evaluation import coco
from semantic_labels import load_label_set


class ColourSegmenter:
    """The documents label set from colour: red printed, blue handwritten (unless blind to
    handwriting), else background; logits at 1/4 resolution like SegFormer's."""

    num_classes = 3
    label_set_name = "documents"

    def __init__(self, sees_handwriting=True):
        self.sees_handwriting = sees_handwriting

    def preprocess(self, images):
        return np.asarray(images, np.float32) / 127.5 - 1.0

    def predict_logits(self, batch):
        pooled = tf.nn.avg_pool2d(batch, 4, 4, "VALID")  # [B, h/4, w/4, 3]
        printed = pooled[..., 0]
        handwritten = pooled[..., 2] if self.sees_handwriting else -tf.ones_like(printed)
        background = -0.5 - tf.maximum(printed, handwritten)
        return 30.0 * tf.stack([background, printed, handwritten], axis=-1)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Four 64 px pairs in the synthetic pairs' layout, and their COCO ground truth (written by
    the function the dataset writer uses)."""
    root = tmp_path_factory.mktemp("pairs")
    os.makedirs(root / "images")
    rng = np.random.default_rng(0)
    masks = []
    for index in range(4):
        mask = np.zeros((64, 64), np.uint8)
        for class_id in (1, 1, 2):  # two printed words and a handwritten one, on a 4 px grid
            row, col = rng.integers(0, 12, size=2) * 4
            mask[row : row + 8, col : col + 16] = class_id
        image = np.zeros((64, 64, 3), np.uint8)
        image[mask == 1, 0] = 255
        image[mask == 2, 2] = 255
        Image.fromarray(image).save(root / "images" / f"{index:06d}.png")
        masks.append((index + 1, f"images/{index:06d}.png", mask))
    truth = coco_ground_truth(masks, load_label_set("documents"), background_id=0)
    (root / "coco_gt_val.json").write_text(json.dumps(truth))
    return root, truth


def _evaluate(args, segmenter):
    """evaluate.py's command line -> evaluate_coco with a fake segmenter; errors raise."""
    f = absl_flags.FlagValues()
    cli.define_evaluate_flags(f)
    f(["evaluate.py", *args])
    cli.check_evaluate_mode_flags(f)
    return coco.evaluate_coco(
        f.coco_gt,
        f.segmenter,
        f.output_dir,
        image_root=f.image_root,
        tile_size=f.tile_size,
        batch_size=f.batch_size,
        max_detections=f.max_detections,
        overwrite=f.overwrite,
        load_segmenter=lambda path: segmenter,
    )


def test_perfect_and_half_blind_segmenters(dataset, tmp_path):
    root, truth = dataset
    args = [
        "--mode=coco",
        f"--coco_gt={root / 'coco_gt_val.json'}",
        "--segmenter=RUN",
        f"--output_dir={tmp_path / 'perfect'}",
    ]
    results = _evaluate(args, ColourSegmenter())
    assert results["images"] == 4 and results["detections"] == len(truth["annotations"])
    assert results["stats"]["AP"] == pytest.approx(1.0)
    assert results["stats"]["AR_max"] == pytest.approx(1.0)
    assert results["per_category"] == {"printed_text": 1.0, "handwritten_text": 1.0}
    written = json.loads((tmp_path / "perfect" / "results.json").read_text())
    assert written["stats"] == results["stats"]
    assert "Average Precision" in (tmp_path / "perfect" / "results.md").read_text()
    detections = json.loads((tmp_path / "perfect" / "detections.json").read_text())
    assert {d["category_id"] for d in detections} == {1, 2}
    assert all(0.5 < d["score"] <= 1.0 for d in detections)  # mean class probability

    # Blind to handwriting: handwritten AP 0, printed still 1, the mean halves. Tiles too.
    blind = _evaluate(
        [*args[:-1], f"--output_dir={tmp_path / 'blind'}", "--tile_size=32"],
        ColourSegmenter(sees_handwriting=False),
    )
    assert blind["per_category"] == {"printed_text": 1.0, "handwritten_text": 0.0}
    assert blind["stats"]["AP"] == pytest.approx(0.5)

    with pytest.raises(OutputExistsError, match="--output_dir"):
        _evaluate(args, ColourSegmenter())


def test_coco_mode_input_errors(dataset, tmp_path):
    root, truth = dataset
    good = [f"--coco_gt={root / 'coco_gt_val.json'}", "--segmenter=RUN"]
    out = f"--output_dir={tmp_path / 'out'}"
    with pytest.raises(ConfigError, match="--synth_dir is not used by --mode=coco"):
        _evaluate(["--mode=coco", *good, out, f"--synth_dir={root}"], ColourSegmenter())
    with pytest.raises(coco.CocoEvaluationError, match="--segmenter"):
        _evaluate(["--mode=coco", good[0], out], ColourSegmenter())
    other_root = tmp_path / "elsewhere"
    other_root.mkdir()
    with pytest.raises(InputNotFoundError, match="4 of 4 images do not exist"):
        _evaluate(["--mode=coco", *good, out, f"--image_root={other_root}"], ColourSegmenter())
    renamed = {**truth, "categories": [{"id": 1, "name": "ink"}, truth["categories"][1]]}
    (tmp_path / "renamed.json").write_text(json.dumps(renamed))
    with pytest.raises(coco.CocoEvaluationError, match="'ink' vs 'printed_text'"):
        _evaluate(
            [
                "--mode=coco",
                f"--coco_gt={tmp_path / 'renamed.json'}",
                f"--image_root={root}",
                "--segmenter=RUN",
                out,
            ],
            ColourSegmenter(),
        )
    with pytest.raises(coco.CocoEvaluationError, match="--max_detections"):
        _evaluate(["--mode=coco", *good, out, "--max_detections=0"], ColourSegmenter())


def test_no_detections_score_zero(dataset):
    _, truth = dataset
    scores = coco.coco_segm_scores(truth, [])
    assert set(scores["stats"].values()) == {0.0}
