import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from datasets import DatasetError
from datasets.pairs import (
    cityscapes_pairs,
    facesynthetics_pairs,
    json_list_pairs,
)
from datasets.segmentation import (
    IGNORE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    apply_label_map,
    dataset_label_map,
    identity_label_map,
    label_map_from_label_set,
    make_label_map,
    make_seg_eval_dataset,
    make_seg_train_dataset,
    pad_to_size,
    preprocess_seg_train,
    random_crop,
    random_flip,
    reduce_zero_label,
)
from datasets.sources import resolve_seg_pairs
from semantic_labels import LabelSetError, load_label_set

FACE_NAMES = (
    "BACKGROUND",
    "SKIN",
    "NOSE",
    "RIGHT_EYE",
    "LEFT_EYE",
    "RIGHT_BROW",
    "LEFT_BROW",
    "RIGHT_EAR",
    "LEFT_EAR",
    "MOUTH_INTERIOR",
    "TOP_LIP",
    "BOTTOM_LIP",
    "NECK",
    "HAIR",
    "BEARD",
    "CLOTHING",
    "GLASSES",
    "HEADWEAR",
    "FACEWEAR",
)
CITYSCAPES_LABEL_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)


# ------------------------------------------------------------------------------------------
# Helpers: tiny files whose pixel colour encodes the pixel's label.
# ------------------------------------------------------------------------------------------


def save(path, array):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    Image.fromarray(np.asarray(array, np.uint8)).save(str(path))
    return str(path)


def encode(label):
    """RGB image whose red channel is the label value (exact, lossless PNG)."""
    label = np.asarray(label, np.uint8)
    return np.stack([label, 255 - label, np.full_like(label, 128)], axis=-1)


def decode(image):
    """Normalised float image -> red channel in 0..255 (the encoded label)."""
    rgb = (np.asarray(image) * IMAGENET_STD + IMAGENET_MEAN) * 255.0
    return np.round(rgb[..., 0]).astype(np.int32)


