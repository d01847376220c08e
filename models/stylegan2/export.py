"""SavedModel export of the StyleGAN2 generator (EMA weights) and a runner for synthesis.

Serving signatures of the SavedModel (noise is the generator's fixed per-layer buffers, so the
output is a pure function of the inputs and equals the Keras model's):
    serving_default / serve   (z float32 [N, z_dim], truncation_psi float32 [])
                              -> {"image": uint8 [N, R, R, 3], "image_float": float32 in [-1, 1]}
Truncation pulls w towards the mean w of 4096 mapped latents (stored in the SavedModel).

`GeneratorRunner` restores the EMA generator of a run directory for synthesize.py: images,
synthesis-layer features (the feature function of the Synthesis-in-Style clustering and dataset
synthesis) and a fingerprint that ties cluster runs and label mappings to one generator.
"""

import hashlib
import json

import keras
import numpy as np
import tensorflow as tf

from core.errors import UserError
from models.stylegan2.config import StyleGAN2Config
from models.stylegan2.trainer import StyleGAN2GAN
from training import checkpointing
from training import run_dir as run_dir_lib

# Latents averaged for the truncation centre (the StyleGAN2 convention).
MEAN_W_SAMPLES = 4096


def to_uint8(image):
    """[-1, 1] float -> [0, 255] uint8 (rounded)."""
    return tf.cast(tf.round(tf.clip_by_value((image + 1.0) * 127.5, 0.0, 255.0)), tf.uint8)


def export_stylegan2(gan, path, seed=0):
    """Writes `gan`'s EMA generator as a SavedModel at `path` (replaced atomically)."""
    generator = gan.generator_ema
    z_dim = gan.z_dim
    w_avg = tf.Variable(
        generator.mean_w(num=MEAN_W_SAMPLES, seed=seed), trainable=False, name="w_avg"
    )
    archive = keras.export.ExportArchive()
    archive.track(generator)
    archive._tracked_w_avg = w_avg  # keeps the truncation centre in the SavedModel

    def serve(z, truncation_psi):
        image = generator(
            z, truncation_psi=truncation_psi, w_avg=w_avg, noise_mode="const", training=False
        )
        return {"image": to_uint8(image), "image_float": tf.cast(image, tf.float32)}

    archive.add_endpoint(
        "serve",
        serve,
        input_signature=[
            tf.TensorSpec([None, z_dim], tf.float32, name="z"),
            tf.TensorSpec([], tf.float32, name="truncation_psi"),
        ],
    )
    return run_dir_lib.write_saved_model(archive, path)


class GeneratorRunner:
    """The EMA generator of a StyleGAN2 run directory, for synthesis.

    Args:
        checkpoint_dir: run directory of `train.py --model=stylegan2`; its latest checkpoint is
            restored (the newest readable one).
        truncation_psi: 1 = no truncation; < 1 pulls w towards the mean w (fewer artefacts,
            less variety).
        resolution: when given, must equal the run's resolution (a clear error otherwise).
        seed: seed of the mean-w latents.
        log: where a note on a skipped unreadable checkpoint goes.

    Attributes:
        resolution, z_dim, step, fingerprint (hex string identifying config + weights),
        layers (feature layer metadata [{"name", "resolution", "channels"}]).
    """

    def __init__(self, checkpoint_dir, truncation_psi=1.0, resolution=None, seed=0, log=print):
        stored = run_dir_lib.load_run_config(checkpoint_dir)
        if stored.get("model") != "stylegan2":
            raise UserError(
                f"--checkpoint_dir={checkpoint_dir} holds a --model={stored.get('model')} run, "
                "not a StyleGAN2 generator"
            )
        config = StyleGAN2Config.from_dict(stored, strict=False)
        if resolution is not None and int(resolution) != int(config.resolution):
            raise UserError(
                f"--checkpoint_dir={checkpoint_dir} is a {config.resolution} px generator, "
                f"not {resolution} px"
            )
        if not 0.0 <= truncation_psi <= 1.0:
            raise UserError(f"--truncation_psi={truncation_psi} must lie in [0, 1]")
        self.config = config
        self.gan = StyleGAN2GAN.from_run_config(config, for_training=False)
        latest = checkpointing.restore_run_for_inference(
            self.gan.checkpoint_objects(), checkpoint_dir, every_network=False, log=log
        )
        self.checkpoint = latest
        self.generator = self.gan.generator_ema
        self.resolution = int(config.resolution)
        self.z_dim = int(config.z_dim)
        self.step = int(self.gan.step.numpy())
        self.truncation_psi = float(truncation_psi)
        self.layers = list(self.generator.feature_layers())
        self.w_avg = self.generator.mean_w(num=MEAN_W_SAMPLES, seed=seed)
        self.fingerprint = self._fingerprint()
        self._features = tf.function(self._features_graph)

    def _fingerprint(self):
        digest = hashlib.sha1()
        keys = ("resolution", "channel_multiplier", "z_dim", "w_dim", "mapping_layers")
        digest.update(
            json.dumps({k: getattr(self.config, k) for k in keys}, sort_keys=True).encode()
        )
        for variable in self.generator.weights:
            digest.update(np.ascontiguousarray(variable.numpy()).tobytes())
        return digest.hexdigest()[:16]

    def _features_graph(self, z):
        images, features = self.generator(
            z,
            truncation_psi=self.truncation_psi,
            w_avg=self.w_avg,
            noise_mode="const",
            return_features=True,
            training=False,
        )
        return to_uint8(images), features

    def images(self, z):
        """z [N, z_dim] -> uint8 [N, R, R, 3] (fixed noise: a pure function of z)."""
        return self.feature_fn(z)[0]

    def feature_fn(self, z):
        """z [N, z_dim] -> (uint8 images [N, R, R, 3], {layer name: float32 [N, r, r, C]}).

        Deterministic for a given z (fixed noise buffers), as clustering's second pass needs.
        """
        z = tf.convert_to_tensor(np.asarray(z, np.float32))
        images, features = self._features(z)
        names = [layer["name"] for layer in self.layers]
        return images.numpy(), {name: f.numpy() for name, f in zip(names, features)}

    def meta(self):
        """The "generator" entry of a cluster run (see models/synthesis_in_style/clusters.py)."""
        return {
            "fingerprint": self.fingerprint,
            "resolution": self.resolution,
            "checkpoint": self.checkpoint,
            "step": self.step,
        }
