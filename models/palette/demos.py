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

The partial-editing sheet (input | band | edited, for deltas such as "more vegetation") needs a
partial-editing model, which this version does not train (PaletteConfig stage=partial is not
implemented): it is skipped, and demos.json says so.

Example:
    write_demos("outputs/palette_demos", layout_source="runs/palette",
                spade_checkpoint_dir="runs/spade_streets", steps=8)
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from core import io as core_io
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
PARTIAL_SKIPPED = (
    "partial editing sheet skipped: no partial-editing model (PaletteConfig stage=partial is "
    "not implemented in this version)"
)


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
    """
    from models.palette.export import LayoutGenerator

    if steps < 2:
        raise PaletteError(f"--demo_steps={steps}: an interpolation needs at least 2 frames")
    if spade_checkpoint_dir and spade_saved_model:
        raise PaletteError("give one of --spade_checkpoint_dir and --spade_saved_model")
    paths = {name: os.path.join(out_dir, name) for name in DEMO_FILES}
    core_io.check_overwrite(list(paths.values()), overwrite, remedy="another --output_dir")
    generator = LayoutGenerator(layout_source, level=level)
    label_set = generator_label_set(generator)
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
        "skipped": [PARTIAL_SKIPPED],
    }
    core_io.write_json_atomic(paths["demos.json"], summary, indent=1)
    for name in DEMO_FILES[:-1]:
        log(f"Wrote {paths[name]}")
    return summary
