"""Differentiable augmentation of images and masks, with the same geometry for both.

Written for OSMIS / SIV-GAN (the reference could not ship its augmentation for licence reasons)
after the recipe of StyleGAN2-ADA's differentiable augmentation: every sample of a batch draws
each transform independently with probability `prob`, and every op is differentiable with
respect to the pixels, so the generator learns through the augmentation of its fakes.

    geometry (image and mask):  x-flip, zoom (isotropic scale 2 ** N(0, 0.2)), small rotation
                                (uniform within +-max_rotation_deg), translation (uniform within
                                +-max_translation of each side)
    colour (images only):       brightness (+ N(0, 0.2)), contrast (* 2 ** N(0, 0.5)),
                                saturation (* 2 ** N(0, 1))

The geometric transforms compose into one affine map per sample, applied by a bilinear sampler
with reflection at the borders (ADA's padding). The map is defined in units of the image height
around the image centre, so it means the same at every resolution: one draw transforms the
multi-scale images of a generator and its mask together, and stays aligned. Sampling is linear
in the pixel values, so a mask and an image painted from it (image = mask @ colours) stay exactly
consistent: augment(mask) @ colours == augment(image) (tests/models/osmis/test_osmis_augment.py).

All randomness is stateless, drawn from `seed` (a [2] int tensor), so an augmentation is a pure
function of (inputs, seed) and training resumes exactly. This module imports only TensorFlow:
any family may use it.

Example:
    images, masks = augment([image, image_half], [mask], seed=tf.constant([0, 7]), prob=0.7)
"""

import math

import tensorflow as tf

# Strengths of the transforms (StyleGAN2-ADA's defaults where it has one).
ZOOM_STD = 0.2  # log2 of the isotropic scale
MAX_ROTATION_DEG = 10.0  # "small rotation": ADA rotates freely, a scene must stay upright
MAX_TRANSLATION = 0.125  # of each side
BRIGHTNESS_STD = 0.2
CONTRAST_STD = 0.5  # log2
SATURATION_STD = 1.0  # log2

# Indices of the independent random streams of one call.
_FLIP, _ZOOM, _ROT, _TRANS, _BRIGHT, _CONTRAST, _SAT = range(7)
_NUM_STREAMS = 7


def _stream(seed, index):
    return tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), index)


def _enabled(seed, index, n, prob):
    """[n] float32: 1 where the transform is applied (probability prob), else 0."""
    draw = tf.random.stateless_uniform([n], seed=_stream(_stream(seed, index), 1000))
    return tf.cast(draw < prob, tf.float32)


def sample_parameters(seed, batch_size, prob, *, geometry=True, colour=True):
    """Draws the per-sample parameters of one augmentation call.

    Args:
        seed: [2] int tensor of the stateless random ops.
        batch_size: N (a Python int or a scalar tensor).
        prob: probability of each transform per sample.
        geometry, colour: whether those transform groups may be drawn at all.

    Returns:
        {"matrix": [N, 2, 3] float32 affine map from output to input coordinates (height units,
        origin at the image centre), "brightness": [N], "contrast": [N], "saturation": [N]}.
        Identity values where a transform is not drawn.
    """
    n = batch_size
    p_geo = prob if geometry else 0.0
    p_col = prob if colour else 0.0
    flip = _enabled(seed, _FLIP, n, p_geo)
    sign_x = 1.0 - 2.0 * flip * tf.cast(
        tf.random.stateless_uniform([n], seed=_stream(seed, _FLIP)) < 0.5, tf.float32
    )  # -1: mirrored
    zoom = tf.pow(
        2.0,
        _enabled(seed, _ZOOM, n, p_geo)
        * tf.random.stateless_normal([n], seed=_stream(seed, _ZOOM))
        * ZOOM_STD,
    )
    angle = (
        _enabled(seed, _ROT, n, p_geo)
        * tf.random.stateless_uniform([n], seed=_stream(seed, _ROT), minval=-1.0, maxval=1.0)
        * (MAX_ROTATION_DEG * math.pi / 180.0)
    )
    shift = (
        _enabled(seed, _TRANS, n, p_geo)[:, None]
        * tf.random.stateless_uniform([n, 2], seed=_stream(seed, _TRANS), minval=-1.0, maxval=1.0)
        * MAX_TRANSLATION
    )  # [N, 2] (x, y) fractions of each side
    # Output -> input map: input = R(angle) (sign_x * x, y) / zoom - shift (the inverse of
    # "flip, rotate, zoom, then translate" applied to the image).
    cos, sin = tf.cos(angle), tf.sin(angle)
    matrix = tf.stack(
        [
            tf.stack([cos * sign_x / zoom, -sin / zoom, -shift[:, 0]], axis=-1),
            tf.stack([sin * sign_x / zoom, cos / zoom, -shift[:, 1]], axis=-1),
        ],
        axis=1,
    )  # [N, 2, 3]; the translation column is in fractions of each side (scaled per call)
    brightness = (
        _enabled(seed, _BRIGHT, n, p_col)
        * tf.random.stateless_normal([n], seed=_stream(seed, _BRIGHT))
        * BRIGHTNESS_STD
    )
    contrast = tf.pow(
        2.0,
        _enabled(seed, _CONTRAST, n, p_col)
        * tf.random.stateless_normal([n], seed=_stream(seed, _CONTRAST))
        * CONTRAST_STD,
    )
    saturation = tf.pow(
        2.0,
        _enabled(seed, _SAT, n, p_col)
        * tf.random.stateless_normal([n], seed=_stream(seed, _SAT))
        * SATURATION_STD,
    )
    return {
        "matrix": matrix,
        "brightness": brightness,
        "contrast": contrast,
        "saturation": saturation,
    }


