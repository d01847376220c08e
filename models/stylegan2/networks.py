"""StyleGAN2 networks (config F, skip generator, residual discriminator) in plain TensorFlow ops.

No custom CUDA ops: everything is conv2d / conv2d_transpose / matmul / slicing, so the networks
run on CPU and GPU alike. The reference facts: shared/reference/stylegan2_synthesis_in_style.md.

- Equalised learning rate: weights are stored N(0, 1) (divided by lr_mul) and scaled at run time
  by lr_mul / sqrt(fan_in), so Adam sees every layer at the same scale.
- Modulated conv without per-sample kernels: scaling the input channels by the style s and the
  output channels by the demodulation coefficient d equals convolving with the per-sample kernel
  w * s * d (the conv is linear in its input), and needs no grouped conv (slow or missing on CPU).
- FIR filters ([1, 3, 3, 1], upfirdn semantics): the blur is one 4x4 depthwise conv with a
  constant kernel, the skip upsampling an exactly equivalent bilinear resize; both cost a small
  fraction of the convs around them.

    generator = StyleGAN2Generator(resolution=256, channel_multiplier=2)
    images = generator(z)                              # [N, 256, 256, 3], about [-1, 1]
    images, features = generator(z, return_features=True)
    generator.feature_layers()  # [{"name": "conv00_4px", "resolution": 4, "channels": 512}, ...]
"""

import math

import keras
import numpy as np
import tensorflow as tf

SQRT2 = math.sqrt(2.0)
LRELU_SLOPE = 0.2
NOISE_MODES = ("random", "const", "none")


def lrelu_agc(x):
    """Leaky ReLU(0.2) times sqrt(2): keeps the activations' second moment about constant."""
    return tf.nn.leaky_relu(x, alpha=LRELU_SLOPE) * SQRT2


def synthesis_channels(resolution, channel_multiplier=2, width=1.0):
    """Feature channels of the synthesis block (and discriminator block) at `resolution` px.

    512 up to 32 px, then 256 * cm (64 px), 128 * cm (128 px), 64 * cm (256 px), 32 * cm (512 px),
    16 * cm (1024 px); `width` scales every entry (tiny presets only; 1.0 = the reference).
    """
    base = 512 if resolution <= 32 else (16384 * channel_multiplier) // resolution
    return max(1, int(round(base * width)))


def _check_resolution(resolution, name="resolution"):
    log2 = math.log2(resolution) if resolution > 0 else 0
    if resolution < 8 or log2 != int(log2):
        raise ValueError(f"`{name}`={resolution} must be a power of 2 >= 8")
    return int(log2)


# === FIR filters (upfirdn2d with the [1, 3, 3, 1] kernel) ===

# The separable blur [1, 3, 3, 1] / 8; its outer product is the reference's 2-D kernel / 64.
FIR_TAPS = np.array([1.0, 3.0, 3.0, 1.0], np.float32) / 8.0


def fir_blur(x, pad, gain=1.0):
    """upfirdn2d(x, [1,3,3,1] outer product / 64 * gain, up=1, down=1, pad) on NHWC input.

    One 4x4 depthwise conv with a constant kernel: a single memory-bound pass over x (on CPU
    faster than three 2x2 average pools, separable passes or shifted-slice sums), with first and
    second derivatives registered in TF (the R1 and path-length penalties need both).

    Args:
        x: [N, H, W, C] float tensor with a static channel count.
        pad: (before, after) zero padding of both spatial axes.
        gain: total gain of the 2-D filter (4 after a stride-2 transposed conv, 1 otherwise).
    Returns:
        [N, H + before + after - 3, W + before + after - 3, C].
    """
    before, after = pad
    if before or after:
        x = tf.pad(x, [[0, 0], [before, after], [before, after], [0, 0]])
    channels = x.shape[-1]
    kernel = np.outer(FIR_TAPS, FIR_TAPS) * gain  # [4, 4]
    kernel = np.tile(kernel[:, :, None, None], (1, 1, channels, 1)).astype(np.float32)
    return tf.nn.depthwise_conv2d(
        x, tf.constant(kernel, dtype=x.dtype), strides=[1, 1, 1, 1], padding="VALID"
    )  # [N, H', W', C]


