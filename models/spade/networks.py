"""SPADE / GauGAN networks (Park et al., CVPR 2019), Keras 3, NHWC.

- `SPADE`: spatially-adaptive denormalisation, norm(x) * (1 + gamma(segmap)) + beta(segmap).
- `SPADEResnetBlock`: two SPADE -> LeakyReLU -> conv stages plus a (learned) shortcut.
- `SPADEGenerator`: one-hot map (and optionally a style code z) -> RGB image in [-1, 1].
- `VAEEncoder`: image -> (mu, logvar) of the style code; `reparameterize` samples z.
- `NLayerDiscriminator`, `MultiscaleDiscriminator`: PatchGAN discriminators returning every
  intermediate feature map (for feature matching).
- `build_spade_networks`: builds the three networks for one configuration.

Widths, block order, initialisation and parameter counts follow the reference (see
shared/reference/spade.md); at the ADE20K 256 px config the counts match it exactly.
"""

import math

import keras
import tensorflow as tf
from keras import ops

from models.layers import (
    SNConv2D,
    leaky_relu,
    one_hot_conv,
    param_free_norm,
    resize_nearest,
    xavier_normal_init,
)

UPSAMPLING_DEPTHS = {"normal": 5, "more": 6, "most": 7}
LRELU_SLOPE = 0.2


def _conv(filters, kernel_size, name, strides=1, padding=1, use_bias=True, spectral_norm=False):
    """An SNConv2D with the reference initialisation (xavier-normal gain 0.02, zero bias)."""
    return SNConv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=use_bias,
        spectral_norm=spectral_norm,
        kernel_initializer=xavier_normal_init(),
        bias_initializer="zeros",
        name=name,
    )


def _dense(units, name):
    return keras.layers.Dense(
        units, kernel_initializer=xavier_normal_init(), bias_initializer="zeros", name=name
    )


# The generator's activations go through these two functions (one place to find its kinks:
# tests/models/spade/test_spade_gradients.py replaces them to compare gradients across dtypes).
def _leaky_relu(x):
    return leaky_relu(x, negative_slope=LRELU_SLOPE)


def _relu(x):
    return ops.relu(x)


def _is_labels(segmap):
    """Whether a segmentation input is integer labels [N, H, W] (else a float one-hot map)."""
    return len(segmap.shape) == 3 and tf.as_dtype(segmap.dtype).is_integer


def _one_hot_shape(segmap_shape, num_classes, owner):
    """The one-hot map's shape [N, H, W, S] for an input of either form."""
    if len(segmap_shape) == 4:
        return tuple(segmap_shape)
    if len(segmap_shape) == 3 and num_classes is not None:
        return (*segmap_shape, num_classes)
    raise ValueError(
        f"{owner}: expected a one-hot map [N, H, W, S] or, with `num_classes` set, integer "
        f"labels [N, H, W]; got shape {tuple(segmap_shape)}."
    )


