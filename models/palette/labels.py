"""The label set of a palette run's layouts, and the table from file values to train ids."""

from datasets import segmentation
from models.palette.config import CITYSCAPES_LABEL_DATASETS
from semantic_labels import load_label_set


def layout_label_set(config):
    """(LabelSet, [256] label map: raw file value -> train id) of a PaletteConfig's layouts.

    Cityscapes-layout sources store labelIds (-> the 19 train ids, void -> 255); folders and
    JSON lists store train ids of --semantic_label_path directly (255 = ignore).
    """
    if config.dataset in CITYSCAPES_LABEL_DATASETS:
        label_set = load_label_set("cityscapes")
        return label_set, segmentation.label_map_from_label_set(label_set)
    label_set = load_label_set(config.semantic_label_path)
    return label_set, segmentation.identity_label_map(label_set.num_classes)