def blocks(height, width, values, block=8):
    """A label of block x block squares cycling through `values`."""
    rows, cols = np.meshgrid(np.arange(height) // block, np.arange(width) // block, indexing="ij")
    return np.asarray(values, np.uint8)[(rows * 7 + cols) % len(values)]


def write_pairs(folder, labels):
    pairs = []
    for k, label in enumerate(labels):
        pairs.append(
            (
                save(os.path.join(folder, "images", f"{k:03d}.png"), encode(label)),
                save(os.path.join(folder, "labels", f"{k:03d}.png"), label),
            )
        )
    return pairs


def face_folder(folder, ids, size=8):
    for k in ids:
        label = np.full((size, size), k % 19, np.uint8)
        save(os.path.join(folder, f"{k:06d}.png"), encode(label))
        save(os.path.join(folder, f"{k:06d}_seg.png"), label)
        with open(os.path.join(folder, f"{k:06d}_ldmks.txt"), "w") as file:
            file.write("1.0 2.0\n")


# ------------------------------------------------------------------------------------------
# Label sets and label maps
# ------------------------------------------------------------------------------------------


def test_facesynthetics_label_set():
    face = load_label_set("facesynthetics")
    assert face.names == FACE_NAMES
    assert len({tuple(c) for c in face.colors.tolist()}) == 19  # distinct colours
    assert face.ignore_index == 255 and face.dontcare_id is None
    assert face.flip_pairs == ((3, 4), (5, 6), (7, 8))
    table = label_map_from_label_set(face)
    np.testing.assert_array_equal(table[:19], np.arange(19))
    assert table[255] == IGNORE and (table[19:255] == -1).all()


def test_cityscapes_label_set_and_id_mapping():
    city = load_label_set("cityscapes")
    assert city.names[:3] == ("road", "sidewalk", "building")
    assert city.names[-3:] == ("train", "motorcycle", "bicycle") and city.num_classes == 19
    assert city.colors[city.id_of("road")].tolist() == [128, 64, 128]
    assert city.colors[city.id_of("car")].tolist() == [0, 0, 142]
    assert city.colors[city.id_of("vegetation")].tolist() == [107, 142, 35]
    table = label_map_from_label_set(city)
    expected = np.full(256, IGNORE)
    expected[list(CITYSCAPES_LABEL_IDS)] = np.arange(19)
    np.testing.assert_array_equal(table[:34], expected[:34])  # every labelId
    assert table[255] == IGNORE
    assert (table[34:255] == -1).all()  # not labelIds: an error, not silently ignored


def test_ade20k_reduce_zero_label_is_a_view_of_ade20k():
    ade = load_label_set("ade20k")
    seg = reduce_zero_label(ade)
    assert seg.num_classes == 150 and seg.names == ade.names[1:] and seg.names[0] == "wall"
    np.testing.assert_array_equal(seg.colors, ade.colors[1:])
    table, num_classes = dataset_label_map("ade20k")
    assert num_classes == 150
    assert table[0] == IGNORE and table[1] == 0 and table[150] == 149 and table[255] == IGNORE
    assert table[151] == -1


def test_dataset_label_map_checks_num_classes():
    with pytest.raises(DatasetError, match="--num_classes=5.*cityscapes.*19"):
        dataset_label_map("cityscapes", 5)
    with pytest.raises(DatasetError, match="--dataset=folders needs --num_classes"):
        dataset_label_map("folders")
    table, num_classes = dataset_label_map("json", 3)
    assert num_classes == 3 and table.tolist()[:4] == [0, 1, 2, -1]


def tiny_set(**extra):
    return {
        "name": "tiny",
        "classes": [{"id": i, "name": f"c{i}", "color": [i, i, i]} for i in range(3)],
        **extra,
    }


def test_label_set_segmentation_keys_round_trip(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(
        json.dumps(
            tiny_set(
                ignore_index=200,
                flip_pairs=[[1, 2]],
                source_ids=[10, 20, 30],
                ignored_source_ids=[0],
            )
        )
    )
    labels = load_label_set(str(path))
    assert labels.flip_pairs == ((1, 2),) and labels.source_ids == (10, 20, 30)
    table = label_map_from_label_set(labels)
    assert table[[10, 20, 30, 0, 200, 255, 5]].tolist() == [0, 1, 2, 255, 255, 255, -1]
    assert load_label_set(str(path)) == labels
    assert dataclasses.replace(labels, flip_pairs=()) != labels
    assert dataclasses.replace(labels, source_ids=None) != labels


@pytest.mark.parametrize(
    "extra, problem",
    [
        ({"ignore_index": 1}, "'ignore_index'"),
        ({"flip_pairs": [[1, 3]]}, "'flip_pairs'"),
        ({"flip_pairs": [[0, 1], [1, 2]]}, "twice"),
        ({"source_ids": [1, 2]}, "one raw value per class"),
        ({"source_ids": [1, 2, 2]}, "repeats"),
        ({"ignored_source_ids": [0]}, "needs 'source_ids'"),
        ({"source_ids": [1, 2, 3], "ignore_index": 255, "ignored_source_ids": [3]}, "both"),
    ],
)
def test_label_set_segmentation_keys_errors_name_file(tmp_path, extra, problem):
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(tiny_set(**extra)))
    with pytest.raises(LabelSetError) as error:
        load_label_set(str(path))
    assert "broken.json" in str(error.value) and problem in str(error.value)


def test_make_label_map_rejects_bad_ids():
    with pytest.raises(ValueError, match="source_ids"):
        make_label_map([0, 255])
    with pytest.raises(ValueError, match="ignored_source_ids"):
        make_label_map([0, 1], ignored_source_ids=[1])


def test_apply_label_map_eagerly_and_in_graph_names_file_and_value():
    table = label_map_from_label_set(load_label_set("cityscapes"))
    raw = np.array([[7, 26, 0], [33, 255, 30]], np.uint8)
    expected = [[0, 13, 255], [18, 255, 255]]
    np.testing.assert_array_equal(apply_label_map(raw, table), expected)
    mapped = tf.function(lambda x: apply_label_map(x, table, "f.png"))(tf.constant(raw))
    np.testing.assert_array_equal(mapped, expected)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"(?s)bad_file\.png.*\b40\b"):
        apply_label_map(np.array([[7, 40]], np.uint8), table, "bad_file.png")