def _reflect(coordinate, size):
    """Reflects float pixel coordinates into [0, size - 1] (mirror without repeating the edge)."""
    size = tf.cast(size, coordinate.dtype)
    period = tf.maximum(2.0 * (size - 1.0), 1.0)
    c = tf.math.floormod(coordinate, period)
    return tf.minimum(c, period - c)


def warp(x, matrix):
    """Applies per-sample affine maps to x with bilinear sampling and reflection at the borders.

    Args:
        x: [N, H, W, C] float tensor.
        matrix: [N, 2, 3] output -> input map in height units around the centre (see
            sample_parameters); its last column is a shift in fractions of each side.

    Returns:
        [N, H, W, C] tensor; differentiable with respect to x.
    """
    shape = tf.shape(x)
    n, h, w = shape[0], shape[1], shape[2]
    hf, wf = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
    half_h, half_w = hf / 2.0, wf / 2.0
    # Output pixel centres in height units around the centre: y in [-1, 1], x in [-W/H, W/H].
    ys = (tf.range(hf) + 0.5 - half_h) / half_h  # [H]
    xs = (tf.range(wf) + 0.5 - half_w) / half_h  # [W]
    grid_y, grid_x = tf.meshgrid(ys, xs, indexing="ij")  # [H, W] each
    a = matrix[:, :, None, None, :]  # [N, 2, 1, 1, 3]
    shift_x = a[:, 0, ..., 2] * 2.0 * wf / hf  # a fraction of the width, in height units
    shift_y = a[:, 1, ..., 2] * 2.0
    src_x = a[:, 0, ..., 0] * grid_x + a[:, 0, ..., 1] * grid_y + shift_x  # [N, H, W]
    src_y = a[:, 1, ..., 0] * grid_x + a[:, 1, ..., 1] * grid_y + shift_y
    # Back to pixel coordinates (pixel i has its centre at i).
    px = _reflect(src_x * half_h + half_w - 0.5, w)
    py = _reflect(src_y * half_h + half_h - 0.5, h)
    x0, y0 = tf.floor(px), tf.floor(py)
    wx, wy = (px - x0)[..., None], (py - y0)[..., None]  # [N, H, W, 1]
    x0 = tf.cast(x0, tf.int32)
    y0 = tf.cast(y0, tf.int32)
    x1, y1 = tf.minimum(x0 + 1, w - 1), tf.minimum(y0 + 1, h - 1)
    flat = tf.reshape(x, tf.stack([n * h * w, shape[3]]))  # [N*H*W, C]
    base = (tf.range(n) * h * w)[:, None, None]  # [N, 1, 1]

    def gather(yy, xx):
        return tf.gather(flat, base + yy * w + xx)  # [N, H, W, C]

    wx, wy = tf.cast(wx, x.dtype), tf.cast(wy, x.dtype)
    top = gather(y0, x0) * (1 - wx) + gather(y0, x1) * wx
    bottom = gather(y1, x0) * (1 - wx) + gather(y1, x1) * wx
    return top * (1 - wy) + bottom * wy


def adjust_colour(images, params):
    """Brightness, contrast and saturation of [N, H, W, 3] images in [-1, 1] (ADA's order)."""
    b = params["brightness"][:, None, None, None]
    c = params["contrast"][:, None, None, None]
    s = params["saturation"][:, None, None, None]
    images = images + tf.cast(b, images.dtype)
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)  # [N, 1, 1, 1]
    images = (images - mean) * tf.cast(c, images.dtype) + mean
    grey = tf.reduce_mean(images, axis=-1, keepdims=True)  # [N, H, W, 1]
    return (images - grey) * tf.cast(s, images.dtype) + grey


def augment(images, masks=None, *, seed, prob, geometry=True, colour=True):
    """Augments images and masks of one batch with one draw of parameters per sample.

    Args:
        images: one [N, H, W, 3] tensor in [-1, 1], or a list of them at different resolutions
            of the same aspect ratio (a generator's multi-scale outputs): all get the same
            geometry and colour change.
        masks: None, one [N, h, w, K] float tensor (one-hot or class probabilities) or a list
            of them: the same geometry as the images, no colour change.
        seed: [2] int tensor of the stateless random ops.
        prob: probability of each transform per sample (0 returns the inputs unchanged).
        geometry, colour: enable the transform groups.

    Returns:
        (images, masks) in the structure given (masks None when None was given).
    """
    single_image = not isinstance(images, (list, tuple))
    image_list = [images] if single_image else list(images)
    single_mask = masks is not None and not isinstance(masks, (list, tuple))
    mask_list = [] if masks is None else ([masks] if single_mask else list(masks))
    if prob <= 0:
        return images, masks
    n = tf.shape(image_list[0])[0]
    params = sample_parameters(seed, n, prob, geometry=geometry, colour=colour)
    if geometry:
        image_list = [warp(x, params["matrix"]) for x in image_list]
        mask_list = [warp(m, params["matrix"]) for m in mask_list]
    if colour:
        image_list = [adjust_colour(x, params) for x in image_list]
    out_images = image_list[0] if single_image else image_list
    if masks is None:
        return out_images, None
    return out_images, (mask_list[0] if single_mask else mask_list)
