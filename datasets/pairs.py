"""File lists of (image, label map) pairs, and a thorough check of their contents.

The listing functions are fast and only look at names: they match images and label maps by
stem and say exactly which files lack a partner. `diagnose_pairs` opens every file with PIL; it
is slow and meant for when the tf.data pipeline fails with an error that names no file.
"""

from __future__ import annotations

from core.errors import UserError
import json
import os
import sys

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
LABEL_EXTENSIONS = (".png",)
SPLITS = ("training", "validation")
_ADE20K_DIR = "ADEChallengeData2016"
_NAMED = 5  # how many unmatched stems an error message lists


class DatasetError(UserError):
    """A dataset folder, file list or file is unusable; the message names the culprit."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A dataset folder or file does not exist (catchable as either parent class)."""


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_NAMED])
    return shown + (f", ... ({len(names) - _NAMED} more)" if len(names) > _NAMED else "")


def _match(images: dict[str, str], labels: dict[str, str], image_where: str,
           label_where: str) -> list[tuple[str, str]]:
    """Pairs two {stem: path} maps; unmatched stems on either side raise DatasetError."""
    only_images = sorted(set(images) - set(labels))
    only_labels = sorted(set(labels) - set(images))
    problems = []
    if only_images:
        problems.append(
            f"{len(only_images)} image(s) in {image_where} have no label map in "
            f"{label_where}: {_listing(only_images)}"
        )
    if only_labels:
        problems.append(
            f"{len(only_labels)} label map(s) in {label_where} have no image in "
            f"{image_where}: {_listing(only_labels)}"
        )
    if problems:
        raise DatasetError("; ".join(problems))
    return [(images[stem], labels[stem]) for stem in sorted(images)]


def _scan(directory: str, extensions: tuple[str, ...], where: str, *,
          recursive: bool) -> dict[str, str]:
    """{stem: path} of the files with `extensions` (case-insensitive) under `directory`.

    The stem is the path relative to `directory` without extension, with "/" separators, so
    images and labels in matching sub-folders pair up. Hidden files (".DS_Store", "._x.jpg")
    are skipped.
    """
    if not os.path.isdir(directory):
        raise DatasetNotFoundError(f"{where} does not exist or is not a folder")
    found: dict[str, str] = {}
    for folder, subfolders, files in os.walk(directory):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        if not recursive:
            subfolders[:] = []
        for name in sorted(files):
            stem, extension = os.path.splitext(name)
            if name.startswith(".") or extension.lower() not in extensions:
                continue
            path = os.path.join(folder, name)
            key = os.path.relpath(os.path.join(folder, stem), directory).replace(os.sep, "/")
            if key in found:
                raise DatasetError(
                    f"{where}: two files share the stem {key!r}: {found[key]} and {path}"
                )
            found[key] = path
    return found


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
    image_dir = os.path.join(root, "images", split)
    label_dir = os.path.join(root, "annotations", split)
    for directory in (image_dir, label_dir):
        if not os.path.isdir(directory):
            raise DatasetNotFoundError(
                f"{directory} does not exist: expected the official ADE20K layout "
                f"{_ADE20K_DIR}/{{images,annotations}}/{split} under {root}"
            )
    images = _scan(image_dir, (".jpg",), image_dir, recursive=False)
    labels = _scan(label_dir, LABEL_EXTENSIONS, label_dir, recursive=False)
    if not images:
        raise DatasetError(f"{image_dir} has no .jpg images")
    if not labels:
        raise DatasetError(f"{label_dir} has no .png annotations")
    return _match(images, labels, image_dir, label_dir)


def folder_pairs(image_dir: str, label_dir: str, *, image_flag: str = "--image_dir",
                 label_flag: str = "--label_dir") -> list[tuple[str, str]]:
    """Pairs of a generic dataset: two folders searched recursively, matched by stem.

    Args:
        image_dir: folder of images (.jpg, .jpeg, .png, .bmp, .webp), sub-folders allowed.
        label_dir: folder of 8-bit label maps (.png) laid out like image_dir.
        image_flag, label_flag: the flag names used in error messages.
    """
    image_where = f"{image_flag}={image_dir}"
    label_where = f"{label_flag}={label_dir}"
    images = _scan(image_dir, IMAGE_EXTENSIONS, image_where, recursive=True)
    if not images:
        raise DatasetError(f"{image_where} has no images ({', '.join(IMAGE_EXTENSIONS)})")
    labels = _scan(label_dir, LABEL_EXTENSIONS, label_where, recursive=True)
    if not labels:
        raise DatasetError(f"{label_where} has no .png label maps")
    return _match(images, labels, image_where, label_where)


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
