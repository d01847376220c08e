"""Inference of a segmenter on images of any size: sliding windows or the whole (padded) image.

A segmenter sees a fixed-size crop in training (512 px for SegFormer on ADE20K); larger images
are covered by overlapping tiles whose class probabilities are averaged where they overlap
(SegFormer's Cityscapes protocol: 1024 px tiles, stride 768). SegFormer predicts at 1/4
resolution: each tile's softmax probabilities are upsampled (bilinear, half-pixel centres as
PyTorch's align_corners=False) to the tile size before they are accumulated.

Example:
    probs = predict_probs(segmenter.predict_logits, image, 19, tile=(1024, 1024), overlap=0.25)
    prediction = probs.argmax(-1)  # [H, W]

segment_images() applies this to image files (segment.py): class-id, colour and overlay PNGs,
with ground truth the metrics of evaluation.segmentation_metrics, and with page_xml=True a PAGE
XML file of the text lines per page (models.synthesis_in_style.page_xml). Pages larger than
max_image_size are shrunk before tiling and their prediction enlarged back (nearest).
"""

from __future__ import annotations

import glob
import os

import numpy as np

from core import io as core_io
from core.errors import UserError


def _pair(value, flag: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        value = (value, value)
    try:
        height, width = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(
            f"{flag} must be an int or a (height, width) pair, got {value!r}"
        ) from None
    if height < 1 or width < 1:
        raise ValueError(f"{flag} must be positive, got {value!r}")
    return height, width


def tile_origins(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets of tiles of size `tile` covering [0, length) with step `stride`.

    The last tile is aligned to the border (it may overlap its neighbour by more than the
    others); a length not larger than the tile gives one tile at 0 (the caller pads).
    """
    if length <= tile:
        return [0]
    origins = list(range(0, length - tile, stride))
    origins.append(length - tile)
    return origins


def _stride(tile: tuple[int, int], stride, overlap) -> tuple[int, int]:
    if stride is not None and overlap is not None:
        raise ValueError("pass either stride or --overlap, not both")
    if stride is not None:
        stride = _pair(stride, "stride")
        if stride[0] > tile[0] or stride[1] > tile[1]:
            raise ValueError(
                f"stride {stride} must not exceed --tile_size {tile}: the tiles would leave gaps"
            )
        return stride
    overlap = 0.25 if overlap is None else overlap
    if not 0.0 <= float(overlap) < 1.0:
        raise ValueError(f"--overlap must lie in [0, 1), got {overlap}")
    return tuple(max(1, int(round(size * (1.0 - float(overlap))))) for size in tile)


def check_tiling(tile, size_divisor: int = 32, overlap=None, stride=None) -> None:
    """Raises ValueError (naming --tile_size / --overlap) for settings predict_probs refuses."""
    tile = _pair(tile, "--tile_size")
    if size_divisor < 1:
        raise ValueError(f"size_divisor must be positive, got {size_divisor}")
    if tile[0] % size_divisor or tile[1] % size_divisor:
        raise ValueError(
            f"--tile_size={tile[0] if tile[0] == tile[1] else tile} must be a multiple of "
            f"{size_divisor} (the network's total stride)"
        )
    _stride(tile, stride, overlap)


def _softmax_probs(predict_fn, batch: np.ndarray, num_classes: int) -> np.ndarray:
    """predict_fn on [B, h, w, 3] -> softmax probabilities at the input size [B, h, w, C]."""
    # Imported here so that CLIs check --tile_size / --overlap without TensorFlow's start-up.
    import tensorflow as tf

    logits = tf.convert_to_tensor(predict_fn(batch))
    if (
        logits.shape.rank != 4
        or logits.shape[0] != batch.shape[0]
        or (logits.shape[-1] != num_classes)
    ):
        raise ValueError(
            f"predict_fn returned logits of shape {logits.shape.as_list()} for a batch of shape "
            f"{list(batch.shape)}; expected [{batch.shape[0]}, h, w, {num_classes}]"
        )
    # Mixed-precision logits overflow float16 in the softmax's exp.
    probs = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)  # [B, h', w', C]
    if tuple(probs.shape[1:3]) != tuple(batch.shape[1:3]):
        probs = tf.image.resize(probs, batch.shape[1:3], method="bilinear")  # [B, h, w, C]
    return probs.numpy()


def predict_probs(
    predict_fn,
    image,
    num_classes: int,
    *,
    mode: str = "slide",
    tile=(512, 512),
    stride=None,
    overlap=None,
    batch_size: int = 4,
    size_divisor: int = 32,
) -> np.ndarray:
    """Class probabilities of one image of any size.

    Args:
        predict_fn: maps a float32 batch [B, h, w, 3] to logits [B, h', w', C], at 1/4
            resolution (SegFormer) or any other (upsampled bilinearly to h, w).
        image: [H, W, 3] float32, already normalised as predict_fn expects (zero is what pads).
        num_classes: C, the number of logit channels.
        mode: "slide": overlapping tiles, batched, probabilities averaged where tiles overlap;
            "whole": the image padded (bottom/right) to a multiple of size_divisor in one call.
        tile: (height, width) of a tile (or one int), a multiple of size_divisor; an image
            smaller than a tile is padded up to it and the padding cropped off again.
        stride: step between tiles, (height, width) or int; or give overlap instead.
        overlap: fraction of a tile shared with its neighbour, in [0, 1) (default 0.25:
            stride = 3/4 tile). The last tile of a row / column is aligned to the border.
        batch_size: tiles per predict_fn call.
        size_divisor: the network's total stride (32 for MiT).

    Returns:
        [H, W, C] float32 probabilities (each pixel sums to 1).
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be [H, W, 3], got shape {list(image.shape)}")
    height, width = image.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f"image is empty: shape {list(image.shape)}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    if batch_size < 1:
        raise ValueError(f"--batch_size must be >= 1, got {batch_size}")
    if size_divisor < 1:
        raise ValueError(f"size_divisor must be positive, got {size_divisor}")

    if mode == "whole":
        padded_height = -(-height // size_divisor) * size_divisor
        padded_width = -(-width // size_divisor) * size_divisor
        padded = np.pad(image, ((0, padded_height - height), (0, padded_width - width), (0, 0)))
        probs = _softmax_probs(predict_fn, padded[None], num_classes)  # [1, H', W', C]
        return np.ascontiguousarray(probs[0, :height, :width])  # [H, W, C]
    if mode != "slide":
        raise ValueError(f"--mode must be 'slide' or 'whole', got {mode!r}")

    check_tiling(tile, size_divisor, overlap=overlap, stride=stride)
    tile_height, tile_width = _pair(tile, "--tile_size")
    stride_height, stride_width = _stride((tile_height, tile_width), stride, overlap)
    padded_height, padded_width = max(height, tile_height), max(width, tile_width)
    padded = np.pad(image, ((0, padded_height - height), (0, padded_width - width), (0, 0)))
    origins = [
        (y, x)
        for y in tile_origins(padded_height, tile_height, stride_height)
        for x in tile_origins(padded_width, tile_width, stride_width)
    ]
    prob_sum = np.zeros((padded_height, padded_width, num_classes), np.float32)  # [H', W', C]
    count = np.zeros((padded_height, padded_width, 1), np.float32)  # [H', W', 1]
    for start in range(0, len(origins), batch_size):
        chunk = origins[start : start + batch_size]
        batch = np.stack(
            [padded[y : y + tile_height, x : x + tile_width] for y, x in chunk]
        )  # [B, th, tw, 3]
        probs = _softmax_probs(predict_fn, batch, num_classes)  # [B, th, tw, C]
        for (y, x), tile_probs in zip(chunk, probs):
            prob_sum[y : y + tile_height, x : x + tile_width] += tile_probs
            count[y : y + tile_height, x : x + tile_width] += 1.0
    return prob_sum[:height, :width] / count[:height, :width]  # [H, W, C]


# ==============================================================================================
# Segmenting image files (segment.py)
# ==============================================================================================

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
OUTPUT_SUFFIXES = ("", "_color", "_overlay")  # <stem>.png, <stem>_color.png, <stem>_overlay.png
PAGE_SUFFIXES = (".xml", "_contours.png")  # <stem>.xml, <stem>_contours.png (page_xml=True)
REPORT_FILES = ("metrics.csv", "confusion.png")  # written with ground truth
SIZE_DIVISOR = 32  # total stride of the MiT encoder


class SegmentError(UserError):
    """Settings or inputs of segment_images that cannot work; the message names the flag."""


def check_segment_args(
    input_path,
    *,
    checkpoint_dir=None,
    saved_model=None,
    mode: str = "slide",
    tile_size: int = 512,
    overlap: float = 0.25,
    batch_size: int = 4,
    gt_dir=None,
    max_image_size: int = 0,
    merge_mode: str = "none",
    max_diff_percentage: float = 0.05,
    min_confidence: float = 0.7,
) -> None:
    """Raises SegmentError for settings segment_images refuses (before any file is read)."""
    if not input_path:
        raise SegmentError("--input is required (an image, a folder or a glob pattern)")
    if bool(checkpoint_dir) == bool(saved_model):
        raise SegmentError("pass exactly one of --checkpoint_dir and --saved_model")
    if batch_size < 1:
        raise SegmentError(f"--batch_size must be >= 1, got {batch_size}")
    if mode == "slide":
        try:
            check_tiling(tile_size, SIZE_DIVISOR, overlap=overlap)
        except ValueError as error:
            raise SegmentError(str(error)) from None
    if gt_dir and not os.path.isdir(gt_dir):
        raise SegmentError(f"--gt_dir={gt_dir} is not a directory")
    if max_image_size < 0 or 0 < max_image_size < SIZE_DIVISOR:
        raise SegmentError(
            f"--max_image_size must be 0 (never shrink) or at least {SIZE_DIVISOR}, got "
            f"{max_image_size}"
        )
    if merge_mode not in ("none", "min_area_bbox", "convex_hull"):
        raise SegmentError(
            f"--merge_mode must be none, min_area_bbox or convex_hull, got {merge_mode!r}"
        )
    if not 0.0 <= max_diff_percentage <= 1.0:
        raise SegmentError(f"--max_diff_percentage must lie in [0, 1], got {max_diff_percentage}")
    if not 0.0 <= min_confidence <= 1.0:
        raise SegmentError(f"--min_confidence must lie in [0, 1], got {min_confidence}")


def _is_image(path: str) -> bool:
    return os.path.isfile(path) and path.lower().endswith(IMAGE_EXTENSIONS)


def _json_list_entries(path: str) -> list[str]:
    """The image paths a JSON list names, as written (the caller resolves them).

    Accepted: ["a.png", ...] (the Synthesis-in-Style reference's lists), [{"file_name": ...}]
    or [{"image": ...}] entries, and {"pairs": [...]} / {"images": [...]} objects of those
    (our pair lists).
    """
    where = f"--input={path}"
    data = core_io.read_json_list(path, where)
    if isinstance(data, dict):
        data = data.get("pairs", data.get("images"))
    if not isinstance(data, list) or not data:
        raise SegmentError(
            f"{where}: expected a non-empty JSON list of image paths (or of objects with "
            '"file_name" / "image"), or {"pairs": [...]}'
        )
    entries = []
    for index, entry in enumerate(data):
        if isinstance(entry, dict):
            entry = entry.get("file_name", entry.get("image"))
        if not isinstance(entry, str) or not entry:
            raise SegmentError(
                f"{where}: entry {index} is {data[index]!r}, not a path or an object with "
                '"file_name" / "image"'
            )
        entries.append(entry)
    return entries


def resolve_inputs(pattern: str) -> list[str]:
    """The image files named by --input (a file, a folder, a glob or a JSON list of images
    whose relative paths start at the list's folder): folders and globs sorted, lists in
    their order."""
    from datasets.pairs import DatasetNotFoundError

    if pattern.lower().endswith(".json") and os.path.isfile(pattern):
        paths = core_io.resolve_listed(_json_list_entries(pattern), pattern, f"--input={pattern}")
        not_images = [path for path in paths if not path.lower().endswith(IMAGE_EXTENSIONS)]
        if not_images:
            raise SegmentError(
                f"--input={pattern} lists files that are not images ({', '.join(IMAGE_EXTENSIONS)}"
                f"): {core_io.list_some(not_images)}"
            )
        return list(dict.fromkeys(paths))

    if os.path.isdir(pattern):
        paths = sorted(
            os.path.join(pattern, name)
            for name in os.listdir(pattern)
            if _is_image(os.path.join(pattern, name))
        )
        if not paths:
            raise SegmentError(
                f"--input={pattern} is a folder without images ({', '.join(IMAGE_EXTENSIONS)})"
            )
        return paths
    if os.path.isfile(pattern):
        return [pattern]
    if any(char in pattern for char in "*?["):
        paths = sorted(path for path in glob.glob(pattern, recursive=True) if _is_image(path))
        if not paths:
            raise SegmentError(f"--input={pattern} matches no image files")
        return paths
    raise DatasetNotFoundError(f"--input={pattern} does not exist")


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def output_paths(
    inputs: list[str], output_dir: str, *, page_xml: bool = False
) -> dict[str, list[str]]:
    """input path -> its output paths (ids, colour, overlay PNGs, then with page_xml the
    PAGE XML and the contours preview); refuses clashing stems and outputs over inputs."""
    by_stem = {}
    for path in inputs:
        by_stem.setdefault(_stem(path), []).append(path)
    clashing = [paths for paths in by_stem.values() if len(paths) > 1]
    if clashing:
        raise SegmentError(
            f"--input holds images with the same stem, whose outputs would clash: "
            f"{core_io.list_some(' / '.join(paths) for paths in clashing)}"
        )
    suffixes = [f"{suffix}.png" for suffix in OUTPUT_SUFFIXES]
    suffixes += list(PAGE_SUFFIXES) if page_xml else []
    outputs = {
        path: [os.path.join(output_dir, f"{_stem(path)}{suffix}") for suffix in suffixes]
        for path in inputs
    }
    owner = {}
    for path, paths in outputs.items():
        for out in paths:
            if out in owner:
                raise SegmentError(
                    f"the outputs of {owner[out]} and {path} would both be {out}; rename one"
                )
            owner[out] = path
    real_inputs = {os.path.realpath(path): path for path in inputs}
    overwritten = [
        real_inputs[os.path.realpath(out)] for out in owner if os.path.realpath(out) in real_inputs
    ]
    if overwritten:
        raise SegmentError(
            f"--output_dir={output_dir} would overwrite input images "
            f"{core_io.list_some(overwritten)}; choose another output directory"
        )
    return outputs


def _image_size(path: str, what: str) -> tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels."""
    from PIL import Image

    from datasets.pairs import DatasetError

    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DatasetError(f"cannot read {what} {path}: {error}") from None


def match_ground_truth(inputs: list[str], gt_dir: str) -> dict[str, str]:
    """input path -> its label map in --gt_dir (<stem>_seg.png, else <stem>.png), same size."""
    from datasets.pairs import DatasetError

    matched, unmatched = {}, []
    for path in inputs:
        stem = _stem(path)
        candidates = [os.path.join(gt_dir, f"{stem}_seg.png"), os.path.join(gt_dir, f"{stem}.png")]
        found = [c for c in candidates if os.path.isfile(c)]
        if found:
            matched[path] = found[0]
        else:
            unmatched.append(stem)
    if unmatched:
        raise DatasetError(
            f"--gt_dir={gt_dir} has no label map (<stem>.png or <stem>_seg.png) for "
            f"{len(unmatched)} of {len(inputs)} images: {core_io.list_some(unmatched)}"
        )
    for path, label_path in matched.items():
        image_size = _image_size(path, "image")
        label_size = _image_size(label_path, "label map")
        if image_size != label_size:
            raise DatasetError(
                f"label map {label_path} is {label_size[0]}x{label_size[1]} but image {path} is "
                f"{image_size[0]}x{image_size[1]} (width x height)"
            )
    return matched


def _label_set(semantic_label_path, segmenter):
    from semantic_labels import load_label_set

    name = semantic_label_path or segmenter.label_set_name
    if not name:
        raise SegmentError("the model names no label set; pass --semantic_label_path")
    label_set = load_label_set(name)
    if label_set.num_classes != segmenter.num_classes:
        flag = (
            ("--semantic_label_path=" + name)
            if semantic_label_path
            else (f"the model's label set {name!r}")
        )
        raise SegmentError(
            f"{flag} has {label_set.num_classes} classes but the model predicts "
            f"{segmenter.num_classes}"
        )
    return label_set


def _ground_truth_ids(
    label_path: str, prediction_shape, image_path: str, segmenter, num_classes: int, dontcare_id
) -> np.ndarray:
    """The label map of label_path as the model's train ids [H, W] uint8 (255 = ignore)."""
    from datasets.pairs import DatasetError
    from datasets.pipeline import load_label_map

    label = load_label_map(label_path)  # [H, W] uint8
    table = getattr(segmenter, "label_map", None)
    if table is not None:
        # Raw file values -> the run's train ids (e.g. Cityscapes labelIds, ADE20K's
        # reduce-zero-label), as in training; -1 marks values of no class.
        table = np.asarray(table)
        unknown = np.unique(label[table[label] < 0])
        if unknown.size:
            values = core_io.list_some(map(str, unknown.tolist()))
            raise DatasetError(
                f"label map {label_path} holds values {values} that belong to no class of the "
                "model's dataset"
            )
        label = table[label].astype(np.uint8)
    if label.shape != prediction_shape:
        raise DatasetError(
            f"label map {label_path} has shape {list(label.shape)} but "
            f"image {image_path} {list(prediction_shape)}"
        )
    invalid = np.unique(label[(label >= num_classes) & (label != 255)])
    if invalid.size:
        values = core_io.list_some(map(str, invalid.tolist()))
        raise DatasetError(
            f"label map {label_path} holds values {values} outside the model's classes "
            f"[0, {num_classes - 1}] (255 = ignore)"
        )
    if dontcare_id is not None:
        label = np.where(label == dontcare_id, 255, label).astype(np.uint8)
    return label


def shrink_to(image: np.ndarray, max_size: int) -> np.ndarray:
    """image [H, W, 3] uint8 shrunk (aspect kept, bicubic, as PIL's thumbnail) so that its
    longer side is at most max_size; unchanged when it fits or max_size is 0."""
    from PIL import Image

    height, width = image.shape[:2]
    if not max_size or max(height, width) <= max_size:
        return image
    scale = max_size / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))  # (w, h)
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC))


