"""SavedModel export of the layout generator, per-level snapshots, and loading for inference.

Serving signature `serve` / serving_default:
    (palette float32 [N, C], z float32 [N, z_dim]) ->
        {"layout_soft": float32 [N, H, W, C], "layout": uint8 [N, H, W] (argmax train ids)}
at the level (and fade-in alpha) the run had reached when exported; the generator runs in
inference mode, so the SavedModel's output equals the Keras model's. Beside it META_FILE
records {"label_set", "class_names", "num_classes", "z_dim", "level", "alpha", "height",
"width", "step"}: palettes of another label set are refused before the model runs.

Per-level snapshots: <run_dir>/levels/level<k>_<H>x<W>.* (tf.train.Checkpoint of the
generator), written when level k's schedule ends (see task.py); `LayoutGenerator` loads the run's
newest checkpoint (its level) or, given `level`, that level's snapshot.
"""

import json
import os
import re

import keras
import numpy as np
import tensorflow as tf

from core.errors import UserError
from models.palette.config import PaletteConfig
from models.palette.labels import layout_label_set
from models.palette.trainer import PaletteLayoutGAN
from training import checkpointing
from training import run_dir as run_dir_lib

META_FILE = "semsynth_palette.json"
LEVELS_DIR = "levels"
_SNAPSHOT = re.compile(r"^level(\d+)_(\d+)x(\d+)\.index$")


class LayoutCheckpointError(UserError):
    """A layout checkpoint or export cannot serve the request (another level, label set)."""


def _outputs(soft):
    return {
        "layout_soft": tf.cast(soft, tf.float32),
        "layout": tf.cast(tf.argmax(soft, axis=-1), tf.uint8),
    }


def export_palette(gan, path, label_set, level=None, alpha=None):
    """Writes `gan`'s generator as a SavedModel at `path` (replaced atomically).

    Args:
        gan: a PaletteLayoutGAN.
        path: the SavedModel folder.
        label_set: the layouts' semantic_labels.LabelSet (recorded in META_FILE).
        level, alpha: the level exported (default: the level and alpha the step reached).
    """
    if level is None:
        level, scheduled = gan.schedule()
        alpha = scheduled if alpha is None else alpha
    alpha = 1.0 if alpha is None else float(alpha)
    archive = keras.export.ExportArchive()
    archive.track(gan.generator)

    def serve(palette, z):
        soft = gan.generator(z, palette, level=level, alpha=alpha, training=False)[0]
        return _outputs(soft)

    archive.add_endpoint(
        "serve",
        serve,
        input_signature=[
            tf.TensorSpec([None, gan.num_classes], tf.float32, name="palette"),
            tf.TensorSpec([None, gan.z_dim], tf.float32, name="z"),
        ],
    )
    height, width = gan.level_size(level)
    meta = {
        "label_set": label_set.name,
        "class_names": list(label_set.names),
        "num_classes": gan.num_classes,
        "z_dim": gan.z_dim,
        "level": int(level),
        "alpha": float(alpha),
        "height": int(height),
        "width": int(width),
        "step": int(gan.step.numpy()),
    }
    return run_dir_lib.write_saved_model(archive, path, json_files={META_FILE: meta})


# === Per-level snapshots ===


def snapshot_prefix(run_dir, level, size):
    return os.path.join(run_dir, LEVELS_DIR, f"level{level}_{size[0]}x{size[1]}")


def generator_snapshots(run_dir):
    """{level: snapshot prefix} of a run directory."""
    folder = os.path.join(run_dir, LEVELS_DIR)
    if not os.path.isdir(folder):
        return {}
    found = {}
    for name in os.listdir(folder):
        match = _SNAPSHOT.match(name)
        if match:
            found[int(match.group(1))] = os.path.join(folder, name[: -len(".index")])
    return found


def snapshot_finished_levels(gan, run_dir, step):
    """Keeps the generator of the level whose schedule ended exactly at `step` (if any)."""
    period = gan.fade_steps + gan.stable_steps
    if step <= 0 or step % period or step // period > gan.max_level:
        return None
    level = step // period - 1
    prefix = snapshot_prefix(run_dir, level, gan.level_size(level))
    if os.path.exists(prefix + ".index"):
        return None
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    checkpoint = tf.train.Checkpoint(
        generator=checkpointing.variable_bundle(gan.generator), step=gan.step
    )
    return checkpoint.write(prefix)


