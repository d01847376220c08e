"""SavedModel export of the SPADE generator, and loading a synthesizer for inference.

Serving signatures (all take uint8 label maps [N, H, W] with (H, W) = the training crop size,
(crop_size, crop_size * aspect_ratio), and return {"image": uint8 [N, H, W, 3], "image_float":
float32 [N, H, W, 3] in [-1, 1]}):
    serving_default / serve       (label)                      no VAE: the map alone; with a VAE
                                                               z ~ N(0, I) drawn inside
    serve_z        (VAE runs)     (label, z float32 [N, z_dim])
    serve_style    (VAE runs)     (label, style uint8 [N, H, W, 3])   z = the encoder's mean
The model always runs with training=False (no batch statistics, no spectral-norm power
iteration), so the SavedModel's output equals the Keras model's. Beside it, META_FILE records
what a caller must know before feeding it: {"num_classes", "label_set", "crop_size" (the
height), "image_size" ([H, W]), "use_vae", "z_dim", "label_values"} (label maps with ids >=
num_classes are refused by Synthesizer; with a "don't care" channel, num_classes is the label
set's + 1). "label_values" is null, or for runs on label values (the SPADE TF port's
semantic_labels.txt, models/spade/labels.py) the raw value of each class: the signatures take
class ids, and Synthesizer.to_class_ids maps a raw label map to them first.
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf

from core.errors import UserError
from models.spade import labels as spade_labels
from models.spade.config import SPADEConfig
from models.spade.labels import num_spade_classes
from models.spade.trainer import SPADEGAN
from semantic_labels import label_values as values_lib
from training import checkpointing
from training import run_dir as run_dir_lib

META_FILE = "semsynth_spade.json"


def _to_uint8(image):
    """[-1, 1] float -> [0, 255] uint8 (rounded)."""
    return tf.cast(tf.round(tf.clip_by_value((image + 1.0) * 127.5, 0.0, 255.0)), tf.uint8)


def _outputs(image):
    """The serving outputs: uint8 RGB, and the float32 image in [-1, 1] for exact comparisons."""
    return {"image": _to_uint8(image), "image_float": tf.cast(image, tf.float32)}


def _from_uint8(image):
    return tf.cast(image, tf.float32) / 127.5 - 1.0


def export_spade(gan, path, label_set, label_values=None):
    """Writes `gan`'s generator (and encoder) as a SavedModel at `path` (replaced atomically).

    `label_set` (its name or file, as the run's semantic_label_path) is recorded in the meta,
    with `label_values` (the raw value of each class of a run on label values, or None).
    """
    height, width = gan.image_size
    label_spec = tf.TensorSpec([None, height, width], tf.uint8, name="label")
    archive = keras.export.ExportArchive()
    archive.track(gan.generator)
    if gan.encoder is not None:
        archive.track(gan.encoder)

    if gan.use_vae:
        z_dim = gan.z_dim

        def serve(label):
            z = tf.random.normal((tf.shape(label)[0], z_dim))
            return _outputs(gan.synthesize(label, z=z, training=False))

        def serve_z(label, z):
            return _outputs(gan.synthesize(label, z=z, training=False))

        def serve_style(label, style):
            style = _from_uint8(style)
            return _outputs(gan.synthesize(label, style_image=style, training=False))

        archive.add_endpoint("serve", serve, input_signature=[label_spec])
        archive.add_endpoint(
            "serve_z",
            serve_z,
            input_signature=[label_spec, tf.TensorSpec([None, z_dim], tf.float32, name="z")],
        )
        archive.add_endpoint(
            "serve_style",
            serve_style,
            input_signature=[
                label_spec,
                tf.TensorSpec([None, None, None, 3], tf.uint8, name="style"),
            ],
        )
    else:

        def serve(label):
            return _outputs(gan.synthesize(label, training=False))

        archive.add_endpoint("serve", serve, input_signature=[label_spec])

    meta = {
        "num_classes": int(gan.num_classes),
        "label_set": label_set,
        "crop_size": int(height),
        "image_size": [int(height), int(width)],
        "use_vae": bool(gan.use_vae),
        "z_dim": int(gan.z_dim) if gan.use_vae else None,
        "label_values": None if label_values is None else [int(v) for v in label_values],
    }
    return run_dir_lib.write_saved_model(archive, path, json_files={META_FILE: meta})


class Synthesizer:
    """Label maps -> images, from a run directory (checkpoint) or an exported SavedModel.

    Args:
        checkpoint_dir: run directory of train.py; its newest readable checkpoint is restored.
        saved_model: directory written by export_spade (alternative to checkpoint_dir).
        log: where a note on a skipped unreadable checkpoint goes.

    Attributes:
        image_size ((height, width) of label maps and images), crop_size (the height), use_vae,
        z_dim, num_classes (None for an export of an older version, which did not record it:
        its label ids are then not checked), label_values (the raw file value of each class
        of a run on label values, else None: files hold the class ids), label_set_name (the
        run's semantic_label_path; None for an old export), config (the run's SPADEConfig;
        None for an export).
    """

    def __init__(self, checkpoint_dir=None, saved_model=None, log=print):
        if bool(checkpoint_dir) == bool(saved_model):
            raise UserError("give exactly one of --checkpoint_dir and --saved_model")
        self._gan = self._module = None
        if saved_model:
            if not os.path.exists(os.path.join(saved_model, "saved_model.pb")):
                raise FileNotFoundError(f"--saved_model={saved_model} is not a SavedModel folder")
            self._module = tf.saved_model.load(saved_model)
            spec = self._module.signatures["serve"].structured_input_signature[1]
            self.image_size = (int(spec["label"].shape[1]), int(spec["label"].shape[2]))
            self.crop_size = self.image_size[0]
            self.use_vae = hasattr(self._module, "serve_z")
            self.z_dim = (
                int(self._module.signatures["serve_z"].structured_input_signature[1]["z"].shape[1])
                if self.use_vae
                else None
            )
            meta = _exported_meta(saved_model)
            self.num_classes = None if meta is None else int(meta["num_classes"])
            self.label_set_name = None if meta is None else meta.get("label_set")
            values = None if meta is None else meta.get("label_values")
            self.label_values = None if values is None else tuple(int(v) for v in values)
            self.config = None
            return
        config = run_dir_lib.load_run_config(checkpoint_dir, SPADEConfig)
        self.config = config
        # Label values come from the run's copy in checkpoint_dir (where the run is now).
        label_set = spade_labels.spade_label_set(config, run_dir=checkpoint_dir)
        self.label_values = spade_labels.label_values_of(config, label_set)
        num_classes = num_spade_classes(config, run_dir=checkpoint_dir)  # + "don't care"
        self._gan = SPADEGAN.from_run_config(config, num_classes, for_training=False)
        checkpointing.restore_run_for_inference(
            self._gan.checkpoint_objects(), checkpoint_dir, log=log
        )
        self.image_size = config.image_size
        self.crop_size = config.crop_size
        self.use_vae = bool(config.use_vae)
        self.z_dim = config.z_dim if self.use_vae else None
        self.num_classes = num_classes
        self.label_set_name = config.semantic_label_path
        self.step = int(self._gan.step.numpy())

    def to_class_ids(self, label, where):
        """A raw [H, W] label map as class ids: mapped through label_values when the run
        has them (values it does not list raise, naming `where`), else unchanged."""
        if self.label_values is None:
            return np.asarray(label)
        return values_lib.to_class_ids(label, self.label_values, where)

    def __call__(self, labels, z=None, style=None):
        """labels uint8 [N, H, W] (H, W = image_size); z float32 [N, z_dim] or style uint8
        [N, h, w, 3] (VAE runs).

        Returns uint8 [N, H, W, 3].
        """
        labels = np.asarray(labels, np.uint8)
        height, width = self.image_size
        if labels.ndim != 3 or labels.shape[1:] != (height, width):
            raise ValueError(f"label maps must be [N, {height}, {width}], got {labels.shape}")
        if self.num_classes is not None and labels.max() >= self.num_classes:
            raise ValueError(
                f"label value {labels.max()} is outside the run's {self.num_classes} classes"
            )
        if self._module is not None:
            if style is not None and self.use_vae:
                out = self._module.serve_style(tf.constant(labels), tf.constant(style, tf.uint8))
            elif z is not None and self.use_vae:
                out = self._module.serve_z(tf.constant(labels), tf.constant(z, tf.float32))
            else:
                out = self._module.serve(tf.constant(labels))
            return out["image"].numpy()
        style_image = None if style is None else _from_uint8(tf.constant(style, tf.uint8))
        image = self._gan.synthesize(
            tf.constant(labels),
            z=None if z is None else tf.constant(z, tf.float32),
            style_image=style_image,
            training=False,
        )
        return _to_uint8(image).numpy()


def _exported_meta(saved_model):
    """The META_FILE recorded beside an export (None for exports without one)."""
    path = os.path.join(saved_model, META_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            meta = json.load(f)
        int(meta["num_classes"])
        return meta
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(f"--saved_model={saved_model}: {path} is unreadable ({error})") from None


def resize_label_map(label, size):
    """Nearest-neighbour resize of a [H, W] label map to size, a side or (height, width)
    (class ids preserved)."""
    label = np.asarray(label)
    height, width = (size, size) if np.isscalar(size) else size
    if label.shape == (height, width):
        return label.astype(np.uint8)
    from PIL import Image

    resized = Image.fromarray(label.astype(np.uint8)).resize((width, height), Image.NEAREST)
    return np.asarray(resized)


def export_run(checkpoint_dir, output=None):
    """Exports the latest checkpoint of a run directory (on demand); returns the path."""
    synth = Synthesizer(checkpoint_dir=checkpoint_dir)
    return export_spade(
        synth._gan,
        output or os.path.join(checkpoint_dir, "export"),
        synth.label_set_name,
        label_values=synth.label_values,
    )
