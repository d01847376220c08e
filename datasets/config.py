"""Where a run's data comes from: the data part of every family's config."""

import dataclasses

from core.config import Config, ConfigError, field
from datasets.pairs import PAIR_DATASETS

# Every data source: the labelled-pair sources of datasets.sources, and unlabelled images.
DATASETS = (*PAIR_DATASETS, "images")


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

    def validate(self):
        super().validate()
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