def fir_upsample_2x(x):
    """upfirdn2d(x, [1,3,3,1] / 64 * 4, up=2, pad=(2, 1)): the skip generator's RGB upsampling.

    Zero insertion + this filter is exactly bilinear 2x upsampling with half-pixel centres
    (outputs (x[m-1] + 3 x[m]) / 4 and (3 x[m] + x[m+1]) / 4), except that upfirdn reads zeros
    beyond the border where bilinear resizing repeats the edge: so the input is padded with one
    zero pixel, resized, and the two outer output pixels cropped.

    Args:
        x: [N, H, W, C] float tensor.
    Returns:
        [N, 2H, 2W, C]; a constant input stays constant away from the border.
    """
    h, w = x.shape[1], x.shape[2]
    if h is None or w is None:
        h, w = tf.shape(x)[1], tf.shape(x)[2]
    x = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])  # [N, H + 2, W + 2, C]
    x = tf.raw_ops.ResizeBilinear(
        images=x,
        size=tf.stack([2 * h + 4, 2 * w + 4]),
        align_corners=False,
        half_pixel_centers=True,
    )  # [N, 2H + 4, 2W + 4, C]
    return x[:, 2 : 2 * h + 2, 2 : 2 * w + 2, :]  # [N, 2H, 2W, C]


# === Equalised-learning-rate layers ===


@keras.saving.register_keras_serializable(package="semsynth")
class EqualDense(keras.layers.Layer):
    """Dense layer with equalised learning rate (StyleGAN's EqualLinear).

    Args:
        units: output features.
        lr_mul: learning-rate multiplier (0.01 in the mapping network).
        bias_init: initial value of the effective bias (1 for style modulations).
        activation: None or "lrelu" (leaky ReLU 0.2 times sqrt(2), after the bias).
        use_bias: add a bias.
    """

    def __init__(self, units, lr_mul=1.0, bias_init=0.0, activation=None, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        if activation not in (None, "lrelu"):
            raise ValueError(f"`activation`={activation!r} must be None or 'lrelu'")
        self.units = int(units)
        self.lr_mul = float(lr_mul)
        self.bias_init = float(bias_init)
        self.activation = activation
        self.use_bias = bool(use_bias)

    def build(self, input_shape):
        fan_in = int(input_shape[-1])
        self.weight_gain = self.lr_mul / math.sqrt(fan_in)
        self.kernel = self.add_weight(
            shape=(fan_in, self.units),
            initializer=keras.initializers.RandomNormal(stddev=1.0 / self.lr_mul),
            name="kernel",
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                shape=(self.units,),
                initializer=keras.initializers.Constant(self.bias_init / self.lr_mul),
                name="bias",
            )

    def call(self, x):
        x = tf.matmul(x, self.kernel * self.weight_gain)  # [N, units]
        if self.bias is not None:
            x = x + self.bias * self.lr_mul
        return lrelu_agc(x) if self.activation == "lrelu" else x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            lr_mul=self.lr_mul,
            bias_init=self.bias_init,
            activation=self.activation,
            use_bias=self.use_bias,
        )
        return config


