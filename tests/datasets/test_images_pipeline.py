"""Unlabelled image lists and tf.data pipelines for GAN training (datasets.images)."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from datasets.images import (
    diagnose_images,
    image_list,
    make_image_dataset,
    make_image_eval_dataset,
    named_image_errors,
)
from datasets.pairs import DatasetError, DatasetNotFoundError

NUM_FILES = 6


def _solid(path, value, size=(16, 16)):
    """An image whose every pixel is `value`: batches then reveal which file they hold."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path)
    return path


@pytest.fixture
def solid_images(tmp_path):
    """NUM_FILES 16 x 16 images, file k filled with the grey level 40 * k + 20."""
    return [_solid(str(tmp_path / "imgs" / f"{k}.png"), 40 * k + 20) for k in range(NUM_FILES)]


def _file_ids(batch):
    """Which solid image each element of a batch is."""
    grey = (batch["image"].numpy()[:, 0, 0, 0] + 1.0) * 127.5
    return np.rint((grey - 20) / 40).astype(int).tolist()


# ------------------------------------------------------------------------------------------
# image_list
# ------------------------------------------------------------------------------------------


def test_image_list_from_folder(tmp_path):
    _solid(str(tmp_path / "b.png"), 1)
    _solid(str(tmp_path / "sub" / "a.jpg"), 2)
    (tmp_path / "notes.txt").write_text("not an image")
    _solid(str(tmp_path / ".hidden.png"), 3)
    paths = image_list(image_dir=str(tmp_path))
    assert paths == sorted([str(tmp_path / "b.png"), str(tmp_path / "sub" / "a.jpg")])
    assert all(os.path.isabs(path) for path in paths)


def test_image_list_from_json(tmp_path):
    _solid(str(tmp_path / "crops" / "000000.png"), 1)
    _solid(str(tmp_path / "crops" / "000001.png"), 2)
    listing = tmp_path / "train.json"
    listing.write_text(json.dumps(["crops/000001.png", "crops/000000.png"]))
    assert image_list(list_path=str(listing)) == [
        str(tmp_path / "crops" / "000001.png"),
        str(tmp_path / "crops" / "000000.png"),
    ]
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"images": ["crops/000000.png"]}))
    assert image_list(list_path=str(wrapped)) == [str(tmp_path / "crops" / "000000.png")]
    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps({"pairs": [{"image": "crops/000001.png", "label": "x.png"}]}))
    assert image_list(list_path=str(pairs)) == [str(tmp_path / "crops" / "000001.png")]


def test_image_list_errors_name_folder_or_file(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"--image_dir=.*empty"):
        image_list(image_dir=str(tmp_path / "empty"), flag="--image_dir")
    with pytest.raises(DatasetNotFoundError, match="absent"):
        image_list(image_dir=str(tmp_path / "absent"))
    with pytest.raises(DatasetNotFoundError, match="nolist.json"):
        image_list(list_path=str(tmp_path / "nolist.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DatasetError, match="bad.json"):
        image_list(list_path=str(bad))
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    with pytest.raises(DatasetError, match="empty.json"):
        image_list(list_path=str(empty))
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps([f"gone{k}.png" for k in range(8)]))
    with pytest.raises(DatasetNotFoundError, match=r"8 listed file\(s\).*gone0.png.*3 more"):
        image_list(list_path=str(missing))
    with pytest.raises(ValueError, match="exactly one"):
        image_list()


# ------------------------------------------------------------------------------------------
# make_image_dataset
# ------------------------------------------------------------------------------------------


def test_batches_have_shape_range_and_epoch_permutations(solid_images):
    dataset = make_image_dataset(solid_images, size=8, global_batch_size=3, seed=1, flip=False)
    batches = list(dataset.take(4))
    for batch in batches:
        assert batch["image"].shape == (3, 8, 8, 3) and batch["image"].dtype == tf.float32
        values = batch["image"].numpy()
        assert values.min() >= -1.0 and values.max() <= 1.0
    ids = sum((_file_ids(batch) for batch in batches), [])
    # Each epoch of 6 elements is a permutation of the 6 files, and the epochs differ.
    assert sorted(ids[:6]) == list(range(6)) and sorted(ids[6:]) == list(range(6))
    assert ids[:6] != ids[6:]
    other = make_image_dataset(solid_images, size=8, global_batch_size=3, seed=2, flip=False)
    assert sum((_file_ids(b) for b in other.take(2)), []) != ids[:6]


def test_resume_repeats_the_tail_of_a_run(solid_images, tmp_path):
    # Random content so that flips are visible.
    rng = np.random.default_rng(0)
    paths = []
    for k in range(5):
        path = str(tmp_path / "noise" / f"{k}.png")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    full = [
        b["image"].numpy()
        for b in make_image_dataset(paths, size=12, global_batch_size=2, seed=3).take(6)
    ]
    resumed = [
        b["image"].numpy()
        for b in make_image_dataset(paths, size=12, global_batch_size=2, seed=3, start_step=4).take(
            2
        )
    ]
    np.testing.assert_array_equal(resumed[0], full[4])
    np.testing.assert_array_equal(resumed[1], full[5])
    # Flips happen: some element equals its file mirrored, not the file itself.
    originals = [np.asarray(Image.open(p), np.float32) / 127.5 - 1.0 for p in paths]
    elements = np.concatenate(full)
    mirrored = sum(any(np.array_equal(e, o[:, ::-1]) for o in originals) for e in elements)
    assert 0 < mirrored < len(elements)


def test_two_input_pipelines_split_the_global_batch(solid_images):
    whole = [
        _file_ids(b)
        for b in make_image_dataset(
            solid_images, size=8, global_batch_size=4, seed=5, flip=False
        ).take(3)
    ]
    halves = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline_id, num_replicas_in_sync=2
        )
        dataset = make_image_dataset(
            solid_images, size=8, global_batch_size=4, seed=5, flip=False, input_context=context
        )
        batches = list(dataset.take(3))
        assert all(batch["image"].shape[0] == 2 for batch in batches)
        halves.append([_file_ids(batch) for batch in batches])
    for step in range(3):
        assert halves[0][step] + halves[1][step] == whole[step]


