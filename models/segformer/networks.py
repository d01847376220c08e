"""SegFormer (Xie et al., NeurIPS 2021): Mix Transformer (MiT) encoder + all-MLP decode head.

Keras 3, NHWC throughout, dynamic shapes: one model instance runs on any input size (square or
not) inside a `tf.function` whose input signature has `None` height and width, because every
reshape reads the spatial size from the tensor. Sizes that are multiples of 32 give logits of
exactly [N, H/4, W/4, K]; other sizes (>= 32) also work and give ceil(H/4) x ceil(W/4).

- `OverlappingPatchEmbedding`: strided conv (k/s, padding k//2) + LayerNorm.
- `EfficientMultiHeadAttention`: attention whose keys/values come from a spatially reduced map.
- `MixFFN`: Dense -> 3x3 depthwise conv -> GELU -> Dense.
- `MiTBlock`: pre-norm transformer block with stochastic depth.
- `MiTEncoder`: 4 stages -> feature maps at 1/4, 1/8, 1/16, 1/32.
- `SegFormerHead`: per-stage Dense, upsample to 1/4, concat, 1x1 fuse + BN + ReLU, classifier.
- `SegFormer`: encoder + head; float32 logits at 1/4 resolution.
- `preprocess`, `upsample_logits`: ImageNet normalisation, bilinear upsampling to a label size.
- `load_keras_hub_weights`: copies weights of a keras-hub SegFormer / MiT preset into ours.

Architecture, epsilons and parameter counts follow keras-hub 0.32 (and HF transformers): B0
with 150 classes has 3,752,694 trainable parameters, with 19 classes 3,719,027; the B0 encoder
alone 3,319,392. Facts: shared/reference/segformer.md.
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf
from keras import ops

# Per variant: stage widths, blocks per stage, attention heads, spatial-reduction ratios and the
# decode head's embedding width. "tiny" is for tests and smoke runs only.
MIT_VARIANTS = {
    "tiny": {
        "dims": (8, 16, 32, 64),
        "depths": (1, 1, 1, 1),
        "num_heads": (1, 2, 2, 4),
        "sr_ratios": (8, 4, 2, 1),
        "head_embed_dim": 32,
    },
    "b0": {
        "dims": (32, 64, 160, 256),
        "depths": (2, 2, 2, 2),
        "num_heads": (1, 2, 5, 8),
        "sr_ratios": (8, 4, 2, 1),
        "head_embed_dim": 256,
    },
    "b1": {
        "dims": (64, 128, 320, 512),
        "depths": (2, 2, 2, 2),
        "num_heads": (1, 2, 5, 8),
        "sr_ratios": (8, 4, 2, 1),
        "head_embed_dim": 256,
    },
    "b2": {
        "dims": (64, 128, 320, 512),
        "depths": (3, 4, 6, 3),
        "num_heads": (1, 2, 5, 8),
        "sr_ratios": (8, 4, 2, 1),
        "head_embed_dim": 768,
    },
    "b3": {
        "dims": (64, 128, 320, 512),
        "depths": (3, 4, 18, 3),
        "num_heads": (1, 2, 5, 8),
        "sr_ratios": (8, 4, 2, 1),
        "head_embed_dim": 768,
    },
    "b4": {
        "dims": (64, 128, 320, 512),
        "depths": (3, 8, 27, 3),
        "num_heads": (1, 2, 5, 8),
        "sr_ratios": (8, 4, 2, 1),
        "head_embed_dim": 768,
    },
    "b5": {
        "dims": (64, 128, 320, 512),
        "depths": (3, 6, 40, 3),
        "num_heads": (1, 2, 5, 8),
        "sr_ratios": (8, 4, 2, 1),
        "head_embed_dim": 768,
    },
}

# Overlapping patch embeddings: the first stage downsamples by 4, the others by 2.
PATCH_SIZES = (7, 3, 3, 3)
PATCH_STRIDES = (4, 2, 2, 2)
MLP_RATIO = 4
# Smallest input side: stage 1 (1/4) must still hold one 8x8 spatial-reduction window.
MIN_INPUT_SIZE = 32

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Every LayerNorm of the original SegFormer (and of Hugging Face's port) uses PyTorch's default
# epsilon 1e-5 (HF's config field layer_norm_eps=1e-6 is read by no module). keras-hub's MiT
# uses 1e-6 for the transformer blocks' pre-norms, and the tanh-approximate GELU where the
# original uses the exact erf form. The network follows the origin of its weights: ARCHITECTURES
# holds the two sets of choices, "original" by default and "keras_hub" when keras-hub presets
# are loaded (so that their logits reproduce exactly).
NORM_EPSILON = 1e-5
BLOCK_NORM_EPSILON = NORM_EPSILON
ARCHITECTURES = {
    "original": {"approximate_gelu": False, "block_norm_epsilon": 1e-5},
    "keras_hub": {"approximate_gelu": True, "block_norm_epsilon": 1e-6},
}


def _conv_out_size(size, kernel, stride, pad):
    """Output length of a conv over `size` (None when unknown) with symmetric padding `pad`."""
    if size is None:
        return None
    return (size + 2 * pad - kernel) // stride + 1


def _resize_bilinear(x, size):
    """Bilinear resize (half-pixel centres, no antialias: PyTorch align_corners=False and
    keras.layers.Resizing) to a possibly dynamic `size`, keeping x's dtype."""
    resized = tf.image.resize(x, size, method="bilinear", antialias=False)  # [N, h, w, C] f32
    return ops.cast(resized, x.dtype)


