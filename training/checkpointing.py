"""Checkpoint contents that do not depend on how a network stores its sub-layers.

tf.train.Checkpoint follows TF's object graph, but Keras 3 layers held in Python lists are not
part of it (their variables would silently be left out of a checkpoint, or only reachable through
an optimizer's references). We therefore checkpoint every network as a flat bundle of its
variables keyed by their position in `model.variables` (an order fixed by the architecture)
and their short name, e.g. "v00012_kernel". Keras paths are not usable as keys: auto-generated
layer names ("seg_former_3/...") depend on how many models the process built before.
Restoring checks every shape, and callers assert that every variable was found.

Every reader of a run's checkpoints (training resume, the inference loaders) restores through
`restore_newest_readable`: a damaged newest checkpoint is named and the next older one used.
Training writes through `save_checkpoint` (a full disk is a clear error, no half-written files
left) and removes the ckpt-N_temp/ folders of killed saves at start
(`remove_stale_temp_folders`).
"""

import errno
import os
import re
import shutil

import tensorflow as tf

from core.errors import UserError


def variable_bundle(model):
    """A trackable holding each of `model`'s variables under its position and name."""
    bundle = tf.Module(name=None)
    # tf.Module tracks attributes; a dict attribute is tracked key by key.
    bundle.variables_by_position = {
        f"v{i:05d}_{variable.name}": variable for i, variable in enumerate(model.variables)
    }
    return bundle


# ==============================================================================================
# Finding, restoring and writing checkpoints safely
# ==============================================================================================

_CHECKPOINT_INDEX = re.compile(r"^ckpt-(\d+)\.index$")
_TEMP_FOLDER = re.compile(r"^ckpt-\d+_temp$")


class CheckpointError(UserError):
    """No checkpoint of a run can be read, or one cannot be written; the message names it."""


def checkpoint_prefixes(ckpt_dir):
    """The checkpoints in ckpt_dir ("<ckpt_dir>/ckpt-N"), newest (highest N) first.

    Every ckpt-N.index file counts, not only those the `checkpoint` state file lists, so a
    moved run directory or a state file that names a damaged checkpoint still finds the rest.
    """
    if not os.path.isdir(ckpt_dir):
        return []
    numbers = sorted(
        (int(m.group(1)) for m in map(_CHECKPOINT_INDEX.match, os.listdir(ckpt_dir)) if m),
        reverse=True,
    )
    return [os.path.join(ckpt_dir, f"ckpt-{n}") for n in numbers]


def _first_line(error):
    text = getattr(error, "message", None) or str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def restore_run_for_inference(objects, checkpoint_dir, *, every_network=True, log=print):
    """Restores a run directory's newest readable checkpoint into `objects`, for inference.

    The optimizers' state is not needed; with every_network, each variable of `objects` must
    be found in the checkpoint (a run of another configuration fails loudly).

    Args:
        objects: {name: trackable}, a model's checkpoint_objects() (built for inference).
        checkpoint_dir: the run directory (its checkpoints/ folder is read).
        every_network: assert that every object of `objects` was restored.
        log: where the one-line fallback notice goes (see restore_newest_readable).

    Returns:
        The restored prefix ("<checkpoint_dir>/checkpoints/ckpt-N").

    Raises:
        FileNotFoundError: the run has no checkpoint yet.
        CheckpointError: checkpoints exist but none can be read.
    """

    def check(status):
        if every_network:
            status = status.assert_existing_objects_matched()
        return status.expect_partial()

    latest = restore_newest_readable(
        tf.train.Checkpoint(**objects),
        os.path.join(checkpoint_dir, "checkpoints"),
        where=f"--checkpoint_dir={checkpoint_dir}",
        check=check,
        log=log,
    )
    if latest is None:
        raise FileNotFoundError(f"--checkpoint_dir={checkpoint_dir} has no checkpoint yet")
    return latest


