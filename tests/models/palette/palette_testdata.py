"""A tiny Cityscapes-layout tree of street-like layouts for the palette tests.

root/leftImg8bit/train/<city>/<x>_leftImg8bit.png and
root/gtFine/train/<city>/<x>_gtFine_labelIds.png with labelIds: sky (23) on top, buildings (11)
and vegetation (21) in the middle, road (7) and sidewalk (8) below, a few cars (26), and void
(0, ego vehicle: ignored) along the bottom. The horizon and the class widths vary per layout,
so their palettes differ.
"""

import os

import numpy as np
from PIL import Image

SKY, BUILDING, VEGETATION, ROAD, SIDEWALK, CAR, VOID = 23, 11, 21, 7, 8, 26, 0


def street_label_ids(rng, height=32, width=64):
    """One [H, W] uint8 map of Cityscapes labelIds."""
    label = np.full((height, width), ROAD, np.uint8)
    horizon = int(rng.integers(height // 4, height // 2))
    ground = int(rng.integers(horizon + 2, 3 * height // 4))
    label[:horizon] = SKY
    split = int(rng.integers(width // 4, 3 * width // 4))
    label[horizon:ground, :split] = BUILDING
    label[horizon:ground, split:] = VEGETATION
    label[ground:, : width // 6] = SIDEWALK
    for _ in range(int(rng.integers(0, 3))):
        x = int(rng.integers(0, width - 8))
        label[ground : ground + 3, x : x + 8] = CAR
    label[height - 2 :] = VOID
    return label


def make_cityscapes_layouts(root, count=8, height=32, width=64, seed=0, split="train"):
    """Writes `count` (image, labelIds) pairs under root in the Cityscapes layout; returns root."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        city = "aachen" if i % 2 == 0 else "bremen"
        stem = f"{city}_{i:06d}_000019"
        label = street_label_ids(rng, height, width)
        image_dir = os.path.join(root, "leftImg8bit", split, city)
        label_dir = os.path.join(root, "gtFine", split, city)
        os.makedirs(image_dir, exist_ok=True)
        os.makedirs(label_dir, exist_ok=True)
        image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        Image.fromarray(image).save(os.path.join(image_dir, f"{stem}_leftImg8bit.png"))
        Image.fromarray(label).save(os.path.join(label_dir, f"{stem}_gtFine_labelIds.png"))
    return str(root)


def tiny_palette_args(data_root, run_dir, *extra):
    """Command-line style arguments of a tiny palette training run on the fixture tree."""
    return [
        "--model=palette",
        "--preset=tiny",
        "--dataset=cityscapes",
        f"--data_root={data_root}",
        f"--checkpoint_dir={run_dir}",
        "--batch_size=2",
        "--num_levels=3",
        "--z_dim=8",
        "--channel_base=16",
        "--max_channels=8",
        "--fade_steps=2",
        "--stable_steps=2",
        "--max_components=3",
        "--progress=false",
        "--export=false",
        *extra,
    ]
