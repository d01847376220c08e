"""Reading the image / mask pair folders that evaluate.py --mode=one_shot and --mode=palette
score, before TensorFlow loads (every error names the flag and the file).

A synthetic pair folder (datasets/synthetic_pairs.py writes them) holds images/, masks/ (8-bit
class ids of its label set), train.json and, with a validation split, val.json (JSON pair
lists, datasets.pairs.json_list_pairs), label_set.json (or a built-in label-set name under
"label_set" in train.json) and per-pair arrays such as targets.npy whose row i belongs to pair
i, i.e. to images/<i:06d>.png. `read_pair_folder` returns every pair of train.json + val.json in
that pair order.

A folder of real pairs (--real_dir) is either such a folder, or a folder with images/ and
masks/ (or labels/) sub-folders whose files are matched by stem. Its masks must hold the same
class ids as the synthetic masks (one label set for both).

Example:
    folder = read_pair_folder("outputs/palette_pairs", "--synth_dir")
    folder.pairs[0], folder.label_set.num_classes, folder.targets   # targets [N, C] or None
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from core.errors import UserError

PAIR_LISTS = ("train.json", "val.json")
LABEL_SET_FILE = "label_set.json"
MASK_FOLDERS = ("masks", "labels")
TARGET_FILES = ("targets.npy", "palettes.json")


class PairFolderError(UserError):
    """A pair folder cannot be read as one; the message names the flag and the file."""


@dataclasses.dataclass
class PairFolder:
    """The pairs of a folder, in pair order.

    Attributes:
        folder: the folder.
        pairs: [(image path, mask path)].
        label_set: its semantic_labels.LabelSet (None when the folder names none).
        label_set_source: the label set's file or built-in name (for a SegFormer config).
        targets: float64 [N, C] target palettes (targets.npy / palettes.json), or None.
    """

    folder: str
    pairs: list
    label_set: object = None
    label_set_source: str | None = None
    targets: np.ndarray | None = None


def _label_set(folder: str, flag: str):
    from semantic_labels import LabelSetError, load_label_set

    path = os.path.join(folder, LABEL_SET_FILE)
    source = path if os.path.isfile(path) else None
    if source is None:
        for name in PAIR_LISTS:
            list_path = os.path.join(folder, name)
            if os.path.isfile(list_path):
                with open(list_path, encoding="utf-8") as file:
                    spec = json.load(file)
                if isinstance(spec, dict) and isinstance(spec.get("label_set"), str):
                    source = spec["label_set"]
                    break
    if source is None:
        return None, None
    try:
        return load_label_set(source), source
    except (LabelSetError, FileNotFoundError) as error:
        raise PairFolderError(f"{flag}={folder}: its label set {source!r}: {error}") from None


def _targets(folder: str, flag: str, count: int):
    path = next(
        (
            os.path.join(folder, name)
            for name in TARGET_FILES
            if os.path.isfile(os.path.join(folder, name))
        ),
        None,
    )
    if path is None:
        return None
    try:
        if path.endswith(".npy"):
            targets = np.load(path, allow_pickle=False)
        else:
            with open(path, encoding="utf-8") as file:
                spec = json.load(file)
            targets = spec.get("targets") if isinstance(spec, dict) else spec
            targets = np.asarray(targets, np.float64)
    except (ValueError, OSError, TypeError) as error:
        raise PairFolderError(f"{flag}={folder}: cannot read {path}: {error}") from None
    targets = np.asarray(targets, np.float64)
    if targets.ndim != 2 or targets.shape[0] != count:
        raise PairFolderError(
            f"{flag}={folder}: {path} must hold one target palette per pair, [{count}, C] in "
            f"pair order, got shape {list(targets.shape)}"
        )
    if not np.all(np.isfinite(targets)) or np.any(targets < 0):
        raise PairFolderError(f"{flag}={folder}: {path} holds negative or non-finite values")
    return targets


def read_pair_folder(folder: str, flag: str, *, with_targets: bool = False) -> PairFolder:
    """The pairs of a synthetic pair folder, or of images/ + masks/ (labels/) sub-folders.

    Args:
        folder: the folder.
        flag: the flag that named it, for the messages.
        with_targets: also read targets.npy (or palettes.json) when present.
    """
    from datasets.pairs import DatasetNotFoundError, folder_pairs, json_list_pairs

    if not folder:
        raise PairFolderError(f"{flag} is required")
    if not os.path.isdir(folder):
        raise DatasetNotFoundError(f"{flag}={folder} does not exist")
    lists = [os.path.join(folder, name) for name in PAIR_LISTS]
    if os.path.isfile(lists[0]):
        pairs = []
        for path in lists:
            if os.path.isfile(path):
                pairs += json_list_pairs(path, flag=flag)
        # Pair order: the files are images/<index:06d>.png, so their paths sort by index.
        pairs.sort(key=lambda pair: pair[0])
    else:
        masks = next(
            (
                os.path.join(folder, name)
                for name in MASK_FOLDERS
                if os.path.isdir(os.path.join(folder, name))
            ),
            None,
        )
        if not os.path.isdir(os.path.join(folder, "images")) or masks is None:
            raise PairFolderError(
                f"{flag}={folder} is not a pair folder: it needs train.json (a synthetic pair "
                "folder) or images/ and masks/ (or labels/) sub-folders"
            )
        pairs = folder_pairs(
            os.path.join(folder, "images"),
            masks,
            image_flag=f"{flag} images",
            label_flag=f"{flag} masks",
        )
    label_set, source = _label_set(folder, flag)
    targets = _targets(folder, flag, len(pairs)) if with_targets else None
    return PairFolder(folder, pairs, label_set, source, targets)


def load_pairs(pairs, num_classes: int | None = None, size=None):
    """(uint8 images [N, H, W, 3], uint8 masks [N, H, W]) of pairs of one size.

    Args:
        pairs: [(image path, mask path)].
        num_classes: masks may hold 0..num_classes-1 and 255 (ignore); other values raise.
        size: (height, width) to resize to (images bilinear, masks nearest); None: every pair
            must have the first pair's size.
    """
    from PIL import Image

    from datasets.pairs import DatasetError
    from datasets.pipeline import load_image, load_label_map

    images, masks = [], []
    for image_path, mask_path in pairs:
        image, mask = load_image(image_path), load_label_map(mask_path)
        if image.shape[:2] != mask.shape:
            raise DatasetError(
                f"{image_path} is {image.shape[1]}x{image.shape[0]} but its mask {mask_path} "
                f"is {mask.shape[1]}x{mask.shape[0]}"
            )
        if num_classes is not None:
            bad = (mask >= num_classes) & (mask != 255)
            if bad.any():
                raise DatasetError(
                    f"mask {mask_path} holds values {sorted(set(mask[bad].tolist()))[:5]} "
                    f"outside the label set's {num_classes} classes (255 = ignore)"
                )
        target = size or (images[0].shape[:2] if images else image.shape[:2])
        if image.shape[:2] != tuple(target):
            if size is None:
                raise DatasetError(
                    f"{image_path} is {image.shape[1]}x{image.shape[0]}, {pairs[0][0]} "
                    f"{target[1]}x{target[0]}: the pairs must have one size"
                )
            image = np.asarray(
                Image.fromarray(image).resize((target[1], target[0]), Image.BILINEAR)
            )
            mask = np.asarray(Image.fromarray(mask).resize((target[1], target[0]), Image.NEAREST))
        images.append(image)
        masks.append(mask)
    return np.stack(images), np.stack(masks)  # [N, H, W, 3], [N, H, W]
