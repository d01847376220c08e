"""The trained runs that an e2e run (--layout_run, --image_run) or a pipeline export starts
from: reading their configs and checkpoints, with clear errors.

A layout run is a run directory of `train.py --model=palette --stage=layout` whose newest
checkpoint has reached its last level (max_level) with the fade-in finished; an image run is
one of `train.py --model=spade` without the VAE. Together they must agree: the same label set
(SPADE may add its "don't care" channel) and the layout size = SPADE's image size.
"""

import json
import os

import tensorflow as tf

from core.errors import UserError
from models.palette.config import PaletteConfig
from models.palette.labels import layout_label_set
from models.palette.trainer import level_schedule
from models.spade.config import SPADEConfig
from semantic_labels import load_label_set
from training import checkpointing
from training import run_dir as run_dir_lib

# An e2e run keeps its image run's config beside its own: its SPADE networks are that run's.
IMAGE_CONFIG_FILE = "image_config.json"
# The layout networks' settings an e2e run must share with its layout run.
LAYOUT_ARCHITECTURE = (
    "semantic_label_path",
    "z_dim",
    "start_size",
    "aspect_ratio",
    "num_levels",
    "max_level",
    "channel_base",
    "max_channels",
    "feedback",
    "mbstd_group_size",
)


class SourceRunError(UserError):
    """A run given as the source of another (an e2e run, an export) cannot be used."""


def read_run_config(path, flag, family, config_class):
    """The typed config of the run directory `path` of --model=`family`, or SourceRunError
    naming `flag`."""
    if not path or not os.path.isdir(path):
        raise SourceRunError(f"{flag}={path}: no such run directory")
    config_path = os.path.join(path, run_dir_lib.CONFIG_FILE)
    if not os.path.exists(config_path):
        raise SourceRunError(
            f"{flag}={path} is not a run directory of train.py (no {run_dir_lib.CONFIG_FILE})"
        )
    try:
        with open(config_path) as f:
            values = json.load(f)
    except (OSError, ValueError) as error:
        raise SourceRunError(f"{flag}={path}: {config_path} is unreadable ({error})") from None
    if values.get("model") != family:
        raise SourceRunError(
            f"{flag}={path} is a run of --model={values.get('model')}, not --model={family}"
        )
    return config_class.from_dict(values, strict=False)


def checkpoint_step(path, flag):
    """The global step of the newest readable checkpoint of run directory `path`."""
    step = tf.Variable(0, dtype=tf.int64, trainable=False)
    latest = checkpointing.restore_newest_readable(
        tf.train.Checkpoint(step=step),
        os.path.join(path, "checkpoints"),
        where=f"{flag}={path}",
        check=lambda status: status.expect_partial(),
        log=lambda *_: None,
    )
    if latest is None:
        raise SourceRunError(f"{flag}={path} has no checkpoint yet: train it first")
    return int(step.numpy())


def check_final_level(config, step, where):
    """SourceRunError unless a layout run's checkpoint at `step` has reached its last level
    (max_level) with the fade-in finished."""
    level, alpha = level_schedule(step, config.fade_steps, config.stable_steps, config.max_level)
    if (level, alpha) == (config.max_level, 1.0):
        return
    done = config.max_level * (config.fade_steps + config.stable_steps)
    done += config.fade_steps if config.max_level else 0
    height, width = config.level_size(level)
    fading = f", fading in at alpha {alpha:.2f}" if alpha < 1 else ""
    raise SourceRunError(
        f"{where}: its layout checkpoint (step {step}) is at level {level} ({height}x{width}"
        f"{fading}), not its last level {config.max_level} "
        f"({'x'.join(map(str, config.layout_size))}) with the fade-in finished; train it to "
        f"step {done} or more"
    )


