import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from datasets import DATASETS, DatasetError, resolve_pairs
from datasets.pairs import ade20k_pairs, check_pairs_quick, diagnose_pairs, folder_pairs
from datasets.pipeline import (
    load_image,
    load_label_map,
    load_pair,
    make_eval_dataset,
    make_train_dataset,
    preprocess_eval,
    preprocess_train,
)
from datasets.scenes import (
    FIELD,
    GRASS,
    ROAD,
    SAND,
    SCENE_IDS,
    SKY,
    WATER,
    generate_scenes,
    render_scene,
    scene_seed,
)
from semantic_labels import load_label_set

# ------------------------------------------------------------------------------------------
# Helpers: tiny files written in tmp_path.
# ------------------------------------------------------------------------------------------


def save(path, array, **kwargs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return str(path)


def encoded_pair(directory, name, label):
    """A lossless image whose red channel is 2 * label and green channel 255 - 2 * label."""
    label = np.asarray(label, np.uint8)
    image = np.stack([label * 2, 255 - label * 2, np.zeros_like(label)], axis=-1)
    return (
        save(os.path.join(directory, "images", name + ".png"), image),
        save(os.path.join(directory, "labels", name + ".png"), label),
    )


def random_label(seed, height, width, high=100):
    return np.random.default_rng(seed).integers(0, high, (height, width)).astype(np.uint8)


def to_uint8(image):
    return np.round((np.asarray(image) + 1.0) * 127.5).astype(np.int32)


def batches(dataset, count):
    return [{k: v.numpy() for k, v in batch.items()} for batch in dataset.take(count)]


@pytest.fixture
def constant_pairs(tmp_path):
    """Six 32x32 pairs; file f has label value f + 1 everywhere, so labels identify files."""
    return [encoded_pair(tmp_path, f"f{f}", np.full((32, 32), f + 1)) for f in range(6)]


@pytest.fixture
def random_pairs(tmp_path):
    return [encoded_pair(tmp_path, f"r{f}", random_label(f, 40, 40)) for f in range(5)]


def ade_layout(
    root, split="training", stems=("ADE_train_00000001", "ADE_train_00000002"), annotations=None
):
    annotations = stems if annotations is None else annotations
    base = os.path.join(root, "ADEChallengeData2016")
    for stem in stems:
        save(os.path.join(base, "images", split, stem + ".jpg"), np.zeros((8, 8, 3), np.uint8))
    for stem in annotations:
        save(os.path.join(base, "annotations", split, stem + ".png"), np.zeros((8, 8), np.uint8))
    return base


# ------------------------------------------------------------------------------------------
# Procedural scenes.
# ------------------------------------------------------------------------------------------


def test_render_scene_is_deterministic():
    image_a, label_a = render_scene(7, 48, 48)
    image_b, label_b = render_scene(7, 48, 48)
    np.testing.assert_array_equal(image_a, image_b)
    np.testing.assert_array_equal(label_a, label_b)
    image_c, label_c = render_scene(8, 48, 48)
    assert not np.array_equal(image_a, image_c)
    assert not np.array_equal(label_a, label_c)


def test_scene_ids_match_the_scenes_label_set():
    assert tuple(sorted(SCENE_IDS)) == load_label_set("scenes").used_ids


def test_scene_labels_are_scenes_ids_with_several_classes():
    used = set(load_label_set("scenes").used_ids)
    counts = []
    for seed in range(10):
        image, label = render_scene(seed, 64, 64)
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8
        assert label.shape == (64, 64) and label.dtype == np.uint8
        assert set(np.unique(label).tolist()) <= used
        counts.append(len(np.unique(label)))
        assert image.std() > 10  # textured, not flat
    assert sum(count >= 4 for count in counts) >= 8, counts


def test_sky_is_above_the_ground():
    for seed in range(6):
        _, label = render_scene(seed, 64, 64)
        rows = np.arange(64)[:, None] * np.ones((1, 64))
        ground = np.isin(label, (GRASS, ROAD, SAND, FIELD, WATER))
        assert (label == SKY).any() and ground.any()
        assert rows[label == SKY].mean() < rows[ground].mean()
        assert (label[0] == SKY).mean() > 0.5  # the top row is mostly sky


@pytest.mark.parametrize("height, width", [(32, 80), (80, 32), (33, 47)])
def test_non_square_scenes(height, width):
    image, label = render_scene(3, height, width)
    assert image.shape == (height, width, 3) and label.shape == (height, width)


def test_a_seed_gives_the_same_scene_at_every_resolution():
    _, small = render_scene(11, 64, 64)
    _, large = render_scene(11, 128, 128)
    # Pixel centres differ by a quarter pixel, so only boundaries may disagree.
    assert (small == large[1::2, 1::2]).mean() > 0.9


@pytest.mark.parametrize(
    "args, name", [((0, 8, 64), "height"), ((0, 64, 15), "width"), ((-1, 64, 64), "seed")]
)
def test_render_scene_rejects_bad_arguments(args, name):
    with pytest.raises(ValueError, match=name):
        render_scene(*args)


def test_validation_seeds_are_disjoint_from_training():
    train = {scene_seed(0, "training", i) for i in range(1000)}
    val = {scene_seed(0, "validation", i) for i in range(1000)}
    other = {scene_seed(1, "training", i) for i in range(1000)}
    assert not train & val and not train & other


def test_generate_scenes_writes_the_ade20k_layout(tmp_path):
    path = generate_scenes(str(tmp_path), num_train=3, num_val=2, size=32, progress=False)
    assert path == os.path.join(str(tmp_path), "ADEChallengeData2016")
    image_path = os.path.join(path, "images", "training", "ADE_train_00000003.jpg")
    label_path = os.path.join(path, "annotations", "validation", "ADE_val_00000002.png")
    with Image.open(image_path) as image:
        assert image.format == "JPEG" and image.size == (32, 32) and image.mode == "RGB"
    with Image.open(label_path) as label:
        assert label.mode == "L" and label.size == (32, 32)
        np.testing.assert_array_equal(
            np.asarray(label), render_scene(scene_seed(0, "validation", 1), 32, 32)[1]
        )
    assert len(ade20k_pairs(str(tmp_path), "training")) == 3
    assert len(ade20k_pairs(path, "validation")) == 2
    assert os.path.isfile(os.path.join(path, "scenes_manifest.json"))


def snapshot(folder):
    return {
        os.path.join(d, f): os.stat(os.path.join(d, f)).st_mtime_ns
        for d, _, files in os.walk(folder)
        for f in files
    }


def test_generate_scenes_is_idempotent_and_never_overwrites(tmp_path):
    path = generate_scenes(str(tmp_path), num_train=2, num_val=1, size=32, progress=False)
    before = snapshot(path)
    assert generate_scenes(str(tmp_path), num_train=2, num_val=1, size=32) == path
    assert snapshot(path) == before
    with pytest.raises(ValueError, match="num_train: 2 there, 3 asked") as error:
        generate_scenes(str(tmp_path), num_train=3, num_val=1, size=32, progress=False)
    assert path in str(error.value)
    with pytest.raises(ValueError, match="size"):
        generate_scenes(str(tmp_path), num_train=2, num_val=1, size=48, progress=False)
    assert snapshot(path) == before


def test_generate_scenes_refuses_a_folder_without_manifest(tmp_path):
    folder = tmp_path / "ADEChallengeData2016"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="no scenes_manifest.json.*Remove") as error:
        generate_scenes(str(tmp_path), num_train=2, num_val=1, size=32, progress=False)
    assert str(folder) in str(error.value)
    assert (folder / "keep.txt").read_text() == "mine"


