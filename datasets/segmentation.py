"""Segmentation datasets: raw label values -> train ids, SegFormer-style tf.data.

Batches are dicts {"image": [N, H, W, 3] float32 ImageNet-normalised ((x / 255 - mean) / std),
"label": [N, H, W] int32 train ids in [0, num_classes) or 255 = ignore}.

Label files store raw values, which a 256-entry table (a "label map") turns into train ids in
graph: identity for FaceSynthetics, generic folders and JSON lists; Cityscapes labelIds ->
trainIds; ADE20K 0 -> 255 and 1..150 -> 0..149 (mmsegmentation's reduce_zero_label). Raw 255
always means ignore. A raw value the table does not know stops the pipeline with an error
naming the file and the value: it means the files belong to another dataset.

Training (`make_seg_train_dataset`) follows the SegFormer / mmsegmentation recipe: random
scale by a ratio in [0.5, 2.0] (image bilinear, label nearest), random crop whose largest class
covers less than cat_max_ratio of its labelled pixels (up to 10 tries), horizontal flip that
also swaps left / right classes, optionally the FaceSynthetics seed's distortions and colour
augmentations (datasets/augmentations.py), photometric distortion, normalisation, then padding
to the crop size (image 0 after normalisation, label 255). Like datasets/pipeline.py, the
stream is a pure function of (seed, global element index), so resuming at a step repeats the
batches.

The file lists of every dataset (and the JSON pair list format) are in datasets/pairs.py
(`resolve_pairs`).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from semantic_labels import LabelSet, load_label_set

from .augmentations import ExtraAugmentations, apply_extra_augmentations
from .pairs import SEG_DATASETS, DatasetError
from .pipeline import (  # noqa: F401  (apply_label_map: re-exported, its old home)
    apply_label_map,
    check_pairs,
    check_positive,
    coin_flip,
    data_options,
    load_pair,
    mirror_where,
    one_pass,
    resize_label,
    training_stream,
)

IGNORE = 255  # label value of pixels no loss or metric counts
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_INVALID = -1  # label-map entry of raw values that belong to no class
_CROP_TRIES = 10  # mmsegmentation's RandomCrop tries 10 windows for cat_max_ratio


# ------------------------------------------------------------------------------------------
# Label sets and label maps (raw file value -> train id)
# ------------------------------------------------------------------------------------------


def reduce_zero_label(labels: LabelSet) -> LabelSet:
    """The segmentation view of a label set whose id 0 is "other" (ADE20K: 150 classes).

    Raw 0 becomes ignore and raw k becomes train id k - 1, as mmsegmentation's
    reduce_zero_label; names and colours are the base's, without id 0.
    """
    if labels.num_classes < 2:
        raise ValueError(f"label set {labels.name!r} has no classes besides id 0")
    source_ids = labels.source_ids or tuple(range(labels.num_classes))
    return LabelSet(
        name=f"{labels.name}_reduce_zero_label",
        names=labels.names[1:],
        colors=labels.colors[1:],
        used_ids=tuple(i - 1 for i in labels.used_ids if i > 0),
        dontcare_id=None,
        ignore_index=IGNORE,
        flip_pairs=tuple((a - 1, b - 1) for a, b in labels.flip_pairs if a and b),
        source_ids=source_ids[1:],
        ignored_source_ids=(source_ids[0],) + labels.ignored_source_ids,
    )


def make_label_map(source_ids, ignored_source_ids=()) -> np.ndarray:
    """The [256] int32 table from raw label values to train ids.

    Args:
        source_ids: raw value of each train id (`source_ids[k]` -> k), values in 0..254.
        ignored_source_ids: raw values that mean ignore (-> 255); raw 255 always does.

    Returns:
        table with table[raw] = train id, 255 for ignored values and -1 for every other value
        (an in-graph error when a file holds it).
    """
    source_ids = [int(v) for v in source_ids]
    ignored = [int(v) for v in ignored_source_ids]
    if any(not 0 <= v < IGNORE for v in source_ids) or len(set(source_ids)) != len(source_ids):
        raise ValueError(f"source_ids must be distinct values in [0, 254], got {source_ids}")
    if any(not 0 <= v <= IGNORE for v in ignored) or set(ignored) & set(source_ids):
        raise ValueError(
            f"ignored_source_ids must be values in [0, 255] not in source_ids, got {ignored}"
        )
    table = np.full(256, _INVALID, np.int32)
    table[ignored] = IGNORE
    table[IGNORE] = IGNORE
    table[source_ids] = np.arange(len(source_ids), dtype=np.int32)
    return table


def identity_label_map(num_classes: int) -> np.ndarray:
    """Files store train ids 0..num_classes-1 (and 255 = ignore); other values are errors."""
    num_classes = check_positive("num_classes", num_classes)
    if num_classes > IGNORE:
        raise ValueError(f"num_classes must be at most 255 for 8-bit labels, got {num_classes}")
    return make_label_map(range(num_classes))


def label_map_from_label_set(labels: LabelSet) -> np.ndarray:
    """The label map of a label set: its source_ids (or ids) -> ids, ignore values -> 255."""
    source_ids = labels.source_ids or range(labels.num_classes)
    ignored = labels.ignored_source_ids
    if labels.ignore_index is not None and labels.ignore_index not in ignored:
        ignored = ignored + (labels.ignore_index,)
    return make_label_map(source_ids, ignored)


def dataset_label_set(dataset: str) -> LabelSet | None:
    """The label set of a built-in segmentation dataset; None for "folders" and "json"."""
    if dataset in ("facesynthetics", "cityscapes", "idd", "celebamask_hq"):
        return load_label_set(dataset)
    if dataset == "streets":  # the procedural streets store Cityscapes labelIds
        return load_label_set("cityscapes")
    if dataset == "ade20k":
        return reduce_zero_label(load_label_set("ade20k"))
    if dataset in ("folders", "json"):
        return None
    raise DatasetError(f"--dataset={dataset!r} is not one of: {', '.join(SEG_DATASETS)}")


def dataset_label_map(dataset: str, num_classes: int | None = None) -> tuple[np.ndarray, int]:
    """(label map, num_classes) of a dataset; "folders" / "json" store train ids directly.

    num_classes is required for "folders" / "json" and, if given, must match the built-in
    datasets' class count; errors name --num_classes.
    """
    labels = dataset_label_set(dataset)
    if labels is None:
        if num_classes is None:
            raise DatasetError(f"--dataset={dataset} needs --num_classes")
        return identity_label_map(num_classes), int(num_classes)
    if num_classes is not None and num_classes != labels.num_classes:
        raise DatasetError(
            f"--num_classes={num_classes} but --dataset={dataset} has {labels.num_classes} classes"
        )
    return label_map_from_label_set(labels), labels.num_classes


def _check_label_map(label_map, num_classes: int) -> np.ndarray:
    table = np.asarray(identity_label_map(num_classes) if label_map is None else label_map)
    if table.shape != (256,) or not np.issubdtype(table.dtype, np.integer):
        raise ValueError(
            f"label_map must be a [256] integer table (raw value -> train id), got shape "
            f"{list(table.shape)} dtype {table.dtype}"
        )
    bad = sorted(set(table[(table != IGNORE) & ((table < _INVALID) | (table >= num_classes))]))
    if bad:
        raise ValueError(
            f"label_map holds train ids {bad[:10]} outside [0, {num_classes - 1}] for "
            f"num_classes={num_classes} (allowed: ids, 255 = ignore, -1 = invalid)"
        )
    return table.astype(np.int32)


# ------------------------------------------------------------------------------------------
# Augmentation: pure functions of their inputs and a [2] seed, eager or inside tf.data.
# ------------------------------------------------------------------------------------------


def _pair_size(size) -> tuple[int, int]:
    """An int or (h, w) -> (h, w) of positive ints."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (size, size)
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in size
        )
    ):
        raise ValueError(f"a size must be a positive int or (height, width), got {size!r}")
    return int(size[0]), int(size[1])


