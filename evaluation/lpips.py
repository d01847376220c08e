"""LPIPS, the Learned Perceptual Image Patch Similarity (Zhang et al., CVPR 2018), "vgg" version.

    LPIPS(x0, x1) = sum_l mean_{h,w} sum_c w_{l,c} (f0_{l,hwc} - f1_{l,hwc})^2

f_l are VGG16's relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3 feature maps (Keras layers
block1_conv2 .. block5_conv3, whose ReLU is built in), each unit-normalised over its channels at
every position (f / (||f||_2 + 1e-10)); w_l >= 0 are the learned 1x1 "linear" weights. LPIPS is
0 for identical images, symmetric, and grows with perceptual difference. The one-shot papers
use it twice: diversity (mean LPIPS between pairs of generated images) and distance to train
(each generated image's LPIPS to the real training image: memorisation shows as values near 0).

Weights (both have a "random" / "uniform" fallback for offline smoke runs):

    backbone_weights
        "imagenet"  Keras' ImageNet VGG16 (vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5,
                    downloaded once; offline, pass the file). These are the original Caffe VGG16
                    weights, fed BGR mean-subtracted pixels as Keras does.
        PATH.h5     that Keras file (or a .weights.h5 of keras.applications.VGG16(
                    include_top=False)).
        PATH.npz / PATH.safetensors
                    torchvision's VGG16 `features` state dict, the backbone the official LPIPS
                    uses: keys "<i>.weight" [out, in, 3, 3] and "<i>.bias" [out] for the conv
                    indices i = 0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28 (a "features."
                    prefix is allowed). Fed RGB in [-1, 1] through LPIPS' scaling layer, as the
                    official code does: with the official linear weights this IS published LPIPS.
        "random"    seeded He-normal weights.
    linear_weights
        PATH.npz / PATH.safetensors
                    keys "lin0" .. "lin4", each [C] (64, 128, 256, 512, 512) non-negative
                    float32; or the official lpips `vgg.pth` state-dict keys
                    "lin<l>.model.1.weight" [1, C, 1, 1], exported without torch changes, e.g.
                        python -c "import torch, numpy as np; sd = torch.load('vgg.pth');
                                   np.savez('lpips_vgg.npz', **{k: v.numpy() for k, v in
                                   sd.items()})"
                    (`convert_linear_weights` turns either into the canonical lin0..lin4 .npz).
        "uniform"   w_l = 1 / C_l: the mean squared difference of the normalised features.

Only a torchvision backbone file with the official linear weights gives published numbers
(`comparability == "published"`). Keras' ImageNet VGG16 with the official linear weights is
close to them, not identical ("close": the linear layers were trained on torchvision's
features). Anything random or uniform is "random", and every report prints NOT_COMPARABLE.

.safetensors files are read with the safetensors library when it is installed, and otherwise by
the small reader of core/tensor_files.py (the format is an 8-byte header length, a JSON header of
dtype / shape / byte offsets, and the raw little-endian tensors), so torch is never needed.

Example:
    lpips = LPIPS("imagenet", "lpips_vgg.npz")
    d = lpips(images_a, images_b)   # uint8 [N, H, W, 3] twice -> float32 [N]
"""

from __future__ import annotations

import json
import os

import numpy as np

from core.errors import UserError
from core.tensor_files import read_safetensors

LAYERS = ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3", "block5_conv3")
CHANNELS = (64, 128, 256, 512, 512)
LINEAR_KEYS = tuple(f"lin{index}" for index in range(len(LAYERS)))
OFFICIAL_LINEAR_KEY = "lin{index}.model.1.weight"  # [1, C, 1, 1] in lpips' vgg.pth
# torchvision vgg16().features indices of the 13 convolutions, in Keras' layer order.
TORCHVISION_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
KERAS_CONV_LAYERS = (
    "block1_conv1",
    "block1_conv2",
    "block2_conv1",
    "block2_conv2",
    "block3_conv1",
    "block3_conv2",
    "block3_conv3",
    "block4_conv1",
    "block4_conv2",
    "block4_conv3",
    "block5_conv1",
    "block5_conv2",
    "block5_conv3",
)
# LPIPS' ScalingLayer for torchvision's VGG: (x - shift) / scale on RGB in [-1, 1].
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)  # keras.applications.vgg16.preprocess_input
NORMALIZE_EPS = 1e-10  # lpips.normalize_tensor
MIN_SIDE = 16  # VGG16's four max-pools before block5_conv3 leave a 1 x 1 map at 16 px
RANDOM = "random"
IMAGENET = "imagenet"
UNIFORM = "uniform"
TENSOR_FILE_EXTENSIONS = (".npz", ".safetensors")
KERAS_FILE_EXTENSIONS = (".h5", ".hdf5")
NOT_COMPARABLE = "LPIPS (random weights: not comparable to published numbers)"
CLOSE_TO_PUBLISHED = (
    "LPIPS from Keras' ImageNet VGG16 (Caffe weights) with the LPIPS linear layers, which were "
    "trained on torchvision's VGG16: close to, not identical with, published LPIPS (a "
    "torchvision VGG16 backbone file gives the published numbers)"
)
KERAS_WEIGHTS_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
    "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
)


