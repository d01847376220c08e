"""SavedModel export of a SegFormer and loading a segmenter for segment.py.

Signatures (the model always runs with training=False, so the SavedModel equals Keras):
    serving_default / serve   images uint8 [N, H, W, 3], any H, W ->
                              {"label": uint8 [N, H, W], "probabilities": float32 [N, H, W, C]}
                              (padded to a multiple of 32 inside, cropped back)
    logits                    normalised float32 [N, h, w, 3], h and w multiples of 32 ->
                              {"logits": float32 [N, h/4, w/4, C]} (for sliding windows)
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf

from core.errors import UserError
from models.segformer import networks as segformer
from models.segformer.labels import label_set_path, resolve_labels
from models.segformer.trainer import SegFormerTrainer
from training import checkpointing
from training import run_dir as run_dir_lib

META_FILE = "semsynth_segmenter.json"


def _pad_to_multiple(images, multiple=32):
    """Zero-pads [N, H, W, C] at the bottom/right to multiples of `multiple`."""
    shape = tf.shape(images)
    pad_h = (multiple - shape[1] % multiple) % multiple
    pad_w = (multiple - shape[2] % multiple) % multiple
    return tf.pad(images, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]])


def whole_image_probabilities(model, images_uint8):
    """uint8 [N, H, W, 3] -> softmax probabilities [N, H, W, C] float32 (inference mode)."""
    shape = tf.shape(images_uint8)
    x = _pad_to_multiple(segformer.preprocess(images_uint8))  # [N, H', W', 3]
    logits = model(x, training=False)  # [N, H'/4, W'/4, C]
    logits = tf.image.resize(logits, tf.shape(x)[1:3], method="bilinear")  # [N, H', W', C]
    return tf.nn.softmax(logits[:, : shape[1], : shape[2], :], axis=-1)


def export_segformer(model, path, label_set_name, label_map=None):
    """Writes `model` (a networks.SegFormer) as a SavedModel at `path` (atomically)."""
    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(images):
        probabilities = whole_image_probabilities(model, images)
        label = tf.cast(tf.argmax(probabilities, axis=-1), tf.uint8)
        return {"label": label, "probabilities": probabilities}

    def logits(images):
        return {"logits": tf.cast(model(images, training=False), tf.float32)}

    archive.add_endpoint(
        "serve", serve, input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)]
    )
    archive.add_endpoint(
        "logits", logits, input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)]
    )
    meta = {
        "label_set": label_set_name,
        "num_classes": int(model.num_classes),
        # raw label-file value -> class id (255 ignore, -1 none), for --gt_dir evaluation
        "label_map": None if label_map is None else [int(v) for v in label_map],
        # The network's GELU form and block LayerNorm epsilon (networks.ARCHITECTURES).
        "architecture": {
            "variant": model.variant,
            "approximate_gelu": bool(model.approximate_gelu),
            "block_norm_epsilon": float(model.block_norm_epsilon),
        },
    }
    return run_dir_lib.write_saved_model(archive, path, json_files={META_FILE: meta})


class Segmenter:
    """A trained segmenter from a run directory or an exported SavedModel.

    Attributes: num_classes, label_set_name; methods preprocess(uint8) and
    predict_logits(normalised float32 [B, h, w, 3]) -> logits [B, h/4, w/4, C].
    """

    def __init__(self, checkpoint_dir=None, saved_model=None, log=print):
        if bool(checkpoint_dir) == bool(saved_model):
            raise UserError("give exactly one of --checkpoint_dir and --saved_model")
        self.preprocess = lambda images: segformer.preprocess(images).numpy()
        if saved_model:
            meta = os.path.join(saved_model, META_FILE)
            if not os.path.exists(meta):
                raise FileNotFoundError(
                    f"--saved_model={saved_model} is not a segmenter exported by semsynth "
                    f"(no {META_FILE})"
                )
            with open(meta) as f:
                info = json.load(f)
            self.num_classes, self.label_set_name = info["num_classes"], info["label_set"]
            self.label_map = info.get("label_map")
            # A label set stored beside the model (a JSON file) travels with it.
            local = os.path.join(saved_model, self.label_set_name)
            if os.path.exists(local):
                self.label_set_name = local
            self._module = tf.saved_model.load(saved_model)
            self._predict = lambda x: self._module.logits(tf.constant(x, tf.float32))["logits"]
            return
        from models.segformer.config import SegFormerConfig

        config = run_dir_lib.load_run_config(checkpoint_dir, SegFormerConfig)
        trainer, self.label_set_name, self.label_map = build_segmenter_for_inference(config)
        checkpointing.restore_run_for_inference(
            trainer.checkpoint_objects(), checkpoint_dir, log=log
        )
        self.num_classes = trainer.num_classes
        model = trainer.segformer
        predict = tf.function(
            lambda x: model(x, training=False),
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)],
        )
        self._predict = lambda x: predict(tf.constant(x, tf.float32))

    def predict_logits(self, images):
        """Normalised float32 [B, h, w, 3] (h, w multiples of 32) -> logits [B, h/4, w/4, C]."""
        return np.asarray(self._predict(images))


def build_segmenter_for_inference(config):
    """(trainer without optimizers, label-set name or JSON path, raw->id table) of a config."""
    label_set, label_map, num_classes = resolve_labels(config)
    trainer = SegFormerTrainer.from_run_config(config, num_classes, for_training=False)
    return trainer, label_set_path(config, label_set), label_map


def load_segmenter(checkpoint_dir=None, saved_model=None, log=print):
    """The segmenter of a run directory (its newest readable checkpoint) or an exported
    SavedModel (see Segmenter)."""
    return Segmenter(checkpoint_dir=checkpoint_dir, saved_model=saved_model, log=log)