def test_resize_and_centre_crop(tmp_path):
    # 20 x 30 (h x w): the centre square is columns 5..24; the outer columns are marked.
    pixels = np.zeros((20, 30, 3), np.uint8)
    pixels[:, :5] = 255
    pixels[:, 25:] = 255
    pixels[:, 5:25] = np.arange(20, dtype=np.uint8)[:, None, None] * 10
    wide = str(tmp_path / "wide.png")
    Image.fromarray(pixels).save(wide)
    exact = next(iter(make_image_eval_dataset([wide], size=20, batch_size=1)))["image"][0]
    np.testing.assert_allclose(exact.numpy(), pixels[:, 5:25] / 127.5 - 1.0, atol=1e-6)
    small = next(iter(make_image_eval_dataset([wide], size=10, batch_size=1)))["image"][0]
    assert small.shape == (10, 10, 3)
    assert small.numpy().max() < 0.6  # the white outer columns were cropped away
    np.testing.assert_allclose(
        small.numpy()[:, 0, 0],  # area: the mean of two rows
        (np.arange(10) * 20 + 5) / 127.5 - 1.0,
        atol=1e-5,
    )
    large = next(iter(make_image_eval_dataset([wide], size=40, batch_size=1)))["image"][0]
    assert large.shape == (40, 40, 3)
    assert -1.0 <= large.numpy().min() and large.numpy().max() <= 1.0


def test_eval_dataset_is_one_pass_in_order(solid_images):
    batches = list(make_image_eval_dataset(solid_images, size=8, batch_size=4))
    assert [b["image"].shape[0] for b in batches] == [4, 2]
    assert sum((_file_ids(b) for b in batches), []) == list(range(NUM_FILES))


def test_arguments_are_checked(solid_images):
    with pytest.raises(DatasetError, match="no images"):
        make_image_dataset([], size=8, global_batch_size=2)
    with pytest.raises(ValueError, match="global_batch_size"):
        make_image_dataset(solid_images, size=8, global_batch_size=0)
    with pytest.raises(ValueError, match="start_step"):
        make_image_dataset(solid_images, size=8, global_batch_size=2, start_step=-1)
    context = tf.distribute.InputContext(
        num_input_pipelines=2, input_pipeline_id=0, num_replicas_in_sync=2
    )
    with pytest.raises(ValueError, match="not divisible"):
        make_image_dataset(solid_images, size=8, global_batch_size=3, input_context=context)


def test_file_that_is_no_image_is_named_in_graph(solid_images, tmp_path):
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"hello, I am text")
    dataset = make_image_eval_dataset([solid_images[0], str(garbage)], size=8, batch_size=2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="garbage.png"):
        list(dataset)
    with pytest.raises(DatasetError, match="garbage.png"):
        with named_image_errors([solid_images[0], str(garbage)]):
            list(dataset)


def test_damaged_image_is_named(solid_images, tmp_path):
    data = open(solid_images[1], "rb").read()
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(data[: len(data) // 2])  # a PNG header, then nothing
    paths = solid_images[:2] + [str(truncated)]
    dataset = make_image_dataset(paths, size=8, global_batch_size=3, seed=0)
    with pytest.raises(DatasetError, match="truncated.png"):
        with named_image_errors(paths):
            for _ in dataset.take(2):
                pass
    with pytest.raises(DatasetError, match="truncated.png"):
        diagnose_images(paths)
    assert diagnose_images(solid_images) is None
