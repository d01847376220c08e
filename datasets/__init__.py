"""Datasets of (image, label map) pairs.

- `scenes`: procedural outdoor scenes with ADE20K labels, generated on demand (the default);
  `streets`: procedural street scenes with Cityscapes labelIds in the Cityscapes layout (the
  Palette commands' default).
- `celebamask_hq`: CelebAMask-HQ's part masks merged into label maps (cached).
- `pairs`: the file lists of every dataset layout and a thorough file check (files are found
  and matched by stem with core.io); `sources`: the one resolver `resolve_pairs(dataset, split,
  ...)` (scenes, streets, ADE20K, Cityscapes (+ extra), IDD, CelebAMask-HQ, FaceSynthetics,
  folders, JSON pair lists, documents) and `data_source_kwargs(config)`.
- `pipeline`: SPADE's tf.data pipelines yielding {"image", "label"} batches, and the plumbing
  every training stream shares (element index for exact resume, checks, options, flips).
- `segmentation`: label maps (raw values -> train ids) and the SegFormer training / evaluation
  pipelines.
- `documents`: procedural document pages with ink masks (printed / handwritten text), the
  built-in data of the Synthesis-in-Style pipeline; `crops`: pages -> 256 px tiles and JSON
  lists (`python -m tools.crops`); `images`: unlabelled images for GAN training.

Only the light modules (no TensorFlow) are imported here: `pipeline`, `segmentation` and
`images` pull in TensorFlow; import them by module, e.g. `from datasets.pipeline import
make_train_dataset`.
"""

from __future__ import annotations

from .pairs import (
    DATASETS,
    PAIR_DATASETS,
    SEG_DATASETS,
    DatasetError,
    DatasetNotFoundError,
    ade20k_pairs,
    check_pairs_quick,
    diagnose_pairs,
    folder_pairs,
    json_list_pairs,
)
from .sources import data_source_kwargs, resolve_pairs, resolve_seg_pairs

__all__ = [
    "DATASETS",
    "PAIR_DATASETS",
    "SEG_DATASETS",
    "DatasetError",
    "DatasetNotFoundError",
    "ade20k_pairs",
    "check_pairs_quick",
    "data_source_kwargs",
    "diagnose_pairs",
    "folder_pairs",
    "json_list_pairs",
    "resolve_pairs",
    "resolve_seg_pairs",
]