class LPIPSWeightsError(UserError):
    """LPIPS weights cannot be had or do not fit; the message names the file or flag."""


# ------------------------------------------------------------------------------------------
# Weight files
# ------------------------------------------------------------------------------------------


def read_tensor_file(path: str, flag: str) -> dict[str, np.ndarray]:
    """{name: array} of a .npz or .safetensors file; errors name `flag`."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{flag}={path}: no such file")
    if not path.lower().endswith(TENSOR_FILE_EXTENSIONS):
        raise LPIPSWeightsError(f"{flag}={path}: expected a .npz or .safetensors file")
    try:
        if path.lower().endswith(".npz"):
            with np.load(path, allow_pickle=False) as archive:
                return {name: archive[name] for name in archive.files}
        return read_safetensors(path)
    except (ValueError, OSError, KeyError, json.JSONDecodeError) as error:
        raise LPIPSWeightsError(f"{flag}={path} cannot be read: {error}") from None


def linear_weights_from_tensors(tensors: dict, where: str) -> list[np.ndarray]:
    """The five [C] weight vectors from our keys (lin0..lin4) or the official ones."""
    weights = []
    for index, (key, channels) in enumerate(zip(LINEAR_KEYS, CHANNELS)):
        official = OFFICIAL_LINEAR_KEY.format(index=index)
        if key in tensors:
            value = tensors[key]
        elif official in tensors:
            value = tensors[official]
        else:
            raise LPIPSWeightsError(
                f"{where}: no {key!r} (ours, [{channels}]) or {official!r} (the official "
                f"vgg.pth, [1, {channels}, 1, 1]); it holds {sorted(tensors)[:8]}"
            )
        value = np.asarray(value, np.float32)
        if value.size != channels or value.ndim not in (1, 4):
            raise LPIPSWeightsError(
                f"{where}: {key} must hold {channels} weights ([{channels}] or "
                f"[1, {channels}, 1, 1]), got shape {list(value.shape)}"
            )
        value = value.reshape(channels)
        if not np.all(np.isfinite(value)) or np.any(value < 0):
            raise LPIPSWeightsError(
                f"{where}: {key} must be finite and non-negative (LPIPS clamps its linear "
                "weights at 0)"
            )
        weights.append(value)
    return weights


def load_linear_weights(linear_weights, flag: str = "--lpips_linear_weights"):
    """The five [C] weight vectors of `linear_weights` (a file, or "uniform" / None)."""
    if linear_weights in (None, "", UNIFORM):
        return [np.full(channels, 1.0 / channels, np.float32) for channels in CHANNELS]
    where = f"{flag}={linear_weights}"
    return linear_weights_from_tensors(read_tensor_file(linear_weights, flag), where)


def convert_linear_weights(source: str, output: str) -> str:
    """Writes the canonical .npz (lin0..lin4, [C] float32) of an official or own weight file.

    Args:
        source: a .npz or .safetensors export of lpips' vgg.pth state dict (keys
            "lin<l>.model.1.weight") or a file with our keys.
        output: the .npz to write.
    """
    weights = linear_weights_from_tensors(read_tensor_file(source, "source"), source)
    np.savez(output, **dict(zip(LINEAR_KEYS, weights)))
    return output


def torchvision_kernels(tensors: dict, where: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{Keras layer: (kernel [3, 3, in, out], bias [out])} of torchvision's VGG16 features."""
    converted = {}
    for index, layer in zip(TORCHVISION_CONV_INDICES, KERAS_CONV_LAYERS):
        pair = []
        for part in ("weight", "bias"):
            names = (f"{index}.{part}", f"features.{index}.{part}")
            found = [tensors[name] for name in names if name in tensors]
            if not found:
                raise LPIPSWeightsError(
                    f"{where}: no {names[0]!r} (torchvision VGG16 features; keys "
                    f"'<i>.weight' / '<i>.bias' for i in {list(TORCHVISION_CONV_INDICES)})"
                )
            pair.append(np.asarray(found[0], np.float32))
        weight, bias = pair
        if weight.ndim != 4 or weight.shape[2:] != (3, 3):
            raise LPIPSWeightsError(
                f"{where}: {index}.weight must be [out, in, 3, 3], got {list(weight.shape)}"
            )
        # torch [out, in, kh, kw] -> Keras [kh, kw, in, out]; both cross-correlate.
        converted[layer] = (np.transpose(weight, (2, 3, 1, 0)), bias)
    return converted


