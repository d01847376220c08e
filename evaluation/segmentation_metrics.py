"""Segmentation metrics from one streaming confusion matrix (the project's only implementation).

Rows of the confusion matrix are ground truth, columns predictions: cm[g, p] counts pixels of
class g predicted as p. Everything else (IoU, Dice, precision, recall, mIoU, pixel and mean
accuracy) is a pure function of that matrix, so training evaluation, segment.py --gt_dir and
evaluate.py report the same numbers for the same pixels.

Example:
    cm = ConfusionMatrix(num_classes=19)            # under strategy.scope() when distributed
    for batch in dataset:
        cm.update(batch["label"], ops.argmax(logits, axis=-1))   # [N, H, W] each
    metrics = metrics_from_confusion(cm.result())
    print(format_table(metrics, label_set.names))
"""

from __future__ import annotations

import csv
import math
import os

import numpy as np
import tensorflow as tf

PER_CLASS_KEYS = ("iou", "dice", "precision", "recall")


class ConfusionMatrix(tf.Module):
    """A [C, C] int64 confusion matrix accumulated over batches, and across replicas.

    The variable is a sync-on-read SUM variable: under tf.distribute every replica adds its own
    pixels to its own copy (no communication per step) and a read in cross-replica context
    (`result()`) sums the copies. Create it inside `strategy.scope()` for that; outside any
    scope it is an ordinary variable. `update` is graph-safe (tf.function, strategy.run).

    Args:
        num_classes: C, number of classes; label and prediction values lie in [0, C).
        ignore_index: label value of pixels that are not counted (255, as in the label maps).
        name: name of the module and its variable.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255, name: str = "confusion_matrix"):
        super().__init__(name=name)
        if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
            raise ValueError(
                f"ConfusionMatrix: num_classes must be a positive int, got {num_classes!r}"
            )
        # The bincount below indexes C*C (+1) bins with int32.
        if num_classes * num_classes + 1 >= 2**31:
            raise ValueError(f"ConfusionMatrix: num_classes={num_classes} is too large")
        if 0 <= ignore_index < num_classes:
            raise ValueError(
                f"ConfusionMatrix: ignore_index={ignore_index} is a class id (num_classes="
                f"{num_classes}); it must lie outside [0, {num_classes - 1}]"
            )
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        with self.name_scope:
            self.matrix = tf.Variable(
                tf.zeros((self.num_classes, self.num_classes), tf.int64),  # [C, C]
                trainable=False,
                name="matrix",
                synchronization=tf.VariableSynchronization.ON_READ,
                aggregation=tf.VariableAggregation.SUM,
            )

    def update(self, labels, predictions):
        """Adds one batch of pixels.

        Args:
            labels: ground-truth class ids, any integer dtype and shape, e.g. [N, H, W]; pixels
                equal to ignore_index are skipped.
            predictions: predicted class ids, same shape as labels.

        Values outside [0, C) (labels: other than ignore_index) raise InvalidArgumentError
        when the update runs (eagerly at once, in a graph when it executes).
        """
        num_classes = self.num_classes
        labels = tf.cast(tf.convert_to_tensor(labels), tf.int64)
        predictions = tf.cast(tf.convert_to_tensor(predictions), tf.int64)
        if not labels.shape.is_compatible_with(predictions.shape):
            raise ValueError(
                f"ConfusionMatrix.update: labels {labels.shape} and predictions "
                f"{predictions.shape} must have the same shape"
            )
        labels = tf.reshape(labels, (-1,))  # [P]
        predictions = tf.reshape(predictions, (-1,))  # [P]
        tf.debugging.assert_equal(
            tf.size(labels),
            tf.size(predictions),
            message="ConfusionMatrix.update: labels and predictions differ in size",
        )
        counted = tf.not_equal(labels, self.ignore_index)
        label_ok = (labels >= 0) & (labels < num_classes)
        prediction_ok = (predictions >= 0) & (predictions < num_classes)
        label_check = tf.debugging.Assert(
            tf.reduce_all(label_ok | ~counted),
            [
                f"ConfusionMatrix.update: label values must lie in [0, {num_classes - 1}] or equal "
                f"ignore_index={self.ignore_index}; got min/max",
                tf.reduce_min(labels),
                tf.reduce_max(labels),
            ],
        )
        prediction_check = tf.debugging.Assert(
            tf.reduce_all(prediction_ok),
            [
                f"ConfusionMatrix.update: predictions must lie in [0, {num_classes - 1}]; got "
                "min/max",
                tf.reduce_min(predictions),
                tf.reduce_max(predictions),
            ],
        )
        # Pixels not counted go to one extra bin that is dropped, which keeps every shape static
        # (no boolean_mask), so the update also compiles with XLA, where asserts are dropped.
        overflow_bin = num_classes * num_classes
        bins = tf.where(
            counted & label_ok & prediction_ok, labels * num_classes + predictions, overflow_bin
        )  # [P]
        counts = tf.math.bincount(
            tf.cast(bins, tf.int32),
            minlength=overflow_bin + 1,
            maxlength=overflow_bin + 1,
            dtype=tf.int32,
        )  # [C*C + 1]
        counts = tf.reshape(counts[:overflow_bin], (num_classes, num_classes))  # [C, C]
        # A bad batch must not be half-counted: in a graph the asserts are not ordered before
        # the update unless we say so.
        with tf.control_dependencies([label_check, prediction_check]):
            self.matrix.assign_add(tf.cast(counts, tf.int64))

    def reset(self):
        """Sets every count (on every replica) to zero."""
        self.matrix.assign(tf.zeros((self.num_classes, self.num_classes), tf.int64))

    def result(self) -> np.ndarray:
        """The accumulated [C, C] int64 matrix, summed over replicas (call outside strategy.run)."""
        return np.asarray(self.matrix.read_value().numpy(), dtype=np.int64)


def _divide(numerator, denominator):
    """numerator / denominator elementwise, NaN where the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _nanmean(values) -> float:
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else math.nan


