"""Random square tiles of page scans: step 1 of the Synthesis-in-Style pipeline.

Each page is first shrunk so that its longest side is at most `max_side`, then every tile
draws its own downscale factor in `downscale` (default 1-4x) that keeps the page's longest
side at least `min_side` (a page already smaller keeps its size), and a random position.
A tile is cut straight from the original scan in one resampling step (PIL's resize with a
source box), which equals shrinking the whole page first and cutting then, without resizing
every page once per tile.

Output (paths in the JSON files are relative to the JSON file, as the original tool wrote):

    output_dir/crops/000000.png ...     RGB tiles, crop_size x crop_size
    output_dir/train.json, val.json     ["crops/000000.png", ...], a seeded 90/10 split
    output_dir/crops_manifest.json      settings and, per tile, its page and source box
    with masks_dir also:
    output_dir/masks/000000.png ...     the same tiles of the masks (nearest resampling)
    output_dir/train_pairs.json, val_pairs.json
                                        {"pairs": [{"image", "label"}]} for segmentation

    python -m tools.crops --input_dir scans/ --output_dir data/crops --num_crops 5000
"""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np
from PIL import Image

from core.io import (
    IMAGE_EXTENSIONS,
    OutputProgress,
    find_files,
    list_some,
    save_image_atomic,
    write_json_atomic,
)

from .pairs import DatasetError, DatasetNotFoundError, _open_fully

CROPS_DIR, MASKS_DIR = "crops", "masks"
TRAIN_LIST, VAL_LIST = "train.json", "val.json"
TRAIN_PAIRS, VAL_PAIRS = "train_pairs.json", "val_pairs.json"
MANIFEST = "crops_manifest.json"
_OUTPUTS = (TRAIN_LIST, VAL_LIST, TRAIN_PAIRS, VAL_PAIRS, MANIFEST)


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _list_inputs(inputs, output_dir: str) -> tuple[list[str], str]:
    """(sorted page paths, description for messages) of a folder or a list of paths."""
    if isinstance(inputs, (str, os.PathLike)):
        directory = os.fspath(inputs)
        where = f"input folder {directory}"
        found = find_files(directory, IMAGE_EXTENSIONS, where, recursive=True)
        # Tiles written into a folder under the input folder are not pages.
        output = os.path.abspath(output_dir) + os.sep
        paths = sorted(p for p in found.values() if not os.path.abspath(p).startswith(output))
        if not paths:
            raise DatasetError(f"{where} has no images ({', '.join(IMAGE_EXTENSIONS)})")
        return paths, where
    paths = [os.fspath(path) for path in inputs]
    if not paths:
        raise DatasetError("no input images given")
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        raise DatasetNotFoundError(
            f"{len(missing)} input image(s) do not exist: {list_some(missing)}"
        )
    return paths, f"{len(paths)} input images"


def _match_masks(pages: list[str], inputs, masks_dir: str) -> list[str]:
    """The mask of every page: same stem (and sub-folder, for a folder input), .png."""
    if not os.path.isdir(masks_dir):
        raise DatasetNotFoundError(f"masks folder {masks_dir} does not exist")
    masks = find_files(masks_dir, (".png",), f"masks folder {masks_dir}", recursive=True)
    found, missing = [], []
    for page in pages:
        if isinstance(inputs, (str, os.PathLike)):
            key = os.path.relpath(os.path.splitext(page)[0], os.fspath(inputs))
            key = key.replace(os.sep, "/")
        else:
            key = os.path.splitext(os.path.basename(page))[0]
        if key in masks:
            found.append(masks[key])
        else:
            missing.append(page)
    if missing:
        raise DatasetNotFoundError(
            f"{len(missing)} page(s) have no mask (<stem>.png) in {masks_dir}: {list_some(missing)}"
        )
    return found


def _read_page(path: str) -> Image.Image:
    image = _open_fully(path, "page image")
    return image if image.mode == "RGB" else image.convert("RGB")


