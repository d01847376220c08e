"""Semantic label sets: class names, colours and ids, loaded from one JSON format.

A label set maps every label value (the integer stored in a label map) to a class name and a
display colour. Two kinds of JSON file exist (see README.md in this folder):

- a full set lists every class: `{"name", "description", "dontcare_id", "classes": [{"id",
  "name", "color"}, ...]}` with ids 0..K-1;
- a subset names a base set and the ids it uses: `{"name", "base", "ids": [...]}`. It keeps the
  base's indexing, so label values stay the base's ids and one-hot maps keep K channels.

A `.txt` file holds the label values alone, as the SPADE TF port writes them ("0, 3, 255":
value k-th in the list is class k; `label_values.py`); its classes are called "value_<v>".

Optional keys of a full set, used by segmentation training (datasets/segmentation.py):
"ignore_index" (the label value meaning "not labelled", e.g. 255), "flip_pairs" (class ids a
horizontal flip swaps, e.g. left / right eye) and "source_ids" / "ignored_source_ids" (the raw
values stored in the dataset's files when they differ from the ids, e.g. Cityscapes labelIds).

Example:
    labels = load_label_set("ade20k")
    labels.num_classes        # 151 one-hot channels (150 classes + "other")
    labels.id_of("sky")       # 3
    rgb = labels.colorize(label_map)  # [H, W] int -> [H, W, 3] uint8
"""

from __future__ import annotations

import difflib
import functools
import json
import os
from dataclasses import dataclass

import numpy as np

from semantic_labels import label_values as _label_values
from semantic_labels.errors import LabelSetError, LabelSetFileNotFoundError

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


