"""The classes a SegFormer run predicts: its label set, the raw-value -> train-id table of
its dataset and the number of classes, and the label-set file stored with runs and exports."""

import os

from datasets import segmentation as seg_data
from semantic_labels import load_label_set

LABEL_SET_FILE = "label_set.json"


def label_set_json(label_set):
    """A label set in the one JSON format of semantic_labels/ (ids 0..K-1)."""
    return {
        "name": label_set.name,
        "classes": [
            {"id": i, "name": name, "color": [int(c) for c in color]}
            for i, (name, color) in enumerate(zip(label_set.names, label_set.colors))
        ],
    }


def resolve_labels(config):
    """(label set for names / colours, raw->train-id table, num_classes) of a config."""
    dataset = config.dataset
    if dataset == "scenes":  # the built-in scenes are stored in the ADE20K layout
        dataset = "ade20k"
    if dataset == "documents":  # the built-in pages: masks hold the documents label set's ids
        label_set = load_label_set("documents")
        label_map, num_classes = seg_data.dataset_label_map("folders", label_set.num_classes)
        return label_set, label_map, num_classes
    label_set = seg_data.dataset_label_set(dataset)
    if label_set is None:  # folders / json: train ids stored directly
        label_set = load_label_set(config.semantic_label_path)
        num_classes = config.num_classes or label_set.num_classes
        label_map, num_classes = seg_data.dataset_label_map(dataset, num_classes)
        return label_set, label_map, num_classes
    label_map, num_classes = seg_data.dataset_label_map(dataset, config.num_classes)
    return label_set, label_map, num_classes


def label_set_path(config, label_set):
    """The run's stored label-set JSON when it exists, else the built-in set's name."""
    path = os.path.join(config.checkpoint_dir, LABEL_SET_FILE)
    return path if os.path.exists(path) else label_set.name
