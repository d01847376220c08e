"""InceptionV3 pool features (2048-d) for FID and KID, streamed over files or a tf.data dataset.

The network is keras.applications.InceptionV3(include_top=False, pooling="avg"): the
2048-d global average pool before the classifier, as in FID. Images enter as uint8 RGB of any
size, are resized to 299 x 299 (bilinear, no antialiasing, as the TF graph of the original FID
code) and scaled to [-1, 1] (Inception's preprocessing, x / 127.5 - 1).

Weights (`weights=`):
    "imagenet"  Keras' ImageNet weights (downloaded once into ~/.keras/models); offline this
                fails with InceptionWeightsError saying to pass a local file.
    a path      a local weights file (.h5 as Keras downloads it,
                inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5, or .weights.h5).
    "random"    seeded random weights, for tests and smoke runs only: the numbers mean
                nothing outside the run and are NOT comparable to published FIDs
                (`InceptionFeatures.comparable` is False and `NOT_COMPARABLE` says so).

Keras' weights are the ones keras.applications ships; published FIDs use the TF-slim graph
of Heusel et al. (pytorch-fid ports it), whose weights differ slightly, so even with
"imagenet" our numbers are close to, not identical with, those of other implementations.

Example:
    inception = InceptionFeatures("imagenet")
    real = inception.stats_from_files(real_paths, name="--real_dir=data/real")
    fake = inception.stats_from_files(fake_paths, name="--synth_dir=out/synth")
    print(fid.fid_from_stats(real, fake))
"""

from __future__ import annotations

import os

import numpy as np

from core.errors import UserError
from evaluation.fid import FeatureStats

INCEPTION_SIZE = 299  # InceptionV3's input side (px)
FEATURE_DIM = 2048  # size of the pool features
RANDOM = "random"
IMAGENET = "imagenet"
WEIGHT_FILE_EXTENSIONS = (".h5", ".hdf5")  # .weights.h5 ends in .h5 too
NOT_COMPARABLE = (
    "Inception weights are RANDOM (--inception_weights=random): FID / KID here only compare "
    "sets within this run and are NOT comparable to published FIDs."
)
# Where Keras downloads the no-top ImageNet weights from (named in the offline error).
KERAS_WEIGHTS_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/"
    "inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
)


class InceptionWeightsError(UserError):
    """The Inception weights cannot be had (offline, wrong file); the message says what to do."""


def _keras_inception(weights):
    """keras.applications' InceptionV3 pool-feature network (tests replace this function)."""
    import keras

    return keras.applications.InceptionV3(
        include_top=False,
        pooling="avg",
        weights=weights,
        input_shape=(INCEPTION_SIZE, INCEPTION_SIZE, 3),
    )


def _randomize(model, seed: int) -> None:
    """He-normal conv kernels from a seeded numpy generator; batch-norm statistics as built.

    Keras' default Glorot kernels shrink the signal through InceptionV3's ~95 conv + ReLU
    layers until every feature is ~1e-3; He scaling keeps it O(1). A numpy generator makes the
    weights a function of the seed alone, whatever the global Keras / TF seed state is.
    """
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        if variable.path.endswith("kernel"):
            shape = tuple(variable.shape)  # [kh, kw, c_in, c_out]
            fan_in = int(np.prod(shape[:-1]))
            variable.assign(rng.normal(0.0, np.sqrt(2.0 / fan_in), shape).astype(np.float32))


def _keras_inception_backbone(weights):
    """InceptionV3 without its pooling, any input size: the feature maps SIFID reads."""
    import keras

    return keras.applications.InceptionV3(
        include_top=False, weights=weights, input_shape=(None, None, 3)
    )


def build_inception(weights: str = IMAGENET, seed: int = 0):
    """InceptionV3 pool-feature model [N, 299, 299, 3] in [-1, 1] -> [N, 2048].

    Args:
        weights: "imagenet", a local weights file path, or "random" (see the module docstring).
        seed: seed of the "random" weights.
    """
    return _with_weights(lambda value: _keras_inception(value), weights, seed)


def build_inception_backbone(weights: str = IMAGENET, seed: int = 0):
    """InceptionV3 without the top or the final pooling, [N, H, W, 3] in [-1, 1] of any size
    (at least 75 px per side for the last stages) -> [N, h, w, 2048]; its layers give the
    earlier feature maps (evaluation/sifid.py). Weights as build_inception's (the no-top file
    fits both)."""
    return _with_weights(lambda value: _keras_inception_backbone(value), weights, seed)