@keras.saving.register_keras_serializable(package="semsynth")
class SPADE(keras.layers.Layer):
    """Spatially-adaptive (de)normalisation: norm(x) * (1 + gamma) + beta.

    gamma and beta [N, H, W, C] are predicted from the one-hot segmentation map, resized to x's
    (dynamic) spatial size with nearest neighbour, by a shared conv + ReLU and two convs. The
    normalisation of x has no learned affine parameters. No spectral norm inside SPADE.

    Given integer labels instead of the one-hot map, the shared conv is computed by lookup
    (`SNConv2D.call_on_labels`): the same function and weights, without the S-fold
    multiply-adds on zeros (for ADE20K's 151 channels, about a sixth of a training step's
    FLOPs at 256 px).

    Args:
        norm_type: parameter-free norm of x: "instance", "batch" or "syncbatch".
        num_hidden: channels of the shared conv over the segmentation map (128 in the paper).
        kernel_size: spatial size of the three convs (odd; "same" padding).
        num_classes: channels S of the one-hot map; needed only to build the layer from
            integer labels (the one-hot map's shape gives it otherwise).
        **kwargs: forwarded to `keras.layers.Layer`.

    Call args:
        x: [N, H, W, C] features to normalise.
        segmap: [N, Hs, Ws, S] float one-hot segmentation map, or [N, Hs, Ws] integer labels in
            [0, S) (labels outside give all-zero one-hot rows), any resolution.
    Returns:
        [N, H, W, C] in the compute dtype.
    """

    def __init__(
        self, norm_type="syncbatch", num_hidden=128, kernel_size=3, num_classes=None, **kwargs
    ):
        super().__init__(**kwargs)
        if int(kernel_size) % 2 != 1:
            raise ValueError(f"SPADE: `kernel_size` must be odd, got {kernel_size!r}.")
        self.norm_type = norm_type
        self.num_hidden = int(num_hidden)
        self.kernel_size = int(kernel_size)
        self.num_classes = None if num_classes is None else int(num_classes)
        pad = self.kernel_size // 2
        # === Layers ===
        self.param_free_norm = param_free_norm(norm_type, name="param_free_norm")
        self.mlp_shared = _conv(self.num_hidden, self.kernel_size, "mlp_shared", padding=pad)
        self.mlp_gamma = None  # width = C of x, known at build time
        self.mlp_beta = None

    def build(self, x_shape, segmap_shape):
        segmap_shape = _one_hot_shape(segmap_shape, self.num_classes, f"SPADE {self.name}")
        channels = x_shape[-1]
        pad = self.kernel_size // 2
        self.mlp_gamma = _conv(channels, self.kernel_size, "mlp_gamma", padding=pad)
        self.mlp_beta = _conv(channels, self.kernel_size, "mlp_beta", padding=pad)
        hidden_shape = (*segmap_shape[:-1], self.num_hidden)
        self.param_free_norm.build(x_shape)
        self.mlp_shared.build(segmap_shape)
        self.mlp_gamma.build(hidden_shape)
        self.mlp_beta.build(hidden_shape)

    def call(self, x, segmap, training=None):
        normalized = self.param_free_norm(x, training=training)  # [N, H, W, C]
        size = ops.shape(x)[1:3]
        # gamma and beta depend only on the map, so TF would compute every SPADE layer's at
        # the start of the network and hold them all until x reaches each layer; made when x
        # exists, each layer's live only while it is used (no-op in eager mode).
        with tf.control_dependencies([x]):
            if _is_labels(segmap):
                labels = resize_nearest(segmap[..., None], size)[..., 0]  # [N, H, W]
                hidden = self.mlp_shared.call_on_labels(labels)  # [N, H, W, num_hidden]
            else:
                segmap = resize_nearest(ops.cast(segmap, x.dtype), size)  # [N, H, W, S]
                hidden = self.mlp_shared(segmap)  # [N, H, W, num_hidden]
        hidden = _relu(hidden)  # [N, H, W, num_hidden]
        gamma = self.mlp_gamma(hidden)  # [N, H, W, C]
        beta = self.mlp_beta(hidden)  # [N, H, W, C]
        return normalized * (1 + gamma) + beta

    def compute_output_shape(self, x_shape, segmap_shape):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "norm_type": self.norm_type,
                "num_hidden": self.num_hidden,
                "kernel_size": self.kernel_size,
                "num_classes": self.num_classes,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="semsynth")
