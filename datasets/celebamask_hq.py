"""CelebAMask-HQ: the per-part binary masks merged into one label map per face, cached.

The release (Lee et al., CVPR 2020) stores each face as CelebA-HQ-img/<i>.jpg (1024 x 1024)
with up to 18 binary part masks CelebAMask-HQ-mask-anno/<i // 2000>/<i:05d>_<part>.png
(512 x 512). Training code needs one label map per image, so `celebamask_hq_pairs` merges the
parts once, in the fixed order of PARTS (class id = position + 1, background 0; a later part
overwrites an earlier one, as the dataset's own merging script does), resizes the map to its
image's size (nearest) so image and label pair up pixel for pixel, and caches it as
<dataset>/CelebAMask-HQ-merged/<i>.png (8-bit, ids of semantic_labels/celebamask_hq.json).

The cache is written atomically file by file, so an interrupted merge resumes; a cache made
with another part order is refused, never overwritten.

The release has no official split: a seeded hash of the file names puts val_fraction of the
faces in the validation split (as for FaceSynthetics, datasets.pairs.hash_split).
"""

from __future__ import annotations

import json
import os
import re

import numpy as np
from PIL import Image

from core.io import find_files, save_image_atomic

from .pairs import (
    SPLITS,
    DatasetError,
    DatasetNotFoundError,
    GenerationProgress,
    hash_split,
    write_manifest,
)

# The parts in merge order; class id = position + 1 (0 is background).
PARTS = (
    "skin",
    "nose",
    "eye_g",
    "l_eye",
    "r_eye",
    "l_brow",
    "r_brow",
    "l_ear",
    "r_ear",
    "mouth",
    "u_lip",
    "l_lip",
    "hair",
    "hat",
    "ear_r",
    "neck_l",
    "neck",
    "cloth",
)
DATASET_DIR = "CelebAMask-HQ"
IMAGE_DIR = "CelebA-HQ-img"
MASK_DIR = "CelebAMask-HQ-mask-anno"
MERGED_DIR = "CelebAMask-HQ-merged"
MERGE_VERSION = 1
_MANIFEST = "merge_manifest.json"
_MASK_NAME = re.compile(r"^(\d+)_([a-z_]+)\.png$")


def merge_part_masks(masks: dict[str, np.ndarray]) -> np.ndarray:
    """One label map from binary part masks.

    Args:
        masks: {part name: [H, W] array, non-zero inside the part}, parts from PARTS, all of
            one size.

    Returns:
        [H, W] uint8 class ids: 0 background, PARTS[k] -> k + 1, later parts on top.
    """
    unknown = sorted(set(masks) - set(PARTS))
    if unknown:
        raise ValueError(f"unknown CelebAMask-HQ parts {unknown}: expected some of {PARTS}")
    shapes = {np.shape(mask) for mask in masks.values()}
    if len(shapes) > 1:
        raise ValueError(f"part masks differ in size: {sorted(shapes)}")
    if not masks:
        raise ValueError("no part masks to merge")
    label = np.zeros(shapes.pop(), np.uint8)
    for class_id, part in enumerate(PARTS, start=1):
        if part in masks:
            label[np.asarray(masks[part]) > 0] = class_id
    return label


def _read_mask(path: str) -> np.ndarray:
    """A part mask as [H, W] bool; the release stores 0 / 255 (grey or three equal channels)."""
    try:
        with Image.open(path) as mask:
            return np.asarray(mask.convert("L")) > 127
    except (OSError, SyntaxError, ValueError) as error:
        raise DatasetError(f"cannot read CelebAMask-HQ part mask {path}: {error}") from None


def _index_masks(mask_dir: str) -> dict[int, dict[str, str]]:
    """{image id: {part: mask path}} of every <i:05d>_<part>.png under mask_dir."""
    index: dict[int, dict[str, str]] = {}
    for folder, subfolders, files in os.walk(mask_dir):
        subfolders.sort()
        for name in sorted(files):
            if name.startswith(".") or not name.lower().endswith(".png"):
                continue
            match = _MASK_NAME.match(name)
            if match is None or match.group(2) not in PARTS:
                raise DatasetError(
                    f"{os.path.join(folder, name)} is not a CelebAMask-HQ part mask "
                    f"(<id:05d>_<part>.png with a part of {', '.join(PARTS)})"
                )
            index.setdefault(int(match.group(1)), {})[match.group(2)] = os.path.join(folder, name)
    return index


