"""Datasets of (image, label map) pairs.

- `scenes`: procedural outdoor scenes with ADE20K labels, generated on demand (the default).
- `pairs`: file lists (ADE20K layout or two generic folders) and a thorough file check.
- `pipeline`: tf.data pipelines yielding {"image", "label"} batches.
- `segmentation`: segmentation datasets (ADE20K, Cityscapes, FaceSynthetics, folders, JSON
  pair lists) and their training / evaluation pipelines.
- `documents`: procedural document pages with ink masks (printed / handwritten text), the
  built-in data of the Synthesis-in-Style pipeline; `crops`: pages -> 256 px tiles and JSON
  lists (`python -m datasets.crops`); `images`: unlabelled images for GAN training.
- `cluster_labels`, `synthetic_pairs`: image / mask pairs from a StyleGAN2 generator's annotated
  feature clusters (Synthesis in Style).

Only the light `pairs` module is imported here: `pipeline` pulls in TensorFlow and `scenes`
must not be imported before `python -m datasets.scenes` runs it. Import them by module, e.g.
`from datasets.pipeline import make_train_dataset`.
"""

from __future__ import annotations

import os

from .pairs import (
    DatasetError,
    DatasetNotFoundError,
    ade20k_pairs,
    check_pairs_quick,
    diagnose_pairs,
    folder_pairs,
)

DATASETS = ("scenes", "ade20k", "folders")


def resolve_pairs(
    dataset: str,
    split: str,
    *,
    data_root: str = "data",
    image_dir: str | None = None,
    label_dir: str | None = None,
    val_image_dir: str | None = None,
    val_label_dir: str | None = None,
    scenes_size: int = 256,
    num_scenes: int = 300,
    scenes_seed: int = 0,
) -> list[tuple[str, str]]:
    """The (image, label) file pairs of a dataset split, as chosen by the command-line flags.

    Args:
        dataset: "scenes" (procedural, generated on first use under
            data_root/scenes_<scenes_size>), "ade20k" (data_root is the ADE20K folder or its
            parent) or "folders" (image_dir / label_dir).
        split: "training" or "validation".
        data_root: see `dataset`.
        image_dir, label_dir: training folders of the "folders" dataset.
        val_image_dir, val_label_dir: its validation folders; both None -> no validation
            pairs ([]).
        scenes_size: side of the procedural scenes in pixels.
        num_scenes: training scenes to generate; max(1, num_scenes // 10) validation scenes.
        scenes_seed: seed of the procedural dataset.
    """
    if split not in ("training", "validation"):
        raise ValueError(f"split must be 'training' or 'validation', got {split!r}")
    if dataset == "scenes":
        from .scenes import generate_scenes

        root = generate_scenes(
            os.path.join(data_root, f"scenes_{scenes_size}"),
            num_train=num_scenes,
            num_val=max(1, num_scenes // 10),
            size=scenes_size,
            seed=scenes_seed,
        )
        return ade20k_pairs(root, split)
    if dataset == "ade20k":
        return ade20k_pairs(data_root, split)
    if dataset == "folders":
        if split == "training":
            names = ("--image_dir", "--label_dir")
            dirs = (image_dir, label_dir)
        else:
            names = ("--val_image_dir", "--val_label_dir")
            dirs = (val_image_dir, val_label_dir)
            if dirs == (None, None):
                return []
        missing = [name for name, value in zip(names, dirs) if not value]
        if missing:
            raise ValueError(f"--dataset=folders needs {' and '.join(missing)}")
        return folder_pairs(dirs[0], dirs[1], image_flag=names[0], label_flag=names[1])
    raise ValueError(f"--dataset={dataset!r} is not one of: {', '.join(DATASETS)}")


__all__ = [
    "DATASETS",
    "DatasetError",
    "DatasetNotFoundError",
    "ade20k_pairs",
    "check_pairs_quick",
    "diagnose_pairs",
    "folder_pairs",
    "resolve_pairs",
]
