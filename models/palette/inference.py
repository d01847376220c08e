"""Palette files -> layouts (and, chained with an image synthesizer, image / mask pairs).

Palette files, read by `load_palettes(path, label_set)`:
- JSON: one palette {"road": 0.4, "sky": 0.2, ...} (classes not named are 0), a list of such
  objects, or a list of C numbers / a list of lists of C numbers (in train-id order);
- CSV: a header row of class names (a subset of the label set's, any order; the others are
  0), then one palette per row.
Every palette must have the label set's length, values in [0, 1] and a sum within 0.01 of 1;
errors name the file, the row and the expected class list.

Example:
    palettes = load_palettes("palettes.csv", load_label_set("cityscapes"))    # [N, 19]
    layouts = generate_layouts("runs/palette_tiny", palettes, seed=0)       # uint8 [N, H, W]
"""

import csv
import json
import os

import numpy as np

from core.errors import UserError

SUM_TOLERANCE = 0.01


class PaletteError(UserError):
    """A palette file or value that cannot be used; the message names it."""


def _expected(label_set):
    return (
        f"the {label_set.num_classes} classes of {label_set.name!r}: {', '.join(label_set.names)}"
    )


def _from_mapping(mapping, label_set, where):
    unknown = [name for name in mapping if name not in label_set.names]
    if unknown:
        raise PaletteError(
            f"{where} names classes {unknown} that are not in the label set; expected "
            f"{_expected(label_set)}"
        )
    palette = np.zeros(label_set.num_classes, np.float64)
    for name, value in mapping.items():
        try:
            palette[label_set.names.index(name)] = float(value)
        except (TypeError, ValueError):
            raise PaletteError(
                f"{where}: the value of {name!r} is not a number: {value!r}"
            ) from None
    return palette


def _from_list(values, label_set, where):
    if len(values) != label_set.num_classes:
        raise PaletteError(
            f"{where} has {len(values)} values, expected one for each of {_expected(label_set)}"
        )
    try:
        return np.asarray([float(v) for v in values], np.float64)
    except (TypeError, ValueError):
        raise PaletteError(f"{where} holds values that are not numbers: {values}") from None


def check_palettes(palettes, label_set, where="palette"):
    """float32 [N, C] palettes, or PaletteError naming `where` and the bad row."""
    palettes = np.asarray(palettes, np.float64)
    if palettes.ndim == 1:
        palettes = palettes[None]
    if palettes.ndim != 2 or palettes.shape[1] != label_set.num_classes:
        raise PaletteError(
            f"{where}: palettes must be [N, {label_set.num_classes}] for {_expected(label_set)}; "
            f"got shape {list(palettes.shape)}"
        )
    if len(palettes) == 0:
        raise PaletteError(f"{where} holds no palette")
    for i, row in enumerate(palettes):
        if not np.all(np.isfinite(row)) or row.min() < 0 or row.max() > 1:
            raise PaletteError(f"{where}, palette {i + 1}: values must lie in [0, 1], got {row}")
        if abs(row.sum() - 1.0) > SUM_TOLERANCE:
            raise PaletteError(
                f"{where}, palette {i + 1}: proportions sum to {row.sum():.4f}, not 1 (within "
                f"{SUM_TOLERANCE}); classes in order: {', '.join(label_set.names)}"
            )
    return (palettes / palettes.sum(axis=1, keepdims=True)).astype(np.float32)


