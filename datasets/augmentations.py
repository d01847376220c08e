"""Image-and-label augmentations of the FaceSynthetics SegFormer recipe, as tf.data ops.

The FaceSynthetics SegFormer system augments with albumentations; these are the same
augmentations written as TensorFlow ops (pure functions of their inputs and a [2] seed, eager or
inside tf.data), for SegFormer's pipeline (datasets/segmentation.py):

    elastic_transform     a small random affine warp plus a smooth random displacement field
    grid_distortion       each of a grid's cells stretched or squeezed along each axis
    optical_distortion    radial lens distortion about a (slightly shifted) centre
                          (lens_distortion with a random coefficient)
    clahe                 contrast-limited adaptive histogram equalisation of the luminance
    brightness_contrast   x * (1 + c) + 255 * b
    random_gamma          255 * (x / 255) ** gamma

Images are [H, W, 3] float32 in [0, 255]; labels [H, W] int32 (train ids, 255 = ignore). The
geometric ones move image and label with one coordinate map: the image bilinearly, the label by
its nearest pixel (never a blend of two classes), and both read past the border as
OpenCV's BORDER_REFLECT_101 does (albumentations' default). `ExtraAugmentations` holds their
probabilities and parameters (defaults: the seed's values) and `apply_extra_augmentations` runs
them as the seed's pipeline does: at most one of the three distortions per sample (the seed's
OneOf), then CLAHE, brightness-contrast and gamma, each with its own probability.

Where they differ from albumentations (the formulas are in each function's docstring): CLAHE
equalises the Y of YUV (albumentations: the L of Lab) and shares the clipped excess evenly as a
fraction (OpenCV: whole counts, the rest spread over every k-th bin); the grid distortion
normalises the stretch over all cells (albumentations' last cell absorbs the whole difference);
the elastic transform samples its affine and elastic warps in one resampling (albumentations:
two), and blurs its noise with a Gaussian truncated at 3 sigma and zero padding.
"""

from __future__ import annotations

import dataclasses
import math

import tensorflow as tf

# Luminance levels of the CLAHE histograms (8-bit images).
_LEVELS = 256


