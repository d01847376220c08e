"""Class palettes for cluster annotation: which classes a user may assign, and their colours.

A palette is a `semantic_labels.LabelSet`. Three ways to name one:

- a built-in label set name, e.g. "documents" (see semantic_labels/README.md);
- the path to a label-set JSON in our format (`{"name", "classes": [{"id", "name", "color"}]}`
  or a subset with "base");
- the path to the original Synthesis-in-Style tool's simple form, a flat JSON object
  `{"background": "#000000", "printed_text": "#0000FF", ...}`; class ids follow file order.

Example:
    labels = load_palette("documents")
    labels.names            # ("background", "printed_text", "handwritten_text")
    color_to_hex(labels.colors[1])  # "#0000ff"
"""

from __future__ import annotations

import json
import os
import re

import numpy as np

from core.errors import UserError
from semantic_labels import LabelSet, LabelSetError, available_label_sets, load_label_set

_HEX_COLOR = re.compile(r"^#([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")


class _Pairs(list):
    """The (key, value) pairs of one JSON object, in file order (tells `{}` apart from `[]`)."""


class PaletteError(UserError):
    """A palette name, file or content is invalid; the message names the file and problem."""


class PaletteFileNotFoundError(PaletteError, FileNotFoundError):
    """A palette file does not exist (catchable as ValueError or FileNotFoundError)."""


def parse_hex_color(text: str) -> tuple[int, int, int]:
    """ "#RRGGBB" or "#RGB" -> (r, g, b) integers in [0, 255]; raises PaletteError otherwise."""
    if not isinstance(text, str) or not _HEX_COLOR.match(text.strip()):
        raise PaletteError(f"colour must be a string '#RRGGBB' (or '#RGB'), got {text!r}")
    digits = text.strip()[1:]
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    return tuple(int(digits[i : i + 2], 16) for i in (0, 2, 4))


def color_to_hex(color) -> str:
    """[r, g, b] integers -> "#rrggbb" (what HTML and the simple palette form use)."""
    r, g, b = (int(c) for c in color)
    return f"#{r:02x}{g:02x}{b:02x}"


def load_palette(path_or_name: str | os.PathLike) -> LabelSet:
    """Loads a palette from a built-in label set name or a JSON file (either form).

    Raises PaletteError (a ValueError) naming the file for an unknown name, a missing file (then
    also a FileNotFoundError), bad JSON, bad colour strings, duplicate class names or an empty
    palette.
    """
    if not isinstance(path_or_name, (str, os.PathLike)):
        raise PaletteError(
            f"palette must be a label set name or a path, got {type(path_or_name).__name__}"
        )
    path_or_name = os.fspath(path_or_name)
    if not path_or_name:
        raise PaletteError("palette: empty name; give a label set name or a .json path")
    if path_or_name in available_label_sets() and not os.path.isfile(path_or_name):
        return _from_label_set(path_or_name)
    looks_like_path = (
        path_or_name.endswith(".json")
        or os.sep in path_or_name
        or "/" in path_or_name
        or os.path.isfile(path_or_name)
    )
    if not looks_like_path:
        raise PaletteError(
            f"unknown palette {path_or_name!r}: use a built-in label set "
            f"{available_label_sets()} or the path to a .json file"
        )
    path = os.path.abspath(path_or_name)
    if not os.path.isfile(path):
        raise PaletteFileNotFoundError(f"palette file {path} does not exist")
    try:
        with open(path, encoding="utf-8") as file:
            # Pairs, not a dict: a dict would silently keep only the last of two equal names.
            spec = json.load(file, object_pairs_hook=_Pairs)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PaletteError(f"palette file {path}: not valid JSON ({error})") from None
    except OSError as error:
        raise PaletteError(f"palette file {path}: cannot be read ({error})") from None
    if not isinstance(spec, _Pairs):
        raise PaletteError(
            f"palette file {path}: the top level must be a JSON object (a label set or "
            '{"class_name": "#RRGGBB", ...})'
        )
    keys = [key for key, _ in spec]
    if "classes" in keys or "base" in keys:
        return _from_label_set(path)
    return _parse_simple(path, spec)


def _from_label_set(name_or_path: str) -> LabelSet:
    try:
        return load_label_set(name_or_path)
    except LabelSetError as error:
        error_type = (
            PaletteFileNotFoundError if isinstance(error, FileNotFoundError) else PaletteError
        )
        raise error_type(f"palette {name_or_path}: {error}") from None


def _parse_simple(path: str, pairs: list[tuple]) -> LabelSet:
    if not pairs:
        raise PaletteError(f"palette file {path}: no classes (an empty JSON object)")
    names, colors = [], []
    for name, color in pairs:
        if not isinstance(name, str) or not name.strip():
            raise PaletteError(f"palette file {path}: class names must be non-empty strings")
        if name in names:
            raise PaletteError(f"palette file {path}: duplicate class name {name!r}")
        try:
            colors.append(parse_hex_color(color))
        except PaletteError as error:
            raise PaletteError(f"palette file {path}: class {name!r}: {error}") from None
        names.append(name)
    return LabelSet(
        name=os.path.splitext(os.path.basename(path))[0],
        names=tuple(names),
        colors=np.array(colors, dtype=np.uint8),  # [K, 3]
        used_ids=tuple(range(len(names))),
        dontcare_id=None,
    )


__all__ = [
    "PaletteError",
    "PaletteFileNotFoundError",
    "color_to_hex",
    "load_palette",
    "parse_hex_color",
]