# ------------------------------------------------------------------------------------------
# File lists
# ------------------------------------------------------------------------------------------


def test_facesynthetics_single_folder_is_split_90_10(tmp_path):
    face_folder(tmp_path, range(20))
    train = facesynthetics_pairs(str(tmp_path), "training")
    val = facesynthetics_pairs(str(tmp_path), "validation")
    assert len(train) == 18 and len(val) == 2 and not set(train) & set(val)
    assert train == sorted(train)
    assert all(label == image[: -len(".png")] + "_seg.png" for image, label in train + val)
    assert facesynthetics_pairs(str(tmp_path), "validation") == val  # deterministic
    other_seeds = {
        tuple(facesynthetics_pairs(str(tmp_path), "validation", seed=s)) for s in range(1, 6)
    }
    assert len(other_seeds | {tuple(val)}) > 1  # the seed matters


def test_facesynthetics_train_val_subfolders(tmp_path):
    face_folder(tmp_path / "train", range(3))
    face_folder(tmp_path / "val", range(3, 5))
    assert [os.path.basename(i) for i, _ in facesynthetics_pairs(str(tmp_path), "training")] == [
        "000000.png",
        "000001.png",
        "000002.png",
    ]
    assert len(facesynthetics_pairs(str(tmp_path), "validation")) == 2


def test_facesynthetics_errors_name_files(tmp_path):
    face_folder(tmp_path, range(3))
    os.remove(tmp_path / "000001_seg.png")
    with pytest.raises(DatasetError, match="000001"):
        facesynthetics_pairs(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        facesynthetics_pairs(str(tmp_path / "nowhere"))
    single = tmp_path / "single"
    face_folder(single, [0])
    with pytest.raises(DatasetError, match="too few"):
        facesynthetics_pairs(str(single), "validation")


def cityscapes_layout(root, split="train"):
    raw = np.array([[7, 26], [0, 40]], np.uint8)
    for city, frame in (("aachen", "aachen_000000_000019"), ("bonn", "bonn_000001_000019")):
        save(root / "leftImg8bit" / split / city / f"{frame}_leftImg8bit.png", encode(raw))
        save(root / "gtFine" / split / city / f"{frame}_gtFine_labelIds.png", raw)
        save(root / "gtFine" / split / city / f"{frame}_gtFine_color.png", encode(raw))
        save(root / "gtFine" / split / city / f"{frame}_gtFine_instanceIds.png", raw)


def test_cityscapes_pairs_layout(tmp_path):
    cityscapes_layout(tmp_path)
    pairs = cityscapes_pairs(str(tmp_path), "train")
    assert [os.path.relpath(label, tmp_path) for _, label in pairs] == [
        os.path.join("gtFine", "train", "aachen", "aachen_000000_000019_gtFine_labelIds.png"),
        os.path.join("gtFine", "train", "bonn", "bonn_000001_000019_gtFine_labelIds.png"),
    ]
    assert pairs[0][0].endswith(os.path.join("aachen", "aachen_000000_000019_leftImg8bit.png"))
    assert resolve_seg_pairs("cityscapes", "training", data_root=str(tmp_path)) == pairs
    with pytest.raises(FileNotFoundError, match=r"gtFine|leftImg8bit"):
        cityscapes_pairs(str(tmp_path), "val")
    os.remove(tmp_path / "gtFine/train/bonn/bonn_000001_000019_gtFine_labelIds.png")
    with pytest.raises(DatasetError, match="bonn/bonn_000001_000019"):
        cityscapes_pairs(str(tmp_path), "train")


def test_ade20k_seg_pairs_and_shift(tmp_path):
    root = tmp_path / "ADEChallengeData2016"
    raw = np.array([[0, 1], [150, 7]], np.uint8)
    save(root / "images" / "validation" / "ADE_val_1.jpg", encode(raw))
    save(root / "annotations" / "validation" / "ADE_val_1.png", raw)
    pairs = resolve_seg_pairs("ade20k", "validation", data_root=str(tmp_path))
    table, num_classes = dataset_label_map("ade20k")
    batch = next(iter(make_seg_eval_dataset(pairs, num_classes=num_classes, label_map=table)))
    np.testing.assert_array_equal(batch["label"][0], [[255, 0], [149, 6]])


def test_json_list_relative_paths_and_errors(tmp_path):
    pairs = write_pairs(tmp_path / "synth", [blocks(8, 8, [0, 1])])
    listing = tmp_path / "synth" / "list.json"
    listing.write_text(
        json.dumps(
            {
                "label_set": "facesynthetics",
                "pairs": [{"image": "images/000.png", "label": "labels/000.png"}],
            }
        )
    )
    assert json_list_pairs(str(listing)) == pairs
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps([{"image": pairs[0][0], "label": "synth/labels/000.png"}]))
    assert json_list_pairs(str(bare)) == pairs
    assert resolve_seg_pairs("json", "training", train_list=str(listing)) == pairs
    assert resolve_seg_pairs("json", "validation", train_list=str(listing)) == []

    listing.write_text(
        json.dumps({"pairs": [{"image": "images/000.png", "label": "labels/missing.png"}]})
    )
    with pytest.raises(FileNotFoundError, match=r"--train_list=.*list\.json.*missing\.png"):
        resolve_seg_pairs("json", "training", train_list=str(listing))
    listing.write_text(json.dumps({"pairs": [{"image": "images/000.png"}]}))
    with pytest.raises(DatasetError, match=r"list\.json.*pairs\[0\]"):
        json_list_pairs(str(listing))
    listing.write_text("{oops")
    with pytest.raises(DatasetError, match=r"list\.json.*not valid JSON"):
        json_list_pairs(str(listing))