@keras.saving.register_keras_serializable(package="semsynth")
class OverlappingPatchEmbedding(keras.layers.Layer):
    """Overlapping patch embedding: zero-pad k//2, conv k x k stride s, LayerNorm (eps 1e-5).

    Neighbouring patches overlap (k > s), which gives the encoder local continuity without
    positional encodings.

    Args:
        filters: output channels C of the embedding.
        patch_size: conv kernel size k (odd).
        stride: conv stride s: output is ceil(H / s) x ceil(W / s).
        **kwargs: forwarded to `keras.layers.Layer`.

    Call args:
        x: [N, H, W, Cin].
    Returns:
        [N, ceil(H/s), ceil(W/s), C].
    """

    def __init__(self, filters, patch_size, stride, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.patch_size = int(patch_size)
        self.stride = int(stride)
        if self.filters < 1 or self.patch_size < 1 or self.stride < 1:
            raise ValueError(
                f"OverlappingPatchEmbedding: `filters`, `patch_size` and `stride` must be >= 1, "
                f"got {filters!r}, {patch_size!r}, {stride!r}."
            )
        # === Layers ===
        self.proj = keras.layers.Conv2D(
            self.filters, self.patch_size, strides=self.stride, padding="valid", name="proj"
        )
        self.norm = keras.layers.LayerNormalization(epsilon=NORM_EPSILON, name="norm")

    def build(self, input_shape):
        pad = self.patch_size // 2
        padded = (
            input_shape[0],
            None if input_shape[1] is None else input_shape[1] + 2 * pad,
            None if input_shape[2] is None else input_shape[2] + 2 * pad,
            input_shape[3],
        )
        self.proj.build(padded)
        self.norm.build(self.compute_output_shape(input_shape))

    def call(self, x):
        pad = self.patch_size // 2
        x = ops.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))  # [N, H + 2p, W + 2p, Cin]
        x = self.proj(x)  # [N, H', W', C]
        return self.norm(x)

    def compute_output_shape(self, input_shape):
        pad = self.patch_size // 2
        h, w = (_conv_out_size(s, self.patch_size, self.stride, pad) for s in input_shape[1:3])
        return (input_shape[0], h, w, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"filters": self.filters, "patch_size": self.patch_size, "stride": self.stride}
        )
        return config


@keras.saving.register_keras_serializable(package="semsynth")
class EfficientMultiHeadAttention(keras.layers.Layer):
    """Multi-head self-attention with spatial reduction of keys and values (SegFormer's
    "efficient self-attention").

    Queries come from every position; keys and values from the map reduced by a k = s = sr conv
    (+ LayerNorm eps 1e-5), so the cost drops from (HW)^2 to (HW)^2 / sr^2. q, kv (keys and
    values from one Dense, keys in the first `dim` channels) and the output projection all
    have biases. Attention logits are softmaxed in float32 (safe under mixed precision).

    Args:
        dim: channels C of input and output; divisible by `num_heads`.
        num_heads: attention heads; each has C / num_heads channels.
        sr_ratio: spatial-reduction ratio (1 = none) applied before the key/value projection.
        **kwargs: forwarded to `keras.layers.Layer`.

    Call args:
        x: [N, H, W, C]; H and W divisible by `sr_ratio` (or else floored by the reduction).
    Returns:
        [N, H, W, C].
    """

    def __init__(self, dim, num_heads, sr_ratio=1, **kwargs):
        super().__init__(**kwargs)
        self.dim = int(dim)
        self.num_heads = int(num_heads)
        self.sr_ratio = int(sr_ratio)
        if self.num_heads < 1 or self.dim % self.num_heads != 0:
            raise ValueError(
                f"EfficientMultiHeadAttention: `dim` ({dim!r}) must be divisible by "
                f"`num_heads` ({num_heads!r})."
            )
        if self.sr_ratio < 1:
            raise ValueError(
                f"EfficientMultiHeadAttention: `sr_ratio` must be >= 1, got {sr_ratio!r}."
            )
        self.head_dim = self.dim // self.num_heads
        # === Layers ===
        self.q = keras.layers.Dense(self.dim, name="q")
        self.kv = keras.layers.Dense(2 * self.dim, name="kv")
        self.proj = keras.layers.Dense(self.dim, name="proj")
        if self.sr_ratio > 1:
            self.sr = keras.layers.Conv2D(
                self.dim, self.sr_ratio, strides=self.sr_ratio, padding="valid", name="sr"
            )
            self.sr_norm = keras.layers.LayerNormalization(epsilon=NORM_EPSILON, name="sr_norm")
        else:
            self.sr = None
            self.sr_norm = None

    def build(self, input_shape):
        self.q.build(input_shape)
        self.proj.build(input_shape)
        if self.sr is not None:
            self.sr.build(input_shape)
            reduced = self.sr.compute_output_shape(input_shape)
            self.sr_norm.build(reduced)
            self.kv.build(reduced)
        else:
            self.kv.build(input_shape)

    def call(self, x):
        n, h, w = ops.shape(x)[0], ops.shape(x)[1], ops.shape(x)[2]
        q = self.q(x)  # [N, H, W, C]
        q = ops.reshape(q, (n, h * w, self.num_heads, self.head_dim))  # [N, HW, heads, d]
        q = ops.transpose(q, (0, 2, 1, 3))  # [N, heads, HW, d]

        reduced = x
        if self.sr is not None:
            reduced = self.sr_norm(self.sr(x))  # [N, H/sr, W/sr, C]
        kv = self.kv(reduced)  # [N, H/sr, W/sr, 2C]
        kv = ops.reshape(kv, (n, -1, 2, self.num_heads, self.head_dim))  # [N, M, 2, heads, d]
        kv = ops.transpose(kv, (2, 0, 3, 1, 4))  # [2, N, heads, M, d]
        k, v = kv[0], kv[1]  # [N, heads, M, d] each

        scale = ops.cast(self.head_dim**-0.5, q.dtype)
        logits = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) * scale  # [N, heads, HW, M]
        weights = ops.cast(tf.nn.softmax(ops.cast(logits, "float32"), axis=-1), v.dtype)
        out = ops.matmul(weights, v)  # [N, heads, HW, d]
        out = ops.transpose(out, (0, 2, 1, 3))  # [N, HW, heads, d]
        out = ops.reshape(out, (n, h, w, self.dim))  # [N, H, W, C]
        return self.proj(out)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"dim": self.dim, "num_heads": self.num_heads, "sr_ratio": self.sr_ratio})
        return config