# === Loading for inference ===


class LayoutGenerator:
    """(palettes, z) -> layouts, from a run directory or an exported SavedModel.

    Args:
        source: a run directory of train.py --model=palette, or a SavedModel folder of
            export_palette.
        level: the level wanted (default: the run's current level, or the export's). A run
            serves another level only from its per-level snapshots; an export only its own.
        log: where notes on skipped unreadable checkpoints go.

    Attributes:
        label_set_name, class_names, num_classes, z_dim, level, alpha, height, width.
    """

    def __init__(self, source, level=None, log=print):
        self._gan = self._module = None
        if os.path.exists(os.path.join(source, "saved_model.pb")):
            self._load_export(source, level)
        elif os.path.exists(os.path.join(source, run_dir_lib.CONFIG_FILE)):
            self._load_run(source, level, log)
        else:
            raise LayoutCheckpointError(
                f"{source} is neither a palette run directory (no {run_dir_lib.CONFIG_FILE}) "
                "nor a SavedModel folder (no saved_model.pb)"
            )

    def _load_export(self, source, level):
        path = os.path.join(source, META_FILE)
        try:
            with open(path) as f:
                meta = json.load(f)
        except (OSError, ValueError) as error:
            raise LayoutCheckpointError(f"{source}: {path} is unreadable ({error})") from None
        if level is not None and level != meta["level"]:
            raise LayoutCheckpointError(
                f"{source} holds the layout generator of level {meta['level']} "
                f"({meta['height']}x{meta['width']}), not level {level}; export that level"
            )
        self._module = tf.saved_model.load(source)
        self.label_set_name = meta["label_set"]
        self.class_names = tuple(meta["class_names"])
        self.num_classes = int(meta["num_classes"])
        self.z_dim = int(meta["z_dim"])
        self.level, self.alpha = int(meta["level"]), float(meta["alpha"])
        self.height, self.width = int(meta["height"]), int(meta["width"])

    def _load_run(self, source, level, log):
        config = run_dir_lib.load_run_config(source, PaletteConfig)
        label_set, _ = layout_label_set(config)
        gan = PaletteLayoutGAN.from_run_config(
            config, num_classes=label_set.num_classes, for_training=False
        )
        checkpointing.restore_run_for_inference(gan.checkpoint_objects(), source, log=log)
        current, alpha = gan.schedule()
        if level is not None and level != current:
            snapshots = generator_snapshots(source)
            if level not in snapshots:
                available = sorted({*snapshots, current})
                raise LayoutCheckpointError(
                    f"--checkpoint_dir={source} has no layout generator of level {level}: its "
                    f"checkpoint is at level {current} "
                    f"({'x'.join(map(str, gan.level_size(current)))}) and it keeps levels "
                    f"{available}"
                )
            checkpoint = tf.train.Checkpoint(generator=checkpointing.variable_bundle(gan.generator))
            checkpoint.read(snapshots[level]).assert_existing_objects_matched().expect_partial()
            current, alpha = level, 1.0
        self._gan = gan
        self.label_set_name = label_set.name
        self.class_names = tuple(label_set.names)
        self.num_classes = label_set.num_classes
        self.z_dim = gan.z_dim
        self.level, self.alpha = current, alpha
        self.height, self.width = gan.level_size(current)

    def __call__(self, palettes, z):
        """palettes float32 [N, C], z float32 [N, z_dim] -> (soft [N, H, W, C] float32,
        layout uint8 [N, H, W] train ids)."""
        palettes = tf.constant(np.asarray(palettes, np.float32))
        z = tf.constant(np.asarray(z, np.float32))
        if self._module is not None:
            out = self._module.serve(palettes, z)
        else:
            soft = self._gan.generate(z, palettes, level=self.level, alpha=self.alpha)
            out = _outputs(soft)
        return out["layout_soft"].numpy(), out["layout"].numpy()
