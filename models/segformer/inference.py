"""Inference of a segmenter on images of any size: sliding windows or the whole (padded) image.

A segmenter sees a fixed-size crop in training (512 px for SegFormer on ADE20K); larger images
are covered by overlapping tiles whose class probabilities are averaged where they overlap
(SegFormer's Cityscapes protocol: 1024 px tiles, stride 768). SegFormer predicts at 1/4
resolution: each tile's softmax probabilities are upsampled (bilinear, half-pixel centres as
PyTorch's align_corners=False) to the tile size before they are accumulated.

Example:
    probs = predict_probs(segmenter.predict_logits, image, 19, tile=(1024, 1024), overlap=0.25)
    prediction = probs.argmax(-1)  # [H, W]
"""

from __future__ import annotations

import numpy as np


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
            raise ValueError(f"stride {stride} must not exceed --tile_size {tile}: the tiles "
                             "would leave gaps")
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
    if logits.shape.rank != 4 or logits.shape[0] != batch.shape[0] or (
        logits.shape[-1] != num_classes
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


def predict_probs(predict_fn, image, num_classes: int, *, mode: str = "slide",
                  tile=(512, 512), stride=None, overlap=None, batch_size: int = 4,
                  size_divisor: int = 32) -> np.ndarray:
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