@dataclasses.dataclass(frozen=True)
class ExtraAugmentations:
    """Probabilities and parameters of the FaceSynthetics seed's augmentations.

    The three distortions are exclusive: one uniform draw picks at most one of them, elastic
    with probability `elastic`, grid with `grid_distortion`, optical with `optical_distortion`
    (so these must sum to at most 1). The seed's OneOf(p=0.8) over elastic (p=0.5), grid
    (p=0.5) and optical (p=1) distortion is elastic=0.2, grid_distortion=0.2,
    optical_distortion=0.4. The colour ones are independent draws.

    Args:
        elastic, grid_distortion, optical_distortion: probabilities of the distortions.
        clahe, brightness_contrast, gamma: probabilities of the colour augmentations.
        elastic_alpha: displacement scale (px) of the elastic field.
        elastic_sigma: Gaussian smoothing (px) of the elastic field.
        elastic_affine: largest shift (px) of the affine warp's three control points.
        grid_steps: cells per axis of the grid distortion.
        grid_limit: each cell is stretched by a factor 1 + U(-grid_limit, grid_limit).
        optical_limit: the radial coefficient k is drawn from U(-optical_limit, optical_limit).
        optical_shift: the distortion centre moves by U(-optical_shift, optical_shift) px.
        clahe_clip: (low, high) of the uniformly drawn CLAHE clip limit.
        clahe_tiles: CLAHE tile grid (rows, columns).
        brightness_range: b in x * (1 + c) + 255 * b is drawn from it.
        contrast_range: c is drawn from it.
        gamma_range: (low, high) of the uniformly drawn gamma.

    Example:
        >>> augment = ExtraAugmentations.seed_recipe()
        >>> image, label = apply_extra_augmentations(image, label, [1, 2], augment)
    """

    elastic: float = 0.0
    grid_distortion: float = 0.0
    optical_distortion: float = 0.0
    clahe: float = 0.0
    brightness_contrast: float = 0.0
    gamma: float = 0.0
    elastic_alpha: float = 120.0
    elastic_sigma: float = 6.0
    elastic_affine: float = 3.6
    grid_steps: int = 5
    grid_limit: float = 0.3
    optical_limit: float = 0.75
    optical_shift: float = 0.5
    clahe_clip: tuple = (1.0, 2.0)
    clahe_tiles: tuple = (16, 16)
    brightness_range: tuple = (-0.1, 0.1)
    contrast_range: tuple = (-0.1, 0.1)
    gamma_range: tuple = (0.8, 1.2)

    def __post_init__(self):
        names = ("elastic", "grid_distortion", "optical_distortion")
        names += ("clahe", "brightness_contrast", "gamma")
        for name in names:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(
                    f"{name} must be a probability in [0, 1], got {getattr(self, name)}"
                )
        if self.elastic + self.grid_distortion + self.optical_distortion > 1.0 + 1e-9:
            raise ValueError(
                "elastic + grid_distortion + optical_distortion must be at most 1 (at most one "
                f"distortion per sample), got {self.elastic}, {self.grid_distortion}, "
                f"{self.optical_distortion}"
            )
        if self.grid_steps < 1 or self.elastic_sigma <= 0:
            raise ValueError("grid_steps must be >= 1 and elastic_sigma > 0")
        for name in ("clahe_clip", "brightness_range", "contrast_range", "gamma_range"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(
                    f"{name} must be (low, high) with low <= high, got ({low}, {high})"
                )
        if self.clahe_clip[0] <= 0 or self.gamma_range[0] <= 0:
            raise ValueError("clahe_clip and gamma_range must be positive")
        if len(self.clahe_tiles) != 2 or min(self.clahe_tiles) < 1:
            raise ValueError(f"clahe_tiles must be (rows, columns) >= 1, got {self.clahe_tiles}")

    @classmethod
    def seed_recipe(cls):
        """The FaceSynthetics seed's probabilities (its parameters are the defaults)."""
        return cls(
            elastic=0.2,
            grid_distortion=0.2,
            optical_distortion=0.4,
            clahe=0.8,
            brightness_contrast=0.8,
            gamma=0.8,
        )

    @property
    def any(self):
        """Whether any augmentation can happen."""
        probabilities = (self.elastic, self.grid_distortion, self.optical_distortion)
        return max(probabilities + (self.clahe, self.brightness_contrast, self.gamma)) > 0


def apply_extra_augmentations(image, label, seed, augment: ExtraAugmentations):
    """At most one distortion, then CLAHE, brightness-contrast and gamma (the seed's order).

    Args:
        image: [H, W, 3] float32 in [0, 255]. label: [H, W] int32. seed: [2] int.
        augment: the probabilities and parameters.

    Returns:
        image [H, W, 3] float32 in [0, 255], label [H, W] int32.
    """
    keys = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=8)  # [8, 2]
    image = tf.cast(image, tf.float32)
    label = tf.cast(label, tf.int32)
    a = augment
    if a.elastic + a.grid_distortion + a.optical_distortion > 0:
        # One draw u picks the distortion: [0, e) elastic, [e, e + g) grid, then optical.
        u = tf.random.stateless_uniform([], keys[0])
        grid_end = a.elastic + a.grid_distortion
        bounds = tf.constant([a.elastic, grid_end, grid_end + a.optical_distortion])  # [3]
        choice = tf.reduce_sum(tf.cast(u >= bounds, tf.int32))  # 0, 1, 2 or 3 (none)
        image, label = tf.switch_case(
            choice,
            [
                lambda: elastic_transform(
                    image, label, keys[1], a.elastic_alpha, a.elastic_sigma, a.elastic_affine
                ),
                lambda: grid_distortion(image, label, keys[2], a.grid_steps, a.grid_limit),
                lambda: optical_distortion(image, label, keys[3], a.optical_limit, a.optical_shift),
                lambda: (image, label),
            ],
        )
    applied = tf.random.stateless_uniform([3], keys[4])  # [3]
    if a.clahe > 0:
        image = tf.cond(
            applied[0] < a.clahe,
            lambda: clahe(image, keys[5], a.clahe_clip, a.clahe_tiles),
            lambda: image,
        )
    if a.brightness_contrast > 0:
        image = tf.cond(
            applied[1] < a.brightness_contrast,
            lambda: brightness_contrast(image, keys[6], a.brightness_range, a.contrast_range),
            lambda: image,
        )
    if a.gamma > 0:
        image = tf.cond(
            applied[2] < a.gamma, lambda: random_gamma(image, keys[7], a.gamma_range), lambda: image
        )
    return image, label


