"""Semantic Palette layout networks (Le Moing et al., CVPR 2021), Keras 3, NHWC.

A progressive-growing GAN (ProGAN: equalised learning rate, PixelNorm, leaky ReLU 0.2) whose
generator takes a latent z and a palette (class proportions) and outputs a soft semantic layout
whose class proportions follow the palette:

- `EqualizedConv2D`, `EqualizedDense`: weights stored N(0, 1), scaled at run time by
  gain / sqrt(fan_in) (He's constant), so Adam updates every layer at the same speed.
- `PixelNorm`: x / sqrt(mean_c x^2 + eps) per pixel.
- `AssistedActivation`: the palette-assisted output activation. Class c's logits get a softmax
  over the H x W positions scaled by p_c * H * W (so class c's mask covers exactly p_c of the
  image), then the masks are normalised across classes per pixel.
- `ProgressiveLayoutGenerator`: (z, palette) -> soft layouts at every level up to `level`,
  starting at start_height x start_width (4 x 8 for 1:2 scenes) and doubling per level;
  channels min(max_channels, channel_base / 2**level) (min(512, 2**(12 - level)) in the paper).
  Each block gets the previous level's layout, upsampled, back as a bias (a 1x1 conv of it added
  to its input). A new level fades in: alpha * its layout + (1 - alpha) * the previous level's,
  upsampled.
- `ProgressiveDiscriminator`: the unconditional ProGAN critic on soft layouts, with the same
  fade-in (the new level's from-layout + block blended with the previous level's from-layout
  of the 2x average-pooled input) and a minibatch-stddev feature before its last block.
- `PartialLayoutGenerator`: the partial-editing generator: the same progressive generator with
  SPADE layers (models.spade.networks.SPADE) conditioned on the input layout with a band masked
  out plus a "keep" channel, the proportion delta as its palette input, and the output merged
  with the input outside the band (trained by models.palette.trainer.PalettePartialGAN).

Levels are Python ints (each level is its own graph: the trainer switches between them with
tf.switch_case); alpha may be a tensor.
"""

import math

import keras
import tensorflow as tf
from keras import ops

from models.spade.networks import SPADE
from models.stylegan2.networks import minibatch_stddev

LRELU_SLOPE = 0.2
HE_GAIN = math.sqrt(2.0)


