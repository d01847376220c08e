"""Segmentation losses: pure functions of logits and integer labels returning float32 scalars.

Logits [N, h, w, C] may be smaller than the labels [N, H, W] (SegFormer predicts at 1/4 of the
input): they are upsampled bilinearly to the label size first (half-pixel centres, i.e.
PyTorch's align_corners=False), as the reference does in its loss. Pixels labelled ignore_index
count nowhere. Logits are cast to float32 before the softmax, so mixed-precision models do not
overflow it. Labels must hold class ids in [0, C) or ignore_index.
"""

from __future__ import annotations

import tensorflow as tf
from keras import ops

IGNORE_INDEX = 255


def upsample_logits(logits, size):
    """Bilinear resize of logits [N, h, w, C] to size (H, W) (no-op when already that size).

    Returns float32 [N, H, W, C].
    """
    logits = ops.cast(logits, "float32")
    if isinstance(size, tuple) and tuple(logits.shape[1:3]) == size:
        return logits
    return tf.image.resize(logits, size, method="bilinear")  # [N, H, W, C]


def _label_size(labels):
    """(H, W) of labels [N, H, W]: static ints when known, else a [2] tensor."""
    size = tuple(labels.shape[1:3])
    return tf.shape(labels)[1:3] if None in size else size


def _prepare(logits, labels, ignore_index):
    """(float32 logits at label size [N, H, W, C], labels with ignored pixels set to 0
    [N, H, W] int32, valid-pixel mask [N, H, W] float32)."""
    if len(logits.shape) != 4:
        raise ValueError(f"logits must be [N, h, w, C], got shape {list(logits.shape)}")
    labels = ops.cast(labels, "int32")
    if len(labels.shape) != 3:
        raise ValueError(f"labels must be [N, H, W] integers, got shape {list(labels.shape)}")
    logits = upsample_logits(logits, _label_size(labels))  # [N, H, W, C]
    valid = ops.not_equal(labels, ignore_index)  # [N, H, W]
    safe_labels = ops.where(valid, labels, 0)  # [N, H, W]
    return logits, safe_labels, ops.cast(valid, "float32")


def _check_num_classes(logits, num_classes, name):
    channels = logits.shape[-1]
    if channels is not None and channels != num_classes:
        raise ValueError(f"logits have {channels} channels but {name}={num_classes}")


def cross_entropy(logits, labels, class_weights=None, ignore_index: int = IGNORE_INDEX):
    """Softmax cross-entropy averaged over the labelled pixels.

    With class_weights w it is PyTorch's weighted mean sum(w_y * ce) / sum(w_y) over the
    labelled pixels (y is each pixel's class). A batch without labelled pixels gives 0 (not
    NaN), so an all-ignore crop cannot poison training.

    Args:
        logits: [N, h, w, C] class scores, any float dtype; upsampled to (H, W) if smaller.
        labels: [N, H, W] integer class ids or ignore_index.
        class_weights: None or [C] per-class weights.
        ignore_index: label value excluded from the loss.

    Returns:
        float32 scalar.
    """
    logits, safe_labels, valid = _prepare(logits, labels, ignore_index)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=safe_labels, logits=logits
    )  # [N, H, W]
    if class_weights is None:
        weights = valid  # [N, H, W]
    else:
        class_weights = ops.cast(ops.convert_to_tensor(class_weights), "float32")  # [C]
        if len(class_weights.shape) != 1:
            raise ValueError(f"class_weights must be [C], got shape {list(class_weights.shape)}")
        _check_num_classes(logits, class_weights.shape[0], "len(class_weights)")
        weights = ops.take(class_weights, safe_labels) * valid  # [N, H, W]
    return tf.math.divide_no_nan(ops.sum(weights * ce), ops.sum(weights))


def power_jaccard_loss(
    logits,
    labels,
    num_classes: int,
    q: float = 2.0,
    eps: float = 1e-7,
    ignore_index: int = IGNORE_INDEX,
):
    """Power Jaccard loss (Duque-Arias et al. 2021) on softmax probabilities.

    1 - (sum(p * y) + eps) / (sum(p^q + y^q) - sum(p * y) + eps), with p the softmax
    probabilities and y the one-hot labels of the labelled pixels only. As in the paper's
    definition (and the reference's formula), each sum runs over all labelled pixels, all
    classes and all images of the batch at once: one ratio, not a mean of per-class ratios.
    q = 1 is the soft Jaccard (IoU) loss.

    Args:
        logits: [N, h, w, C] class scores, any float dtype; upsampled to (H, W) if smaller.
        labels: [N, H, W] integer class ids or ignore_index.
        num_classes: C, the number of classes (checked against the logits).
        q: the power applied to p and y in the denominator.
        eps: smoothing added to numerator and denominator: it keeps the ratio defined (loss 0)
            for a batch without labelled pixels and is negligible otherwise, since the
            denominator is then at least the number of labelled pixels.
        ignore_index: label value excluded from the loss.

    Returns:
        float32 scalar in [0, 1).
    """
    _check_num_classes(logits, num_classes, "num_classes")
    logits, safe_labels, valid = _prepare(logits, labels, ignore_index)
    valid = valid[..., None]  # [N, H, W, 1]
    p = ops.softmax(logits, axis=-1) * valid  # [N, H, W, C]
    y = ops.one_hot(safe_labels, num_classes, dtype="float32") * valid  # [N, H, W, C]
    intersection = ops.sum(p * y)
    total = ops.sum(ops.power(p, q) + ops.power(y, q))
    return 1.0 - (intersection + eps) / (total - intersection + eps)


def segmentation_loss(
    logits,
    labels,
    num_classes: int,
    class_weights=None,
    ce_weight: float = 1.0,
    jaccard_weight: float = 0.0,
    q: float = 2.0,
    eps: float = 1e-7,
    ignore_index: int = IGNORE_INDEX,
):
    """ce_weight * cross_entropy + jaccard_weight * power_jaccard_loss.

    The default is cross-entropy only, the SegFormer recipe; the FaceSynthetics system
    intends ce_weight=1, jaccard_weight=1. Class weights apply to the cross-entropy only.
    Arguments as in `cross_entropy` and `power_jaccard_loss`. Returns a float32 scalar.
    """
    _check_num_classes(logits, num_classes, "num_classes")
    labels = ops.cast(labels, "int32")
    logits = upsample_logits(logits, _label_size(labels))  # [N, H, W, C], shared by both terms
    loss = ops.zeros((), "float32")
    if ce_weight:
        loss += ce_weight * cross_entropy(logits, labels, class_weights, ignore_index)
    if jaccard_weight:
        loss += jaccard_weight * power_jaccard_loss(
            logits, labels, num_classes, q, eps, ignore_index
        )
    return loss