def random_scale(image, label, seed, scale_range=(0.5, 2.0)):
    """Resizes image (bilinear) and label (nearest) by one ratio drawn from scale_range.

    Args:
        image: [H, W, 3] float32. label: [H, W] int32. seed: [2] int.
        scale_range: (low, high) of the uniformly drawn ratio.

    Returns:
        image [h, w, 3] float32, label [h, w] int32 with (h, w) = round(ratio * (H, W)).
    """
    low, high = scale_range
    ratio = tf.random.stateless_uniform([], seed, minval=low, maxval=high)
    size = tf.maximum(
        tf.cast(tf.round(tf.cast(tf.shape(label), tf.float32) * ratio), tf.int32), 1
    )  # [2]
    image = tf.image.resize(image, size, method="bilinear")  # [h, w, 3]
    return image, resize_label(label, size)  # [h, w, 3], [h, w]


def random_crop(image, label, seed, crop_size, cat_max_ratio=0.75):
    """One random crop of image and label, avoiding windows dominated by a single class.

    Up to 10 windows are drawn; the first whose largest class (255 not counted) covers less
    than cat_max_ratio of its labelled pixels is kept, else the 10th (mmsegmentation's
    RandomCrop). cat_max_ratio >= 1 keeps the first. Images smaller than crop_size keep
    their size along that side (pad afterwards).

    Args:
        image: [H, W, 3]. label: [H, W] int32 train ids. seed: [2] int.
        crop_size: (crop_h, crop_w).
        cat_max_ratio: largest share of one class allowed in the crop.

    Returns:
        image [min(H, crop_h), min(W, crop_w), 3], label of the same height and width.
    """
    window = tf.minimum(tf.shape(label), crop_size)  # [2]
    room = tf.shape(label) - window + 1  # [2] number of possible offsets per axis
    draws = tf.random.stateless_uniform([_CROP_TRIES, 2], seed)  # [T, 2] in [0, 1)
    offsets = tf.minimum(tf.cast(draws * tf.cast(room, tf.float32), tf.int32), room - 1)  # [T, 2]
    chosen = tf.constant(0)
    if cat_max_ratio < 1.0:

        def dominated(offset):
            crop = tf.reshape(tf.slice(label, offset, window), [-1])  # [h * w]
            counts = tf.math.bincount(crop, minlength=256, maxlength=256)[:IGNORE]  # [255]
            labelled = tf.cast(tf.reduce_sum(counts), tf.float32)
            largest = tf.cast(tf.reduce_max(counts), tf.float32)
            return tf.logical_or(labelled == 0.0, largest >= cat_max_ratio * labelled)

        (chosen,) = tf.while_loop(
            lambda t: tf.logical_and(t < _CROP_TRIES - 1, dominated(offsets[t])),
            lambda t: (t + 1,),
            (chosen,),
        )
    offset = offsets[chosen]  # [2]
    image = tf.slice(image, tf.concat([offset, [0]], 0), tf.concat([window, [-1]], 0))
    label = tf.slice(label, offset, window)  # [h, w]
    return image, label


