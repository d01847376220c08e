"""Procedural document pages with ink labels: the built-in data of the Synthesis-in-Style pipeline.

`render_page(seed, height, width)` draws a scanned-looking page: paper with low-frequency
shading, fibres, yellowing and sometimes stains; printed text in blocks (headers, paragraphs in
one or two columns, sub-headings, page numbers) set in the DejaVu / Computer Modern fonts that
matplotlib ships; handwriting-like strokes (smooth random pen trajectories with loops, slant,
pen lifts, varying width and blue / black / brown ink) as margin notes, lines between
paragraphs and annotations over the print; then a slight skew, scanner blur and noise.

The mask labels ink, not boxes, as in the Synthesis-in-Style ground truth
(semantic_labels/documents.json): 1 where a printed glyph covers the pixel, 2 where a pen stroke
does (handwriting on top of print wins), 0 everywhere else, stains included.

`generate_documents(root, ...)` writes pages and masks as PNG files plus a manifest, once:

    python -m tools.documents --root data/documents --num_train 40 --num_val 10
"""

from __future__ import annotations

import functools
import json
import os
import string

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from core.io import save_image_atomic, write_json_atomic

from .pairs import (
    DatasetError,
    DatasetNotFoundError,
    GenerationProgress,
    existing_generation,
    folder_pairs,
    write_manifest,
)

BACKGROUND, PRINTED_TEXT, HANDWRITTEN_TEXT = 0, 1, 2
LABEL_SET = "documents"  # semantic_labels/documents.json

# Bump when the drawing changes: generate_documents() then refuses folders of another version.
GENERATOR_VERSION = 1
MIN_SIZE = 32  # below this a page cannot hold a line of text
DEFAULT_HEIGHT, DEFAULT_WIDTH = 1024, 768
SPLITS = ("training", "validation")

_MANIFEST = "documents_manifest.json"
_INK_THRESHOLD = 128  # anti-aliased glyph coverage (0-255) from which a pixel counts as ink
_MIN_FONT_PX = 6  # smaller glyphs are unreadable blobs even on a tiny page

# Font files per family (regular, bold, italic) among matplotlib's bundled TTFs; a family whose
# regular face is missing is skipped.
_FONT_FAMILIES = {
    "serif": ("DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf"),
    "sans": ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf"),
    "mono": ("DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf"),
    "roman": ("cmr10.ttf", "cmb10.ttf", "cmti10.ttf"),
}
_FAMILY_WEIGHTS = {"serif": 0.4, "sans": 0.3, "mono": 0.1, "roman": 0.2}

# Pen inks (RGB in [0, 1]): blue, black, brown.
_HAND_INKS = ((0.10, 0.17, 0.55), (0.08, 0.08, 0.10), (0.36, 0.22, 0.10))
_HAND_INK_WEIGHTS = (0.5, 0.3, 0.2)

# English letter frequencies: pseudo-words then have a text-like rhythm of glyph shapes.
_LETTERS = np.array(list(string.ascii_lowercase))
_LETTER_FREQ = np.array(
    [
        8.2,
        1.5,
        2.8,
        4.3,
        12.7,
        2.2,
        2.0,
        6.1,
        7.0,
        0.15,
        0.77,
        4.0,
        2.4,
        6.7,
        7.5,
        1.9,
        0.1,
        6.0,
        6.3,
        9.1,
        2.8,
        0.98,
        2.4,
        0.15,
        2.0,
        0.07,
    ]
)
_LETTER_FREQ = _LETTER_FREQ / _LETTER_FREQ.sum()
_WORD_LENGTH_FREQ = np.array([3, 17, 21, 16, 11, 9, 8, 6, 4, 3, 2, 1], np.float64)
_WORD_LENGTH_FREQ = _WORD_LENGTH_FREQ / _WORD_LENGTH_FREQ.sum()  # lengths 1..12


class DocumentFontError(DatasetNotFoundError):
    """No usable TrueType font was found (a FileNotFoundError and a ValueError)."""