def test_resolve_seg_pairs_errors_name_flags(tmp_path):
    with pytest.raises(DatasetError, match="--dataset=json needs --train_list"):
        resolve_seg_pairs("json", "training")
    with pytest.raises(DatasetError, match="--dataset=folders needs --label_dir"):
        resolve_seg_pairs("folders", "training", image_dir=str(tmp_path))
    with pytest.raises(DatasetError, match="--dataset='coco'"):
        resolve_seg_pairs("coco", "training")
    with pytest.raises(FileNotFoundError, match="--image_dir="):
        resolve_seg_pairs(
            "folders", "training", image_dir=str(tmp_path / "no"), label_dir=str(tmp_path)
        )
    assert resolve_seg_pairs("folders", "validation", image_dir="x", label_dir="y") == []


# ------------------------------------------------------------------------------------------
# Augmentation
# ------------------------------------------------------------------------------------------


def augment(label, seed, **kwargs):
    kwargs.setdefault("photometric", False)
    image, out = preprocess_seg_train(encode(label), np.asarray(label, np.int32), seed, **kwargs)
    return image.numpy(), out.numpy()


def test_crop_keeps_image_and_label_aligned():
    label = blocks(40, 48, [0, 1, 2, 3, 9], block=5)
    for seed in range(4):
        image, out = augment(label, [seed, 1], crop_size=(24, 32), scale_range=(1.0, 1.0))
        assert image.shape == (24, 32, 3) and out.shape == (24, 32)
        np.testing.assert_array_equal(decode(image), out)


def test_scaled_image_and_label_stay_aligned():
    label = blocks(40, 40, [0, 1, 2, 3], block=8)
    for seed in range(3):
        image, out = augment(
            label, [seed, 2], crop_size=32, scale_range=(1.3, 1.8), cat_max_ratio=1.0
        )
        # Bilinear colours blend only at block edges: most pixels decode to their label.
        assert np.mean(decode(image) == out) > 0.75