@keras.saving.register_keras_serializable(package="semsynth")
class EqualConv2D(keras.layers.Layer):
    """Conv2D with equalised learning rate; optionally blur + stride-2 downsampling (the D's).

    Args:
        filters: output channels.
        kernel_size: square kernel size (1 or 3).
        down: blur with [1,3,3,1] then convolve with stride 2 (output H/2 x W/2).
        use_bias: add a bias.
        activation: None or "lrelu" (leaky ReLU 0.2 times sqrt(2), after the bias).
    """

    def __init__(self, filters, kernel_size, down=False, use_bias=True, activation=None, **kwargs):
        super().__init__(**kwargs)
        if activation not in (None, "lrelu"):
            raise ValueError(f"`activation`={activation!r} must be None or 'lrelu'")
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.down = bool(down)
        self.use_bias = bool(use_bias)
        self.activation = activation

    def build(self, input_shape):
        in_channels = int(input_shape[-1])
        k = self.kernel_size
        self.weight_gain = 1.0 / math.sqrt(in_channels * k * k)
        self.kernel = self.add_weight(
            shape=(k, k, in_channels, self.filters),
            initializer=keras.initializers.RandomNormal(stddev=1.0),
            name="kernel",
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(shape=(self.filters,), initializer="zeros", name="bias")

    def call(self, x):
        kernel = self.kernel * self.weight_gain
        if self.down:
            # Blur padding so that the stride-2 VALID conv lands on H / 2 (upfirdn semantics).
            p = 2 + (self.kernel_size - 1)
            x = fir_blur(x, ((p + 1) // 2, p // 2))  # [N, H + p - 3, W + p - 3, Cin]
            x = tf.nn.conv2d(x, kernel, strides=2, padding="VALID")  # [N, H/2, W/2, Cout]
        else:
            x = tf.nn.conv2d(x, kernel, strides=1, padding="SAME")  # [N, H, W, Cout]
        if self.bias is not None:
            x = x + self.bias
        return lrelu_agc(x) if self.activation == "lrelu" else x

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            down=self.down,
            use_bias=self.use_bias,
            activation=self.activation,
        )
        return config


# === Generator layers ===


@keras.saving.register_keras_serializable(package="semsynth")
class ModulatedConv2D(keras.layers.Layer):
    """StyleGAN2's modulated convolution, written without per-sample kernels.

    y = d * conv(x * s, w), with s = style(w_latent) (bias init 1) and, when demodulating,
    d[n, o] = rsqrt(sum_{k, i} (w[k, i, o] s[n, i])^2 + 1e-8): identical to the reference's
    conv with the per-sample kernel w * s * d, since the conv is linear in its input.

    Args:
        filters: output channels.
        kernel_size: square kernel size (3, or 1 for ToRGB).
        demodulate: normalise each output channel (off for ToRGB).
        up: stride-2 transposed conv then [1,3,3,1] blur (gain 4): output 2H x 2W.
    Call args:
        x: [N, H, W, Cin] activations; w: [N, w_dim] latent of this layer.
    """

    def __init__(self, filters, kernel_size, demodulate=True, up=False, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.demodulate = bool(demodulate)
        self.up = bool(up)

    def build(self, x_shape, w_shape):
        in_channels = int(x_shape[-1])
        k = self.kernel_size
        self.in_channels = in_channels
        self.weight_gain = 1.0 / math.sqrt(in_channels * k * k)
        self.style = EqualDense(in_channels, bias_init=1.0, name="style")
        self.style.build(w_shape)
        self.kernel = self.add_weight(
            shape=(k, k, in_channels, self.filters),
            initializer=keras.initializers.RandomNormal(stddev=1.0),
            name="kernel",
        )

    def call(self, x, w):
        styles = self.style(w)  # [N, Cin]
        kernel = self.kernel * self.weight_gain  # [k, k, Cin, Cout]
        x = x * styles[:, None, None, :]  # [N, H, W, Cin]
        if self.up:
            n, h, wd = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
            # Transposed conv, stride 2, no padding: (2H + 1) x (2W + 1) for a 3x3 kernel.
            out_shape = tf.stack(
                [n, 2 * h + self.kernel_size - 2, 2 * wd + self.kernel_size - 2, self.filters]
            )
            x = tf.nn.conv2d_transpose(
                x, tf.transpose(kernel, (0, 1, 3, 2)), out_shape, strides=2, padding="VALID"
            )  # [N, 2H + 1, 2W + 1, Cout]
            p = 4 - 2 - (self.kernel_size - 1)
            x = fir_blur(x, ((p + 1) // 2 + 1, p // 2 + 1), gain=4.0)  # [N, 2H, 2W, Cout]
        else:
            x = tf.nn.conv2d(x, kernel, strides=1, padding="SAME")  # [N, H, W, Cout]
        if self.demodulate:
            # sum over taps and input channels of (w s)^2, as a [N, Cin] x [Cin, Cout] matmul.
            kernel_energy = tf.reduce_sum(tf.square(kernel), axis=(0, 1))  # [Cin, Cout]
            d = tf.math.rsqrt(tf.matmul(tf.square(styles), kernel_energy) + 1e-8)  # [N, Cout]
            x = x * d[:, None, None, :]
        return x

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            demodulate=self.demodulate,
            up=self.up,
        )
        return config


@keras.saving.register_keras_serializable(package="semsynth")
class StyledConv(keras.layers.Layer):
    """Modulated 3x3 conv + noise injection + bias + leaky ReLU (one synthesis layer).

    Args:
        filters: output channels.
        resolution: output resolution (px); sizes the constant noise buffer [1, R, R, 1].
        up: upsample x2 (the first conv of each block).
    Call args:
        x: [N, H, W, Cin]; w: [N, w_dim]; noise_mode: "random" (N(0, 1) per call), "const" (the
        layer's fixed buffer) or "none"; noise_seed: optional [2] int seed of stateless noise.
    """

    def __init__(self, filters, resolution, up=False, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.resolution = int(resolution)
        self.up = bool(up)
        self.conv = ModulatedConv2D(self.filters, 3, demodulate=True, up=self.up, name="conv")

    def build(self, x_shape, w_shape):
        self.conv.build(x_shape, w_shape)
        # Per-layer noise strength, initialised to 0: noise starts switched off.
        self.noise_strength = self.add_weight(shape=(), initializer="zeros", name="noise_strength")
        self.bias = self.add_weight(shape=(self.filters,), initializer="zeros", name="bias")
        # A fixed noise image for reproducible synthesis; a buffer, not a parameter.
        self.noise_const = self.add_weight(
            shape=(1, self.resolution, self.resolution, 1),
            initializer=keras.initializers.RandomNormal(stddev=1.0),
            trainable=False,
            name="noise_const",
        )

    def call(self, x, w, noise_mode="random", noise_seed=None):
        x = self.conv(x, w)  # [N, R, R, Cout]
        if noise_mode == "random":
            shape = tf.stack([tf.shape(x)[0], self.resolution, self.resolution, 1])
            if noise_seed is None:
                noise = tf.random.normal(shape)  # [N, R, R, 1]
            else:
                noise = tf.random.stateless_normal(shape, seed=noise_seed)  # [N, R, R, 1]
            x = x + noise * self.noise_strength
        elif noise_mode == "const":
            x = x + self.noise_const * self.noise_strength
        elif noise_mode != "none":
            raise ValueError(f"`noise_mode`={noise_mode!r} must be one of {', '.join(NOISE_MODES)}")
        return lrelu_agc(x + self.bias)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, resolution=self.resolution, up=self.up)
        return config


@keras.saving.register_keras_serializable(package="semsynth")
class ToRGB(keras.layers.Layer):
    """1x1 modulated conv without demodulation + bias: a block's RGB contribution.

    Args:
        channels: output channels (3 for RGB).
    Call args:
        x: [N, H, W, Cin]; w: [N, w_dim]; skip: None or the previous RGB [N, H/2, W/2, channels],
        upsampled with the [1,3,3,1] FIR and added.
    """

    def __init__(self, channels=3, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.conv = ModulatedConv2D(self.channels, 1, demodulate=False, name="conv")

    def build(self, x_shape, w_shape):
        self.conv.build(x_shape, w_shape)
        self.bias = self.add_weight(shape=(self.channels,), initializer="zeros", name="bias")

    def call(self, x, w, skip=None):
        rgb = self.conv(x, w) + self.bias  # [N, H, W, 3]
        if skip is not None:
            rgb = rgb + fir_upsample_2x(skip)
        return rgb

    def get_config(self):
        config = super().get_config()
        config.update(channels=self.channels)
        return config


@keras.saving.register_keras_serializable(package="semsynth")
class MappingNetwork(keras.layers.Layer):
    """z -> w: PixelNorm then `num_layers` equalised Dense layers (lr_mul 0.01, leaky ReLU).

    Args:
        z_dim: latent size (512 in the reference).
        w_dim: intermediate latent size (512).
        num_layers: Dense layers (8).
        lr_mul: learning-rate multiplier of the Dense layers (0.01).
    Call args:
        z: [N, z_dim]. Returns w: [N, w_dim].
    """

    def __init__(self, z_dim=512, w_dim=512, num_layers=8, lr_mul=0.01, **kwargs):
        super().__init__(**kwargs)
        self.z_dim = int(z_dim)
        self.w_dim = int(w_dim)
        self.num_layers = int(num_layers)
        self.lr_mul = float(lr_mul)
        self.dense_layers = [
            EqualDense(self.w_dim, lr_mul=self.lr_mul, activation="lrelu", name=f"dense{i}")
            for i in range(self.num_layers)
        ]

    def build(self, input_shape=None):
        features = self.z_dim
        for layer in self.dense_layers:
            layer.build((None, features))
            features = self.w_dim

    def call(self, z):
        # PixelNorm: every z on the sphere of radius sqrt(z_dim).
        x = z * tf.math.rsqrt(tf.reduce_mean(tf.square(z), axis=1, keepdims=True) + 1e-8)
        for layer in self.dense_layers:
            x = layer(x)  # [N, w_dim]
        return x

    def get_config(self):
        config = super().get_config()
        config.update(
            z_dim=self.z_dim, w_dim=self.w_dim, num_layers=self.num_layers, lr_mul=self.lr_mul
        )
        return config


@keras.saving.register_keras_serializable(package="semsynth")
class SynthesisNetwork(keras.layers.Layer):
    """ws -> image: constant 4x4 input, StyledConvs per resolution, skip-connected ToRGBs.

    Latent use (num_ws = 2 log2(R) - 2): conv at 4 px takes ws[:, 0], its ToRGB ws[:, 1]; block i
    (8 px, 16 px, ...) takes ws[:, 2i - 1] (up conv), ws[:, 2i] (conv), ws[:, 2i + 1] (ToRGB).

    Args:
        resolution: output size (power of 2 >= 8).
        w_dim: latent size.
        channel_multiplier: widths at 64 px and finer (2 in config F / Synthesis in Style).
        width: scale on every width (1.0 = the reference; < 1 for tiny test networks).
    Call args:
        ws: [N, num_ws, w_dim]; noise_mode: "random" | "const" | "none"; return_features: also
        return every StyledConv output; noise_seed: optional [2] int seed of stateless noise.
    """

    def __init__(self, resolution=256, w_dim=512, channel_multiplier=2, width=1.0, **kwargs):
        super().__init__(**kwargs)
        self.resolution = int(resolution)
        self.w_dim = int(w_dim)
        self.channel_multiplier = int(channel_multiplier)
        self.width = float(width)
        self.log2_resolution = _check_resolution(self.resolution)
        self.num_ws = 2 * self.log2_resolution - 2

        def channels(res):
            return synthesis_channels(res, self.channel_multiplier, self.width)

        self.input_channels = channels(4)
        self.convs = [StyledConv(channels(4), 4, name="conv00_4px")]
        self.to_rgbs = [ToRGB(name="to_rgb_4px")]
        for log2 in range(3, self.log2_resolution + 1):
            res = 2**log2
            index = len(self.convs)
            self.convs.append(
                StyledConv(channels(res), res, up=True, name=f"conv{index:02d}_{res}px")
            )
            self.convs.append(StyledConv(channels(res), res, name=f"conv{index + 1:02d}_{res}px"))
            self.to_rgbs.append(ToRGB(name=f"to_rgb_{res}px"))

    def build(self, input_shape=None):
        self.const = self.add_weight(
            shape=(1, 4, 4, self.input_channels),
            initializer=keras.initializers.RandomNormal(stddev=1.0),
            name="const",
        )
        w_shape = (None, self.w_dim)
        in_channels = self.input_channels
        for i, conv in enumerate(self.convs):
            conv.build((None, None, None, in_channels), w_shape)
            in_channels = conv.filters
            if i % 2 == 0:  # every block's last conv feeds a ToRGB
                self.to_rgbs[i // 2].build((None, None, None, in_channels), w_shape)

    def feature_layers(self):
        """[{"name", "resolution", "channels"}] of every StyledConv, in synthesis order."""
        return [
            {"name": conv.name, "resolution": conv.resolution, "channels": conv.filters}
            for conv in self.convs
        ]

    def call(self, ws, noise_mode="random", return_features=False, noise_seed=None):
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"`noise_mode`={noise_mode!r} must be one of {', '.join(NOISE_MODES)}")
        n = tf.shape(ws)[0]

        def layer_seed(i):
            if noise_seed is None:
                return None
            return tf.random.experimental.stateless_fold_in(noise_seed, i)

        ws = tf.unstack(ws, num=self.num_ws, axis=1)  # num_ws x [N, w_dim]
        x = tf.tile(self.const, tf.stack([n, 1, 1, 1]))  # [N, 4, 4, C]
        features = []
        x = self.convs[0](x, ws[0], noise_mode=noise_mode, noise_seed=layer_seed(0))
        features.append(x)
        rgb = self.to_rgbs[0](x, ws[1])  # [N, 4, 4, 3]
        for block in range(1, len(self.to_rgbs)):
            i = 2 * block - 1
            x = self.convs[i](x, ws[i], noise_mode=noise_mode, noise_seed=layer_seed(i))
            features.append(x)
            x = self.convs[i + 1](
                x, ws[i + 1], noise_mode=noise_mode, noise_seed=layer_seed(i + 1)
            )  # [N, R_block, R_block, C]
            features.append(x)
            rgb = self.to_rgbs[block](x, ws[i + 2], skip=rgb)  # [N, R_block, R_block, 3]
        if return_features:
            return rgb, features
        return rgb

    def get_config(self):
        config = super().get_config()
        config.update(
            resolution=self.resolution,
            w_dim=self.w_dim,
            channel_multiplier=self.channel_multiplier,
            width=self.width,
        )
        return config


@keras.saving.register_keras_serializable(package="semsynth")
class StyleGAN2Generator(keras.Model):
    """StyleGAN2 generator: mapping network z -> w and skip synthesis network ws -> image.

    Args:
        resolution: output size in px (power of 2 >= 8).
        z_dim: size of the input latent z.
        w_dim: size of the intermediate latent w.
        mapping_layers: Dense layers of the mapping network.
        channel_multiplier: widths at 64 px and finer (2 = Synthesis in Style, 1 = config E).
        width: scale on every width (1.0 = the reference).
        mapping_lr_mul: learning-rate multiplier of the mapping network.

    Example:
        >>> g = StyleGAN2Generator(resolution=32, z_dim=32, w_dim=32, mapping_layers=2, width=1/32)
        >>> images = g(tf.random.normal((4, 32)))  # [4, 32, 32, 3]
    """

    def __init__(
        self,
        resolution=256,
        z_dim=512,
        w_dim=512,
        mapping_layers=8,
        channel_multiplier=2,
        width=1.0,
        mapping_lr_mul=0.01,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # === Config ===
        self.resolution = int(resolution)
        self.z_dim = int(z_dim)
        self.w_dim = int(w_dim)
        self.mapping_layers = int(mapping_layers)
        self.channel_multiplier = int(channel_multiplier)
        self.width = float(width)
        self.mapping_lr_mul = float(mapping_lr_mul)
        # === Layers ===
        self.mapping = MappingNetwork(
            self.z_dim, self.w_dim, self.mapping_layers, self.mapping_lr_mul, name="mapping"
        )
        self.synthesis = SynthesisNetwork(
            self.resolution, self.w_dim, self.channel_multiplier, self.width, name="synthesis"
        )
        self.num_ws = self.synthesis.num_ws
        self.build((None, self.z_dim))

    def build(self, input_shape=None):
        self.mapping.build((None, self.z_dim))
        self.synthesis.build()
        self.built = True

    def feature_layers(self):
        """[{"name": "conv00_4px", "resolution": 4, "channels": 512}, ...] in synthesis order."""
        return self.synthesis.feature_layers()

    def broadcast_ws(self, w):
        """[N, w_dim] -> [N, num_ws, w_dim] (the same w for every layer)."""
        return tf.tile(w[:, None, :], [1, self.num_ws, 1])  # [N, num_ws, w_dim]

    def mix_ws(self, w, mixing_w, crossover):
        """ws taking w before layer `crossover` and mixing_w from it on (style mixing).

        Args:
            w, mixing_w: [N, w_dim]. crossover: int (or scalar int tensor) in [0, num_ws];
            num_ws means no mixing.
        """
        layer = tf.range(self.num_ws)[None, :, None]  # [1, num_ws, 1]
        take_first = layer < tf.cast(crossover, tf.int32)
        return tf.where(take_first, w[:, None, :], mixing_w[:, None, :])  # [N, num_ws, w_dim]

    def call(
        self,
        z,
        truncation_psi=1.0,
        w_avg=None,
        noise_mode="random",
        return_features=False,
        mixing_z=None,
        crossover=None,
        noise_seed=None,
    ):
        """z [N, z_dim] -> images [N, R, R, 3] (and the features list when return_features).

        truncation_psi != 1 pulls every w towards `w_avg` ([w_dim], see mean_w);
        mixing_z [N, z_dim] with `crossover` (default num_ws // 2) mixes styles.
        """
        w = self.mapping(z)  # [N, w_dim]
        mixing_w = None if mixing_z is None else self.mapping(mixing_z)
        if not (isinstance(truncation_psi, (int, float)) and truncation_psi == 1.0):
            if w_avg is None:
                raise ValueError(
                    f"`truncation_psi`={truncation_psi} needs `w_avg` (from generator.mean_w())"
                )
            w = self.truncate(w, w_avg, truncation_psi)
            if mixing_w is not None:
                mixing_w = self.truncate(mixing_w, w_avg, truncation_psi)
        if mixing_w is None:
            ws = self.broadcast_ws(w)
        else:
            crossover = self.num_ws // 2 if crossover is None else crossover
            ws = self.mix_ws(w, mixing_w, crossover)
        return self.synthesis(
            ws, noise_mode=noise_mode, return_features=return_features, noise_seed=noise_seed
        )

    @staticmethod
    def truncate(w, w_avg, psi):
        """w_avg + psi (w - w_avg): psi = 0 gives the mean, 1 leaves w unchanged."""
        w_avg = tf.convert_to_tensor(w_avg, dtype=w.dtype)
        return w_avg + psi * (w - w_avg)

    def mean_w(self, num=4096, seed=0):
        """The mean of mapping(z) over `num` z ~ N(0, I) drawn from `seed` ([w_dim] tensor)."""
        z = tf.random.stateless_normal((int(num), self.z_dim), seed=[int(seed), 0])
        return tf.reduce_mean(self.mapping(z), axis=0)  # [w_dim]

    def get_config(self):
        config = super().get_config()
        config.update(
            resolution=self.resolution,
            z_dim=self.z_dim,
            w_dim=self.w_dim,
            mapping_layers=self.mapping_layers,
            channel_multiplier=self.channel_multiplier,
            width=self.width,
            mapping_lr_mul=self.mapping_lr_mul,
        )
        return config


# === Discriminator ===


def minibatch_stddev(x, group_size=4, num_features=1):
    """Appends the minibatch standard deviation feature map(s) to x.

    Samples are split into groups of G = min(group_size, N), reduced to the largest size <= that
    which divides N (so any batch works); group g holds samples g, g + N/G, g + 2N/G, ...
    Each group's per-feature std (averaged over channels and positions) is appended as
    `num_features` constant maps.

    Args:
        x: [N, H, W, C], C divisible by num_features.
    Returns:
        [N, H, W, C + num_features].
    """
    n, h, w, c = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2], x.shape[-1]
    candidates = tf.range(1, group_size + 1)  # [G]
    fits = tf.logical_and(candidates <= n, tf.math.floormod(n, candidates) == 0)
    group = tf.reduce_max(tf.where(fits, candidates, 1))
    f = num_features
    y = tf.reshape(x, tf.stack([group, n // group, h, w, f, c // f]))  # [G, N/G, H, W, F, C/F]
    y = y - tf.reduce_mean(y, axis=0, keepdims=True)
    y = tf.sqrt(tf.reduce_mean(tf.square(y), axis=0) + 1e-8)  # [N/G, H, W, F, C/F]
    y = tf.reduce_mean(y, axis=(1, 2, 4))  # [N/G, F]
    y = tf.reshape(y, tf.stack([-1, 1, 1, f]))  # [N/G, 1, 1, F]
    y = tf.tile(y, tf.stack([group, h, w, 1]))  # [N, H, W, F]
    return tf.concat([x, y], axis=-1)  # [N, H, W, C + F]


@keras.saving.register_keras_serializable(package="semsynth")
class DiscriminatorBlock(keras.layers.Layer):
    """Residual D block: (3x3 conv, 3x3 conv + blur + down) + (blur + down 1x1 skip), / sqrt 2.

    Args:
        in_channels: input channels.
        out_channels: output channels (output is H/2 x W/2).
    """

    def __init__(self, in_channels, out_channels, **kwargs):
        super().__init__(**kwargs)
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.conv0 = EqualConv2D(self.in_channels, 3, activation="lrelu", name="conv0")
        self.conv1 = EqualConv2D(self.out_channels, 3, down=True, activation="lrelu", name="conv1")
        self.skip = EqualConv2D(self.out_channels, 1, down=True, use_bias=False, name="skip")

    def build(self, input_shape=None):
        shape = (None, None, None, self.in_channels)
        self.conv0.build(shape)
        self.conv1.build(shape)
        self.skip.build(shape)

    def call(self, x):
        skip = self.skip(x)  # [N, H/2, W/2, Cout]
        x = self.conv1(self.conv0(x))  # [N, H/2, W/2, Cout]
        return (x + skip) * (1.0 / SQRT2)

    def get_config(self):
        config = super().get_config()
        config.update(in_channels=self.in_channels, out_channels=self.out_channels)
        return config


@keras.saving.register_keras_serializable(package="semsynth")
class StyleGAN2Discriminator(keras.Model):
    """StyleGAN2 residual discriminator: image [N, R, R, 3] -> logits [N, 1].

    Args:
        resolution: input size in px (power of 2 >= 8).
        channel_multiplier: widths at 64 px and finer (as the generator).
        width: scale on every width (1.0 = the reference).
        mbstd_group_size: minibatch-stddev group size (4).
        mbstd_features: minibatch-stddev feature maps (1).
    """

    def __init__(
        self,
        resolution=256,
        channel_multiplier=2,
        width=1.0,
        mbstd_group_size=4,
        mbstd_features=1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # === Config ===
        self.resolution = int(resolution)
        self.channel_multiplier = int(channel_multiplier)
        self.width = float(width)
        self.mbstd_group_size = int(mbstd_group_size)
        self.mbstd_features = int(mbstd_features)
        log2_res = _check_resolution(self.resolution)

        def channels(res):
            return synthesis_channels(res, self.channel_multiplier, self.width)

        # === Layers ===
        self.from_rgb = EqualConv2D(
            channels(self.resolution), 1, activation="lrelu", name="from_rgb"
        )
        self.blocks = [
            DiscriminatorBlock(
                channels(2**log2), channels(2 ** (log2 - 1)), name=f"block_{2**log2}px"
            )
            for log2 in range(log2_res, 2, -1)
        ]
        self.final_channels = channels(4)
        self.final_conv = EqualConv2D(self.final_channels, 3, activation="lrelu", name="final_conv")
        self.final_dense = EqualDense(self.final_channels, activation="lrelu", name="final_dense")
        self.out = EqualDense(1, name="out")
        self.build((None, self.resolution, self.resolution, 3))

    def build(self, input_shape=None):
        self.from_rgb.build((None, None, None, 3))
        for block in self.blocks:
            block.build()
        self.final_conv.build((None, 4, 4, self.final_channels + self.mbstd_features))
        self.final_dense.build((None, 16 * self.final_channels))
        self.out.build((None, self.final_channels))
        self.built = True

    def call(self, images):
        x = self.from_rgb(images)  # [N, R, R, C]
        for block in self.blocks:
            x = block(x)  # [N, r/2, r/2, C']
        x = minibatch_stddev(x, self.mbstd_group_size, self.mbstd_features)  # [N, 4, 4, C + 1]
        x = self.final_conv(x)  # [N, 4, 4, C]
        x = tf.reshape(x, (-1, 16 * self.final_channels))  # [N, 16 C]
        return self.out(self.final_dense(x))  # [N, 1]

    def get_config(self):
        config = super().get_config()
        config.update(
            resolution=self.resolution,
            channel_multiplier=self.channel_multiplier,
            width=self.width,
            mbstd_group_size=self.mbstd_group_size,
            mbstd_features=self.mbstd_features,
        )
        return config


def count_parameters(layer):
    """Trainable parameter count of a layer or model (buffers such as const noise excluded)."""
    return int(sum(int(np.prod(v.shape)) for v in layer.trainable_variables))
