"""The one resolver of a dataset split: data source -> (image, label) file pairs.

It reads every source the project knows (datasets.pairs lists the files of each layout; the
procedural scenes, streets and document pages are generated on first use, CelebAMask-HQ's
part masks merged on first use), so the SPADE, SegFormer and evaluation code resolve their data
in one place; `data_source_kwargs(config)` gives resolve_pairs the fields of a DataConfig.
"""

from __future__ import annotations

import os

import numpy as np

from .celebamask_hq import celebamask_hq_pairs
from .documents import document_pairs
from .pairs import (
    PAIR_DATASETS,
    SEG_DATASETS,
    SPLITS,
    DatasetError,
    ade20k_pairs,
    cityscapes_extra_pairs,
    cityscapes_pairs,
    facesynthetics_pairs,
    folder_pairs,
    idd_pairs,
    json_list_pairs,
)
from .scenes import generate_scenes
from .streets import generate_streets

# ------------------------------------------------------------------------------------------
# The one resolver: data source -> (image, label) pairs of a split
# ------------------------------------------------------------------------------------------


def resolve_pairs(
    dataset: str,
    split: str,
    *,
    data_root: str = "data",
    image_dir: str | None = None,
    label_dir: str | None = None,
    val_image_dir: str | None = None,
    val_label_dir: str | None = None,
    train_list: str | None = None,
    val_list: str | None = None,
    split_seed: int = 0,
    scenes_size: int = 256,
    num_scenes: int = 300,
    scenes_seed: int = 0,
    streets_height: int = 128,
    streets_width: int = 256,
    num_streets: int = 300,
    streets_seed: int = 0,
    load_extra: bool = False,
    document_pages: str | None = None,
    prob_dataset: float = 1.0,
    choices: tuple[str, ...] = PAIR_DATASETS,
) -> list[tuple[str, str]]:
    """The (image, label) file pairs of a dataset split, as chosen by the command-line flags.

    Args:
        dataset: one of `choices` (a subset of PAIR_DATASETS):
            "scenes": procedural, generated on first use under data_root/scenes_<scenes_size>;
            "streets": procedural streets in the Cityscapes layout (labelIds), generated on
                first use under data_root/streets_<streets_height>x<streets_width>;
            "ade20k", "cityscapes", "idd", "facesynthetics": read from data_root;
            "celebamask_hq": read from data_root, its part masks merged (and cached) on
                first use (datasets.celebamask_hq);
            "folders": image_dir / label_dir (val_image_dir / val_label_dir);
            "json": JSON pair lists train_list / val_list (see `json_list_pairs`);
            "documents": the generated pages in document_pages (datasets.documents).
        split: "training" or "validation".
        data_root: see `dataset`.
        image_dir, label_dir: training folders of "folders".
        val_image_dir, val_label_dir: its validation folders; both None -> no validation
            pairs ([]).
        train_list, val_list: pair lists of "json"; val_list None -> [] for validation.
        split_seed: seed of the FaceSynthetics (single folder) and CelebAMask-HQ 90/10 split.
        scenes_size: side of the procedural scenes in pixels.
        num_scenes: training scenes to generate; max(1, num_scenes // 10) validation scenes.
        scenes_seed: seed of the procedural dataset.
        streets_height, streets_width: size of the procedural streets in pixels.
        num_streets: training streets to generate; max(1, num_streets // 10) validation ones.
        streets_seed: seed of the procedural streets.
        load_extra: "cityscapes" training split only: add the extra coarse images with their
            extraFine labels (Cityscapes-25k, `cityscapes_extra_pairs`).
        document_pages: root of the generated document pages of "documents".
        prob_dataset: the fraction of the training pairs kept (`subset_pairs`); validation
            pairs are all kept.
        choices: the datasets the caller accepts; another `dataset` raises naming them.

    Raises:
        DatasetError (a ValueError): an unknown dataset or split, or a missing flag, named.
    """
    if split not in SPLITS:
        raise DatasetError(f"split must be one of {list(SPLITS)}, got {split!r}")
    pairs = _resolve_all_pairs(
        dataset,
        split,
        data_root=data_root,
        image_dir=image_dir,
        label_dir=label_dir,
        val_image_dir=val_image_dir,
        val_label_dir=val_label_dir,
        train_list=train_list,
        val_list=val_list,
        split_seed=split_seed,
        scenes_size=scenes_size,
        num_scenes=num_scenes,
        scenes_seed=scenes_seed,
        streets_height=streets_height,
        streets_width=streets_width,
        num_streets=num_streets,
        streets_seed=streets_seed,
        load_extra=load_extra,
        document_pages=document_pages,
        choices=choices,
    )
    return subset_pairs(pairs, prob_dataset) if split == "training" else pairs


