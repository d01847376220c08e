"""SavedModel export of the OSMIS generator (EMA weights) and a runner for synthesis.

Serving signature of the SavedModel (inference mode: no power iteration, a pure function of z,
equal to the Keras model's output):
    serving_default / serve   (z float32 [N, z_dim]) -> {
        "image": uint8 [N, H, W, 3], "image_float": float32 [N, H, W, 3] in [-1, 1],
        and with masks: "mask": uint8 [N, H, W] original class ids (argmax of the probabilities),
        "mask_probs": float32 [N, H, W, K] over the contiguous classes}
Beside it, META_FILE holds the input record (layout, class ids, label set names and colours).

`OSMISRunner` restores the EMA generator of a run directory (or loads the SavedModel) and turns
latents into uint8 image / mask pairs for synthesize.py.
"""

import os

import keras
import numpy as np
import tensorflow as tf

from core.errors import UserError
from models.osmis import inputs as inputs_lib
from models.osmis.config import OSMISConfig
from models.osmis.trainer import OSMISGAN
from training import checkpointing
from training import run_dir as run_dir_lib

META_FILE = "semsynth_osmis.json"


def to_uint8(image):
    """[-1, 1] float -> [0, 255] uint8 (rounded)."""
    return tf.cast(tf.round(tf.clip_by_value((image + 1.0) * 127.5, 0.0, 255.0)), tf.uint8)


def _outputs(gan, z, class_ids):
    image, mask = gan.sample(z)
    outputs = {"image": to_uint8(image), "image_float": tf.cast(image, tf.float32)}
    if mask is not None:
        classes = tf.argmax(mask, axis=-1, output_type=tf.int32)  # [N, H, W] 0..K-1
        outputs["mask"] = tf.gather(tf.constant(class_ids, tf.uint8), classes)
        outputs["mask_probs"] = tf.cast(mask, tf.float32)
    return outputs


def export_osmis(gan, path, record):
    """Writes `gan`'s EMA generator as a SavedModel at `path` (replaced atomically).

    Args:
        gan: an OSMISGAN.
        path: the SavedModel folder.
        record: the run's input record (models.osmis.inputs.OneShotInput.record()).
    """
    class_ids = list(record["class_ids"]) or [0]
    archive = keras.export.ExportArchive()
    archive.track(gan.generator_ema)

    def serve(z):
        return _outputs(gan, z, class_ids)

    archive.add_endpoint(
        "serve", serve, input_signature=[tf.TensorSpec([None, gan.z_dim], tf.float32, name="z")]
    )
    meta = {"z_dim": gan.z_dim, **record}
    return run_dir_lib.write_saved_model(archive, path, json_files={META_FILE: meta})


class OSMISRunner:
    """The EMA generator of an OSMIS run directory or SavedModel, for synthesis.

    Args:
        checkpoint_dir: run directory of `train.py --model=osmis` (its newest readable
            checkpoint); or
        saved_model: a folder written by export_osmis.
        log: where a note on a skipped unreadable checkpoint goes.

    Attributes:
        z_dim, record (the input record), label_set (None for SIV-GAN), has_masks, step (None
        for a SavedModel).
    """

    def __init__(self, checkpoint_dir=None, saved_model=None, log=print):
        if bool(checkpoint_dir) == bool(saved_model):
            raise UserError("give exactly one of --checkpoint_dir and --saved_model")
        self._gan = self._module = None
        self.step = None
        if saved_model:
            meta_path = os.path.join(saved_model, META_FILE)
            if not os.path.isfile(meta_path):
                raise FileNotFoundError(
                    f"--saved_model={saved_model} is not an OSMIS SavedModel (no {META_FILE})"
                )
            import json

            with open(meta_path, encoding="utf-8") as f:
                meta = json.load(f)
            self.z_dim = int(meta["z_dim"])
            self.record = {k: v for k, v in meta.items() if k != "z_dim"}
            self._module = tf.saved_model.load(saved_model)
        else:
            stored = run_dir_lib.load_run_config(checkpoint_dir)
            if stored.get("model") != "osmis":
                raise UserError(
                    f"--checkpoint_dir={checkpoint_dir} holds a --model={stored.get('model')} "
                    "run, not an OSMIS generator"
                )
            config = OSMISConfig.from_dict(stored, strict=False)
            self.record = inputs_lib.read_record(checkpoint_dir)
            layout = inputs_lib.Layout.from_dict(self.record["layout"])
            self._gan = OSMISGAN.from_run_config(
                config,
                layout=layout,
                num_classes=len(self.record["class_ids"]),
                for_training=False,
            )
            checkpointing.restore_run_for_inference(
                self._gan.checkpoint_objects(), checkpoint_dir, every_network=False, log=log
            )
            self.step = int(self._gan.step.numpy())
            self.z_dim = self._gan.z_dim
            class_ids = list(self.record["class_ids"]) or [0]
            self._serve = tf.function(lambda z: _outputs(self._gan, z, class_ids))
        self.label_set = inputs_lib.label_set_from_record(self.record)
        self.has_masks = bool(self.record["class_ids"])

    def generate(self, z):
        """z [N, z_dim] -> {"images": uint8 [N, H, W, 3], "masks": uint8 [N, H, W] original class
        ids (with masks)}; a pure function of z."""
        z = tf.convert_to_tensor(np.asarray(z, np.float32))
        out = self._module.serve(z) if self._module is not None else self._serve(z)
        result = {"images": out["image"].numpy()}
        if self.has_masks:
            result["masks"] = out["mask"].numpy()
        return result