class SPADEResnetBlock(keras.layers.Layer):
    """Residual block: dx = conv_1(lrelu(SPADE_1(conv_0(lrelu(SPADE_0(x)))))), out = x_s + dx.

    The shortcut x_s is x, or conv_s(SPADE_s(x)) (1x1, no bias, no activation) when fin != fout.
    conv_0, conv_1 (3x3, with bias) and conv_s are spectrally normalised when `spectral_norm`.

    Args:
        fin: input channels.
        fout: output channels.
        norm_type: parameter-free norm inside the SPADE layers ("instance" / "batch" /
            "syncbatch").
        spectral_norm: whether conv_0, conv_1, conv_s use spectral normalisation.
        num_hidden: hidden channels of each SPADE layer's shared conv.
        **kwargs: forwarded to `keras.layers.Layer`.

    Call args:
        x: [N, H, W, fin].
        segmap: [N, Hs, Ws, S] float one-hot map, or [N, Hs, Ws] integer labels (see SPADE).
    Returns:
        [N, H, W, fout].
    """

    def __init__(
        self,
        fin,
        fout,
        norm_type="syncbatch",
        spectral_norm=True,
        num_hidden=128,
        num_classes=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.fin = int(fin)
        self.fout = int(fout)
        self.norm_type = norm_type
        self.spectral_norm = bool(spectral_norm)
        self.num_hidden = int(num_hidden)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.learned_shortcut = self.fin != self.fout
        fmiddle = min(self.fin, self.fout)
        # === Layers ===
        self.conv_0 = _conv(fmiddle, 3, "conv_0", spectral_norm=self.spectral_norm)
        self.conv_1 = _conv(self.fout, 3, "conv_1", spectral_norm=self.spectral_norm)
        self.norm_0 = SPADE(norm_type, self.num_hidden, num_classes=num_classes, name="norm_0")
        self.norm_1 = SPADE(norm_type, self.num_hidden, num_classes=num_classes, name="norm_1")
        if self.learned_shortcut:
            self.conv_s = _conv(
                self.fout,
                1,
                "conv_s",
                padding=0,
                use_bias=False,
                spectral_norm=self.spectral_norm,
            )
            self.norm_s = SPADE(norm_type, self.num_hidden, num_classes=num_classes, name="norm_s")

    def build(self, x_shape, segmap_shape):
        if x_shape[-1] != self.fin:
            raise ValueError(
                f"SPADEResnetBlock {self.name}: expected fin={self.fin} input channels, "
                f"got x of shape {x_shape}."
            )
        mid_shape = (*x_shape[:-1], min(self.fin, self.fout))
        self.norm_0.build(x_shape, segmap_shape)
        self.conv_0.build(x_shape)
        self.norm_1.build(mid_shape, segmap_shape)
        self.conv_1.build(mid_shape)
        if self.learned_shortcut:
            self.norm_s.build(x_shape, segmap_shape)
            self.conv_s.build(x_shape)

    def call(self, x, segmap, training=None):
        if self.learned_shortcut:
            x_s = self.conv_s(self.norm_s(x, segmap, training=training), training=training)
        else:
            x_s = x  # [N, H, W, fout]
        dx = self.conv_0(
            _leaky_relu(self.norm_0(x, segmap, training=training)), training=training
        )  # [N, H, W, fmiddle]
        dx = self.conv_1(
            _leaky_relu(self.norm_1(dx, segmap, training=training)), training=training
        )  # [N, H, W, fout]
        return x_s + dx

    def compute_output_shape(self, x_shape, segmap_shape):
        return (*x_shape[:-1], self.fout)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "fin": self.fin,
                "fout": self.fout,
                "norm_type": self.norm_type,
                "spectral_norm": self.spectral_norm,
                "num_hidden": self.num_hidden,
                "num_classes": self.num_classes,
            }
        )
        return config


def generator_start_size(crop_size, aspect_ratio, num_upsampling_layers):
    """(sh, sw) of the generator's first feature map: sw = crop // 2**n, sh = round(sw / ar)."""
    if num_upsampling_layers not in UPSAMPLING_DEPTHS:
        raise ValueError(
            f"`num_upsampling_layers` must be one of {tuple(UPSAMPLING_DEPTHS)}, "
            f"got {num_upsampling_layers!r}."
        )
    if aspect_ratio <= 0:
        raise ValueError(f"`aspect_ratio` must be > 0, got {aspect_ratio!r}.")
    num_up = UPSAMPLING_DEPTHS[num_upsampling_layers]
    sw = int(crop_size) // 2**num_up
    sh = int(round(sw / aspect_ratio))
    if sw < 1 or sh < 1:
        raise ValueError(
            f"`crop_size`={crop_size} is too small for num_upsampling_layers="
            f"{num_upsampling_layers!r} ({num_up} x2 upsamplings) at aspect_ratio={aspect_ratio}: "
            f"start size would be {sh}x{sw}; use crop_size >= {2**num_up}."
        )
    return sh, sw