def level_channels(level, channel_base=4096, max_channels=512):
    """Feature channels of `level`: min(max_channels, channel_base // 2**level), at least 1."""
    return max(1, min(int(max_channels), int(channel_base) // 2 ** int(level)))


def level_size(level, start_height=4, start_width=8):
    """(H, W) of `level`: the start size doubled `level` times."""
    return int(start_height) * 2 ** int(level), int(start_width) * 2 ** int(level)


def pixel_norm(x, epsilon=1e-8):
    """x / sqrt(mean over channels of x^2 + epsilon), per position."""
    return x * tf.math.rsqrt(tf.reduce_mean(tf.square(x), axis=-1, keepdims=True) + epsilon)


def _lrelu(x):
    # tf.nn.leaky_relu, not models.layers.leaky_relu: the gradient penalty differentiates the
    # critic twice, and the latter's custom gradient has no second derivative.
    return tf.nn.leaky_relu(x, alpha=LRELU_SLOPE)


def upsample2x(x):
    """Nearest-neighbour x2: [N, H, W, C] -> [N, 2H, 2W, C]."""
    return ops.repeat(ops.repeat(x, 2, axis=1), 2, axis=2)


def downsample2x(x):
    """2x2 average pooling: [N, H, W, C] -> [N, H/2, W/2, C]."""
    return tf.nn.avg_pool2d(x, 2, 2, "VALID")


def _check_level(level, num_levels, owner):
    level = num_levels - 1 if level is None else level
    if not isinstance(level, int) or not 0 <= level < num_levels:
        raise ValueError(f"{owner}: `level` must be a Python int in [0, {num_levels}), got {level}")
    return level


# === Layers ===


@keras.saving.register_keras_serializable(package="semsynth")
class EqualizedConv2D(keras.layers.Layer):
    """Conv2D with equalised learning rate ("same" padding, stride 1).

    Args:
        filters: output channels.
        kernel_size: square kernel size (odd).
        gain: the run-time scale is gain / sqrt(kernel_size**2 * in_channels) (sqrt(2) before a
            leaky ReLU, 1 for the linear output convs).
        use_bias: add a bias (initialised to 0).
        **kwargs: forwarded to `keras.layers.Layer`.

    Call args:
        x: [N, H, W, Cin].
    Returns:
        [N, H, W, filters].

    Example:
    >>> EqualizedConv2D(8, 3)(ops.zeros((2, 4, 8, 3))).shape
    (2, 4, 8, 8)
    """

    def __init__(self, filters, kernel_size, gain=HE_GAIN, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        if int(kernel_size) % 2 != 1:
            raise ValueError(f"EqualizedConv2D: `kernel_size` must be odd, got {kernel_size}")
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.gain = float(gain)
        self.use_bias = bool(use_bias)

    def build(self, input_shape):
        fan_in = self.kernel_size**2 * int(input_shape[-1])
        self.scale = self.gain / math.sqrt(fan_in)
        k = self.kernel_size
        self.kernel = self.add_weight(
            shape=(k, k, int(input_shape[-1]), self.filters),
            initializer=keras.initializers.RandomNormal(stddev=1.0),
            name="kernel",
        )
        self.bias = (
            self.add_weight(shape=(self.filters,), initializer="zeros", name="bias")
            if self.use_bias
            else None
        )

    def call(self, x):
        x = tf.nn.conv2d(x, self.kernel * self.scale, strides=1, padding="SAME")  # [N, H, W, F]
        return x + self.bias if self.bias is not None else x

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            gain=self.gain,
            use_bias=self.use_bias,
        )
        return config


@keras.saving.register_keras_serializable(package="semsynth")
class EqualizedDense(keras.layers.Layer):
    """Dense layer with equalised learning rate.

    Args:
        units: output features.
        gain: run-time scale gain / sqrt(in_features).
        use_bias: add a bias (initialised to 0).
        **kwargs: forwarded to `keras.layers.Layer`.

    Call args:
        x: [N, Din].
    Returns:
        [N, units].
    """

    def __init__(self, units, gain=HE_GAIN, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.gain = float(gain)
        self.use_bias = bool(use_bias)

    def build(self, input_shape):
        self.scale = self.gain / math.sqrt(int(input_shape[-1]))
        self.kernel = self.add_weight(
            shape=(int(input_shape[-1]), self.units),
            initializer=keras.initializers.RandomNormal(stddev=1.0),
            name="kernel",
        )
        self.bias = (
            self.add_weight(shape=(self.units,), initializer="zeros", name="bias")
            if self.use_bias
            else None
        )

    def call(self, x):
        x = tf.matmul(x, self.kernel * self.scale)  # [N, units]
        return x + self.bias if self.bias is not None else x

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, gain=self.gain, use_bias=self.use_bias)
        return config


@keras.saving.register_keras_serializable(package="semsynth")
class PixelNorm(keras.layers.Layer):
    """ProGAN's pixelwise feature normalisation: x / sqrt(mean_c x^2 + epsilon).

    Args:
        epsilon: added under the square root.
        **kwargs: forwarded to `keras.layers.Layer`.

    Call args:
        x: [..., C].
    Returns:
        x's shape; every position's feature vector has unit root-mean-square.
    """

    def __init__(self, epsilon=1e-8, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, x):
        return pixel_norm(x, self.epsilon)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(epsilon=self.epsilon)
        return config


@keras.saving.register_keras_serializable(package="semsynth")
class AssistedActivation(keras.layers.Layer):
    """The palette-assisted output activation of the layout generator.

    mask_c = softmax over the H*W positions of logits_c, times p_c * H * W: class c's mask sums
    to exactly p_c * H * W, i.e. it covers the target proportion p_c of the layout.
    layout = mask / sum_c mask per pixel: a distribution over classes at every pixel. Where the
    masks already sum to 1 per pixel (the spread loss drives them there) the normalisation is
    the identity and the layout's class mass equals the target exactly.

    Computed in log space (log mask = spatial log-softmax + log(p_c * H * W); the layout is
    the softmax of the log masks across classes), so every pixel's layout sums to 1 exactly
    even where all masks are tiny; a class of proportion 0 gets an all-zero mask.

    Args:
        **kwargs: forwarded to `keras.layers.Layer`.

    Call args:
        logits: [N, H, W, C] per-class scores.
        proportions: [N, C] target proportions (rows sum to 1).
    Returns:
        (layout [N, H, W, C], mask [N, H, W, C]).

    Example:
    >>> layout, mask = AssistedActivation()(ops.zeros((1, 4, 8, 3)), ops.ones((1, 3)) / 3)
    >>> float(ops.sum(mask[..., 0]))  # 1/3 of 32 pixels
    10.666667
    """

    def call(self, logits, proportions):
        logits = tf.cast(logits, tf.float32)
        shape = tf.shape(logits)
        n, h, w, c = shape[0], shape[1], shape[2], shape[3]
        flat = tf.reshape(logits, tf.stack([n, h * w, c]))  # [N, HW, C]
        area = tf.cast(h * w, tf.float32)
        target_mass = tf.cast(proportions, tf.float32) * area  # [N, C]
        # Each class's spatial distribution (sums to 1 over HW) times its target mass.
        log_mask = tf.nn.log_softmax(flat, axis=1) + tf.math.log(target_mass)[:, None, :]
        mask = tf.reshape(tf.exp(log_mask), shape)  # [N, H, W, C]
        layout = tf.reshape(tf.nn.softmax(log_mask, axis=-1), shape)  # mask / sum_c mask
        return layout, mask

    def compute_output_shape(self, logits_shape, proportions_shape):
        return tuple(logits_shape), tuple(logits_shape)


# === Networks ===


@keras.saving.register_keras_serializable(package="semsynth")
class ProgressiveLayoutGenerator(keras.Model):
    """Palette-conditioned progressive layout generator.

    Level 0: concat(PixelNorm(z), palette) -> EqualizedDense to [sh, sw, ch_0] -> LReLU ->
    PixelNorm -> 3x3 conv -> LReLU -> PixelNorm. Level k >= 1: nearest x2 upsampling, plus a 1x1
    conv of the previous level's soft layout (upsampled) as a bias, then two (3x3 conv, LReLU,
    PixelNorm). Every level has a 1x1 to-layout conv followed by the assisted activation.

    Args:
        num_classes: C, the layout's classes (the palette's length).
        z_dim: length of z (512 in the paper).
        num_levels: levels of the network; the last outputs start_size * 2**(num_levels - 1).
        start_height, start_width: the level-0 size (4 x 8 for 1:2 scenes).
        channel_base, max_channels: level k has min(max_channels, channel_base // 2**k)
            channels (4096 and 512 in the paper).
        feedback: feed each level's layout back into the next block (the paper's design).
        **kwargs: forwarded to `keras.Model`.

    Call args:
        z: [N, z_dim] latents.
        proportions: [N, C] palettes.
        level: Python int, the output level (default the last).
        alpha: fade-in weight of `level` (scalar float or tensor; 1 = the level alone).
    Returns:
        (layout [N, H, W, C] the (faded) output at `level`, [soft layout of each level
        0..level], [assisted mask of each level 0..level]).

    Example:
    >>> g = ProgressiveLayoutGenerator(num_classes=5, z_dim=8, num_levels=2, channel_base=16)
    >>> layout, layouts, masks = g(ops.zeros((2, 8)), ops.ones((2, 5)) / 5)
    >>> layout.shape, len(layouts)
    ((2, 8, 16, 5), 2)
    """

    def __init__(
        self,
        num_classes,
        z_dim=512,
        num_levels=6,
        start_height=4,
        start_width=8,
        channel_base=4096,
        max_channels=512,
        feedback=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.z_dim = int(z_dim)
        self.num_levels = int(num_levels)
        self.start_height = int(start_height)
        self.start_width = int(start_width)
        self.channel_base = int(channel_base)
        self.max_channels = int(max_channels)
        self.feedback = bool(feedback)
        if self.num_levels < 1 or self.num_classes < 2:
            raise ValueError(
                f"ProgressiveLayoutGenerator: num_levels >= 1 and num_classes >= 2, got "
                f"{num_levels} and {num_classes}"
            )
        channels = [self.channels(k) for k in range(self.num_levels)]

        # === Layers ===
        # ProGAN's first layer: a dense "4x4 conv" with gain sqrt(2) / 4.
        self.dense = EqualizedDense(
            self.start_height * self.start_width * channels[0], gain=HE_GAIN / 4, name="dense"
        )
        self.conv0 = EqualizedConv2D(channels[0], 3, name="conv0")
        self.conv_a, self.conv_b, self.feedback_convs = [None], [None], [None]
        for k in range(1, self.num_levels):
            self.conv_a.append(EqualizedConv2D(channels[k], 3, name=f"level{k}_conv_a"))
            self.conv_b.append(EqualizedConv2D(channels[k], 3, name=f"level{k}_conv_b"))
            self.feedback_convs.append(
                EqualizedConv2D(channels[k - 1], 1, gain=1.0, use_bias=False, name=f"level{k}_fb")
                if self.feedback
                else None
            )
        self.to_layout = [
            EqualizedConv2D(self.num_classes, 1, gain=1.0, name=f"level{k}_to_layout")
            for k in range(self.num_levels)
        ]
        self.assisted = AssistedActivation(name="assisted")

    def channels(self, level):
        return level_channels(level, self.channel_base, self.max_channels)

    def size(self, level):
        return level_size(level, self.start_height, self.start_width)

    def build(self, z_shape, proportions_shape):
        # Every level's layers, whatever level the first call uses: a later level must not
        # create variables inside the traced training step.
        channels = [self.channels(k) for k in range(self.num_levels)]
        self.dense.build((None, self.z_dim + self.num_classes))
        self.conv0.build((None, self.start_height, self.start_width, channels[0]))
        self.to_layout[0].build((None, *self.size(0), channels[0]))
        for k in range(1, self.num_levels):
            if self.feedback:
                self.feedback_convs[k].build((None, *self.size(k), self.num_classes))
            self.conv_a[k].build((None, *self.size(k), channels[k - 1]))
            self.conv_b[k].build((None, *self.size(k), channels[k]))
            self.to_layout[k].build((None, *self.size(k), channels[k]))
        self.built = True

    def call(self, z, proportions, level=None, alpha=1.0, training=None):
        level = _check_level(level, self.num_levels, "ProgressiveLayoutGenerator")
        proportions = tf.cast(proportions, tf.float32)
        x = tf.concat([pixel_norm(tf.cast(z, tf.float32)), proportions], axis=-1)  # [N, z + C]
        x = self.dense(x)  # [N, sh * sw * ch0]
        x = tf.reshape(x, (-1, self.start_height, self.start_width, self.channels(0)))
        x = pixel_norm(_lrelu(x))  # [N, sh, sw, ch0]
        x = pixel_norm(_lrelu(self.conv0(x)))
        layout, mask = self.assisted(self.to_layout[0](x), proportions)
        layouts, masks = [layout], [mask]
        for k in range(1, level + 1):
            x = upsample2x(x)  # [N, H_k, W_k, ch_{k-1}]
            if self.feedback:
                x = x + self.feedback_convs[k](upsample2x(layout))  # the layout as a bias
            x = pixel_norm(_lrelu(self.conv_a[k](x)))  # [N, H_k, W_k, ch_k]
            x = pixel_norm(_lrelu(self.conv_b[k](x)))
            layout, mask = self.assisted(self.to_layout[k](x), proportions)
            layouts.append(layout)
            masks.append(mask)
        output = layouts[-1]
        if level > 0:
            # Fade-in: both terms are per-pixel distributions over classes, so is the blend.
            alpha = tf.cast(alpha, tf.float32)
            output = alpha * output + (1.0 - alpha) * upsample2x(layouts[-2])
        return output, layouts, masks

    def get_config(self):
        config = super().get_config()
        config.update(
            num_classes=self.num_classes,
            z_dim=self.z_dim,
            num_levels=self.num_levels,
            start_height=self.start_height,
            start_width=self.start_width,
            channel_base=self.channel_base,
            max_channels=self.max_channels,
            feedback=self.feedback,
        )
        return config


@keras.saving.register_keras_serializable(package="semsynth")
class ProgressiveDiscriminator(keras.Model):
    """Unconditional progressive critic (ProGAN) on soft layouts.

    Level k: 1x1 from-layout conv (ch_k) + LReLU, then blocks k .. 1, each two 3x3 convs
    (ch_k, then ch_{k-1}) with LReLU and a 2x2 average pool; finally minibatch stddev, a 3x3
    conv, a dense layer (ch_0) and a linear dense layer to one score. While level k fades in,
    its block's output is blended with the level k - 1 from-layout of the 2x average-pooled
    input: alpha * new + (1 - alpha) * old.

    Args:
        num_classes: C, channels of the input layouts.
        num_levels, start_height, start_width, channel_base, max_channels: as the generator's.
        mbstd_group_size: group size of the minibatch-stddev feature (4 in ProGAN).
        **kwargs: forwarded to `keras.Model`.

    Call args:
        layout: [N, H_level, W_level, C] soft (or one-hot) layouts.
        level: Python int (default the last).
        alpha: fade-in weight of `level`.
    Returns:
        [N, 1] float32 critic scores.
    """

    def __init__(
        self,
        num_classes,
        num_levels=6,
        start_height=4,
        start_width=8,
        channel_base=4096,
        max_channels=512,
        mbstd_group_size=4,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.num_levels = int(num_levels)
        self.start_height = int(start_height)
        self.start_width = int(start_width)
        self.channel_base = int(channel_base)
        self.max_channels = int(max_channels)
        self.mbstd_group_size = int(mbstd_group_size)
        channels = [self.channels(k) for k in range(self.num_levels)]

        # === Layers ===
        self.from_layout = [
            EqualizedConv2D(channels[k], 1, name=f"level{k}_from_layout")
            for k in range(self.num_levels)
        ]
        self.conv_a, self.conv_b = [None], [None]
        for k in range(1, self.num_levels):
            self.conv_a.append(EqualizedConv2D(channels[k], 3, name=f"level{k}_conv_a"))
            self.conv_b.append(EqualizedConv2D(channels[k - 1], 3, name=f"level{k}_conv_b"))
        self.final_conv = EqualizedConv2D(channels[0], 3, name="final_conv")
        self.final_dense = EqualizedDense(channels[0], name="final_dense")
        self.score = EqualizedDense(1, gain=1.0, name="score")

    def channels(self, level):
        return level_channels(level, self.channel_base, self.max_channels)

    def build(self, layout_shape):
        # Every level's layers (see ProgressiveLayoutGenerator.build).
        channels = [self.channels(k) for k in range(self.num_levels)]
        for k in range(self.num_levels):
            size = level_size(k, self.start_height, self.start_width)
            self.from_layout[k].build((None, *size, self.num_classes))
            if k > 0:
                self.conv_a[k].build((None, *size, channels[k]))
                self.conv_b[k].build((None, *size, channels[k]))
        self.final_conv.build((None, self.start_height, self.start_width, channels[0] + 1))
        self.final_dense.build((None, self.start_height * self.start_width * channels[0]))
        self.score.build((None, channels[0]))
        self.built = True

    def _block(self, k, x):
        x = _lrelu(self.conv_a[k](x))  # [N, H_k, W_k, ch_k]
        x = _lrelu(self.conv_b[k](x))  # [N, H_k, W_k, ch_{k-1}]
        return downsample2x(x)  # [N, H_{k-1}, W_{k-1}, ch_{k-1}]

    def call(self, layout, level=None, alpha=1.0, training=None):
        level = _check_level(level, self.num_levels, "ProgressiveDiscriminator")
        layout = tf.cast(layout, tf.float32)
        x = _lrelu(self.from_layout[level](layout))  # [N, H, W, ch_level]
        if level > 0:
            x = self._block(level, x)
            old = _lrelu(self.from_layout[level - 1](downsample2x(layout)))
            alpha = tf.cast(alpha, tf.float32)
            x = alpha * x + (1.0 - alpha) * old
            for k in range(level - 1, 0, -1):
                x = self._block(k, x)
        x = minibatch_stddev(x, group_size=self.mbstd_group_size)  # [N, sh, sw, ch0 + 1]
        x = _lrelu(self.final_conv(x))  # [N, sh, sw, ch0]
        x = tf.reshape(x, (-1, self.start_height * self.start_width * self.channels(0)))
        x = _lrelu(self.final_dense(x))  # [N, ch0]
        return self.score(x)  # [N, 1]

    def get_config(self):
        config = super().get_config()
        config.update(
            num_classes=self.num_classes,
            num_levels=self.num_levels,
            start_height=self.start_height,
            start_width=self.start_width,
            channel_base=self.channel_base,
            max_channels=self.max_channels,
            mbstd_group_size=self.mbstd_group_size,
        )
        return config


@keras.saving.register_keras_serializable(package="semsynth")
class PartialLayoutGenerator(ProgressiveLayoutGenerator):
    """The partial-editing layout generator: the progressive generator with SPADE blocks.

    A band of an input layout is to be regenerated: the conditioning map is the input layout
    with the band masked out plus a "keep" channel (1 outside the band), and the palette input
    is the proportion delta: the class mass the band must hold, as a fraction of the whole
    layout (target palette - the kept part's class mass / HW; models.palette.bands). After
    every 3x3 conv (and LReLU) of every level, a SPADE layer (instance norm, gamma / beta
    predicted from the conditioning map resized to the level) replaces PixelNorm. The assisted
    activation targets the whole-layout palette: the kept part's class mass plus delta
    (clipped at 0, renormalised); the output keeps the input outside the band:
    keep * input + (1 - keep) * generated, at every level (input and keep average-pooled to
    the level's size).

    Args:
        num_classes, z_dim, num_levels, start_height, start_width, channel_base, max_channels,
            feedback: as ProgressiveLayoutGenerator.
        spade_hidden: hidden channels of each SPADE layer's shared conv.
        **kwargs: forwarded to `keras.Model`.

    Call args:
        z: [N, z_dim].
        layout: [N, H, W, C] the input layout (one-hot or soft) at the size of `level` or a
            power-of-2 multiple of it (e.g. the last level's size).
        keep: [N, H, W, 1] 1 where the input is kept, 0 in the band to regenerate.
        delta: [N, C] the class mass of the band (target palette = mean(layout * keep) + delta).
        level, alpha: as ProgressiveLayoutGenerator.
    Returns:
        (merged layout [N, H_level, W_level, C], [each level's merged layout], [each level's
        assisted mask]).
    """

    def __init__(self, num_classes, spade_hidden=128, **kwargs):
        super().__init__(num_classes, **kwargs)
        self.spade_hidden = int(spade_hidden)
        # === Layers ===
        self.spade_layers = [
            SPADE("instance", self.spade_hidden, name=f"spade_{k}_{j}")
            for k in range(self.num_levels)
            for j in range(2)
        ]

    def build(self, z_shape, layout_shape, keep_shape, delta_shape):
        super().build(z_shape, delta_shape)
        cond_shape = (None, *self.size(self.num_levels - 1), self.num_classes + 1)
        for k in range(self.num_levels):
            for j in range(2):
                x_shape = (None, *self.size(k), self.channels(k))
                self.spade_layers[2 * k + j].build(x_shape, cond_shape)
        self.built = True

    def call(self, z, layout, keep, delta, level=None, alpha=1.0, training=None):
        level = _check_level(level, self.num_levels, "PartialLayoutGenerator")
        layout = tf.cast(layout, tf.float32)
        keep = tf.cast(keep, tf.float32)
        cond = tf.concat([layout * keep, keep], axis=-1)  # [N, H, W, C + 1]
        delta = tf.cast(delta, tf.float32)
        target = tf.reduce_mean(cond[..., :-1], axis=[1, 2]) + delta  # [N, C] kept + band mass
        target = tf.clip_by_value(target, 1e-6, 1.0)
        target = target / tf.reduce_sum(target, axis=-1, keepdims=True)  # [N, C]
        input_height = layout.shape[1]
        if input_height is None or input_height % self.size(level)[0]:
            raise ValueError(
                f"PartialLayoutGenerator: the input layout's height must be static and a "
                f"multiple of level {level}'s {self.size(level)[0]}, got {input_height}"
            )

        def modulate(x, k, j):
            return self.spade_layers[2 * k + j](_lrelu(x), cond, training=training)

        def merged(generated, k):
            # The input and keep mask are given at a multiple of level k's size: pool them.
            factor = int(input_height) // self.size(k)[0]
            kept, source = keep, layout
            if factor > 1:
                kept = tf.nn.avg_pool2d(keep, factor, factor, "VALID")  # [N, H_k, W_k, 1]
                source = tf.nn.avg_pool2d(layout, factor, factor, "VALID")  # [N, H_k, W_k, C]
            return kept * source + (1.0 - kept) * generated

        x = tf.concat([pixel_norm(tf.cast(z, tf.float32)), delta], axis=-1)  # [N, z + C]
        x = tf.reshape(self.dense(x), (-1, self.start_height, self.start_width, self.channels(0)))
        x = modulate(x, 0, 0)  # [N, sh, sw, ch0]
        x = modulate(self.conv0(x), 0, 1)
        generated, mask = self.assisted(self.to_layout[0](x), target)
        layouts, masks = [merged(generated, 0)], [mask]
        for k in range(1, level + 1):
            x = upsample2x(x)
            if self.feedback:
                x = x + self.feedback_convs[k](upsample2x(layouts[-1]))
            x = modulate(self.conv_a[k](x), k, 0)
            x = modulate(self.conv_b[k](x), k, 1)
            generated, mask = self.assisted(self.to_layout[k](x), target)
            layouts.append(merged(generated, k))
            masks.append(mask)
        output = layouts[-1]
        if level > 0:
            alpha = tf.cast(alpha, tf.float32)
            output = alpha * output + (1.0 - alpha) * upsample2x(layouts[-2])
        return output, layouts, masks

    def get_config(self):
        config = super().get_config()
        config.update(spade_hidden=self.spade_hidden)
        return config
