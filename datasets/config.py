"""Where a run's data comes from: the data part of every family's config.

Every data field is read by some sources only (SOURCE_FIELDS): --num_scenes means nothing to
--dataset=folders. flags.py refuses a data flag given on the command line that the resolved
source does not read, and picks the source from the flags when --dataset is not given
(--image_dir with --label_dir: folders), so no data flag is ever silently ignored.
"""

import dataclasses
from typing import ClassVar

from core.config import Config, ConfigError, field
from datasets.pairs import PAIR_DATASETS

# Every data source: the labelled-pair sources of datasets.sources, and unlabelled images.
DATASETS = (*PAIR_DATASETS, "images")

# The data fields each source reads besides `dataset` (and the label set, which every
# labelled source reads). prob_dataset goes with the sources datasets.sources.resolve_pairs
# lists (the labelled pairs); a family that reads a source its own way overrides
# DataConfig.data_fields_read.
_PAIRS = ("prob_dataset",)
SOURCE_FIELDS = {
    "scenes": ("data_root", "num_scenes", "scenes_size", *_PAIRS),
    "ade20k": ("data_root", *_PAIRS),
    "folders": ("image_dir", "label_dir", "val_image_dir", "val_label_dir", *_PAIRS),
    "facesynthetics": ("data_root", *_PAIRS),
    "cityscapes": ("data_root", "load_extra", *_PAIRS),
    "json": ("train_list", "val_list", *_PAIRS),
    "documents": ("data_root", "num_pages", "num_crops", *_PAIRS),
    "streets": ("data_root", "num_streets", "streets_height", "streets_width", *_PAIRS),
    "idd": ("data_root", *_PAIRS),
    "celebamask_hq": ("data_root", *_PAIRS),
    "images": ("image_dir", "val_image_dir", "train_list", "val_list"),
}
# Data fields that every source reads (or that choose the source).
COMMON_DATA_FIELDS = ("dataset", "semantic_label_path")
# The value of semantic_label_path that asks for the label values to be found by scanning the
# training label maps (semantic_labels.label_values); flags.py sets it for a folder dataset
# without a label set when the family's config has `discovers_label_values`.
DISCOVER = "discover"


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataConfig(Config):
    """The data source of a run (which sources a family reads, its config says)."""

    dataset: str = field("scenes", "Data source (see flags.py --dataset).", choices=DATASETS)
    train_list: str = field(None, "JSON list of training pairs (json) or image paths (images).")
    val_list: str = field(None, "JSON list of validation pairs or image paths.")
    data_root: str = field("data", "Where built-in data is generated / a dataset folder.")
    image_dir: str = field(None, "Images of --dataset=folders / images.")
    label_dir: str = field(None, "Label maps of --dataset=folders.")
    val_image_dir: str = field(None, "Validation images of --dataset=folders.")
    val_label_dir: str = field(None, "Validation label maps of --dataset=folders.")
    semantic_label_path: str = field("ade20k", "Label set: a built-in name or a JSON file.")
    num_scenes: int = field(300, "Training scenes to generate for --dataset=scenes.")
    scenes_size: int = field(256, "Resolution of the generated scenes (px).")
    streets_height: int = field(128, "Height of the generated streets (px).")
    streets_width: int = field(256, "Width of the generated streets (px).")
    num_streets: int = field(300, "Training streets to generate for --dataset=streets.")
    load_extra: bool = field(
        False, "dataset=cityscapes: add the extra coarse images (extraFine labels) to training."
    )
    num_pages: int = field(40, "Training pages to generate for --dataset=documents.")
    num_crops: int = field(4000, "Crops cut from the pages for --dataset=documents.")
    prob_dataset: float = field(
        1.0,
        "Fraction of the training pairs used (the SPADE TF port's --prob_dataset): a fixed "
        "random subset, the same in every run.",
    )

    # A family whose task reads label values from a .txt file or finds them by scanning the
    # label maps (semantic_label_path=discover) sets this True (models/spade/config.py).
    discovers_label_values: ClassVar[bool] = False

    def data_fields_read(self) -> frozenset:
        """The data fields this config's source reads (SOURCE_FIELDS, and the common ones).

        Families that read a source their own way (e.g. StyleGAN2's unlabelled images)
        override it, so that flags.py refuses exactly the flags that change nothing.
        """
        return frozenset(SOURCE_FIELDS.get(self.dataset, ())) | frozenset(COMMON_DATA_FIELDS)

    def validate(self):
        super().validate()
        if not 0.0 < self.prob_dataset <= 1.0:
            raise ConfigError(
                f"prob_dataset={self.prob_dataset} must lie in (0, 1] (a fraction of the "
                "training pairs)",
                ("prob_dataset",),
            )
        if self.dataset == "folders" and not (self.image_dir and self.label_dir):
            raise ConfigError(
                "dataset=folders needs image_dir and label_dir",
                ("dataset", "image_dir", "label_dir"),
            )
        if self.dataset == "json" and not self.train_list:
            raise ConfigError("dataset=json needs train_list", ("dataset", "train_list"))
        if self.load_extra and self.dataset != "cityscapes":
            raise ConfigError(
                f"load_extra applies to dataset=cityscapes, not dataset={self.dataset}",
                ("load_extra", "dataset"),
            )
        self.check_positive("num_streets")
        for name in ("streets_height", "streets_width"):
            if getattr(self, name) < 16:
                raise ConfigError(f"{name} must be >= 16, got {getattr(self, name)}", (name,))