@keras.saving.register_keras_serializable(package="semsynth")
class SPADEGenerator(keras.Model):
    """SPADE generator: one-hot segmentation map (+ optional style code z) -> RGB image.

    fc (Dense on z with the VAE, else nearest-resized map -> 3x3 conv) to [N, sh, sw, 16ngf],
    then head_0, up, G_middle_0, [up if more/most], G_middle_1, then (up, up_i) for
    up_0 (16->8 ngf), up_1 (8->4), up_2 (4->2), up_3 (2->1) and for "most" up_4 (1 -> ngf/2);
    finally LeakyReLU(0.2) -> 3x3 conv to 3 -> tanh. Upsampling is nearest x2.

    Args:
        num_classes: channels S of the one-hot segmentation map (semantic_nc; 151 for ADE20K).
        ngf: base width; the first feature map has 16 * ngf channels.
        z_dim: length of the style code z (used only with use_vae).
        use_vae: start from Dense(z) instead of the downsampled segmentation map.
        crop_size: output width W in pixels; sw = crop_size // 2**num_upsamplings.
        aspect_ratio: W / H of the output; sh = round(sw / aspect_ratio).
        num_upsampling_layers: "normal" (5 x2 upsamplings), "more" (6) or "most" (7).
        norm_type: parameter-free norm inside SPADE: "syncbatch" (reference), "batch",
            "instance".
        num_hidden: hidden channels of the SPADE shared convs.
        spectral_norm: spectral norm on the residual blocks' convs.
        seed: optional int seed for sampling z when it is not given.
        **kwargs: forwarded to `keras.Model`.

    Call args:
        segmap: [N, H, W, num_classes] float one-hot map, or [N, H, W] integer labels in
            [0, num_classes) (any resolution). Both give the same image; from labels the
            convolutions over the one-hot map are computed by lookup, which is faster.
        z: [N, z_dim] style code or None (with use_vae: sampled from N(0, I)).
        training: training mode (batch statistics, spectral-norm power iteration).
    Returns:
        [N, sh * 2**n, sw * 2**n, 3] float32 image in [-1, 1] (float32 also under mixed
        precision).

    Example:
    >>> g = SPADEGenerator(num_classes=8, ngf=4, crop_size=32, num_hidden=8)
    >>> g(ops.zeros((1, 32, 32, 8))).shape
    (1, 32, 32, 3)
    """

    def __init__(
        self,
        num_classes,
        ngf=64,
        z_dim=256,
        use_vae=False,
        crop_size=256,
        aspect_ratio=1.0,
        num_upsampling_layers="normal",
        norm_type="syncbatch",
        num_hidden=128,
        spectral_norm=True,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(num_classes) < 1:
            raise ValueError(f"SPADEGenerator: `num_classes` must be >= 1, got {num_classes!r}.")
        if int(ngf) < 2:
            raise ValueError(f"SPADEGenerator: `ngf` must be >= 2, got {ngf!r}.")
        self.num_classes = int(num_classes)
        self.ngf = int(ngf)
        self.z_dim = int(z_dim)
        self.use_vae = bool(use_vae)
        self.crop_size = int(crop_size)
        self.aspect_ratio = float(aspect_ratio)
        self.num_upsampling_layers = num_upsampling_layers
        self.norm_type = norm_type
        self.num_hidden = int(num_hidden)
        self.spectral_norm = bool(spectral_norm)
        self.seed = seed
        self.sh, self.sw = generator_start_size(crop_size, aspect_ratio, num_upsampling_layers)

        # === Layers ===
        nf = self.ngf
        if self.use_vae:
            self.fc = _dense(16 * nf * self.sh * self.sw, "fc")
            self.z_seed = keras.random.SeedGenerator(seed, name="z_seed")
        else:
            self.fc = _conv(16 * nf, 3, "fc")

        def block(fin, fout, name):
            return SPADEResnetBlock(
                fin,
                fout,
                norm_type,
                spectral_norm=self.spectral_norm,
                num_hidden=self.num_hidden,
                num_classes=self.num_classes,
                name=name,
            )

        self.head_0 = block(16 * nf, 16 * nf, "head_0")
        self.g_middle_0 = block(16 * nf, 16 * nf, "G_middle_0")
        self.g_middle_1 = block(16 * nf, 16 * nf, "G_middle_1")
        self.up_0 = block(16 * nf, 8 * nf, "up_0")
        self.up_1 = block(8 * nf, 4 * nf, "up_1")
        self.up_2 = block(4 * nf, 2 * nf, "up_2")
        self.up_3 = block(2 * nf, 1 * nf, "up_3")
        if num_upsampling_layers == "most":
            self.up_4 = block(1 * nf, nf // 2, "up_4")
        self.conv_img = _conv(3, 3, "conv_img")

    @property
    def output_size(self):
        """(H, W) of the generated image."""
        factor = 2 ** UPSAMPLING_DEPTHS[self.num_upsampling_layers]
        return self.sh * factor, self.sw * factor

    def call(self, segmap, z=None, training=None):
        if self.use_vae:
            if z is None:
                n = ops.shape(segmap)[0]
                z = keras.random.normal((n, self.z_dim), seed=self.z_seed)  # [N, z_dim]
            x = self.fc(z)  # [N, 16ngf * sh * sw]
            x = ops.reshape(x, (-1, self.sh, self.sw, 16 * self.ngf))  # [N, sh, sw, 16ngf]
        elif _is_labels(segmap):
            labels = resize_nearest(segmap[..., None], (self.sh, self.sw))[..., 0]
            if not self.fc.built:
                self.fc.build((None, self.sh, self.sw, self.num_classes))
            x = self.fc.call_on_labels(labels)  # [N, sh, sw, 16ngf]
        else:
            x = resize_nearest(segmap, (self.sh, self.sw))  # [N, sh, sw, S]
            x = self.fc(x)  # [N, sh, sw, 16ngf]

        x = self.head_0(x, segmap, training=training)  # [N, sh, sw, 16ngf]
        x = _upsample(x)
        x = self.g_middle_0(x, segmap, training=training)  # [N, 2sh, 2sw, 16ngf]
        if self.num_upsampling_layers in ("more", "most"):
            x = _upsample(x)
        x = self.g_middle_1(x, segmap, training=training)
        for block in self._up_blocks():
            x = _upsample(x)
            x = block(x, segmap, training=training)  # channels halve (up_4: ngf -> ngf/2)
        x = self.conv_img(_leaky_relu(x))  # [N, H, W, 3]
        return ops.cast(ops.tanh(x), "float32")

    def _up_blocks(self):
        blocks = [self.up_0, self.up_1, self.up_2, self.up_3]
        if self.num_upsampling_layers == "most":
            blocks.append(self.up_4)
        return blocks

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "ngf": self.ngf,
                "z_dim": self.z_dim,
                "use_vae": self.use_vae,
                "crop_size": self.crop_size,
                "aspect_ratio": self.aspect_ratio,
                "num_upsampling_layers": self.num_upsampling_layers,
                "norm_type": self.norm_type,
                "num_hidden": self.num_hidden,
                "spectral_norm": self.spectral_norm,
                "seed": self.seed,
            }
        )
        return config


