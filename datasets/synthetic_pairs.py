"""The project's one format of synthesized image / mask pairs, and its writer.

Every synthesizer of the project (Synthesis in Style, Semantic Palette, OSMIS) writes its pairs
in this layout, so the segmenter (`--dataset=json --train_list=out/train.json`) and evaluate.py
take any of them unchanged:

    out_dir/
      images/000000.png        RGB
      masks/000000.png         8-bit class ids of the label set (train ids)
      masks_colour/000000.png  the mask in the label set's colours
      train.json, val.json     {"pairs": [{"image": "images/000000.png", "label": "masks/..."}],
                                "label_set": name}  (paths relative to the JSON; seeded split)
      label_set.json           the label set (class names and colours), loadable with
                               semantic_labels.load_label_set
      coco_gt_val.json         COCO-style ground truth of the validation split
      <key>.npy                per-pair arrays the synthesizer returned (e.g. latents.npy,
                               targets.npy), row i belongs to pair i
      dataset.json             manifest: format, settings, counts

`write_pairs(out_dir, sample_fn, ...)` drives any synthesizer: `sample_fn(batch_index, count)`
returns one batch. Batches are a pure function of their index (the caller seeds its noise with
(seed, batch_index)), so a killed run resumes at the first incomplete batch (core.io
.OutputProgress) and ends with the files of an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable

import numpy as np
from PIL import Image

from core.errors import UserError
from core.io import (
    OutputExistsError,
    OutputProgress,
    atomic_write,
    list_some,
    save_image_atomic,
    write_json_atomic,
)
from core.masks import component_stats, connected_components, mask_to_rle
from semantic_labels import LabelSet

DATASET_FORMAT = "semsynth-synthetic-pairs/1"
OUTPUT_FOLDERS = ("images", "masks", "masks_colour")
OUTPUT_FILES = (
    "train.json",
    "val.json",
    "coco_gt_val.json",
    "latents.npy",
    "dataset.json",
    "label_set.json",
)

SampleFn = Callable[[int, int], dict]


class SyntheticDatasetError(UserError):
    """Invalid arguments or a synthesis that cannot finish; the message names the culprit."""


def coco_ground_truth(
    masks: list[tuple[int, str, np.ndarray]], palette: LabelSet, background_id: int | None = 0
) -> dict:
    """COCO-style ground truth of class masks.

    Args:
        masks: (image id, file name, [h, w] uint8 class-id mask) per image.
        palette: the label set; every class but background becomes a category.
        background_id: class id that gets no annotations (None: every class gets them).
    """
    categories = [
        {"id": class_id, "name": name, "supercategory": "text" if "text" in name else name}
        for class_id, name in enumerate(palette.names)
        if class_id != background_id
    ]
    images, annotations = [], []
    for image_id, file_name, mask in masks:
        images.append(
            {
                "id": image_id,
                "file_name": file_name,
                "height": int(mask.shape[0]),
                "width": int(mask.shape[1]),
            }
        )
        for category in categories:
            components, count = connected_components(mask == category["id"])
            if count == 0:
                continue
            areas, boxes = component_stats(components, count)
            for index in range(count):
                row0, col0, row1, col1 = (int(v) for v in boxes[index])
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": category["id"],
                        "bbox": [col0, row0, col1 - col0 + 1, row1 - row0 + 1],
                        "area": int(areas[index]),
                        "iscrowd": 0,
                        "segmentation": mask_to_rle(components == index + 1),
                    }
                )
    return {
        "info": {"description": "semsynth synthetic pairs, validation split"},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }


def prepare_out_dir(out_dir: str, overwrite: bool, extra_files=()) -> None:
    """Creates the output folders; an earlier run's outputs are removed only with overwrite.

    Other files in out_dir are never touched: only what this format writes is removed.
    """
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        if not overwrite:
            raise SyntheticDatasetError(
                f"out_dir {out_dir} is not empty; choose another folder or pass overwrite=True "
                "(--overwrite)"
            )
        for folder in OUTPUT_FOLDERS:
            if os.path.isdir(os.path.join(out_dir, folder)):
                shutil.rmtree(os.path.join(out_dir, folder))
        for name in (*OUTPUT_FILES, *extra_files):
            if os.path.isfile(os.path.join(out_dir, name)):
                os.remove(os.path.join(out_dir, name))
    for folder in OUTPUT_FOLDERS:
        os.makedirs(os.path.join(out_dir, folder), exist_ok=True)


def pair_files(out_dir: str, index: int) -> list[str]:
    """The image, mask and colour-mask paths of pair `index`."""
    return [os.path.join(out_dir, folder, f"{index:06d}.png") for folder in OUTPUT_FOLDERS]


def num_val_pairs(num_images: int, val_fraction: float) -> int:
    """Pairs in val.json: round(num_images * val_fraction), at least one when val_fraction > 0."""
    if not 0.0 <= val_fraction < 1.0:
        raise SyntheticDatasetError(f"val_fraction must lie in [0, 1), got {val_fraction!r}")
    num_val = 0 if val_fraction == 0 else max(1, int(round(num_images * val_fraction)))
    if num_images - num_val < 1:
        raise SyntheticDatasetError(
            f"num_images={num_images} with val_fraction={val_fraction} leaves no training pair"
        )
    return num_val


def label_set_json(label_set: LabelSet) -> dict:
    """The label set as a full-set JSON (semantic_labels format), for label_set.json."""
    return {
        "name": label_set.name,
        "description": "label set of a semsynth synthetic pair folder",
        "dontcare_id": label_set.dontcare_id,
        "classes": [
            {"id": i, "name": name, "color": [int(c) for c in label_set.colors[i]]}
            for i, name in enumerate(label_set.names)
        ],
    }


def write_split_files(
    out_dir: str,
    *,
    num_images: int,
    num_val: int,
    seed: int,
    label_set: LabelSet,
    background_id: int | None,
) -> tuple[list[int], list[int]]:
    """Writes train.json, val.json, label_set.json and coco_gt_val.json of pairs 0..num_images-1.

    Returns (train indices, val indices): a seeded 90 / 10 (say) split.
    """
    order = np.random.default_rng((seed, 1)).permutation(num_images)
    val_indices = sorted(order[:num_val].tolist())
    train_indices = sorted(order[num_val:].tolist())

    def pairs(indices):
        return {
            "pairs": [
                {"image": f"images/{i:06d}.png", "label": f"masks/{i:06d}.png"} for i in indices
            ],
            "label_set": label_set.name,
        }

    write_json_atomic(
        os.path.join(out_dir, "train.json"), pairs(train_indices), indent=1, newline=False
    )
    write_json_atomic(
        os.path.join(out_dir, "label_set.json"), label_set_json(label_set), indent=1, newline=False
    )
    if val_indices:
        write_json_atomic(
            os.path.join(out_dir, "val.json"), pairs(val_indices), indent=1, newline=False
        )
        val_masks = [
            (
                i + 1,
                f"images/{i:06d}.png",
                np.asarray(Image.open(os.path.join(out_dir, "masks", f"{i:06d}.png"))),
            )
            for i in val_indices
        ]
        write_json_atomic(
            os.path.join(out_dir, "coco_gt_val.json"),
            coco_ground_truth(val_masks, label_set, background_id),
            indent=1,
            newline=False,
        )
    return train_indices, val_indices


def _check_batch(batch, count: int, index: int, label_set: LabelSet, shape):
    if not isinstance(batch, dict) or "images" not in batch or "masks" not in batch:
        raise SyntheticDatasetError(
            f"sample_fn must return a dict with 'images' and 'masks', got {type(batch).__name__}"
        )
    images, masks = np.asarray(batch["images"]), np.asarray(batch["masks"])
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[0] != count:
        raise SyntheticDatasetError(
            f"sample_fn batch {index}: images must be uint8 [{count}, H, W, 3], got "
            f"{images.dtype} {list(images.shape)}"
        )
    if masks.dtype != np.uint8 or masks.shape != images.shape[:3]:
        raise SyntheticDatasetError(
            f"sample_fn batch {index}: masks must be uint8 {list(images.shape[:3])}, got "
            f"{masks.dtype} {list(masks.shape)}"
        )
    if shape is not None and images.shape[1:3] != shape:
        raise SyntheticDatasetError(
            f"sample_fn batch {index}: size {images.shape[1:3]} differs from batch 0's {shape}"
        )
    if masks.size and int(masks.max()) >= label_set.num_classes:
        raise SyntheticDatasetError(
            f"sample_fn batch {index}: mask value {int(masks.max())} is not a class of label set "
            f"{label_set.name!r} ({label_set.num_classes} classes)"
        )
    extras = {}
    for key, value in batch.items():
        if key in ("images", "masks"):
            continue
        value = np.asarray(value)
        if value.shape[:1] != (count,) or not key.isidentifier():
            raise SyntheticDatasetError(
                f"sample_fn batch {index}: {key!r} must be an array with one row per pair "
                f"({count}), got {list(value.shape)}"
            )
        extras[key] = value
    return images, masks, extras


def write_pairs(
    out_dir: str,
    sample_fn: SampleFn,
    *,
    label_set: LabelSet,
    num_images: int,
    batch_size: int = 8,
    seed: int = 0,
    val_fraction: float = 0.1,
    background_id: int | None = 0,
    overwrite: bool = False,
    progress: bool = True,
    settings: dict | None = None,
    source: str = "",
) -> dict:
    """Writes num_images pairs from sample_fn in the project's pair format (module docstring).

    Args:
        out_dir: output folder; must be empty or absent unless `overwrite`; a killed run of the
            same settings is resumed.
        sample_fn: (batch_index, count) -> {"images": uint8 [n, H, W, 3], "masks": uint8
            [n, H, W] class ids, any other key: an array with n rows, saved as <key>.npy}. Must
            be a pure function of its arguments (seed inside it with (seed, batch_index)).
        label_set: the classes of the masks (written to label_set.json).
        num_images: pairs to write.
        batch_size: pairs per sample_fn call.
        seed: seed of the train / val split (and recorded in the settings).
        val_fraction: share of pairs in val.json (at least one when > 0).
        background_id: class without COCO annotations (None: none).
        overwrite: start over, replacing an earlier run's outputs in out_dir.
        progress: print one line per batch.
        settings: what else decides the output (model, checkpoint, truncation, ...): recorded,
            and a resume with other settings is refused.
        source: the synthesizer's name, recorded in the manifest.

    Returns:
        The manifest written to dataset.json.
    """
    started = time.time()
    for name, value in (("num_images", num_images), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SyntheticDatasetError(f"{name} must be a positive integer, got {value!r}")
    num_val = num_val_pairs(num_images, val_fraction)
    out_dir = os.path.abspath(os.fspath(out_dir))
    all_settings = {
        "source": source,
        "num_images": num_images,
        "batch_size": batch_size,
        "seed": seed,
        "val_fraction": val_fraction,
        "classes": list(label_set.names),
        **(settings or {}),
    }
    try:
        ledger = OutputProgress.load(out_dir, all_settings, overwrite, flag="--output_dir")
    except OutputExistsError as error:
        raise SyntheticDatasetError(str(error)) from None
    manifest_path = os.path.join(out_dir, "dataset.json")
    extras, class_pixels, shape = {}, np.zeros(label_set.num_classes, np.int64), None
    done_batches = 0
    if ledger.resuming:
        if ledger.finished and os.path.isfile(manifest_path):
            if progress:
                print(f"[write_pairs] {out_dir} is complete already (dataset.json)", flush=True)
            with open(manifest_path, encoding="utf-8") as file:
                return json.load(file)
        for record in ledger.records:
            done_batches = record["batch"] + 1
            class_pixels = np.asarray(record["class_pixels"], np.int64)
            shape = tuple(record["shape"])
            for key, rows in record["extras"].items():
                extras.setdefault(key, []).extend(np.asarray(rows["data"], rows["dtype"]))
        written = min(done_batches * batch_size, num_images)
        missing = [
            path
            for index in range(written)
            for path in pair_files(out_dir, index)
            if not ledger.done(path)
        ]
        if missing:
            raise SyntheticDatasetError(
                f"out_dir {out_dir}: {len(missing)} file(s) of the run being resumed are "
                f"missing ({list_some(missing)}); pass --overwrite to start over"
            )
        if progress:
            print(f"[write_pairs] resuming {out_dir}: {written} pairs done", flush=True)
    else:
        prepare_out_dir(out_dir, overwrite)
    ledger.start()
    for folder in OUTPUT_FOLDERS:
        os.makedirs(os.path.join(out_dir, folder), exist_ok=True)

    num_batches = -(-num_images // batch_size)
    for batch_index in range(done_batches, num_batches):
        first = batch_index * batch_size
        count = min(batch_size, num_images - first)
        images, masks, batch_extras = _check_batch(
            sample_fn(batch_index, count), count, batch_index, label_set, shape
        )
        shape = images.shape[1:3]
        paths = []
        for offset in range(count):
            image_path, mask_path, colour_path = pair_files(out_dir, first + offset)
            save_image_atomic(images[offset], image_path)
            save_image_atomic(masks[offset], mask_path)
            save_image_atomic(label_set.colorize(masks[offset]), colour_path)
            paths += [image_path, mask_path, colour_path]
        class_pixels += np.bincount(masks.ravel(), minlength=label_set.num_classes)
        for key, value in batch_extras.items():
            extras.setdefault(key, []).extend(value)
        ledger.add(
            paths,
            batch=batch_index,
            shape=list(shape),
            class_pixels=class_pixels.tolist(),
            extras={
                key: {"dtype": str(value.dtype), "data": value.tolist()}
                for key, value in batch_extras.items()
            },
        )
        if progress:
            print(
                f"[write_pairs] {first + count}/{num_images} pairs ({time.time() - started:.1f} s)",
                flush=True,
            )

    for key, rows in extras.items():
        with atomic_write(os.path.join(out_dir, f"{key}.npy"), "wb") as file:
            np.save(file, np.stack(rows))
    train_indices, val_indices = write_split_files(
        out_dir,
        num_images=num_images,
        num_val=num_val,
        seed=seed,
        label_set=label_set,
        background_id=background_id,
    )
    manifest = {
        "format": DATASET_FORMAT,
        "source": source,
        "settings": all_settings,
        "counts": {
            "accepted": num_images,
            "train": len(train_indices),
            "val": len(val_indices),
            "class_pixels": {name: int(n) for name, n in zip(label_set.names, class_pixels)},
        },
        "files": {
            "train": "train.json",
            "val": "val.json" if val_indices else None,
            "coco_gt_val": "coco_gt_val.json" if val_indices else None,
            "label_set": "label_set.json",
            **{key: f"{key}.npy" for key in extras},
        },
        "size": [int(shape[0]), int(shape[1])],
        "seconds": round(time.time() - started, 1),
    }
    write_json_atomic(manifest_path, manifest, indent=1, newline=False)
    ledger.finish()
    if progress:
        print(
            f"[write_pairs] wrote {out_dir}: {len(train_indices)} train, {len(val_indices)} val "
            f"({manifest['seconds']} s)",
            flush=True,
        )
    return manifest


__all__ = [
    "DATASET_FORMAT",
    "OUTPUT_FOLDERS",
    "SyntheticDatasetError",
    "coco_ground_truth",
    "label_set_json",
    "pair_files",
    "prepare_out_dir",
    "write_pairs",
    "write_split_files",
]