def test_scenes_command_line(tmp_path, capsys):
    from tools.scenes import main

    main(["--out", str(tmp_path), "--num_train", "2", "--num_val", "1", "--size", "32"])
    assert "ADEChallengeData2016" in capsys.readouterr().out
    assert len(ade20k_pairs(str(tmp_path), "training")) == 2


# ------------------------------------------------------------------------------------------
# File lists.
# ------------------------------------------------------------------------------------------


def test_ade20k_pairs_match_by_stem(tmp_path):
    base = ade_layout(tmp_path, stems=("ADE_train_00000002", "ADE_train_00000001"))
    for root in (str(tmp_path), base):
        pairs = ade20k_pairs(root, "training")
        assert [os.path.basename(p) for p, _ in pairs] == [
            "ADE_train_00000001.jpg",
            "ADE_train_00000002.jpg",
        ]
        assert all(
            os.path.splitext(os.path.basename(i))[0] == os.path.splitext(os.path.basename(a))[0]
            for i, a in pairs
        )


def test_ade20k_pairs_errors(tmp_path):
    with pytest.raises(DatasetError, match="split 'train'"):
        ade20k_pairs(str(tmp_path), "train")
    with pytest.raises(DatasetError, match="missing_root"):
        ade20k_pairs(str(tmp_path / "missing_root"), "training")
    ade_layout(tmp_path, stems=("a", "b", "c"), annotations=("a", "d"))
    with pytest.raises(DatasetError) as error:
        ade20k_pairs(str(tmp_path), "training")
    message = str(error.value)
    assert "2 image(s)" in message and "b, c" in message and "d" in message
    with pytest.raises(FileNotFoundError, match="validation"):
        ade20k_pairs(str(tmp_path), "validation")


