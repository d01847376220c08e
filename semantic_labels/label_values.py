"""Label sets given as the raw label values alone: the SPADE TF port's semantic_labels.txt.

The port keeps, per dataset, one text file holding the distinct values its label maps store,
one comma-separated list ("0, 3, 255", brackets allowed): the value at position k is class k.
Such a file names no classes and no colours, so the label set made from it calls class k
"value_<v>" and colours it from the PASCAL VOC colour map; its `source_ids` are the values, so
every reader maps raw file values to the contiguous ids 0..K-1 (0 / 255 masks: 0 -> 0,
255 -> 1).

    values = read_label_values("data/semantic_labels.txt")    # (0, 255)
    table = value_table(values)                                # [256]: 0 -> 0, 255 -> 1, else -1

`load_label_set` reads a `.txt` path through this module, and
`semantic_labels.label_set_from_values(values, name)` makes the label set (2 classes,
source_ids (0, 255)). Writing goes through `write_label_values` (the same format, readable by
the port's `literal_eval`).
"""

from __future__ import annotations

import os
import re

import numpy as np

from core import io as core_io
from semantic_labels.errors import LabelSetError, LabelSetFileNotFoundError

TEXT_SUFFIX = ".txt"
_INVALID = -1  # value_table entry of raw values that belong to no class


def is_label_values_path(path) -> bool:
    """True for a label-values file name (the port's `.txt`)."""
    return isinstance(path, (str, os.PathLike)) and os.fspath(path).lower().endswith(TEXT_SUFFIX)


def parse_label_values(text: str, where: str) -> tuple[int, ...]:
    """The values of a label-values file's text.

    Args:
        text: e.g. "0, 3, 255", "[0, 3, 255]", "(0, 3)" or one value per line.
        where: how errors name the file.

    Raises:
        LabelSetError: no values, a value that is no integer in 0..255, or a repeated value.
    """
    body = text.strip()
    if body[:1] in "[(" and body[-1:] in "])":
        body = body[1:-1]
    items = [item for item in re.split(r"[,\s]+", body) if item]
    if not items:
        raise LabelSetError(f"{where}: holds no label values (expected e.g. '0, 3, 255')")
    values = []
    for item in items:
        if not re.fullmatch(r"[0-9]+", item) or int(item) > 255:
            raise LabelSetError(
                f"{where}: {item!r} is not a label value (integers 0..255, comma-separated, "
                "e.g. '0, 3, 255')"
            )
        values.append(int(item))
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise LabelSetError(f"{where}: repeats the values {repeated}")
    return tuple(values)


def read_label_values(path) -> tuple[int, ...]:
    """The label values stored in a label-values file (see parse_label_values)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise LabelSetFileNotFoundError(f"label values file {path} does not exist")
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as error:
        raise LabelSetError(f"{path}: unreadable ({error})") from None
    return parse_label_values(text, path)


def format_label_values(values) -> str:
    """The file text of `values`, as the port writes it: "0, 3, 255" (a single value "7,")."""
    values = [int(v) for v in values]
    return ", ".join(map(str, values)) + ("," if len(values) == 1 else "") + "\n"


def write_label_values(path, values) -> str:
    """Writes `values` to `path` atomically (the port's format); returns the path."""
    with core_io.atomic_write(path) as file:
        file.write(format_label_values(values))
    return os.fspath(path)


def voc_colors(count: int) -> np.ndarray:
    """The first `count` colours of the PASCAL VOC colour map, [count, 3] uint8 (0 is black).

    Class k's colour takes the bits of k three at a time, spread over R, G and B from the
    highest bit down, so neighbouring ids get clearly different colours.
    """
    colors = np.zeros((count, 3), np.uint8)
    for index in range(count):
        code, rgb = index, [0, 0, 0]
        for bit in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((code >> channel) & 1) << bit
            code >>= 3
        colors[index] = rgb
    return colors


def value_table(values) -> np.ndarray:
    """The [256] int32 table raw value -> class id (its position in `values`), -1 elsewhere."""
    table = np.full(256, _INVALID, np.int32)
    table[list(values)] = np.arange(len(values), dtype=np.int32)
    return table


def to_class_ids(label, values, where: str) -> np.ndarray:
    """Maps a raw [H, W] label map to class ids with `values`; unknown values raise naming
    `where` (the file) and the values the label set knows."""
    label = np.asarray(label)
    table = value_table(values)
    ids = table[label.astype(np.intp)]
    if ids.size and ids.min() < 0:
        unknown = np.unique(label[ids < 0]).tolist()
        raise LabelSetError(
            f"{where} holds the values {core_io.list_some(map(str, unknown))}, which the "
            f"label values {', '.join(map(str, values))} do not list"
        )
    return ids.astype(np.uint8)
