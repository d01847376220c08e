"""The procedural streets: rendering, the Cityscapes layout on disk, the resolver, the tool."""

import os

import numpy as np
import pytest
from PIL import Image

from datasets import resolve_pairs
from datasets.pairs import cityscapes_pairs
from datasets.streets import (
    BUILDING,
    CAR,
    ROAD,
    SKY,
    STREET_IDS,
    VEGETATION,
    class_proportions,
    generate_streets,
    render_street,
    street_seed,
)
from semantic_labels import load_label_set


def test_render_street_is_deterministic_and_uses_cityscapes_label_ids():
    image, label = render_street(3, 64, 128)
    again_image, again_label = render_street(3, 64, 128)
    assert image.shape == (64, 128, 3) and image.dtype == np.uint8
    assert label.shape == (64, 128) and label.dtype == np.uint8
    np.testing.assert_array_equal(image, again_image)
    np.testing.assert_array_equal(label, again_label)
    # Every pixel is painted, with a class the Cityscapes label set maps to a train id.
    assert set(np.unique(label)) <= set(STREET_IDS)
    assert set(STREET_IDS) <= set(load_label_set("cityscapes").source_ids)
    assert not np.array_equal(render_street(4, 64, 128)[1], label)


def test_streets_are_perspective_scenes_with_varied_class_proportions():
    shares = [class_proportions(render_street(seed, 64, 128)[1]) for seed in range(24)]
    for share, seed in zip(shares, range(24)):
        label = render_street(seed, 64, 128)[1]
        # Sky on top, road at the bottom centre (the camera drives on it).
        assert share.get(ROAD, 0) > 0.1, seed
        assert label[-1, 64] == ROAD or label[-1, 64] == CAR, seed
        assert SKY not in label[-8:], seed
    # The kinds of street differ a lot: some are mostly buildings, some open and green.
    building = np.array([s.get(BUILDING, 0.0) for s in shares])
    green = np.array([s.get(VEGETATION, 0.0) + s.get(22, 0.0) for s in shares])
    assert building.max() > 0.3 and building.min() < 0.05
    assert green.max() > 0.3
    classes_seen = set().union(*shares)
    assert {7, 8, 11, 17, 20, 21, 22, 23, 24, 26} <= classes_seen
    assert classes_seen & {12, 13}  # wall or fence


def test_a_seed_gives_the_same_street_at_every_resolution():
    small = render_street(7, 32, 64)[1]
    large = render_street(7, 64, 128)[1]
    agree = np.mean(large[::2, ::2] == small)  # the pixels sampled at nearly the same spot
    assert agree > 0.85


@pytest.mark.parametrize("args", [(-1, 32, 64), (0, 8, 64), (0, 32, 15.5), (True, 32, 64)])
def test_render_street_rejects_bad_arguments(args):
    with pytest.raises(ValueError):
        render_street(*args)


def _snapshot(folder):
    return {
        os.path.join(d, f): os.stat(os.path.join(d, f)).st_mtime_ns
        for d, _, files in os.walk(folder)
        for f in files
    }


def test_generate_streets_writes_the_cityscapes_layout(tmp_path):
    root = str(tmp_path / "streets")
    assert generate_streets(root, num_train=3, num_val=1, height=32, width=64) == root
    pairs = cityscapes_pairs(root, "train")
    assert [os.path.basename(i) for i, _ in pairs] == [
        f"synthstadt_{i:06d}_000019_leftImg8bit.png" for i in range(3)
    ]
    image_path, label_path = cityscapes_pairs(root, "validation")[0]
    assert label_path.endswith(
        os.path.join("gtFine", "val", "synthstadt", "synthstadt_000000_000019_gtFine_labelIds.png")
    )
    with Image.open(label_path) as label, Image.open(image_path) as image:
        assert label.mode == "L" and image.mode == "RGB" and image.size == (64, 32)
        np.testing.assert_array_equal(
            np.asarray(label), render_street(street_seed(0, "validation", 0), 32, 64)[1]
        )
    color = label_path.replace("_labelIds.png", "_color.png")
    with Image.open(color) as colored:
        road = np.asarray(colored)[np.asarray(Image.open(label_path)) == ROAD]
        assert (road == [128, 64, 128]).all()  # the official Cityscapes road colour
    assert os.path.isfile(os.path.join(root, "streets_manifest.json"))


def test_generate_streets_is_idempotent_resumable_and_never_overwrites(tmp_path):
    root = str(tmp_path / "streets")
    generate_streets(root, num_train=2, num_val=1, height=32, width=64, progress=False)
    before = _snapshot(root)
    generate_streets(root, num_train=2, num_val=1, height=32, width=64)
    assert _snapshot(root) == before
    with pytest.raises(ValueError, match="width: 64 there, 96 asked") as error:
        generate_streets(root, num_train=2, num_val=1, height=32, width=96, progress=False)
    assert root in str(error.value)
    assert _snapshot(root) == before

    # A generation killed half-way: its parameters are on disk, the manifest is not.
    interrupted = str(tmp_path / "interrupted")
    generate_streets(interrupted, num_train=2, num_val=1, height=32, width=64, progress=False)
    manifest = os.path.join(interrupted, "streets_manifest.json")
    os.rename(manifest, os.path.join(interrupted, "streets_manifest.inprogress.json"))
    kept = cityscapes_pairs(interrupted, "train")[0][0]
    os.remove(cityscapes_pairs(interrupted, "train")[1][0])
    mtime = os.stat(kept).st_mtime_ns
    generate_streets(interrupted, num_train=2, num_val=1, height=32, width=64, progress=False)
    assert os.stat(kept).st_mtime_ns == mtime  # kept, not redrawn
    assert len(cityscapes_pairs(interrupted, "train")) == 2 and os.path.isfile(manifest)
    assert not os.path.exists(os.path.join(interrupted, "streets_manifest.inprogress.json"))

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep")
    with pytest.raises(ValueError, match="no streets_manifest.json"):
        generate_streets(str(foreign), num_train=1, num_val=0, height=32, width=64)
    assert (foreign / "mine.txt").read_text() == "keep"


def test_resolve_pairs_generates_streets_and_segmentation_reads_them(tmp_path):
    from datasets import segmentation as seg_data

    kwargs = dict(data_root=str(tmp_path), num_streets=10, streets_height=32, streets_width=64)
    train = resolve_pairs("streets", "training", **kwargs)
    val = resolve_pairs("streets", "validation", **kwargs)
    assert len(train) == 10 and len(val) == 1
    assert os.path.isdir(tmp_path / "streets_32x64" / "leftImg8bit" / "train")
    label_set = seg_data.dataset_label_set("streets")
    assert label_set.name == "cityscapes"
    label_map, num_classes = seg_data.dataset_label_map("streets")
    assert num_classes == 19
    raw = np.asarray(Image.open(train[0][1]))
    train_ids = label_map[raw]
    assert ((train_ids >= 0) & (train_ids < 19)).all()  # no void: every pixel is a class
    assert label_map[ROAD] == 0 and label_map[SKY] == 10 and label_map[CAR] == 13


def test_streets_command_line(tmp_path, capsys):
    from tools.streets import main

    out = str(tmp_path / "s")
    main(["--out", out, "--num_train", "2", "--num_val", "1", "--height", "32", "--width", "48"])
    assert capsys.readouterr().out.strip() == out
    assert len(cityscapes_pairs(out, "train")) == 2
    with pytest.raises(SystemExit) as stop:
        main(["--out", out, "--num_train", "2", "--num_val", "1", "--height", "8"])
    assert stop.value.code == 2
    assert "height must be an integer >= 16" in capsys.readouterr().err
