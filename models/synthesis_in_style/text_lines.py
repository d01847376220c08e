"""Text lines from a segmentation's class map: component outlines, line grouping, hulls, boxes.

What segment.py --page_xml writes into PAGE XML (models.synthesis_in_style.page_xml), following
the Synthesis-in-Style reference's segment_image.py (numpy and Pillow only, no OpenCV):

1. per text class, the pixels of that class whose probability is at least min_confidence
   (reference: 0.7), closed morphologically (a closing_size square: joins strokes a few pixels
   apart, as the reference's 5 x 5 closing);
2. their 8-connected components; components under min_area pixels are dropped (reference: 10;
   it measured the contour's polygon area, we count pixels);
3. each component's outer boundary, traced clockwise through the centres of its boundary pixels
   (Moore-neighbour tracing, what OpenCV's findContours returns for the outer contour; holes are
   not traced), straight runs reduced to their end points;
4. components chained into lines left to right: starting from the leftmost component not yet
   in a line, the nearest component to the right that starts after the line's right end,
   overlaps the line's rows (touching counts) and is at most max_gap pixels away joins, and the
   line's box grows; until none is left;
5. merge_mode: "none" (each component's outline is a line of its own, the reference's default),
   "convex_hull" (the convex hull of a line's outlines) or "min_area_bbox" (the minimum-area
   rotated rectangle around them, by rotating calipers over the hull's edges, widened by half a
   pixel on each side so that it holds the pixels, not only their centres).

Points are (x, y) pixel coordinates, integers, inside the image; a polygon has >= 3 points.

Example:
    lines = text_line_polygons(prediction, [1, 2], confidence=probs.max(-1),
                               merge_mode="convex_hull", max_gap=int(0.05 * width))
    for line in lines:
        print(line.class_id, line.points.tolist())  # [[x, y], ...]
"""

from __future__ import annotations

import dataclasses

import numpy as np

from core.masks import component_stats, connected_components

MERGE_MODES = ("none", "min_area_bbox", "convex_hull")

