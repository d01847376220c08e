"""Per-class pixel frequencies of a segmentation dataset and inverse-frequency class weights.

    python -m datasets.class_weights --dataset=facesynthetics --data_root=data/faces \\
        --output=weights.json

counts every label pixel of a split after the dataset's label mapping (255 = ignore is not
counted) in one streaming pass, and writes

    {"frequencies": [percent per class], "weights": [weight per class], "pixel_counts": [...],
     "dataset": ..., "split": ...}

Weights are inverse frequencies normalised to sum 1; a class that never occurs gets weight 0
(the FaceSynthetics system's recipe). Pass them to losses.segmentation.cross_entropy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from .pairs import DatasetError
from .segmentation import (
    SEG_DATASETS,
    SPLITS,
    _check_label_map,
    apply_label_map,
    dataset_label_map,
    resolve_seg_pairs,
)


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
        raise ValueError(f"frequencies must be a non-empty [C] list, got shape "
                         f"{list(frequencies.shape)}")
    if not np.all(np.isfinite(frequencies)) or np.any(frequencies < 0):
        raise ValueError(f"frequencies must be finite and non-negative, got {frequencies}")
    present = frequencies > 0
    if not present.any():
        raise ValueError("frequencies are all zero: no class occurs, no weights can be derived")
    inverse = np.zeros_like(frequencies)
    inverse[present] = 1.0 / frequencies[present]
    return inverse / inverse.sum()


def count_pixels(pairs, *, num_classes: int, label_map=None,
                 progress: bool = False) -> np.ndarray:
    """[num_classes] int64 pixel counts of the mapped labels of `pairs` (255 not counted).

    Streams the label files through tf.data. A missing or colour label file, or a raw value
    the label map does not know, raises DatasetError naming the file.
    """
    import keras
    import tensorflow as tf

    from .pipeline import _check_pairs, _check_positive

    _, label_paths = _check_pairs(pairs)
    num_classes = _check_positive("num_classes", num_classes)
    table = _check_label_map(label_map, num_classes)

    def histogram(label_path):
        # channels=0 keeps the stored channels: a colour "label" must fail, not turn grey.
        raw = tf.io.decode_png(tf.io.read_file(label_path), channels=0)  # [H, W, c]
        one_channel = tf.debugging.Assert(
            tf.equal(tf.shape(raw)[2], 1),
            ["label map", label_path, "has", tf.shape(raw)[2],
             "channels; it must be single-channel 8-bit (mode L)"],
        )
        with tf.control_dependencies([one_channel]):
            raw = raw[:, :, 0]  # [H, W]
        label = apply_label_map(raw, table, label_path)  # [H, W]
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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m datasets.class_weights",
        description="Per-class pixel frequencies and inverse-frequency class weights.",
    )
    parser.add_argument("--dataset", required=True, choices=SEG_DATASETS)
    parser.add_argument("--split", default="training", choices=SPLITS)
    parser.add_argument("--data_root", default="data",
                        help="folder of facesynthetics, cityscapes or ade20k")
    parser.add_argument("--image_dir", help="training images of --dataset=folders")
    parser.add_argument("--label_dir", help="training label maps of --dataset=folders")
    parser.add_argument("--val_image_dir", help="validation images of --dataset=folders")
    parser.add_argument("--val_label_dir", help="validation label maps of --dataset=folders")
    parser.add_argument("--train_list", help="JSON pair list of --dataset=json (training)")
    parser.add_argument("--val_list", help="JSON pair list of --dataset=json (validation)")
    parser.add_argument("--split_seed", type=int, default=0,
                        help="seed of the FaceSynthetics 90/10 split of a single folder")
    parser.add_argument("--num_classes", type=int, default=None,
                        help="number of classes (required for folders and json)")
    parser.add_argument("--output", required=True, help="JSON file to write")
    parser.add_argument("--overwrite", action=argparse.BooleanOptionalAction, default=False,
                        help="replace an existing --output")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                        help="show a progress bar")
    args = parser.parse_args(argv)
    program = parser.prog
    try:
        # Checked before the long pass over the data, not after it.
        if os.path.exists(args.output) and not args.overwrite:
            raise FileExistsError(
                f"--output={args.output} already exists; pass --overwrite to replace it"
            )
        label_map, num_classes = dataset_label_map(args.dataset, args.num_classes)
        pairs = resolve_seg_pairs(
            args.dataset, args.split, data_root=args.data_root, image_dir=args.image_dir,
            label_dir=args.label_dir, val_image_dir=args.val_image_dir,
            val_label_dir=args.val_label_dir, train_list=args.train_list,
            val_list=args.val_list, split_seed=args.split_seed,
        )
        if not pairs:
            raise DatasetError(f"--dataset={args.dataset} has no {args.split} pairs")
        counts = count_pixels(pairs, num_classes=num_classes, label_map=label_map,
                              progress=args.progress)
        frequencies = frequencies_from_counts(counts)
        result = {
            "dataset": args.dataset,
            "split": args.split,
            "num_files": len(pairs),
            "frequencies": frequencies.tolist(),
            "weights": class_weights_from_frequencies(counts).tolist(),
            "pixel_counts": counts.tolist(),
        }
    except (DatasetError, FileNotFoundError, FileExistsError, ValueError) as error:
        parser.exit(2, f"{program}: error: {error}\n")
    folder = os.path.dirname(os.path.abspath(args.output))
    os.makedirs(folder, exist_ok=True)
    partial = args.output + ".partial"
    with open(partial, "w", encoding="utf-8") as file:
        json.dump(result, file, indent=2)
        file.write("\n")
    os.replace(partial, args.output)
    print(f"{program}: wrote {args.output}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
