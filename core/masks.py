"""Connected components of binary masks and their COCO run-length encoding (numpy only).

Used by the synthetic pair writer (COCO ground truth of datasets.synthetic_pairs), the
Synthesis-in-Style mask rule and document exports.
"""

from __future__ import annotations

import numpy as np


def connected_components(mask: np.ndarray, connectivity: int = 8) -> tuple[np.ndarray, int]:
    """Labels the connected components of a boolean mask.

    Args:
        mask: [H, W] bool (or 0 / non-zero).
        connectivity: 8 (diagonal neighbours connect, like OpenCV contours) or 4.

    Returns:
        (labels [H, W] int32 with 0 = outside the mask and 1..n in raster order of each
        component's first pixel, n).
    """
    mask = np.asarray(mask).astype(bool)
    if mask.ndim != 2:
        raise ValueError(f"connected_components: mask must be [H, W], got {list(mask.shape)}")
    if connectivity not in (4, 8):
        raise ValueError(f"connected_components: connectivity must be 4 or 8, got {connectivity}")
    height, width = mask.shape
    labels = np.zeros((height, width), dtype=np.int32)
    pixels = np.flatnonzero(mask)  # [n] raster indices of the mask's pixels
    if pixels.size == 0:
        return labels, 0
    node = np.full(height * width, -1, dtype=np.int64)
    node[pixels] = np.arange(pixels.size)
    node = node.reshape(height, width)
    # Horizontal runs are components already: start every node at its run's first node, so the
    # union rounds below only work on the (far fewer) runs.
    run_starts = np.ones(pixels.size, dtype=bool)
    run_starts[1:] = (np.diff(pixels) != 1) | (pixels[1:] % width == 0)
    parent = np.flatnonzero(run_starts)[np.cumsum(run_starts) - 1]  # [n]
    # Edges between vertically / diagonally adjacent mask pixels (row r and r + 1).
    shifts = [(0, 0)] if connectivity == 4 else [(0, 0), (0, 1), (1, 0)]
    sources, targets = [], []
    for upper_col0, lower_col0 in shifts:  # column offsets of the upper / lower row slices
        cols = width - (upper_col0 or lower_col0)
        upper = node[:-1, upper_col0 : upper_col0 + cols]  # [H-1, cols]
        lower = node[1:, lower_col0 : lower_col0 + cols]  # [H-1, cols]
        both = (upper >= 0) & (lower >= 0)
        sources.append(upper[both])
        targets.append(lower[both])
    sources, targets = np.concatenate(sources), np.concatenate(targets)
    # Hook the larger root under the smaller one, then compress paths fully; every round at
    # least halves the number of trees that still have an edge to another tree. parent[i] <= i
    # always holds, so no cycle can form.
    while sources.size:
        source_roots, target_roots = parent[sources], parent[targets]
        apart = source_roots != target_roots
        if not apart.any():
            break
        sources, targets = sources[apart], targets[apart]
        low = np.minimum(source_roots[apart], target_roots[apart])
        high = np.maximum(source_roots[apart], target_roots[apart])
        np.minimum.at(parent, high, low)
        while True:
            grandparent = parent[parent]
            if np.array_equal(grandparent, parent):
                break
            parent = grandparent
    # A component's root is its smallest node, i.e. its first pixel in raster order.
    _, component = np.unique(parent, return_inverse=True)
    labels.ravel()[pixels] = component.astype(np.int32) + 1
    return labels, int(component.max()) + 1


def component_stats(labels: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Areas [count] and boxes [count, 4] (row0, col0, row1, col1 inclusive) of labels 1..count."""
    rows, cols = np.nonzero(labels)
    ids = labels[rows, cols] - 1
    areas = np.bincount(ids, minlength=count)
    boxes = np.empty((count, 4), dtype=np.int64)
    boxes[:, 0] = labels.shape[0]
    boxes[:, 1] = labels.shape[1]
    boxes[:, 2:] = -1
    np.minimum.at(boxes[:, 0], ids, rows)
    np.minimum.at(boxes[:, 1], ids, cols)
    np.maximum.at(boxes[:, 2], ids, rows)
    np.maximum.at(boxes[:, 3], ids, cols)
    return areas, boxes


def mask_to_rle(mask: np.ndarray) -> dict:
    """Uncompressed COCO RLE of a [h, w] bool mask: column-major run lengths, zeros first."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")  # [h * w], column-major
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0] + counts
    return {"counts": counts, "size": [int(mask.shape[0]), int(mask.shape[1])]}


def rle_to_mask(rle: dict) -> np.ndarray:
    """Inverse of mask_to_rle: {"counts", "size": [h, w]} -> [h, w] bool."""
    height, width = rle["size"]
    values = np.arange(len(rle["counts"])) % 2 == 1  # runs alternate 0, 1, 0, ...
    flat = np.repeat(values, rle["counts"])
    return flat.reshape((width, height)).T