@keras.saving.register_keras_serializable(package="semsynth")
class MixFFN(keras.layers.Layer):
    """Mix-FFN: Dense -> 3x3 depthwise conv -> GELU -> Dense.

    The depthwise conv leaks enough position information that MiT needs no positional encoding
    (and so runs at any resolution).

    Args:
        dim: input and output channels C.
        hidden_dim: channels of the hidden layer (MLP ratio x C, i.e. 4C).
        approximate_gelu: False (default) uses the exact erf GELU of the original SegFormer and
            Hugging Face; True the tanh approximation keras-hub's MiT uses (its presets then
            reproduce exactly; differences ~1e-3 per activation).
        **kwargs: forwarded to `keras.layers.Layer`.

    Call args:
        x: [N, H, W, C].
    Returns:
        [N, H, W, C].
    """

    def __init__(self, dim, hidden_dim, approximate_gelu=False, **kwargs):
        super().__init__(**kwargs)
        self.dim = int(dim)
        self.hidden_dim = int(hidden_dim)
        self.approximate_gelu = bool(approximate_gelu)
        if self.dim < 1 or self.hidden_dim < 1:
            raise ValueError(
                f"MixFFN: `dim` and `hidden_dim` must be >= 1, got {dim!r}, {hidden_dim!r}."
            )
        # === Layers ===
        self.fc1 = keras.layers.Dense(self.hidden_dim, name="fc1")
        self.dwconv = keras.layers.DepthwiseConv2D(3, padding="same", name="dwconv")
        self.fc2 = keras.layers.Dense(self.dim, name="fc2")

    def build(self, input_shape):
        hidden_shape = (*input_shape[:-1], self.hidden_dim)
        self.fc1.build(input_shape)
        self.dwconv.build(hidden_shape)
        self.fc2.build(hidden_shape)

    def call(self, x):
        x = self.fc1(x)  # [N, H, W, 4C]
        x = self.dwconv(x)  # [N, H, W, 4C]
        x = ops.gelu(x, approximate=self.approximate_gelu)
        return self.fc2(x)  # [N, H, W, C]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "dim": self.dim,
                "hidden_dim": self.hidden_dim,
                "approximate_gelu": self.approximate_gelu,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="semsynth")
class MiTBlock(keras.layers.Layer):
    """Mix Transformer block: x + DropPath(attn(LN(x))), then x + DropPath(MixFFN(LN(x))).

    Stochastic depth ("drop path") drops each sample's residual branch with probability
    `drop_path` during training (scaling kept ones by 1 / (1 - drop_path)); at inference
    (training=False / None) the block is deterministic.

    Args:
        dim: channels C.
        num_heads: attention heads.
        sr_ratio: spatial-reduction ratio of the attention.
        mlp_ratio: Mix-FFN hidden width as a multiple of C.
        drop_path: probability in [0, 1) of dropping a residual branch while training.
        approximate_gelu: GELU form of the Mix-FFN (see `MixFFN`).
        block_norm_epsilon: epsilon of the two pre-norms (1e-5 original, 1e-6 keras-hub).
        seed: optional int seed of the stochastic-depth draws.
        **kwargs: forwarded to `keras.layers.Layer`.

    Call args:
        x: [N, H, W, C].
        training: whether stochastic depth is active.
    Returns:
        [N, H, W, C].
    """

    def __init__(
        self,
        dim,
        num_heads,
        sr_ratio=1,
        mlp_ratio=MLP_RATIO,
        drop_path=0.0,
        approximate_gelu=False,
        block_norm_epsilon=BLOCK_NORM_EPSILON,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.block_norm_epsilon = float(block_norm_epsilon)
        self.dim = int(dim)
        self.num_heads = int(num_heads)
        self.sr_ratio = int(sr_ratio)
        self.mlp_ratio = mlp_ratio
        self.drop_path = float(drop_path)
        self.approximate_gelu = bool(approximate_gelu)
        self.seed = seed
        if not 0.0 <= self.drop_path < 1.0:
            raise ValueError(f"MiTBlock: `drop_path` must be in [0, 1), got {drop_path!r}.")
        # === Layers ===
        self.norm1 = keras.layers.LayerNormalization(epsilon=self.block_norm_epsilon, name="norm1")
        self.attn = EfficientMultiHeadAttention(
            self.dim, self.num_heads, self.sr_ratio, name="attn"
        )
        self.norm2 = keras.layers.LayerNormalization(epsilon=self.block_norm_epsilon, name="norm2")
        self.mlp = MixFFN(
            self.dim, int(self.dim * mlp_ratio), approximate_gelu=self.approximate_gelu, name="mlp"
        )
        self.seed_generator = keras.random.SeedGenerator(seed) if self.drop_path > 0 else None

    def build(self, input_shape):
        for layer in (self.norm1, self.attn, self.norm2, self.mlp):
            layer.build(input_shape)

    def _drop_path(self, branch, training):
        if not training or self.drop_path == 0.0:
            return branch
        keep_prob = 1.0 - self.drop_path
        n = ops.shape(branch)[0]
        # One draw per sample: the whole residual branch of that sample is kept or dropped.
        uniform = keras.random.uniform((n, 1, 1, 1), seed=self.seed_generator)  # [N, 1, 1, 1]
        keep = ops.cast(uniform < keep_prob, branch.dtype)  # [N, 1, 1, 1]
        return branch * keep / ops.cast(keep_prob, branch.dtype)

    def call(self, x, training=None):
        x = x + self._drop_path(self.attn(self.norm1(x)), training)  # [N, H, W, C]
        x = x + self._drop_path(self.mlp(self.norm2(x)), training)  # [N, H, W, C]
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "dim": self.dim,
                "num_heads": self.num_heads,
                "sr_ratio": self.sr_ratio,
                "mlp_ratio": self.mlp_ratio,
                "drop_path": self.drop_path,
                "approximate_gelu": self.approximate_gelu,
                "block_norm_epsilon": self.block_norm_epsilon,
                "seed": self.seed,
            }
        )
        return config