def enlarge_to(values: np.ndarray, shape) -> np.ndarray:
    """[h, w] uint8 class ids or float32 values resized (nearest) to shape (H, W)."""
    from PIL import Image

    if tuple(values.shape) == tuple(shape):
        return values
    mode_values = values.astype(np.float32) if values.dtype != np.uint8 else values
    resized = Image.fromarray(mode_values).resize((shape[1], shape[0]), Image.Resampling.NEAREST)
    return np.asarray(resized).astype(values.dtype)


def _write_page_outputs(
    image_path,
    paths,
    prediction,
    confidence,
    colors,
    class_names,
    line_classes,
    *,
    merge_mode,
    max_gap,
    min_confidence,
):
    """<stem>.xml (PAGE) and <stem>_contours.png of one segmented page."""
    from models.synthesis_in_style.page_xml import draw_lines, page_xml
    from models.synthesis_in_style.text_lines import text_line_polygons

    xml_path, contours_path = paths
    lines = text_line_polygons(
        prediction,
        line_classes,
        confidence=confidence,
        min_confidence=min_confidence,
        merge_mode=merge_mode,
        max_gap=max_gap,
    )
    height, width = prediction.shape
    document = page_xml(
        lines,
        class_names=class_names,
        image_filename=os.path.basename(image_path),
        width=width,
        height=height,
    )
    with core_io.atomic_write(xml_path) as file:
        file.write(document)
    core_io.save_image_atomic(draw_lines(colors, lines), contours_path)