def random_flip(image, label, seed, flip_pairs=()):
    """Horizontal flip with probability 1/2; a flipped label swaps each pair (a, b).

    Args:
        image: [H, W, 3]. label: [H, W] int32. seed: [2] int.
        flip_pairs: pairs of train ids a mirror image exchanges (left eye <-> right eye).
    """
    swap = np.arange(256, dtype=np.int32)
    for a, b in flip_pairs:
        swap[a], swap[b] = b, a
    mirrored = coin_flip(seed)
    flipped = tf.gather(tf.constant(swap), tf.reverse(label, axis=[1]))  # [H, W]
    return mirror_where(mirrored, image), tf.where(mirrored, flipped, label)


def photometric_distortion(image, seed):
    """mmsegmentation's PhotoMetricDistortion, with stateless random draws.

    Each with probability 1/2: brightness + U(-32, 32), contrast * U(0.5, 1.5) (before or
    after the colour changes, 1/2 each), saturation * U(0.5, 1.5), hue + U(-18, 18) degrees
    on OpenCV's 0..180 hue scale (a tenth of the hue circle). Clipped to [0, 255] after each.

    Args:
        image: [H, W, 3] float32 in [0, 255]. seed: [2] int.
    """
    keys = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=5)  # [5, 2]
    applied = tf.random.stateless_uniform([5], keys[0]) < 0.5  # [5]
    delta = tf.random.stateless_uniform([], keys[1], -32.0, 32.0)
    alpha = tf.random.stateless_uniform([], keys[2], 0.5, 1.5)
    saturation = tf.random.stateless_uniform([], keys[3], 0.5, 1.5)
    hue = tf.random.stateless_uniform([], keys[4], -0.1, 0.1)

    def clip(x):
        return tf.clip_by_value(x, 0.0, 255.0)

    def contrast(x, when):
        return tf.cond(tf.logical_and(applied[1], when), lambda: clip(x * alpha), lambda: x)

    contrast_first = applied[4]
    image = tf.cond(applied[0], lambda: clip(image + delta), lambda: image)
    image = contrast(image, contrast_first)
    image = tf.cond(
        applied[2],
        lambda: clip(tf.image.adjust_saturation(image / 255.0, saturation) * 255.0),
        lambda: image,
    )
    image = tf.cond(
        applied[3], lambda: clip(tf.image.adjust_hue(image / 255.0, hue) * 255.0), lambda: image
    )
    return contrast(image, tf.logical_not(contrast_first))


