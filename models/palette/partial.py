"""Partial editing of given layouts: synthesize.py --model=palette --partial.

A partial-editing model (a stage=partial run or its export, models.palette.export
.PartialEditor) regenerates a band of columns of each given layout with its class proportions
changed; outside the band the layout is kept exactly. The edited layouts become images with a
SPADE model (or the pipeline export's own), written as pairs in the project's one pair format
(datasets.synthetic_pairs.write_pairs), plus the input layouts for comparison:

    out_dir/images, masks, masks_colour, train.json, ...   the edited pairs (write_pairs)
    out_dir/input_masks/000000.png          input layout i (train ids, at the masks' size)
    out_dir/input_masks_colour/000000.png   the same in class colours
    out_dir/targets.npy    [N, C] the palette asked for: the input's proportions + the change
    out_dir/achieved.npy   [N, C] the class proportions of the written (edited) mask
    out_dir/changes.npy    [N, C] the change of proportions per layout (rows sum to 0)
    out_dir/bands.npy      [N, 2] the band (start, end) in columns of the input layouts
    out_dir/latents.npy    [N, z_dim] the partial generator's z

Layouts are train-id label maps of the model's label set at the model's layout size (as the
pairs mode's masks/ when the SPADE size is the layout size): 8-bit PNGs in a folder (sorted,
sub-folders included) or listed in a JSON file (a list of paths, or a pair list
{"pairs": [{"image", "label"}]} whose labels are the layouts; paths relative to the JSON).

Example:
    synthesize_partial_pairs("outputs/palette_partial", partial_source="runs/palette_partial",
                             spade_checkpoint_dir="runs/spade_streets",
                             layouts_path="outputs/palette_pairs/masks", band="0.25,0.75",
                             delta="vegetation=+0.1,sky=-0.05")
"""

import os
import shutil

import numpy as np

from core import io as core_io
from core.errors import UserError
from models.palette import bands as bands_lib
from models.palette.inference import (
    LayoutImageSynthesizer,
    PaletteError,
    generator_label_set,
    resize_layouts,
)

INPUT_FOLDERS = ("input_masks", "input_masks_colour")


class LayoutInputError(UserError):
    """A layout file to edit that cannot be used; the message names it."""


def layout_paths(path, flag="--layouts"):
    """The label-map paths of a folder (.png, sorted, sub-folders included) or a JSON list."""
    path = os.fspath(path)
    where = f"{flag}={path}"
    if os.path.isdir(path):
        found = core_io.find_files(path, (".png",), where)
        if not found:
            raise LayoutInputError(f"{where} holds no .png label maps")
        return [found[stem] for stem in sorted(found)]
    if not path.lower().endswith(".json"):
        raise LayoutInputError(
            f"{where} is neither a folder of label-map PNGs nor a JSON list of them"
            + ("" if os.path.exists(path) else " (it does not exist)")
        )
    data = core_io.read_json_list(path, where)
    entries = data.get("pairs") if isinstance(data, dict) else data
    if isinstance(entries, list) and entries and all(isinstance(e, dict) for e in entries):
        entries = [entry.get("label") for entry in entries]
    if not (isinstance(entries, list) and entries and all(isinstance(e, str) for e in entries)):
        raise LayoutInputError(
            f'{where}: expected a list of label-map paths or {{"pairs": [{{"image": ..., '
            '"label": ...}, ...]}} with at least one entry'
        )
    return core_io.resolve_listed(entries, path, where)