def _read_mask(path: str, page_path: str, size: tuple[int, int]) -> Image.Image:
    mask = _open_fully(path, "mask")
    if mask.mode == "P":
        mask = Image.fromarray(np.asarray(mask, np.uint8))  # palette indices are the ids
    elif mask.mode != "L":
        raise DatasetError(
            f"mask {path} has mode {mask.mode!r}: masks must be single-channel 8-bit PNGs "
            "(mode L) of class ids"
        )
    if mask.size != size:
        raise DatasetError(
            f"mask {path} is {mask.size[0]}x{mask.size[1]} but its page {page_path} is "
            f"{size[0]}x{size[1]} (width x height)"
        )
    return mask


def _page_size(path: str) -> tuple[int, int]:
    # Only the header: the pixels are decoded later, one page at a time.
    try:
        with Image.open(path) as image:
            return image.size
    except FileNotFoundError:
        raise DatasetNotFoundError(f"page image {path} does not exist") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DatasetError(f"cannot read page image {path}: {error}") from None


def scale_range(
    size: tuple[int, int],
    *,
    crop_size: int,
    max_side: int,
    min_side: int,
    downscale: tuple[float, float],
) -> tuple[float, float] | None:
    """Range (low, high) of the factors a page of `size` (w, h) is scaled by, or None.

    A factor is (shrink to max_side) / (downscale in [downscale[0], downscale[1]]), kept so that
    the longest side stays >= min_side (a smaller page is not downscaled) and a crop_size tile
    still fits. None: the page is smaller than one tile even before downscaling.
    """
    longest, shortest = max(size), min(size)
    shrink = min(1.0, max_side / longest)
    if shortest * shrink < crop_size:
        return None
    most = min(
        float(downscale[1]), max(1.0, longest * shrink / min_side), shortest * shrink / crop_size
    )
    least = min(float(downscale[0]), most)
    return shrink / most, shrink / least


def _output_dir_in_use(output_dir: str, overwrite: bool) -> bool:
    """Whether output_dir holds files; raises ValueError if it does and not overwrite."""
    if os.path.isfile(output_dir):
        raise ValueError(f"output_dir {output_dir} is a file")
    if not os.path.isdir(output_dir) or not os.listdir(output_dir):
        return False
    if not overwrite:
        raise ValueError(
            f"output_dir {output_dir} is not empty: choose an empty or new folder, or pass "
            "overwrite=True (--overwrite) to replace the tiles and lists written there"
        )
    return True


def _remove_previous_run(output_dir: str) -> None:
    """Removes only what an earlier run wrote: our lists and the numbered tiles."""
    for name in _OUTPUTS:
        path = os.path.join(output_dir, name)
        if os.path.isfile(path):
            os.remove(path)
    for folder in (CROPS_DIR, MASKS_DIR):
        folder = os.path.join(output_dir, folder)
        if os.path.isdir(folder):
            for name in os.listdir(folder):
                stem, extension = os.path.splitext(name)
                if extension == ".png" and stem.isdigit():
                    os.remove(os.path.join(folder, name))


def _write_json(path: str, value) -> None:
    write_json_atomic(path, value, indent=1)


