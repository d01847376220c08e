"""File lists of (image, label map) pairs, the one resolver of a dataset split, and a thorough
check of the files' contents.

`resolve_pairs(dataset, split, ...)` turns any supported data source into its (image, label)
pairs: the procedural scenes and streets, ADE20K, Cityscapes (+ its extra coarse images), IDD,
CelebAMask-HQ, FaceSynthetics, two generic folders, a JSON pair list or the generated document
pages. The listing functions behind it are fast and only
look at names (core.io finds the files and matches them by stem, naming every file that lacks
a partner). `diagnose_pairs` opens every file with PIL; it is slow and meant for when the
tf.data pipeline fails with an error that names no file.

JSON pair list format, read by `json_list_pairs` and written by our synthesizers:

    {
      "pairs": [
        {"image": "images/000001.png", "label": "labels/000001.png"},
        {"image": "/abs/path/000002.jpg", "label": "/abs/path/000002.png"}
      ]
    }

Relative paths are relative to the folder of the JSON file. Other top-level keys (e.g.
"label_set", "generator") are allowed and ignored; a bare list of pairs is accepted too. Labels
are single-channel 8-bit PNGs of raw values, like every other label file here.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

import numpy as np
from PIL import Image

from core.io import (
    IMAGE_EXTENSIONS,
    InputError,
    InputNotFoundError,
    find_files,
    match_stems,
    read_json_list,
    resolve_listed,
)

# The input errors of core.io, under the names datasets/ has always used: a dataset folder,
# file list or file is unusable (the message names the culprit), or does not exist (catchable
# as FileNotFoundError too).
DatasetError = InputError
DatasetNotFoundError = InputNotFoundError

LABEL_EXTENSIONS = (".png",)
SPLITS = ("training", "validation")
# The sources resolve_pairs reads; DATASETS are SPADE's, SEG_DATASETS the file datasets of
# segmentation (SegFormer also reads scenes and documents).
PAIR_DATASETS = (
    "scenes",
    "ade20k",
    "folders",
    "facesynthetics",
    "cityscapes",
    "json",
    "documents",
    "streets",
    "idd",
    "celebamask_hq",
)
DATASETS = ("scenes", "ade20k", "folders", "cityscapes", "streets")
SEG_DATASETS = (
    "facesynthetics",
    "cityscapes",
    "ade20k",
    "folders",
    "json",
    "streets",
    "idd",
    "celebamask_hq",
)
CITYSCAPES_SPLITS = ("train", "val", "test")
_CITYSCAPES_SPLIT_OF = {"training": "train", "validation": "val"}
_FACE_SPLIT_FOLDERS = {"training": ("train", "training"), "validation": ("val", "validation")}
_ADE20K_DIR = "ADEChallengeData2016"


# ------------------------------------------------------------------------------------------
# One listing function per dataset layout
# ------------------------------------------------------------------------------------------


def _layout_pairs(
    root: str, layout: str, image_dir: str, label_dir: str, *, images, labels, recursive: bool
) -> list[tuple[str, str]]:
    """Pairs of an official layout: an image and a label folder, matched by stem.

    Args:
        root: the dataset folder, named in messages.
        layout: the expected layout, e.g. "the Cityscapes layout {leftImg8bit,gtFine}/...".
        image_dir, label_dir: the two folders of the split.
        images, labels: (file suffix, what an empty folder lacks), e.g. (".jpg", ".jpg images").
        recursive: search sub-folders (Cityscapes' cities).
    """
    for directory in (image_dir, label_dir):
        if not os.path.isdir(directory):
            raise DatasetNotFoundError(
                f"{directory} does not exist: expected {layout} under {root}"
            )
    found = {}
    for directory, (suffix, what) in ((image_dir, images), (label_dir, labels)):
        found[directory] = find_files(directory, (suffix,), directory, recursive=recursive)
        if not found[directory]:
            raise DatasetError(f"{directory} has no {what}")
    return match_stems(found[image_dir], found[label_dir], image_dir, label_dir)


def ade20k_pairs(root: str, split: str) -> list[tuple[str, str]]:
    """(image .jpg, annotation .png) pairs of an ADE20K split, sorted by name.

    Args:
        root: the ADEChallengeData2016 folder or its parent.
        split: "training" or "validation".
    """
    if split not in SPLITS:
        raise DatasetError(f"unknown ADE20K split {split!r}: use one of {list(SPLITS)}")
    if os.path.isdir(os.path.join(root, _ADE20K_DIR)):
        root = os.path.join(root, _ADE20K_DIR)
    elif not os.path.isdir(root):
        raise DatasetNotFoundError(f"ADE20K folder {root} does not exist")
    return _layout_pairs(
        root,
        f"the official ADE20K layout {_ADE20K_DIR}/{{images,annotations}}/{split}",
        os.path.join(root, "images", split),
        os.path.join(root, "annotations", split),
        images=(".jpg", ".jpg images"),
        labels=(".png", ".png annotations"),
        recursive=False,
    )


def cityscapes_pairs(root: str, split: str) -> list[tuple[str, str]]:
    """(leftImg8bit image, gtFine labelIds) pairs of a Cityscapes split, sorted by name.

    Layout: root/leftImg8bit/{split}/{city}/{x}_leftImg8bit.png with
    root/gtFine/{split}/{city}/{x}_gtFine_labelIds.png. The labels hold labelIds; map them
    with `label_map_from_label_set(load_label_set("cityscapes"))` (datasets.segmentation).

    Args:
        root: folder holding leftImg8bit/ and gtFine/.
        split: "train", "val" or "test" ("training" / "validation" are accepted too).
    """
    split = _CITYSCAPES_SPLIT_OF.get(split, split)
    if split not in CITYSCAPES_SPLITS:
        raise DatasetError(
            f"unknown Cityscapes split {split!r}: use one of {list(CITYSCAPES_SPLITS)}"
        )
    return _layout_pairs(
        root,
        f"the Cityscapes layout {{leftImg8bit,gtFine}}/{split}/<city>",
        os.path.join(root, "leftImg8bit", split),
        os.path.join(root, "gtFine", split),
        images=("_leftImg8bit.png", "*_leftImg8bit.png images"),
        labels=("_gtFine_labelIds.png", "*_gtFine_labelIds.png label maps"),
        recursive=True,
    )


def cityscapes_extra_pairs(root: str) -> list[tuple[str, str]]:
    """(image, label) pairs of Cityscapes' extra coarse training images (Cityscapes-25k).

    Layout: root/leftImg8bit/train_extra/{city}/{x}_leftImg8bit.png with labels in
    root/extraFine/train_extra/{city}/{x}_extraFine_labelIds.png (labelIds, like gtFine: the
    fine labels made for the ~20k coarse images, as Semantic Palette's Cityscapes-25k uses).
    A missing folder is named in the error.

    Args:
        root: folder holding leftImg8bit/ and extraFine/ (and gtFine/).
    """
    return _layout_pairs(
        root,
        "the Cityscapes-25k layout leftImg8bit/train_extra/<city> with "
        "extraFine/train_extra/<city> (--load_extra)",
        os.path.join(root, "leftImg8bit", "train_extra"),
        os.path.join(root, "extraFine", "train_extra"),
        images=("_leftImg8bit.png", "*_leftImg8bit.png images"),
        labels=("_extraFine_labelIds.png", "*_extraFine_labelIds.png label maps"),
        recursive=True,
    )


def idd_pairs(root: str, split: str) -> list[tuple[str, str]]:
    """(image, level-3 label map) pairs of an India Driving Dataset split, sorted by name.

    Layout, as the AutoNUE preprocessing (createLabels.py, level-3 ids) leaves it:
    root/leftImg8bit/{split}/{sequence}/{id}_leftImg8bit.png with
    root/gtFine/{split}/{sequence}/{id}_gtFine_labellevel3Ids.png (ids 0..25, 255 ignored;
    the label set semantic_labels/idd.json).

    Args:
        root: the IDD_Segmentation folder (holding leftImg8bit/ and gtFine/).
        split: "train" or "val" ("training" / "validation" are accepted too).
    """
    split = _CITYSCAPES_SPLIT_OF.get(split, split)
    if split not in ("train", "val"):
        raise DatasetError(f"unknown IDD split {split!r}: use one of ['train', 'val']")
    return _layout_pairs(
        root,
        f"the IDD (AutoNUE level-3) layout {{leftImg8bit,gtFine}}/{split}/<sequence>",
        os.path.join(root, "leftImg8bit", split),
        os.path.join(root, "gtFine", split),
        images=("_leftImg8bit.png", "*_leftImg8bit.png images"),
        labels=(
            "_gtFine_labellevel3Ids.png",
            "*_gtFine_labellevel3Ids.png label maps (run the AutoNUE createLabels.py "
            "with level-3 ids first)",
        ),
        recursive=True,
    )


def _face_folder_pairs(folder: str) -> list[tuple[str, str]]:
    """Pairs of one FaceSynthetics folder: flat, or in the seed's prepared layout.

    Flat (the original download): {id}.png (or another image extension) with {id}_seg.png in
    `folder`. Prepared (the FaceSynthetics SegFormer seed's input/{train,val}/): images/{id}.png
    with annotations/{id}_seg.png.
    """
    if not os.path.isdir(folder):
        raise DatasetNotFoundError(f"FaceSynthetics folder {folder} does not exist")
    image_dir = os.path.join(folder, "images")
    label_dir = os.path.join(folder, "annotations")
    if os.path.isdir(image_dir) or os.path.isdir(label_dir):
        return _face_prepared_pairs(folder, image_dir, label_dir)
    # Landmarks ({id}_ldmks.txt) and hidden files are not part of a pair.
    found = find_files(folder, IMAGE_EXTENSIONS, folder, recursive=False)
    images = {stem: path for stem, path in found.items() if not stem.endswith("_seg")}
    labels = {
        stem[: -len("_seg")]: path
        for stem, path in found.items()
        if stem.endswith("_seg") and path.lower().endswith(".png")
    }
    if not images and not labels:
        raise DatasetError(
            f"{folder} holds no FaceSynthetics files ({{id}}.png with {{id}}_seg.png)"
        )
    return match_stems(images, labels, folder, folder)


def _face_prepared_pairs(folder: str, image_dir: str, label_dir: str) -> list[tuple[str, str]]:
    """images/{id}.png with annotations/{id}_seg.png (the seed's layout), matched by id."""
    layout = f"the prepared FaceSynthetics layout {{images,annotations}}/ in {folder}"
    for directory in (image_dir, label_dir):
        if not os.path.isdir(directory):
            raise DatasetNotFoundError(f"{directory} does not exist: expected {layout}")
    images = find_files(image_dir, IMAGE_EXTENSIONS, image_dir, recursive=False)
    if not images:
        raise DatasetError(f"{image_dir} has no images ({{id}}.png)")
    labels = find_files(label_dir, ("_seg.png",), label_dir, recursive=False)
    if not labels:
        raise DatasetError(f"{label_dir} has no {{id}}_seg.png annotations")
    return match_stems(images, labels, image_dir, label_dir)


def hash_split(
    pairs: list[tuple[str, str]], split: str, seed: int, val_fraction: float, where: str
) -> list[tuple[str, str]]:
    """Deterministic training / validation split by a seeded shuffle of the file names.

    The shuffle orders files by a hash of (seed, file name), so a file's side does not depend
    on the Python or numpy version, and adding files moves few others.
    """
    if len(pairs) < 2:
        raise DatasetError(
            f"{where} holds {len(pairs)} pair(s): too few to split into training and validation"
        )
    num_val = min(max(1, round(len(pairs) * val_fraction)), len(pairs) - 1)

    def shuffle_key(pair):
        return hashlib.sha256(f"{seed}:{os.path.basename(pair[0])}".encode()).digest()

    validation = set(sorted(pairs, key=shuffle_key)[:num_val])
    return [pair for pair in pairs if (pair in validation) == (split == "validation")]


def facesynthetics_pairs(
    root: str, split: str = "training", *, seed: int = 0, val_fraction: float = 0.1
) -> list[tuple[str, str]]:
    """(image, label) pairs of Microsoft FaceSynthetics, sorted by name.

    Files are {id}.png with {id}_seg.png (uint8 class index); {id}_ldmks.txt is ignored. If
    root has a train/ (or training/) sub-folder, the split is read from train/ or val/ (or
    training/ / validation/); otherwise root holds every file and a seeded shuffle puts
    val_fraction of them (at least one) in the validation split. Each folder is either flat
    (the original download: {id}.png beside {id}_seg.png) or prepared as the FaceSynthetics
    SegFormer seed does it: images/{id}.png with annotations/{id}_seg.png, i.e. the seed's
    input/ folder is a root (input/{train,val}/{images,annotations}/).

    Args:
        root: the dataset folder.
        split: "training" or "validation".
        seed: seed of the shuffle that splits a single folder.
        val_fraction: share of a single folder used for validation, in (0, 1).
    """
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}: use one of {list(SPLITS)}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction!r}")
    if not os.path.isdir(root):
        raise DatasetNotFoundError(f"FaceSynthetics folder {root} does not exist")
    has_training_folder = any(
        os.path.isdir(os.path.join(root, name)) for name in _FACE_SPLIT_FOLDERS["training"]
    )
    if has_training_folder:
        for name in _FACE_SPLIT_FOLDERS[split]:
            if os.path.isdir(os.path.join(root, name)):
                return _face_folder_pairs(os.path.join(root, name))
        raise DatasetNotFoundError(
            f"{root} has a training sub-folder but no {split} sub-folder "
            f"({' or '.join(_FACE_SPLIT_FOLDERS[split])})"
        )
    return hash_split(_face_folder_pairs(root), split, seed, val_fraction, root)


def folder_pairs(
    image_dir: str,
    label_dir: str,
    *,
    image_flag: str = "--image_dir",
    label_flag: str = "--label_dir",
) -> list[tuple[str, str]]:
    """Pairs of a generic dataset: two folders searched recursively, matched by stem.

    Args:
        image_dir: folder of images (.jpg, .jpeg, .png, .bmp, .webp), sub-folders allowed.
        label_dir: folder of 8-bit label maps (.png) laid out like image_dir.
        image_flag, label_flag: the flag names used in error messages.
    """
    image_where = f"{image_flag}={image_dir}"
    label_where = f"{label_flag}={label_dir}"
    images = find_files(image_dir, IMAGE_EXTENSIONS, image_where, recursive=True)
    if not images:
        raise DatasetError(f"{image_where} has no images ({', '.join(IMAGE_EXTENSIONS)})")
    labels = find_files(label_dir, LABEL_EXTENSIONS, label_where, recursive=True)
    if not labels:
        raise DatasetError(f"{label_where} has no .png label maps")
    return match_stems(images, labels, image_where, label_where)


def json_list_pairs(path: str, *, flag: str | None = None) -> list[tuple[str, str]]:
    """Pairs listed in a JSON file (format in this module's docstring), in file order.

    Args:
        path: the JSON file; relative paths inside it are relative to its folder.
        flag: the command-line flag that gave `path`, named in error messages.
    """
    where = f"{flag}={path}" if flag else f"pair list {path}"
    spec = read_json_list(path, where)
    entries = spec.get("pairs") if isinstance(spec, dict) else spec
    if not isinstance(entries, list) or not entries:
        raise DatasetError(
            f'{where}: expected {{"pairs": [{{"image": ..., "label": ...}}, ...]}} with at '
            "least one pair"
        )
    for position, entry in enumerate(entries):
        if not (
            isinstance(entry, dict)
            and all(isinstance(entry.get(key), str) and entry[key] for key in ("image", "label"))
        ):
            raise DatasetError(
                f'{where}: pairs[{position}] must be {{"image": path, "label": path}}, '
                f"got {entry!r}"
            )
    paths = resolve_listed(
        [entry[key] for entry in entries for key in ("image", "label")], path, where
    )  # [image 0, label 0, image 1, label 1, ...]
    return list(zip(paths[0::2], paths[1::2]))


# ------------------------------------------------------------------------------------------
# Checking the files
# ------------------------------------------------------------------------------------------


def check_pairs_quick(pairs: list[tuple[str, str]]) -> None:
    """Cheap check before training: every file exists, and the first label map's mode is
    right (PIL reads only its header), which catches palette PNGs early."""
    if not pairs:
        raise DatasetError("the dataset has no (image, label) pairs")
    for image_path, label_path in pairs:
        for path in (image_path, label_path):
            if not os.path.isfile(path):
                raise DatasetNotFoundError(f"{path} does not exist")
    label_path = pairs[0][1]
    try:
        with Image.open(label_path) as label:
            mode = label.mode
    except (OSError, SyntaxError, ValueError) as error:
        raise DatasetError(f"cannot read label map {label_path}: {error}") from None
    _check_label_mode(label_path, mode)


def _check_label_mode(label_path: str, mode: str) -> None:
    if mode == "P":
        raise DatasetError(
            f"label map {label_path} is a palette PNG (mode P): TensorFlow decodes its colours, "
            "not its indices. Save label maps as 8-bit grayscale (mode L) holding class ids, "
            "e.g. Image.fromarray(np.array(Image.open(path))).save(path)"
        )
    if mode != "L":
        raise DatasetError(
            f"label map {label_path} has mode {mode!r}: label maps must be single-channel 8-bit "
            "PNGs (mode L) holding class ids"
        )


def _open_fully(path: str, what: str) -> Image.Image:
    # load() decodes every byte, so truncated or corrupt files fail here, not in training.
    try:
        image = Image.open(path)
        image.load()
        return image
    except FileNotFoundError:
        raise DatasetNotFoundError(f"{what} {path} does not exist") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DatasetError(f"cannot read {what} {path}: {error}") from None


def diagnose_pairs(pairs: list[tuple[str, str]], num_classes: int) -> None:
    """Opens every pair with PIL and raises DatasetError naming the first bad file.

    Checks: readable, complete images and label maps; label maps single-channel 8-bit (mode
    L); image and label of one size; label values < num_classes. Slow (decodes everything):
    run it when the tf.data pipeline fails.
    """
    if not pairs:
        raise DatasetError("the dataset has no (image, label) pairs")
    for image_path, label_path in pairs:
        image = _open_fully(image_path, "image")
        label = _open_fully(label_path, "label map")
        _check_label_mode(label_path, label.mode)
        if image.size != label.size:
            raise DatasetError(
                f"image {image_path} is {image.size[0]}x{image.size[1]} but its label map "
                f"{label_path} is {label.size[0]}x{label.size[1]} (width x height)"
            )
        largest = int(np.asarray(label).max())
        if largest >= num_classes:
            raise DatasetError(
                f"label map {label_path} holds value {largest}, outside the allowed range "
                f"[0, {num_classes - 1}] for num_classes={num_classes}"
            )


# ------------------------------------------------------------------------------------------
# Generated datasets (scenes, documents): a manifest marks a complete folder
# ------------------------------------------------------------------------------------------


def existing_generation(folder: str, manifest_path: str, wanted: dict, what: str) -> bool:
    """Whether `folder` already holds the generated data `wanted` describes.

    True when its manifest equals `wanted` (reuse it); False when the folder does not exist or
    is empty (generate it). Never deletes or overwrites: a folder without the manifest (an
    interrupted generation or foreign data) or with other parameters raises ValueError naming
    the folder and, for other parameters, every difference.

    Args:
        folder: the dataset folder.
        manifest_path: its manifest JSON (written last by write_manifest).
        wanted: the manifest of the asked-for parameters.
        what: what is generated, for messages: "scene", "page".
    """
    if not os.path.isdir(folder) or not os.listdir(folder):
        return False
    if not os.path.isfile(manifest_path):
        raise ValueError(
            f"{folder} exists but has no {os.path.basename(manifest_path)}: it is an "
            f"interrupted {what} generation or other data. Remove the folder (or choose another "
            f"one) to generate {what}s there."
        )
    try:
        with open(manifest_path, encoding="utf-8") as file:
            found = json.load(file)
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read {manifest_path}: {error}") from None
    if found == wanted:
        return True
    differences = ", ".join(
        f"{key}: {found.get(key)!r} there, {value!r} asked"
        for key, value in wanted.items()
        if found.get(key) != value
    )
    raise ValueError(
        f"{folder} holds {what}s generated with other parameters ({differences}). Remove it or "
        "choose another folder; it is never overwritten."
    )


def write_manifest(manifest_path: str, manifest: dict) -> None:
    """Writes a generated dataset's manifest last and via a rename, so that its presence means
    the folder is complete."""
    partial = manifest_path + ".partial"
    with open(partial, "w", encoding="utf-8") as file:
        json.dump(manifest, file, indent=2)
        file.write("\n")
    os.replace(partial, manifest_path)


class GenerationProgress:
    """A one-line counter on stderr: rewritten in place on a terminal, a line per 10% in a log.

    Args:
        total: items to generate.
        label: e.g. "scenes: {done}/{total} written to DIR" is built from label and where.
        where: the folder named in the line.
        enabled: False prints nothing.
    """

    def __init__(self, total: int, label: str, where: str, enabled: bool = True):
        self.total, self.label, self.where, self.enabled = total, label, where, enabled
        self.done = 0
        self.interactive = enabled and sys.stderr.isatty()
        self.every = max(1, total // (100 if self.interactive else 10))

    def add(self, count: int = 1) -> None:
        self.done += count
        if self.enabled and (self.done == self.total or self.done % self.every == 0):
            line = f"{self.label}: {self.done}/{self.total} written to {self.where}"
            sys.stderr.write("\r" + line if self.interactive else line + "\n")
            sys.stderr.flush()

    def close(self) -> None:
        if self.interactive:
            sys.stderr.write("\n")
