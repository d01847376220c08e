"""Palette files -> layouts -> (with a SPADE model) image / mask pairs.

    load_palettes(path, label_set)        palette files (below) -> float32 [N, C]
    generate_layouts(source, palettes)    -> uint8 [N, H, W] train ids
    LayoutImageSynthesizer                layouts -> images with a SPADE run / export (layouts
                                          resized, nearest, to its size; label set checked)
    palette_pair_sampler(...)             the sample_fn of datasets.synthetic_pairs.write_pairs:
                                          palette -> layout -> image, a pure function of
                                          (seed, batch): also the online stream of a segmenter
    synthesize_palette_pairs(out_dir,..)  synthesize.py --model=palette: pairs + targets.npy
                                          (palettes asked for) + achieved.npy (the masks')

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


# === Palette -> layout -> image: the synthesizer of image / mask pairs ===


def generator_label_set(generator):
    """The LabelSet of a LayoutGenerator's layouts (for colours and the pair format)."""
    from semantic_labels import LabelSetError, load_label_set

    try:
        label_set = load_label_set(generator.label_set_name)
    except LabelSetError as error:
        raise PaletteError(
            f"the layout generator's label set {generator.label_set_name!r} cannot be loaded "
            f"({error})"
        ) from None
    if tuple(label_set.names) != tuple(generator.class_names):
        raise PaletteError(
            f"the layout generator's classes {list(generator.class_names)} are not those of "
            f"the label set {label_set.name!r} ({list(label_set.names)})"
        )
    return label_set


def load_palette_estimator(layout_source, label_set, estimator_path=None):
    """The estimator palettes are drawn from: `estimator_path`, or the layout run's own
    (<run>/palette_estimator.json, written when it trained).

    Raises:
        PaletteError: neither exists (e.g. a SavedModel source without --estimator_path).
        PaletteEstimatorError: the file is unreadable or of another label set.
    """
    from models.palette.estimator import PaletteEstimator
    from models.palette.task import ESTIMATOR_FILE

    if estimator_path:
        return PaletteEstimator.load(estimator_path, label_set, "--estimator_path")
    path = os.path.join(layout_source, ESTIMATOR_FILE)
    if not os.path.isfile(path):
        raise PaletteError(
            f"{layout_source} holds no palette estimator ({ESTIMATOR_FILE}); give --palettes "
            "(a JSON / CSV of class proportions) or --estimator_path (a fitted estimator, e.g. "
            "<layout run>/palette_estimator.json)"
        )
    return PaletteEstimator.load(path, label_set, f"the estimator of {layout_source}")


def resize_layouts(layouts, size):
    """Nearest-neighbour resize of uint8 [N, h, w] layouts to size (H, W) (ids preserved)."""
    layouts = np.asarray(layouts, np.uint8)
    height, width = size
    if layouts.shape[1:] == (height, width):
        return layouts
    fy, fx = height // layouts.shape[1], width // layouts.shape[2]
    if fy * layouts.shape[1] == height and fx * layouts.shape[2] == width:
        return layouts.repeat(fy, axis=1).repeat(fx, axis=2)  # [N, H, W]: whole factors
    from models.spade.export import resize_label_map

    return np.stack([resize_label_map(layout, size) for layout in layouts])


def _same_label_set(name, label_set):
    """Whether the label set called `name` (a built-in name or a file) has label_set's classes."""
    from semantic_labels import LabelSetError, load_label_set

    try:
        return tuple(load_label_set(name).names) == tuple(label_set.names)
    except LabelSetError:
        return name == label_set.name