# The 8 neighbours clockwise on the screen (y grows downwards), starting east.
_STEPS = np.array([(1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1)])
# After a step in direction d, the neighbour examined just before (background by construction),
# seen from the new pixel: STEPS[d - 1] - STEPS[d] is always the direction _BACKTRACK[d].
_BACKTRACK = np.array([(2 * (d // 2) + 6) % 8 for d in range(8)])


def _next_direction_table() -> np.ndarray:
    """[256, 8]: for a neighbour code (bit d: neighbour d is foreground) and the backtrack
    direction b, the first foreground direction clockwise after b (-1: an isolated pixel)."""
    table = np.full((256, 8), -1, dtype=np.int64)
    for code in range(256):
        for back in range(8):
            for offset in range(1, 8):
                direction = (back + offset) % 8
                if code >> direction & 1:
                    table[code, back] = direction
                    break
    return table


_NEXT = _next_direction_table()


@dataclasses.dataclass
class TextLine:
    """One text line (or one component with merge_mode="none").

    Attributes:
        class_id: the class of the line's pixels.
        points: [n, 2] int64 polygon (x, y), n >= 3, inside the image.
    """

    class_id: int
    points: np.ndarray


def _neighbour_codes(mask: np.ndarray) -> np.ndarray:
    """[H, W] uint8: bit d set where the neighbour in direction d is in the mask."""
    padded = np.pad(mask, 1)
    height, width = mask.shape
    codes = np.zeros((height, width), dtype=np.uint8)
    for direction, (dx, dy) in enumerate(_STEPS):
        neighbour = padded[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]  # [H, W]
        codes |= neighbour.astype(np.uint8) << direction
    return codes


def trace_outline(mask: np.ndarray) -> np.ndarray:
    """Outer boundary of the (single, 8-connected) component in mask, clockwise.

    Args:
        mask: [H, W] bool holding one 8-connected component.

    Returns:
        [n, 2] int64 (x, y) centres of its boundary pixels, starting at its first pixel in raster
        order, without the points inside straight runs. One pixel gives one point.
    """
    mask = np.asarray(mask, dtype=bool)
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        raise ValueError("trace_outline: the mask is empty")
    codes = _neighbour_codes(mask)
    start = (int(cols[0]), int(rows[0]))  # the first pixel in raster order
    # Its west neighbour is background (nothing comes before it): the initial backtrack.
    direction = int(_NEXT[codes[start[1], start[0]], 4])
    if direction < 0:
        return np.array([start], dtype=np.int64)
    first_direction = direction
    points = []
    x, y = start
    previous = -1
    for _ in range(8 * rows.size + 8):  # a boundary pixel is entered at most 8 times
        if direction != previous:  # a corner: keep it (straight runs keep only their ends)
            points.append((x, y))
        previous = direction
        x, y = x + int(_STEPS[direction, 0]), y + int(_STEPS[direction, 1])
        direction = int(_NEXT[codes[y, x], _BACKTRACK[direction]])
        # Jacob's criterion: back at the start, about to repeat the first step.
        if (x, y) == start and direction == first_direction:
            break
    else:
        raise RuntimeError("trace_outline: the boundary did not close (a bug)")
    return np.array(points, dtype=np.int64)  # [n, 2]


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Convex hull of points (Andrew's monotone chain), clockwise on the screen.

    Returns [h, 2] hull vertices (the input's dtype) without collinear points; h < 3 for
    collinear input.
    """
    points = np.asarray(points)
    points = np.unique(points.reshape(-1, 2), axis=0)  # sorted by x, then y
    if len(points) < 3:
        return points

    def half(sequence):
        """Indices into sequence of the hull chain that turns clockwise on the screen."""
        chain = []
        for index, point in enumerate(sequence):
            while len(chain) >= 2:
                a, b = sequence[chain[-2]], sequence[chain[-1]]
                if (b[0] - a[0]) * (point[1] - a[1]) - (b[1] - a[1]) * (point[0] - a[0]) <= 0:
                    chain.pop()
                else:
                    break
            chain.append(index)
        return chain

    backwards = points[::-1]
    lower, upper = half(points), half(backwards)
    return np.concatenate([points[lower[:-1]], backwards[upper[:-1]]])  # [h, 2]


def min_area_rectangle(points: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """Corners [4, 2] float64 of the minimum-area rectangle around points (rotating calipers:
    the best rectangle has a side on an edge of the convex hull), each side moved outwards by
    margin."""
    hull = convex_hull(points).astype(np.float64)
    if len(hull) < 3:
        low, high = np.min(points, axis=0) - margin, np.max(points, axis=0) + margin
        return np.array([low, (high[0], low[1]), high, (low[0], high[1])], dtype=np.float64)
    edges = np.roll(hull, -1, axis=0) - hull  # [h, 2]
    along = edges / np.linalg.norm(edges, axis=1, keepdims=True)  # [h, 2] unit edge directions
    across = np.stack([-along[:, 1], along[:, 0]], axis=1)  # [h, 2] their normals
    u = hull @ along.T  # [h points, h edges] coordinates along each edge
    v = hull @ across.T  # [h points, h edges] and across it
    areas = (u.max(0) - u.min(0)) * (v.max(0) - v.min(0))  # [h edges]
    best = int(np.argmin(areas))
    u0, u1 = u[:, best].min() - margin, u[:, best].max() + margin
    v0, v1 = v[:, best].min() - margin, v[:, best].max() + margin
    a, n = along[best], across[best]
    return np.array([a * u0 + n * v0, a * u1 + n * v0, a * u1 + n * v1, a * u0 + n * v1])


def _as_polygon(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """Integer polygon inside the image with >= 3 points (a degenerate one becomes its box)."""
    points = np.rint(np.asarray(points, dtype=np.float64)).astype(np.int64).reshape(-1, 2)
    points[:, 0] = np.clip(points[:, 0], 0, width - 1)
    points[:, 1] = np.clip(points[:, 1], 0, height - 1)
    if len(np.unique(points, axis=0)) >= 3:
        return points
    (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
    return np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], dtype=np.int64)


def group_into_lines(boxes: np.ndarray, max_gap: int) -> list[list[int]]:
    """Chains boxes left to right into lines (step 4 of the module docstring).

    Args:
        boxes: [n, 4] (row0, col0, row1, col1) inclusive, as core.masks.component_stats.
        max_gap: the largest horizontal gap (pixels between the line's right end and the next
            box) that still joins.

    Returns:
        Lists of box indices, each a line in left-to-right order.
    """
    boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    free = np.ones(len(boxes), dtype=bool)
    order = np.lexsort((boxes[:, 0], boxes[:, 1]))  # by left edge, then top
    lines = []
    for first in order:
        if not free[first]:
            continue
        free[first] = False
        line = [int(first)]
        top, _, bottom, right = boxes[first]
        while True:
            candidates = np.flatnonzero(
                free
                & (boxes[:, 1] > right)
                & (boxes[:, 0] <= bottom + 1)
                & (boxes[:, 2] >= top - 1)
            )
            if candidates.size == 0:
                break
            nearest = int(candidates[np.argmin(boxes[candidates, 1])])
            if boxes[nearest, 1] - right - 1 > max_gap:
                break
            free[nearest] = False
            line.append(nearest)
            top, bottom = min(top, boxes[nearest, 0]), max(bottom, boxes[nearest, 2])
            right = max(right, boxes[nearest, 3])
        lines.append(line)
    return lines


def _square_filter(mask: np.ndarray, size: int, reduce, outside: bool) -> np.ndarray:
    """Max (np.logical_or) or min (np.logical_and) over size x size squares, separably: one
    pass along the rows, one along the columns (PIL's rank filter is ~20x slower on pages)."""
    radius = size // 2
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius, radius)
        padded = np.pad(mask, pad, constant_values=outside)
        length = mask.shape[axis]
        result = np.take(padded, np.arange(length), axis=axis)
        for shift in range(1, size):
            result = reduce(result, np.take(padded, np.arange(shift, shift + length), axis=axis))
        mask = result
    return mask


def _close(mask: np.ndarray, size: int) -> np.ndarray:
    """Morphological closing by a size x size square (size odd; <= 1: unchanged). Outside the
    image counts as foreground for the erosion, so the closing never removes a pixel."""
    if size <= 1:
        return mask
    dilated = _square_filter(mask, size, np.logical_or, outside=False)
    return _square_filter(dilated, size, np.logical_and, outside=True) | mask


def text_line_polygons(
    class_map: np.ndarray,
    class_ids,
    *,
    confidence: np.ndarray | None = None,
    min_confidence: float = 0.7,
    merge_mode: str = "none",
    max_gap: int = 0,
    min_area: int = 10,
    closing_size: int = 5,
) -> list[TextLine]:
    """The text lines of a class map, as polygons (the module docstring's steps).

    Args:
        class_map: [H, W] int class ids (a segmentation's argmax).
        class_ids: the text classes to trace.
        confidence: [H, W] float probability of each pixel's class, or None (all kept).
        min_confidence: pixels below it are not text.
        merge_mode: "none", "convex_hull" or "min_area_bbox".
        max_gap: horizontal gap in px that still joins components into a line (reference:
            5% of the page width).
        min_area: components with fewer pixels are dropped.
        closing_size: side of the closing square (odd; 0 or 1: none).

    Returns:
        TextLines sorted top to bottom, then left to right.
    """
    if merge_mode not in MERGE_MODES:
        raise ValueError(f"merge_mode must be one of {MERGE_MODES}, got {merge_mode!r}")
    if closing_size > 1 and closing_size % 2 == 0:
        raise ValueError(f"closing_size must be odd, got {closing_size}")
    class_map = np.asarray(class_map)
    height, width = class_map.shape
    confident = None if confidence is None else np.asarray(confidence) >= min_confidence
    lines, tops = [], []
    for class_id in class_ids:
        mask = class_map == class_id
        if confident is not None:
            mask &= confident
        components, count = connected_components(_close(mask, closing_size))
        if count == 0:
            continue
        areas, boxes = component_stats(components, count)
        kept = np.flatnonzero(areas >= min_area)
        outlines = {}
        for index in kept:
            row0, col0, row1, col1 = boxes[index]
            crop = components[row0 : row1 + 1, col0 : col1 + 1] == index + 1  # [h, w]
            outlines[int(index)] = trace_outline(crop) + np.array([col0, row0])  # [n, 2] (x, y)
        if merge_mode == "none":
            groups = [[int(index)] for index in kept]
        else:
            lines_of_kept = group_into_lines(boxes[kept], max_gap)  # indices into kept
            groups = [[int(kept[i]) for i in line] for line in lines_of_kept]
        for group in groups:
            points = np.concatenate([outlines[index] for index in group])  # [n, 2]
            if merge_mode == "convex_hull":
                points = convex_hull(points)
            elif merge_mode == "min_area_bbox":
                # Around the pixels, not their centres: rounding the corners then loses none.
                points = min_area_rectangle(points, margin=0.5)
            polygon = _as_polygon(points, width, height)
            lines.append(TextLine(int(class_id), polygon))
            tops.append((int(boxes[group, 0].min()), int(boxes[group, 1].min())))
    order = sorted(range(len(lines)), key=lambda i: tops[i])
    return [lines[i] for i in order]


__all__ = [
    "MERGE_MODES",
    "TextLine",
    "convex_hull",
    "group_into_lines",
    "min_area_rectangle",
    "text_line_polygons",
    "trace_outline",
]