def _upsample(x):
    """Nearest-neighbour x2 upsampling: [N, H, W, C] -> [N, 2H, 2W, C]."""
    return ops.repeat(ops.repeat(x, 2, axis=1), 2, axis=2)


def reparameterize(mu, logvar, eps):
    """Style code z = mu + eps * exp(0.5 * logvar) (the VAE reparameterisation trick).

    Args:
        mu: [N, z_dim] mean of q(z | image).
        logvar: [N, z_dim] log-variance of q(z | image).
        eps: [N, z_dim] standard-normal noise, supplied by the caller so runs can be
            deterministic.
    Returns:
        z: [N, z_dim].
    """
    return mu + eps * ops.exp(0.5 * logvar)


@keras.saving.register_keras_serializable(package="semsynth")
class VAEEncoder(keras.Model):
    """Image encoder of the VAE variant ("ConvEncoder"): image -> (mu, logvar).

    The image is resized bilinearly to input_size, then log2(input_size / 4) stride-2 3x3 convs
    (widths ndf * min(2**i, 8), no bias, spectral norm) each followed by instance norm and
    LeakyReLU(0.2) reach 4x4; the flattened features feed two Dense layers for mu and logvar.

    The stride-2 convs use explicit symmetric padding 1 (the reference's padding=1): Keras
    "same" pads (0, 1) for stride 2 on even sizes, which gives the same output size but shifts
    every window by one pixel.

    Args:
        ndf: width of the first conv.
        z_dim: length of mu, logvar (and z).
        input_size: side length the image is resized to; 4 * 2**k with k >= 1 (256 in the paper:
            six convs, 256 -> 4).
        spectral_norm: spectral norm on the convs.
        **kwargs: forwarded to `keras.Model`.

    Call args:
        image: [N, H, W, 3] in [-1, 1].
    Returns:
        (mu [N, z_dim], logvar [N, z_dim]), float32.
    """

    def __init__(self, ndf=64, z_dim=256, input_size=256, spectral_norm=True, **kwargs):
        super().__init__(**kwargs)
        num_convs = math.log2(int(input_size) / 4) if int(input_size) >= 8 else 0
        if num_convs < 1 or not float(num_convs).is_integer():
            raise ValueError(
                f"VAEEncoder: `input_size` must be 4 * 2**k with k >= 1 (e.g. 64, 256), "
                f"got {input_size!r}."
            )
        self.ndf = int(ndf)
        self.z_dim = int(z_dim)
        self.input_size = int(input_size)
        self.spectral_norm = bool(spectral_norm)
        self.num_convs = int(num_convs)
        # === Layers ===
        self.convs = []
        self.norms = []
        for i in range(self.num_convs):
            self.convs.append(
                _conv(
                    self.ndf * min(2**i, 8),
                    3,
                    f"layer{i + 1}",
                    strides=2,
                    padding=1,
                    use_bias=False,
                    spectral_norm=self.spectral_norm,
                )
            )
            self.norms.append(param_free_norm("instance", name=f"norm{i + 1}"))
        self.flatten = keras.layers.Flatten(name="flatten")
        self.fc_mu = _dense(self.z_dim, "fc_mu")
        self.fc_var = _dense(self.z_dim, "fc_var")

    def call(self, image, training=None):
        x = image
        if tuple(x.shape[1:3]) != (self.input_size, self.input_size):
            size = (self.input_size, self.input_size)
            x = tf.image.resize(x, size, method="bilinear")  # [N, S, S, 3]
            x = ops.cast(x, self.compute_dtype)
        for conv, norm in zip(self.convs, self.norms):
            x = _leaky_relu(norm(conv(x, training=training)))  # [N, H/2, W/2, C']
        x = self.flatten(x)  # [N, 4 * 4 * C_last]
        mu = ops.cast(self.fc_mu(x), "float32")  # [N, z_dim]
        logvar = ops.cast(self.fc_var(x), "float32")  # [N, z_dim]
        return mu, logvar

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "ndf": self.ndf,
                "z_dim": self.z_dim,
                "input_size": self.input_size,
                "spectral_norm": self.spectral_norm,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="semsynth")
