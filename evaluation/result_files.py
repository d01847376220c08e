"""Atomic result files of the evaluate.py modes: CSV rows, markdown text, JSON.

Each file is written through core.io.atomic_write, so a reader (or a rerun after a kill) never
sees half a table.

Example:
    write_csv("out/results.csv", ["metric", "value"], [("fid", 12.5), ("emd", None)])
"""

from __future__ import annotations

import csv
import json

from core import io as core_io


def cell(value) -> str:
    """A CSV cell: floats with 6 decimals, None empty, anything else as str()."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


def write_csv(path: str, header, rows) -> str:
    """Writes a header and rows (sequences of cells) as CSV ("\\n" line ends)."""
    with core_io.atomic_write(path) as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([cell(value) for value in row] for row in rows)
    return path


def write_text(path: str, text: str) -> str:
    """Writes text (markdown) atomically."""
    with core_io.atomic_write(path) as file:
        file.write(text)
    return path


def write_json(path: str, obj) -> str:
    """Writes obj as indented JSON atomically."""
    with core_io.atomic_write(path) as file:
        json.dump(obj, file, indent=1)
    return path
