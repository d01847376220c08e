"""The classes SPADE is conditioned on: its label set, the one-hot channels and, for data
whose files store other values, the raw-value -> channel table.

Label sets without an ignore value (ADE20K, the scenes, the documents) are read as they are:
file value = channel, num_classes = the set's. A label set with an ignore value (Cityscapes:
the void labelIds and 255) gets one extra channel for the ignored pixels, the last one
("don't care", NVIDIA SPADE's contain_dontcare_label): SPADE must be told something for every
pixel. Cityscapes and the built-in streets store labelIds, which the table maps to the 19 train
ids first; other data (folders) store the ids themselves, 255 = ignore.

Label values (the SPADE TF port's semantic_labels.txt, semantic_labels/label_values.py): the
k-th listed value is channel k (masks of 0 / 255 become channels 0 / 1), every other value is
an error naming the file. They come from a `.txt` --semantic_label_path, or, with
semantic_label_path=discover (the default of --dataset=folders without a label set), from
scanning the training and validation label maps. Either way the run keeps them as
<checkpoint_dir>/semantic_labels.txt (LABEL_VALUES_FILE): a resumed run, test_one.py,
synthesize.py and the export (its meta "label_values") use that copy, so the mapping at
inference is the one the run trained with.
"""

from __future__ import annotations

import os

import numpy as np

from core.errors import UserError
from datasets.config import DISCOVER
from models.spade.config import LABEL_ID_DATASETS
from semantic_labels import label_set_from_values, load_label_set, load_label_values_set
from semantic_labels import label_values as values_lib

IGNORE = 255
LABEL_VALUES_FILE = "semantic_labels.txt"


class LabelValuesError(UserError):
    """The label values of a run cannot be found, or contradict the run's."""


def uses_label_values(config) -> bool:
    """True when the config's classes are label values (a .txt file, or discovered)."""
    path = config.semantic_label_path
    return path == DISCOVER or values_lib.is_label_values_path(path)


def run_label_values_path(config, run_dir=None) -> str:
    """<run dir>/semantic_labels.txt (run_dir: where the run is now; default the config's)."""
    return os.path.join(run_dir or config.checkpoint_dir, LABEL_VALUES_FILE)


def spade_label_set(config, *, label_paths=None, run_dir=None, log=print):
    """The label set of a SPADE config.

    Args:
        config: a SPADEConfig.
        label_paths: the label maps of the run's data (training and validation); needed only
            when the values must be discovered (semantic_label_path=discover, or a .txt path
            that does not exist yet, which the port fills by scanning: so do we).
        run_dir: where the run directory is now (default config.checkpoint_dir).
        log: where the discovered values are reported.

    Raises:
        LabelValuesError: the values cannot be found (no run copy, nothing to scan), or the
            given .txt file lists other values than the run's copy.
    """
    path = config.semantic_label_path
    if not uses_label_values(config):
        return load_label_set(path)
    run_copy = run_label_values_path(config, run_dir)
    given_exists = path != DISCOVER and os.path.exists(path)
    if os.path.exists(run_copy):
        stored = load_label_values_set(run_copy)
        if given_exists and label_paths is not None:  # training: the user's file must agree
            given = values_lib.read_label_values(path)
            if given != stored.source_ids:
                raise LabelValuesError(
                    f"--semantic_label_path={path} lists the values "
                    f"{_values_text(given)}, but the run in {os.path.dirname(run_copy)} "
                    f"trained with {_values_text(stored.source_ids)} ({run_copy}); use a new "
                    "--checkpoint_dir for other classes"
                )
        return stored
    if given_exists:
        return load_label_values_set(path)
    if label_paths is None:
        raise LabelValuesError(
            f"the run's label values are missing: {run_copy} does not exist"
            + (f" and neither does --semantic_label_path={path}" if path != DISCOVER else "")
        )
    from datasets.label_values import discover_label_values

    values = discover_label_values(label_paths)
    if len(values) < 2:
        log(f"Note: the label maps hold one value only ({values[0]}): SPADE sees one class")
    log(
        f"Label values found in {len(label_paths)} label maps: {_values_text(values)} -> "
        f"classes 0..{len(values) - 1} (kept in {run_copy})"
    )
    if path != DISCOVER:  # the port writes the file it was asked to read
        values_lib.write_label_values(path, values)
        log(f"Wrote the label values to --semantic_label_path={path}")
    return label_set_from_values(values, "discovered")