class NLayerDiscriminator(keras.Model):
    """PatchGAN discriminator (one scale), kernel 4, explicit padding 2.

    conv(C -> ndf, stride 2, bias) + LReLU; then n_layers - 1 convs of widths
    ndf * min(2**i, 8) (stride 2, the last one stride 1), each spectrally normalised without bias,
    followed by the parameter-free norm and LReLU(0.2); finally conv(-> 1, stride 1, bias).

    Args:
        ndf: width of the first conv.
        n_layers: number of feature stages before the final conv (4 in the paper, >= 1).
        norm_type: parameter-free norm of the middle stages ("instance" in the reference).
        spectral_norm: spectral norm on the middle stages' convs.
        **kwargs: forwarded to `keras.Model`.

    Call args:
        x: [N, H, W, C], e.g. concat(one-hot map, image).
    Returns:
        list of n_layers + 1 float32 tensors: every stage's output, the last being the
        [N, h, w, 1] patch logits.
    """

    def __init__(self, ndf=64, n_layers=4, norm_type="instance", spectral_norm=True, **kwargs):
        super().__init__(**kwargs)
        if int(n_layers) < 1:
            raise ValueError(f"NLayerDiscriminator: `n_layers` must be >= 1, got {n_layers!r}.")
        self.ndf = int(ndf)
        self.n_layers = int(n_layers)
        self.norm_type = norm_type
        self.spectral_norm = bool(spectral_norm)
        # === Layers ===
        self.conv_in = _conv(self.ndf, 4, "conv_0", strides=2, padding=2)
        self.convs = []
        self.norms = []
        for i in range(1, self.n_layers):
            stride = 1 if i == self.n_layers - 1 else 2
            self.convs.append(
                _conv(
                    self.ndf * min(2**i, 8),
                    4,
                    f"conv_{i}",
                    strides=stride,
                    padding=2,
                    use_bias=False,
                    spectral_norm=self.spectral_norm,
                )
            )
            self.norms.append(param_free_norm(norm_type, name=f"norm_{i}"))
        self.conv_out = _conv(1, 4, f"conv_{self.n_layers}", strides=1, padding=2)

    def call(self, x, training=None):
        return self._stages(_leaky_relu(self.conv_in(x)), training)

    def call_conditioned(self, segmap, images, training=None):
        """[self(concat([segmap, image])) for image in images], sharing the segmap's work.

        conv_in is linear in its input channels, so its response to the segmentation channels
        is computed once for all images (by lookup from integer labels, `one_hot_conv`) and
        added to its response to each image. The concatenated [N, H, W, S + C] input is never
        built, and gradients reach each image through its C channels only. The later stages
        run on all images as one batch (one spectral-norm power iteration per call, as `call`
        on the images' concatenated pairs).

        Args:
            segmap: [N, H, W] integer labels, or [N, H, W, S] float map, where S is conv_in's
                input width minus the images' channels C.
            images: list of [N, H, W, C] images.
        Returns:
            list (one per image) of what `call` returns.
        """
        conv = self.conv_in  # no spectral norm: a plain conv with bias
        dtype = conv.compute_dtype
        kernel = ops.cast(conv.normalized_kernel(bool(training)), dtype)  # [k, k, S + C, ndf]
        classes = kernel.shape[2] - images[0].shape[-1]
        segmap_kernel, image_kernel = kernel[:, :, :classes], kernel[:, :, classes:]
        bias = ops.cast(conv.bias, dtype)
        pad = conv.padding
        pads = ((0, 0), (pad, pad), (pad, pad), (0, 0))

        def linear(x, kernel):  # conv_in without bias on some of its input channels
            x = ops.pad(ops.cast(x, dtype), pads)
            return ops.conv(x, kernel, strides=conv.strides, padding="valid")

        if _is_labels(segmap):
            shared = one_hot_conv(segmap, segmap_kernel, bias, conv.strides, pad)
        else:
            shared = linear(segmap, segmap_kernel) + bias  # [N, H/2 + 1, W/2 + 1, ndf]
        # The later stages run once on all images as one batch, as `call` would on the
        # concatenated pairs: one spectral-norm power iteration per call.
        x = ops.concatenate([shared + linear(image, image_kernel) for image in images], axis=0)
        outputs = self._stages(_leaky_relu(x), training)  # each [len(images) * N, ...]
        return [
            list(parts)
            for parts in zip(*[ops.split(output, len(images), axis=0) for output in outputs])
        ]

    def _stages(self, x, training):
        """The stages after conv_in: x [N, h, w, ndf] is conv_in's activated output."""
        features = [x]
        for conv, norm in zip(self.convs, self.norms):
            x = _leaky_relu(norm(conv(x, training=training), training=training))
            features.append(x)
        features.append(self.conv_out(x))  # [N, h, w, 1] patch logits
        return [ops.cast(f, "float32") for f in features]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "ndf": self.ndf,
                "n_layers": self.n_layers,
                "norm_type": self.norm_type,
                "spectral_norm": self.spectral_norm,
            }
        )
        return config