class LayoutImageSynthesizer:
    """Train-id layouts -> images with a SPADE model (run directory or SavedModel).

    The layouts are resized (nearest) to the SPADE size first, so the masks written with the
    images are exactly what SPADE saw. SPADE runs of a label set with an ignore value
    (Cityscapes) have one more "don't care" channel, which layouts never use.

    Args:
        checkpoint_dir: a SPADE run directory (train.py --model=spade); or
        saved_model: a SPADE SavedModel (models.spade.export).
        label_set: the layouts' LabelSet: the SPADE model must be of it.
        layout_size: (h, w) of the layouts, to refuse another aspect ratio.

    Example:
        images, masks = LayoutImageSynthesizer(checkpoint_dir="runs/spade_streets",
                                               label_set=cityscapes)(layouts, rng)
    """

    def __init__(self, checkpoint_dir=None, saved_model=None, *, label_set, layout_size=None):
        from models.spade.export import META_FILE, Synthesizer

        source = checkpoint_dir or saved_model
        self.source = os.path.abspath(source) if source else None
        self.synthesizer = Synthesizer(checkpoint_dir=checkpoint_dir, saved_model=saved_model)
        name = getattr(self.synthesizer, "label_set_name", None)
        if saved_model:
            try:
                with open(os.path.join(saved_model, META_FILE)) as f:
                    name = json.load(f).get("label_set")
            except (OSError, ValueError):
                name = None  # an export of an older version: its label set is not recorded
        flag = "--spade_checkpoint_dir" if checkpoint_dir else "--spade_saved_model"
        if name is not None and not _same_label_set(name, label_set):
            raise PaletteError(
                f"{flag}={source} synthesizes label maps of {name!r}, but the layouts are of "
                f"{label_set.name!r}"
            )
        channels = self.synthesizer.num_classes
        if channels is not None and channels not in (
            label_set.num_classes,
            label_set.num_classes + 1,
        ):
            raise PaletteError(
                f"{flag}={source} takes {channels} classes, but the layouts have "
                f"{label_set.num_classes} ({label_set.name!r})"
            )
        self.image_size = tuple(self.synthesizer.image_size)
        if layout_size is not None:
            h, w = layout_size
            if abs(w / h - self.image_size[1] / self.image_size[0]) > 1e-6:
                raise PaletteError(
                    f"{flag}={source} synthesizes {self.image_size[0]}x{self.image_size[1]} "
                    f"images, but the layouts are {h}x{w}: another aspect ratio (train SPADE "
                    "with --img_height / --img_width of the layouts' ratio)"
                )

    def __call__(self, layouts, rng):
        """uint8 [n, h, w] layouts, a numpy Generator (SPADE's z when it has a VAE) ->
        (images uint8 [n, H, W, 3], masks uint8 [n, H, W]) at the SPADE size."""
        masks = resize_layouts(layouts, self.image_size)  # [n, H, W]
        z = None
        if self.synthesizer.use_vae:
            z = rng.standard_normal((len(masks), self.synthesizer.z_dim)).astype(np.float32)
        return self.synthesizer(masks, z=z), masks


def palette_pair_sampler(
    generator, image_fn, *, num_classes, seed=0, batch_size=8, estimator=None, palettes=None
):
    """sample_fn(batch_index, count) of datasets.synthetic_pairs.write_pairs: palette ->
    layout -> image.

    Batch b uses palettes, layout latents and SPADE noise drawn from (seed, b) only, so a batch
    is the same whenever it is made (a resumed writer, the online stream of a segmenter).

    Args:
        generator: a models.palette.export.LayoutGenerator.
        image_fn: (layouts uint8 [n, h, w], rng) -> (images, masks), e.g. a
            LayoutImageSynthesizer.
        num_classes: C of the palettes.
        seed, batch_size: as write_pairs'; batch b's given palettes start at b * batch_size.
        estimator: a PaletteEstimator to draw palettes from; or
        palettes: float32 [P, C] palettes, cycled in order.

    Returns:
        sample_fn -> {"images": uint8 [n, H, W, 3], "masks": uint8 [n, H, W], "latents":
        float32 [n, z_dim], "targets": float32 [n, C] (the palettes asked for), "achieved":
        float32 [n, C] (the class proportions of the masks)}.
    """
    from models.palette.estimator import proportions

    if (estimator is None) == (palettes is None):
        raise PaletteError("give exactly one of an estimator and palettes")

    def sample_fn(batch_index, count):
        rng = np.random.default_rng([seed, batch_index])
        if palettes is not None:
            start = batch_index * batch_size
            targets = palettes[np.arange(start, start + count) % len(palettes)]
        else:
            targets = estimator.sample(count, rng)
        z = rng.standard_normal((count, generator.z_dim)).astype(np.float32)
        _, layouts = generator(targets, z)  # [n, h, w] uint8
        images, masks = image_fn(layouts, rng)
        return {
            "images": images,
            "masks": masks,
            "latents": z,
            "targets": np.asarray(targets, np.float32),
            "achieved": proportions(masks, num_classes).astype(np.float32),
        }

    return sample_fn