def normalize_image(image):
    """[H, W, 3] in [0, 255] -> ImageNet-normalised float32 (x / 255 - mean) / std."""
    return (tf.cast(image, tf.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD


def pad_to_size(image, label, size):
    """Pads bottom / right up to size: image with 0 (the mean after normalisation), label
    with 255. Sides already at least as large are left alone."""
    missing = tf.maximum(tf.constant(size) - tf.shape(label), 0)  # [2]
    image = tf.pad(image, [[0, missing[0]], [0, missing[1]], [0, 0]])  # [>=h, >=w, 3]
    label = tf.pad(label, [[0, missing[0]], [0, missing[1]]], constant_values=IGNORE)
    return image, label


def preprocess_seg_train(
    image,
    label,
    seed,
    *,
    crop_size,
    scale_range=(0.5, 2.0),
    cat_max_ratio=0.75,
    flip=True,
    flip_pairs=(),
    photometric=True,
    extra=None,
):
    """The SegFormer training augmentation of one pair; a pure function of its inputs.

    Args:
        image: [H, W, 3] uint8 (or float in [0, 255]).
        label: [H, W] int32 train ids, 255 = ignore (after `apply_label_map`).
        seed: [2] int tensor seeding every random draw.
        crop_size: int or (crop_h, crop_w) of the output.
        scale_range: (low, high) of the random resize ratio; (1, 1) keeps the size.
        cat_max_ratio: largest share of one class in the crop (see `random_crop`).
        flip: random horizontal flips; flip_pairs: the train ids they swap.
        photometric: apply `photometric_distortion`.
        extra: an augmentations.ExtraAugmentations (the FaceSynthetics seed's elastic / grid /
            optical distortion, CLAHE, brightness-contrast, gamma), applied after the flip;
            None: none.

    Returns:
        image [crop_h, crop_w, 3] float32 ImageNet-normalised, label [crop_h, crop_w] int32.
    """
    crop_size = _pair_size(crop_size)
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    keys = tf.random.experimental.stateless_split(seed, num=4)  # [4, 2]
    image = tf.cast(image, tf.float32)  # [H, W, 3]
    label = tf.cast(label, tf.int32)  # [H, W]
    if tuple(scale_range) != (1.0, 1.0):
        image, label = random_scale(image, label, keys[0], scale_range)  # [h, w, 3], [h, w]
    image, label = random_crop(image, label, keys[1], crop_size, cat_max_ratio)
    if flip:
        image, label = random_flip(image, label, keys[2], flip_pairs)
    if extra is not None and extra.any:
        # Its own key (folded in), so the draws above stay those of a run without it.
        extra_key = tf.random.experimental.stateless_fold_in(seed, 4)
        image, label = apply_extra_augmentations(image, label, extra_key, extra)
    if photometric:
        image = photometric_distortion(image, keys[3])
    image, label = pad_to_size(normalize_image(image), label, crop_size)
    image = tf.ensure_shape(image, (*crop_size, 3))  # [crop_h, crop_w, 3]
    return image, tf.ensure_shape(label, crop_size)  # [crop_h, crop_w]


def preprocess_seg_eval(image, label, size=None):
    """Evaluation preprocessing: optional resize (image bilinear, label nearest), normalise.

    Returns image [h, w, 3] float32 ImageNet-normalised, label [h, w] int32 ((h, w) = size, or
    the file's size when size is None).
    """
    image = tf.cast(image, tf.float32)  # [H, W, 3]
    label = tf.cast(label, tf.int32)  # [H, W]
    if size is not None:
        size = _pair_size(size)
        image = tf.clip_by_value(tf.image.resize(image, size, method="bilinear"), 0.0, 255.0)
        label = resize_label(label, size)  # [h, w]
    return normalize_image(image), label


# ------------------------------------------------------------------------------------------
# tf.data pipelines
# ------------------------------------------------------------------------------------------


def _check_flip_pairs(flip_pairs, num_classes: int) -> tuple[tuple[int, int], ...]:
    pairs = tuple(tuple(int(i) for i in pair) for pair in flip_pairs)
    ids = [i for pair in pairs for i in pair]
    if (
        any(len(pair) != 2 for pair in pairs)
        or any(not 0 <= i < num_classes for i in ids)
        or len(set(ids)) != len(ids)
    ):
        raise ValueError(
            f"flip_pairs must be pairs of distinct train ids in [0, {num_classes - 1}], each id "
            f"at most once, got {flip_pairs!r}"
        )
    return pairs


def make_seg_train_dataset(
    pairs,
    *,
    num_classes: int,
    crop_size,
    global_batch_size: int,
    seed: int = 0,
    start_step: int = 0,
    input_context: tf.distribute.InputContext | None = None,
    label_map=None,
    scale_range=(0.5, 2.0),
    cat_max_ratio: float = 0.75,
    flip_pairs=(),
    photometric: bool = True,
    flip: bool = True,
    extra_augmentations: ExtraAugmentations | None = None,
) -> tf.data.Dataset:
    """Infinite, exactly reproducible stream of augmented segmentation batches.

    Element i of the global stream (batch step s holds i in [s * B, (s + 1) * B)) reads file
    index_shuffle(i % n) of epoch i // n and is augmented with seed (seed, i), exactly as in
    datasets/pipeline.make_train_dataset.

    Args:
        pairs: list of (image_path, label_path); labels hold raw values.
        num_classes: number of train ids (the model's output channels).
        crop_size: int or (crop_h, crop_w) of the training crops.
        global_batch_size: B, the batch summed over all replicas.
        seed: seeds the file order and the augmentation.
        start_step: first batch step to produce (resuming gives the same batches).
        input_context: from tf.distribute; pipeline p of P yields its slice of every global
            batch in per-replica batches.
        label_map: [256] raw value -> train id table (None: identity over num_classes).
        scale_range: (low, high) of the random resize ratio.
        cat_max_ratio: largest share of one class in a crop (mmsegmentation's 0.75).
        flip_pairs: pairs of train ids a horizontal flip swaps (from the label set).
        photometric: random brightness, contrast, saturation and hue.
        flip: random horizontal flips.
        extra_augmentations: the FaceSynthetics seed's distortions and colour augmentations
            (datasets/augmentations.ExtraAugmentations); None: off.

    Returns:
        Dataset of {"image": [b, crop_h, crop_w, 3] float32, "label": [b, crop_h, crop_w]
        int32}.
    """
    image_paths, label_paths = check_pairs(pairs)
    num_classes = check_positive("num_classes", num_classes)
    global_batch_size = check_positive("global_batch_size", global_batch_size)
    crop_size = _pair_size(crop_size)
    table = _check_label_map(label_map, num_classes)
    flip_pairs = _check_flip_pairs(flip_pairs, num_classes)
    if len(scale_range) != 2 or not 0.0 < scale_range[0] <= scale_range[1]:
        raise ValueError(
            f"scale_range must be (low, high) with 0 < low <= high, got {scale_range!r}"
        )
    scale_range = (float(scale_range[0]), float(scale_range[1]))
    if not cat_max_ratio > 0.0:
        raise ValueError(f"cat_max_ratio must be positive, got {cat_max_ratio!r}")
    num_files = len(image_paths)
    image_paths = tf.constant(image_paths)
    label_paths = tf.constant(label_paths)

    def element(file_index, element_seed):
        # 256: load_pair's range check would reject raw values such as Cityscapes labelIds;
        # apply_label_map checks them instead.
        pair = load_pair(image_paths[file_index], label_paths[file_index], 256)
        label = apply_label_map(pair["label"], table, pair["label_path"])  # [H, W]
        image, label = preprocess_seg_train(
            pair["image"],
            label,
            element_seed,
            crop_size=crop_size,
            scale_range=scale_range,
            cat_max_ratio=cat_max_ratio,
            flip=flip,
            flip_pairs=flip_pairs,
            photometric=photometric,
            extra=extra_augmentations,
        )
        return {"image": image, "label": label}

    return training_stream(
        num_files,
        element,
        global_batch_size=global_batch_size,
        seed=seed,
        start_step=start_step,
        input_context=input_context,
    )


def make_seg_eval_dataset(
    pairs, *, num_classes: int, label_map=None, size=None, batch_size: int = 1
) -> tf.data.Dataset:
    """One pass over `pairs` in file order, without augmentation.

    Args:
        pairs: list of (image_path, label_path); labels hold raw values.
        num_classes: number of train ids.
        label_map: [256] raw value -> train id table (None: identity over num_classes).
        size: None keeps each file's size; int or (h, w) resizes (image bilinear, label
            nearest).
        batch_size: with size None and files of different sizes, batches are padded
            bottom / right (image 0, label 255) to their largest member.

    Returns:
        Dataset of {"image": [N, h, w, 3] float32 ImageNet-normalised, "label": [N, h, w]
        int32, "label_path": [N] string}; the last batch may be smaller.
    """
    image_paths, label_paths = check_pairs(pairs)
    num_classes = check_positive("num_classes", num_classes)
    batch_size = check_positive("batch_size", batch_size)
    table = _check_label_map(label_map, num_classes)
    if size is not None:
        size = _pair_size(size)

    def element(image_path, label_path):
        pair = load_pair(image_path, label_path, 256)
        label = apply_label_map(pair["label"], table, label_path)  # [H, W]
        image, label = preprocess_seg_eval(pair["image"], label, size)
        return {"image": image, "label": label, "label_path": label_path}

    return one_pass(
        (image_paths, label_paths),
        element,
        batch_size,
        padding_values={"image": 0.0, "label": IGNORE, "label_path": ""},
    )


# ------------------------------------------------------------------------------------------
# Mixed real + synthetic training (evaluation/synthetic_to_real.py)
# ------------------------------------------------------------------------------------------

# The second stream's seed is offset by more than any seed given on the command line, so that
# its file order and augmentation never repeat the first stream's (two streams over label maps
# synthesized from the same files would otherwise put each map twice in a batch, identically
# cropped).
_SECOND_STREAM_SEED_OFFSET = 2**31


def make_mixed_seg_train_dataset(
    first_pairs,
    second_pairs,
    *,
    global_batch_size: int,
    seed: int = 0,
    start_step: int = 0,
    input_context: tf.distribute.InputContext | None = None,
    **kwargs,
) -> tf.data.Dataset:
    """Infinite stream of batches that are half from `first_pairs`, half from `second_pairs`.

    Each half is a `make_seg_train_dataset` stream of global batch B / 2 (its own file order,
    seeded by seed and seed + 2**31), so resuming at start_step repeats the batches exactly.
    Every (per-replica) batch holds the first stream's elements first, then the second's.

    Args:
        first_pairs, second_pairs: lists of (image_path, label_path) (e.g. real, synthetic);
            labels in the same raw values (one label_map serves both).
        global_batch_size: B, even (and B / 2 divisible by the replicas when distributed).
        seed, start_step, input_context: as in make_seg_train_dataset.
        **kwargs: the other arguments of make_seg_train_dataset (num_classes, crop_size,
            label_map, scale_range, cat_max_ratio, flip_pairs, photometric, flip,
            extra_augmentations).

    Returns:
        Dataset of {"image": [b, crop_h, crop_w, 3] float32, "label": [b, crop_h, crop_w]
        int32}; elements [0, b/2) come from first_pairs, [b/2, b) from second_pairs.
    """
    global_batch_size = check_positive("global_batch_size", global_batch_size)
    if global_batch_size % 2:
        raise ValueError(
            f"--batch_size={global_batch_size} must be even to take half of every batch from "
            "each dataset"
        )
    half = global_batch_size // 2
    if input_context is not None and half % input_context.num_replicas_in_sync:
        raise ValueError(
            f"--batch_size={global_batch_size}: each half ({half}) must be divisible by the "
            f"{input_context.num_replicas_in_sync} replicas"
        )
    streams = [
        make_seg_train_dataset(
            pairs,
            global_batch_size=half,
            seed=stream_seed,
            start_step=start_step,
            input_context=input_context,
            **kwargs,
        )
        for pairs, stream_seed in (
            (first_pairs, int(seed)),
            (second_pairs, int(seed) + _SECOND_STREAM_SEED_OFFSET),
        )
    ]

    def concat(first, second):
        return {key: tf.concat([first[key], second[key]], axis=0) for key in first}  # [b, ...]

    dataset = tf.data.Dataset.zip(tuple(streams)).map(concat)
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(data_options())
