"""The README's overview picture, from the outputs of `bash run.sh demo`.

    python bench/overview_figure.py [--runs=runs] [--output=docs/images/overview.png]

Three panels, each a file the demo wrote, scaled up with nearest-neighbour sampling and
captioned: SPADE's last sample grid (label map | real | synthesized, held-out scenes),
SegFormer's (image | ground truth | prediction), and Synthesis in Style (StyleGAN2 samples,
synthetic image / mask pairs, a held-out page segmented by the SegFormer trained on them).
It reads only PNGs (no TensorFlow); a missing file is an error naming it and the demo command.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys

from PIL import Image, ImageDraw

PANEL_HEIGHT = 384  # px of each panel's image area
CAPTION_HEIGHT = 28
GAP = 12
BACKGROUND = (255, 255, 255)


def _latest(pattern):
    paths = sorted(glob.glob(pattern))
    if not paths:
        sys.exit(f"overview_figure: error: no file matches {pattern}; run `bash run.sh demo` first")
    return paths[-1]


def _scaled(image, height):
    """`image` scaled to `height` px (nearest neighbour: the tiny presets' pixels stay sharp)."""
    width = max(1, round(image.width * height / image.height))
    return image.convert("RGB").resize((width, height), Image.NEAREST)


def _row(images, height, gap=4):
    """Images side by side at one height."""
    scaled = [_scaled(image, height) for image in images]
    row = Image.new(
        "RGB", (sum(i.width for i in scaled) + gap * (len(scaled) - 1), height), BACKGROUND
    )
    x = 0
    for image in scaled:
        row.paste(image, (x, 0))
        x += image.width + gap
    return row


def _panel(image, caption):
    """`image` with a caption line above it."""
    panel = Image.new("RGB", (image.width, image.height + CAPTION_HEIGHT), BACKGROUND)
    panel.paste(image, (0, CAPTION_HEIGHT))
    ImageDraw.Draw(panel).text((2, 6), caption, fill=(0, 0, 0))
    return panel


def synthesis_in_style_strip(run_dir, height):
    """StyleGAN2 samples | synthetic pairs (image over colour mask) | a segmented real page."""
    samples = Image.open(_latest(os.path.join(run_dir, "samples", "step_*.png")))
    pairs = []
    for index in range(4):
        name = f"{index:06d}.png"
        image = Image.open(os.path.join(run_dir, "dataset", "images", name))
        mask = Image.open(os.path.join(run_dir, "dataset", "masks_colour", name))
        column = Image.new("RGB", (image.width, 2 * image.height), BACKGROUND)
        column.paste(image.convert("RGB"), (0, 0))
        column.paste(mask.convert("RGB"), (0, image.height))
        pairs.append(column)
    page = Image.open(_latest(os.path.join(run_dir, "segmented", "*_overlay.png")))
    return _row([samples, _row(pairs, 2 * pairs[0].height, gap=1), page], height)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs", help="The demo's runs/ folder.")
    parser.add_argument("--output", default=os.path.join("docs", "images", "overview.png"))
    args = parser.parse_args(argv)
    spade = Image.open(_latest(os.path.join(args.runs, "demo", "samples", "step_*.png")))
    segformer = Image.open(
        _latest(os.path.join(args.runs, "demo_segformer", "samples", "step_*.png"))
    )
    panels = [
        _panel(_scaled(spade, PANEL_HEIGHT), "SPADE: label map | real | synthesized"),
        _panel(_scaled(segformer, PANEL_HEIGHT), "SegFormer: image | truth | predicted"),
        _panel(
            synthesis_in_style_strip(os.path.join(args.runs, "demo_stylegan2"), PANEL_HEIGHT),
            "Synthesis in Style: StyleGAN2 samples | synthetic image / mask pairs | "
            "a real page segmented by a SegFormer trained on them",
        ),
    ]
    width = sum(p.width for p in panels) + GAP * (len(panels) - 1)
    figure = Image.new("RGB", (width, PANEL_HEIGHT + CAPTION_HEIGHT), BACKGROUND)
    x = 0
    for panel in panels:
        figure.paste(panel, (x, 0))
        x += panel.width + GAP
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    figure.save(args.output, optimize=True)
    print(f"Wrote {args.output} ({figure.width} x {figure.height})")


if __name__ == "__main__":
    main()
