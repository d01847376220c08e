"""Single Image FID (SIFID, Shaham et al., SinGAN 2019): how far a generated image's internal
patch statistics are from the one real image's.

FID compares two SETS of images through one 2048-d vector per image; with one real image there
is no set. SIFID instead treats every spatial position of an early InceptionV3 feature map as
one sample: the features of the real image at its h x w positions and those of one generated
image are each fitted with a Gaussian, and their Frechet distance (evaluation.fid
.frechet_distance) is that generated image's SIFID. The one-shot papers (SinGAN, One-Shot GAN,
OSMIS) report the mean over the generated images.

Stages (`SIFIDFeatures(stages=...)`; names are those of pytorch-fid's InceptionV3 blocks, which
the SIFID code reads):
    pool1   the first max-pool, 64 channels (SIFID proper; the default)
    pool2   the second max-pool, 192 channels
    mixed7  the last 17 x 17 block at 299 px (Mixed_6e in TF-slim names), 768 channels
`ALL_STAGES` (evaluate.py --sifid_all_layers) computes all three. Images enter at their own
size (no resize to 299: SIFID is about the image's own scale), scaled to [-1, 1]. pool1 needs
images of at least 15 px per side, pool2 35 px and mixed7 75 px (InceptionV3's valid
convolutions leave fewer than 2 x 2 positions otherwise), which SIFIDFeatures checks.

Weights are those of evaluation/inception.py: "imagenet", a local no-top .h5 file, or "random"
(seeded; the numbers are then NOT comparable to published SIFIDs, `comparable` is False).

Example:
    sifid = SIFIDFeatures("imagenet")
    values = sifid.sifid(real_image, generated_images)   # {"pool1": [N] float64}
"""

from __future__ import annotations

import numpy as np

from core.errors import UserError
from evaluation import inception as inception_lib
from evaluation.fid import frechet_distance

DEFAULT_STAGE = "pool1"
ALL_STAGES = ("pool1", "pool2", "mixed7")
STAGE_CHANNELS = {"pool1": 64, "pool2": 192, "mixed7": 768}
# Smallest image side (px) that leaves at least 2 x 2 positions at each stage.
MIN_SIDE = {"pool1": 15, "pool2": 35, "mixed7": 75}
NOT_COMPARABLE = (
    "SIFID from RANDOM Inception weights (--inception_weights=random): it compares images "
    "within this run only and is NOT comparable to published SIFIDs."
)


class SIFIDError(UserError):
    """SIFID cannot be computed for these images or stages; the message says why."""


def _stage_layers(model) -> dict:
    """{stage: layer} of an InceptionV3 backbone. The max-pools are found by order (Keras names
    them max_pooling2d_<n>, with n depending on what was built before); mixed7 by name."""
    import keras

    pools = [layer for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    return {"pool1": pools[0], "pool2": pools[1], "mixed7": model.get_layer("mixed7")}


class SIFIDFeatures:
    """Early InceptionV3 feature maps of single images, and SIFID between them.

    Args:
        weights: "imagenet", a local no-top InceptionV3 .h5 file, or "random" (tests and smoke
            runs; not comparable to published SIFIDs).
        stages: which feature maps (ALL_STAGES names); ("pool1",) is SIFID as published.
        seed: seed of the "random" weights.

    Example:
        sifid = SIFIDFeatures("random", stages=ALL_STAGES)
        values = sifid.sifid(real, fakes)  # {"pool1": [N], "pool2": [N], "mixed7": [N]}
    """

    def __init__(self, weights: str = inception_lib.IMAGENET, *, stages=(DEFAULT_STAGE,), seed=0):
        import keras
        import tensorflow as tf

        stages = tuple(stages)
        unknown = [stage for stage in stages if stage not in ALL_STAGES]
        if not stages or unknown:
            raise SIFIDError(f"SIFID stages must be among {list(ALL_STAGES)}, got {list(stages)}")
        self.weights = weights
        self.stages = stages
        self.comparable = weights != inception_lib.RANDOM
        backbone = inception_lib.build_inception_backbone(weights, seed)
        layers = _stage_layers(backbone)
        # Only the layers up to the deepest stage asked for are run.
        self.model = keras.Model(backbone.input, [layers[stage].output for stage in stages])
        model = self.model

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
        def features(images):  # [N, H, W, 3] float in [0, 255]
            outputs = model(images / 127.5 - 1.0, training=False)
            if not isinstance(outputs, (list, tuple)):
                outputs = [outputs]
            return [tf.cast(x, tf.float32) for x in outputs]  # per stage [N, h, w, C]

        self._features = features

    def check_size(self, height: int, width: int, what: str = "the images") -> None:
        """Raises SIFIDError when images of this size leave a stage fewer than 2 x 2 positions."""
        need = max(MIN_SIDE[stage] for stage in self.stages)
        if min(height, width) < need:
            raise SIFIDError(
                f"{what} are {width}x{height} px; SIFID at stage(s) {', '.join(self.stages)} "
                f"needs at least {need} px per side (InceptionV3's valid convolutions leave too "
                "few feature positions otherwise)"
                + ("; drop --sifid_all_layers for pool1 alone" if need > MIN_SIDE["pool1"] else "")
            )

    def feature_maps(self, images) -> dict[str, np.ndarray]:
        """uint8 [N, H, W, 3] (one size) -> {stage: float32 [N, h, w, C]}."""
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be [N, H, W, 3], got {list(images.shape)}")
        self.check_size(images.shape[1], images.shape[2])
        outputs = self._features(images.astype(np.float32))
        return {stage: output.numpy() for stage, output in zip(self.stages, outputs)}

    def statistics(self, image) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{stage: (mean [C], covariance [C, C])} over the spatial positions of one image."""
        maps = self.feature_maps(np.asarray(image)[None])
        return {stage: position_statistics(fmap[0]) for stage, fmap in maps.items()}

    def sifid(self, real_image, generated_images) -> dict[str, np.ndarray]:
        """SIFID of each generated image against the one real image.

        Args:
            real_image: uint8 [H, W, 3].
            generated_images: uint8 [N, H, W, 3] (or a list of [H, W, 3]) of the real image's
                size (compare at one size: resize the real image to the generated size first).

        Returns:
            {stage: float64 [N]}.
        """
        real = self.statistics(real_image)
        values = {stage: [] for stage in self.stages}
        for image in generated_images:
            image = np.asarray(image)
            if image.shape != np.asarray(real_image).shape:
                raise SIFIDError(
                    f"a generated image is {list(image.shape)}, the real one "
                    f"{list(np.asarray(real_image).shape)}: SIFID compares images of one size"
                )
            fake = self.statistics(image)
            for stage in self.stages:
                values[stage].append(frechet_distance(*real[stage], *fake[stage]))
        return {stage: np.asarray(v, np.float64) for stage, v in values.items()}


def position_statistics(feature_map) -> tuple[np.ndarray, np.ndarray]:
    """(mean [C], unbiased covariance [C, C]) of a feature map [h, w, C], positions as samples."""
    feature_map = np.asarray(feature_map, np.float64)
    samples = feature_map.reshape(-1, feature_map.shape[-1])  # [h * w, C]
    if samples.shape[0] < 2:
        raise SIFIDError(
            f"a feature map of {feature_map.shape[0]}x{feature_map.shape[1]} positions has no "
            "covariance: SIFID needs at least 2 positions (a larger image)"
        )
    return samples.mean(axis=0), np.cov(samples, rowvar=False)
