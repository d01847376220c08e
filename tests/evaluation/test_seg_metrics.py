"""Segmentation metrics (evaluation/segmentation_metrics.py) and sliding-window inference."""

import csv
import math
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT
from PIL import Image

from evaluation.segmentation_metrics import (
    ConfusionMatrix,
    format_table,
    metrics_from_confusion,
    plot_confusion,
    write_csv,
)
from models.segformer.inference import check_tiling, predict_probs, tile_origins

# Four classes: 2 occurs only in the predictions, 3 nowhere.
HAND_CM = np.array([[3, 1, 0, 0], [0, 2, 2, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
HAND_NAMES = ["sky", "tree", "road", "car"]


# --- ConfusionMatrix ---------------------------------------------------------------------------


def test_confusion_matrix_counts_ignores_and_accumulates():
    cm = ConfusionMatrix(3)
    labels = np.array([[0, 0, 1], [2, 255, 1]], np.uint8)
    predictions = np.array([[0, 1, 1], [0, 2, 2]], np.int64)
    cm.update(labels, predictions)
    expected = np.array([[1, 1, 0], [0, 1, 1], [1, 0, 0]])
    np.testing.assert_array_equal(cm.result(), expected)
    assert cm.result().dtype == np.int64
    cm.update(labels[None], predictions[None])  # any shape, counts add up
    np.testing.assert_array_equal(cm.result(), 2 * expected)
    cm.reset()
    np.testing.assert_array_equal(cm.result(), np.zeros((3, 3)))


def test_confusion_matrix_in_tf_function_matches_numpy():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, (2, 16, 16)).astype(np.int32)
    labels[0, :4] = 255
    predictions = rng.integers(0, 5, (2, 16, 16)).astype(np.int32)
    cm = ConfusionMatrix(5)

    @tf.function
    def step(label, prediction):
        cm.update(label, prediction)

    step(tf.constant(labels), tf.constant(predictions))
    step(tf.constant(labels), tf.constant(predictions))
    keep = labels != 255
    expected = np.zeros((5, 5), np.int64)
    np.add.at(expected, (labels[keep], predictions[keep]), 2)
    np.testing.assert_array_equal(cm.result(), expected)


def test_confusion_matrix_rejects_values_outside_the_classes():
    cm = ConfusionMatrix(3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="label values must lie in"):
        cm.update(np.array([0, 3]), np.array([0, 1]))

    @tf.function
    def step(label, prediction):
        cm.update(label, prediction)

    with pytest.raises(tf.errors.InvalidArgumentError, match="predictions must lie in"):
        step(tf.constant([0, 1]), tf.constant([0, -1]))
    np.testing.assert_array_equal(cm.result(), np.zeros((3, 3)))  # nothing half-counted
    with pytest.raises(ValueError, match="same shape"):
        cm.update(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="ignore_index=2 is a class id"):
        ConfusionMatrix(3, ignore_index=2)


_MIRRORED_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf
    # Before anything initialises TensorFlow's devices.
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path.insert(0, sys.argv[1])
    from evaluation.segmentation_metrics import ConfusionMatrix

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        cm = ConfusionMatrix(3)
    per_replica = [(np.array([0, 1, 2, 255]), np.array([0, 1, 1, 0])),
                   (np.array([2, 2, 0]), np.array([2, 2, 1]))]
    values = strategy.experimental_distribute_values_from_function(
        lambda ctx: tuple(tf.constant(v) for v in per_replica[ctx.replica_id_in_sync_group]))

    @tf.function
    def step(pair):
        strategy.run(cm.update, args=pair)

    step(values)
    print("FIRST", cm.result().ravel().tolist())
    cm.reset()
    print("RESET", cm.result().ravel().tolist())
    step(values)
    print("AGAIN", cm.result().ravel().tolist())
    """
)


def test_confusion_matrix_sums_replicas_under_mirrored_strategy():
    proc = subprocess.run(
        [sys.executable, "-c", _MIRRORED_SCRIPT, ROOT],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    # Replica 0: (0,0), (1,1), (2,1); replica 1: (2,2) twice, (0,1).
    expected = [1, 1, 0, 0, 1, 0, 0, 1, 2]
    assert lines["FIRST"] == str(expected)
    assert lines["RESET"] == str([0] * 9)
    assert lines["AGAIN"] == str(expected)


# --- metrics_from_confusion ---------------------------------------------------------------------


def test_metrics_by_hand():
    m = metrics_from_confusion(HAND_CM)
    # TP [3, 2, 0, 0], FP [0, 1, 2, 0], FN [1, 2, 0, 0].
    np.testing.assert_allclose(m["iou"], [3 / 4, 2 / 5, 0.0, np.nan])
    np.testing.assert_allclose(m["dice"], [6 / 7, 4 / 7, 0.0, np.nan])
    np.testing.assert_allclose(m["precision"], [1.0, 2 / 3, 0.0, np.nan])
    np.testing.assert_allclose(m["recall"], [3 / 4, 2 / 4, np.nan, np.nan])
    np.testing.assert_array_equal(m["gt_pixels"], [4, 4, 0, 0])
    np.testing.assert_array_equal(m["pred_pixels"], [3, 3, 2, 0])
    assert m["miou"] == pytest.approx((3 / 4 + 2 / 5 + 0) / 3)
    assert m["mean_dice"] == pytest.approx((6 / 7 + 4 / 7 + 0) / 3)
    assert m["mean_precision"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert m["mean_accuracy"] == pytest.approx((3 / 4 + 2 / 4) / 2)
    assert m["pixel_accuracy"] == pytest.approx(5 / 8)
    assert m["num_pixels"] == 8


def test_metrics_exclude_classes_and_empty_matrix():
    m = metrics_from_confusion(HAND_CM, exclude_classes=[2])
    assert math.isnan(m["iou"][2]) and math.isnan(m["precision"][2])
    assert m["miou"] == pytest.approx((3 / 4 + 2 / 5) / 2)
    assert m["pixel_accuracy"] == pytest.approx(5 / 8)  # its pixels still count
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice" / division warnings
        empty = metrics_from_confusion(np.zeros((3, 3), np.int64))
    assert np.isnan(empty["iou"]).all() and math.isnan(empty["miou"])
    assert math.isnan(empty["pixel_accuracy"]) and empty["num_pixels"] == 0
    with pytest.raises(ValueError, match="square"):
        metrics_from_confusion(np.zeros((2, 3), np.int64))
    with pytest.raises(ValueError, match="exclude_classes"):
        metrics_from_confusion(HAND_CM, exclude_classes=[4])


def test_metrics_agree_with_scikit_learn():
    from sklearn.metrics import (
        balanced_accuracy_score,
        confusion_matrix,
        f1_score,
        jaccard_score,
        precision_score,
        recall_score,
    )

    rng = np.random.default_rng(1)
    truth = rng.integers(0, 5, 500)
    prediction = np.where(rng.random(500) < 0.6, truth, rng.integers(0, 6, 500))
    labels = np.arange(7)  # 5 only predicted, 6 nowhere
    m = metrics_from_confusion(confusion_matrix(truth, prediction, labels=labels))
    present = labels[:6]
    kwargs = dict(labels=present, average=None, zero_division=0)
    np.testing.assert_allclose(m["iou"][:6], jaccard_score(truth, prediction, **kwargs))
    np.testing.assert_allclose(m["dice"][:6], f1_score(truth, prediction, **kwargs))
    np.testing.assert_allclose(m["precision"][:6], precision_score(truth, prediction, **kwargs))
    np.testing.assert_allclose(m["recall"][:5], recall_score(truth, prediction, **kwargs)[:5])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about the prediction-only class
        balanced = balanced_accuracy_score(truth, prediction)
    assert m["mean_accuracy"] == pytest.approx(balanced)
    assert m["pixel_accuracy"] == pytest.approx(np.mean(truth == prediction))


def test_format_table_csv_and_plot(tmp_path):
    m = metrics_from_confusion(HAND_CM)
    table = format_table(m, HAND_NAMES)
    assert "sky" in table and "75.00" in table and "85.71" in table  # IoU, Dice of sky
    assert "car" not in table and "1 classes absent" in table
    assert "mIoU 38.33" in table and "pixel accuracy 62.50" in table
    assert "car" in format_table(m, HAND_NAMES, skip_absent=False)
    with pytest.raises(ValueError, match="class_names has 3 entries"):
        format_table(m, HAND_NAMES[:3])

    path = tmp_path / "sub" / "metrics.csv"
    write_csv(m, HAND_NAMES, str(path))
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    assert [r["class_name"] for r in rows] == [*HAND_NAMES, "mean", "overall"]
    assert float(rows[1]["iou"]) == pytest.approx(0.4)
    assert rows[3]["iou"] == "" and rows[2]["recall"] == ""  # NaN
    assert float(rows[4]["iou"]) == pytest.approx(m["miou"])
    assert float(rows[4]["recall"]) == pytest.approx(m["mean_accuracy"])
    assert float(rows[5]["precision"]) == pytest.approx(5 / 8)
    assert rows[0]["gt_pixels"] == "4" and rows[2]["pred_pixels"] == "2"

    png = tmp_path / "confusion.png"
    plot_confusion(HAND_CM, HAND_NAMES, str(png))
    with Image.open(png) as image:
        assert image.size[0] > 100 and image.size[1] > 100
    plot_confusion(HAND_CM, HAND_NAMES, str(tmp_path / "raw.png"), normalize=False)
    assert (tmp_path / "raw.png").stat().st_size > 0


# --- sliding window -----------------------------------------------------------------------------


def _pointwise_fake(weights):
    """Full-resolution logits = image @ weights: equivariant to translation, any tile gives
    the same numbers at the same pixel."""

    def predict(batch):
        return np.einsum("bhwk,kc->bhwc", batch, weights)  # [B, h, w, C]

    return predict


def _recording(predict, shapes):
    def wrapped(batch):
        shapes.append(batch.shape)
        return predict(batch)

    return wrapped


def test_tile_origins_align_the_last_tile_to_the_border():
    assert tile_origins(100, 64, 48) == [0, 36]
    assert tile_origins(150, 64, 48) == [0, 48, 86]
    assert tile_origins(64, 64, 48) == [0]
    assert tile_origins(30, 64, 48) == [0]
    assert tile_origins(128, 32, 32) == [0, 32, 64, 96]


def test_slide_equals_whole_for_a_translation_equivariant_model():
    rng = np.random.default_rng(0)
    image = rng.standard_normal((100, 150, 3)).astype(np.float32)
    fake = _pointwise_fake(rng.standard_normal((3, 5)).astype(np.float32))
    shapes = []
    slide = predict_probs(_recording(fake, shapes), image, 5, tile=64, overlap=0.25, batch_size=4)
    whole = predict_probs(fake, image, 5, mode="whole")
    assert slide.shape == (100, 150, 5) and slide.dtype == np.float32
    np.testing.assert_allclose(slide, whole, atol=1e-5)
    np.testing.assert_allclose(slide.sum(-1), 1.0, atol=1e-5)
    # 2 x 3 tiles of 64 x 64 (origins above), in batches of 4 + 2.
    assert [s[:3] for s in shapes] == [(4, 64, 64), (2, 64, 64)]


def test_overlapping_tiles_are_averaged():
    # Channel 0 holds the column index; the fake predicts class (first column // 32) for the
    # whole tile, so tiles at x = 0 and x = 32 predict classes 0 and 1.
    image = np.zeros((32, 96, 3), np.float32)
    image[..., 0] = np.arange(96)[None, :]

    def fake(batch):
        classes = (batch[:, 0, 0, 0] // 32).astype(int)  # [B]
        logits = np.full((len(batch), 8, 16, 3), -1e4, np.float32)  # [B, h/4, w/4, C]
        logits[np.arange(len(batch)), :, :, classes] = 1e4
        return logits

    probs = predict_probs(fake, image, 3, tile=(32, 64), stride=32, batch_size=1)
    np.testing.assert_allclose(probs[:, :32], np.broadcast_to([1, 0, 0], (32, 32, 3)))
    np.testing.assert_allclose(probs[:, 32:64], np.broadcast_to([0.5, 0.5, 0], (32, 32, 3)))
    np.testing.assert_allclose(probs[:, 64:], np.broadcast_to([0, 1, 0], (32, 32, 3)))


def test_small_images_are_padded_and_batching_does_not_matter():
    rng = np.random.default_rng(2)
    fake = _pointwise_fake(rng.standard_normal((3, 4)).astype(np.float32))
    small = rng.standard_normal((20, 40, 3)).astype(np.float32)
    shapes = []
    probs = predict_probs(_recording(fake, shapes), small, 4, tile=32, overlap=0.5)
    assert probs.shape == (20, 40, 4)
    assert [s[1:3] for s in shapes] == [(32, 32)] * len(shapes)
    np.testing.assert_allclose(probs, predict_probs(fake, small, 4, mode="whole"), atol=1e-5)

    image = rng.standard_normal((70, 90, 3)).astype(np.float32)
    results = [predict_probs(fake, image, 4, tile=32, batch_size=b) for b in (1, 3, 100)]
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


def test_whole_mode_pads_to_the_size_divisor_and_upsamples_quarter_logits():
    shapes = []

    def quarter_fake(batch):  # constant logits at 1/4 resolution, float16 like mixed precision
        n, h, w, _ = batch.shape
        return tf.constant(np.broadcast_to([0.0, np.log(3.0)], (n, h // 4, w // 4, 2)), tf.float16)

    image = np.zeros((100, 150, 3), np.float32)
    probs = predict_probs(_recording(quarter_fake, shapes), image, 2, mode="whole")
    assert shapes == [(1, 128, 160, 3)]
    assert probs.shape == (100, 150, 2)
    np.testing.assert_allclose(probs, np.broadcast_to([0.25, 0.75], probs.shape), atol=1e-3)


def test_sliding_window_errors_name_the_flag():
    image = np.zeros((64, 64, 3), np.float32)
    fake = _pointwise_fake(np.ones((3, 2), np.float32))
    with pytest.raises(ValueError, match="--tile_size=50 must be a multiple of 32"):
        predict_probs(fake, image, 2, tile=50)
    for overlap in (1.0, -0.1):
        with pytest.raises(ValueError, match="--overlap must lie in"):
            predict_probs(fake, image, 2, tile=32, overlap=overlap)
    with pytest.raises(ValueError, match="not both"):
        check_tiling(32, overlap=0.5, stride=16)
    with pytest.raises(ValueError, match="must be .H, W, 3."):
        predict_probs(fake, image[..., 0], 2)
    with pytest.raises(ValueError, match="--mode"):
        predict_probs(fake, image, 2, mode="tiles")
    with pytest.raises(ValueError, match="--batch_size"):
        predict_probs(fake, image, 2, batch_size=0)
    with pytest.raises(ValueError, match="expected .1, h, w, 3."):
        predict_probs(fake, image, 3, tile=64)