def _resolve_variant(variant, owner):
    if variant not in MIT_VARIANTS:
        raise ValueError(
            f"{owner}: unknown `variant` {variant!r}; choose one of {sorted(MIT_VARIANTS)}."
        )
    return MIT_VARIANTS[variant]


@keras.saving.register_keras_serializable(package="semsynth")
class MiTEncoder(keras.layers.Layer):
    """Mix Transformer encoder: 4 stages of patch embedding -> blocks -> LayerNorm.

    Give either `variant` (a key of `MIT_VARIANTS`) or all of dims/depths/num_heads/sr_ratios.
    Stochastic-depth rates grow linearly from 0 to `drop_path_rate` over all blocks.

    Args:
        variant: "tiny", "b0" ... "b5", or None to use the explicit lists below.
        dims: 4 stage widths (C1..C4).
        depths: 4 numbers of blocks per stage.
        num_heads: 4 numbers of attention heads per stage.
        sr_ratios: 4 spatial-reduction ratios per stage.
        drop_path_rate: stochastic-depth rate of the last block.
        approximate_gelu: GELU form of the Mix-FFNs (see `MixFFN`).
        block_norm_epsilon: epsilon of the blocks' pre-norms (see `MiTBlock`).
        **kwargs: forwarded to `keras.layers.Layer`.

    Call args:
        images: [N, H, W, 3] normalised images (see `preprocess`).
        training: whether stochastic depth is active.
    Returns:
        list of 4 maps [N, H/4, W/4, C1], [N, H/8, W/8, C2], [N, H/16, W/16, C3],
        [N, H/32, W/32, C4] (ceil-divided for sizes that are not multiples of 32).

    Example:
    >>> encoder = MiTEncoder("tiny")
    >>> [tuple(f.shape) for f in encoder(ops.zeros((1, 64, 96, 3)))]
    [(1, 16, 24, 8), (1, 8, 12, 16), (1, 4, 6, 32), (1, 2, 3, 64)]
    """

    def __init__(
        self,
        variant=None,
        dims=None,
        depths=None,
        num_heads=None,
        sr_ratios=None,
        drop_path_rate=0.1,
        approximate_gelu=False,
        block_norm_epsilon=BLOCK_NORM_EPSILON,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.block_norm_epsilon = float(block_norm_epsilon)
        explicit = {"dims": dims, "depths": depths, "num_heads": num_heads, "sr_ratios": sr_ratios}
        if variant is not None:
            spec = _resolve_variant(variant, "MiTEncoder")
            for key, value in explicit.items():
                if value is not None and tuple(value) != tuple(spec[key]):
                    raise ValueError(
                        f"MiTEncoder: `{key}`={value!r} contradicts variant {variant!r} "
                        f"({spec[key]!r}); pass either `variant` or explicit lists."
                    )
            explicit = {key: spec[key] for key in explicit}
        for key, value in explicit.items():
            if value is None or len(value) != 4:
                raise ValueError(
                    f"MiTEncoder: `{key}` must list 4 stage values (or pass `variant`), "
                    f"got {value!r}."
                )
        self.variant = variant
        self.dims = tuple(int(v) for v in explicit["dims"])
        self.depths = tuple(int(v) for v in explicit["depths"])
        self.num_heads = tuple(int(v) for v in explicit["num_heads"])
        self.sr_ratios = tuple(int(v) for v in explicit["sr_ratios"])
        self.drop_path_rate = float(drop_path_rate)
        self.approximate_gelu = bool(approximate_gelu)

        rates = np.linspace(0.0, self.drop_path_rate, sum(self.depths))
        # === Layers ===
        self.patch_embeds = []
        self.blocks = []  # all blocks, stage after stage (flat so Keras tracks them)
        self.stage_norms = []
        block_index = 0
        for stage in range(4):
            self.patch_embeds.append(
                OverlappingPatchEmbedding(
                    self.dims[stage],
                    PATCH_SIZES[stage],
                    PATCH_STRIDES[stage],
                    name=f"patch_embed_{stage}",
                )
            )
            for k in range(self.depths[stage]):
                self.blocks.append(
                    MiTBlock(
                        self.dims[stage],
                        self.num_heads[stage],
                        self.sr_ratios[stage],
                        drop_path=float(rates[block_index]),
                        approximate_gelu=self.approximate_gelu,
                        block_norm_epsilon=self.block_norm_epsilon,
                        name=f"block_{stage}_{k}",
                    )
                )
                block_index += 1
            self.stage_norms.append(
                keras.layers.LayerNormalization(epsilon=NORM_EPSILON, name=f"norm_{stage}")
            )

    def stage_blocks(self, stage):
        """The MiTBlocks of stage `stage` (0-3), in order."""
        start = sum(self.depths[:stage])
        return self.blocks[start : start + self.depths[stage]]

    def build(self, input_shape):
        shape = tuple(input_shape)
        for stage in range(4):
            self.patch_embeds[stage].build(shape)
            shape = self.patch_embeds[stage].compute_output_shape(shape)
            for block in self.stage_blocks(stage):
                block.build(shape)
            self.stage_norms[stage].build(shape)

    def call(self, images, training=None):
        features = []
        x = images  # [N, H, W, 3]
        for stage in range(4):
            x = self.patch_embeds[stage](x)  # [N, H / 2^(stage+2), W / 2^(stage+2), C_stage]
            for block in self.stage_blocks(stage):
                x = block(x, training=training)
            x = self.stage_norms[stage](x)
            features.append(x)
        return features

    def compute_output_shape(self, input_shape):
        shapes = []
        shape = tuple(input_shape)
        for stage in range(4):
            shape = self.patch_embeds[stage].compute_output_shape(shape)
            shapes.append(shape)
        return shapes

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "variant": self.variant,
                "dims": list(self.dims),
                "depths": list(self.depths),
                "num_heads": list(self.num_heads),
                "sr_ratios": list(self.sr_ratios),
                "drop_path_rate": self.drop_path_rate,
                "approximate_gelu": self.approximate_gelu,
                "block_norm_epsilon": self.block_norm_epsilon,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="semsynth")
