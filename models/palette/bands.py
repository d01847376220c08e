"""The band of a partial layout edit: drawing bands for training, keep masks, checks.

A band is a range of COLUMNS [start, end) (end exclusive) spanning the whole height of the
layout: the pixels to regenerate. Bands are int32 [N, 2] rows (start, end), one per layout,
with 0 <= start < end <= W. The keep mask is 1 outside the band, 0 inside ([N, H, W, 1]).

Training draws one band per sample from a stateless seed (the trainer keys it by seed, step,
replica and phase, so a resumed run draws the same bands): its width uniform in
[min_width, max_width] columns, its start uniform among the positions that fit.

The proportion delta of an edit (models.palette.networks.PartialLayoutGenerator): the network
takes delta = target palette - the kept part's class mass (class mass outside the band / HW),
i.e. the class mass the band must hold. A user asks for a change of the layout's proportions
d (sum 0); the network's delta is then the band's current class mass + d (`network_delta`).
"""

import numpy as np
import tensorflow as tf

from core.errors import UserError


class BandError(UserError):
    """A partial edit's band (or delta) that cannot be used; the message says why."""


def draw_bands(seed, n, width, min_width, max_width):
    """int32 [N, 2] random bands (start, end) of `width`-column layouts, in graph ops.

    Args:
        seed: [2] int stateless seed.
        n: number of bands (scalar, may be a tensor).
        width: W, columns of the layouts (Python int).
        min_width, max_width: band widths in columns, 1 <= min_width <= max_width <= W.
    """
    if not 1 <= min_width <= max_width <= width:
        raise ValueError(f"need 1 <= min_width={min_width} <= max_width={max_width} <= {width}")
    draws = tf.random.stateless_uniform(tf.stack([n, 2]), seed=seed)  # [N, 2] in [0, 1)
    span = float(max_width - min_width + 1)
    widths = min_width + tf.cast(tf.floor(draws[:, 0] * span), tf.int32)  # [N]
    widths = tf.minimum(widths, max_width)
    starts = tf.cast(tf.floor(draws[:, 1] * tf.cast(width - widths + 1, tf.float32)), tf.int32)
    starts = tf.minimum(starts, width - widths)
    return tf.stack([starts, starts + widths], axis=1)  # [N, 2]


def keep_masks(bands, height, width):
    """float32 [N, H, W, 1] keep masks of int [N, 2] column bands: 0 inside, 1 outside."""
    bands = tf.cast(bands, tf.int32)
    columns = tf.range(width, dtype=tf.int32)[None, :]  # [1, W]
    inside = (columns >= bands[:, :1]) & (columns < bands[:, 1:])  # [N, W]
    keep = 1.0 - tf.cast(inside, tf.float32)  # [N, W]
    return tf.tile(keep[:, None, :, None], [1, height, 1, 1])  # [N, H, W, 1]


def band_mass(layout, keep):
    """[N, C] class mass inside the band / (H * W) of [N, H, W, C] layouts."""
    return tf.reduce_mean(tf.cast(layout, tf.float32) * (1.0 - keep), axis=[1, 2])


def network_delta(layout, keep, change):
    """The PartialLayoutGenerator's delta for a requested change of proportions: the band's
    current class mass + change ([N, C]); where the band holds less of a class than the change
    removes, the network clips the target at 0."""
    return band_mass(layout, keep) + tf.cast(change, tf.float32)


def bands_valid(bands, width):
    """Scalar bool tensor: every band satisfies 0 <= start < end <= width."""
    bands = tf.cast(bands, tf.int32)
    return tf.reduce_all((bands[:, 0] >= 0) & (bands[:, 0] < bands[:, 1]) & (bands[:, 1] <= width))


def check_bands(bands, height, width, count=None):
    """int32 [N, 2] bands, or BandError naming the first band outside the layout.

    Args:
        bands: [N, 2] (or one [2]) column ranges (start, end), end exclusive.
        height, width: the layouts' size.
        count: N, the number of layouts they edit (checked when given).
    """
    bands = np.asarray(bands)
    if bands.ndim == 1:
        bands = bands[None]
    if bands.ndim != 2 or bands.shape[1] != 2 or not np.issubdtype(bands.dtype, np.integer):
        raise BandError(
            f"bands must be integer [N, 2] column ranges (start, end), got shape "
            f"{list(bands.shape)} of {bands.dtype}"
        )
    if count is not None and len(bands) != count:
        raise BandError(f"{len(bands)} bands for {count} layouts: give one band per layout")
    for i, (start, end) in enumerate(bands.tolist()):
        if not 0 <= start < end <= width:
            raise BandError(
                f"band {i + 1} ({start}, {end}) must be a non-empty column range inside the "
                f"{height}x{width} layout: 0 <= start < end <= {width}"
            )
    return bands.astype(np.int32)