def _with_weights(factory, weights: str, seed: int):
    """factory(keras weights argument) with the weights of `weights`, checked and explained."""
    if not weights:
        raise InceptionWeightsError(
            "--inception_weights is empty: give imagenet, a local weights file or random"
        )
    if weights == RANDOM:
        model = factory(None)
        _randomize(model, seed)
        return model
    if weights == IMAGENET:
        try:
            return factory(IMAGENET)
        except Exception as error:  # keras raises a bare Exception for a failed download
            raise InceptionWeightsError(
                f"--inception_weights=imagenet: could not get Keras' ImageNet InceptionV3 "
                f"weights ({error}). This machine may be offline: download {KERAS_WEIGHTS_URL} "
                "elsewhere and pass the local file, --inception_weights=PATH.h5 (or "
                "--inception_weights=random for a smoke run, not comparable to published FIDs)"
            ) from None
    if not os.path.isfile(weights):
        raise FileNotFoundError(f"--inception_weights={weights}: no such weights file")
    if not weights.lower().endswith(WEIGHT_FILE_EXTENSIONS):
        raise InceptionWeightsError(
            f"--inception_weights={weights}: expected a Keras weights file ending in .h5 or "
            ".weights.h5 (InceptionV3 without the top, e.g. "
            "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5)"
        )
    try:
        return factory(weights)
    except (ValueError, OSError, KeyError) as error:
        raise InceptionWeightsError(
            f"--inception_weights={weights} does not hold InceptionV3 (include_top=False) "
            f"weights: {error}"
        ) from None


def _as_uint8_range(images):
    """uint8 [N, H, W, 3] as they are; floats are taken to be in [-1, 1] (our pipelines)."""
    import tensorflow as tf

    images = tf.convert_to_tensor(images)
    if images.dtype == tf.uint8:
        return tf.cast(images, tf.float32)
    return (tf.cast(images, tf.float32) + 1.0) * 127.5


class InceptionFeatures:
    """Batched InceptionV3 pool features of uint8 images.

    Args:
        weights: "imagenet", a local weights file, or "random" (tests / smoke runs only).
        seed: seed of the "random" weights.
        batch_size: images per forward pass when streaming files or re-batching.
    """

    def __init__(self, weights: str = IMAGENET, *, seed: int = 0, batch_size: int = 32):
        import tensorflow as tf

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.weights = weights
        self.batch_size = int(batch_size)
        self.comparable = weights != RANDOM
        self.model = build_inception(weights, seed)
        model = self.model

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
        def features(images):  # [N, H, W, 3] float in [0, 255]
            x = tf.image.resize(
                images, (INCEPTION_SIZE, INCEPTION_SIZE), method="bilinear"
            )  # [N, 299, 299, 3]
            x = x / 127.5 - 1.0
            return tf.cast(model(x, training=False), tf.float32)  # [N, 2048]

        self._features = features

    def __call__(self, images) -> np.ndarray:
        """uint8 [N, H, W, 3] (or float in [-1, 1]) -> float32 features [N, 2048]."""
        images = _as_uint8_range(images)
        if images.shape.rank != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be [N, H, W, 3], got {images.shape}")
        out = [
            self._features(images[start : start + self.batch_size]).numpy()
            for start in range(0, int(images.shape[0]), self.batch_size)
        ]
        return np.concatenate(out, axis=0) if out else np.zeros((0, FEATURE_DIM), np.float32)

    def stats_from_files(
        self,
        paths,
        *,
        name: str = "images",
        image_size: int | None = None,
        keep_features: bool = True,
        progress: bool = False,
    ) -> FeatureStats:
        """Streams image files batch by batch into a FeatureStats (no more than one batch of
        images is in memory).

        Args:
            paths: image files (any format PIL reads; converted to RGB).
            name: what the files are (a folder, a flag), named in errors.
            image_size: resize every image to image_size x image_size first (PIL bilinear),
                e.g. to compare at the synthesis resolution; None keeps each file's size.
            keep_features: keep the features (for KID).
            progress: show a progress bar.
        """
        from PIL import Image

        from datasets.pipeline import load_image

        stats = FeatureStats(keep_features=keep_features, name=name)
        bar = None
        if progress:
            import keras

            bar = keras.utils.Progbar(len(paths), unit_name="image")
        for start in range(0, len(paths), self.batch_size):
            images = []
            for path in paths[start : start + self.batch_size]:
                image = load_image(path)  # [H, W, 3] uint8
                if image_size and image.shape[:2] != (image_size, image_size):
                    image = np.asarray(
                        Image.fromarray(image).resize((image_size, image_size), Image.BILINEAR)
                    )
                images.append(image)
            if len({image.shape for image in images}) == 1:
                stats.update(self(np.stack(images)))  # [b, H, W, 3] -> [b, 2048]
            else:  # files of several sizes: each is resized to 299 on its own
                for image in images:
                    stats.update(self(image[None]))
            if bar is not None:
                bar.add(len(images))
        return stats

    def stats_from_dataset(
        self, dataset, *, name: str = "dataset", keep_features: bool = True
    ) -> FeatureStats:
        """Streams a tf.data dataset of batches into a FeatureStats.

        Elements are image batches [N, H, W, 3] or dicts with "image": uint8, or float in
        [-1, 1] as datasets/pipeline.py yields.
        """
        stats = FeatureStats(keep_features=keep_features, name=name)
        for element in dataset:
            images = element["image"] if isinstance(element, dict) else element
            stats.update(self(images))
        return stats