def restore_newest_readable(checkpoint, ckpt_dir, *, where, check=None, log=print):
    """Restores the newest checkpoint of ckpt_dir that can be read; falls back past bad ones.

    A damaged ckpt-N.index, or garbage ckpt-N.* files, are named in one line and the next
    older checkpoint is tried; a checkpoint that reads but does not fit the model (`check`
    fails) is an error of the caller, not skipped.

    Args:
        checkpoint: the tf.train.Checkpoint to restore into.
        ckpt_dir: the folder of ckpt-N.index / ckpt-N.data-* files.
        where: how messages name the run, e.g. "--checkpoint_dir=runs/x".
        check: status -> anything, e.g. lambda s: s.assert_existing_objects_matched().
        log: where the one-line fallback notice goes.

    Returns:
        The restored prefix ("<ckpt_dir>/ckpt-N"), or None when ckpt_dir holds no checkpoint.

    Raises:
        CheckpointError: checkpoints exist but none can be read (naming the folder).
    """
    prefixes = checkpoint_prefixes(ckpt_dir)
    bad = []
    for prefix in prefixes:
        try:
            tf.train.load_checkpoint(prefix)  # reads the index: a damaged one fails here
        except (tf.errors.OpError, ValueError) as error:
            bad.append(f"{prefix}.index ({_first_line(error)})")
            continue
        try:
            status = checkpoint.restore(prefix)
            if check is not None:
                check(status)
        except (tf.errors.OpError, ValueError) as error:
            bad.append(f"{prefix}.data-* ({_first_line(error)})")
            continue
        if bad:
            log(
                f"Warning: unreadable checkpoint(s) skipped: {'; '.join(bad)}. Using the newest "
                f"readable one, {prefix}"
            )
        return prefix
    if bad:
        raise CheckpointError(
            f"{where}: no readable checkpoint in {ckpt_dir}: {'; '.join(bad)}. Restore the "
            "files from a backup, or move them away to start from scratch"
        )
    return None


def remove_stale_temp_folders(ckpt_dir, log=print):
    """Removes ckpt-N_temp/ folders: the half-written shards of a save that was killed."""
    if not os.path.isdir(ckpt_dir):
        return []
    removed = []
    for name in sorted(os.listdir(ckpt_dir)):
        path = os.path.join(ckpt_dir, name)
        if _TEMP_FOLDER.match(name) and os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    if removed:
        log(f"Removed the temporary folder(s) of a killed checkpoint save: {', '.join(removed)}")
    return removed


def _is_disk_full(error):
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    text = getattr(error, "message", "") or str(error)
    return "No space left on device" in text or "Disk quota exceeded" in text


def _checkpoint_bytes(prefix):
    return sum(os.path.getsize(path) for path in tf.io.gfile.glob(prefix + ".*"))


def save_checkpoint(manager, step):
    """manager.save(checkpoint_number=step); a full disk is a clear error, and a failed save
    leaves no ckpt-N_temp/ folder and no partial ckpt-N files behind (older ones untouched).

    Returns:
        The prefix written.

    Raises:
        CheckpointError: the disk (or quota) is full; names the path and the bytes needed
            (the size of the previous checkpoint) when known.
    """
    ckpt_dir = manager.directory
    prefix = os.path.join(ckpt_dir, f"ckpt-{step}")
    before = set(os.listdir(ckpt_dir)) if os.path.isdir(ckpt_dir) else set()
    try:
        return manager.save(checkpoint_number=step)
    except (OSError, tf.errors.OpError) as error:
        if not _is_disk_full(error):
            raise
        after = set(os.listdir(ckpt_dir)) if os.path.isdir(ckpt_dir) else set()
        for name in sorted(after - before):
            if name.startswith(f"ckpt-{step}.") or name == f"ckpt-{step}_temp":
                path = os.path.join(ckpt_dir, name)
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.remove(path)
        previous = [p for p in checkpoint_prefixes(ckpt_dir) if p != prefix]
        needed = (
            f" (about {_checkpoint_bytes(previous[0]):,} bytes needed: the size of "
            f"{os.path.basename(previous[0])})"
            if previous
            else ""
        )
        kept = f"; the earlier checkpoints in {ckpt_dir} are intact" if previous else ""
        raise CheckpointError(
            f"cannot write the checkpoint {prefix}: no space left on device{needed}{kept}. "
            "Free some space and run the same command again to resume"
        ) from None