def _check_cache(cache_dir: str) -> None:
    """Creates the cache folder with its manifest, or checks that it merged in our order."""
    wanted = {"generator": "semsynth datasets.celebamask_hq", "version": MERGE_VERSION}
    wanted["parts"] = ["background", *PARTS]
    manifest_path = os.path.join(cache_dir, _MANIFEST)
    if os.path.isfile(manifest_path):
        try:
            with open(manifest_path, encoding="utf-8") as file:
                found = json.load(file)
        except (OSError, json.JSONDecodeError) as error:
            raise DatasetError(f"cannot read {manifest_path}: {error}") from None
        if found != wanted:
            raise DatasetError(
                f"{cache_dir} holds label maps merged by another version or part order "
                f"({manifest_path}); remove the folder to merge again. It is never overwritten."
            )
        return
    if os.path.isdir(cache_dir) and os.listdir(cache_dir):
        raise DatasetError(
            f"{cache_dir} exists without {_MANIFEST}: it is not our cache of merged label maps. "
            "Remove or rename it."
        )
    os.makedirs(cache_dir, exist_ok=True)
    write_manifest(manifest_path, wanted)


def celebamask_hq_pairs(
    root: str,
    split: str = "training",
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    cache_dir: str | None = None,
    progress: bool = True,
) -> list[tuple[str, str]]:
    """(image, merged label map) pairs of a CelebAMask-HQ split; merges missing maps first.

    Args:
        root: the CelebAMask-HQ folder (holding CelebA-HQ-img/ and CelebAMask-HQ-mask-anno/)
            or its parent.
        split: "training" or "validation".
        seed: seed of the hash split.
        val_fraction: share of the faces in the validation split, in (0, 1).
        cache_dir: where the merged maps go (default <dataset>/CelebAMask-HQ-merged).
        progress: a one-line counter on stderr while merging.

    Raises:
        DatasetNotFoundError: a folder of the layout is missing (named).
        DatasetError: an image without any part mask, an unreadable mask, a foreign cache.
    """
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}: use one of {list(SPLITS)}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction!r}")
    dataset_dir = root
    if os.path.isdir(os.path.join(root, DATASET_DIR)):
        dataset_dir = os.path.join(root, DATASET_DIR)
    layout = f"the CelebAMask-HQ layout {IMAGE_DIR}/<i>.jpg and {MASK_DIR}/<k>/<i:05d>_<part>.png"
    image_dir, mask_dir = (os.path.join(dataset_dir, d) for d in (IMAGE_DIR, MASK_DIR))
    for directory in (image_dir, mask_dir):
        if not os.path.isdir(directory):
            raise DatasetNotFoundError(
                f"{directory} does not exist: expected {layout} under {root}"
            )
    images = find_files(image_dir, (".jpg", ".png"), image_dir, recursive=False)
    if not images:
        raise DatasetError(f"{image_dir} has no .jpg images")
    bad = [stem for stem in images if not stem.isdigit()]
    if bad:
        raise DatasetError(f"{images[bad[0]]}: CelebA-HQ images are named <index>.jpg")
    masks = _index_masks(mask_dir)
    missing = [stem for stem in images if int(stem) not in masks]
    if missing:
        raise DatasetError(
            f"{len(missing)} image(s) in {image_dir} have no part mask in {mask_dir}, e.g. "
            f"{images[missing[0]]} (expected {mask_dir}/{int(missing[0]) // 2000}/"
            f"{int(missing[0]):05d}_<part>.png)"
        )

    cache_dir = cache_dir or os.path.join(dataset_dir, MERGED_DIR)
    _check_cache(cache_dir)
    stems = sorted(images, key=int)
    pairs = [(images[stem], os.path.join(cache_dir, f"{stem}.png")) for stem in stems]
    todo = [(stem, path) for stem, (_, path) in zip(stems, pairs) if not os.path.isfile(path)]
    counter = GenerationProgress(len(todo), "merged CelebAMask-HQ label maps", cache_dir, progress)
    for stem, path in todo:
        parts = masks[int(stem)]
        try:
            label = merge_part_masks({part: _read_mask(p) for part, p in parts.items()})
        except ValueError as error:
            raise DatasetError(f"masks of {images[stem]}: {error}") from None
        with Image.open(images[stem]) as image:
            size = image.size  # (width, height); the header is enough
        if label.shape[::-1] != size:
            label = np.asarray(Image.fromarray(label).resize(size, Image.NEAREST))
        save_image_atomic(label, path)  # atomic: a resumed merge trusts what exists
        counter.add()
    counter.close()
    return hash_split(pairs, split, seed, val_fraction, dataset_dir)
