"""The one synthetic pair format (datasets/synthetic_pairs.py): layout, resume, bad batches."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from datasets.pairs import json_list_pairs
from datasets.synthetic_pairs import SyntheticDatasetError, write_pairs
from semantic_labels import load_label_set

LABELS = load_label_set("cityscapes")


def _sample_fn(seed=0, fail_at=None, size=(8, 16)):
    def sample(batch_index, count):
        if batch_index == fail_at:
            raise KeyboardInterrupt("killed")
        rng = np.random.default_rng((seed, batch_index))
        masks = rng.integers(0, 4, size=(count, *size), dtype=np.uint8)
        images = np.repeat(masks[..., None] * 60, 3, axis=-1).astype(np.uint8)
        return {"images": images, "masks": masks, "targets": rng.random((count, 4), np.float32)}

    return sample


def _files(folder):
    out = {}
    for root, _, names in os.walk(folder):
        for name in names:
            if name.startswith("."):
                continue
            path = os.path.join(root, name)
            with open(path, "rb") as file:
                out[os.path.relpath(path, folder)] = file.read()
    return out


def test_layout_is_read_by_the_segmenter_lists_and_label_set(tmp_path):
    out = tmp_path / "pairs"
    manifest = write_pairs(
        str(out), _sample_fn(), label_set=LABELS, num_images=10, batch_size=4, progress=False
    )
    assert manifest["counts"]["train"] == 9 and manifest["counts"]["val"] == 1
    assert manifest["size"] == [8, 16]
    train = json_list_pairs(str(out / "train.json"))
    assert len(train) == 9
    image, mask = (np.asarray(Image.open(path)) for path in train[0])
    assert image.shape == (8, 16, 3) and mask.shape == (8, 16) and mask.dtype == np.uint8
    np.testing.assert_array_equal(image[..., 0], mask * 60)
    assert np.load(out / "targets.npy").shape == (10, 4)
    assert load_label_set(str(out / "label_set.json")).names == LABELS.names
    coco = json.loads((out / "coco_gt_val.json").read_text())
    assert coco["images"] and coco["annotations"]


def test_killed_run_resumes_to_the_uninterrupted_files(tmp_path):
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    write_pairs(
        str(whole), _sample_fn(), label_set=LABELS, num_images=10, batch_size=3, progress=False
    )
    with pytest.raises(KeyboardInterrupt):
        write_pairs(
            str(resumed),
            _sample_fn(fail_at=2),
            label_set=LABELS,
            num_images=10,
            batch_size=3,
            progress=False,
        )
    calls = []

    def counting(batch_index, count):
        calls.append(batch_index)
        return _sample_fn()(batch_index, count)

    write_pairs(
        str(resumed), counting, label_set=LABELS, num_images=10, batch_size=3, progress=False
    )
    assert calls == [2, 3]  # batches 0 and 1 were done
    whole_files, resumed_files = _files(whole), _files(resumed)
    whole_files.pop("dataset.json"), resumed_files.pop("dataset.json")  # holds the seconds
    assert whole_files == resumed_files


def test_other_settings_and_bad_batches_are_refused(tmp_path):
    out = tmp_path / "pairs"
    write_pairs(str(out), _sample_fn(), label_set=LABELS, num_images=4, progress=False)
    before = _files(out)
    with pytest.raises(SyntheticDatasetError, match="seed"):
        write_pairs(str(out), _sample_fn(), label_set=LABELS, num_images=4, seed=1, progress=False)
    assert _files(out) == before  # nothing lost

    def out_of_range(batch_index, count):
        batch = _sample_fn()(batch_index, count)
        batch["masks"][0, 0, 0] = 40
        return batch

    with pytest.raises(SyntheticDatasetError, match="mask value 40"):
        write_pairs(
            str(tmp_path / "bad"), out_of_range, label_set=LABELS, num_images=2, progress=False
        )

    def wrong_dtype(batch_index, count):
        batch = _sample_fn()(batch_index, count)
        batch["images"] = batch["images"].astype(np.float32)
        return batch

    with pytest.raises(SyntheticDatasetError, match="uint8"):
        write_pairs(
            str(tmp_path / "bad2"), wrong_dtype, label_set=LABELS, num_images=2, progress=False
        )