def test_padding_when_scaled_image_is_smaller_than_crop():
    label = blocks(20, 24, [1, 2], block=4)
    image, out = augment(label, [0, 0], crop_size=(32, 40), scale_range=(1.0, 1.0), flip=False)
    np.testing.assert_array_equal(out[:20, :24], label)
    np.testing.assert_array_equal(decode(image[:20, :24]), label)
    assert (out[20:] == IGNORE).all() and (out[:, 24:] == IGNORE).all()
    assert (image[20:] == 0).all() and (image[:, 24:] == 0).all()
    # Half the scale of a 20 x 24 file leaves 10 x 12 labelled pixels.
    _, small = augment(label, [0, 0], crop_size=(32, 40), scale_range=(0.5, 0.5))
    assert (small != IGNORE).sum() == 10 * 12


def test_pad_to_size_leaves_larger_sides_alone():
    image, label = pad_to_size(tf.ones((5, 9, 3)), tf.zeros((5, 9), tf.int32), (8, 4))
    assert image.shape == (8, 9, 3) and label.shape == (8, 9)


def test_flip_mirrors_and_swaps_left_right_classes():
    label = np.zeros((8, 16), np.int32)
    label[:, 1:4] = 3  # RIGHT_EYE on the left of the picture
    label[:, 5:7] = 5  # RIGHT_BROW
    swap = np.arange(256)
    swap[[3, 4, 5, 6]] = [4, 3, 6, 5]
    seen = set()
    for seed in range(8):
        image, out = random_flip(
            tf.constant(encode(label)), tf.constant(label), [seed, 3], ((3, 4), (5, 6))
        )
        mirrored = bool((image.numpy()[:, :, 0] != encode(label)[:, :, 0]).any())
        seen.add(mirrored)
        expected = swap[label[:, ::-1]] if mirrored else label
        np.testing.assert_array_equal(out, expected)
        np.testing.assert_array_equal(image.numpy()[:, :, 0], label[:, ::-1] if mirrored else label)
    assert seen == {True, False}
    # Through the full augmentation: the colour still encodes the unswapped class.
    _, out = augment(
        label, [0, 0], crop_size=(8, 16), scale_range=(1.0, 1.0), flip_pairs=((3, 4), (5, 6))
    )
    assert set(np.unique(out)) in ({0, 3, 5}, {0, 4, 6})


def largest_share(label):
    counts = np.bincount(label[label != IGNORE].ravel(), minlength=256)
    return counts.max() / counts.sum()