def avg_pool_exclude_pad(x):
    """3x3 average pool, stride 2, zero padding 1 not counted (PyTorch count_include_pad=False).

    Each output averages only the real pixels under its window: the padded input is sum-pooled
    and divided by the sum-pooled mask of real pixels. Output size is ceil(H / 2) x ceil(W / 2).

    Args:
        x: [N, H, W, C].
    Returns:
        [N, ceil(H/2), ceil(W/2), C] in x's dtype.
    """
    pads = ((0, 0), (1, 1), (1, 1), (0, 0))
    padded = ops.pad(x, pads)  # [N, H+2, W+2, C]
    shape = ops.shape(x)
    mask = ops.pad(ops.ones((1, shape[1], shape[2], 1), dtype=x.dtype), pads)  # [1, H+2, W+2, 1]
    # Mean pooling of both; the 1/9 factors cancel in the ratio.
    pooled = ops.average_pool(padded, 3, strides=2, padding="valid")  # [N, H', W', C]
    count = ops.average_pool(mask, 3, strides=2, padding="valid")  # [1, H', W', 1]
    return pooled / count


@keras.saving.register_keras_serializable(package="semsynth")
class MultiscaleDiscriminator(keras.Model):
    """num_D PatchGAN discriminators on successively 2x average-pooled inputs.

    Args:
        num_D: number of scales (2 in the paper).
        ndf: first-conv width of each scale.
        n_layers: feature stages per scale.
        norm_type: parameter-free norm of each scale's middle stages.
        spectral_norm: spectral norm in each scale.
        **kwargs: forwarded to `keras.Model`.

    Call args:
        x: [N, H, W, C].
    Returns:
        list over scales (finest first) of each scale's list of n_layers + 1 float32 outputs.
    """

    def __init__(
        self, num_D=2, ndf=64, n_layers=4, norm_type="instance", spectral_norm=True, **kwargs
    ):
        super().__init__(**kwargs)
        if int(num_D) < 1:
            raise ValueError(f"MultiscaleDiscriminator: `num_D` must be >= 1, got {num_D!r}.")
        self.num_D = int(num_D)
        self.ndf = int(ndf)
        self.n_layers = int(n_layers)
        self.norm_type = norm_type
        self.spectral_norm = bool(spectral_norm)
        # === Layers ===
        self.discriminators = [
            NLayerDiscriminator(
                self.ndf, self.n_layers, norm_type, self.spectral_norm, name=f"discriminator_{i}"
            )
            for i in range(self.num_D)
        ]

    def call(self, x, training=None):
        results = []
        for i, discriminator in enumerate(self.discriminators):
            results.append(discriminator(x, training=training))
            if i + 1 < self.num_D:
                x = avg_pool_exclude_pad(x)  # [N, ceil(H/2), ceil(W/2), C]
        return results

    def call_conditioned(self, segmap, images, training=None):
        """[self(concat([one_hot(segmap), image])) for image in images], sharing the segmap's work.

        What SPADE's training computes on (map, fake) and (map, real) pairs: the conditioning
        map's share of each scale's first conv is computed once (by lookup from integer labels
        at the finest scale; see NLayerDiscriminator.call_conditioned). The scales' instance
        norms are per sample, so this equals the discriminator on the concatenated pairs.

        Args:
            segmap: [N, H, W] integer labels in [0, S) or an [N, H, W, S] float one-hot map,
                with S + C the discriminator's input channels.
            images: list of [N, H, W, C] images.
        Returns:
            list (one per image) of what `call` returns.
        """
        results = [[] for _ in images]
        for i, discriminator in enumerate(self.discriminators):
            outputs = discriminator.call_conditioned(segmap, images, training=training)
            for result, output in zip(results, outputs):
                result.append(output)
            if i + 1 < self.num_D:
                if _is_labels(segmap):
                    classes = discriminator.conv_in.kernel.shape[2] - images[0].shape[-1]
                    segmap = tf.one_hot(
                        tf.cast(segmap, tf.int32), classes, dtype=discriminator.compute_dtype
                    )  # [N, H, W, S]
                segmap = avg_pool_exclude_pad(segmap)  # [N, ceil(H/2), ceil(W/2), S]
                images = [avg_pool_exclude_pad(image) for image in images]
        return results

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_D": self.num_D,
                "ndf": self.ndf,
                "n_layers": self.n_layers,
                "norm_type": self.norm_type,
                "spectral_norm": self.spectral_norm,
            }
        )
        return config