def read_layouts(path, label_set, size, flag="--layouts"):
    """(paths, uint8 [N, H, W] train ids) of the layouts to edit, each checked.

    Args:
        path: a folder of label-map PNGs or a JSON list (module docstring).
        label_set: the model's LabelSet: values must be its train ids 0 .. C-1.
        size: (H, W) the model edits.
        flag: how errors name `path`.

    Raises:
        LayoutInputError: a map of another size or with a value that is no train id, naming
            the file.
    """
    from datasets import pipeline

    paths = layout_paths(path, flag)
    layouts = []
    for file in paths:
        ids = pipeline.load_label_map(file)  # [h, w] uint8; bad modes raise naming the file
        if ids.shape != tuple(size):
            raise LayoutInputError(
                f"{flag}: layout {file} is {ids.shape[0]}x{ids.shape[1]}, but the partial-editing "
                f"model edits {size[0]}x{size[1]} layouts"
            )
        if int(ids.max()) >= label_set.num_classes:
            row, col = np.argwhere(ids >= label_set.num_classes)[0]
            raise LayoutInputError(
                f"{flag}: layout {file} holds the value {int(ids[row, col])} (row {row}, column "
                f"{col}), not a train id of {label_set.name!r} (0..{label_set.num_classes - 1}); "
                "layouts are train-id maps as the pairs mode's masks/ (map labelIds and ignored "
                "pixels, 255, to train ids first)"
            )
        layouts.append(ids)
    return paths, np.stack(layouts)  # [N, H, W]


def partial_pair_sampler(
    editor, image_fn, layouts, band, changes, *, num_classes, seed=0, batch_size=8
):
    """sample_fn(batch_index, count) of datasets.synthetic_pairs.write_pairs: layouts i of
    batch b (i from b * batch_size) edited in `band`, then made images.

    Batch b draws the partial generator's z (and SPADE's noise) from (seed, b) only.

    Args:
        editor: a models.palette.export.PartialEditor.
        image_fn: (layouts uint8 [n, H, W], rng) -> (images, masks), e.g. a
            LayoutImageSynthesizer; None: the editor's own images (a pipeline export).
        layouts: uint8 [N, H, W] train ids at the editor's size.
        band: (start, end) columns, the same for every layout.
        changes: float32 [N, C] the change of proportions per layout (resolve_changes).
        num_classes: C.
        seed, batch_size: as write_pairs'.
    """
    from models.palette.estimator import proportions

    bands = np.tile(np.asarray(band, np.int32)[None], (len(layouts), 1))  # [N, 2]
    targets = proportions(layouts, num_classes) + changes  # [N, C]

    def sample_fn(batch_index, count):
        rng = np.random.default_rng([seed, batch_index])
        rows = slice(batch_index * batch_size, batch_index * batch_size + count)
        z = rng.standard_normal((count, editor.z_dim)).astype(np.float32)
        out = editor(layouts[rows], bands[rows], changes[rows], z)
        if image_fn is None:
            images, masks = out["image"], out["layout"]
        else:
            images, masks = image_fn(out["layout"], rng)
        return {
            "images": images,
            "masks": masks,
            "latents": z,
            "targets": targets[rows].astype(np.float32),
            "achieved": proportions(masks, num_classes).astype(np.float32),
            "changes": changes[rows],
            "bands": bands[rows],
        }

    return sample_fn