class SegFormerHead(keras.layers.Layer):
    """All-MLP decode head.

    Each stage map goes through its own Dense to `embed_dim`, is resized (bilinear) to the 1/4
    map's size, the four are concatenated as [c4, c3, c2, c1] (keras-hub / HF order, so their
    weights load), fused by a 1x1 conv (no bias) + BatchNorm (eps 1e-5, momentum 0.9) + ReLU,
    then dropout and a 1x1 classifier conv (with bias).

    Args:
        embed_dim: common embedding width E (256 for B0/B1, 768 for B2-B5).
        num_classes: number of output classes K.
        dropout: dropout rate before the classifier (training only).
        **kwargs: forwarded to `keras.layers.Layer`.

    Call args:
        features: list of 4 maps [N, H_i, W_i, C_i], the first at the highest resolution.
        training: whether BatchNorm uses batch statistics and dropout is active.
    Returns:
        [N, H_1, W_1, K] logits in the compute dtype.
    """

    def __init__(self, embed_dim, num_classes, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim = int(embed_dim)
        self.num_classes = int(num_classes)
        self.dropout_rate = float(dropout)
        if self.embed_dim < 1:
            raise ValueError(f"SegFormerHead: `embed_dim` must be >= 1, got {embed_dim!r}.")
        if self.num_classes < 1:
            raise ValueError(f"SegFormerHead: `num_classes` must be >= 1, got {num_classes!r}.")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(f"SegFormerHead: `dropout` must be in [0, 1), got {dropout!r}.")
        # === Layers ===
        self.linear_c = [
            keras.layers.Dense(self.embed_dim, name=f"linear_c{i + 1}") for i in range(4)
        ]
        self.fuse_conv = keras.layers.Conv2D(self.embed_dim, 1, use_bias=False, name="fuse_conv")
        self.fuse_bn = keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name="fuse_bn")
        self.dropout = keras.layers.Dropout(self.dropout_rate, name="dropout")
        self.classifier = keras.layers.Conv2D(self.num_classes, 1, name="classifier")

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"SegFormerHead: expected 4 feature maps, got {len(input_shape)} shapes."
            )
        for linear, shape in zip(self.linear_c, input_shape):
            linear.build(shape)
        fused_shape = (*input_shape[0][:-1], 4 * self.embed_dim)
        embed_shape = (*input_shape[0][:-1], self.embed_dim)
        self.fuse_conv.build(fused_shape)
        self.fuse_bn.build(embed_shape)
        self.classifier.build(embed_shape)

    def call(self, features, training=None):
        # The fuse conv is linear and so are the Dense projections and the bilinear resize (its
        # weights sum to 1, so a constant passes through unchanged). The concatenation of the
        # four resized projections times the fuse kernel is therefore the sum, over stages, of
        # each stage map times (its Dense kernel @ its slice of the fuse kernel), resized, plus
        # the folded biases. Same function and parameters, but the [N, H/4, W/4, 4E] concat and
        # the 4E -> E conv over it (about half of B0's FLOPs at 512 px) are never computed.
        embed = self.embed_dim
        fuse_kernel = ops.reshape(self.fuse_conv.kernel, (4 * embed, embed))  # [4E, E] float32
        size = ops.shape(features[0])[1:3]  # (H/4, W/4), dynamic
        fused, bias = None, None
        for i, (linear, feature) in enumerate(zip(self.linear_c, features)):
            # Concatenation order is [c4, c3, c2, c1]: stage i's rows are block 3 - i.
            block = fuse_kernel[(3 - i) * embed : (4 - i) * embed]  # [E, E]
            kernel = ops.matmul(linear.kernel, block)  # [C_i, E]
            stage_bias = ops.matmul(linear.bias[None, :], block)  # [1, E]
            bias = stage_bias if bias is None else bias + stage_bias
            x = ops.matmul(feature, ops.cast(kernel, feature.dtype))  # [N, H_i, W_i, E]
            if i > 0:
                x = _resize_bilinear(x, size)  # [N, H/4, W/4, E]
            fused = x if fused is None else fused + x
        x = fused + ops.cast(ops.reshape(bias, (embed,)), fused.dtype)  # [N, H/4, W/4, E]
        x = ops.relu(self.fuse_bn(x, training=training))
        x = self.dropout(x, training=training)
        return self.classifier(x)  # [N, H/4, W/4, K]

    def compute_output_shape(self, input_shape):
        return (*input_shape[0][:-1], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "embed_dim": self.embed_dim,
                "num_classes": self.num_classes,
                "dropout": self.dropout_rate,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="semsynth")