def build_spade_networks(
    num_classes,
    *,
    crop_size,
    ngf,
    ndf,
    z_dim,
    use_vae,
    num_upsampling_layers,
    norm_G,
    num_hidden,
    num_D,
    n_layers_D,
    encoder_ndf,
    encoder_input_size,
    spectral_norm=True,
    aspect_ratio=1.0,
):
    """Create the generator, discriminator and (with use_vae) encoder, with weights built.

    Each network is called once on zeros at batch 1 (inference mode, so no state changes):
    generator on a [1, H, W, num_classes] map, discriminator on [1, H, W, num_classes + 3],
    encoder on a [1, H, W, 3] image, where (H, W) is the generator's output size.

    Args:
        num_classes: one-hot channels (semantic_nc).
        crop_size, aspect_ratio, num_upsampling_layers, ngf, z_dim, num_hidden: generator
            settings (see SPADEGenerator).
        ndf, num_D, n_layers_D: discriminator settings (see MultiscaleDiscriminator).
        use_vae: whether the generator takes z and an encoder is created.
        norm_G: parameter-free norm of the generator's SPADE layers.
        encoder_ndf, encoder_input_size: encoder settings (see VAEEncoder).
        spectral_norm: spectral norm in all three networks.
    Returns:
        {"generator": SPADEGenerator, "discriminator": MultiscaleDiscriminator,
         "encoder": VAEEncoder or None}.
    """
    generator = SPADEGenerator(
        num_classes,
        ngf=ngf,
        z_dim=z_dim,
        use_vae=use_vae,
        crop_size=crop_size,
        aspect_ratio=aspect_ratio,
        num_upsampling_layers=num_upsampling_layers,
        norm_type=norm_G,
        num_hidden=num_hidden,
        spectral_norm=spectral_norm,
        name="generator",
    )
    discriminator = MultiscaleDiscriminator(
        num_D=num_D,
        ndf=ndf,
        n_layers=n_layers_D,
        spectral_norm=spectral_norm,
        name="discriminator",
    )
    encoder = None
    if use_vae:
        encoder = VAEEncoder(
            ndf=encoder_ndf,
            z_dim=z_dim,
            input_size=encoder_input_size,
            spectral_norm=spectral_norm,
            name="encoder",
        )
    height, width = generator.output_size
    segmap = ops.zeros((1, height, width, num_classes))
    z = ops.zeros((1, z_dim)) if use_vae else None
    generator(segmap, z, training=False)
    discriminator(ops.zeros((1, height, width, num_classes + 3)), training=False)
    if encoder is not None:
        encoder(ops.zeros((1, height, width, 3)), training=False)
    return {"generator": generator, "discriminator": discriminator, "encoder": encoder}