def metrics_from_confusion(cm, exclude_classes=()) -> dict:
    """Per-class and mean metrics of a confusion matrix (rows ground truth, columns prediction).

    Per class c (TP = cm[c, c], FP = column sum - TP, FN = row sum - TP):
        IoU = TP / (TP + FP + FN), Dice = 2 TP / (2 TP + FP + FN): NaN when c is absent from
            both ground truth and prediction;
        precision = TP / (TP + FP): NaN when c is never predicted;
        recall = TP / (TP + FN) (the per-class accuracy): NaN when c is absent from ground truth.
    NaN entries are excluded from every mean, so a class that neither occurs nor is predicted
    does not move mIoU. mean_accuracy is the mean recall over classes present in the ground
    truth (mmseg's mAcc, scikit-learn's balanced accuracy).

    Args:
        cm: [C, C] non-negative integer counts.
        exclude_classes: class ids reported as NaN and left out of the means (e.g. a
            "dontcare" class whose ground-truth pixels were ignored); their pixels still count
            in pixel_accuracy.

    Returns:
        {"iou", "dice", "precision", "recall": [C] float64, "gt_pixels", "pred_pixels": [C]
        int64, "miou", "mean_dice", "mean_precision", "mean_accuracy", "pixel_accuracy": float
        (NaN when nothing was counted), "num_pixels": int}.
    """
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(
            f"metrics_from_confusion: cm must be a square [C, C] matrix, got shape {list(cm.shape)}"
        )
    if not np.issubdtype(cm.dtype, np.integer) or (cm.size and cm.min() < 0):
        raise ValueError("metrics_from_confusion: cm must hold non-negative integer counts")
    cm = cm.astype(np.int64)
    num_classes = cm.shape[0]
    true_positive = np.diag(cm)  # [C]
    gt_pixels = cm.sum(axis=1)  # [C]
    pred_pixels = cm.sum(axis=0)  # [C]
    false_positive = pred_pixels - true_positive
    false_negative = gt_pixels - true_positive
    metrics = {
        "iou": _divide(true_positive, true_positive + false_positive + false_negative),
        "dice": _divide(2 * true_positive, 2 * true_positive + false_positive + false_negative),
        "precision": _divide(true_positive, pred_pixels),
        "recall": _divide(true_positive, gt_pixels),
    }
    excluded = [int(c) for c in exclude_classes]
    bad = [c for c in excluded if not 0 <= c < num_classes]
    if bad:
        raise ValueError(
            f"metrics_from_confusion: exclude_classes {bad} are outside [0, {num_classes - 1}]"
        )
    for key in PER_CLASS_KEYS:
        metrics[key][excluded] = np.nan
    num_pixels = int(cm.sum())
    metrics.update(
        gt_pixels=gt_pixels,
        pred_pixels=pred_pixels,
        miou=_nanmean(metrics["iou"]),
        mean_dice=_nanmean(metrics["dice"]),
        mean_precision=_nanmean(metrics["precision"]),
        mean_accuracy=_nanmean(metrics["recall"]),
        pixel_accuracy=float(true_positive.sum() / num_pixels) if num_pixels else math.nan,
        num_pixels=num_pixels,
    )
    return metrics


def _check_names(metrics: dict, class_names) -> list[str]:
    num_classes = len(metrics["iou"])
    class_names = [str(name) for name in class_names]
    if len(class_names) != num_classes:
        raise ValueError(
            f"class_names has {len(class_names)} entries, the metrics {num_classes} classes"
        )
    return class_names


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{100.0 * value:.2f}"