def synthesize_palette_pairs(
    out_dir,
    *,
    layout_source,
    num_images,
    spade_checkpoint_dir=None,
    spade_saved_model=None,
    palettes_path=None,
    estimator_path=None,
    level=None,
    batch_size=8,
    seed=0,
    val_fraction=0.1,
    overwrite=False,
    progress=True,
):
    """Synthetic (image, mask) pairs: palette -> layout -> image, in the project's pair format
    (datasets.synthetic_pairs.write_pairs), plus targets.npy (the palettes asked for),
    achieved.npy (the masks' class proportions) and latents.npy (the layout z).

    Palettes come from `palettes_path` (a palette file, cycled) or are drawn from the estimator
    (`estimator_path`, or the layout run's). Images come from a SPADE model of the layouts'
    label set: layouts alone are refused (a pair needs its image). Written masks are at the
    SPADE size (the layouts resized, nearest).

    Args:
        out_dir: the dataset folder (refused when it holds another run, unless overwrite; a
            killed run of the same settings resumes).
        layout_source: a palette run directory or a layout SavedModel.
        num_images: pairs to write.
        spade_checkpoint_dir / spade_saved_model: the image synthesizer (exactly one).
        palettes_path: a palette file (load_palettes); estimator_path: a fitted estimator.
        level: the layout level (default the run's / export's).
        batch_size, seed, val_fraction, overwrite, progress: as write_pairs'.

    Returns:
        write_pairs' manifest.

    Example:
        synthesize_palette_pairs("outputs/palette_pairs", layout_source="runs/palette",
                                 spade_checkpoint_dir="runs/spade_streets", num_images=100)
    """
    from datasets.synthetic_pairs import write_pairs
    from models.palette.export import LayoutGenerator

    if not (spade_checkpoint_dir or spade_saved_model):
        raise PaletteError(
            "synthesize.py --model=palette needs an image synthesizer: --spade_checkpoint_dir "
            "(a SPADE run of the layouts' label set, e.g. trained on --dataset=streets "
            "--semantic_label_path=cityscapes at the layouts' aspect ratio) or "
            "--spade_saved_model; a pair without its image is no training data"
        )
    if spade_checkpoint_dir and spade_saved_model:
        raise PaletteError("give one of --spade_checkpoint_dir and --spade_saved_model")
    if palettes_path and estimator_path:
        raise PaletteError("give one of --palettes and --estimator_path")
    generator = LayoutGenerator(layout_source, level=level)
    label_set = generator_label_set(generator)
    palettes = estimator = None
    if palettes_path:
        palettes = load_palettes(palettes_path, label_set)
    else:
        estimator = load_palette_estimator(layout_source, label_set, estimator_path)
    image_fn = LayoutImageSynthesizer(
        spade_checkpoint_dir,
        spade_saved_model,
        label_set=label_set,
        layout_size=(generator.height, generator.width),
    )
    sample_fn = palette_pair_sampler(
        generator,
        image_fn,
        num_classes=label_set.num_classes,
        seed=seed,
        batch_size=batch_size,
        estimator=estimator,
        palettes=palettes,
    )
    settings = {
        "layout_source": os.path.abspath(layout_source),
        "layout_level": generator.level,
        "image_source": image_fn.source,
        "palettes": os.path.abspath(palettes_path) if palettes_path else None,
        "estimator": None if palettes_path else os.path.abspath(estimator_path or layout_source),
    }
    return write_pairs(
        out_dir,
        sample_fn,
        label_set=label_set,
        num_images=num_images,
        batch_size=batch_size,
        seed=seed,
        val_fraction=val_fraction,
        overwrite=overwrite,
        progress=progress,
        settings=settings,
        source="palette",
    )