def load_layout_source(path, flag="--layout_run", stage="layout", read_checkpoint=True):
    """(PaletteConfig, checkpoint step or None) of a trained layout (or partial) run."""
    config = read_run_config(path, flag, "palette", PaletteConfig)
    if config.stage != stage:
        raise SourceRunError(f"{flag}={path} is a run of --stage={config.stage}, not {stage}")
    if not read_checkpoint:
        return config, None
    step = checkpoint_step(path, flag)
    check_final_level(config, step, f"{flag}={path}")
    return config, step


def load_image_source(path, flag="--image_run", read_checkpoint=True):
    """The SPADEConfig of a trained SPADE run without the VAE."""
    config = read_run_config(path, flag, "spade", SPADEConfig)
    if config.use_vae:
        raise SourceRunError(
            f"{flag}={path} was trained with --use_vae; the Semantic Palette image synthesizer "
            "is SPADE without the VAE"
        )
    if read_checkpoint:
        checkpoint_step(path, flag)
    return config


def check_layout_and_image(layout_config, image_config, where):
    """SourceRunError unless the layouts fit the image synthesizer: the same classes, in the
    same order, and the layout size = the image size."""
    layout_set, _ = layout_label_set(layout_config)
    image_set = load_label_set(image_config.semantic_label_path)
    if tuple(layout_set.names) != tuple(image_set.names):
        raise SourceRunError(
            f"{where}: the layouts are of the label set {layout_set.name!r} "
            f"({layout_set.num_classes} classes) but the image synthesizer is of "
            f"{image_set.name!r} ({image_set.num_classes} classes)"
        )
    if tuple(layout_config.layout_size) != tuple(image_config.image_size):
        raise SourceRunError(
            f"{where}: the layouts are {'x'.join(map(str, layout_config.layout_size))} but the "
            f"image synthesizer makes {'x'.join(map(str, image_config.image_size))} images; "
            "train them at one size"
        )


def load_e2e_sources(config, read_checkpoints=True):
    """(layout run's PaletteConfig, image run's SPADEConfig) of an e2e PaletteConfig, checked:
    the layout run's networks are this run's, its checkpoint at the last level, the image run
    of the same classes and size."""
    layout_config, _ = load_layout_source(
        config.layout_run, "--layout_run", read_checkpoint=read_checkpoints
    )
    diffs = [
        f"--{name}={getattr(layout_config, name)} (this run: {getattr(config, name)})"
        for name in LAYOUT_ARCHITECTURE
        if getattr(layout_config, name) != getattr(config, name)
    ]
    if diffs:
        raise SourceRunError(
            f"--layout_run={config.layout_run} has other layout networks than this run; give "
            "its values:\n  " + "\n  ".join(diffs)
        )
    image_config = load_image_source(
        config.image_run, "--image_run", read_checkpoint=read_checkpoints
    )
    check_layout_and_image(
        config, image_config, f"--layout_run={config.layout_run}, --image_run={config.image_run}"
    )
    return layout_config, image_config


def restore_networks(objects, path, flag):
    """Restores {name: trackable} from the newest readable checkpoint of run `path` (every
    object must be found; the rest of the checkpoint is ignored)."""
    try:
        return checkpointing.restore_run_for_inference(objects, path, log=print)
    except (FileNotFoundError, AssertionError, ValueError) as error:
        raise SourceRunError(f"{flag}={path}: cannot restore its networks ({error})") from None


def write_image_config_copy(run_dir, image_config):
    """Keeps the image run's SPADEConfig in an e2e run directory (its SPADE networks)."""
    run_dir_lib.write_json_atomic(os.path.join(run_dir, IMAGE_CONFIG_FILE), image_config.to_dict())


def read_image_config_copy(run_dir):
    """The SPADEConfig of an e2e run's SPADE networks (written at its start)."""
    path = os.path.join(run_dir, IMAGE_CONFIG_FILE)
    try:
        with open(path) as f:
            return SPADEConfig.from_dict(json.load(f), strict=False)
    except (OSError, ValueError) as error:
        raise SourceRunError(f"e2e run {run_dir}: {path} is unreadable ({error})") from None