class SegFormer(keras.Model):
    """SegFormer: MiT encoder + all-MLP head -> float32 logits at 1/4 resolution.

    Logits are cast to float32 at the end so that a mixed-precision policy cannot give
    bfloat16 / float16 logits to the loss. Upsample them with `upsample_logits` to the label
    size for the loss and for predictions.

    Args:
        variant: MiT variant, a key of `MIT_VARIANTS` ("tiny", "b0" ... "b5").
        num_classes: number of classes K (150 for ADE20K, 19 for Cityscapes / FaceSynthetics).
        drop_path_rate: stochastic-depth rate of the encoder's last block.
        head_embed_dim: decode-head width E; None uses the variant's (256 for B0/B1, 768 for
            B2-B5, 32 for tiny).
        dropout: dropout rate before the classifier.
        approximate_gelu: GELU form of the Mix-FFNs (see `MixFFN`; True matches keras-hub).
        block_norm_epsilon: epsilon of the blocks' pre-norms (1e-5 original, 1e-6 keras-hub).
            `SegFormer(..., **ARCHITECTURES["keras_hub"])` builds keras-hub's choices.
        **kwargs: forwarded to `keras.Model`.

    Call args:
        images: [N, H, W, 3] images already normalised with `preprocess`; H, W >= 32
            (multiples of 32 give exactly H/4 x W/4 logits).
        training: whether stochastic depth, BatchNorm batch statistics and dropout are active.
    Returns:
        [N, H/4, W/4, K] float32 logits.

    Example:
    >>> model = SegFormer("tiny", num_classes=5)
    >>> tuple(model(preprocess(ops.zeros((2, 64, 96, 3), "uint8"))).shape)
    (2, 16, 24, 5)
    """

    def __init__(
        self,
        variant="b0",
        num_classes=150,
        drop_path_rate=0.1,
        head_embed_dim=None,
        dropout=0.1,
        approximate_gelu=False,
        block_norm_epsilon=BLOCK_NORM_EPSILON,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.block_norm_epsilon = float(block_norm_epsilon)
        spec = _resolve_variant(variant, "SegFormer")
        self.variant = variant
        self.num_classes = int(num_classes)
        self.drop_path_rate = float(drop_path_rate)
        self.head_embed_dim = int(head_embed_dim or spec["head_embed_dim"])
        self.dropout_rate = float(dropout)
        self.approximate_gelu = bool(approximate_gelu)
        # === Layers ===
        self.encoder = MiTEncoder(
            variant,
            drop_path_rate=self.drop_path_rate,
            approximate_gelu=self.approximate_gelu,
            block_norm_epsilon=self.block_norm_epsilon,
            name="encoder",
        )
        self.head = SegFormerHead(
            self.head_embed_dim, self.num_classes, dropout=self.dropout_rate, name="head"
        )

    def build(self, input_shape):
        _check_image_shape(input_shape, "SegFormer")
        self.encoder.build(input_shape)
        self.head.build(self.encoder.compute_output_shape(input_shape))

    def call(self, images, training=None):
        _check_image_shape(images.shape, "SegFormer")
        features = self.encoder(images, training=training)  # 4 maps, 1/4 ... 1/32
        logits = self.head(features, training=training)  # [N, H/4, W/4, K]
        return ops.cast(logits, "float32")

    def compute_output_shape(self, input_shape):
        return self.head.compute_output_shape(self.encoder.compute_output_shape(input_shape))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "variant": self.variant,
                "num_classes": self.num_classes,
                "drop_path_rate": self.drop_path_rate,
                "head_embed_dim": self.head_embed_dim,
                "dropout": self.dropout_rate,
                "approximate_gelu": self.approximate_gelu,
                "block_norm_epsilon": self.block_norm_epsilon,
            }
        )
        return config


def _check_image_shape(shape, owner):
    """Static checks of an [N, H, W, 3] image shape (unknown dims pass)."""
    shape = tuple(shape)
    if len(shape) != 4 or shape[-1] not in (None, 3):
        raise ValueError(f"{owner}: `images` must be [N, H, W, 3], got shape {shape}.")
    for size in shape[1:3]:
        if size is not None and size < MIN_INPUT_SIZE:
            raise ValueError(
                f"{owner}: `images` height and width must be >= {MIN_INPUT_SIZE} "
                f"(multiples of 32 recommended), got shape {shape}."
            )


def preprocess(images):
    """ImageNet mean/std normalisation of RGB images in [0, 255] (uint8 or float).

    Args:
        images: [..., 3] RGB values in [0, 255].
    Returns:
        float32 tensor of the same shape: (x - 255 * mean) / (255 * std).
    """
    images = ops.convert_to_tensor(images)
    if images.shape[-1] is not None and images.shape[-1] != 3:
        raise ValueError(f"preprocess: `images` must end in 3 RGB channels, got {images.shape}.")
    mean = ops.convert_to_tensor(np.array(IMAGENET_MEAN, "float32") * 255.0)  # [3]
    std = ops.convert_to_tensor(np.array(IMAGENET_STD, "float32") * 255.0)  # [3]
    return (ops.cast(images, "float32") - mean) / std


def upsample_logits(logits, size):
    """Bilinear upsampling of [N, h, w, K] logits to `size` = (H, W) (ints or scalar tensors).

    Same sampling as PyTorch `F.interpolate(..., mode="bilinear", align_corners=False)` and
    keras-hub's Resizing layer. Returns float32 [N, H, W, K].
    """
    logits = ops.cast(logits, "float32")
    return tf.image.resize(logits, (size[0], size[1]), method="bilinear")  # [N, H, W, K]


# ---------------------------------------------------------------------------------------------
# keras-hub weights.
#
# Mapping (keras-hub 0.32 layer -> ours; every pair is shape-checked before anything is copied):
#   MiTBackbone  patch_and_embed_{i}.proj / .norm          -> encoder.patch_embeds[i].proj / .norm
#                hierarchical_encoder_{i}_{k}.norm1/.norm2  -> encoder block_{i}_{k}.norm1 / .norm2
#                  .attn.q, .attn.proj, .attn.sr, .attn.norm -> attn.q, .proj, .sr, .sr_norm
#                  .attn.k ++ .attn.v (kernels concatenated on the output axis) -> attn.kv
#                  .mlp.fc1, .mlp.dwconv, .mlp.fc2          -> mlp.fc1, .dwconv, .fc2
#                its 4 top-level LayerNormalization layers, in order -> encoder.stage_norms
#   SegFormerBackbone  mlp_blocks[i]                         -> head.linear_c[i]
#                linear_fuse Conv2D / BatchNormalization     -> head.fuse_conv / head.fuse_bn
#   SegFormerImageSegmenter  output_segmentation_head        -> head.classifier
# A MiT preset fills the encoder only; a SegFormerBackbone preset (no task) leaves the
# classifier as is.
# ---------------------------------------------------------------------------------------------


