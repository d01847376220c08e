"""OSMIS / SIV-GAN networks: the multi-scale generator of images and masks, and the three-branch
discriminator (low-level, content, layout) with feature augmentation.

From Sushko et al., "One-Shot Synthesis of Images and Segmentation Masks" (WACV 2023) and
"Generating Novel Scene Compositions from Single Images and Videos" (SIV-GAN):

- Generator: z [N, z_dim] -> a transposed conv whose kernel is the noise map (h0, w0) ->
  `num_blocks` residual blocks (leaky ReLU 0.2, nearest x2 upsampling from the second block on,
  two spectral-norm 3x3 convs, a 1x1 spectral-norm shortcut). Block widths are
  ch_g * (8, ..., 8, 4, 2, 1) (256 .. 32 for ch_g = 32). Every block has a spectral-norm 3x3 RGB
  head with tanh (the multi-scale images, coarsest first); the last block also feeds a 3x3 mask
  head with a softmax over the K classes (K = the paper's N + 1 with the background).
- Discriminator: widths ch_d * (1, 2, 4, 8, 8, ...). A low-level branch of `num_blocks_ll`
  residual downsampling blocks reads the finest image and, at block i > 0, the image of half the
  resolution (through its own 3x3 RGB conv; multi-scale gradients). Its features feed
  * the content branch: with masks, the features are multiplied by each class's mask (K copies of
    the batch, class-major), globally averaged, passed through 1x1 residual blocks, and every
    block decides "class k or fake" (K + 1 logits); without masks the average goes through the
    same blocks to one real / fake logit;
  * the layout branch: residual downsampling 3x3 blocks squeezed to one channel, a decision map
    per block (the block's one channel plus a learned bias, see `OSMISLayoutDecision`).
  Feature augmentation (real samples only, stateless random ops): content channel mixing between
  sample pairs and channel dropping; layout rectangle swaps between sample pairs (with masks only
  over background, never cutting an object) and, with masks, objects duplicated or removed by a
  random shift onto background.

All networks are NHWC; images are float32 in [-1, 1]; masks [N, H, W, K] float (one-hot for real
samples, class probabilities or their straight-through hard version for generated ones).
"""

import keras
import tensorflow as tf
from keras import ops

from models.layers import SNConv2D, leaky_relu

# The reference initialises every conv kernel with N(0, 0.02).
_INIT_STD = 0.02
GENERATOR_MULTIPLIERS = (8, 8, 8, 8, 8, 8, 8, 4, 2, 1)  # the last num_blocks + 1 are used
DISCRIMINATOR_MULTIPLIERS = (1, 2, 4, 8, 8, 8, 8, 8, 8)  # the first num_blocks + 1 are used
# Width of the multi-scale image input at low-level block i > 0: its block's width / 8.
_MSG_RATIO = 8
# Feature augmentation takes between these fractions of the channels / of each side.
_FA_RANGE = (0.1, 0.3)
_RECT_RANGE = (0.1, 0.5)


def _init():
    return keras.initializers.RandomNormal(stddev=_INIT_STD)


def generator_channels(num_blocks, ch_g):
    """Widths [C0, C1, ..., C_num_blocks]: C0 of the noise map, then one per block."""
    if not 1 <= num_blocks <= len(GENERATOR_MULTIPLIERS) - 1:
        raise ValueError(f"num_blocks={num_blocks} must lie in 1..{len(GENERATOR_MULTIPLIERS) - 1}")
    return [int(m * ch_g) for m in GENERATOR_MULTIPLIERS[-num_blocks - 1 :]]


def discriminator_channels(num_blocks, ch_d):
    """Widths [C0, ..., C_num_blocks] of the discriminator."""
    if not 1 <= num_blocks <= len(DISCRIMINATOR_MULTIPLIERS) - 1:
        raise ValueError(
            f"num_blocks_d={num_blocks} must lie in 1..{len(DISCRIMINATOR_MULTIPLIERS) - 1}"
        )
    return [int(m * ch_d) for m in DISCRIMINATOR_MULTIPLIERS[: num_blocks + 1]]


def count_parameters(layer):
    return int(sum(int(ops.size(v)) for v in layer.trainable_weights))


