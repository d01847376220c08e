"""Procedural document pages (datasets.documents), their label set and crop preparation."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from datasets import crops, documents
from datasets.pairs import DatasetError, DatasetNotFoundError
from semantic_labels import load_label_set


def _luminance(image):
    return image.astype(np.float64).mean(axis=-1)


# ------------------------------------------------------------------------------------------
# Label set
# ------------------------------------------------------------------------------------------


def test_documents_label_set():
    labels = load_label_set("documents")
    assert labels.num_classes == 3
    assert labels.names == ("background", "printed_text", "handwritten_text")
    assert labels.colors.tolist() == [[0, 0, 0], [0, 0, 255], [255, 0, 0]]
    assert labels.dontcare_id is None
    assert labels.id_of("printed_text") == documents.PRINTED_TEXT
    assert labels.id_of("handwritten_text") == documents.HANDWRITTEN_TEXT


# ------------------------------------------------------------------------------------------
# render_page
# ------------------------------------------------------------------------------------------


def test_render_page_is_deterministic_and_seed_dependent():
    image, mask = documents.render_page(3, 96, 64)
    again_image, again_mask = documents.render_page(3, 96, 64)
    other_image, _ = documents.render_page(4, 96, 64)
    assert image.shape == (96, 64, 3) and image.dtype == np.uint8
    assert mask.shape == (96, 64) and mask.dtype == np.uint8
    np.testing.assert_array_equal(image, again_image)
    np.testing.assert_array_equal(mask, again_mask)
    assert np.abs(image.astype(int) - other_image.astype(int)).mean() > 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_render_page_labels_ink_of_both_kinds(seed):
    image, mask = documents.render_page(seed, 256, 192)
    assert set(np.unique(mask).tolist()) == {0, 1, 2}  # all three on a typical page
    counts = np.bincount(mask.ravel(), minlength=3)
    assert counts[0] > 0.8 * mask.size  # ink is sparse: pixels, not boxes
    assert counts[1] > 0.01 * mask.size and counts[2] > 0.001 * mask.size
    # Labelled pixels are ink: much darker than the paper around them.
    luminance = _luminance(image)
    paper = luminance[mask == 0].mean()
    assert paper > 180
    for class_id in (1, 2):
        assert luminance[mask == class_id].mean() < paper - 60


def test_render_page_ink_sits_where_labelled():
    image, mask = documents.render_page(5, 192, 128)
    luminance = _luminance(image)
    # Nearly every labelled pixel is darker than the median paper pixel.
    paper = np.median(luminance[mask == 0])
    assert (luminance[mask > 0] < paper - 20).mean() > 0.9


def test_render_page_rejects_bad_arguments():
    with pytest.raises(ValueError, match="seed"):
        documents.render_page(-1, 64, 64)
    with pytest.raises(ValueError, match="height"):
        documents.render_page(0, 8, 64)
    with pytest.raises(ValueError, match="width"):
        documents.render_page(0, 64, 2.5)


def test_missing_fonts_raise_error_naming_the_folder(tmp_path):
    with pytest.raises(documents.DocumentFontError, match=str(tmp_path)):
        documents.available_families(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        documents.available_families(str(tmp_path / "nowhere"))


# ------------------------------------------------------------------------------------------
# generate_documents
# ------------------------------------------------------------------------------------------

_TINY = {"num_train": 3, "num_val": 1, "height": 96, "width": 64, "seed": 7}


@pytest.fixture(scope="module")
def tiny_documents(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("documents") / "pages")
    return documents.generate_documents(root, progress=False, **_TINY)


def test_generate_documents_layout(tiny_documents):
    root = tiny_documents
    for split, count in (("training", 3), ("validation", 1)):
        names = sorted(os.listdir(os.path.join(root, "images", split)))
        assert names == [f"page_{k:05d}.png" for k in range(count)]
        assert sorted(os.listdir(os.path.join(root, "masks", split))) == names
    with Image.open(os.path.join(root, "images", "training", "page_00001.png")) as image:
        assert image.mode == "RGB" and image.size == (64, 96)
    with Image.open(os.path.join(root, "masks", "training", "page_00001.png")) as mask:
        assert mask.mode == "L" and mask.size == (64, 96)
        assert set(np.unique(np.asarray(mask)).tolist()) <= {0, 1, 2}
    # Pages are the ones render_page draws from the derived seeds.
    image, mask = documents.render_page(documents.page_seed(7, "validation", 0), 96, 64)
    stored = np.asarray(Image.open(os.path.join(root, "masks", "validation", "page_00000.png")))
    np.testing.assert_array_equal(stored, mask)
    with open(os.path.join(root, "documents_manifest.json"), encoding="utf-8") as file:
        manifest = json.load(file)
    assert manifest["label_set"] == "documents" and manifest["num_train"] == 3


def test_document_pairs_and_pair_lists(tiny_documents):
    training = documents.document_pairs(tiny_documents, "training")
    validation = documents.document_pairs(tiny_documents, "validation")
    assert len(training) == 3 and len(validation) == 1
    assert all(os.path.basename(a) == os.path.basename(b) for a, b in training)
    assert "masks" in training[0][1]
    # train_pairs.json: the {"pairs": [...]} list of datasets.segmentation.json_list_pairs,
    # paths relative to the JSON file.
    with open(os.path.join(tiny_documents, "train_pairs.json"), encoding="utf-8") as file:
        listed = json.load(file)["pairs"]
    resolved = [
        tuple(
            os.path.abspath(os.path.join(tiny_documents, entry[key])) for key in ("image", "label")
        )
        for entry in listed
    ]
    assert resolved == [tuple(map(os.path.abspath, pair)) for pair in training]
    with pytest.raises(DatasetError, match="split"):
        documents.document_pairs(tiny_documents, "test")


def test_generate_documents_reuses_and_refuses(tiny_documents, tmp_path):
    manifest = os.path.join(tiny_documents, "documents_manifest.json")
    before = os.path.getmtime(manifest)
    assert documents.generate_documents(tiny_documents, progress=False, **_TINY) == tiny_documents
    assert os.path.getmtime(manifest) == before  # reused, not rewritten
    with pytest.raises(ValueError, match=r"num_train: 3 there, 4 asked"):
        documents.generate_documents(tiny_documents, progress=False, **{**_TINY, "num_train": 4})
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="foreign"):
        documents.generate_documents(str(foreign), progress=False, **_TINY)
    assert (foreign / "notes.txt").read_text() == "mine"
    with pytest.raises(DatasetNotFoundError, match="foreign"):
        documents.document_pairs(str(foreign), "training")


def test_other_settings_regenerate_into_a_fresh_folder(tmp_path):
    small = {**_TINY, "num_train": 1, "num_val": 0}
    first = documents.generate_documents(
        documents.documents_root(str(tmp_path), **small), progress=False, **small
    )
    bigger = {**small, "height": 64}
    second = documents.generate_documents(
        documents.documents_root(str(tmp_path), **bigger), progress=False, **bigger
    )
    assert first != second
    assert len(documents.document_pairs(first, "training")) == 1
    assert documents.document_pairs(second, "validation") == []
    with Image.open(documents.document_pairs(second, "training")[0][0]) as image:
        assert image.size == (64, 64)
    with Image.open(documents.document_pairs(first, "training")[0][0]) as image:
        assert image.size == (64, 96)  # the old folder is untouched


def test_documents_cli(tmp_path, capsys):
    root = str(tmp_path / "cli")
    from tools.documents import main

    main(["--root", root, "--num_train", "1", "--num_val", "0", "--height", "48", "--width", "40"])
    assert capsys.readouterr().out.strip() == root
    assert len(documents.document_pairs(root, "training")) == 1


# ------------------------------------------------------------------------------------------
# prepare_crops
# ------------------------------------------------------------------------------------------

_PALETTE = np.array([[250, 250, 240], [20, 20, 200], [200, 20, 20]], np.uint8)


def _block_page(folder, name, height, width, block, seed):
    """A page whose colour is a function of its mask: blocks of random classes."""
    rng = np.random.default_rng(seed)
    grid = rng.integers(0, 3, ((height + block - 1) // block, (width + block - 1) // block))
    mask = np.kron(grid, np.ones((block, block), np.int64))[:height, :width].astype(np.uint8)
    os.makedirs(os.path.join(folder, "pages"), exist_ok=True)
    os.makedirs(os.path.join(folder, "masks"), exist_ok=True)
    Image.fromarray(_PALETTE[mask]).save(os.path.join(folder, "pages", name + ".png"))
    Image.fromarray(mask).save(os.path.join(folder, "masks", name + ".png"))


def _nearest_class(image):
    distance = ((image[..., None, :].astype(int) - _PALETTE.astype(int)) ** 2).sum(-1)
    return distance.argmin(-1)


def test_prepare_crops_counts_sizes_and_split(tmp_path):
    for k in range(3):
        _block_page(str(tmp_path), f"page{k}", 120 + 10 * k, 90, 8, k)
    out = str(tmp_path / "out")
    result = crops.prepare_crops(
        str(tmp_path / "pages"),
        out,
        num_crops=20,
        crop_size=32,
        max_side=200,
        min_side=60,
        progress=False,
    )
    files = sorted(os.listdir(os.path.join(out, "crops")))
    assert files == [f"{k:06d}.png" for k in range(20)]
    for name in files[:5]:
        with Image.open(os.path.join(out, "crops", name)) as tile:
            assert tile.size == (32, 32) and tile.mode == "RGB"
    with open(result["train"], encoding="utf-8") as file:
        train = json.load(file)
    with open(result["val"], encoding="utf-8") as file:
        val = json.load(file)
    assert (len(train), len(val)) == (18, 2) == (result["num_train"], result["num_val"])
    assert not set(train) & set(val) and len(set(train) | set(val)) == 20
    for path in train + val:  # relative to the JSON file
        assert not os.path.isabs(path) and path.startswith("crops/")
        assert os.path.isfile(os.path.join(os.path.dirname(result["train"]), path))
    assert result["train_pairs"] is None and not os.path.exists(os.path.join(out, "masks"))
    # The same seed gives the same tiles.
    again = crops.prepare_crops(
        str(tmp_path / "pages"),
        str(tmp_path / "again"),
        num_crops=20,
        crop_size=32,
        max_side=200,
        min_side=60,
        progress=False,
    )
    with open(again["val"], encoding="utf-8") as file:
        assert json.load(file) == val
    np.testing.assert_array_equal(
        np.asarray(Image.open(os.path.join(out, "crops", files[7]))),
        np.asarray(Image.open(os.path.join(str(tmp_path / "again"), "crops", files[7]))),
    )


def test_prepare_crops_scales_stay_within_limits(tmp_path):
    _block_page(str(tmp_path), "big", 400, 300, 16, 0)
    out = str(tmp_path / "out")
    crops.prepare_crops(
        input_dir=str(tmp_path / "pages"),
        output_dir=out,
        num_crops=30,
        crop_size=32,
        max_side=200,
        min_side=100,
        progress=False,
    )
    with open(os.path.join(out, "crops_manifest.json"), encoding="utf-8") as file:
        scales = [record["scale"] for record in json.load(file)["crops"]]
    # Shrunk to 200 px (x 0.5), then downscaled at most 2x to keep the longest side >= 100.
    assert min(scales) >= 0.25 - 1e-6 and max(scales) <= 0.5 + 1e-6
    assert max(scales) - min(scales) > 0.05  # factors are drawn per tile


def test_prepare_crops_mask_tiles_align_with_image_tiles(tmp_path):
    _block_page(str(tmp_path), "a", 160, 128, 8, 1)
    _block_page(str(tmp_path), "b", 150, 140, 8, 2)
    out = str(tmp_path / "exact")
    result = crops.prepare_crops(
        str(tmp_path / "pages"),
        out,
        num_crops=8,
        crop_size=48,
        downscale=(1, 1),
        masks_dir=str(tmp_path / "masks"),
        progress=False,
    )
    for k in range(8):
        tile = np.asarray(Image.open(os.path.join(out, "crops", f"{k:06d}.png")))
        mask = np.asarray(Image.open(os.path.join(out, "masks", f"{k:06d}.png")))
        assert mask.shape == (48, 48)
        np.testing.assert_array_equal(tile, _PALETTE[mask])  # scale 1: the very same pixels
    with open(result["train_pairs"], encoding="utf-8") as file:
        pairs = json.load(file)["pairs"]
    assert len(pairs) == result["num_train"]
    for pair in pairs:
        assert os.path.basename(pair["image"]) == os.path.basename(pair["label"])
        assert os.path.isfile(os.path.join(out, pair["label"]))

    # Downscaled tiles: the nearest-resampled mask still matches the filtered image.
    _block_page(str(tmp_path / "large"), "c", 600, 500, 64, 3)
    out = str(tmp_path / "scaled")
    crops.prepare_crops(
        str(tmp_path / "large" / "pages"),
        out,
        num_crops=6,
        crop_size=64,
        max_side=600,
        min_side=150,
        downscale=(2, 3),
        masks_dir=str(tmp_path / "large" / "masks"),
        progress=False,
    )
    for k in range(6):
        tile = np.asarray(Image.open(os.path.join(out, "crops", f"{k:06d}.png")))
        mask = np.asarray(Image.open(os.path.join(out, "masks", f"{k:06d}.png")))
        assert (_nearest_class(tile) == mask).mean() > 0.9


def test_prepare_crops_refuses_to_overwrite(tmp_path):
    _block_page(str(tmp_path), "a", 64, 64, 8, 0)
    out = tmp_path / "out"
    crops.prepare_crops(
        str(tmp_path / "pages"), str(out), num_crops=4, crop_size=32, progress=False
    )
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match=str(out)):
        crops.prepare_crops(
            str(tmp_path / "pages"), str(out), num_crops=2, crop_size=32, progress=False
        )
    crops.prepare_crops(
        str(tmp_path / "pages"), str(out), num_crops=2, crop_size=32, overwrite=True, progress=False
    )
    assert sorted(os.listdir(out / "crops")) == ["000000.png", "000001.png"]
    assert (out / "keep.txt").read_text() == "mine"  # never touches foreign files


def test_prepare_crops_errors_name_the_file(tmp_path):
    _block_page(str(tmp_path), "good", 64, 64, 8, 0)
    (tmp_path / "pages" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    with pytest.raises(DatasetError, match="broken.png"):
        crops.prepare_crops(
            str(tmp_path / "pages"),
            str(tmp_path / "out"),
            num_crops=4,
            crop_size=32,
            progress=False,
        )
    os.remove(tmp_path / "pages" / "broken.png")
    with pytest.raises(DatasetError, match=r"crop_size=128 .*good.png"):
        crops.prepare_crops(
            str(tmp_path / "pages"),
            str(tmp_path / "out2"),
            num_crops=4,
            crop_size=128,
            progress=False,
        )
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="empty"):
        crops.prepare_crops(
            str(tmp_path / "empty"), str(tmp_path / "out3"), num_crops=4, progress=False
        )
    with pytest.raises(DatasetNotFoundError, match="missing.png"):
        crops.prepare_crops(
            output_dir=str(tmp_path / "out4"),
            input_paths=[str(tmp_path / "missing.png")],
            num_crops=4,
            progress=False,
        )
    with pytest.raises(ValueError, match="exactly one"):
        crops.prepare_crops(output_dir=str(tmp_path / "out4"), num_crops=4)
    with pytest.raises(DatasetNotFoundError, match="good.png"):
        crops.prepare_crops(
            str(tmp_path / "pages"),
            str(tmp_path / "out5"),
            num_crops=4,
            crop_size=32,
            masks_dir=str(tmp_path / "empty"),
            progress=False,
        )
    with pytest.raises(ValueError, match="downscale"):
        crops.prepare_crops(
            str(tmp_path / "pages"),
            str(tmp_path / "out6"),
            num_crops=4,
            crop_size=32,
            downscale=(0.5, 2),
            progress=False,
        )


def test_prepare_crops_skips_small_pages_with_a_warning(tmp_path):
    _block_page(str(tmp_path), "large", 80, 80, 8, 0)
    _block_page(str(tmp_path), "tiny", 20, 40, 8, 1)
    pages = [str(tmp_path / "pages" / name) for name in ("large.png", "tiny.png")]
    with pytest.warns(UserWarning, match="tiny.png"):
        result = crops.prepare_crops(
            input_paths=pages,
            output_dir=str(tmp_path / "out"),
            num_crops=5,
            crop_size=32,
            progress=False,
        )
    assert [os.path.basename(p) for p in result["skipped"]] == ["tiny.png"]
    assert result["num_train"] + result["num_val"] == 5
    # Listed pages find their masks by file name.
    with pytest.warns(UserWarning):
        result = crops.prepare_crops(
            input_paths=pages,
            output_dir=str(tmp_path / "masked"),
            num_crops=3,
            crop_size=32,
            val_fraction=0.0,
            masks_dir=str(tmp_path / "masks"),
            progress=False,
        )
    assert result["num_val"] == 0
    assert sorted(os.listdir(tmp_path / "masked" / "masks")) == [
        "000000.png",
        "000001.png",
        "000002.png",
    ]


def test_crops_cli(tmp_path, capsys):
    from tools import crops as crops_tool

    _block_page(str(tmp_path), "a", 70, 70, 8, 0)
    result = crops_tool.main(
        [
            "--input_dir",
            str(tmp_path / "pages"),
            "--output_dir",
            str(tmp_path / "out"),
            "--num_crops",
            "10",
            "--crop_size",
            "32",
            "--val_fraction",
            "0.2",
            "--quiet",
        ]
    )
    assert (result["num_train"], result["num_val"]) == (8, 2)
    assert "8 training tiles" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        crops_tool.main(
            [
                "--input_dir",
                str(tmp_path / "pages"),
                "--output_dir",
                str(tmp_path / "out"),
                "--num_crops",
                "10",
                "--crop_size",
                "32",
                "--quiet",
            ]
        )
    assert "not empty" in capsys.readouterr().err


def test_prepare_crops_killed_run_resumes_to_the_same_tiles(tmp_path, monkeypatch):
    _block_page(str(tmp_path), "a", 64, 64, 8, 0)
    _block_page(str(tmp_path), "b", 80, 72, 8, 1)
    pages = str(tmp_path / "pages")
    settings = {"num_crops": 6, "crop_size": 32, "progress": False}
    crops.prepare_crops(pages, str(tmp_path / "straight"), **settings)

    save, calls = crops.save_image_atomic, []

    def killed_after_four(image, path, **kwargs):
        if len(calls) == 4:
            raise KeyboardInterrupt
        calls.append(path)
        return save(image, path, **kwargs)

    monkeypatch.setattr(crops, "save_image_atomic", killed_after_four)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        crops.prepare_crops(pages, str(out), **settings)
    monkeypatch.setattr(crops, "save_image_atomic", save)
    assert sorted(os.listdir(out / "crops")) == [f"{i:06d}.png" for i in range(4)]
    assert not (out / "train.json").exists()  # the lists mark a finished run
    before = (out / "crops" / "000000.png").stat().st_mtime_ns
    crops.prepare_crops(pages, str(out), **settings)
    assert (out / "crops" / "000000.png").stat().st_mtime_ns == before
    for name in ["train.json", "val.json", "crops_manifest.json"] + [
        f"crops/{i:06d}.png" for i in range(6)
    ]:
        assert (out / name).read_bytes() == (tmp_path / "straight" / name).read_bytes(), name
