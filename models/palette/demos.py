"""Demos of a trained Semantic Palette, as files a person looks at.

    palette_interpolation.png / .gif   the palette moves linearly from palette A to palette B
                                       (the latent z fixed): what changes is what the palette
                                       asks for
    latent_interpolation.png / .gif    the palette fixed (A), z moves along the great circle
                                       from z0 to z1 (slerp, the path that keeps |z| typical
                                       for a Gaussian latent): the layouts one palette allows
    demos.json                         the palettes, seeds and sizes used, and what was skipped

Each frame (a column of the PNG strip) is, top to bottom: the layout in class colours, the
image SPADE synthesized from it (when a SPADE model is given; without one, layouts only), and
bars of the proportions per class, target (class colour) beside achieved (half brightness), on
a fixed scale (bar height = proportion), so the frames of a GIF compare. Small layouts are
enlarged (nearest) so that the short side is at least MIN_SIDE px.

    partial_editing.png                with a partial-editing model (partial_source: a
                                       stage=partial run or its export): rows "input | band |
                                       edited" for a few edits ("more vegetation", "more sky",
                                       "more road"): the layout of palette A (z0) with the
                                       columns PARTIAL_BAND regenerated, half of the band's other
                                       classes turned into the class (resolve_changes), one z
                                       for every row so that only the edit differs; layouts in
                                       class colours, each over its image when a SPADE model is
                                       given. Without a partial model the sheet is skipped, and
                                       demos.json says so.

Example:
    write_demos("outputs/palette_demos", layout_source="runs/palette",
                spade_checkpoint_dir="runs/spade_streets", steps=8,
                partial_source="runs/palette_partial")
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageDraw

from core import io as core_io
from models.palette import bands as bands_lib
from models.palette.inference import (
    LayoutImageSynthesizer,
    PaletteError,
    generator_label_set,
    load_palette_estimator,
    load_palettes,
    resize_layouts,
)

MIN_SIDE = 96  # frames are enlarged (whole factor, nearest) to at least this short side
GAP = 2  # white pixels between the columns of a strip
GIF_FRAME_MS = 250
DEMO_FILES = (
    "palette_interpolation.png",
    "palette_interpolation.gif",
    "latent_interpolation.png",
    "latent_interpolation.gif",
    "demos.json",
)
PARTIAL_FILE = "partial_editing.png"
PARTIAL_SKIPPED = (
    "partial editing sheet skipped: no partial-editing model (give --partial_checkpoint_dir, a "
    "train.py --model=palette --stage=partial run or its export)"
)
# The sheet's edits (title, class), those of the label set's classes; another label set's
# sheet shows "more <class>" for its first three classes.
PARTIAL_EDITS = (("more vegetation", "vegetation"), ("more sky", "sky"), ("more road", "road"))
PARTIAL_BAND = (0.3, 0.7)  # the regenerated columns, fractions of the width
PARTIAL_AMOUNT = 0.5  # share of the band's other classes turned into the edit's class
LABEL_WIDTH = 112  # the row titles' column (px)
HEADER = 14  # the column titles' row (px)
BAND_SHADE = 0.35  # brightness of the regenerated columns in the "band" column


def interpolate_palettes(start, end, steps):
    """float32 [steps, C]: (1 - t) start + t end for t = 0 .. 1 (rows still sum to 1)."""
    t = np.linspace(0.0, 1.0, steps)[:, None]  # [S, 1]
    return ((1.0 - t) * np.asarray(start)[None] + t * np.asarray(end)[None]).astype(np.float32)


def slerp(z0, z1, steps):
    """float32 [steps, d]: spherical interpolation from z0 to z1 (linear when parallel)."""
    z0, z1 = np.asarray(z0, np.float64), np.asarray(z1, np.float64)
    cos = np.dot(z0, z1) / max(np.linalg.norm(z0) * np.linalg.norm(z1), 1e-12)
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    t = np.linspace(0.0, 1.0, steps)[:, None]  # [S, 1]
    if omega < 1e-6:
        return ((1.0 - t) * z0 + t * z1).astype(np.float32)
    weights0 = np.sin((1.0 - t) * omega) / np.sin(omega)
    weights1 = np.sin(t * omega) / np.sin(omega)
    return (weights0 * z0 + weights1 * z1).astype(np.float32)  # [S, d]


def proportion_bars(label_set, target, achieved, size, top=1.0):
    """uint8 [H, W, 3]: per class a target bar (class colour) and an achieved bar (half
    brightness), height = proportion / top x H: one scale for every frame of a demo."""
    h, w = size
    c = label_set.num_classes
    image = np.full((h, w, 3), 255, np.uint8)
    edges = np.linspace(0, w, 2 * c + 1).round().astype(int)  # 2 bars per class
    for k in range(c):
        for j, (value, shade) in enumerate(((target[k], 1.0), (achieved[k], 0.5))):
            height = int(round(h * float(np.clip(value / top, 0.0, 1.0))))
            if height:
                x0, x1 = edges[2 * k + j], max(edges[2 * k + j + 1], edges[2 * k + j] + 1)
                image[h - height :, x0:x1] = (label_set.colors[k] * shade).astype(np.uint8)
    return image


def _enlarge(image, factor):
    return image.repeat(factor, axis=0).repeat(factor, axis=1)


def frame(label_set, mask, image, target, top=1.0):
    """One column: the mask in class colours, its image (or none), target / achieved bars;
    uint8 [H + H + H/2, W, 3] (H, W: the mask's size enlarged to MIN_SIDE); bars scaled by
    `top` (the largest proportion of the demo)."""
    from models.palette.estimator import proportions

    factor = max(1, -(-MIN_SIDE // min(mask.shape)))
    panels = [_enlarge(label_set.colorize(mask), factor)]  # [H, W, 3]
    if image is not None:
        panels.append(_enlarge(image, factor))  # the image has the mask's size
    height, width = panels[0].shape[:2]
    achieved = proportions(mask, label_set.num_classes)
    panels.append(proportion_bars(label_set, target, achieved, (height // 2, width), top))
    return np.concatenate(panels, axis=0)


def write_strip_and_gif(frames, png_path, gif_path, frame_ms=GIF_FRAME_MS):
    """The frames side by side (GAP px apart) as a PNG, and as the frames of a looping GIF."""
    height, width = frames[0].shape[:2]
    strip = np.full((height, len(frames) * (width + GAP) - GAP, 3), 255, np.uint8)
    for i, picture in enumerate(frames):
        strip[:, i * (width + GAP) : i * (width + GAP) + width] = picture
    core_io.save_image_atomic(strip, png_path)
    images = [Image.fromarray(picture) for picture in frames]
    # Back and forth, so the loop has no jump.
    sequence = images + images[-2:0:-1]
    with core_io.atomic_write(gif_path, "wb", encoding=None) as file:
        sequence[0].save(
            file,
            format="GIF",
            save_all=True,
            append_images=sequence[1:],
            duration=frame_ms,
            loop=0,
        )
    return strip


def _render(generator, image_fn, label_set, palettes, z, seed):
    """Frames for palettes [S, C] and layout latents z [S, d] (one generator call)."""
    _, masks = generator(palettes, z)  # [S, h, w] uint8
    images = None
    if image_fn is not None:
        masks = resize_layouts(masks, image_fn.image_size)  # [S, H, W]
        synthesizer, z_image = image_fn.synthesizer, None
        if synthesizer.use_vae:  # one SPADE z for every frame: only the palette or z moves
            z_image = np.random.default_rng([seed, 2]).standard_normal(synthesizer.z_dim)
            z_image = np.repeat(z_image[None].astype(np.float32), len(masks), axis=0)
        images = synthesizer(masks, z=z_image)  # [S, H, W, 3]
    from models.palette.estimator import proportions

    top = max(float(palettes.max()), float(proportions(masks, label_set.num_classes).max()))
    return [
        frame(label_set, masks[i], None if images is None else images[i], palettes[i], top)
        for i in range(len(palettes))
    ]


def partial_edits(label_set):
    """[(title, class index)] of the sheet's rows for label_set."""
    edits = [(title, name) for title, name in PARTIAL_EDITS if name in label_set.names]
    if not edits:
        edits = [(f"more {name}", name) for name in label_set.names[:3]]
    return [(title, list(label_set.names).index(name)) for title, name in edits]


def _text(image, xy, text):
    ImageDraw.Draw(image).text(xy, text, fill=(0, 0, 0))


def partial_sheet(editor, image_fn, label_set, layout, *, seed=0):
    """The partial-editing sheet: uint8 [HEADER + R (h + GAP) - GAP, LABEL_WIDTH + 3 w + 2 GAP,
    3] for R = len(partial_edits(label_set)) rows of cells of w x h (the layout, and its image
    below it when image_fn is given, enlarged to MIN_SIDE); and the edits made.

    Args:
        editor: a models.palette.export.PartialEditor.
        image_fn: a LayoutImageSynthesizer, or None (layouts only).
        label_set: the layouts' LabelSet.
        layout: uint8 [H, W] train ids at the editor's size.
        seed: seeds the partial generator's z and SPADE's.
    """
    height, width = layout.shape
    band = bands_lib.parse_band(
        [int(round(fraction * width)) for fraction in PARTIAL_BAND], width, "the sheet's band"
    )
    edits = partial_edits(label_set)
    count = len(edits)
    layouts = np.repeat(layout[None], count, axis=0)  # [R, H, W]
    masses = bands_lib.band_mass_np(layout[None], band, label_set.num_classes)  # [1, C]
    changes = np.concatenate(
        [
            bands_lib.resolve_changes(
                {k: PARTIAL_AMOUNT * (masses[0].sum() - masses[0, k])}, masses, label_set.names
            )
            for _, k in edits
        ]
    )  # [R, C]
    rng = np.random.default_rng([seed, 3])
    z = np.repeat(rng.standard_normal((1, editor.z_dim)).astype(np.float32), count, axis=0)
    edited = editor(layouts, [band] * count, changes, z)["layout"]  # [R, H, W]
    cells = {"input": layouts, "edited": edited}
    images = {}
    if image_fn is not None:
        cells = {key: resize_layouts(value, image_fn.image_size) for key, value in cells.items()}
        synthesizer, z_image = image_fn.synthesizer, None
        if synthesizer.use_vae:  # one SPADE z for every image: only the layout differs
            z_image = rng.standard_normal((1, synthesizer.z_dim)).astype(np.float32)
            z_image = np.repeat(z_image, count, axis=0)
        images = {key: synthesizer(value, z=z_image) for key, value in cells.items()}
    factor = max(1, -(-MIN_SIDE // min(cells["input"].shape[1:])))
    scale = cells["input"].shape[2] / width  # the masks' columns per layout column

    def cell(key, row, shaded=False):
        panels = [label_set.colorize(cells[key][row])]  # [H', W', 3]
        if images:
            panels.append(images[key][row])
        picture = np.concatenate(panels, axis=0)
        if shaded:
            x0, x1 = int(round(band[0] * scale)), int(round(band[1] * scale))
            picture = picture.copy()
            picture[:, x0:x1] = (picture[:, x0:x1] * BAND_SHADE).astype(np.uint8)
        return _enlarge(picture, factor)

    first = cell("input", 0)
    cell_h, cell_w = first.shape[:2]
    sheet = Image.new(
        "RGB",
        (LABEL_WIDTH + 3 * cell_w + 2 * GAP, HEADER + count * (cell_h + GAP) - GAP),
        (255, 255, 255),
    )
    for column, title in enumerate(("input", "band", "edited")):
        _text(sheet, (LABEL_WIDTH + column * (cell_w + GAP) + 2, 1), title)
    summary = []
    for row, (title, k) in enumerate(edits):
        top = HEADER + row * (cell_h + GAP)
        change = float(changes[row, k])
        _text(sheet, (2, top + 2), title)
        _text(sheet, (2, top + 16), f"{label_set.names[k]} {change:+.3f}")
        for column, picture in enumerate(
            (cell("input", row), cell("input", row, shaded=True), cell("edited", row))
        ):
            sheet.paste(Image.fromarray(picture), (LABEL_WIDTH + column * (cell_w + GAP), top))
        summary.append({"title": title, "class": label_set.names[k], "change": change})
    return np.asarray(sheet), {"band": list(band), "edits": summary}


def demo_palettes(label_set, layout_source, *, palettes_path=None, estimator_path=None, seed=0):
    """The two palettes A and B of the demos: the first two of a palette file, or two draws
    from the estimator (a file with one palette gets B from the estimator)."""
    given = np.zeros((0, label_set.num_classes), np.float32)
    if palettes_path:
        given = load_palettes(palettes_path, label_set)[:2]
    if len(given) == 2:
        return given
    try:
        estimator = load_palette_estimator(layout_source, label_set, estimator_path)
    except PaletteError as error:
        raise PaletteError(
            f"the demos need two palettes: {error} (a --palettes file with two or more)"
        ) from None
    drawn = estimator.sample(2 - len(given), np.random.default_rng([seed, 1]))
    return np.concatenate([given, drawn]).astype(np.float32)


def write_demos(
    out_dir,
    *,
    layout_source,
    spade_checkpoint_dir=None,
    spade_saved_model=None,
    palettes_path=None,
    estimator_path=None,
    steps=8,
    level=None,
    seed=0,
    overwrite=False,
    partial_source=None,
    log=print,
):
    """Writes the demos of the module docstring to out_dir; returns demos.json's content.

    Args:
        out_dir: the folder (its demo files are refused when they exist, unless overwrite).
        layout_source: a palette run directory or a layout SavedModel.
        spade_checkpoint_dir / spade_saved_model: the image synthesizer (optional: without
            one the demos show layouts only).
        palettes_path: palettes A and B (the first two rows; else drawn from the estimator).
        estimator_path: the estimator to draw from (default: the layout run's).
        steps: frames per interpolation (>= 2).
        level: the layout level (default the run's / export's).
        seed: seeds the latents, the drawn palettes and SPADE's noise.
        partial_source: a stage=partial run or a SavedModel with serve_partial, for the
            partial-editing sheet (of the layouts' label set; none: the sheet is skipped).
    """
    from models.palette.export import LayoutGenerator

    if steps < 2:
        raise PaletteError(f"--demo_steps={steps}: an interpolation needs at least 2 frames")
    if spade_checkpoint_dir and spade_saved_model:
        raise PaletteError("give one of --spade_checkpoint_dir and --spade_saved_model")
    paths = {name: os.path.join(out_dir, name) for name in DEMO_FILES}
    if partial_source:
        paths[PARTIAL_FILE] = os.path.join(out_dir, PARTIAL_FILE)
    core_io.check_overwrite(list(paths.values()), overwrite, remedy="another --output_dir")
    generator = LayoutGenerator(layout_source, level=level)
    label_set = generator_label_set(generator)
    editor = None
    if partial_source:
        from models.palette.export import PartialEditor

        editor = PartialEditor(partial_source, flag="--partial_checkpoint_dir")
        if tuple(editor.class_names) != tuple(label_set.names):
            raise PaletteError(
                f"--partial_checkpoint_dir={partial_source} edits layouts of "
                f"{editor.label_set_name!r}, the layout model makes {label_set.name!r}"
            )
        if abs(editor.width / editor.height - generator.width / generator.height) > 1e-6:
            raise PaletteError(
                f"--partial_checkpoint_dir={partial_source} edits {editor.height}x"
                f"{editor.width} layouts, the layout model makes {generator.height}x"
                f"{generator.width}: another aspect ratio"
            )
    image_fn = None
    if spade_checkpoint_dir or spade_saved_model:
        image_fn = LayoutImageSynthesizer(
            spade_checkpoint_dir,
            spade_saved_model,
            label_set=label_set,
            layout_size=(generator.height, generator.width),
        )
    start, end = demo_palettes(
        label_set,
        layout_source,
        palettes_path=palettes_path,
        estimator_path=estimator_path,
        seed=seed,
    )
    rng = np.random.default_rng([seed, 0])
    z0, z1 = rng.standard_normal((2, generator.z_dim)).astype(np.float32)
    os.makedirs(out_dir, exist_ok=True)

    palettes = interpolate_palettes(start, end, steps)  # [S, C]
    frames = _render(generator, image_fn, label_set, palettes, np.repeat(z0[None], steps, 0), seed)
    write_strip_and_gif(
        frames, paths["palette_interpolation.png"], paths["palette_interpolation.gif"]
    )
    latents = slerp(z0, z1, steps)  # [S, d]
    frames = _render(
        generator, image_fn, label_set, np.repeat(start[None], steps, 0), latents, seed
    )
    write_strip_and_gif(
        frames, paths["latent_interpolation.png"], paths["latent_interpolation.gif"]
    )
    partial, skipped = None, [PARTIAL_SKIPPED]
    if editor is not None:
        # The sheet edits the layout of palette A and z0, at the partial model's size.
        _, layout = generator(start[None], z0[None])  # [1, h, w]
        layout = resize_layouts(layout, (editor.height, editor.width))[0]  # [H, W]
        sheet, partial = partial_sheet(editor, image_fn, label_set, layout, seed=seed)
        core_io.save_image_atomic(sheet, paths[PARTIAL_FILE])
        partial["partial_source"] = os.path.abspath(partial_source)
        skipped = []
    else:
        log(PARTIAL_SKIPPED)
    summary = {
        "layout_source": os.path.abspath(layout_source),
        "level": generator.level,
        "layout_size": [generator.height, generator.width],
        "image_source": image_fn.source if image_fn else None,
        "class_names": list(label_set.names),
        "palette_a": start.tolist(),
        "palette_b": end.tolist(),
        "palettes_from": os.path.abspath(palettes_path) if palettes_path else "estimator",
        "steps": steps,
        "seed": seed,
        "files": {name: path for name, path in paths.items() if name != "demos.json"},
        "partial_editing": partial,
        "skipped": skipped,
    }
    core_io.write_json_atomic(paths["demos.json"], summary, indent=1)
    for name, path in paths.items():
        if name != "demos.json":
            log(f"Wrote {path}")
    return summary