def test_cat_max_ratio_rejects_dominated_crops():
    label = tf.constant(((np.arange(64) // 12) % 2)[None, :].repeat(16, 0).astype(np.int32))
    image = tf.zeros((16, 64, 3))
    limited = [
        largest_share(random_crop(image, label, [s, 4], (16, 16), 0.75)[1].numpy())
        for s in range(20)
    ]
    free = [
        largest_share(random_crop(image, label, [s, 4], (16, 16), 1.0)[1].numpy())
        for s in range(20)
    ]
    assert max(limited) < 0.75
    assert max(free) >= 0.75  # without the limit some crops are dominated


def test_cat_max_ratio_keeps_the_last_try_when_no_crop_qualifies():
    label = tf.zeros((30, 30), tf.int32)  # one class: no crop can qualify
    image = tf.reshape(tf.range(30 * 30 * 3, dtype=tf.float32), (30, 30, 3))
    seed = tf.constant([5, 6], tf.int64)
    cropped, _ = random_crop(image, label, seed, (10, 10), 0.75)
    draws = tf.random.stateless_uniform([10, 2], seed).numpy()
    top, left = np.minimum((draws[-1] * 21).astype(int), 20)
    np.testing.assert_array_equal(cropped, image.numpy()[top : top + 10, left : left + 10])


def test_preprocess_agrees_eagerly_and_in_tf_data():
    label = blocks(36, 44, [0, 1, 2, 255], block=6)
    kwargs = dict(
        crop_size=(24, 28), scale_range=(0.6, 1.7), flip_pairs=((1, 2),), photometric=True
    )
    seeds = [[s, 9] for s in range(4)]
    eager = [
        preprocess_seg_train(encode(label), label.astype(np.int32), seed, **kwargs)
        for seed in seeds
    ]
    dataset = tf.data.Dataset.from_tensor_slices(tf.constant(seeds, tf.int64)).map(
        lambda seed: preprocess_seg_train(encode(label), label.astype(np.int32), seed, **kwargs)
    )
    for (image, out), (graph_image, graph_out) in zip(eager, dataset):
        np.testing.assert_allclose(image, graph_image, atol=1e-4)
        np.testing.assert_array_equal(out, graph_out)


def test_photometric_changes_colours_only():
    label = blocks(16, 16, [0, 1], block=4)
    plain, out = augment(label, [1, 1], crop_size=16, scale_range=(1.0, 1.0), flip=False)
    changed = []
    for seed in range(4):
        image, jittered_label = augment(
            label, [1, seed], crop_size=16, scale_range=(1.0, 1.0), flip=False, photometric=True
        )
        np.testing.assert_array_equal(jittered_label, out)
        rgb = (image * IMAGENET_STD + IMAGENET_MEAN) * 255.0
        assert rgb.min() > -1e-3 and rgb.max() < 255.0 + 1e-3  # clipped to [0, 255]
        changed.append(not np.allclose(image, plain, atol=1e-3))
    assert any(changed)


# ------------------------------------------------------------------------------------------
# tf.data pipelines
# ------------------------------------------------------------------------------------------


@pytest.fixture
def random_pairs(tmp_path):
    rng = np.random.default_rng(0)
    labels = [blocks(40, 48, rng.permutation(5), block=int(rng.integers(4, 9))) for _ in range(5)]
    return write_pairs(tmp_path, labels)


def first_batches(dataset, count):
    return [{k: v.numpy() for k, v in batch.items()} for batch in dataset.take(count)]


def test_train_dataset_shapes_alignment_and_ranges(random_pairs):
    dataset = make_seg_train_dataset(
        random_pairs,
        num_classes=5,
        crop_size=(32, 40),
        global_batch_size=2,
        seed=1,
        photometric=False,
        scale_range=(1.0, 1.0),
    )
    for batch in first_batches(dataset, 2):
        assert batch["image"].shape == (2, 32, 40, 3) and batch["image"].dtype == np.float32
        assert batch["label"].shape == (2, 32, 40) and batch["label"].dtype == np.int32
        np.testing.assert_array_equal(decode(batch["image"]), batch["label"])


def test_train_dataset_is_deterministic_and_resumable(random_pairs):
    def make(**kwargs):
        return make_seg_train_dataset(
            random_pairs, num_classes=5, crop_size=24, global_batch_size=2, **kwargs
        )

    run = first_batches(make(seed=3), 3)
    again = first_batches(make(seed=3), 3)
    resumed = first_batches(make(seed=3, start_step=1), 2)
    other = first_batches(make(seed=4), 1)
    for a, b in zip(run, again):
        np.testing.assert_array_equal(a["image"], b["image"])
    for a, b in zip(run[1:], resumed):
        np.testing.assert_allclose(a["image"], b["image"], atol=1e-6)
        np.testing.assert_array_equal(a["label"], b["label"])
    assert not np.allclose(run[0]["image"], other[0]["image"])


def test_train_dataset_visits_each_file_once_per_epoch(tmp_path):
    pairs = write_pairs(tmp_path, [np.full((8, 8), k, np.uint8) for k in range(4)])
    dataset = make_seg_train_dataset(
        pairs,
        num_classes=4,
        crop_size=8,
        global_batch_size=4,
        scale_range=(1.0, 1.0),
        photometric=False,
        seed=7,
    )
    for batch in first_batches(dataset, 2):
        assert sorted(batch["label"][:, 0, 0].tolist()) == [0, 1, 2, 3]


def test_train_dataset_maps_ids_and_names_bad_files(tmp_path):
    city = load_label_set("cityscapes")
    raw = np.array([[7, 26], [0, 33]], np.uint8).repeat(4, 0).repeat(4, 1)
    pairs = write_pairs(tmp_path / "ok", [raw])
    dataset = make_seg_train_dataset(
        pairs,
        num_classes=19,
        crop_size=8,
        global_batch_size=1,
        scale_range=(1.0, 1.0),
        label_map=label_map_from_label_set(city),
        cat_max_ratio=1.0,
        flip=False,
    )
    label = first_batches(dataset, 1)[0]["label"][0]
    assert label[0, 0] == 0 and label[0, 7] == 13 and label[7, 0] == 255 and label[7, 7] == 18
    bad = write_pairs(tmp_path / "bad", [np.full((8, 8), 7, np.uint8)])
    save(bad[0][1], np.full((8, 8), 5, np.uint8))
    dataset = make_seg_train_dataset(bad, num_classes=3, crop_size=8, global_batch_size=1)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"(?s)bad.labels.000\.png.*\b5\b"):
        first_batches(dataset, 1)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"crop_size": (8, 0)}, "size"),
        ({"label_map": np.zeros(10, np.int32)}, "label_map"),
        ({"label_map": np.full(256, 7, np.int32)}, "label_map"),
        ({"flip_pairs": ((1, 9),)}, "flip_pairs"),
        ({"scale_range": (2.0, 1.0)}, "scale_range"),
        ({"start_step": -1}, "start_step"),
        ({"global_batch_size": 0}, "global_batch_size"),
    ],
)
def test_train_dataset_argument_errors(random_pairs, kwargs, name):
    arguments = dict(num_classes=5, crop_size=8, global_batch_size=1)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=name):
        make_seg_train_dataset(random_pairs, **arguments)


