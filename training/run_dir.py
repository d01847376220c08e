"""The run directory: resolved config, checkpoints, TensorBoard logs, samples, export.

<checkpoint_dir>/
    config.json      the resolved config of the run (written once, checked on resume)
    checkpoints/     tf.train.CheckpointManager files (the newest K)
    logs/            TensorBoard events
    samples/         sample grids as PNG (label colours | real | synthesized)
    export/          the SavedModel written at the end of training (or by export on demand)
"""

import dataclasses
import json
import os

from core import io as core_io
from core.errors import UserError

CONFIG_FILE = "config.json"


class RunDirError(UserError):
    """The run directory cannot be used with this config."""


def prepare_run_dir(config):
    """Creates the run directory or checks that an existing one belongs to `config`.

    Args:
        config: the run's typed config (a core.config.Config with checkpoint_dir). Fields marked
            resumable (how long or how visibly we train) may differ from the stored config; any
            other difference is an error naming the fields, because resuming would mix two
            configurations.

    Returns:
        True when the directory already held a run (training resumes), False for a new run.
    """
    run_dir = config.checkpoint_dir
    path = os.path.join(run_dir, CONFIG_FILE)
    if os.path.exists(path):
        try:
            with open(path) as f:
                stored = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise RunDirError(f"{path} is unreadable ({e}); use another --checkpoint_dir") from e
        current = config.to_dict()
        resumable = config.resumable_fields()
        # A setting added to the config after the run was made is stored as nothing: the run
        # used its default (e.g. aspect_ratio 1.0 before non-square SPADE existed).
        defaults = {
            f.name: f.default
            for f in dataclasses.fields(config)
            if f.default is not dataclasses.MISSING
        }
        stored = {**json.loads(json.dumps(defaults)), **stored}
        diffs = [
            f"--{key}: {stored.get(key)!r} in the run, {current.get(key)!r} now"
            for key in sorted(current)
            if key not in resumable and stored.get(key) != current.get(key)
        ]
        if diffs:
            raise RunDirError(
                f"--checkpoint_dir={run_dir} holds a run of another config; resuming would mix "
                "them. Use a new --checkpoint_dir, or give the run's values:\n  "
                + "\n  ".join(diffs)
            )
        return True
    if os.path.isdir(os.path.join(run_dir, "checkpoints")) and os.listdir(
        os.path.join(run_dir, "checkpoints")
    ):
        raise RunDirError(
            f"--checkpoint_dir={run_dir} has checkpoints but no {CONFIG_FILE}; refusing to "
            "guess its config. Use a new --checkpoint_dir."
        )
    os.makedirs(run_dir, exist_ok=True)
    write_json_atomic(path, config.to_dict())
    return False


def load_run_config(run_dir, config_class=None):
    """Reads <run_dir>/config.json with a clear error when it is missing.

    Args:
        run_dir: the run directory.
        config_class: the family's typed config class; None returns the plain dict.
    """
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"--checkpoint_dir={run_dir} is not a run directory of train.py (no {CONFIG_FILE})"
        )
    with open(path) as f:
        values = json.load(f)
    if config_class is None:
        return values
    # Runs of older versions stored every flag; the fields of this family are what counts.
    return config_class.from_dict(values, strict=False)


def write_json_atomic(path, obj):
    """Writes JSON through a temporary file so an interrupted write never leaves half a file."""
    core_io.write_json_atomic(path, obj, indent=2, sort_keys=True)


def write_saved_model(archive, path, json_files=None):
    """Writes a keras.export.ExportArchive to `path` through a temporary folder, then replaces
    `path` in one rename, so an interrupted export never leaves half a SavedModel.

    Args:
        archive: the ExportArchive with its endpoints.
        path: the SavedModel folder (an existing one is replaced).
        json_files: optional {file name: JSON-serialisable object} written into the folder
            beside the SavedModel (e.g. the label map a segmenter needs).
    """
    with core_io.atomic_directory(path) as tmp:
        archive.write_out(tmp, verbose=False)
        for name, obj in (json_files or {}).items():
            with open(os.path.join(tmp, name), "w") as f:
                json.dump(obj, f)
    return path