def segment_images(
    input_path: str,
    output_dir: str = "outputs/segmented",
    *,
    checkpoint_dir=None,
    saved_model=None,
    mode: str = "slide",
    tile_size: int = 512,
    overlap: float = 0.25,
    batch_size: int = 4,
    gt_dir=None,
    semantic_label_path=None,
    ignore_dontcare: bool = True,
    overwrite: bool = False,
    load_segmenter=None,
    max_image_size: int = 3000,
    page_xml: bool = False,
    merge_mode: str = "none",
    max_diff_percentage: float = 0.05,
    min_confidence: float = 0.7,
    text_classes=None,
):
    """Segments image files with a SegFormer; with ground truth, also scores them.

    Every input image gives <stem>.png (class ids, 8-bit grey), <stem>_color.png (the label
    set's colours) and <stem>_overlay.png (50% blend) under output_dir. With gt_dir the
    per-class IoU, Dice, precision, recall, mIoU and pixel accuracy over all images are
    printed and written to output_dir/metrics.csv and confusion.png.

    With page_xml, every image also gives <stem>.xml (PAGE XML, 2019 schema: a TextRegion per
    text class, a TextLine per line polygon; models.synthesis_in_style.page_xml) and
    <stem>_contours.png (the colours with the line polygons drawn in white).

    Args:
        input_path: an image file, a folder (its images, not recursive), a glob pattern or a
            JSON list of image paths (relative to the list's folder).
        output_dir: where the PNGs (and metrics) go.
        checkpoint_dir: a SegFormer run directory; or give saved_model (an export).
        saved_model: an exported SegFormer SavedModel.
        mode: "slide" (overlapping tiles, probabilities averaged) or "whole" (the image padded
            to a multiple of 32, one pass).
        tile_size: side of the square tiles of mode="slide" (px, a multiple of 32).
        overlap: fraction of a tile shared with its neighbour, in [0, 1).
        batch_size: tiles per forward pass.
        gt_dir: ground-truth label maps matched by stem (<stem>.png or <stem>_seg.png; 255 =
            ignore); enables the metrics.
        semantic_label_path: label set for colours and class names (default: the model's).
        ignore_dontcare: with gt_dir, ignore the label set's dontcare class (ADE20K "other")
            and leave it out of the means.
        overwrite: start over, replacing existing output files. Without it a rerun with the
            same settings resumes (skips the images done, core.io.OutputProgress), and other
            existing outputs are refused.
        load_segmenter: (checkpoint_dir=None, saved_model=None) -> segmenter with
            .num_classes, .label_set_name, .preprocess(uint8 [B, H, W, 3]) and
            .predict_logits(float32 [B, h, w, 3]) -> logits [B, h/4, w/4, C]; default
            models.segformer.export.load_segmenter (tests pass a fake).
        max_image_size: an image whose longer side exceeds it is shrunk to it (aspect kept,
            bicubic) before segmenting, and the prediction enlarged back (nearest): outputs and
            metrics are at the original size. 0: never shrink. (The reference: 3000.)
        page_xml: also write the PAGE XML and the contours preview.
        merge_mode: how a line's components become its polygon: "none" (one TextLine per
            component), "convex_hull" or "min_area_bbox" (models.synthesis_in_style.text_lines).
        max_diff_percentage: components at most this fraction of the image width apart (along
            a line) join one line.
        min_confidence: text pixels need at least this class probability.
        text_classes: class names traced into lines (default: those whose name holds "text",
            else all but the first).

    Returns:
        The metrics dict of metrics_from_confusion with gt_dir, else None.
    """
    check_segment_args(
        input_path,
        checkpoint_dir=checkpoint_dir,
        saved_model=saved_model,
        mode=mode,
        tile_size=tile_size,
        overlap=overlap,
        batch_size=batch_size,
        gt_dir=gt_dir,
        max_image_size=max_image_size,
        merge_mode=merge_mode,
        max_diff_percentage=max_diff_percentage,
        min_confidence=min_confidence,
    )
    inputs = resolve_inputs(input_path)
    outputs = output_paths(inputs, output_dir, page_xml=page_xml)
    ground_truth = match_ground_truth(inputs, gt_dir) if gt_dir else {}
    report_paths = [os.path.join(output_dir, name) for name in REPORT_FILES]
    progress = core_io.OutputProgress.load(
        output_dir,
        {
            "inputs": [os.path.abspath(path) for path in inputs],
            "model": os.path.abspath(checkpoint_dir or saved_model or ""),
            "mode": mode,
            "tile_size": tile_size,
            "overlap": overlap,
            "semantic_label_path": semantic_label_path,
            "max_image_size": max_image_size,
            "page_xml": (
                {
                    "merge_mode": merge_mode,
                    "max_diff_percentage": max_diff_percentage,
                    "min_confidence": min_confidence,
                    "text_classes": list(text_classes) if text_classes else None,
                }
                if page_xml
                else None
            ),
        },
        overwrite,
    )
    if not progress.resuming:
        core_io.check_overwrite(
            [p for paths in outputs.values() for p in paths]
            + (report_paths if ground_truth else []),
            overwrite,
            remedy="another --output_dir",
        )

    # TensorFlow loads only now: flag and file errors above come without its start-up time.
    import keras
    from PIL import Image

    from datasets.pipeline import load_image
    from evaluation import segmentation_metrics as seg_metrics

    if load_segmenter is None:
        from models.segformer.export import load_segmenter
    segmenter = load_segmenter(checkpoint_dir=checkpoint_dir, saved_model=saved_model)
    num_classes = int(segmenter.num_classes)
    if num_classes > 256:
        raise SegmentError(
            f"the model predicts {num_classes} classes; the class-id PNGs are "
            "8-bit (at most 256 classes)"
        )
    label_set = _label_set(semantic_label_path, segmenter)
    if page_xml:
        from models.synthesis_in_style.page_xml import text_class_ids

        try:
            line_classes = text_class_ids(label_set.names, text_classes)
        except ValueError as error:
            raise SegmentError(str(error)) from None
    dontcare_id = label_set.dontcare_id if ignore_dontcare else None
    confusion = seg_metrics.ConfusionMatrix(num_classes) if ground_truth else None

    done = [path for path in inputs if all(progress.done(out) for out in outputs[path])]
    if progress.resuming:
        print(f"Resuming: {len(done)} of {len(inputs)} images in {output_dir} are done")
    progress.start()
    progbar = keras.utils.Progbar(len(inputs), unit_name="image")
    for path in inputs:
        ids_path, color_path, overlay_path = outputs[path][:3]
        if path in done:
            if confusion is not None:  # scored from the prediction written earlier
                prediction = np.asarray(Image.open(ids_path), dtype=np.uint8)
                label = _ground_truth_ids(
                    ground_truth[path], prediction.shape, path, segmenter, num_classes, dontcare_id
                )
                confusion.update(label, prediction)
            progbar.add(1)
            continue
        image = load_image(path)  # [H, W, 3] uint8
        shrunk = shrink_to(image, max_image_size)  # [h, w, 3], h, w <= max_image_size
        normalised = np.asarray(segmenter.preprocess(shrunk[None]), dtype=np.float32)[0]
        probs = predict_probs(
            segmenter.predict_logits,
            normalised,
            num_classes,
            mode=mode,
            tile=tile_size,
            overlap=overlap,
            batch_size=batch_size,
            size_divisor=SIZE_DIVISOR,
        )  # [h, w, C]
        prediction = probs.argmax(axis=-1).astype(np.uint8)  # [h, w]
        confidence = probs.max(axis=-1)  # [h, w]
        del probs
        prediction = enlarge_to(prediction, image.shape[:2])  # [H, W]
        colors = label_set.colorize(prediction)  # [H, W, 3]
        overlay = ((image.astype(np.uint16) + colors + 1) // 2).astype(np.uint8)  # [H, W, 3]
        if confusion is not None:
            label = _ground_truth_ids(
                ground_truth[path], prediction.shape, path, segmenter, num_classes, dontcare_id
            )
            confusion.update(label, prediction)
        core_io.save_image_atomic(prediction, ids_path)
        core_io.save_image_atomic(colors, color_path)
        core_io.save_image_atomic(overlay, overlay_path)
        if page_xml:
            _write_page_outputs(
                path,
                outputs[path][3:],
                prediction,
                enlarge_to(confidence, image.shape[:2]),
                colors,
                label_set.names,
                line_classes,
                merge_mode=merge_mode,
                max_gap=int(image.shape[1] * max_diff_percentage),
                min_confidence=min_confidence,
            )
        progress.add(outputs[path])
        progbar.add(1)
    print(f"Wrote {len(inputs) - len(done)} segmentations to {output_dir}")
    if confusion is None:
        progress.finish()
        return None

    cm = confusion.result()
    metrics = seg_metrics.metrics_from_confusion(
        cm, exclude_classes=() if dontcare_id is None else (dontcare_id,)
    )
    print(seg_metrics.format_table(metrics, label_set.names))
    seg_metrics.write_csv(metrics, label_set.names, report_paths[0])
    seg_metrics.plot_confusion(cm, label_set.names, report_paths[1])
    print(f"Wrote {report_paths[0]} and {report_paths[1]}")
    progress.finish()
    return metrics