# ------------------------------------------------------------------------------------------
# The network
# ------------------------------------------------------------------------------------------


def _keras_vgg16(weights):
    """keras.applications' VGG16 without the top, any input size (tests replace this)."""
    import keras

    return keras.applications.VGG16(include_top=False, weights=weights, input_shape=(None, None, 3))


def _randomize(model, seed: int) -> None:
    """He-normal kernels, zero biases, from a seeded numpy generator (see inception._randomize)."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        shape = tuple(variable.shape)
        if variable.path.endswith("kernel"):
            fan_in = int(np.prod(shape[:-1]))
            variable.assign(rng.normal(0.0, np.sqrt(2.0 / fan_in), shape).astype(np.float32))
        elif variable.path.endswith("bias"):
            variable.assign(np.zeros(shape, np.float32))


def build_backbone(
    backbone_weights: str = IMAGENET, seed: int = 0, flag="--lpips_backbone_weights"
):
    """(VGG16 without the top, input convention "caffe" or "torchvision") for the weights."""
    if not backbone_weights:
        raise LPIPSWeightsError(f"{flag} is empty: give imagenet, a local weights file or random")
    if backbone_weights == RANDOM:
        model = _keras_vgg16(None)
        _randomize(model, seed)
        return model, "caffe"
    if backbone_weights == IMAGENET:
        try:
            return _keras_vgg16(IMAGENET), "caffe"
        except Exception as error:  # keras raises a bare Exception for a failed download
            raise LPIPSWeightsError(
                f"{flag}=imagenet: could not get Keras' ImageNet VGG16 weights ({error}). This "
                f"machine may be offline: download {KERAS_WEIGHTS_URL} elsewhere and pass the "
                f"local file, {flag}=PATH.h5 (or {flag}=random for a smoke run: "
                f"{NOT_COMPARABLE})"
            ) from None
    if not os.path.isfile(backbone_weights):
        raise FileNotFoundError(f"{flag}={backbone_weights}: no such weights file")
    lower = backbone_weights.lower()
    if lower.endswith(TENSOR_FILE_EXTENSIONS):
        where = f"{flag}={backbone_weights}"
        kernels = torchvision_kernels(read_tensor_file(backbone_weights, flag), where)
        model = _keras_vgg16(None)
        for layer, (kernel, bias) in kernels.items():
            target = model.get_layer(layer)
            if tuple(target.kernel.shape) != kernel.shape:
                raise LPIPSWeightsError(
                    f"{where}: {layer} needs a kernel of {list(target.kernel.shape)} (Keras), "
                    f"the file gives {list(kernel.shape)}: not VGG16"
                )
            target.kernel.assign(kernel)
            target.bias.assign(bias)
        return model, "torchvision"
    if not lower.endswith(KERAS_FILE_EXTENSIONS):
        raise LPIPSWeightsError(
            f"{flag}={backbone_weights}: expected imagenet, random, a Keras VGG16 no-top .h5 "
            "file, or a torchvision VGG16 features .npz / .safetensors"
        )
    try:
        return _keras_vgg16(backbone_weights), "caffe"
    except (ValueError, OSError, KeyError) as error:
        raise LPIPSWeightsError(
            f"{flag}={backbone_weights} does not hold VGG16 (include_top=False) weights: {error}"
        ) from None


def comparability(backbone_weights, linear_weights, convention: str) -> str:
    """ "published", "close" or "random" (module docstring)."""
    if backbone_weights == RANDOM or linear_weights in (None, "", UNIFORM):
        return "random"
    return "published" if convention == "torchvision" else "close"


class LPIPS:
    """LPIPS distance between batches of images (VGG16 version, numpy in and out).

    Args:
        backbone_weights: "imagenet", a Keras VGG16 no-top .h5, a torchvision VGG16 features
            .npz / .safetensors, or "random".
        linear_weights: an .npz / .safetensors of the five linear layers, or "uniform".
        seed: seed of "random" backbone weights.
        batch_size: image pairs per forward pass.

    Example:
        lpips = LPIPS("random", "uniform")
        lpips(a, a)            # zeros
        lpips(a, b) == lpips(b, a)
    """

    def __init__(
        self,
        backbone_weights: str = IMAGENET,
        linear_weights: str = UNIFORM,
        *,
        seed: int = 0,
        batch_size: int = 8,
    ):
        import keras
        import tensorflow as tf

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.backbone_weights = backbone_weights
        self.linear_weights = linear_weights
        self.batch_size = int(batch_size)
        self.weights = load_linear_weights(linear_weights)  # before the slow VGG build
        backbone, self.convention = build_backbone(backbone_weights, seed)
        self.comparability = comparability(backbone_weights, linear_weights, self.convention)
        self.comparable = self.comparability == "published"
        self.model = keras.Model(
            backbone.input, [backbone.get_layer(name).output for name in LAYERS]
        )
        model, convention = self.model, self.convention
        linear = [tf.constant(w) for w in self.weights]

        def preprocess(images):  # [N, H, W, 3] float in [0, 255], RGB
            if convention == "torchvision":
                x = images / 127.5 - 1.0
                return (x - tf.constant(LPIPS_SHIFT)) / tf.constant(LPIPS_SCALE)
            return images[..., ::-1] - tf.constant(CAFFE_BGR_MEAN)  # BGR, mean-subtracted

        def normalize(features):  # [N, h, w, C]
            norm = tf.sqrt(tf.reduce_sum(tf.square(features), axis=-1, keepdims=True))
            return features / (norm + NORMALIZE_EPS)

        @tf.function(
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)] * 2,
            reduce_retracing=True,
        )
        def distance(images0, images1):
            count = tf.shape(images0)[0]
            both = tf.concat([images0, images1], axis=0)  # [2N, H, W, 3]
            total = tf.zeros([count], tf.float32)
            for features, weight in zip(model(preprocess(both), training=False), linear):
                features = normalize(tf.cast(features, tf.float32))
                squared = tf.square(features[:count] - features[count:])  # [N, h, w, C]
                per_position = tf.reduce_sum(squared * weight, axis=-1)  # [N, h, w]
                total += tf.reduce_mean(per_position, axis=[1, 2])  # [N]
            return total

        self._distance = distance

    @property
    def note(self) -> str | None:
        """What every report prints beside the numbers (None for published weights)."""
        if self.comparability == "random":
            return (
                f"{NOT_COMPARABLE} (backbone: {self.backbone_weights}, linear layers: "
                f"{self.linear_weights or UNIFORM})"
            )
        return CLOSE_TO_PUBLISHED if self.comparability == "close" else None

    def __call__(self, images0, images1) -> np.ndarray:
        """uint8 [N, H, W, 3] twice (one size, at least 16 px per side) -> float32 [N]."""
        images0, images1 = np.asarray(images0), np.asarray(images1)
        if images0.shape != images1.shape or images0.ndim != 4 or images0.shape[-1] != 3:
            raise ValueError(
                f"LPIPS compares two [N, H, W, 3] batches of one shape, got "
                f"{list(images0.shape)} and {list(images1.shape)}"
            )
        if min(images0.shape[1:3]) < MIN_SIDE:
            raise ValueError(
                f"LPIPS needs images of at least {MIN_SIDE} px per side (VGG16's four "
                f"poolings), got {images0.shape[2]}x{images0.shape[1]}"
            )
        out = [
            self._distance(
                images0[start : start + self.batch_size].astype(np.float32),
                images1[start : start + self.batch_size].astype(np.float32),
            ).numpy()
            for start in range(0, images0.shape[0], self.batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0,), np.float32)


def pair_indices(count: int, max_pairs: int, seed: int = 0) -> np.ndarray:
    """[P, 2] index pairs i < j of `count` items: all of them when there are at most
    max_pairs, else max_pairs drawn without replacement (seeded)."""
    first, second = np.triu_indices(count, k=1)
    pairs = np.stack([first, second], axis=1)  # [count (count - 1) / 2, 2]
    if len(pairs) > max_pairs:
        rng = np.random.default_rng(seed)
        pairs = pairs[np.sort(rng.choice(len(pairs), max_pairs, replace=False))]
    return pairs


def diversity(lpips: LPIPS, images, *, max_pairs: int = 200, seed: int = 0) -> np.ndarray:
    """LPIPS of pairs of `images` [N, H, W, 3] (module docstring); float32 [P] per pair."""
    images = np.asarray(images)
    if images.shape[0] < 2:
        raise ValueError(f"LPIPS diversity needs at least 2 images, got {images.shape[0]}")
    pairs = pair_indices(images.shape[0], max_pairs, seed)
    return lpips(images[pairs[:, 0]], images[pairs[:, 1]])


def distance_to_train(lpips: LPIPS, images, train_images) -> np.ndarray:
    """For each image [N, H, W, 3], its smallest LPIPS to the training images [T, H, W, 3]."""
    images, train_images = np.asarray(images), np.asarray(train_images)
    per_train = [
        lpips(images, np.broadcast_to(train, images.shape)) for train in train_images
    ]  # T x [N]
    return np.min(np.stack(per_train), axis=0)
