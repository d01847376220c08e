"""Per-class pixel frequencies of a segmentation dataset and inverse-frequency class weights.

    python -m tools.class_weights --dataset=facesynthetics --data_root=data/faces \\
        --output=weights.json

counts every label pixel of a split after the dataset's label mapping (255 = ignore is not
counted) in one streaming pass, and writes

    {"frequencies": [percent per class], "weights": [weight per class], "pixel_counts": [...],
     "dataset": ..., "split": ...}

Weights are inverse frequencies normalised to sum 1; a class that never occurs gets weight 0
(the FaceSynthetics system's recipe). Pass them to losses.segmentation.cross_entropy.
"""

from __future__ import annotations

import numpy as np

from core import io as core_io

from .pairs import DatasetError
from .segmentation import _check_label_map, apply_label_map, dataset_label_map
from .sources import resolve_seg_pairs


def class_weights_from_frequencies(frequencies) -> np.ndarray:
    """Inverse-frequency weights normalised to sum 1; classes with frequency 0 get 0.

    Args:
        frequencies: [C] non-negative pixel frequencies (percent, fractions or counts: only
            their ratios matter), at least one positive.

    Returns:
        [C] float64 weights.
    """
    frequencies = np.asarray(frequencies, dtype=np.float64)
    if frequencies.ndim != 1 or frequencies.size == 0:
        raise ValueError(
            f"frequencies must be a non-empty [C] list, got shape {list(frequencies.shape)}"
        )
    if not np.all(np.isfinite(frequencies)) or np.any(frequencies < 0):
        raise ValueError(f"frequencies must be finite and non-negative, got {frequencies}")
    present = frequencies > 0
    if not present.any():
        raise ValueError("frequencies are all zero: no class occurs, no weights can be derived")
    inverse = np.zeros_like(frequencies)
    inverse[present] = 1.0 / frequencies[present]
    return inverse / inverse.sum()


def count_pixels(pairs, *, num_classes: int, label_map=None, progress: bool = False) -> np.ndarray:
    """[num_classes] int64 pixel counts of the mapped labels of `pairs` (255 not counted).

    Streams the label files through tf.data. A missing or colour label file, or a raw value
    the label map does not know, raises DatasetError naming the file.
    """
    import keras
    import tensorflow as tf

    from .pipeline import check_pairs, check_positive, decode_label

    _, label_paths = check_pairs(pairs)
    num_classes = check_positive("num_classes", num_classes)
    table = _check_label_map(label_map, num_classes)

    def histogram(label_path):
        # decode_label fails on a colour "label" (naming it) rather than turning it grey.
        label = apply_label_map(decode_label(label_path), table, label_path)  # [H, W]
        return tf.math.bincount(
            tf.reshape(label, [-1]), minlength=256, maxlength=256, dtype=tf.int64
        )[:num_classes]  # [C]

    dataset = tf.data.Dataset.from_tensor_slices(label_paths)
    dataset = dataset.map(histogram, num_parallel_calls=tf.data.AUTOTUNE).prefetch(4)
    bar = keras.utils.Progbar(len(label_paths), unit_name="label map") if progress else None
    counts = np.zeros(num_classes, np.int64)
    try:
        for done, histogram_of_file in enumerate(dataset, start=1):
            counts += histogram_of_file.numpy()
            if bar is not None:
                bar.update(done)
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as error:
        # The in-graph checks name the file; drop TensorFlow's op context around it.
        raise DatasetError(" ".join(error.message.split("\n")[:8])) from None
    return counts


def frequencies_from_counts(counts) -> np.ndarray:
    """Pixel counts -> percentages of the counted pixels (all zero if none was counted)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    return counts * (100.0 / total) if total else np.zeros_like(counts)


def write_class_weights(
    output: str,
    dataset: str,
    *,
    split: str = "training",
    data_root: str = "data",
    image_dir=None,
    label_dir=None,
    val_image_dir=None,
    val_label_dir=None,
    train_list=None,
    val_list=None,
    split_seed: int = 0,
    num_classes=None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Counts the label pixels of a split and writes frequencies and class weights as JSON.

    Args:
        output: the JSON file to write (refused if it exists, unless overwrite; checked before
            the long pass over the data).
        dataset: one of SEG_DATASETS.
        split: "training" or "validation".
        data_root, image_dir, label_dir, val_image_dir, val_label_dir, train_list, val_list,
            split_seed: where the pairs are, as for resolve_seg_pairs.
        num_classes: number of classes (required for folders and json).
        overwrite: replace an existing output.
        progress: show a progress bar.

    Returns:
        The dict written: dataset, split, num_files, frequencies, weights, pixel_counts.
    """
    core_io.check_overwrite(output, overwrite, flag="--output")
    label_map, num_classes = dataset_label_map(dataset, num_classes)
    pairs = resolve_seg_pairs(
        dataset,
        split,
        data_root=data_root,
        image_dir=image_dir,
        label_dir=label_dir,
        val_image_dir=val_image_dir,
        val_label_dir=val_label_dir,
        train_list=train_list,
        val_list=val_list,
        split_seed=split_seed,
    )
    if not pairs:
        raise DatasetError(f"--dataset={dataset} has no {split} pairs")
    counts = count_pixels(pairs, num_classes=num_classes, label_map=label_map, progress=progress)
    result = {
        "dataset": dataset,
        "split": split,
        "num_files": len(pairs),
        "frequencies": frequencies_from_counts(counts).tolist(),
        "weights": class_weights_from_frequencies(counts).tolist(),
        "pixel_counts": counts.tolist(),
    }
    core_io.write_json_atomic(output, result, indent=2)
    return result
