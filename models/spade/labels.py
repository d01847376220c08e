"""The classes SPADE is conditioned on: its label set, the one-hot channels and, for data
whose files store other values, the raw-value -> channel table.

Label sets without an ignore value (ADE20K, the scenes, the documents) are read as they are:
file value = channel, num_classes = the set's. A label set with an ignore value (Cityscapes:
the void labelIds and 255) gets one extra channel for the ignored pixels, the last one
("don't care", NVIDIA SPADE's contain_dontcare_label): SPADE must be told something for every
pixel. Cityscapes and the built-in streets store labelIds, which the table maps to the 19 train
ids first; other data (folders) store the ids themselves, 255 = ignore.
"""

from __future__ import annotations

import numpy as np

from models.spade.config import LABEL_ID_DATASETS
from semantic_labels import load_label_set

IGNORE = 255


def resolve_spade_labels(config):
    """(label set, label map or None, num_classes) of a SPADE config.

    Returns:
        label_set: for names and colours (its num_classes may be one less than SPADE's).
        label_map: None (files store channel ids) or a [256] int32 table raw file value ->
            channel id, -1 for values of no class (an error naming the file in tf.data).
        num_classes: SPADE's one-hot channels (label set classes, + 1 "don't care" with an
            ignore value).
    """
    label_set = load_label_set(config.semantic_label_path)
    if label_set.ignore_index is None:
        return label_set, None, label_set.num_classes
    from datasets import segmentation as seg_data  # TensorFlow: only for these label sets

    dontcare = label_set.num_classes
    if config.dataset in LABEL_ID_DATASETS:
        table = seg_data.label_map_from_label_set(label_set)  # labelIds -> train ids / 255
    else:
        table = seg_data.identity_label_map(label_set.num_classes)
    table = np.where(table == IGNORE, dontcare, table).astype(np.int32)
    return label_set, table, dontcare + 1


def num_spade_classes(config) -> int:
    """SPADE's one-hot channels for a config (see resolve_spade_labels), without TensorFlow."""
    label_set = load_label_set(config.semantic_label_path)
    return label_set.num_classes + (label_set.ignore_index is not None)


def colorize(label_set, label):
    """Colours of a [H, W] map of SPADE channel ids; the "don't care" channel is black."""
    label = np.asarray(label)
    known = np.minimum(label, label_set.num_classes - 1)
    return np.where(
        (label >= label_set.num_classes)[..., None], np.uint8(0), label_set.colorize(known)
    )