def format_table(metrics: dict, class_names, *, skip_absent: bool = True) -> str:
    """A terminal table: per-class IoU, Dice, precision, recall (%), then the means.

    Args:
        metrics: the dict of metrics_from_confusion.
        class_names: C names, e.g. LabelSet.names.
        skip_absent: leave out classes with IoU NaN (absent from ground truth and prediction,
            or excluded); a line says how many.
    """
    class_names = _check_names(metrics, class_names)
    total = max(int(metrics["gt_pixels"].sum()), 1)
    rows = [
        (
            str(c),
            name,
            *(_percent(metrics[key][c]) for key in PER_CLASS_KEYS),
            f"{100.0 * metrics['gt_pixels'][c] / total:.2f}",
        )
        for c, name in enumerate(class_names)
        if not (skip_absent and math.isnan(metrics["iou"][c]))
    ]
    header = ("id", "class", "IoU", "Dice", "Prec.", "Recall", "GT %")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row):
        cells = [row[0].rjust(widths[0]), row[1].ljust(widths[1])]
        cells += [cell.rjust(width) for cell, width in zip(row[2:], widths[2:])]
        return "  ".join(cells).rstrip()

    out = [line(header), "-" * len(line(header)), *(line(row) for row in rows)]
    hidden = len(class_names) - len(rows)
    if hidden:
        out.append(
            f"({hidden} classes absent from ground truth and prediction, or excluded, "
            "are not listed)"
        )
    out.append("-" * len(line(header)))
    out.append(
        f"mIoU {_percent(metrics['miou'])}  mean Dice {_percent(metrics['mean_dice'])}  "
        f"pixel accuracy {_percent(metrics['pixel_accuracy'])}  mean accuracy "
        f"{_percent(metrics['mean_accuracy'])}  ({metrics['num_pixels']} pixels)"
    )
    return "\n".join(out)


def _csv_number(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.6f}"


def write_csv(metrics: dict, class_names, path: str) -> None:
    """Writes the metrics as CSV: one row per class, then a "mean" and an "overall" row.

    Columns: class_id, class_name, iou, dice, precision, recall (fractions in [0, 1], empty
    for NaN), gt_pixels, pred_pixels. The "mean" row holds mIoU, mean Dice, mean precision and
    mean accuracy (macro means); the "overall" row the pixel-level (micro) precision and recall,
    both equal to the pixel accuracy.
    """
    class_names = _check_names(metrics, class_names)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    total = int(metrics["gt_pixels"].sum())
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["class_id", "class_name", *PER_CLASS_KEYS, "gt_pixels", "pred_pixels"])
        for c, name in enumerate(class_names):
            writer.writerow(
                [
                    c,
                    name,
                    *(_csv_number(metrics[key][c]) for key in PER_CLASS_KEYS),
                    int(metrics["gt_pixels"][c]),
                    int(metrics["pred_pixels"][c]),
                ]
            )
        writer.writerow(
            [
                "",
                "mean",
                _csv_number(metrics["miou"]),
                _csv_number(metrics["mean_dice"]),
                _csv_number(metrics["mean_precision"]),
                _csv_number(metrics["mean_accuracy"]),
                total,
                total,
            ]
        )
        accuracy = _csv_number(metrics["pixel_accuracy"])
        writer.writerow(["", "overall", "", "", accuracy, accuracy, total, total])


def plot_confusion(
    cm, class_names, path: str, normalize: bool = True, *, skip_absent: bool = True
) -> None:
    """Saves the confusion matrix as an image (matplotlib, Agg; no display needed).

    Args:
        cm: [C, C] counts, rows ground truth, columns prediction.
        class_names: C names for the axes.
        path: output file; the format follows its extension (.png, .pdf, .svg).
        normalize: divide each row by its sum (each cell is then the share of class g's pixels
            predicted as p; the diagonal is the recall).
        skip_absent: drop classes absent from both ground truth and prediction, so 151 ADE20K
            classes shrink to the ones that matter.
    """
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    cm = np.asarray(cm, dtype=np.int64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"plot_confusion: cm must be [C, C], got shape {list(cm.shape)}")
    class_names = [str(name) for name in class_names]
    if len(class_names) != cm.shape[0]:
        raise ValueError(
            f"plot_confusion: {len(class_names)} class names for a {cm.shape[0]}-class matrix"
        )
    keep = np.arange(cm.shape[0])
    if skip_absent:
        keep = keep[(cm.sum(axis=0) + cm.sum(axis=1)) > 0]
        if not keep.size:
            keep = np.arange(cm.shape[0])
    shown = cm[np.ix_(keep, keep)]  # [K, K]
    values = _divide(shown, shown.sum(axis=1, keepdims=True)) if normalize else shown
    values = np.nan_to_num(np.asarray(values, dtype=np.float64))
    size = 3.0 + 0.35 * len(keep)
    figure = Figure(figsize=(size + 1.5, size), dpi=100)
    axes = figure.add_subplot()
    image = axes.imshow(values, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    labels = [f"{c} {class_names[c]}" for c in keep]
    axes.set_xticks(range(len(keep)), labels, rotation=90, fontsize=7)
    axes.set_yticks(range(len(keep)), labels, fontsize=7)
    axes.set_xlabel("prediction")
    axes.set_ylabel("ground truth")
    axes.set_title("confusion matrix" + (" (rows normalised)" if normalize else " (pixels)"))
    if len(keep) <= 20:  # numbers stay legible only for few classes
        threshold = values.max() / 2 if values.size else 0
        for g in range(len(keep)):
            for p in range(len(keep)):
                text = f"{values[g, p]:.2f}" if normalize else str(int(values[g, p]))
                axes.text(
                    p,
                    g,
                    text,
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if values[g, p] > threshold else "black",
                )
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path)