def save_run_label_values(config, label_set, run_dir=None):
    """Keeps a label-values set as <run dir>/semantic_labels.txt (no-op for other sets)."""
    if label_set.source_ids is None or not uses_label_values(config):
        return None
    path = run_label_values_path(config, run_dir)
    if os.path.exists(path) and values_lib.read_label_values(path) == label_set.source_ids:
        return path
    return values_lib.write_label_values(path, label_set.source_ids)


def label_values_of(config, label_set):
    """The raw values of a label-values set (class k = values[k]), or None."""
    return label_set.source_ids if uses_label_values(config) else None


def resolve_spade_labels(config, *, label_paths=None, run_dir=None, log=print):
    """(label set, label map or None, num_classes) of a SPADE config.

    Args:
        config, label_paths, run_dir, log: as in spade_label_set.

    Returns:
        label_set: for names and colours (its num_classes may be one less than SPADE's).
        label_map: None (files store channel ids) or a [256] int32 table raw file value ->
            channel id, -1 for values of no class (an error naming the file in tf.data).
        num_classes: SPADE's one-hot channels (label set classes, + 1 "don't care" with an
            ignore value).
    """
    label_set = spade_label_set(config, label_paths=label_paths, run_dir=run_dir, log=log)
    return (label_set, *spade_label_table(config, label_set))


def spade_label_table(config, label_set):
    """(label map or None, num_classes) of a config's label set (see resolve_spade_labels)."""
    if uses_label_values(config):
        return values_lib.value_table(label_set.source_ids), label_set.num_classes
    if label_set.ignore_index is None:
        return None, label_set.num_classes
    from datasets import segmentation as seg_data  # TensorFlow: only for these label sets

    dontcare = label_set.num_classes
    if config.dataset in LABEL_ID_DATASETS:
        table = seg_data.label_map_from_label_set(label_set)  # labelIds -> train ids / 255
    else:
        table = seg_data.identity_label_map(label_set.num_classes)
    table = np.where(table == IGNORE, dontcare, table).astype(np.int32)
    return table, dontcare + 1


def num_spade_classes(config, *, run_dir=None, label_paths=None) -> int:
    """SPADE's one-hot channels for a config (see resolve_spade_labels), without TensorFlow.

    Discovered label values come from the run's copy; without one (a --dry_run before the
    first training) the training and validation label maps are scanned.
    """
    if uses_label_values(config):
        if label_paths is None and not _values_known(config, run_dir):
            label_paths = data_label_paths(config)
        label_set = spade_label_set(
            config, label_paths=label_paths, run_dir=run_dir, log=lambda *_: None
        )
        return label_set.num_classes
    label_set = load_label_set(config.semantic_label_path)
    return label_set.num_classes + (label_set.ignore_index is not None)


def _values_known(config, run_dir):
    path = config.semantic_label_path
    return os.path.exists(run_label_values_path(config, run_dir)) or (
        path != DISCOVER and os.path.exists(path)
    )


def data_label_paths(config):
    """The label maps of a config's training and validation pairs (for discovery)."""
    import datasets
    from datasets.sources import data_source_kwargs
    from models.spade.config import SPADE_DATASETS

    kwargs = dict(data_source_kwargs(config), choices=SPADE_DATASETS)
    pairs = datasets.resolve_pairs(config.dataset, "training", **kwargs)
    pairs += datasets.resolve_pairs(config.dataset, "validation", **kwargs)
    return [label for _, label in pairs]


def colorize(label_set, label):
    """Colours of a [H, W] map of SPADE channel ids; the "don't care" channel is black."""
    label = np.asarray(label)
    known = np.minimum(label, label_set.num_classes - 1)
    return np.where(
        (label >= label_set.num_classes)[..., None], np.uint8(0), label_set.colorize(known)
    )


def _values_text(values):
    return ", ".join(map(str, values))
