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

People give bands and changes as text (synthesize.py --partial --band=0.25,0.75
--delta=vegetation=+0.1): `parse_band`, `parse_delta`, and `resolve_changes`, which completes a
change that names a few classes into one per layout (the unnamed classes give or take the rest
in proportion to their mass in the band) and refuses what regenerating the band cannot reach.
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


# === Bands and deltas a person asks for (synthesize.py --partial, the demo sheet) ===


def parse_band(band, width, flag="--band"):
    """(start, end) columns, end exclusive, of a band a person gives.

    Args:
        band: "x0,x1" as columns ("8,24": integers) or as fractions of the width
            ("0.25,0.75": any value written with a decimal point; rounded to columns), or a
            (start, end) pair of ints (columns).
        width: the layouts' columns.
        flag: how errors name the value.

    Raises:
        BandError: not two values, mixed or out-of-range values, or an empty band.
    """
    if isinstance(band, str):
        parts = [part.strip() for part in band.split(",")]
        if len(parts) != 2 or not all(parts):
            raise BandError(
                f"{flag}={band}: give two values x0,x1: columns (8,24) or fractions of the width "
                "(0.25,0.75)"
            )
        fractions = any("." in part for part in parts)
        try:
            values = [float(p) for p in parts] if fractions else [int(p) for p in parts]
        except ValueError:
            raise BandError(
                f"{flag}={band}: x0,x1 must be numbers: columns (8,24) or fractions of the width "
                "(0.25,0.75)"
            ) from None
        if fractions:
            if not all(0.0 <= v <= 1.0 for v in values):
                raise BandError(
                    f"{flag}={band}: fractions of the width (values written with a '.') must lie "
                    "in [0, 1]; columns are written as integers"
                )
            values = [int(round(v * width)) for v in values]
    else:
        values = [int(v) for v in band]
        if len(values) != 2:
            raise BandError(f"{flag}: a band is two columns (start, end), got {band!r}")
    start, end = values
    if not 0 <= start < end <= width:
        raise BandError(
            f"{flag}={band if isinstance(band, str) else tuple(values)}: columns [{start}, {end}) "
            f"are not a non-empty column range inside the {width}-column layouts: "
            f"0 <= x0 < x1 <= {width}"
        )
    return start, end


def parse_delta(delta, class_names, flag="--delta"):
    """{class index: change} of a proportion change a person gives.

    Args:
        delta: "vegetation=+0.1,sky=-0.05" (changes of the layout's class proportions, i.e.
            fractions of its pixels), a {name: change} dict, or None / "" (no change).
        class_names: the label set's classes, in train-id order.
        flag: how errors name the value.

    Raises:
        BandError: an unknown or repeated class, a value that is not a number in [-1, 1].
    """
    if not delta:
        return {}
    if isinstance(delta, str):
        items = []
        for item in delta.split(","):
            name, sep, value = item.partition("=")
            if not sep or not name.strip():
                raise BandError(
                    f"{flag}={delta}: {item.strip()!r} is not class=change (e.g. "
                    "vegetation=+0.1,sky=-0.05)"
                )
            items.append((name.strip(), value.strip()))
    else:
        items = list(dict(delta).items())
    changes = {}
    for name, value in items:
        if name not in class_names:
            raise BandError(
                f"{flag}: {name!r} is not a class of the model's label set "
                f"({', '.join(class_names)})"
            )
        index = list(class_names).index(name)
        if index in changes:
            raise BandError(f"{flag}: {name!r} is given twice")
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        if not -1.0 <= number <= 1.0:
            raise BandError(
                f"{flag}: the change of {name!r} must be a number in [-1, 1] (a fraction of the "
                f"layout's pixels), got {value!r}"
            )
        changes[index] = number
    return changes


def band_mass_np(layouts, band, num_classes):
    """float64 [N, C]: class mass in the columns band = (start, end) / (H * W) of uint8
    [N, H, W] train-id layouts (NumPy: band_mass of their one-hot maps)."""
    layouts = np.asarray(layouts)
    n, height, width = layouts.shape
    inside = layouts[:, :, band[0] : band[1]].reshape(n, -1).astype(np.int64)  # [N, H * w]
    counts = np.stack([np.bincount(row, minlength=num_classes) for row in inside])  # [N, C]
    return counts[:, :num_classes] / float(height * width)


def resolve_changes(named, band_masses, class_names, where=None, flag="--delta"):
    """float32 [N, C]: per layout the change of its class proportions (rows sum to 0) that an
    edit of its band asks for.

    The named classes change by their values; when those do not sum to 0, the classes not
    named give (or take) the rest in proportion to their mass in the band. The result must
    stay a valid palette reachable by regenerating the band only: for every class, band mass
    + change >= 0 (so the new palette lies in [0, 1] and sums to 1).

    Args:
        named: {class index: change} (parse_delta).
        band_masses: float [N, C] class mass in the band / (H * W) (band_mass_np).
        class_names: the classes, for messages.
        where: i -> how messages name layout i (default "layout i+1").
        flag: how messages name the delta.

    Raises:
        BandError: naming the layout, the class and what its band holds.
    """
    band_masses = np.asarray(band_masses, np.float64)
    n, num_classes = band_masses.shape
    where = where or (lambda i: f"layout {i + 1}")
    change = np.zeros((n, num_classes), np.float64)
    for index, value in named.items():
        change[:, index] = value
    total = sum(named.values())
    rest = np.ones(num_classes, bool)
    rest[list(named)] = False
    for i in range(n):
        band = band_masses[i]
        if abs(total) > 1e-6:
            rest_mass = band[rest].sum()
            if rest_mass <= 1e-9:
                raise BandError(
                    f"{where(i)}: the {flag} changes sum to {total:+.3f} and no class left "
                    "unnamed is in the band to give or take it: name changes that sum to 0"
                )
            change[i, rest] = -total * band[rest] / rest_mass
        short = np.flatnonzero(band + change[i] < -1e-6)
        if short.size and not rest[short[0]]:
            k = short[0]
            raise BandError(
                f"{where(i)}: {flag} asks for {class_names[k]} {change[i, k]:+.3f} of the layout "
                f"but its band holds {band[k]:.3f} of it (an edit changes the band only; the "
                f"band is {band.sum():.3f} of the layout)"
            )
        if short.size:
            raise BandError(
                f"{where(i)}: the {flag} changes add {total:+.3f} of the layout but the band's "
                f"other classes hold {band[rest].sum():.3f} (an edit changes the band only; the "
                f"band is {band.sum():.3f} of the layout)"
            )
    return change.astype(np.float32)