def _keras_hub_presets(keras_hub):
    """Built-in keras-hub preset names: (SegFormer segmenters, MiT backbones)."""
    segformer_names = set(keras_hub.models.SegFormerImageSegmenter.presets)
    return segformer_names, set(keras_hub.models.MiTBackbone.presets)


def _load_keras_hub_model(preset):
    """Loads a keras-hub SegFormerImageSegmenter / SegFormerBackbone / MiTBackbone preset."""
    import keras_hub  # imported here: slow to import and only needed for weight conversion

    preset = os.fspath(preset)
    if os.path.isdir(preset):
        task_file = os.path.join(preset, "task.json")
        config_file = os.path.join(preset, "config.json")
        if os.path.isfile(task_file):
            with open(task_file) as f:
                class_name = json.load(f).get("class_name")
            if class_name == "SegFormerImageSegmenter":
                return keras_hub.models.SegFormerImageSegmenter.from_preset(preset)
        if not os.path.isfile(config_file):
            raise FileNotFoundError(
                f"load_keras_hub_weights: {config_file} not found: {preset!r} is not a keras-hub "
                "preset directory (save one with `save_to_preset`)."
            )
        with open(config_file) as f:
            class_name = json.load(f).get("class_name")
        if class_name == "SegFormerBackbone":
            return keras_hub.models.SegFormerBackbone.from_preset(preset)
        if class_name == "MiTBackbone":
            return keras_hub.models.MiTBackbone.from_preset(preset)
        raise ValueError(
            f"load_keras_hub_weights: {config_file} holds a {class_name!r}; expected a "
            "SegFormerBackbone or MiTBackbone preset."
        )

    segformer_names, mit_names = _keras_hub_presets(keras_hub)
    looks_like_path = os.sep in preset or preset.startswith((".", "~")) or os.path.exists(preset)
    if looks_like_path or preset not in segformer_names | mit_names:
        raise FileNotFoundError(
            f"load_keras_hub_weights: preset directory {preset!r} not found (and it is not a "
            f"keras-hub preset name such as 'segformer_b0_ade20k_512' or 'mit_b0_ade20k_512'; "
            "see keras_hub.models.SegFormerImageSegmenter.presets)."
        )
    cls = (
        keras_hub.models.SegFormerImageSegmenter
        if preset in segformer_names
        else keras_hub.models.MiTBackbone
    )
    try:
        return cls.from_preset(preset)
    except Exception as error:  # network / hub failures: tell the user the offline route
        raise FileNotFoundError(
            f"load_keras_hub_weights: could not download keras-hub preset {preset!r} "
            f"({type(error).__name__}: {str(error)[:200]}). On a machine with internet run "
            f"`keras_hub.models.{cls.__name__}.from_preset({preset!r}).save_to_preset(DIR)`, "
            "copy DIR here and pass its path as the preset."
        ) from error


def _sublayers_of_type(model, layer_type):
    return [layer for layer in model.layers if isinstance(layer, layer_type)]


def _encoder_pairs(encoder, mit):
    """(our variable, keras-hub value, keras-hub name) for every encoder variable."""
    theirs = {
        "dims": tuple(mit.hidden_dims),
        "depths": tuple(mit.layerwise_depths),
        "num_heads": tuple(mit.layerwise_num_heads),
        "sr_ratios": tuple(mit.layerwise_sr_ratios),
        "patch sizes": tuple(mit.layerwise_patch_sizes),
        "strides": tuple(mit.layerwise_strides),
    }
    ours = {
        "dims": encoder.dims,
        "depths": encoder.depths,
        "num_heads": encoder.num_heads,
        "sr_ratios": encoder.sr_ratios,
        "patch sizes": PATCH_SIZES,
        "strides": PATCH_STRIDES,
    }
    for key in ours:
        if ours[key] != theirs[key]:
            raise ValueError(
                f"load_keras_hub_weights: {encoder.path} {key} {ours[key]} (variant "
                f"{encoder.variant!r}) do not match the preset's MiT {key} {theirs[key]}."
            )
    stage_norms = _sublayers_of_type(mit, keras.layers.LayerNormalization)
    if len(stage_norms) != 4:
        raise ValueError(
            f"load_keras_hub_weights: expected 4 stage LayerNormalization layers in the "
            f"preset's MiT, found {len(stage_norms)}."
        )

    pairs = []

    def add(our_layer, their_layer, names):
        for name in names:
            theirs_var = getattr(their_layer, name)
            pairs.append((getattr(our_layer, name), theirs_var.numpy(), theirs_var.path))

    for stage in range(4):
        embed = mit.get_layer(f"patch_and_embed_{stage}")
        add(encoder.patch_embeds[stage].proj, embed.proj, ["kernel", "bias"])
        add(encoder.patch_embeds[stage].norm, embed.norm, ["gamma", "beta"])
        for k, block in enumerate(encoder.stage_blocks(stage)):
            their_block = mit.get_layer(f"hierarchical_encoder_{stage}_{k}")
            their_attn = their_block.attn
            add(block.norm1, their_block.norm1, ["gamma", "beta"])
            add(block.norm2, their_block.norm2, ["gamma", "beta"])
            add(block.attn.q, their_attn.q, ["kernel", "bias"])
            add(block.attn.proj, their_attn.proj, ["kernel", "bias"])
            for name in ("kernel", "bias"):
                k_var, v_var = getattr(their_attn.k, name), getattr(their_attn.v, name)
                kv = np.concatenate([k_var.numpy(), v_var.numpy()], axis=-1)
                pairs.append((getattr(block.attn.kv, name), kv, f"{k_var.path} ++ {v_var.path}"))
            if block.attn.sr is not None:
                add(block.attn.sr, their_attn.sr, ["kernel", "bias"])
                add(block.attn.sr_norm, their_attn.norm, ["gamma", "beta"])
            add(block.mlp.fc1, their_block.mlp.fc1, ["kernel", "bias"])
            add(block.mlp.dwconv, their_block.mlp.dwconv, ["kernel", "bias"])
            add(block.mlp.fc2, their_block.mlp.fc2, ["kernel", "bias"])
        add(encoder.stage_norms[stage], stage_norms[stage], ["gamma", "beta"])
    return pairs