def subset_pairs(pairs: list, fraction: float) -> list:
    """A fixed random `fraction` of `pairs` (at least one), in their original order.

    The SPADE TF port's --prob_dataset. The subset depends on the number of pairs alone (a
    fixed seed), so a resumed run trains on the same pairs; a larger fraction keeps every pair
    of a smaller one.

    Example: subset_pairs(pairs, 0.5) keeps round(len(pairs) / 2) of them.
    """
    if not 0.0 < fraction <= 1.0:
        raise DatasetError(f"--prob_dataset={fraction} must lie in (0, 1]")
    if fraction == 1.0 or not pairs:
        return list(pairs)
    keep = max(1, int(round(fraction * len(pairs))))
    # One fixed permutation: its first `keep` indices, so fractions nest.
    order = np.random.default_rng(0).permutation(len(pairs))
    return [pairs[i] for i in sorted(order[:keep])]


def _resolve_all_pairs(
    dataset,
    split,
    *,
    data_root,
    image_dir,
    label_dir,
    val_image_dir,
    val_label_dir,
    train_list,
    val_list,
    split_seed,
    scenes_size,
    num_scenes,
    scenes_seed,
    streets_height,
    streets_width,
    num_streets,
    streets_seed,
    load_extra,
    document_pages,
    choices,
):
    """resolve_pairs before --prob_dataset: every pair of the split."""
    if dataset not in choices or dataset not in PAIR_DATASETS:
        raise DatasetError(f"--dataset={dataset!r} is not one of: {', '.join(choices)}")
    if dataset == "scenes":
        root = generate_scenes(
            os.path.join(data_root, f"scenes_{scenes_size}"),
            num_train=num_scenes,
            num_val=max(1, num_scenes // 10),
            size=scenes_size,
            seed=scenes_seed,
        )
        return ade20k_pairs(root, split)
    if load_extra and dataset != "cityscapes":
        raise DatasetError(f"--load_extra applies to --dataset=cityscapes, not {dataset!r}")
    if dataset == "streets":
        root = generate_streets(
            os.path.join(data_root, f"streets_{streets_height}x{streets_width}"),
            num_train=num_streets,
            num_val=max(1, num_streets // 10),
            height=streets_height,
            width=streets_width,
            seed=streets_seed,
        )
        return cityscapes_pairs(root, split)
    if dataset == "ade20k":
        return ade20k_pairs(data_root, split)
    if dataset == "cityscapes":
        pairs = cityscapes_pairs(data_root, split)
        if load_extra and split == "training":
            pairs += cityscapes_extra_pairs(data_root)
        return pairs
    if dataset == "idd":
        return idd_pairs(data_root, split)
    if dataset == "celebamask_hq":
        return celebamask_hq_pairs(data_root, split, seed=split_seed)
    if dataset == "facesynthetics":
        return facesynthetics_pairs(data_root, split, seed=split_seed)
    if dataset == "documents":
        return document_pairs(document_pages, split)
    training = split == "training"
    if dataset == "json":
        if not training:
            return json_list_pairs(val_list, flag="--val_list") if val_list else []
        if not train_list:
            raise DatasetError("--dataset=json needs --train_list")
        return json_list_pairs(train_list, flag="--train_list")
    # "folders"
    names = ("--image_dir", "--label_dir") if training else ("--val_image_dir", "--val_label_dir")
    dirs = (image_dir, label_dir) if training else (val_image_dir, val_label_dir)
    if not training and dirs == (None, None):
        return []
    missing = [name for name, value in zip(names, dirs) if not value]
    if missing:
        raise DatasetError(f"--dataset=folders needs {' and '.join(missing)}")
    return folder_pairs(dirs[0], dirs[1], image_flag=names[0], label_flag=names[1])


def resolve_seg_pairs(dataset: str, split: str, **kwargs) -> list[tuple[str, str]]:
    """resolve_pairs over the segmentation file datasets (SEG_DATASETS) only."""
    return resolve_pairs(dataset, split, choices=SEG_DATASETS, **kwargs)


def data_source_kwargs(config) -> dict:
    """resolve_pairs' keyword arguments from the fields of a DataConfig (datasets.config).

    Family-specific arguments (document_pages, choices, split_seed) are the caller's to add.
    """
    return dict(
        data_root=config.data_root,
        image_dir=config.image_dir,
        label_dir=config.label_dir,
        val_image_dir=config.val_image_dir,
        val_label_dir=config.val_label_dir,
        train_list=config.train_list,
        val_list=config.val_list,
        scenes_size=config.scenes_size,
        num_scenes=config.num_scenes,
        streets_height=config.streets_height,
        streets_width=config.streets_width,
        num_streets=config.num_streets,
        load_extra=config.load_extra,
        prob_dataset=config.prob_dataset,
    )