def synthesize_partial_pairs(
    out_dir,
    *,
    partial_source,
    layouts_path,
    band,
    delta=None,
    spade_checkpoint_dir=None,
    spade_saved_model=None,
    batch_size=8,
    seed=0,
    val_fraction=0.1,
    overwrite=False,
    progress=True,
    source_flag="--checkpoint_dir",
):
    """Edits every layout of `layouts_path` and writes the pairs (module docstring).

    Every input is checked (the model has a partial stage, the band, the delta, each layout
    file) before anything is written; an output folder holding other files is refused unless
    overwrite (write_pairs; a killed run of the same settings resumes).

    Args:
        out_dir: the pair folder.
        partial_source: a stage=partial run directory, or a SavedModel with serve_partial
            (export_partial, or a pipeline export with a partial run: it brings the images).
        layouts_path: a folder of train-id PNGs or a JSON list of them.
        band: "x0,x1" columns or fractions of the width, or (start, end) columns
            (bands.parse_band), the same for every layout.
        delta: "class=change,..." or {class: change}: the change of the class proportions
            (bands.parse_delta / resolve_changes); None: the band keeps its proportions.
        spade_checkpoint_dir / spade_saved_model: the image synthesizer (one; none for a
            pipeline export).
        batch_size, seed, val_fraction, overwrite, progress: as write_pairs'.
        source_flag: how errors name `partial_source`.

    Returns:
        write_pairs' manifest.
    """
    from datasets.synthetic_pairs import SyntheticDatasetError, num_val_pairs, write_pairs
    from models.palette.export import PartialEditor

    if spade_checkpoint_dir and spade_saved_model:
        raise PaletteError("give one of --spade_checkpoint_dir and --spade_saved_model")
    editor = PartialEditor(partial_source, flag=source_flag)
    label_set = generator_label_set(editor)
    if editor.has_images and (spade_checkpoint_dir or spade_saved_model):
        raise PaletteError(
            f"{source_flag}={partial_source} is a pipeline export with its own image "
            "synthesizer: drop --spade_checkpoint_dir / --spade_saved_model"
        )
    if not editor.has_images and not (spade_checkpoint_dir or spade_saved_model):
        raise PaletteError(
            "synthesize.py --model=palette --partial needs an image synthesizer: "
            "--spade_checkpoint_dir or --spade_saved_model (a SPADE of the layouts' label set "
            "and aspect ratio); a pair needs its image"
        )
    size = (editor.height, editor.width)
    start, end = bands_lib.parse_band(band, editor.width)
    named = bands_lib.parse_delta(delta, label_set.names)
    paths, layouts = read_layouts(layouts_path, label_set, size)
    changes = bands_lib.resolve_changes(
        named,
        bands_lib.band_mass_np(layouts, (start, end), label_set.num_classes),
        label_set.names,
        where=lambda i: f"--layouts: layout {paths[i]}",
    )
    try:
        num_val_pairs(len(layouts), val_fraction)
    except SyntheticDatasetError as error:
        raise PaletteError(
            f"--layouts: {len(layouts)} layout(s) to edit with --val_fraction={val_fraction}: "
            f"{error}; pass --val_fraction=0 to put every pair in train.json"
        ) from None
    image_fn = None
    if not editor.has_images:
        image_fn = LayoutImageSynthesizer(
            spade_checkpoint_dir, spade_saved_model, label_set=label_set, layout_size=size
        )
    sample_fn = partial_pair_sampler(
        editor,
        image_fn,
        layouts,
        (start, end),
        changes,
        num_classes=label_set.num_classes,
        seed=seed,
        batch_size=batch_size,
    )
    settings = {
        "partial_source": os.path.abspath(partial_source),
        "image_source": image_fn.source if image_fn else os.path.abspath(partial_source),
        "layouts": [os.path.abspath(p) for p in paths],
        "band": [start, end],
        "delta": {label_set.names[k]: v for k, v in sorted(named.items())},
    }
    manifest = write_pairs(
        out_dir,
        sample_fn,
        label_set=label_set,
        num_images=len(layouts),
        batch_size=batch_size,
        seed=seed,
        val_fraction=val_fraction,
        overwrite=overwrite,
        progress=progress,
        settings=settings,
        source="palette_partial",
    )
    # The inputs, at the written masks' size: write_pairs has accepted the folder as this
    # run's (empty, the same settings resumed, or --overwrite), so these folders are ours.
    mask_size = image_fn.image_size if image_fn else size
    inputs = resize_layouts(layouts, mask_size)  # [N, H', W']
    for folder in INPUT_FOLDERS:
        shutil.rmtree(os.path.join(out_dir, folder), ignore_errors=True)
        os.makedirs(os.path.join(out_dir, folder))
    for i, layout in enumerate(inputs):
        core_io.save_image_atomic(layout, os.path.join(out_dir, INPUT_FOLDERS[0], f"{i:06d}.png"))
        core_io.save_image_atomic(
            label_set.colorize(layout), os.path.join(out_dir, INPUT_FOLDERS[1], f"{i:06d}.png")
        )
    if progress:
        print(f"[partial] wrote the {len(inputs)} input layouts to {out_dir}/{INPUT_FOLDERS[0]}")
    return manifest
