"""VGG19 perceptual (feature L1) loss used by SPADE."""

import os
import warnings

import keras
from keras import ops

# relu1_1 .. relu5_1: Keras' VGG19 convolutions have the ReLU built in, so the conv outputs are
# the post-activation features the reference uses.
VGG_LAYER_NAMES = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
# Deeper features get larger weights, as in pix2pixHD / SPADE.
VGG_LAYER_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)
# Caffe-style ImageNet preprocessing of keras.applications.vgg19: BGR channel means, no scaling.
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)

VGG19_NOTOP_FILENAME = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
_VGG19_NOTOP_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/" + VGG19_NOTOP_FILENAME
)
_VGG19_NOTOP_MD5 = "253f8cb515780f3b799900260a226db6"


class VGGPerceptualLoss:
    """Weighted L1 distance between VGG19 features of generated and real images.

    loss = sum_i w_i * mean|f_i(fake) - f_i(real)| over relu1_1 .. relu5_1 with weights
    1/32, 1/16, 1/8, 1/4, 1; real features are detached. The caller multiplies the result by
    lambda_vgg (10 in SPADE).

    This is a plain Python callable, not a Layer: a keras.Model holding it as an attribute does
    not track the frozen VGG, so VGG weights are neither trained nor saved with the caller.
    The VGG is built under the global dtype policy at construction time (it may compute in
    bfloat16 under "mixed_bfloat16"); the loss itself is always float32.

    Args:
        weights: "imagenet" (Keras' notop VGG19 weights, from ~/.keras/models or downloaded),
            or a local path to either the Keras file
            vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 or a `.weights.h5` saved from
            keras.applications.VGG19(include_top=False, weights=None). Training without the
            perceptual loss ("none") is the caller's business: it simply does not build this.
        input_shape: optional (H, W, 3) image shape, H and W >= 32; None accepts any size.

    Example:
        >>> vgg_loss = VGGPerceptualLoss(weights="/data/vgg19.weights.h5")
        >>> g_loss += 10.0 * vgg_loss(fake_images, real_images)  # images [N, H, W, 3] in [-1, 1]
    """

    def __init__(self, weights="imagenet", input_shape=None):
        self.weights = weights
        self.input_shape = None if input_shape is None else tuple(input_shape)
        if self.input_shape is not None and (
            len(self.input_shape) != 3 or self.input_shape[-1] != 3
        ):
            raise ValueError(f"`input_shape` must be (H, W, 3); got {input_shape}.")
        weights_path = self._resolve_weights_path(weights)

        # === Layers ===
        # Build the whole notop VGG19 so that both weight-file layouts load as saved, then keep
        # only the graph up to block5_conv1 (deeper layers would be computed for nothing).
        full_vgg = keras.applications.VGG19(
            include_top=False, weights=None, input_shape=self.input_shape
        )
        # A file that does not fit makes Keras warn once per layer before raising; hold the
        # warnings back so the failure reads as one error naming the file.
        with warnings.catch_warnings(record=True) as load_warnings:
            warnings.simplefilter("always")
            try:
                full_vgg.load_weights(weights_path)
                load_error = None
            except (ValueError, OSError, KeyError, TypeError) as error:
                load_error = error
        if load_error is not None:
            raise ValueError(
                f"VGG19 weights file '{weights_path}' does not fit "
                f"keras.applications.VGG19(include_top=False): {load_error}. Expected "
                f"{VGG19_NOTOP_FILENAME} or a .weights.h5 saved from that model."
            ) from load_error
        unique_warnings = {(w.category, str(w.message)): w for w in load_warnings}
        for warning in unique_warnings.values():
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )

        # === Functional Model ===
        self.feature_extractor = keras.Model(
            full_vgg.input,
            [full_vgg.get_layer(name).output for name in VGG_LAYER_NAMES],
            name="vgg19_perceptual_features",
        )
        self.feature_extractor.trainable = False

    @staticmethod
    def _resolve_weights_path(weights):
        """Returns a local weights file for `weights`, downloading ImageNet weights if needed."""
        if weights is None or (isinstance(weights, str) and weights.lower() == "none"):
            raise ValueError(
                "`weights`=none: do not build VGGPerceptualLoss when the perceptual loss is "
                "disabled (--vgg_weights=none)."
            )
        if isinstance(weights, str) and weights.lower() == "imagenet":
            try:
                return keras.utils.get_file(
                    VGG19_NOTOP_FILENAME,
                    _VGG19_NOTOP_URL,
                    cache_subdir="models",
                    file_hash=_VGG19_NOTOP_MD5,
                )
            except Exception as error:  # get_file raises bare Exception on network failures
                raise RuntimeError(
                    f"Could not download ImageNet VGG19 weights from {_VGG19_NOTOP_URL} "
                    f"({error}). Pass --vgg_weights=/path/to/{VGG19_NOTOP_FILENAME} "
                    f"or --vgg_weights=none to train without the VGG perceptual loss."
                ) from error
        path = os.path.expanduser(os.fspath(weights))
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"VGG19 weights file not found: '{path}'. Pass --vgg_weights=none to train "
                f"without the VGG perceptual loss, or a valid file ({VGG19_NOTOP_FILENAME} or "
                f"a .weights.h5 saved from keras.applications.VGG19(include_top=False))."
            )
        return path

    @staticmethod
    def preprocess(images):
        """Maps images in [-1, 1] (RGB) to VGG19's Caffe-style input (BGR, mean-subtracted)."""
        images = (ops.cast(images, "float32") + 1.0) * 127.5  # [N, H, W, 3] RGB in [0, 255]
        images = ops.flip(images, axis=-1)  # [N, H, W, 3] BGR
        return images - ops.convert_to_tensor(IMAGENET_BGR_MEAN, dtype="float32")

    def __call__(self, fake, real):
        """Perceptual loss between `fake` and `real`, both [N, H, W, 3] in [-1, 1].

        Returns:
            float32 scalar, to be multiplied by lambda_vgg by the caller.
        """
        for name, images in (("fake", fake), ("real", real)):
            if len(images.shape) != 4 or images.shape[-1] != 3:
                raise ValueError(f"`{name}` must be [N, H, W, 3] images; got {images.shape}.")
        if tuple(fake.shape[1:]) != tuple(real.shape[1:]):
            raise ValueError(f"`fake` {fake.shape} and `real` {real.shape} differ in size.")
        # Two passes rather than one over the concatenated halves: the backward pass then
        # keeps only the fake half's activations (about as fast on CPU, less memory).
        real = ops.stop_gradient(ops.cast(real, "float32"))  # [N, H, W, 3]
        real_features = self.feature_extractor(self.preprocess(real), training=False)
        fake_features = self.feature_extractor(
            self.preprocess(ops.cast(fake, "float32")), training=False
        )
        loss = ops.convert_to_tensor(0.0, dtype="float32")
        for layer_weight, fake_feature, real_feature in zip(
            VGG_LAYER_WEIGHTS, fake_features, real_features
        ):
            fake_feature = ops.cast(fake_feature, "float32")  # [N, h_i, w_i, c_i]
            real_feature = ops.stop_gradient(ops.cast(real_feature, "float32"))
            loss += layer_weight * ops.mean(ops.abs(fake_feature - real_feature))
        return loss