def upsample_nearest(x):
    """Nearest-neighbour x2 upsampling: [N, H, W, C] -> [N, 2H, 2W, C]."""
    return ops.repeat(ops.repeat(x, 2, axis=1), 2, axis=2)


def downsample_average(x):
    """2 x 2 average pooling (floor of odd sizes, as PyTorch's AvgPool2d(2))."""
    return ops.average_pool(x, 2, strides=2, padding="valid")


def resize_bilinear_half(x):
    """Halves an image bilinearly with half-pixel centres (PyTorch's align_corners=False)."""
    shape = ops.shape(x)
    return tf.image.resize(x, (shape[1] // 2, shape[2] // 2), method="bilinear", antialias=False)


@keras.saving.register_keras_serializable(package="semsynth")
class OSMISGeneratorBlock(keras.layers.Layer):
    """Residual generator block: LReLU, (x2 nearest), SN 3x3 conv, LReLU, SN 3x3 conv, plus a
    (x2 nearest) SN 1x1 shortcut without bias.

    Args:
        in_channels: input width.
        out_channels: output width (the middle width is min(in, out)).
        upsample: double the resolution (every block but the first).
        **kwargs: forwarded to keras.layers.Layer.

    Example:
    >>> block = OSMISGeneratorBlock(16, 8, upsample=True)
    >>> block(ops.zeros((2, 4, 5, 16))).shape
    (2, 8, 10, 8)
    """

    def __init__(self, in_channels, out_channels, upsample=True, **kwargs):
        super().__init__(**kwargs)
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.upsample = bool(upsample)
        middle = min(self.in_channels, self.out_channels)
        # === Layers ===
        self.conv1 = SNConv2D(middle, 3, kernel_initializer=_init(), name="conv1")
        self.conv2 = SNConv2D(self.out_channels, 3, kernel_initializer=_init(), name="conv2")
        self.shortcut = SNConv2D(
            self.out_channels, 1, use_bias=False, kernel_initializer=_init(), name="shortcut"
        )

    def build(self, input_shape):
        n, h, w, _ = input_shape
        scale = 2 if self.upsample else 1
        up = (n, None if h is None else h * scale, None if w is None else w * scale)
        self.conv1.build((*up, self.in_channels))
        self.conv2.build((*up, min(self.in_channels, self.out_channels)))
        self.shortcut.build((*up, self.in_channels))

    def call(self, x, training=None):
        h = x
        x = leaky_relu(x, 0.2)
        if self.upsample:
            x = upsample_nearest(x)  # [N, 2H, 2W, Cin]
            h = upsample_nearest(h)
        x = self.conv1(x, training=training)
        x = self.conv2(leaky_relu(x, 0.2), training=training)
        return self.shortcut(h, training=training) + x

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        s = 2 if self.upsample else 1
        return (n, None if h is None else h * s, None if w is None else w * s, self.out_channels)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "in_channels": self.in_channels,
                "out_channels": self.out_channels,
                "upsample": self.upsample,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="semsynth")
class OSMISGenerator(keras.Model):
    """z -> multi-scale images (and a mask) of one scene.

    Args:
        noise_shape: (h0, w0), the noise map's size (3-7 px per side by the configuration rule).
        num_blocks: residual blocks; the output is (h0, w0) * 2 ** (num_blocks - 1).
        num_classes: K mask classes (the paper's N + 1); 0 for SIV-GAN (images only).
        z_dim: length of z (64 in the paper).
        ch_g: width multiplier (32 in the paper: widths 256 .. 32).
        **kwargs: forwarded to keras.Model.

    Call: z [N, z_dim] -> a list: the num_blocks images [N, h_i, w_i, 3] in [-1, 1], coarsest
    first, then (num_classes > 0) the mask probabilities [N, H, W, K]. `generate` returns the
    same as a dict with the blocks' tanh features for the diversity regulariser.

    Example:
    >>> g = OSMISGenerator(noise_shape=(3, 5), num_blocks=3, num_classes=4, z_dim=8, ch_g=2)
    >>> [tuple(t.shape) for t in g(ops.zeros((2, 8)))]
    [(2, 3, 5, 3), (2, 6, 10, 3), (2, 12, 20, 3), (2, 12, 20, 4)]
    """

    def __init__(self, noise_shape, num_blocks, num_classes=0, z_dim=64, ch_g=32, **kwargs):
        super().__init__(**kwargs)
        self.noise_shape = tuple(int(s) for s in noise_shape)
        self.num_blocks = int(num_blocks)
        self.num_classes = int(num_classes)
        self.z_dim = int(z_dim)
        self.ch_g = ch_g
        channels = generator_channels(self.num_blocks, ch_g)
        self.channels = channels
        # === Layers ===
        # A transposed conv whose kernel covers the noise map: z as a 1 x 1 map -> [h0, w0, C0].
        self.first = keras.layers.Conv2DTranspose(
            channels[0], self.noise_shape, padding="valid", kernel_initializer=_init(), name="first"
        )
        self.blocks = [
            OSMISGeneratorBlock(channels[i], channels[i + 1], upsample=i > 0, name=f"block{i}")
            for i in range(self.num_blocks)
        ]
        self.to_rgb = [
            SNConv2D(3, 3, kernel_initializer=_init(), name=f"to_rgb{i}")
            for i in range(self.num_blocks)
        ]
        self.to_mask = (
            SNConv2D(self.num_classes, 3, kernel_initializer=_init(), name="to_mask")
            if self.num_classes
            else None
        )

    def build(self, input_shape):
        h, w = self.noise_shape
        self.first.build((None, 1, 1, self.z_dim))
        for i, (block, rgb) in enumerate(zip(self.blocks, self.to_rgb)):
            block.build((None, h, w, self.channels[i]))
            if i > 0:
                h, w = 2 * h, 2 * w
            rgb.build((None, h, w, self.channels[i + 1]))
        if self.to_mask is not None:
            self.to_mask.build((None, h, w, self.channels[-1]))

    @property
    def output_size(self):
        scale = 2 ** (self.num_blocks - 1)
        return (self.noise_shape[0] * scale, self.noise_shape[1] * scale)

    def generate(self, z, training=None):
        """z [N, z_dim] -> {"images": list, "mask": [N, H, W, K] or None, "features": list}."""
        x = self.first(ops.reshape(z, (-1, 1, 1, self.z_dim)))  # [N, h0, w0, C0]
        images, features = [], []
        for block, rgb in zip(self.blocks, self.to_rgb):
            x = block(x, training=training)  # [N, h_i, w_i, C_i]
            images.append(ops.tanh(rgb(x, training=training)))  # [N, h_i, w_i, 3]
            features.append(ops.tanh(x))
        mask = None
        if self.to_mask is not None:
            logits = self.to_mask(x, training=training)  # [N, H, W, K]
            mask = ops.softmax(ops.cast(logits, "float32"), axis=-1)
        return {"images": images, "mask": mask, "features": features}

    def call(self, z, training=None):
        out = self.generate(z, training=training)
        return [*out["images"], *([out["mask"]] if out["mask"] is not None else [])]

    def compute_output_shape(self, input_shape):
        n = input_shape[0]
        h, w = self.noise_shape
        shapes = []
        for i in range(self.num_blocks):
            if i > 0:
                h, w = 2 * h, 2 * w
            shapes.append((n, h, w, 3))
        if self.num_classes:
            shapes.append((n, h, w, self.num_classes))
        return shapes

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "noise_shape": self.noise_shape,
                "num_blocks": self.num_blocks,
                "num_classes": self.num_classes,
                "z_dim": self.z_dim,
                "ch_g": self.ch_g,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="semsynth")