def test_ade20k_pairs_empty_folder(tmp_path):
    base = ade_layout(tmp_path, stems=())
    os.makedirs(os.path.join(base, "images", "training"))
    os.makedirs(os.path.join(base, "annotations", "training"))
    with pytest.raises(DatasetError, match="has no .jpg images"):
        ade20k_pairs(str(tmp_path), "training")


def test_folder_pairs_recursive_by_relative_stem(tmp_path):
    for sub, ext in (("city/a", ".jpg"), ("city/b", ".PNG"), ("forest/a", ".webp")):
        save(tmp_path / "img" / (sub + ext), np.zeros((4, 4, 3), np.uint8))
        save(tmp_path / "lab" / (sub + ".png"), np.zeros((4, 4), np.uint8))
    (tmp_path / "img" / ".DS_Store").write_text("junk")
    pairs = folder_pairs(str(tmp_path / "img"), str(tmp_path / "lab"))
    assert [os.path.relpath(label, tmp_path / "lab") for _, label in pairs] == [
        os.path.join("city", "a.png"),
        os.path.join("city", "b.png"),
        os.path.join("forest", "a.png"),
    ]
    assert pairs[2][0].endswith(os.path.join("forest", "a.webp"))


def test_folder_pairs_errors_name_the_flags(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    with pytest.raises(DatasetError, match=r"--image_dir=\S*img has no images"):
        folder_pairs(str(tmp_path / "img"), str(tmp_path / "lab"))
    with pytest.raises(FileNotFoundError, match=r"--image_dir=\S*nowhere does not exist"):
        folder_pairs(str(tmp_path / "nowhere"), str(tmp_path / "lab"))
    save(tmp_path / "img" / "x.jpg", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DatasetError, match=r"--val_label_dir=\S*lab has no .png"):
        folder_pairs(
            str(tmp_path / "img"),
            str(tmp_path / "lab"),
            image_flag="--val_image_dir",
            label_flag="--val_label_dir",
        )
    save(tmp_path / "lab" / "y.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(DatasetError, match=r"no label map in --label_dir=\S*lab: x"):
        folder_pairs(str(tmp_path / "img"), str(tmp_path / "lab"))
    save(tmp_path / "img" / "x.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DatasetError, match="share the stem 'x'"):
        folder_pairs(str(tmp_path / "img"), str(tmp_path / "lab"))


def test_diagnose_pairs_accepts_good_pairs(random_pairs):
    assert diagnose_pairs(random_pairs, num_classes=100) is None
    check_pairs_quick(random_pairs)


def test_diagnose_pairs_finds_corrupt_and_truncated_images(tmp_path, random_pairs):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(DatasetError, match="corrupt.jpg"):
        diagnose_pairs(random_pairs[:2] + [(str(corrupt), random_pairs[0][1])], 100)
    full = save(
        tmp_path / "full.jpg",
        np.random.default_rng(0).integers(0, 255, (40, 40, 3)).astype(np.uint8),
        quality=95,
    )
    data = open(full, "rb").read()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="truncated.jpg"):
        diagnose_pairs([(str(tmp_path / "truncated.jpg"), random_pairs[0][1])], 100)


def test_diagnose_pairs_finds_size_mismatch(tmp_path, random_pairs):
    label = save(tmp_path / "small.png", np.zeros((20, 30), np.uint8))
    with pytest.raises(DatasetError) as error:
        diagnose_pairs([(random_pairs[0][0], label)], 100)
    message = str(error.value)
    assert random_pairs[0][0] in message and "small.png" in message
    assert "40x40" in message and "30x20" in message


def test_diagnose_pairs_finds_labels_out_of_range(tmp_path, random_pairs):
    label = np.zeros((40, 40), np.uint8)
    label[3, 4] = 151
    path = save(tmp_path / "bad_label.png", label)
    with pytest.raises(DatasetError, match=r"bad_label.png holds value 151.*\[0, 150\]"):
        diagnose_pairs(random_pairs[:1] + [(random_pairs[1][0], path)], num_classes=151)


@pytest.mark.parametrize("mode, match", [("P", "palette"), ("RGB", "mode 'RGB'")])
def test_diagnose_pairs_rejects_non_grey_labels(tmp_path, random_pairs, mode, match):
    path = str(tmp_path / "label.png")
    Image.fromarray(np.zeros((40, 40), np.uint8)).convert(mode).save(path)
    with pytest.raises(DatasetError, match=match):
        diagnose_pairs([(random_pairs[0][0], path)], num_classes=151)
    with pytest.raises(DatasetError, match=match):
        check_pairs_quick([(random_pairs[0][0], path)])


def test_check_pairs_quick_names_missing_files(random_pairs, tmp_path):
    with pytest.raises(FileNotFoundError, match="gone.png"):
        check_pairs_quick(random_pairs + [(random_pairs[0][0], str(tmp_path / "gone.png"))])


# ------------------------------------------------------------------------------------------
# resolve_pairs.
# ------------------------------------------------------------------------------------------


def test_resolve_pairs_scenes_generates_on_demand(tmp_path):
    train = resolve_pairs(
        "scenes", "training", data_root=str(tmp_path), scenes_size=32, num_scenes=10
    )
    val = resolve_pairs(
        "scenes", "validation", data_root=str(tmp_path), scenes_size=32, num_scenes=10
    )
    assert len(train) == 10 and len(val) == 1
    assert os.path.join("scenes_32", "ADEChallengeData2016") in train[0][0]


def test_resolve_pairs_folders_and_errors(tmp_path, random_pairs):
    image_dir, label_dir = str(tmp_path / "images"), str(tmp_path / "labels")
    assert len(resolve_pairs("folders", "training", image_dir=image_dir, label_dir=label_dir)) == 5
    assert resolve_pairs("folders", "validation", image_dir=image_dir, label_dir=label_dir) == []
    assert (
        len(
            resolve_pairs("folders", "validation", val_image_dir=image_dir, val_label_dir=label_dir)
        )
        == 5
    )
    with pytest.raises(ValueError, match="--label_dir"):
        resolve_pairs("folders", "training", image_dir=image_dir)
    with pytest.raises(ValueError, match="--val_image_dir"):
        resolve_pairs("folders", "validation", val_label_dir=label_dir)
    with pytest.raises(ValueError, match="--dataset='facesynthetics'.*scenes, ade20k, folders"):
        resolve_pairs("facesynthetics", "training", choices=DATASETS)
    with pytest.raises(ValueError, match="split"):
        resolve_pairs("scenes", "test")


def test_resolve_pairs_ade20k(tmp_path):
    ade_layout(tmp_path)
    assert len(resolve_pairs("ade20k", "training", data_root=str(tmp_path))) == 2


def test_resolve_pairs_is_one_resolver_for_every_source(tmp_path, random_pairs):
    # Folders and a JSON list of the same files give the same pairs; `choices` (SPADE passes
    # DATASETS) refuses the sources a caller does not read, naming the ones it does.
    image_dir, label_dir = str(tmp_path / "images"), str(tmp_path / "labels")
    folders = resolve_pairs("folders", "training", image_dir=image_dir, label_dir=label_dir)
    listing = tmp_path / "pairs.json"
    entries = [{"image": image, "label": label} for image, label in folders]
    listing.write_text(json.dumps({"pairs": entries}))
    assert resolve_pairs("json", "training", train_list=str(listing)) == folders
    assert resolve_pairs("json", "validation", train_list=str(listing)) == []
    with pytest.raises(DatasetError, match="--dataset='json' is not one of: scenes, ade20k, fo"):
        resolve_pairs("json", "training", train_list=str(listing), choices=DATASETS)
    with pytest.raises(DatasetError, match="--dataset='coco' is not one of: scenes, ade20k, fo"):
        resolve_pairs("coco", "training")


# ------------------------------------------------------------------------------------------
# Preprocessing and tf.data pipelines.
# ------------------------------------------------------------------------------------------


def test_load_pair(random_pairs):
    pair = load_pair(random_pairs[0][0], random_pairs[0][1], num_classes=100)
    assert pair["image"].shape == (40, 40, 3) and pair["image"].dtype == tf.uint8
    assert pair["label"].shape == (40, 40) and pair["label"].dtype == tf.uint8
    np.testing.assert_array_equal(pair["label"].numpy(), random_label(0, 40, 40))


def test_preprocess_train_crops_and_flips_image_and_label_together():
    label = random_label(1, 40, 40)
    image = np.stack([label * 2, 255 - label * 2, np.zeros_like(label)], axis=-1)
    crops, flips = set(), set()
    for i in range(16):
        out_image, out_label = preprocess_train(
            image, label, [5, i], load_size=40, crop_size=32, flip=True
        )
        assert out_image.shape == (32, 32, 3) and out_image.dtype == tf.float32
        assert out_label.shape == (32, 32) and out_label.dtype == tf.int32
        pixels, out_label = to_uint8(out_image), out_label.numpy()
        # Every pixel still shows its own label: one crop and one flip for both.
        np.testing.assert_array_equal(pixels[..., 0], out_label * 2)
        np.testing.assert_array_equal(pixels[..., 1], 255 - out_label * 2)
        _, plain = preprocess_train(image, label, [5, i], 40, 32, flip=False)
        plain = plain.numpy()
        # The unflipped crop is a window of the input; the flipped one its mirror.
        found = [
            (r, c)
            for r in range(9)
            for c in range(9)
            if np.array_equal(label[r : r + 32, c : c + 32], plain)
        ]
        assert len(found) == 1
        crops.add(found[0])
        if np.array_equal(out_label, plain):
            flips.add(False)
        else:
            np.testing.assert_array_equal(out_label, plain[:, ::-1])
            flips.add(True)
    assert flips == {True, False} and len(crops) > 4


def test_preprocess_train_resizes_then_crops_in_range():
    label = random_label(2, 24, 36)
    image = np.stack([label * 2, 255 - label * 2, label], axis=-1)
    out_image, out_label = preprocess_train(image, label, [0, 0], 48, 40, True)
    assert out_image.shape == (40, 40, 3) and out_label.shape == (40, 40)
    assert -1.0 <= float(tf.reduce_min(out_image)) and float(tf.reduce_max(out_image)) <= 1.0
    assert set(np.unique(out_label.numpy())) <= set(np.unique(label))
    with pytest.raises(ValueError, match="crop_size"):
        preprocess_train(image, label, [0, 0], 32, 40, True)


@pytest.mark.parametrize("shape", [(48, 40), (24, 20)])
def test_preprocess_functions_agree_eagerly_and_in_tf_data(shape):
    label = random_label(3, *shape)
    image = np.random.default_rng(4).integers(0, 256, shape + (3,)).astype(np.uint8)
    eager_train = preprocess_train(image, label, [9, 3], 36, 32, True)
    eager_eval = preprocess_eval(image, label, 32)
    dataset = tf.data.Dataset.from_tensors((image, label)).map(
        lambda i, m: (
            preprocess_train(i, m, tf.constant([9, 3], tf.int64), 36, 32, True),
            preprocess_eval(i, m, 32),
        )
    )
    graph_train, graph_eval = next(iter(dataset))
    for eager, graph in zip(eager_train + eager_eval, graph_train + graph_eval):
        np.testing.assert_allclose(eager.numpy(), graph.numpy(), atol=1e-6)
    assert eager_eval[0].shape == (32, 32, 3) and eager_eval[1].dtype == tf.int32


def test_preprocess_eval_resizes_label_by_nearest():
    label = np.repeat(np.repeat(random_label(5, 8, 8), 4, axis=0), 4, axis=1)  # 32 x 32
    image = np.stack([label * 2] * 3, axis=-1)
    _, out_label = preprocess_eval(image, label, 16)
    # Down by 2 on 4 x 4 blocks: nearest keeps every class exactly.
    np.testing.assert_array_equal(out_label.numpy(), label[::2, ::2])


def test_train_dataset_shapes_and_ranges(random_pairs):
    dataset = make_train_dataset(
        random_pairs, num_classes=100, load_size=40, crop_size=32, global_batch_size=3
    )
    (batch,) = batches(dataset, 1)
    assert set(batch) == {"image", "label"}
    assert batch["image"].shape == (3, 32, 32, 3) and batch["image"].dtype == np.float32
    assert batch["label"].shape == (3, 32, 32) and batch["label"].dtype == np.int32
    assert batch["image"].min() >= -1.0 and batch["image"].max() <= 1.0
    np.testing.assert_array_equal(to_uint8(batch["image"])[..., 0], batch["label"] * 2)


def test_train_dataset_visits_each_file_once_per_epoch(constant_pairs):
    dataset = make_train_dataset(
        constant_pairs, num_classes=10, load_size=32, crop_size=32, global_batch_size=3, seed=1
    )
    files = [int(label[0, 0]) for batch in batches(dataset, 6) for label in batch["label"]]
    assert sorted(files[:6]) == sorted(files[6:12]) == sorted(files[12:]) == [1, 2, 3, 4, 5, 6]
    assert files[:6] != files[6:12]  # a new permutation each epoch
    other_seed = make_train_dataset(
        constant_pairs, num_classes=10, load_size=32, crop_size=32, global_batch_size=3, seed=2
    )
    files_2 = [int(label[0, 0]) for batch in batches(other_seed, 6) for label in batch["label"]]
    assert files_2 != files


def test_train_dataset_is_reproducible_and_resumable(random_pairs):
    def make(**kwargs):
        return make_train_dataset(
            random_pairs,
            num_classes=100,
            load_size=40,
            crop_size=32,
            global_batch_size=2,
            seed=3,
            **kwargs,
        )

    from_zero = batches(make(), 6)
    again = batches(make(), 6)
    resumed = batches(make(start_step=4), 2)
    for a, b in zip(from_zero, again):
        np.testing.assert_array_equal(a["image"], b["image"])
    for a, b in zip(from_zero[4:], resumed):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["label"], b["label"])
    assert not np.array_equal(from_zero[0]["image"], from_zero[3]["image"])


def test_two_input_pipelines_split_each_global_batch(random_pairs):
    def make(context=None):
        return make_train_dataset(
            random_pairs,
            num_classes=100,
            load_size=40,
            crop_size=32,
            global_batch_size=4,
            seed=5,
            start_step=1,
            input_context=context,
        )

    single = batches(make(), 3)
    halves = [
        batches(
            make(
                tf.distribute.InputContext(
                    num_input_pipelines=2, input_pipeline_id=p, num_replicas_in_sync=2
                )
            ),
            3,
        )
        for p in range(2)
    ]
    for step in range(3):
        assert halves[0][step]["image"].shape[0] == 2
        for key in ("image", "label"):
            joined = np.concatenate([halves[0][step][key], halves[1][step][key]])
            np.testing.assert_array_equal(joined, single[step][key])


def test_train_dataset_argument_errors(random_pairs):
    with pytest.raises(DatasetError, match="no \\(image, label\\) pairs"):
        make_train_dataset([], num_classes=10, global_batch_size=2)
    with pytest.raises(ValueError, match="global_batch_size"):
        make_train_dataset(random_pairs, num_classes=10, global_batch_size=0)
    with pytest.raises(ValueError, match="crop_size"):
        make_train_dataset(
            random_pairs, num_classes=10, global_batch_size=2, load_size=32, crop_size=40
        )
    with pytest.raises(ValueError, match="divisible"):
        make_train_dataset(
            random_pairs,
            num_classes=10,
            global_batch_size=3,
            input_context=tf.distribute.InputContext(2, 0, 2),
        )


def test_in_graph_error_names_label_out_of_range(tmp_path, random_pairs):
    label = np.zeros((40, 40), np.uint8)
    label[0, 0] = 200
    bad = save(tmp_path / "too_high_label.png", label)
    pairs = [(random_pairs[0][0], bad)]
    dataset = make_train_dataset(
        pairs, num_classes=151, load_size=40, crop_size=32, global_batch_size=1
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="too_high_label.png"):
        batches(dataset, 1)
    with pytest.raises(tf.errors.InvalidArgumentError, match="too_high_label.png"):
        batches(make_eval_dataset(pairs, num_classes=151, size=32, batch_size=1), 1)


def test_in_graph_error_names_size_mismatch(tmp_path, random_pairs):
    bad = save(tmp_path / "wrong_size_label.png", np.zeros((40, 44), np.uint8))
    dataset = make_eval_dataset([(random_pairs[0][0], bad)], num_classes=151, size=32, batch_size=1)
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        batches(dataset, 1)
    assert "wrong_size_label.png" in str(error.value)
    assert os.path.basename(random_pairs[0][0]) in str(error.value)


def test_in_graph_error_names_palette_label(tmp_path, random_pairs):
    path = str(tmp_path / "palette_label.png")
    Image.fromarray(np.zeros((40, 40), np.uint8)).convert("P").save(path)
    dataset = make_eval_dataset(
        [(random_pairs[0][0], path)], num_classes=151, size=32, batch_size=1
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="palette_label.png"):
        batches(dataset, 1)


def test_eval_dataset_keeps_order_and_last_batch(random_pairs):
    dataset = make_eval_dataset(random_pairs, num_classes=100, size=32, batch_size=2)
    result = batches(dataset, 10)
    assert [len(b["label_path"]) for b in result] == [2, 2, 1]
    paths = [p.decode() for b in result for p in b["label_path"]]
    assert paths == [label for _, label in random_pairs]
    assert result[0]["image"].shape == (2, 32, 32, 3)
    assert result[0]["label"].dtype == np.int32
    # Nearest neighbour invents no values.
    assert set(np.unique(result[0]["label"][0])) <= set(np.unique(random_label(0, 40, 40)))


def test_numpy_loaders(tmp_path, random_pairs):
    image = load_image(random_pairs[0][0])
    assert image.shape == (40, 40, 3) and image.dtype == np.uint8
    label = load_label_map(random_pairs[0][1])
    np.testing.assert_array_equal(label, random_label(0, 40, 40))
    palette = str(tmp_path / "palette.png")
    Image.fromarray(random_label(0, 8, 8, high=5)).convert("P").save(palette)
    np.testing.assert_array_equal(load_label_map(palette), random_label(0, 8, 8, high=5))
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_label_map(str(tmp_path / "missing.png"))
    with pytest.raises(ValueError, match="palette.png holds value 4"):
        load_label_map(palette, num_classes=3)
    with pytest.raises(ValueError, match=r"mode 'RGB'"):
        load_label_map(random_pairs[0][0])
    (tmp_path / "broken.jpg").write_bytes(b"nope")
    with pytest.raises(ValueError, match="broken.jpg"):
        load_image(str(tmp_path / "broken.jpg"))
