"""Cityscapes extra (Cityscapes-25k), IDD and CelebAMask-HQ loaders on tiny fixture trees."""

import os

import numpy as np
import pytest
from PIL import Image

from datasets import DatasetError, DatasetNotFoundError, resolve_pairs
from datasets.celebamask_hq import PARTS, celebamask_hq_pairs, merge_part_masks
from semantic_labels import load_label_set


def save(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.asarray(array, np.uint8)).save(path)
    return str(path)


def cityscapes_tree(root, split, stems, label_dir="gtFine", label_suffix="_gtFine_labelIds"):
    for stem in stems:
        city = stem.split("_")[0]
        save(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", np.zeros((4, 8, 3)))
        save(root / label_dir / split / city / f"{stem}{label_suffix}.png", np.full((4, 8), 7))


def test_cityscapes_load_extra_adds_the_extra_fine_pairs_to_training_only(tmp_path):
    cityscapes_tree(tmp_path, "train", ["aachen_000000_000019"])
    cityscapes_tree(tmp_path, "val", ["lindau_000000_000019"])
    extra = ["bad-honnef_000000_000000", "dortmund_000001_000123"]
    cityscapes_tree(tmp_path, "train_extra", extra, "extraFine", "_extraFine_labelIds")
    plain = resolve_pairs("cityscapes", "training", data_root=str(tmp_path))
    both = resolve_pairs("cityscapes", "training", data_root=str(tmp_path), load_extra=True)
    assert len(plain) == 1 and both[:1] == plain and len(both) == 3
    assert both[1][1].endswith(
        os.path.join("extraFine", "train_extra", "bad-honnef", f"{extra[0]}_extraFine_labelIds.png")
    )
    assert (
        len(resolve_pairs("cityscapes", "validation", data_root=str(tmp_path), load_extra=True))
        == 1
    )
    with pytest.raises(DatasetError, match="--load_extra applies to --dataset=cityscapes"):
        resolve_pairs("ade20k", "training", data_root=str(tmp_path), load_extra=True)


def test_cityscapes_load_extra_names_the_missing_folder(tmp_path):
    cityscapes_tree(tmp_path, "train", ["aachen_000000_000019"])
    save(
        tmp_path / "leftImg8bit" / "train_extra" / "ulm" / "ulm_0_1_leftImg8bit.png",
        np.zeros((4, 4, 3)),
    )
    with pytest.raises(DatasetNotFoundError) as error:
        resolve_pairs("cityscapes", "training", data_root=str(tmp_path), load_extra=True)
    assert os.path.join(str(tmp_path), "extraFine", "train_extra") in str(error.value)
    assert "--load_extra" in str(error.value)


def test_idd_level3_pairs_and_label_set(tmp_path):
    for split, seq, frame in (
        ("train", "0", "005506"),
        ("train", "12", "000001"),
        ("val", "3", "1"),
    ):
        save(
            tmp_path / "leftImg8bit" / split / seq / f"{frame}_leftImg8bit.png", np.zeros((4, 8, 3))
        )
        save(
            tmp_path / "gtFine" / split / seq / f"{frame}_gtFine_labellevel3Ids.png",
            np.full((4, 8), 25),
        )
    # The polygon JSON of the raw release is not a label map and is not listed.
    (tmp_path / "gtFine" / "train" / "0" / "005506_gtFine_polygons.json").write_text("{}")
    train = resolve_pairs("idd", "training", data_root=str(tmp_path))
    assert [os.path.relpath(i, tmp_path) for i, _ in train] == [
        os.path.join("leftImg8bit", "train", "0", "005506_leftImg8bit.png"),
        os.path.join("leftImg8bit", "train", "12", "000001_leftImg8bit.png"),
    ]
    assert len(resolve_pairs("idd", "validation", data_root=str(tmp_path))) == 1
    labels = load_label_set("idd")
    assert labels.num_classes == 26 and labels.ignore_index == 255
    assert labels.names[0] == "road" and labels.names[25] == "sky"
    assert labels.id_of("autorickshaw") == 8 and labels.id_of("obs-str-bar-fallback") == 21


def test_idd_without_level3_labels_says_how_to_make_them(tmp_path):
    save(tmp_path / "leftImg8bit" / "train" / "0" / "1_leftImg8bit.png", np.zeros((4, 4, 3)))
    (tmp_path / "gtFine" / "train" / "0").mkdir(parents=True)
    with pytest.raises(DatasetError, match="createLabels.py"):
        resolve_pairs("idd", "training", data_root=str(tmp_path))


def test_merge_part_masks_overwrites_in_the_fixed_part_order():
    skin = np.ones((4, 4), bool)
    hair = np.zeros((4, 4), bool)
    hair[0] = True
    nose = np.zeros((4, 4), bool)
    nose[0, 0] = nose[2, 2] = True
    label = merge_part_masks({"hair": hair, "skin": skin, "nose": nose})
    # hair (13) comes after nose (2) and skin (1) in PARTS, whatever the dict order.
    assert label[0].tolist() == [13, 13, 13, 13]
    assert label[2, 2] == 2 and label[3, 3] == 1
    assert PARTS.index("cloth") + 1 == 18 == load_label_set("celebamask_hq").id_of("cloth")
    with pytest.raises(ValueError, match="unknown CelebAMask-HQ parts"):
        merge_part_masks({"beard": skin})


def celebamask_tree(root, count=4):
    """CelebA-HQ-img/<i>.jpg at 16x16 with 8x8 part masks in CelebAMask-HQ-mask-anno/<i//2000>/."""
    base = root / "CelebAMask-HQ"
    for index in range(count):
        save(base / "CelebA-HQ-img" / f"{index}.jpg", np.full((16, 16, 3), 40 * index))
        folder = base / "CelebAMask-HQ-mask-anno" / str(index // 2000)
        skin = np.zeros((8, 8, 3))
        skin[2:, :] = 255  # three equal channels, as the release stores them
        save(folder / f"{index:05d}_skin.png", skin)
        hair = np.zeros((8, 8))
        hair[: 2 + index % 3] = 255
        save(folder / f"{index:05d}_hair.png", hair)
    return base


def test_celebamask_hq_merges_caches_and_splits(tmp_path):
    base = celebamask_tree(tmp_path)
    train = celebamask_hq_pairs(str(tmp_path), "training", progress=False)
    val = resolve_pairs("celebamask_hq", "validation", data_root=str(tmp_path))
    assert len(train) == 3 and len(val) == 1 and not set(train) & set(val)
    image_path, label_path = sorted(train + val)[0]
    assert image_path == str(base / "CelebA-HQ-img" / "0.jpg")
    assert label_path == str(base / "CelebAMask-HQ-merged" / "0.png")
    label = np.asarray(Image.open(label_path))
    # Upsampled to the image's 16x16; hair (13) over skin (1) in rows 0-1 of the 8x8 masks.
    assert label.shape == (16, 16)
    assert (label[:4] == 13).all() and (label[4:] == 1).all()
    # Cached: a second call reads the merged maps, it does not write them again.
    mtime = os.stat(label_path).st_mtime_ns
    assert celebamask_hq_pairs(str(base), "training", progress=False) == train
    assert os.stat(label_path).st_mtime_ns == mtime


def test_celebamask_hq_errors_name_the_problem(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="CelebA-HQ-img does not exist"):
        celebamask_hq_pairs(str(tmp_path), "training")
    base = celebamask_tree(tmp_path, count=3)
    save(base / "CelebA-HQ-img" / "7.jpg", np.zeros((16, 16, 3)))
    with pytest.raises(DatasetError, match=r"no part mask.*7\.jpg.*00007_<part>\.png"):
        celebamask_hq_pairs(str(tmp_path), "training", progress=False)
    os.remove(base / "CelebA-HQ-img" / "7.jpg")
    foreign = base / "CelebAMask-HQ-merged"
    foreign.mkdir()
    (foreign / "0.png").write_bytes(b"not ours")
    with pytest.raises(DatasetError, match="not our cache"):
        celebamask_hq_pairs(str(tmp_path), "training", progress=False)