# ------------------------------------------------------------------------------------------
# Resampling image and label with one coordinate map
# ------------------------------------------------------------------------------------------


def reflect_101(index, size):
    """Integer indices folded into [0, size) as OpenCV's BORDER_REFLECT_101 (-1 -> 1)."""
    size = tf.cast(size, index.dtype)
    period = tf.maximum(2 * (size - 1), 1)
    index = tf.math.floormod(index, period)
    index = tf.where(index >= size, period - index, index)
    return tf.minimum(index, size - 1)  # size 1: every index is 0


def remap(image, label, y, x):
    """image and label read at the source coordinates (y, x) of every output pixel.

    Args:
        image: [H, W, C] float32. label: [H, W] int32.
        y, x: float32 source row / column of each output pixel, broadcastable to [h, w].

    Returns:
        image [h, w, C] (bilinear), label [h, w] (nearest), reflect-101 past the border.
    """
    shape = tf.broadcast_dynamic_shape(tf.shape(y), tf.shape(x))
    y, x = tf.broadcast_to(y, shape), tf.broadcast_to(x, shape)  # [h, w] each
    height, width = tf.shape(label)[0], tf.shape(label)[1]
    y0, x0 = tf.floor(y), tf.floor(x)
    wy, wx = (y - y0)[..., None], (x - x0)[..., None]  # [h, w, 1]
    y0, x0 = tf.cast(y0, tf.int32), tf.cast(x0, tf.int32)

    def at(rows, cols):
        return tf.stack([reflect_101(rows, height), reflect_101(cols, width)], -1)  # [h, w, 2]

    top = (1 - wx) * tf.gather_nd(image, at(y0, x0)) + wx * tf.gather_nd(image, at(y0, x0 + 1))
    bottom = (1 - wx) * tf.gather_nd(image, at(y0 + 1, x0)) + wx * tf.gather_nd(
        image, at(y0 + 1, x0 + 1)
    )
    warped = (1 - wy) * top + wy * bottom  # [h, w, C]
    nearest = at(tf.cast(tf.floor(y + 0.5), tf.int32), tf.cast(tf.floor(x + 0.5), tf.int32))
    return warped, tf.gather_nd(label, nearest)  # [h, w, C], [h, w]


def _pixel_grid(label):
    """Row and column coordinates of every pixel: ([H, 1], [1, W]) float32."""
    height, width = tf.shape(label)[0], tf.shape(label)[1]
    rows = tf.cast(tf.range(height), tf.float32)[:, None]  # [H, 1]
    cols = tf.cast(tf.range(width), tf.float32)[None, :]  # [1, W]
    return rows, cols


# ------------------------------------------------------------------------------------------
# Geometric: image and label together
# ------------------------------------------------------------------------------------------


def _gaussian_blur(field, sigma):
    """[H, W] blurred by a Gaussian of `sigma` px, truncated at 3 sigma, zero padding."""
    radius = max(1, int(math.ceil(3.0 * sigma)))
    taps = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / tf.reduce_sum(kernel)  # [2r + 1]
    x = field[None, :, :, None]  # [1, H, W, 1]
    x = tf.nn.conv2d(x, tf.reshape(kernel, [-1, 1, 1, 1]), 1, "SAME")  # along H
    x = tf.nn.conv2d(x, tf.reshape(kernel, [1, -1, 1, 1]), 1, "SAME")  # along W
    return x[0, :, :, 0]  # [H, W]