def prepare_crops(
    input_dir=None,
    output_dir: str | None = None,
    *,
    input_paths=None,
    num_crops: int,
    crop_size: int = 256,
    max_side: int = 3000,
    min_side: int = 1000,
    downscale: tuple[float, float] = (1.0, 4.0),
    val_fraction: float = 0.1,
    seed: int = 0,
    masks_dir: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Cuts random square tiles from page scans and writes them with train / val lists.

    Args:
        input_dir: a folder of pages, searched recursively (.png .jpg .jpeg .bmp .webp);
            a list of page paths is accepted here too.
        output_dir: where crops/, the lists and the manifest go; must be empty or new
            unless overwrite, or hold a killed run of the same settings (resumed: the tiles
            done are kept; core.io.OutputProgress).
        input_paths: a list of page paths, instead of input_dir.
        num_crops: number of tiles, spread evenly over the pages (seeded).
        crop_size: tile side in pixels.
        max_side: pages are first shrunk to this longest side.
        min_side: downscaling keeps the longest side at least this long.
        downscale: (low, high) range of the random downscale factor per tile, low >= 1.
        val_fraction: share of tiles in val.json, in [0, 1).
        seed: seeds the tile positions, factors and the split.
        masks_dir: optional folder of 8-bit class-id masks named like the pages (.png);
            their tiles go to masks/ with nearest resampling, plus the pair lists.
        overwrite: start over: replace an earlier run's tiles and lists in output_dir.
        progress: print a counter on stderr.

    Returns:
        {"train": path of train.json, "val": path of val.json, "num_train", "num_val",
         "train_pairs", "val_pairs" (paths or None without masks), "skipped": [page paths]}.
    """
    if (input_dir is None) == (input_paths is None):
        raise ValueError("give exactly one of input_dir and input_paths")
    if output_dir is None:
        raise ValueError("output_dir is required")
    inputs = input_dir if input_dir is not None else list(input_paths)
    num_crops = _positive_int(num_crops, "num_crops")
    crop_size = _positive_int(crop_size, "crop_size")
    max_side = _positive_int(max_side, "max_side")
    min_side = _positive_int(min_side, "min_side")
    if max_side < crop_size:
        raise ValueError(f"max_side={max_side} must be >= crop_size={crop_size}")
    if min_side > max_side:
        raise ValueError(f"min_side={min_side} must be <= max_side={max_side}")
    low, high = (float(v) for v in downscale)
    if not 1.0 <= low <= high:
        raise ValueError(f"downscale must be (low, high) with 1 <= low <= high, got {downscale!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in [0, 1), got {val_fraction!r}")

    settings = {
        "inputs": (
            os.path.abspath(inputs)
            if isinstance(inputs, (str, os.PathLike))
            else [os.path.abspath(path) for path in inputs]
        ),
        "num_crops": num_crops,
        "crop_size": crop_size,
        "max_side": max_side,
        "min_side": min_side,
        "downscale": [low, high],
        "val_fraction": val_fraction,
        "seed": seed,
        "masks_dir": os.path.abspath(masks_dir) if masks_dir else None,
    }
    # A rerun of a killed run (same settings) resumes: the tiles done are kept.
    progress = OutputProgress.load(output_dir, settings, overwrite)
    # Refuse before any slow work.
    in_use = False if progress.resuming else _output_dir_in_use(output_dir, overwrite)
    pages, where = _list_inputs(inputs, output_dir)
    masks = _match_masks(pages, inputs, masks_dir) if masks_dir else None
    sizes = [_page_size(path) for path in pages]
    ranges = [
        scale_range(
            size, crop_size=crop_size, max_side=max_side, min_side=min_side, downscale=(low, high)
        )
        for size in sizes
    ]
    usable = [k for k, r in enumerate(ranges) if r is not None]
    skipped = [pages[k] for k, r in enumerate(ranges) if r is None]
    if not usable:
        largest = max(range(len(pages)), key=lambda k: min(sizes[k]))
        raise DatasetError(
            f"crop_size={crop_size} is larger than every page of {where}: the largest, "
            f"{pages[largest]}, is {sizes[largest][0]}x{sizes[largest][1]} (width x height)"
        )
    for path in skipped:
        warnings.warn(f"skipping {path}: smaller than one {crop_size} px tile", stacklevel=2)
    if in_use:
        _remove_previous_run(output_dir)  # only now: bad inputs must not cost the old tiles
    progress.start()
    crops_dir = os.path.join(output_dir, CROPS_DIR)
    masks_out = os.path.join(output_dir, MASKS_DIR)
    os.makedirs(crops_dir, exist_ok=True)
    if masks:
        os.makedirs(masks_out, exist_ok=True)

    rng = np.random.default_rng(seed)
    # Even share per page; the remainder goes to pages chosen by the seed.
    counts = np.full(len(usable), num_crops // len(usable))
    counts[rng.permutation(len(usable))[: num_crops % len(usable)]] += 1
    interactive = progress and sys.stderr.isatty()
    report_every = max(1, num_crops // (100 if interactive else 10))
    records, index = [], 0
    for page_index, count in zip(usable, counts.tolist()):
        if not count:
            continue
        # The positions depend on the page's size only: a resumed run decodes a page only
        # when one of its tiles is missing.
        page = mask = None
        smallest_scale, largest_scale = ranges[page_index]
        width, height = sizes[page_index]
        for _ in range(count):
            # Uniform in the downscale factor, not in its inverse.
            scale = 1.0 / rng.uniform(1.0 / largest_scale, 1.0 / smallest_scale)
            scaled_w, scaled_h = int(width * scale), int(height * scale)
            # Whole pixels of the downscaled page, as if it had been resized first.
            x = int(rng.integers(0, max(scaled_w - crop_size, 0) + 1))
            y = int(rng.integers(0, max(scaled_h - crop_size, 0) + 1))
            box = (
                x / scale,
                y / scale,
                min((x + crop_size) / scale, width),
                min((y + crop_size) / scale, height),
            )
            name = f"{index:06d}.png"
            tile_paths = [os.path.join(crops_dir, name)]
            if masks:
                tile_paths.append(os.path.join(masks_out, name))
            if not all(progress.done(path) for path in tile_paths):
                if page is None:
                    page = _read_page(pages[page_index])
                    if masks:
                        mask = _read_mask(masks[page_index], pages[page_index], page.size)
                tile = page.resize((crop_size, crop_size), Image.Resampling.LANCZOS, box=box)
                save_image_atomic(tile, tile_paths[0])
                if masks:
                    save_image_atomic(
                        mask.resize((crop_size, crop_size), Image.Resampling.NEAREST, box=box),
                        tile_paths[1],
                    )
                progress.add(tile_paths)
            records.append(
                {
                    "file": f"{CROPS_DIR}/{name}",
                    "source": pages[page_index],
                    "box": [round(v, 3) for v in box],
                    "scale": round(scale, 6),
                }
            )
            index += 1
            if progress and (index == num_crops or index % report_every == 0):
                line = f"crops: {index}/{num_crops} written to {crops_dir}"
                sys.stderr.write("\r" + line if interactive else line + "\n")
                sys.stderr.flush()
    if interactive:
        sys.stderr.write("\n")

    num_val = int(round(num_crops * val_fraction))
    if val_fraction > 0 and num_crops > 1:
        num_val = min(max(num_val, 1), num_crops - 1)
    order = rng.permutation(num_crops)
    val_ids = set(order[:num_val].tolist())
    train_ids = [k for k in range(num_crops) if k not in val_ids]
    val_ids = sorted(val_ids)
    result = {
        "train": os.path.join(output_dir, TRAIN_LIST),
        "val": os.path.join(output_dir, VAL_LIST),
        "num_train": len(train_ids),
        "num_val": len(val_ids),
        "train_pairs": None,
        "val_pairs": None,
        "skipped": skipped,
    }
    for key, ids in (("train", train_ids), ("val", val_ids)):
        _write_json(result[key], [records[k]["file"] for k in ids])
    if masks:
        for key, name, ids in (
            ("train_pairs", TRAIN_PAIRS, train_ids),
            ("val_pairs", VAL_PAIRS, val_ids),
        ):
            result[key] = os.path.join(output_dir, name)
            _write_json(
                result[key],
                {
                    "pairs": [
                        {"image": records[k]["file"], "label": f"{MASKS_DIR}/{k:06d}.png"}
                        for k in ids
                    ]
                },
            )
    _write_json(
        os.path.join(output_dir, MANIFEST),
        {
            "format": "semsynth-crops/1",
            "settings": {
                "num_crops": num_crops,
                "crop_size": crop_size,
                "max_side": max_side,
                "min_side": min_side,
                "downscale": [low, high],
                "val_fraction": val_fraction,
                "seed": seed,
                "masks_dir": os.fspath(masks_dir) if masks_dir else None,
            },
            "skipped": skipped,
            "crops": records,
        },
    )
    progress.finish()
    return result