@dataclass(frozen=True)
class LabelSet:
    """An immutable label set.

    Attributes:
        name: short name of the set, e.g. "ade20k" or "scenes".
        names: class name per label value; `names[v]` is the class of label value v.
        colors: [K, 3] uint8 display colour per label value (read-only array).
        used_ids: label values that occur in this set's data: all of 0..K-1 for a full set, the
            listed ids for a subset (which still has K names and colours).
        dontcare_id: label value meaning "unlabelled / other", or None if the set has none.
        ignore_index: label value of pixels no loss or metric counts (e.g. 255), or None. Unlike
            dontcare_id it is not a class and has no one-hot channel.
        flip_pairs: pairs (a, b) of class ids that a horizontal flip swaps (left / right eye).
        source_ids: raw value stored in the dataset's label files for each class id
            (`source_ids[k]` is the file value of class k), or None when files store the ids.
        ignored_source_ids: raw file values that mean ignore_index (only with source_ids).
    """

    name: str
    names: tuple[str, ...]
    colors: np.ndarray
    used_ids: tuple[int, ...]
    dontcare_id: int | None
    ignore_index: int | None = None
    flip_pairs: tuple[tuple[int, int], ...] = ()
    source_ids: tuple[int, ...] | None = None
    ignored_source_ids: tuple[int, ...] = ()

    def __post_init__(self):
        colors = np.array(self.colors, dtype=np.uint8)
        if colors.shape != (len(self.names), 3):
            raise LabelSetError(
                f"label set {self.name!r}: colors must have shape [{len(self.names)}, 3], "
                f"got {list(colors.shape)}"
            )
        # A frozen dataclass must not hand out a mutable array: a caller writing into it would
        # silently change every later colorize() of the cached built-in set.
        colors.setflags(write=False)
        object.__setattr__(self, "colors", colors)

    # Written by hand because the generated ones cannot compare or hash a numpy array.
    def __eq__(self, other):
        if not isinstance(other, LabelSet):
            return NotImplemented
        return (
            self.name == other.name
            and self.names == other.names
            and np.array_equal(self.colors, other.colors)
            and self.used_ids == other.used_ids
            and self.dontcare_id == other.dontcare_id
            and self.ignore_index == other.ignore_index
            and self.flip_pairs == other.flip_pairs
            and self.source_ids == other.source_ids
            and self.ignored_source_ids == other.ignored_source_ids
        )

    def __hash__(self):
        return hash(
            (
                self.name,
                self.names,
                self.colors.tobytes(),
                self.used_ids,
                self.dontcare_id,
                self.ignore_index,
                self.flip_pairs,
                self.source_ids,
                self.ignored_source_ids,
            )
        )

    @property
    def num_classes(self) -> int:
        """Number of label values, i.e. one-hot channels (151 for ADE20K)."""
        return len(self.names)

    def id_of(self, name: str) -> int:
        """Label value of the class called `name` (exact match)."""
        try:
            return self.names.index(name)
        except ValueError:
            close = difflib.get_close_matches(name, self.names, n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise LabelSetError(
                f"label set {self.name!r} has no class named {name!r}{hint}"
            ) from None

    def colorize(self, label: np.ndarray) -> np.ndarray:
        """Colours a label map: [H, W] integer label values -> [H, W, 3] uint8 RGB."""
        label = np.asarray(label)
        if not (np.issubdtype(label.dtype, np.integer) or label.dtype == np.bool_):
            raise LabelSetError(f"colorize: label must hold integers, got dtype {label.dtype}")
        if label.size:
            low, high = int(label.min()), int(label.max())
            if low < 0 or high >= self.num_classes:
                raise LabelSetError(
                    f"colorize: label values must lie in [0, {self.num_classes - 1}] for label "
                    f"set {self.name!r}, got min {low}, max {high}"
                )
        return self.colors[label.astype(np.intp)]  # [H, W, 3]


def available_label_sets() -> list[str]:
    """Names of the built-in label sets (the JSON files shipped in this folder)."""
    return sorted(
        entry[: -len(".json")] for entry in os.listdir(_PACKAGE_DIR) if entry.endswith(".json")
    )


def load_label_set(name_or_path: str) -> LabelSet:
    """Loads a built-in label set by name ("ade20k", "scenes"), a JSON file, or a label-values
    `.txt` file (the SPADE TF port's format, semantic_labels/label_values.py) by path.

    Raises LabelSetError (a ValueError) naming the file and the problem for an unknown name,
    a missing file (then also a FileNotFoundError), malformed JSON or invalid content.
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise LabelSetError(
            f"label set must be a name or a path, got {type(name_or_path).__name__}"
        )
    name_or_path = os.fspath(name_or_path)
    if name_or_path in available_label_sets():
        return _load_builtin(name_or_path)
    if _label_values.is_label_values_path(name_or_path):
        return load_label_values_set(os.path.abspath(name_or_path))
    looks_like_path = (
        name_or_path.endswith(".json") or os.sep in name_or_path or "/" in name_or_path
    )
    if not looks_like_path:
        raise LabelSetError(
            f"unknown label set {name_or_path!r}: use one of {available_label_sets()}, "
            "the path to a .json file in the format of semantic_labels/README.md, or a .txt "
            "file of label values"
        )
    return _load_file(os.path.abspath(name_or_path), chain=())


@functools.cache
def _load_builtin(name: str) -> LabelSet:
    return _load_file(os.path.join(_PACKAGE_DIR, f"{name}.json"), chain=())


def _load_file(path: str, chain: tuple[str, ...]) -> LabelSet:
    # `chain` holds the files that led here through "base" references, to stop cycles.
    if path in chain:
        raise LabelSetError(f"{chain[-1]}: 'base' refers back to {path} (a cycle)")
    if not os.path.isfile(path):
        raise LabelSetFileNotFoundError(f"label set file {path} does not exist")
    try:
        with open(path, encoding="utf-8") as file:
            spec = json.load(file)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise LabelSetError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(spec, dict):
        raise LabelSetError(f"{path}: the top level must be a JSON object")
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise LabelSetError(f"{path}: 'name' must be a non-empty string")
    if "base" in spec:
        return _parse_subset(path, spec, chain)
    return _parse_full(path, spec)


def _is_int(value) -> bool:
    # JSON true/false arrive as Python bools, which are ints; they are not valid ids.
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_full(path: str, spec: dict) -> LabelSet:
    classes = spec.get("classes")
    if not isinstance(classes, list) or not classes:
        raise LabelSetError(f"{path}: 'classes' must be a non-empty list (or give 'base')")
    by_id: dict[int, tuple[str, list[int]]] = {}
    for position, entry in enumerate(classes):
        where = f"{path}: classes[{position}]"
        if not isinstance(entry, dict):
            raise LabelSetError(f"{where} must be an object with 'id', 'name', 'color'")
        class_id, class_name, color = entry.get("id"), entry.get("name"), entry.get("color")
        if not _is_int(class_id) or class_id < 0:
            raise LabelSetError(f"{where}: 'id' must be a non-negative integer, got {class_id!r}")
        if class_id in by_id:
            raise LabelSetError(f"{path}: duplicate id {class_id}")
        if not isinstance(class_name, str) or not class_name.strip():
            raise LabelSetError(f"{where} (id {class_id}): 'name' must be a non-empty string")
        if (
            not isinstance(color, list)
            or len(color) != 3
            or not all(_is_int(c) and 0 <= c <= 255 for c in color)
        ):
            raise LabelSetError(
                f"{where} (id {class_id}, {class_name!r}): 'color' must be three integers "
                f"in [0, 255], got {color!r}"
            )
        by_id[class_id] = (class_name, color)
    num_classes = len(by_id)
    missing = sorted(set(range(num_classes)) - set(by_id))
    if missing:
        raise LabelSetError(
            f"{path}: ids must be contiguous 0..{num_classes - 1}; missing {missing[:10]}, "
            f"largest id {max(by_id)}"
        )
    names = tuple(by_id[i][0] for i in range(num_classes))
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise LabelSetError(f"{path}: duplicate class names {duplicates[:10]}")
    dontcare_id = spec.get("dontcare_id")
    if dontcare_id is not None and (not _is_int(dontcare_id) or not 0 <= dontcare_id < num_classes):
        raise LabelSetError(
            f"{path}: 'dontcare_id' must be null or an id in [0, {num_classes - 1}], "
            f"got {dontcare_id!r}"
        )
    return LabelSet(
        name=spec["name"],
        names=names,
        colors=np.array([by_id[i][1] for i in range(num_classes)], dtype=np.uint8),
        used_ids=tuple(range(num_classes)),
        dontcare_id=dontcare_id,
        **_parse_segmentation_keys(path, spec, num_classes),
    )


def _int_list(path: str, spec: dict, key: str, low: int, high: int) -> tuple[int, ...]:
    """spec[key] as a tuple of distinct integers in [low, high]; raises naming file and key."""
    values = spec[key]
    if not isinstance(values, list) or not all(_is_int(v) and low <= v <= high for v in values):
        raise LabelSetError(
            f"{path}: {key!r} must be a list of integers in [{low}, {high}], got {values!r}"
        )
    if len(set(values)) != len(values):
        raise LabelSetError(
            f"{path}: {key!r} repeats {sorted({v for v in values if values.count(v) > 1})}"
        )
    return tuple(values)


def _parse_segmentation_keys(path: str, spec: dict, num_classes: int) -> dict:
    """The optional keys ignore_index, flip_pairs, source_ids, ignored_source_ids."""
    # Label files are 8-bit, so every raw value and the ignore value lie in 0..255.
    ignore_index = spec.get("ignore_index")
    if ignore_index is not None and (
        not _is_int(ignore_index) or not num_classes <= ignore_index <= 255
    ):
        raise LabelSetError(
            f"{path}: 'ignore_index' must be null or an integer in [{num_classes}, 255] (not a "
            f"class id), got {ignore_index!r}"
        )
    flip_pairs = spec.get("flip_pairs", [])

    def is_pair(pair) -> bool:
        return (
            isinstance(pair, list)
            and len(pair) == 2
            and all(_is_int(i) and 0 <= i < num_classes for i in pair)
            and pair[0] != pair[1]
        )

    if not isinstance(flip_pairs, list) or not all(is_pair(pair) for pair in flip_pairs):
        raise LabelSetError(
            f"{path}: 'flip_pairs' must be a list of [a, b] pairs of two different class ids in "
            f"[0, {num_classes - 1}], got {flip_pairs!r}"
        )
    flipped = [i for pair in flip_pairs for i in pair]
    if len(set(flipped)) != len(flipped):
        raise LabelSetError(f"{path}: 'flip_pairs' names a class id twice: {flip_pairs!r}")
    source_ids, ignored_source_ids = None, ()
    if "source_ids" in spec:
        source_ids = _int_list(path, spec, "source_ids", 0, 254)
        if len(source_ids) != num_classes:
            raise LabelSetError(
                f"{path}: 'source_ids' must give one raw value per class ({num_classes}), "
                f"got {len(source_ids)}"
            )
    if "ignored_source_ids" in spec:
        if source_ids is None or ignore_index is None:
            raise LabelSetError(
                f"{path}: 'ignored_source_ids' needs 'source_ids' and 'ignore_index'"
            )
        ignored_source_ids = _int_list(path, spec, "ignored_source_ids", 0, 255)
        both = sorted(set(source_ids) & set(ignored_source_ids))
        if both:
            raise LabelSetError(
                f"{path}: raw values {both} are in both 'source_ids' and 'ignored_source_ids'"
            )
    return {
        "ignore_index": ignore_index,
        "flip_pairs": tuple(tuple(pair) for pair in flip_pairs),
        "source_ids": source_ids,
        "ignored_source_ids": ignored_source_ids,
    }


def _parse_subset(path: str, spec: dict, chain: tuple[str, ...]) -> LabelSet:
    base_ref = spec["base"]
    if not isinstance(base_ref, str) or not base_ref:
        raise LabelSetError(f"{path}: 'base' must be a label set name or a path")
    if base_ref in available_label_sets():
        base_path = os.path.join(_PACKAGE_DIR, f"{base_ref}.json")
    else:
        # Relative to the subset file, so a subset and its base can travel together.
        base_path = os.path.abspath(os.path.join(os.path.dirname(path), base_ref))
    try:
        base = _load_file(base_path, chain + (path,))
    except LabelSetError as error:
        raise type(error)(f"{path}: cannot load its base {base_ref!r}: {error}") from None
    ids = spec.get("ids")
    if not isinstance(ids, list) or not ids or not all(_is_int(i) for i in ids):
        raise LabelSetError(f"{path}: 'ids' must be a non-empty list of integers")
    if len(set(ids)) != len(ids):
        raise LabelSetError(f"{path}: duplicate ids {sorted({i for i in ids if ids.count(i) > 1})}")
    outside = [i for i in ids if not 0 <= i < base.num_classes]
    if outside:
        raise LabelSetError(
            f"{path}: ids {outside} are outside its base {base.name!r} (0..{base.num_classes - 1})"
        )
    return LabelSet(
        name=spec["name"],
        names=base.names,
        colors=base.colors,
        used_ids=tuple(sorted(ids)),
        dontcare_id=base.dontcare_id,
        ignore_index=base.ignore_index,
        flip_pairs=base.flip_pairs,
        source_ids=base.source_ids,
        ignored_source_ids=base.ignored_source_ids,
    )


def label_set_from_values(values, name: str) -> LabelSet:
    """The LabelSet of raw label values (semantic_labels/label_values.py): class k is stored
    as `values[k]` in the files (its `source_ids`), is called "value_<v>" and gets the k-th
    PASCAL VOC colour.

    Args:
        values: distinct raw values 0..255, in class order.
        name: the set's name (e.g. the file's stem).
    """
    values = tuple(int(v) for v in values)
    return LabelSet(
        name=name,
        names=tuple(f"value_{v}" for v in values),
        colors=_label_values.voc_colors(len(values)),
        used_ids=tuple(range(len(values))),
        dontcare_id=None,
        source_ids=values,
    )


def load_label_values_set(path) -> LabelSet:
    """The LabelSet of a label-values `.txt` file (the SPADE TF port's), named after its stem."""
    values = _label_values.read_label_values(path)
    return label_set_from_values(values, os.path.splitext(os.path.basename(path))[0])


__all__ = [
    "LabelSet",
    "LabelSetError",
    "LabelSetFileNotFoundError",
    "available_label_sets",
    "label_set_from_values",
    "load_label_set",
    "load_label_values_set",
]