def load_palettes(path, label_set):
    """Reads a palette file (JSON or CSV, see the module docstring) -> float32 [N, C]."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise PaletteError(f"palette file {path} does not exist")
    where = f"palette file {path}"
    if path.lower().endswith(".csv"):
        with open(path, newline="") as f:
            rows = [row for row in csv.reader(f) if any(cell.strip() for cell in row)]
        if len(rows) < 2:
            raise PaletteError(f"{where} needs a header of class names and at least one row")
        header = [name.strip() for name in rows[0]]
        palettes = []
        for number, row in enumerate(rows[1:], start=2):
            if len(row) != len(header):
                raise PaletteError(
                    f"{where}, line {number}: {len(row)} values for {len(header)} header columns"
                )
            palettes.append(
                _from_mapping(dict(zip(header, row)), label_set, f"{where}, line {number}")
            )
        return check_palettes(palettes, label_set, where)
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as error:
        raise PaletteError(f"{where} is not readable JSON ({error})") from None
    if isinstance(data, dict):
        palettes = [_from_mapping(data, label_set, where)]
    elif isinstance(data, list) and data and all(isinstance(d, dict) for d in data):
        palettes = [
            _from_mapping(d, label_set, f"{where}, palette {i + 1}") for i, d in enumerate(data)
        ]
    elif isinstance(data, list) and data and all(isinstance(d, list) for d in data):
        palettes = [
            _from_list(d, label_set, f"{where}, palette {i + 1}") for i, d in enumerate(data)
        ]
    elif isinstance(data, list) and data:
        palettes = [_from_list(data, label_set, where)]
    else:
        raise PaletteError(
            f"{where} must hold a palette {{class: proportion}}, a list of them, or lists of "
            f"{label_set.num_classes} numbers"
        )
    return check_palettes(palettes, label_set, where)


def _check_generator_label_set(generator, label_set, source):
    if label_set is not None and tuple(label_set.names) != generator.class_names:
        raise PaletteError(
            f"{source} generates layouts of the label set {generator.label_set_name!r} "
            f"({generator.num_classes} classes), but the palettes are of {label_set.name!r} "
            f"({label_set.num_classes} classes)"
        )


def band_keep_mask(height, width, band):
    """The keep mask of a partial edit: float32 [H, W, 1], 0 in the columns band = (start,
    end) (end exclusive) to regenerate, 1 elsewhere.

    Raises:
        PaletteError: the band is empty or outside the layout's 0..width columns.
    """
    start, end = (int(v) for v in band)
    if not 0 <= start < end <= width:
        raise PaletteError(
            f"band ({start}, {end}) must be a non-empty column range inside the {height}x{width} "
            f"layout: 0 <= start < end <= {width}"
        )
    keep = np.ones((height, width, 1), np.float32)
    keep[:, start:end] = 0.0
    return keep


def generate_layouts(source, palettes, *, seed=0, batch_size=16, level=None, label_set=None):
    """Layouts for palettes: uint8 [N, H, W] train ids (argmax of the soft layouts).

    Args:
        source: a palette run directory or an exported SavedModel (models.palette.export).
        palettes: float32 [N, C] (e.g. from load_palettes).
        seed: seed of the latents (one z per palette, drawn in order: the same seed and
            palettes give the same layouts, whatever the batch size).
        batch_size: palettes per generator call.
        level: the level to generate at (default the run's / export's).
        label_set: when given, the generator must be of this label set.
    """
    from models.palette.export import LayoutGenerator

    generator = LayoutGenerator(source, level=level)
    _check_generator_label_set(generator, label_set, source)
    palettes = np.asarray(palettes, np.float32)
    if palettes.ndim != 2 or palettes.shape[1] != generator.num_classes:
        raise PaletteError(
            f"palettes must be [N, {generator.num_classes}] for {source}, got shape "
            f"{list(palettes.shape)}"
        )
    z = np.random.default_rng(seed).standard_normal((len(palettes), generator.z_dim))
    layouts = []
    for start in range(0, len(palettes), batch_size):
        _, layout = generator(palettes[start : start + batch_size], z[start : start + batch_size])
        layouts.append(layout)
    return np.concatenate(layouts).astype(np.uint8)


def synthesize_palette_pairs(
    out_dir,
    *,
    layout_source,
    image_fn,
    label_set,
    num_images,
    batch_size=8,
    seed=0,
    estimator=None,
    palettes=None,
    **write_kwargs,
):
    """Synthetic (image, mask) pairs: palette -> layout -> image, written by
    datasets.synthetic_pairs.write_pairs.

    Palettes come from `palettes` (cycled) or are drawn from `estimator`; batch b of the
    writer uses palettes and latents derived from (seed, b) only, so a resumed writer gives the
    pairs of an uninterrupted one.

    Args:
        out_dir: the dataset folder.
        layout_source: a palette run directory or SavedModel.
        image_fn: uint8 [n, H, W] train-id layouts -> uint8 [n, H, W, 3] images (e.g. a SPADE
            synthesizer at the layout size).
        label_set: the layouts' label set.
        num_images, batch_size, seed, **write_kwargs: forwarded to write_pairs.
        estimator: a PaletteEstimator (when `palettes` is None).
        palettes: float32 [P, C] palettes to cycle through.
    """
    from datasets.synthetic_pairs import write_pairs
    from models.palette.export import LayoutGenerator

    if (estimator is None) == (palettes is None):
        raise PaletteError("give exactly one of estimator and palettes")
    generator = LayoutGenerator(layout_source)
    _check_generator_label_set(generator, label_set, layout_source)
    if palettes is not None:
        palettes = check_palettes(palettes, label_set)

    def sample_fn(batch_index, count):
        rng = np.random.default_rng([seed, batch_index])
        if palettes is not None:
            start = batch_index * batch_size
            chosen = palettes[np.arange(start, start + count) % len(palettes)]
        else:
            chosen = estimator.sample(count, rng)
        z = rng.standard_normal((count, generator.z_dim)).astype(np.float32)
        _, masks = generator(chosen, z)
        return {"images": image_fn(masks), "masks": masks, "latents": z}

    return write_pairs(
        out_dir,
        sample_fn,
        label_set=label_set,
        num_images=num_images,
        batch_size=batch_size,
        seed=seed,
        **write_kwargs,
    )