def _check_int(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


# ------------------------------------------------------------------------------------------
# Fonts
# ------------------------------------------------------------------------------------------


def font_dir() -> str:
    """Folder of matplotlib's bundled TrueType fonts (DejaVu, Computer Modern)."""
    try:
        import matplotlib
    except ImportError:
        raise DocumentFontError(
            "procedural documents need the TrueType fonts shipped with matplotlib, which is not "
            "installed (pip install matplotlib)"
        ) from None
    return os.path.join(matplotlib.get_data_path(), "fonts", "ttf")


@functools.cache
def available_families(directory: str | None = None) -> dict[str, tuple[str, str, str]]:
    """{family: (regular, bold, italic) font paths} found in `directory` (default font_dir()).

    A missing bold or italic face falls back to the regular one. Raises DocumentFontError
    naming the folder when no family is usable.
    """
    directory = directory or font_dir()
    families = {}
    for family, files in _FONT_FAMILIES.items():
        paths = [os.path.join(directory, name) for name in files]
        if not os.path.isfile(paths[0]):
            continue
        families[family] = tuple(path if os.path.isfile(path) else paths[0] for path in paths)
    if not families:
        wanted = ", ".join(files[0] for files in _FONT_FAMILIES.values())
        raise DocumentFontError(
            f"no TrueType fonts for the procedural documents in {directory}: expected one of "
            f"{wanted} (they ship with matplotlib; reinstall it if the folder is missing)"
        )
    return families


@functools.lru_cache(maxsize=256)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    try:
        return ImageFont.truetype(path, size)
    except OSError as error:
        raise DocumentFontError(f"cannot load font {path}: {error}") from None


# ------------------------------------------------------------------------------------------
# Paper
# ------------------------------------------------------------------------------------------


def _smooth_field(rng, height: int, width: int, cells: tuple[int, int]) -> np.ndarray:
    """Smooth random field [H, W] float32 in about [0, 1]: a coarse grid, bicubic upsampled."""
    grid = rng.random(cells, dtype=np.float32)
    field = Image.fromarray(grid, mode="F").resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(field, dtype=np.float32)


_AGE_TINT = np.array([0.2, 0.45, 1.0], np.float32)  # yellowing and stains: blue fades most


def _paper(rng, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paper as 2-D fields, so the page costs few full-colour array operations.

    The paper colour is `base * lightness - age * _AGE_TINT` per pixel.

    Returns:
        base: [3] float32 RGB paper colour in [0, 1].
        lightness: [H, W] float32 scanner shading, grain and fibres, about 1.
        age: [H, W] float32 yellowing and stains, >= 0.
    """
    base = np.array(
        [rng.uniform(0.93, 0.99), rng.uniform(0.91, 0.97), rng.uniform(0.84, 0.95)], np.float32
    )
    shading = _smooth_field(rng, height, width, (4, 3))  # [H, W] uneven light of the scanner
    grain = _smooth_field(rng, height, width, (max(2, height // 6), max(2, width // 6)))
    lightness = 1.0 - 0.05 * shading - 0.025 * grain  # [H, W]

    # Fibres: short faint curved strokes, lighter or darker than the paper.
    fibres = Image.new("L", (width, height), 128)
    draw = ImageDraw.Draw(fibres)
    num_fibres = int(height * width / 4000 * rng.uniform(0.5, 1.5))
    starts = rng.random((num_fibres, 2)) * (width, height)
    angles = rng.uniform(0, np.pi, num_fibres)
    bends = rng.uniform(-0.4, 0.4, num_fibres)
    lengths = rng.uniform(2.0, 12.0, num_fibres) * max(height, width) / 1024
    shades = rng.integers(121, 136, num_fibres).tolist()
    t = np.linspace(0.0, 1.0, 4)[None, :]  # [1, 4]
    fibre_x = starts[:, :1] + lengths[:, None] * t * np.cos(angles[:, None] + bends[:, None] * t)
    fibre_y = starts[:, 1:] + lengths[:, None] * t * np.sin(angles[:, None] + bends[:, None] * t)
    for xs, ys, shade in zip(fibre_x.tolist(), fibre_y.tolist(), shades):  # [4] each
        draw.line(list(zip(xs, ys)), fill=shade, width=1)
    lightness += (np.asarray(fibres, np.float32) - 128.0) * np.float32(1.0 / 128.0)

    ys = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]  # [H, 1]
    xs = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]  # [1, W]
    # Old paper yellows from the edges inwards.
    edge = np.clip(np.maximum(np.abs(ys), np.abs(xs)) - 0.75, 0.0, None) * 4.0  # [H, W]
    age = np.float32(rng.uniform(0.0, 0.07)) * (0.4 + edge)
    for _ in range(int(rng.choice(3, p=(0.6, 0.3, 0.1)))):
        _add_stain(rng, age)
    return base, lightness, age


def _add_stain(rng, age: np.ndarray) -> None:
    """Adds a coffee / water stain to age: a blotch with a noisy outline and a darker rim."""
    height, width = age.shape
    radius = rng.uniform(0.04, 0.15) * min(height, width)
    cy, cx = rng.uniform(0, height), rng.uniform(0, width)
    strength = rng.uniform(0.03, 0.09), rng.uniform(0.04, 0.12)  # inside, rim
    harmonics = rng.uniform(0.02, 0.1, 4), rng.uniform(0, 2 * np.pi, 4)
    y0, y1 = int(max(0, cy - 1.5 * radius)), int(min(height, cy + 1.5 * radius + 1))
    x0, x1 = int(max(0, cx - 1.5 * radius)), int(min(width, cx + 1.5 * radius + 1))
    if y1 <= y0 or x1 <= x0:
        return
    dy = np.arange(y0, y1, dtype=np.float32)[:, None] - cy  # [h, 1]
    dx = np.arange(x0, x1, dtype=np.float32)[None, :] - cx  # [1, w]
    distance = np.sqrt(dx * dx + dy * dy)  # [h, w]
    theta = np.arctan2(dy, dx)
    wobble = sum(a * np.sin(k * theta + p) for k, a, p in zip((2, 3, 5, 7), *harmonics))
    r = distance / (radius * (1.0 + wobble))  # 1 on the outline
    inside = np.clip((1.0 - r) * 8.0, 0.0, 1.0)
    rim = np.exp(-(((r - 0.97) / 0.05) ** 2))
    age[y0:y1, x0:x1] += (strength[0] * inside + strength[1] * rim).astype(np.float32)


# ------------------------------------------------------------------------------------------
# Printed text
# ------------------------------------------------------------------------------------------


class _Words:
    """An endless supply of pseudo-words, drawn in vectorised batches."""

    _BATCH = 256

    def __init__(self, rng):
        self.rng = rng
        self.buffer: list[str] = []

    def _refill(self) -> None:
        rng, count = self.rng, self._BATCH
        lengths = rng.choice(len(_WORD_LENGTH_FREQ), size=count, p=_WORD_LENGTH_FREQ) + 1
        letters = "".join(rng.choice(_LETTERS, size=int(lengths.sum()), p=_LETTER_FREQ))
        ends = np.cumsum(lengths).tolist()
        extras = rng.random((count, 3)).tolist()
        numbers = rng.integers(1, 2000, count).tolist()
        start = 0
        for end, (capital, punctuation, digit), number in zip(ends, extras, numbers):
            word = letters[start:end]
            start = end
            if digit < 0.03:
                word = str(number)
            elif capital < 0.12:
                word = word.capitalize()
            if punctuation < 0.08:
                word += "."
            elif punctuation < 0.14:
                word += ","
            self.buffer.append(word)
        self.buffer.reverse()  # pop() from the end keeps the drawing order

    def next(self) -> str:
        if not self.buffer:
            self._refill()
        return self.buffer.pop()


_CHARSET = string.ascii_letters + string.digits + ".,;:-()'"


class _Glyphs:
    """Pre-rendered glyphs of one font and size.

    Pasting cached bitmaps is several times faster than PIL's text drawing, which rasterises
    every glyph on every call; kerning is lost, which pseudo-text does not miss.
    """

    def __init__(self, path: str, size: int):
        font = _font(path, size)
        self.size = size
        self.advance: dict[str, float] = {" ": font.getlength(" ")}
        self.bitmap: dict[str, tuple[np.ndarray, int, int]] = {}
        for char in _CHARSET:
            self.advance[char] = font.getlength(char)
            x0, y0, x1, y1 = font.getbbox(char, anchor="ls")
            if x1 <= x0 or y1 <= y0:
                continue
            image = Image.new("L", (x1 - x0, y1 - y0), 0)
            ImageDraw.Draw(image).text((-x0, -y0), char, font=font, fill=255, anchor="ls")
            self.bitmap[char] = (np.asarray(image, np.uint8), x0, y0)

    def width(self, text: str) -> float:
        advance = self.advance
        return sum(advance[char] for char in text)

    def draw(self, canvas: np.ndarray, x: float, baseline: float, text: str) -> None:
        """Sets text on canvas ([H, W] uint8 coverage) from (x, baseline), clipped."""
        height, width = canvas.shape
        y = int(round(baseline))
        for char in text:
            glyph = self.bitmap.get(char)
            if glyph is not None:
                bitmap, dx, dy = glyph
                left, top = int(round(x)) + dx, y + dy
                gh, gw = bitmap.shape
                # Clip the glyph to the canvas.
                c0, r0 = max(0, -left), max(0, -top)
                c1, r1 = min(gw, width - left), min(gh, height - top)
                if c1 > c0 and r1 > r0:
                    target = canvas[top + r0 : top + r1, left + c0 : left + c1]
                    np.maximum(target, bitmap[r0:r1, c0:c1], out=target)
            x += self.advance[char]


@functools.lru_cache(maxsize=256)
def _glyphs(path: str, size: int) -> _Glyphs:
    return _Glyphs(path, size)


class _Typesetter:
    """Sets pseudo-text line by line on a coverage array ([H, W] uint8, 255 = full ink)."""

    def __init__(self, rng, canvas: np.ndarray):
        self.rng = rng
        self.canvas = canvas
        self.words = _Words(rng)

    def line(
        self,
        glyphs: _Glyphs,
        x: float,
        baseline: float,
        width: float,
        *,
        justify: bool,
        last: bool,
        center: bool = False,
        max_words: int | None = None,
    ) -> float:
        """Sets one line of words fitting `width`; returns the width used."""
        space = glyphs.advance[" "]
        used, chosen = 0.0, []
        while max_words is None or len(chosen) < max_words:
            word = self.words.next()
            length = glyphs.width(word)
            needed = length if not chosen else used + space + length
            if needed > width:
                break
            chosen.append(word)
            used = needed
        if not chosen:
            return 0.0
        if last and len(chosen) > 2:
            # A paragraph's last line stops short.
            chosen = chosen[: max(1, int(len(chosen) * self.rng.uniform(0.2, 0.9)))]
            used = glyphs.width(" ".join(chosen))
        text = " ".join(chosen)
        if justify and not last and len(chosen) > 1:
            # Whole extra spaces spread over the word gaps: near enough to true justification.
            extra = int((width - used) // space)
            gaps = [" "] * (len(chosen) - 1)
            for k in self.rng.permutation(len(gaps))[: extra % len(gaps)]:
                gaps[k] += " "
            gaps = [gap + " " * (extra // len(gaps)) for gap in gaps]
            text = chosen[0] + "".join(g + w for g, w in zip(gaps, chosen[1:]))
            used = glyphs.width(text)
        if center:
            x = x + (width - used) / 2
        glyphs.draw(self.canvas, x, baseline, text)
        return used


def _print_page(rng, height: int, width: int, families) -> tuple[np.ndarray, list, list]:
    """Lays out and sets the printed text.

    Returns:
        coverage: [H, W] uint8 glyph coverage.
        gaps: free boxes (x0, y0, x1, y1) between paragraphs, reserved for handwriting.
        text_boxes: boxes of the printed blocks, for annotations over the print.
    """
    canvas = np.zeros((height, width), np.uint8)
    typesetter = _Typesetter(rng, canvas)
    names = sorted(families)
    weights = np.array([_FAMILY_WEIGHTS[name] for name in names])
    family = families[names[rng.choice(len(names), p=weights / weights.sum())]]
    regular, bold, italic = family
    body_px = max(_MIN_FONT_PX, int(round(height * rng.uniform(0.011, 0.02))))
    body = _glyphs(regular, body_px)
    leading = body_px * rng.uniform(1.2, 1.55)
    justify = rng.random() < 0.5

    left = width * rng.uniform(0.07, 0.17)
    right = width - width * rng.uniform(0.06, 0.14)
    top = height * rng.uniform(0.05, 0.1)
    bottom = height - height * rng.uniform(0.06, 0.11)
    gaps, text_boxes = [], []

    y = top
    if rng.random() < 0.7:
        header_px = max(_MIN_FONT_PX, int(round(body_px * rng.uniform(1.4, 2.4))))
        header = _glyphs(bold if rng.random() < 0.7 else regular, header_px)
        center = rng.random() < 0.5
        for _ in range(int(rng.integers(1, 3))):
            y += header_px * 1.25
            if y > bottom:
                break
            typesetter.line(
                header,
                left,
                y,
                right - left,
                justify=False,
                last=False,
                center=center,
                max_words=int(rng.integers(2, 7)),
            )
        text_boxes.append((left, top, right, y + header_px * 0.3))
        y += header_px * rng.uniform(0.6, 1.5)

    num_columns = 1 if rng.random() < 0.65 else 2
    gutter = width * rng.uniform(0.03, 0.06)
    column_width = (right - left - gutter * (num_columns - 1)) / num_columns
    column_top = y
    for column in range(num_columns):
        x = left + column * (column_width + gutter)
        y = column_top
        while True:
            if rng.random() < 0.25 and y + leading * 3 < bottom:
                # A wide gap: room for handwriting between paragraphs.
                gap = leading * rng.uniform(2.0, 4.5)
                gaps.append((x, y + leading * 0.3, x + column_width, y + gap))
                y += gap
            if rng.random() < 0.12:
                subheading_px = max(_MIN_FONT_PX, int(round(body_px * rng.uniform(1.05, 1.35))))
                y += subheading_px * 1.6
                if y > bottom:
                    break
                typesetter.line(
                    _glyphs(bold, subheading_px),
                    x,
                    y,
                    column_width,
                    justify=False,
                    last=False,
                    max_words=int(rng.integers(1, 6)),
                )
                y += leading * 0.4
            lines = int(rng.integers(2, 10))
            start = y
            indent = body_px * rng.uniform(0.0, 2.5) if rng.random() < 0.6 else 0.0
            face = _glyphs(italic, body_px) if rng.random() < 0.08 else body
            for k in range(lines):
                y += leading
                if y > bottom:
                    break
                shift = indent if k == 0 else 0.0
                typesetter.line(
                    face, x + shift, y, column_width - shift, justify=justify, last=k == lines - 1
                )
            if y > start:
                text_boxes.append((x, start, x + column_width, min(y, bottom) + leading * 0.3))
            if y > bottom:
                break
            y += leading * rng.uniform(0.2, 0.9)

    if rng.random() < 0.5:
        number = _glyphs(regular, max(_MIN_FONT_PX, int(body_px * 0.9)))
        page_number = str(int(rng.integers(1, 400)))
        baseline = height - (height - bottom) * 0.45
        number.draw(canvas, (width - number.width(page_number)) / 2, baseline, page_number)
    return canvas, gaps, text_boxes


# ------------------------------------------------------------------------------------------
# Handwriting
# ------------------------------------------------------------------------------------------


def _sinusoids(rng, u: np.ndarray, terms: int, low: float, high: float) -> np.ndarray:
    """A smooth random function of u: a sum of `terms` sinusoids, frequencies in [low, high]."""
    frequencies = rng.uniform(low, high, terms)
    phases = rng.uniform(0, 2 * np.pi, terms)
    amplitudes = rng.uniform(0.5, 1.0, terms)
    total = np.zeros_like(u)
    for frequency, phase, amplitude in zip(frequencies, phases, amplitudes):
        total += amplitude * np.sin(2 * np.pi * frequency * u + phase)
    return total / amplitudes.sum()


class _Pen:
    """Writes cursive-looking lines of pen strokes on a coverage layer (L image)."""

    def __init__(self, rng, draw: ImageDraw.ImageDraw, page_height: int):
        self.rng = rng
        self.draw = draw
        # One writer per page: the same hand for every note.
        self.x_height = page_height * rng.uniform(0.010, 0.018)  # pixels
        self.slant = rng.uniform(-0.1, 0.45)  # x shift per unit of height
        self.loop = rng.uniform(0.22, 0.42)  # backward swing; loops once it beats the advance
        self.frequency = rng.uniform(1.0, 1.6)  # strokes per x-height of advance
        self.pen_width = max(1.0, page_height * rng.uniform(0.0012, 0.0028))

    def line(
        self, x: float, y: float, length: float, angle: float = 0.0, scale: float = 1.0
    ) -> None:
        """A line of handwriting: baseline from (x, y), `length` px long, rotated by angle."""
        rng = self.rng
        h = self.x_height * scale
        units = max(length / h, 0.5)  # advance in x-heights
        # Points every ~1/16 x-height: smooth at any size.
        u = np.linspace(0.0, units, max(8, int(units * 16)), dtype=np.float64)  # [P]
        # Letter rhythm: the phase speed wanders, so strokes differ in width.
        phase = 2 * np.pi * self.frequency * u + 1.5 * _sinusoids(rng, u, 4, 0.1, 0.8)
        # The backward swing comes and goes: loops (l, e) where it beats the advance,
        # arches and zigzags (n, m, u) where it does not.
        swing = self.loop * (0.45 + 0.8 * _sinusoids(rng, u, 3, 0.15, 0.7))
        forward = u + swing * np.sin(phase)
        # Mostly x-height letters, with occasional ascenders and descenders.
        ascender = 1.8 * np.clip(_sinusoids(rng, u, 4, 0.2, 0.9) - 0.35, 0.0, None)
        descender = 2.2 * np.clip(_sinusoids(rng, u, 4, 0.2, 0.9) - 0.45, 0.0, None)
        wave = 0.5 * (1.0 - np.cos(phase + rng.uniform(-0.3, 0.3)))  # [P] 0 baseline, 1 top
        rise = wave * (1.0 + ascender) - descender * np.clip(np.cos(phase), 0.0, None)
        drift = 0.25 * _sinusoids(rng, u, 2, 0.01, 0.08)  # the baseline wanders
        px = (forward + self.slant * rise) * h  # [P] along the line
        py = -(rise + drift) * h  # [P] up is negative
        cos, sin = np.cos(angle), np.sin(angle)
        points_x = x + px * cos - py * sin
        points_y = y + px * sin + py * cos

        # Pen lifts between words; the pressure (stroke width) changes along a word.
        position = 0
        while position < u.size - 2:
            word = int(rng.uniform(2.0, 6.0) * 16)
            end = min(u.size, position + word)
            self._stroke(points_x[position:end], points_y[position:end])
            position = end + int(rng.uniform(0.7, 1.4) * 16)

    def _stroke(self, xs: np.ndarray, ys: np.ndarray) -> None:
        chunk = 12
        for start in range(0, xs.size - 1, chunk):
            stop = min(xs.size, start + chunk + 1)  # chunks share an end point: no breaks
            width = max(1, int(round(self.pen_width * self.rng.uniform(0.7, 1.3))))
            points = list(zip(xs[start:stop].tolist(), ys[start:stop].tolist()))
            self.draw.line(points, fill=255, width=width, joint="curve")

    def underline(self, x0: float, x1: float, y: float) -> None:
        u = np.linspace(0.0, 1.0, 24)
        wave = self.x_height * 0.25 * _sinusoids(self.rng, u, 2, 0.3, 1.5)
        self._stroke(x0 + (x1 - x0) * u, y + wave)

    def bracket(self, x: float, y0: float, y1: float) -> None:
        """A vertical margin mark (a bar with a slight bow) next to a passage."""
        u = np.linspace(0.0, 1.0, 24)
        bow = self.x_height * 0.6 * np.sin(np.pi * u) * self.rng.choice((-1.0, 1.0))
        self._stroke(x + bow, y0 + (y1 - y0) * u)


def _handwrite(rng, height: int, width: int, gaps, text_boxes) -> np.ndarray:
    """Handwritten notes in the margins, gaps and over the print: [H, W] uint8 coverage."""
    layer = Image.new("L", (width, height), 0)
    pen = _Pen(rng, ImageDraw.Draw(layer), height)
    h = pen.x_height
    written = 0
    for x0, y0, x1, y1 in gaps:
        if rng.random() < 0.85:
            lines = max(1, int((y1 - y0) / (h * 3.2)))
            for k in range(lines):
                start = x0 + rng.uniform(0.0, 0.2) * (x1 - x0)
                length = (x1 - start) * rng.uniform(0.4, 0.95)
                pen.line(start, y0 + h * (2.2 + 3.2 * k), length, rng.uniform(-0.03, 0.03))
                written += 1

    # Margin notes where a margin is wide enough to write in.
    if text_boxes:
        left = min(box[0] for box in text_boxes)
        right = max(box[2] for box in text_boxes)
        for x0, x1 in ((0.0, left), (right, float(width))):
            room = x1 - x0
            if room > 6 * h and rng.random() < 0.6:
                y = rng.uniform(0.1, 0.7) * height
                for _ in range(int(rng.integers(1, 5))):
                    y += h * rng.uniform(2.6, 3.4)
                    if y > height - 2 * h:
                        break
                    pen.line(
                        x0 + room * 0.12,
                        y,
                        room * rng.uniform(0.5, 0.8),
                        rng.uniform(-0.08, 0.08),
                        scale=0.8,
                    )
                    written += 1
            elif room > 2 * h and rng.random() < 0.4:
                box = text_boxes[int(rng.integers(len(text_boxes)))]
                pen.bracket(x0 + room * 0.5, box[1], box[3])

    # Annotations over the print: a comment across a block, underlines.
    num_annotations = int(rng.integers(0, 3)) if written else int(rng.integers(1, 3))
    for _ in range(num_annotations):
        if text_boxes and rng.random() < 0.6:
            x0, y0, x1, y1 = text_boxes[int(rng.integers(len(text_boxes)))]
            start = x0 + rng.uniform(0.0, 0.4) * (x1 - x0)
            pen.line(
                start,
                rng.uniform(y0, max(y0 + 1, y1)) + h,
                (x1 - start) * rng.uniform(0.5, 1.0),
                rng.uniform(-0.25, 0.25),
                scale=rng.uniform(1.0, 1.6),
            )
        else:
            start = rng.uniform(0.05, 0.5) * width
            pen.line(
                start,
                rng.uniform(0.1, 0.95) * height,
                rng.uniform(0.2, 0.45) * width,
                rng.uniform(-0.3, 0.3),
            )
    for _ in range(int(rng.integers(0, 3))):
        if text_boxes:
            x0, y0, x1, y1 = text_boxes[int(rng.integers(len(text_boxes)))]
            start = rng.uniform(x0, x0 + 0.6 * (x1 - x0))
            pen.underline(
                start,
                min(x1, start + rng.uniform(0.15, 0.5) * (x1 - x0)),
                rng.uniform(y0, max(y0 + 1, y1)),
            )
    if rng.random() < 0.3:  # a signature-like scribble near the foot of the page
        pen.line(
            width * rng.uniform(0.45, 0.65),
            height * rng.uniform(0.9, 0.97),
            width * rng.uniform(0.15, 0.3),
            rng.uniform(-0.15, 0.05),
            scale=1.8,
        )
    return np.asarray(layer, np.uint8)


# ------------------------------------------------------------------------------------------
# Page
# ------------------------------------------------------------------------------------------


def _skew(coverage: np.ndarray, angle: float) -> np.ndarray:
    # Rotating the ink layers (not the finished page) keeps the mask exact and the paper
    # edges filled. Nearest resampling: ten times faster than bilinear, and the scanner blur
    # hides the one-pixel steps.
    image = Image.fromarray(coverage).rotate(angle, resample=Image.Resampling.NEAREST)
    return np.asarray(image, np.uint8)


def _blur(image: Image.Image, sigma: float) -> Image.Image:
    if sigma > 1.0:
        return image.filter(ImageFilter.GaussianBlur(sigma))
    # Small blurs: one 3x3 convolution is much faster than PIL's Gaussian.
    taps = np.exp(-0.5 * (np.arange(-1, 2) / sigma) ** 2)
    kernel = np.outer(taps, taps)
    return image.filter(ImageFilter.Kernel((3, 3), (kernel / kernel.sum()).ravel().tolist()))


def render_page(
    seed: int, height: int = DEFAULT_HEIGHT, width: int = DEFAULT_WIDTH
) -> tuple[np.ndarray, np.ndarray]:
    """Renders one procedural document page and its ink mask.

    About 0.1-0.3 s for a 1024 x 768 page on one core.

    Args:
        seed: non-negative integer; the same seed always gives the same page.
        height: page rows (>= 32).
        width: page columns (>= 32).

    Returns:
        image: [H, W, 3] uint8 RGB scan.
        mask: [H, W] uint8 class ids: 0 background, 1 printed_text, 2 handwritten_text.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    height = _check_int(height, "height", MIN_SIZE)
    width = _check_int(width, "width", MIN_SIZE)
    families = available_families()
    rng = np.random.default_rng(int(seed))

    base, lightness, age = _paper(rng, height, width)  # [3], [H, W], [H, W]
    printed, gaps, text_boxes = _print_page(rng, height, width, families)  # [H, W]
    handwritten = _handwrite(rng, height, width, gaps, text_boxes)  # [H, W]
    if rng.random() < 0.6:
        angle = rng.uniform(-1.2, 1.2)  # degrees: the page lay a little askew on the glass
        printed, handwritten = _skew(printed, angle), _skew(handwritten, angle)

    mask = np.zeros((height, width), np.uint8)
    mask[printed >= _INK_THRESHOLD] = PRINTED_TEXT
    mask[handwritten >= _INK_THRESHOLD] = HANDWRITTEN_TEXT

    # Ink absorbs light: each layer multiplies what lies beneath, so crossings are darker.
    # Printed ink is grey, so it scales the 2-D paper fields before they become colour.
    print_ink = rng.uniform(0.04, 0.16)
    print_strength = rng.uniform(0.82, 0.97)
    transmitted = 1.0 - printed * np.float32(print_strength * (1.0 - print_ink) / 255.0)
    # Scanner sensor noise, in luminance; the blur below makes it grain-like.
    noise = rng.standard_normal((height, width), dtype=np.float32)
    noise *= np.float32(rng.uniform(0.006, 0.02))
    lightness = lightness * transmitted + noise  # [H, W]
    age *= transmitted

    hand_ink = np.array(
        _HAND_INKS[rng.choice(len(_HAND_INKS), p=_HAND_INK_WEIGHTS)], np.float32
    ) + rng.uniform(-0.04, 0.04, 3).astype(np.float32)
    hand_ink = np.clip(hand_ink, 0.0, 1.0)
    # Pen pressure and ink flow vary slowly along the page.
    flow = 0.72 + 0.25 * _smooth_field(rng, height, width, (12, 9))  # [H, W]
    inked = handwritten > 0  # [H, W]: strokes are sparse, so only their pixels are composed
    alpha = handwritten[inked] * (flow[inked] / 255.0)  # [P]
    channels = []
    for c in range(3):
        # Channel by channel: 2-D float arrays, and PIL's F -> L conversion clips and rounds.
        channel = lightness * np.float32(base[c] * 255.0)  # [H, W]
        channel -= age * np.float32(_AGE_TINT[c] * 255.0)
        channel[inked] *= 1.0 - alpha * (1.0 - hand_ink[c])
        channels.append(Image.fromarray(channel, mode="F").convert("L"))
    page = Image.merge("RGB", channels)
    if rng.random() < 0.75:
        page = _blur(page, rng.uniform(0.35, 0.9) * max(height, width) / 1024)
    return np.asarray(page, np.uint8), mask


# ------------------------------------------------------------------------------------------
# Writing a dataset
# ------------------------------------------------------------------------------------------


def page_seed(seed: int, split: str, index: int) -> int:
    """Render seed of page `index` of a split; training and validation seeds never overlap."""
    split_bit = {"training": 0, "validation": 1}[split]
    return (int(seed) << 32) | (split_bit << 31) | int(index)


def documents_root(
    data_root: str,
    *,
    height: int = DEFAULT_HEIGHT,
    width: int = DEFAULT_WIDTH,
    num_train: int = 40,
    num_val: int = 10,
    seed: int = 0,
) -> str:
    """The folder the built-in pages of these settings live in, under data_root.

    Each setting gets its own folder, so asking for other settings generates a fresh dataset
    beside the old one instead of meeting generate_documents()' refusal to overwrite.
    """
    return os.path.join(data_root, f"documents_{height}x{width}_n{num_train}-{num_val}_seed{seed}")


def _manifest(num_train: int, num_val: int, height: int, width: int, seed: int) -> dict:
    return {
        "generator": "semsynth datasets.documents",
        "generator_version": GENERATOR_VERSION,
        "label_set": LABEL_SET,
        "num_train": num_train,
        "num_val": num_val,
        "height": height,
        "width": width,
        "seed": seed,
    }


def _pair_list(root: str, split: str, count: int) -> dict:
    return {
        "label_set": LABEL_SET,
        "pairs": [
            {
                "image": f"images/{split}/page_{index:05d}.png",
                "label": f"masks/{split}/page_{index:05d}.png",
            }
            for index in range(count)
        ],
    }


def generate_documents(
    root: str,
    *,
    num_train: int = 40,
    num_val: int = 10,
    height: int = DEFAULT_HEIGHT,
    width: int = DEFAULT_WIDTH,
    seed: int = 0,
    progress: bool = True,
) -> str:
    """Writes procedural pages and ink masks under root; returns root.

    Layout: root/images/{training,validation}/page_00000.png (RGB),
    root/masks/{training,validation}/page_00000.png (8-bit L class ids of
    semantic_labels/documents.json), root/train_pairs.json and root/val_pairs.json (the
    {"pairs": [...]} lists of datasets.pairs.json_list_pairs) and, last,
    documents_manifest.json with the parameters. Like datasets.scenes.generate_scenes:
    idempotent (a folder whose manifest matches is returned at once) and never deletes or
    overwrites: a non-empty folder with other parameters, or without a manifest (an
    interrupted run or foreign files), raises ValueError naming it. `documents_root()` gives
    every setting its own folder.

    Args:
        root: the dataset folder (created; may exist if empty).
        num_train: number of training pages (>= 1).
        num_val: number of validation pages (>= 0).
        height, width: page size in pixels (>= 32 each).
        seed: dataset seed; page seeds derive from it with page_seed().
        progress: print a one-line counter on stderr.
    """
    num_train = _check_int(num_train, "num_train", 1)
    num_val = _check_int(num_val, "num_val", 0)
    seed = _check_int(seed, "seed", 0)
    height = _check_int(height, "height", MIN_SIZE)
    width = _check_int(width, "width", MIN_SIZE)
    if num_train >= 2**31 or num_val >= 2**31:
        raise ValueError("num_train and num_val must be < 2**31")
    wanted = _manifest(num_train, num_val, height, width, seed)
    manifest_path = os.path.join(root, _MANIFEST)
    if os.path.isfile(root):
        raise ValueError(f"documents folder {root} is a file")
    if existing_generation(root, manifest_path, wanted, "page"):
        return root
    available_families()  # fail before creating folders when there are no fonts

    progress_line = GenerationProgress(num_train + num_val, "documents", root, progress)
    os.makedirs(root, exist_ok=True)
    for split, count in (("training", num_train), ("validation", num_val)):
        if not count:
            continue
        image_dir = os.path.join(root, "images", split)
        mask_dir = os.path.join(root, "masks", split)
        os.makedirs(image_dir, exist_ok=True)
        os.makedirs(mask_dir, exist_ok=True)
        for index in range(count):
            image, mask = render_page(page_seed(seed, split, index), height, width)
            name = f"page_{index:05d}.png"
            # Atomic: a killed generation never leaves half an image to be read as data.
            save_image_atomic(image, os.path.join(image_dir, name), compress_level=3)
            save_image_atomic(mask, os.path.join(mask_dir, name))
            progress_line.add()
    progress_line.close()
    for split, count, name in (
        ("training", num_train, "train_pairs.json"),
        ("validation", num_val, "val_pairs.json"),
    ):
        write_json_atomic(os.path.join(root, name), _pair_list(root, split, count), indent=1)
    write_manifest(manifest_path, wanted)
    return root


def document_pairs(root: str, split: str) -> list[tuple[str, str]]:
    """(page image, ink mask) pairs of a generated split, sorted by name.

    Args:
        root: a folder written by generate_documents().
        split: "training" or "validation".
    """
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}: use one of {list(SPLITS)}")
    manifest_path = os.path.join(root, _MANIFEST)
    if not os.path.isfile(manifest_path):
        raise DatasetNotFoundError(
            f"{root} holds no generated documents ({_MANIFEST} missing): run "
            f"`python -m tools.documents --root {root}` first"
        )
    try:
        with open(manifest_path, encoding="utf-8") as file:
            count = json.load(file)["num_train" if split == "training" else "num_val"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as error:
        raise DatasetError(f"cannot read {manifest_path}: {error!r}") from None
    if not count:
        return []  # e.g. generated with num_val=0
    image_dir = os.path.join(root, "images", split)
    mask_dir = os.path.join(root, "masks", split)
    return folder_pairs(image_dir, mask_dir, image_flag="images", label_flag="masks")