def elastic_transform(image, label, seed, alpha=120.0, sigma=6.0, alpha_affine=3.6):
    """Elastic deformation (Simard et al. 2003) after a small random affine warp.

    The affine warp moves the three points (c + (s, s), c + (s, -s), c - (s, s)) of a square
    about the centre c (s = min(H, W) / 3) by U(-alpha_affine, alpha_affine) px each; the
    elastic field is (dy, dx) = alpha * G_sigma * U(-1, 1) noise per axis. Output pixel p reads
    source A(p + d(p)), A the affine map from the moved points back to the square's.

    Args:
        image: [H, W, C] float32. label: [H, W] int32. seed: [2] int.
        alpha: displacement scale (px). sigma: smoothing of the field (px).
        alpha_affine: largest control-point shift (px) of the affine part.

    Returns:
        image [H, W, C] (bilinear), label [H, W] (nearest).
    """
    keys = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=3)  # [3, 2]
    rows, cols = _pixel_grid(label)
    shape = tf.shape(label)
    size = tf.cast(shape, tf.float32)  # [2]
    centre = size / 2.0  # (y, x)
    side = tf.reduce_min(size) / 3.0
    square = tf.stack(
        [centre + [side, side], centre + [-side, side], centre - [side, side]]
    )  # [3, 2] (y, x)
    moved = square + tf.random.stateless_uniform(
        [3, 2], keys[0], -alpha_affine, alpha_affine
    )  # [3, 2]
    # The affine A with A(moved_i) = square_i: [moved_i, 1] @ A^T = square_i.
    homogeneous = tf.concat([moved, tf.ones([3, 1])], 1)  # [3, 3]
    affine_t = tf.linalg.solve(homogeneous, square)  # [3, 2]
    noise = tf.random.stateless_uniform(tf.concat([[2], shape], 0), keys[1], -1.0, 1.0)
    dy = alpha * _gaussian_blur(noise[0], sigma)  # [H, W]
    dx = alpha * _gaussian_blur(noise[1], sigma)  # [H, W]
    y, x = rows + dy, cols + dx  # [H, W] each
    src_y = affine_t[0, 0] * y + affine_t[1, 0] * x + affine_t[2, 0]
    src_x = affine_t[0, 1] * y + affine_t[1, 1] * x + affine_t[2, 1]
    return remap(image, label, src_y, src_x)


def _grid_axis(size, key, steps, limit):
    """[size] source coordinates of one axis of the grid distortion.

    The axis is cut into `steps` equal cells; cell k is stretched by 1 + U(-limit, limit) and
    the stretches are normalised to the axis length, so the first and last pixel stay put.
    """
    scales = 1.0 + tf.random.stateless_uniform([steps], key, -limit, limit)  # [steps]
    knots = tf.concat([[0.0], tf.cumsum(scales)], 0) / tf.reduce_sum(scales)  # [steps + 1]
    last = tf.cast(tf.maximum(size - 1, 1), tf.float32)
    knots = knots * last
    position = tf.cast(tf.range(size), tf.float32) / last * steps  # in [0, steps]
    cell = tf.clip_by_value(tf.cast(tf.floor(position), tf.int32), 0, steps - 1)
    fraction = position - tf.cast(cell, tf.float32)
    return tf.gather(knots, cell) * (1.0 - fraction) + tf.gather(knots, cell + 1) * fraction


def grid_distortion(image, label, seed, num_steps=5, distort_limit=0.3):
    """Grid distortion: every row and column cell stretched by its own random factor.

    Args:
        image: [H, W, C] float32. label: [H, W] int32. seed: [2] int.
        num_steps: cells per axis. distort_limit: stretch factors 1 + U(-limit, limit).

    Returns:
        image [H, W, C] (bilinear), label [H, W] (nearest).
    """
    keys = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=2)  # [2, 2]
    height, width = tf.shape(label)[0], tf.shape(label)[1]
    src_y = _grid_axis(height, keys[0], num_steps, distort_limit)[:, None]  # [H, 1]
    src_x = _grid_axis(width, keys[1], num_steps, distort_limit)[None, :]  # [1, W]
    return remap(image, label, src_y, src_x)