def test_eval_dataset_order_sizes_and_padding(tmp_path):
    labels = [blocks(16, 20, [0, 1]), blocks(12, 24, [2, 1]), blocks(16, 16, [1, 2])]
    pairs = write_pairs(tmp_path, labels)
    batches = first_batches(make_seg_eval_dataset(pairs, num_classes=3), 3)
    assert [b["label_path"][0].decode() for b in batches] == [p[1] for p in pairs]
    for batch, label in zip(batches, labels):
        np.testing.assert_array_equal(batch["label"][0], label)
        np.testing.assert_array_equal(decode(batch["image"][0]), label)
    padded = first_batches(make_seg_eval_dataset(pairs, num_classes=3, batch_size=2), 2)
    assert padded[0]["label"].shape == (2, 16, 24) and padded[1]["label"].shape == (1, 16, 16)
    assert (padded[0]["label"][0][:, 20:] == IGNORE).all()
    assert (padded[0]["image"][1][12:] == 0).all()
    resized = first_batches(
        make_seg_eval_dataset(pairs, num_classes=3, size=(8, 10), batch_size=3), 1
    )[0]
    assert resized["image"].shape == (3, 8, 10, 3)
    np.testing.assert_array_equal(resized["label"][0], labels[0][::2, ::2])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"(?s)001\.png.*\b2\b"):
        first_batches(
            make_seg_eval_dataset(pairs, num_classes=2, label_map=identity_label_map(2)), 3
        )


def test_two_input_pipelines_split_each_global_batch(random_pairs):
    def batches(input_context=None):
        return first_batches(
            make_seg_train_dataset(
                random_pairs,
                num_classes=5,
                crop_size=16,
                global_batch_size=4,
                seed=2,
                input_context=input_context,
            ),
            2,
        )

    whole = batches()
    parts = [batches(tf.distribute.InputContext(2, p, 2)) for p in range(2)]
    for step in range(2):
        assert parts[0][step]["label"].shape == (2, 16, 16)
        joined = np.concatenate([parts[0][step]["label"], parts[1][step]["label"]])
        np.testing.assert_array_equal(joined, whole[step]["label"])