class OSMISDiscriminatorBlock(keras.layers.Layer):
    """Residual discriminator block: (LReLU), conv, LReLU, conv, (2 x 2 average pool), plus an
    SN 1x1 shortcut (pooled too) when the width changes or the block downsamples; a block from
    one channel to one channel keeps the identity shortcut (see `OSMISLayoutDecision` for why).

    Args:
        in_channels: input width.
        out_channels: output width (the middle width is min(in, out)).
        kernel_size: 3 (low-level and layout blocks) or 1 (content blocks, on a 1 x 1 map).
        downsample: halve the resolution.
        preactivate: start with a leaky ReLU (all blocks but the first of the low-level branch).
        **kwargs: forwarded to keras.layers.Layer.

    Example:
    >>> block = OSMISDiscriminatorBlock(4, 8)
    >>> block(ops.zeros((2, 8, 6, 4))).shape
    (2, 4, 3, 8)
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size=3,
        downsample=True,
        preactivate=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size = int(kernel_size)
        self.downsample = bool(downsample)
        self.preactivate = bool(preactivate)
        middle = min(self.in_channels, self.out_channels)
        k = self.kernel_size
        # === Layers ===
        self.conv1 = SNConv2D(middle, k, kernel_initializer=_init(), name="conv1")
        self.conv2 = SNConv2D(self.out_channels, k, kernel_initializer=_init(), name="conv2")
        # A spectral-norm 1 x 1 conv from one channel to one channel is the constant sign(W) (no
        # gradient reaches W): the identity, with a sign frozen at a random value, is all it could
        # be. The layout blocks after the first use the identity itself (see OSMISLayoutDecision).
        learned_shortcut = self.in_channels != self.out_channels or (
            self.downsample and self.in_channels > 1
        )
        self.shortcut = (
            SNConv2D(
                self.out_channels, 1, use_bias=False, kernel_initializer=_init(), name="shortcut"
            )
            if learned_shortcut
            else None
        )

    def build(self, input_shape):
        shape = tuple(input_shape[:3])
        self.conv1.build((*shape, self.in_channels))
        self.conv2.build((*shape, min(self.in_channels, self.out_channels)))
        if self.shortcut is not None:
            self.shortcut.build((*shape, self.in_channels))

    def call(self, x, training=None):
        h = x
        if self.preactivate:
            x = leaky_relu(x, 0.2)
        x = self.conv1(x, training=training)
        x = self.conv2(leaky_relu(x, 0.2), training=training)
        if self.shortcut is not None:
            h = self.shortcut(h, training=training)
        if self.downsample:
            x, h = downsample_average(x), downsample_average(h)  # [N, H/2, W/2, Cout]
        return x + h

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        if self.downsample:
            h = None if h is None else h // 2
            w = None if w is None else w // 2
        return (n, h, w, self.out_channels)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "in_channels": self.in_channels,
                "out_channels": self.out_channels,
                "kernel_size": self.kernel_size,
                "downsample": self.downsample,
                "preactivate": self.preactivate,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="semsynth")
class OSMISLayoutDecision(keras.layers.Layer):
    """The decision of one layout block: its one-channel map plus a learned bias.

    The reference decides with a spectral-norm 1 x 1 conv from one channel to one channel. Its
    one-element kernel W is normalised to W / |W| = sign(W): a constant whose gradient is zero,
    so each block's decision sign stays the random sign of its initial W, and so does the sign of
    each later block's 1 -> 1 shortcut. When two consecutive signs disagree, block k rewards
    "real" where block k + 1 (which reads block k's map through its shortcut) rewards "fake", and
    D cannot satisfy both. Measured (built-in scene at 32 x 48, ch_d 8, 300 D steps against a
    fixed untrained generator): the first layout decision ended up inverted (real -0.5 .. -1.4
    vs fake +0.3 .. +1.4 logits) and the branch's BCE stayed at 0.46 per decision, while the
    low-level branch reached 0.04; with the identity it reached 0.00. Here every sign is +1, so
    all layout decisions agree by construction; the identity is 1-Lipschitz, as the
    spectral-norm conv was.

    Args:
        **kwargs: forwarded to keras.layers.Layer.

    Example:
    >>> OSMISLayoutDecision()(ops.ones((2, 3, 4, 1))).shape
    (2, 3, 4, 1)
    """

    def build(self, input_shape):
        if input_shape[-1] != 1:
            raise ValueError(f"OSMISLayoutDecision reads one channel, got {input_shape[-1]}")
        self.bias = self.add_weight(shape=(1,), initializer="zeros", name="bias")

    def call(self, x):
        return x + ops.cast(self.bias, x.dtype)  # [N, h, w, 1]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


# === Feature augmentation (real samples only) ==================================================


def _fold(seed, index):
    return tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), index)


def _pair_partner(n):
    """[n] int32: the partner of each sample, (0 1)(2 3)...; an odd last sample keeps itself."""
    index = tf.range(n)
    partner = index + 1 - 2 * tf.math.floormod(index, 2)
    return tf.where(partner < n, partner, index)


def _random_channel_subset(seed, rows, channels):
    """[rows, C] float32: 1 on a random 10-30 % of the channels of each row."""
    fraction = tf.random.stateless_uniform(
        [rows, 1], seed=_fold(seed, 0), minval=_FA_RANGE[0], maxval=_FA_RANGE[1]
    )
    count = tf.floor(fraction * tf.cast(channels, tf.float32))  # [rows, 1]
    noise = tf.random.stateless_uniform(tf.stack([rows, channels]), seed=_fold(seed, 1))
    rank = tf.cast(tf.argsort(tf.argsort(noise, axis=-1), axis=-1), tf.float32)  # [rows, C]
    return tf.cast(rank < count, tf.float32)


def content_feature_augmentation(y, seed, prob):
    """Content FA on globally pooled features y [N, 1, 1, C]: with probability prob (one draw per
    batch) pairs of samples swap a random 10-30 % of their channels; with probability prob a
    random 10-30 % of the channels is zeroed for the whole batch."""
    shape = tf.shape(y)
    n, c = shape[0], shape[3]
    mix = tf.cast(tf.random.stateless_uniform([], seed=_fold(seed, 1)) < prob, y.dtype)
    chosen = _random_channel_subset(_fold(seed, 2), n, c)  # [N, C]
    # Partners swap the same channels: take the lower index's subset for both.
    partner = _pair_partner(n)
    chosen = tf.gather(chosen, tf.minimum(tf.range(n), partner))
    swap = tf.cast(chosen, y.dtype)[:, None, None, :] * mix  # [N, 1, 1, C]
    y = y * (1 - swap) + tf.gather(y, partner) * swap
    drop = tf.cast(tf.random.stateless_uniform([], seed=_fold(seed, 3)) < prob, y.dtype)
    dropped = _random_channel_subset(_fold(seed, 4), 1, c)  # [1, C]
    return y * (1 - tf.cast(dropped, y.dtype)[:, None, None, :] * drop)


def _random_rectangles(seed, n, h, w):
    """[n, H, W] float32 boxes: centre uniform, sides 10-50 % of each side, moved inside."""
    hf, wf = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
    u = tf.random.stateless_uniform([n, 4], seed=seed)
    size_y = tf.maximum(tf.round((_RECT_RANGE[0] + u[:, 0] * 0.4) * hf), 1.0)
    size_x = tf.maximum(tf.round((_RECT_RANGE[0] + u[:, 1] * 0.4) * wf), 1.0)
    top = tf.round(tf.clip_by_value(u[:, 2] * hf - size_y / 2, 0.0, hf - size_y))
    left = tf.round(tf.clip_by_value(u[:, 3] * wf - size_x / 2, 0.0, wf - size_x))
    ys = tf.range(hf)[None, :, None]  # [1, H, 1]
    xs = tf.range(wf)[None, None, :]  # [1, 1, W]
    inside_y = (ys >= top[:, None, None]) & (ys < (top + size_y)[:, None, None])
    inside_x = (xs >= left[:, None, None]) & (xs < (left + size_x)[:, None, None])
    return tf.cast(inside_y & inside_x, tf.float32)  # [n, H, W]


def _shift(x, dy, dx):
    """x [H, W, ...] moved by (dy, dx) pixels, zeros where nothing moves in."""
    h, w = tf.shape(x)[0], tf.shape(x)[1]
    padded = tf.pad(x, [[h, h], [w, w]] + [[0, 0]] * (len(x.shape) - 2))
    return padded[h - dy : 2 * h - dy, w - dx : 2 * w - dx]


def layout_feature_augmentation(y, masks, seed, prob):
    """Layout FA on features y [N, h, w, C] of real samples, with masks [N, H, W, K] or None.

    - swap: with probability prob per sample pair, a random rectangle (10-50 % of each side) is
      swapped between the two samples; with masks only when it covers background (class 0) in
      both, so no object is cut.
    - with masks, move: per sample, one random object class (1..K-1) is shifted by a random
      offset; where the shifted area lands on background only (and inside the map), the object is
      duplicated there with probability prob and, with probability prob, its old area is filled
      with the background found at the shifted place.
    """
    shape = tf.shape(y)
    n, h, w = shape[0], shape[1], shape[2]
    partner = _pair_partner(n)
    rect = _random_rectangles(_fold(seed, 10), n, h, w)  # [N, h, w]
    rect = tf.gather(rect, tf.minimum(tf.range(n), partner))  # partners share the rectangle
    apply = tf.cast(tf.random.stateless_uniform([n], seed=_fold(seed, 11)) < prob, tf.float32)
    apply = tf.gather(apply, tf.minimum(tf.range(n), partner))
    apply *= tf.cast(partner != tf.range(n), tf.float32)  # an unpaired sample keeps its own
    if masks is None:
        swap = (rect * apply[:, None, None])[..., None]  # [N, h, w, 1]
        return y * (1 - swap) + tf.gather(y, partner) * swap
    small = tf.image.resize(masks, (h, w), method="nearest")  # [N, h, w, K]
    labels = tf.argmax(small, axis=-1, output_type=tf.int32)  # [N, h, w]
    objects = tf.cast(labels > 0, tf.float32)
    touched = tf.reduce_sum(rect * (objects + tf.gather(objects, partner)), axis=[1, 2])
    apply *= tf.cast(touched == 0, tf.float32)
    swap = (rect * apply[:, None, None])[..., None]
    y = y * (1 - swap) + tf.gather(y, partner) * swap
    labels = (
        tf.cast(labels, tf.float32) * (1 - swap[..., 0])
        + tf.cast(tf.gather(labels, partner), tf.float32) * swap[..., 0]
    )
    labels = tf.cast(labels, tf.int32)
    num_classes = tf.shape(masks)[-1]
    if masks.shape[-1] is not None and masks.shape[-1] < 2:
        return y  # background only: no objects to move
    draws = tf.random.stateless_uniform([n, 5], seed=_fold(seed, 12))
    cls = 1 + tf.cast(draws[:, 0] * tf.cast(num_classes - 1, tf.float32), tf.int32)
    dy = tf.cast(tf.round((draws[:, 1] * 2 - 1) * tf.cast(h, tf.float32) / 2), tf.int32)
    dx = tf.cast(tf.round((draws[:, 2] * 2 - 1) * tf.cast(w, tf.float32) / 2), tf.int32)
    duplicate = draws[:, 3] < prob
    remove = draws[:, 4] < prob

    def move_one(args):
        features, label, c, sy, sx, dup, rem = args
        area = tf.cast(tf.equal(label, c), tf.float32)  # [h, w]
        moved = _shift(area, sy, sx)
        inside = tf.equal(tf.reduce_sum(moved), tf.reduce_sum(area))
        free = tf.equal(tf.reduce_sum(moved * tf.cast(label > 0, tf.float32)), 0.0)
        ok = tf.cast(inside & free & (tf.reduce_sum(area) > 0), features.dtype)
        out = features
        # Remove first (reads the original features), then duplicate onto the new place.
        fill = _shift(features, -sy, -sx)  # out[p] = features[p + shift]: the background there
        remove_w = (area * ok * tf.cast(rem, features.dtype))[..., None]
        out = out * (1 - remove_w) + fill * remove_w
        dup_w = (moved * ok * tf.cast(dup, features.dtype))[..., None]
        out = out * (1 - dup_w) + _shift(features, sy, sx) * dup_w
        return out

    return tf.map_fn(
        move_one,
        (y, labels, cls, dy, dx, duplicate, remove),
        fn_output_signature=tf.TensorSpec(y.shape[1:], y.dtype),
    )


@keras.saving.register_keras_serializable(package="semsynth")
class OSMISDiscriminator(keras.Model):
    """Low-level, content and layout branches with a decision at every block.

    Args:
        num_blocks: total blocks (low-level + content, = low-level + layout).
        num_blocks_ll: low-level blocks (each reads one more image scale).
        num_classes: K mask classes (content decides "class k or fake"); 0 for SIV-GAN.
        ch_d: width multiplier (32 in the paper).
        prob_fa_content, prob_fa_layout: probabilities of the feature augmentations (0.4).
        **kwargs: forwarded to keras.Model.

    Call: (images, masks=None, feature_augment=False, fa_seed=None) with images a list of
    num_blocks_ll tensors [N, H / 2**i, W / 2**i, 3], finest first, and masks [N, H, W, K]
    (needed when num_classes > 0). Returns a flat list of decision maps: num_blocks_ll low-level
    maps [N, h, w, 1], then the content logits ([K*N, 1, 1, K+1] with masks, else [N, 1, 1, 1]),
    then the layout maps [N, h, w, 1]; `split` groups them by branch.

    Example:
    >>> d = OSMISDiscriminator(num_blocks=4, num_blocks_ll=2, ch_d=2)
    >>> len(d([ops.zeros((2, 32, 32, 3)), ops.zeros((2, 16, 16, 3))]))
    6
    """

    def __init__(
        self,
        num_blocks,
        num_blocks_ll,
        num_classes=0,
        ch_d=32,
        prob_fa_content=0.4,
        prob_fa_layout=0.4,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_blocks = int(num_blocks)
        self.num_blocks_ll = int(num_blocks_ll)
        self.num_classes = int(num_classes)
        self.ch_d = ch_d
        self.prob_fa_content = float(prob_fa_content)
        self.prob_fa_layout = float(prob_fa_layout)
        if not 1 <= self.num_blocks_ll < self.num_blocks:
            raise ValueError(
                f"need 1 <= num_blocks_ll ({num_blocks_ll}) < num_blocks ({num_blocks})"
            )
        channels = discriminator_channels(self.num_blocks, ch_d)
        self.channels = channels
        # === Layers ===
        self.from_rgb, self.body_ll, self.final_ll = [], [], []
        for i in range(self.num_blocks_ll):
            msg = channels[0] if i == 0 else max(1, channels[i] // _MSG_RATIO)
            in_channels = channels[0] if i == 0 else channels[i] + msg
            self.from_rgb.append(SNConv2D(msg, 3, kernel_initializer=_init(), name=f"rgb{i}"))
            self.body_ll.append(
                OSMISDiscriminatorBlock(
                    in_channels, channels[i + 1], preactivate=i > 0, name=f"ll{i}"
                )
            )
            self.final_ll.append(SNConv2D(1, 1, kernel_initializer=_init(), name=f"ll_out{i}"))
        content_out = self.num_classes + 1 if self.num_classes else 1
        self.body_content, self.final_content = [], []
        self.body_layout, self.final_layout = [], []
        for i in range(self.num_blocks_ll, self.num_blocks):
            k = i - self.num_blocks_ll
            self.body_content.append(
                OSMISDiscriminatorBlock(
                    channels[i], channels[i + 1], 1, downsample=False, name=f"content{k}"
                )
            )
            self.final_content.append(
                SNConv2D(content_out, 1, kernel_initializer=_init(), name=f"content_out{k}")
            )
            self.body_layout.append(
                OSMISDiscriminatorBlock(channels[i] if k == 0 else 1, 1, name=f"layout{k}")
            )
            self.final_layout.append(OSMISLayoutDecision(name=f"layout_out{k}"))

    def build(self, input_shape):
        shapes = input_shape["images"] if isinstance(input_shape, dict) else input_shape
        if not isinstance(shapes[0], (list, tuple)):
            shapes = [shapes]
        h, w = shapes[0][1], shapes[0][2]
        c = self.channels
        for i in range(self.num_blocks_ll):
            size = (None, None if h is None else h // 2**i, None if w is None else w // 2**i)
            self.from_rgb[i].build((*size, 3))
            in_channels = c[0] if i == 0 else c[i] + max(1, c[i] // _MSG_RATIO)
            self.body_ll[i].build((*size, in_channels))
            self.final_ll[i].build((*size[:1], None, None, c[i + 1]))
        for k, i in enumerate(range(self.num_blocks_ll, self.num_blocks)):
            self.body_content[k].build((None, 1, 1, c[i]))
            self.final_content[k].build((None, 1, 1, c[i + 1]))
            self.body_layout[k].build((None, None, None, c[i] if k == 0 else 1))
            self.final_layout[k].build((None, None, None, 1))

    @property
    def num_outputs(self):
        content = self.num_blocks - self.num_blocks_ll
        return {"low_level": self.num_blocks_ll, "content": content, "layout": content}

    def split(self, outputs):
        """The flat output list -> {"low_level": [...], "content": [...], "layout": [...]}."""
        counts = self.num_outputs
        a, b = counts["low_level"], counts["low_level"] + counts["content"]
        return {"low_level": outputs[:a], "content": outputs[a:b], "layout": outputs[b:]}

    def call(self, images, masks=None, feature_augment=False, fa_seed=None, training=None):
        if not isinstance(images, (list, tuple)):
            images = [images]
        if self.num_classes and masks is None:
            raise ValueError("OSMISDiscriminator with num_classes > 0 needs masks")
        outputs = []
        # --- low-level branch ---
        y = self.from_rgb[0](images[0], training=training)  # [N, H, W, C0]
        for i in range(self.num_blocks_ll):
            if i > 0:
                msg = self.from_rgb[i](images[i], training=training)  # [N, H_i, W_i, C_i / 8]
                y = ops.concatenate([y, msg], axis=-1)  # [N, H_i, W_i, C_i + C_i / 8]
            y = self.body_ll[i](y, training=training)
            outputs.append(self.final_ll[i](y, training=training))
        # --- content branch ---
        if self.num_classes:
            small = tf.image.resize(masks, tf.shape(y)[1:3], method="nearest")  # [N, h, w, K]
            # K copies of the batch, class-major: copy k holds the features inside class k.
            masked = ops.expand_dims(ops.transpose(small, (3, 0, 1, 2)), -1) * y[None]
            y_con = ops.reshape(masked, (-1, *ops.shape(y)[1:]))  # [K*N, h, w, C]
        else:
            y_con = y
        y_con = ops.mean(y_con, axis=(1, 2), keepdims=True)  # [K*N, 1, 1, C]
        if feature_augment and self.prob_fa_content > 0:
            if self.num_classes:
                # With masks only the background copy (class 0) is augmented.
                n = ops.shape(y)[0]
                background = content_feature_augmentation(
                    y_con[:n], _fold(fa_seed, 1), self.prob_fa_content
                )
                y_con = ops.concatenate([background, y_con[n:]], axis=0)  # [K*N, 1, 1, C]
            else:
                y_con = content_feature_augmentation(y_con, _fold(fa_seed, 1), self.prob_fa_content)
        for block, final in zip(self.body_content, self.final_content):
            y_con = block(y_con, training=training)
            outputs.append(final(y_con, training=training))
        # --- layout branch ---
        y_lay = y
        if feature_augment and self.prob_fa_layout > 0:
            y_lay = layout_feature_augmentation(y, masks, _fold(fa_seed, 2), self.prob_fa_layout)
        for block, final in zip(self.body_layout, self.final_layout):
            y_lay = block(y_lay, training=training)
            outputs.append(final(y_lay, training=training))
        return outputs

    def compute_output_shape(self, images_shape, masks_shape=None):
        shapes = images_shape if isinstance(images_shape[0], (list, tuple)) else [images_shape]
        n, h, w = shapes[0][:3]
        out = []
        for _ in range(self.num_blocks_ll):
            h, w = h // 2, w // 2
            out.append((n, h, w, 1))
        k = self.num_classes
        for _ in range(self.num_blocks - self.num_blocks_ll):
            out.append((None if n is None else n * max(k, 1), 1, 1, k + 1 if k else 1))
        for _ in range(self.num_blocks - self.num_blocks_ll):
            h, w = h // 2, w // 2
            out.append((n, h, w, 1))
        return out

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_blocks": self.num_blocks,
                "num_blocks_ll": self.num_blocks_ll,
                "num_classes": self.num_classes,
                "ch_d": self.ch_d,
                "prob_fa_content": self.prob_fa_content,
                "prob_fa_layout": self.prob_fa_layout,
            }
        )
        return config