def optical_distortion(image, label, seed, distort_limit=0.75, shift_limit=0.5):
    """`lens_distortion` with k ~ U(-distort_limit, distort_limit) and a centre shifted by
    U(-shift_limit, shift_limit) px along each axis.

    Args:
        image: [H, W, C] float32. label: [H, W] int32. seed: [2] int.
        distort_limit: largest |k|. shift_limit: largest centre shift (px).

    Returns:
        image [H, W, C] (bilinear), label [H, W] (nearest).
    """
    keys = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=2)  # [2, 2]
    k = tf.random.stateless_uniform([], keys[0], -distort_limit, distort_limit)
    shift = tf.random.stateless_uniform([2], keys[1], -shift_limit, shift_limit)  # (y, x)
    return lens_distortion(image, label, k, shift)


def lens_distortion(image, label, k, shift=(0.0, 0.0)):
    """Radial lens distortion, as OpenCV's undistortion map with k1 = k2 = k.

    With focal lengths (W, H) and centre c = (W / 2, H / 2) + shift, output pixel p reads
    source c + (p - c) * (1 + k r^2 + k r^4), r the distance from c in units of (W, H): k > 0
    reads farther out (the content shrinks towards the centre), k < 0 nearer in.

    Args:
        image: [H, W, C] float32. label: [H, W] int32.
        k: the radial coefficient. shift: (y, x) shift of the centre in px.

    Returns:
        image [H, W, C] (bilinear), label [H, W] (nearest).
    """
    rows, cols = _pixel_grid(label)
    size = tf.cast(tf.shape(label), tf.float32)  # (H, W): the focal lengths
    centre = size / 2.0 + tf.cast(shift, tf.float32)
    k = tf.cast(k, tf.float32)
    y = (rows - centre[0]) / size[0]  # [H, 1]
    x = (cols - centre[1]) / size[1]  # [1, W]
    r2 = y**2 + x**2  # [H, W]
    factor = 1.0 + k * r2 + k * r2**2
    return remap(image, label, y * factor * size[0] + centre[0], x * factor * size[1] + centre[1])


# ------------------------------------------------------------------------------------------
# Colour: the image only
# ------------------------------------------------------------------------------------------


def equalize_luminance(luminance, clip_limit, tiles=(16, 16)):
    """CLAHE of a [H, W] int32 image of levels 0..255 -> float32 [H, W] in [0, 255].

    OpenCV's algorithm: the image (padded bottom / right by reflection to a whole number of
    tiles) is cut into `tiles`; each tile's 256-bin histogram is clipped at
    max(floor(clip_limit * tile_pixels / 256), 1), the clipped excess shared evenly over all
    bins, and its lookup table is round(cumsum * 255 / tile_pixels). A pixel's value is the
    bilinear blend of the tables of its four nearest tile centres.

    Args:
        luminance: [H, W] int32 in [0, 255].
        clip_limit: float (a tensor or number); tiles: (rows, columns) of the grid.
    """
    grid_h, grid_w = tiles
    height, width = tf.shape(luminance)[0], tf.shape(luminance)[1]
    tile_h = (height + grid_h - 1) // grid_h
    tile_w = (width + grid_w - 1) // grid_w
    rows = reflect_101(tf.range(tile_h * grid_h), height)
    cols = reflect_101(tf.range(tile_w * grid_w), width)
    padded = tf.gather(tf.gather(luminance, rows), cols, axis=1)  # [gh * th, gw * tw]
    tile_of_row = tf.range(tile_h * grid_h) // tile_h  # [gh * th]
    tile_of_col = tf.range(tile_w * grid_w) // tile_w  # [gw * tw]
    tile = tile_of_row[:, None] * grid_w + tile_of_col[None, :]  # [gh * th, gw * tw]
    bins = tf.reshape(tile * _LEVELS + padded, [-1])
    num_bins = grid_h * grid_w * _LEVELS
    hist = tf.math.bincount(bins, minlength=num_bins, maxlength=num_bins, dtype=tf.float32)
    hist = tf.reshape(hist, [grid_h * grid_w, _LEVELS])  # [T, 256]
    area = tf.cast(tile_h * tile_w, tf.float32)
    limit = tf.maximum(tf.floor(tf.cast(clip_limit, tf.float32) * area / _LEVELS), 1.0)
    excess = tf.reduce_sum(tf.maximum(hist - limit, 0.0), axis=1, keepdims=True)  # [T, 1]
    hist = tf.minimum(hist, limit) + excess / _LEVELS
    luts = tf.round(tf.cumsum(hist, axis=1) * ((_LEVELS - 1) / area))  # [T, 256]
    luts = tf.reshape(tf.clip_by_value(luts, 0.0, _LEVELS - 1.0), [-1])  # [T * 256]

    def neighbours(count, tile_size, grid):
        # OpenCV: t = i / tile_size - 0.5; blend tiles floor(t) and floor(t) + 1 (clamped).
        t = tf.cast(tf.range(count), tf.float32) / tf.cast(tile_size, tf.float32) - 0.5
        first = tf.floor(t)
        weight = t - first
        first = tf.cast(first, tf.int32)
        return tf.maximum(first, 0), tf.minimum(first + 1, grid - 1), weight

    y1, y2, wy = neighbours(height, tile_h, grid_h)  # [H] each
    x1, x2, wx = neighbours(width, tile_w, grid_w)  # [W] each
    y1, y2, wy = y1[:, None], y2[:, None], wy[:, None]  # [H, 1]

    def lookup(tile_row, tile_col):
        return tf.gather(luts, (tile_row * grid_w + tile_col) * _LEVELS + luminance)  # [H, W]

    top = (1.0 - wx) * lookup(y1, x1) + wx * lookup(y1, x2)
    bottom = (1.0 - wx) * lookup(y2, x1) + wx * lookup(y2, x2)
    return (1.0 - wy) * top + wy * bottom  # [H, W]