def _head_pairs(head, segformer_backbone):
    """(our variable, keras-hub value, keras-hub name) for the decode head, classifier excluded."""
    projection_filters = segformer_backbone.projection_filters
    if projection_filters != head.embed_dim or len(segformer_backbone.mlp_blocks) != 4:
        raise ValueError(
            f"load_keras_hub_weights: {head.path} has embed_dim {head.embed_dim} and 4 stage "
            f"Dense layers; the preset's head has projection_filters {projection_filters} and "
            f"{len(segformer_backbone.mlp_blocks)}. Build SegFormer(..., "
            f"head_embed_dim={projection_filters}) to load it."
        )
    pairs = []

    def add(our_layer, their_layer, role, names):
        for name in names:
            theirs_var = getattr(their_layer, name)
            pairs.append(
                (getattr(our_layer, name), theirs_var.numpy(), f"{role} {theirs_var.path}")
            )

    for stage, (ours, theirs) in enumerate(zip(head.linear_c, segformer_backbone.mlp_blocks)):
        add(ours, theirs, f"SegFormerBackbone.mlp_blocks[{stage}]", ["kernel", "bias"])
    fuse_conv, fuse_bn = segformer_backbone.linear_fuse.layers[:2]
    add(head.fuse_conv, fuse_conv, "SegFormerBackbone.linear_fuse conv", ["kernel"])
    add(
        head.fuse_bn,
        fuse_bn,
        "SegFormerBackbone.linear_fuse batch norm",
        ["gamma", "beta", "moving_mean", "moving_variance"],
    )
    return pairs


def load_keras_hub_weights(model, preset):
    """Copies the weights of a keras-hub SegFormer or MiT preset into `model`.

    Args:
        model: a `SegFormer` (built or not) of the preset's variant (and class count, for a
            SegFormerImageSegmenter preset).
        preset: a keras-hub preset name ("segformer_b0_ade20k_512", "mit_b0_ade20k_512", ...,
            downloaded by keras-hub where the network allows) or a local preset directory
            written by keras-hub's `save_to_preset`. SegFormerImageSegmenter presets fill the
            encoder, the head and the classifier; SegFormerBackbone presets all but the
            classifier; MiTBackbone ("mit_*") presets only the encoder.
            keras-hub's B2-B5 SegFormer presets appear (from their published parameter counts)
            to use a 256-wide head, not the paper's 768: build those with head_embed_dim=256;
            a mismatch is reported with the width to use.
    Returns:
        list of the paths of our variables that were overwritten.
    Raises:
        FileNotFoundError: the directory / preset does not exist or cannot be downloaded.
        ValueError: the preset does not fit the model (variant, class count, any shape); the
            message names our variable path and both shapes. Nothing is copied in that case.
    """
    if not isinstance(model, SegFormer):
        raise ValueError(
            f"load_keras_hub_weights: `model` must be a SegFormer, got {type(model).__name__}."
        )
    wanted = ARCHITECTURES["keras_hub"]
    have = {
        "approximate_gelu": model.approximate_gelu,
        "block_norm_epsilon": model.block_norm_epsilon,
    }
    if have != wanted:
        raise ValueError(
            f"load_keras_hub_weights: keras-hub's MiT uses {wanted}, this model {have}; build it "
            "with SegFormer(..., **ARCHITECTURES['keras_hub']) (a run: --pretrained sets this)."
        )
    source = _load_keras_hub_model(preset)
    import keras_hub

    if not model.built:
        model.build((None, None, None, 3))

    mit, segformer_backbone, classifier = source, None, None
    if isinstance(source, keras_hub.models.SegFormerImageSegmenter):
        segformer_backbone = source.backbone
        classifier = source.output_segmentation_head
    elif isinstance(source, keras_hub.models.SegFormerBackbone):
        segformer_backbone = source
    if segformer_backbone is not None:
        mit = segformer_backbone.image_encoder

    pairs = _encoder_pairs(model.encoder, mit)
    if segformer_backbone is not None:
        pairs += _head_pairs(model.head, segformer_backbone)
    if classifier is not None:
        for name in ("kernel", "bias"):
            theirs_var = getattr(classifier, name)
            their_name = f"SegFormerImageSegmenter.output_segmentation_head {theirs_var.path}"
            pairs.append((getattr(model.head.classifier, name), theirs_var.numpy(), their_name))

    for ours, value, their_name in pairs:
        if tuple(ours.shape) != tuple(value.shape):
            raise ValueError(
                f"load_keras_hub_weights: {ours.path} has shape {tuple(ours.shape)} but the "
                f"preset's {their_name} has shape {tuple(value.shape)} (preset {preset!r}, "
                f"model variant {model.variant!r}, num_classes {model.num_classes})."
            )
    for ours, value, _ in pairs:
        ours.assign(value.astype(ours.dtype))
    return [ours.path for ours, _, _ in pairs]