def clahe(image, seed, clip_range=(1.0, 2.0), tiles=(16, 16)):
    """CLAHE of the luminance (Y of YUV) with a clip limit drawn from clip_range.

    Args:
        image: [H, W, 3] float32 in [0, 255]. seed: [2] int.
        clip_range: (low, high) of the uniform clip limit (albumentations' clip_limit=2 is
            (1, 2)). tiles: (rows, columns) of the tile grid.

    Returns:
        [H, W, 3] float32 in [0, 255]; the chroma (U, V) is kept.
    """
    clip_limit = tf.random.stateless_uniform([], seed, clip_range[0], clip_range[1])
    yuv = tf.image.rgb_to_yuv(image / 255.0)  # [H, W, 3]
    levels = tf.cast(tf.clip_by_value(tf.round(yuv[..., 0] * 255.0), 0.0, 255.0), tf.int32)
    equalised = equalize_luminance(levels, clip_limit, tiles) / 255.0  # [H, W]
    yuv = tf.concat([equalised[..., None], yuv[..., 1:]], -1)  # [H, W, 3]
    return tf.clip_by_value(tf.image.yuv_to_rgb(yuv) * 255.0, 0.0, 255.0)


def brightness_contrast(image, seed, brightness_range=(-0.1, 0.1), contrast_range=(-0.1, 0.1)):
    """x * (1 + c) + 255 * b with c ~ U(contrast_range), b ~ U(brightness_range), clipped.

    Args:
        image: [H, W, 3] float32 in [0, 255]. seed: [2] int.
    """
    draws = tf.random.stateless_uniform([2], seed)  # [2] in [0, 1)
    b = brightness_range[0] + (brightness_range[1] - brightness_range[0]) * draws[0]
    c = contrast_range[0] + (contrast_range[1] - contrast_range[0]) * draws[1]
    return tf.clip_by_value(image * (1.0 + c) + 255.0 * b, 0.0, 255.0)


def random_gamma(image, seed, gamma_range=(0.8, 1.2)):
    """255 * (x / 255) ** gamma with gamma ~ U(gamma_range) (albumentations' gamma_limit
    (80, 120) / 100).

    Args:
        image: [H, W, 3] float32 in [0, 255]. seed: [2] int.
    """
    gamma = tf.random.stateless_uniform([], seed, gamma_range[0], gamma_range[1])
    return 255.0 * tf.pow(tf.clip_by_value(image, 0.0, 255.0) / 255.0, gamma)
