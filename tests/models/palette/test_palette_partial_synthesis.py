"""Partial editing of given layouts (synthesize.py --model=palette --partial,
models/palette/partial.py), its bad inputs, and the demos' partial-editing sheet. The models
are untrained tiny runs (palette_models.py): a partial run editing 16 x 32 layouts and a SPADE
run at 32 x 64; the tests check the plumbing, not the quality of the edits."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT
from palette_models import CITYSCAPES, make_layout_run, make_partial_run, make_spade_run
from palette_testdata import make_cityscapes_layouts, street_label_ids
from PIL import Image

from datasets import segmentation
from datasets.synthetic_pairs import SyntheticDatasetError
from models.palette import bands as bands_lib
from models.palette import demos
from models.palette.estimator import proportions
from models.palette.export import LayoutCheckpointError
from models.palette.inference import PaletteError
from models.palette.partial import (
    INPUT_FOLDERS,
    LayoutInputError,
    read_layouts,
    synthesize_partial_pairs,
)

NAMES = CITYSCAPES.names
VEGETATION, SKY = NAMES.index("vegetation"), NAMES.index("sky")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("palette_partial")
    data_root = make_cityscapes_layouts(str(root / "data"), count=4)
    return {
        "root": root,
        "layout": make_layout_run(data_root, root / "layout_run"),
        "partial": make_partial_run(data_root, root / "partial_run"),
        "spade": make_spade_run(data_root, root / "spade_run"),
    }


def _street_layouts(folder, count=3, size=(16, 32), seed=1):
    """`count` street layouts as train-id PNGs (void -> road) in folder; returns them."""
    os.makedirs(folder, exist_ok=True)
    label_map = segmentation.label_map_from_label_set(CITYSCAPES)
    rng = np.random.default_rng(seed)
    layouts = []
    for i in range(count):
        ids = label_map[street_label_ids(rng, *size)]
        ids = np.where(ids < 0, 255, ids).astype(np.uint8)
        ids[ids == 255] = NAMES.index("road")
        Image.fromarray(ids).save(os.path.join(folder, f"street_{i}.png"))
        layouts.append(ids)
    return np.stack(layouts)


def _read(folder, count):
    return np.stack([np.asarray(Image.open(folder / f"{i:06d}.png")) for i in range(count)])


def test_partial_pairs_keep_the_layout_outside_the_band(runs, tmp_path):
    layouts = _street_layouts(tmp_path / "layouts")
    out = tmp_path / "edited"
    kwargs = dict(
        partial_source=runs["partial"],
        layouts_path=str(tmp_path / "layouts"),
        band="8,24",
        delta="vegetation=+0.1,sky=-0.05",
        spade_checkpoint_dir=runs["spade"],
        batch_size=2,
        val_fraction=0.34,
        progress=False,
    )
    manifest = synthesize_partial_pairs(str(out), **kwargs)
    masks, inputs = _read(out / "masks", 3), _read(out / INPUT_FOLDERS[0], 3)
    assert masks.shape == inputs.shape == (3, 32, 64)  # the SPADE size: layouts x2
    np.testing.assert_array_equal(inputs[:, ::2, ::2], layouts)  # the inputs, for comparison
    # Columns 8..23 of the 16 x 32 layouts are 16..47 of the written masks: only they change.
    np.testing.assert_array_equal(masks[:, :, :16], inputs[:, :, :16])
    np.testing.assert_array_equal(masks[:, :, 48:], inputs[:, :, 48:])
    for i in range(3):
        assert (masks[i, :, 16:48] != inputs[i, :, 16:48]).any()
    assert np.asarray(Image.open(out / "images" / "000002.png")).shape == (32, 64, 3)
    colour = np.asarray(Image.open(out / INPUT_FOLDERS[1] / "000001.png"))
    np.testing.assert_array_equal(colour, CITYSCAPES.colorize(inputs[1]))
    changes = np.load(out / "changes.npy")
    np.testing.assert_allclose(changes[:, [VEGETATION, SKY]], [[0.1, -0.05]] * 3, atol=1e-6)
    np.testing.assert_allclose(changes.sum(axis=1), 0.0, atol=1e-6)
    assert (changes[:, NAMES.index("road")] < 0).all()  # the rest, taken in the band
    np.testing.assert_allclose(
        np.load(out / "targets.npy"), proportions(layouts, 19) + changes, atol=1e-6
    )
    np.testing.assert_allclose(np.load(out / "achieved.npy"), proportions(masks, 19), atol=1e-6)
    np.testing.assert_array_equal(np.load(out / "bands.npy"), [[8, 24]] * 3)
    settings = json.loads((out / "dataset.json").read_text())["settings"]
    assert settings["band"] == [8, 24] and settings["delta"] == {"vegetation": 0.1, "sky": -0.05}
    train = json.loads((out / "train.json").read_text())["pairs"]
    assert len(train) + len(json.loads((out / "val.json").read_text())["pairs"]) == 3
    # A JSON list of the same layouts (a list of paths, or a pair list: its labels).
    listed = [f"layouts/street_{i}.png" for i in range(3)]
    (tmp_path / "list.json").write_text(json.dumps(listed))
    pair_list = {"pairs": [{"image": path, "label": path} for path in listed]}
    (tmp_path / "pairs.json").write_text(json.dumps(pair_list))
    for name in ("list.json", "pairs.json"):
        paths, read = read_layouts(str(tmp_path / name), CITYSCAPES, (16, 32))
        assert paths == [str(tmp_path / path) for path in listed]
        np.testing.assert_array_equal(read, layouts)
    assert manifest["settings"]["layouts"] == [str(tmp_path / path) for path in listed]


def test_partial_bad_inputs_are_named_and_nothing_is_written(runs, tmp_path):
    _street_layouts(tmp_path / "layouts", count=2)
    out = tmp_path / "out"
    base = dict(
        partial_source=runs["partial"],
        layouts_path=str(tmp_path / "layouts"),
        band="8,24",
        spade_checkpoint_dir=runs["spade"],
        val_fraction=0.0,
        progress=False,
    )
    wide = np.zeros((32, 64), np.uint8)
    os.makedirs(tmp_path / "wide")
    Image.fromarray(wide).save(tmp_path / "wide" / "big.png")
    labelids = np.full((16, 32), 7, np.uint8)
    labelids[:4] = 23  # Cityscapes labelIds (sky), not train ids
    os.makedirs(tmp_path / "labelids")
    Image.fromarray(labelids).save(tmp_path / "labelids" / "raw.png")
    cases = [
        ({"band": "20,40"}, bands_lib.BandError, r"--band=20,40: columns \[20, 40\).*<= 32"),
        ({"band": "0.5,1.5"}, bands_lib.BandError, r"--band=0.5,1.5: fractions .* \[0, 1\]"),
        ({"band": "12,12"}, bands_lib.BandError, "not a non-empty column range"),
        ({"delta": "trees=+0.1"}, bands_lib.BandError, "'trees' is not a class .*vegetation"),
        ({"delta": "sky=+2"}, bands_lib.BandError, "change of 'sky' must be a number in"),
        ({"delta": "car=-0.3"}, bands_lib.BandError, "street_0.png: --delta asks for car -0.300"),
        (
            {"layouts_path": str(tmp_path / "wide")},
            LayoutInputError,
            "big.png is 32x64, but the partial-editing model edits 16x32",
        ),
        (
            {"layouts_path": str(tmp_path / "labelids")},
            LayoutInputError,
            "raw.png holds the value 23 .row 0, column 0., not a train id of 'cityscapes'",
        ),
        (
            {"layouts_path": str(tmp_path / "none")},
            LayoutInputError,
            "--layouts=.*none is neither a folder",
        ),
        (
            {"partial_source": runs["layout"]},
            LayoutCheckpointError,
            "--checkpoint_dir=.*layout_run is a run of --stage=layout: it has no partial",
        ),
        ({"spade_checkpoint_dir": None}, PaletteError, "needs an image synthesizer"),
        ({"val_fraction": 0.9}, PaletteError, "no training pair; pass --val_fraction=0"),
    ]
    for change, error, message in cases:
        with pytest.raises(error, match=message):
            synthesize_partial_pairs(str(out), **{**base, **change})
        assert not out.exists(), change
    # An output folder holding other files is refused, its files kept.
    os.makedirs(out)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(SyntheticDatasetError, match="not empty"):
        synthesize_partial_pairs(str(out), **base)
    assert os.listdir(out) == ["notes.txt"]


def test_changes_complete_the_named_classes_and_stay_a_palette():
    # One layout, band masses (of the layout): road 0.2, sky 0.1, car 0.1 (band = 0.4).
    masses = np.zeros((1, 19))
    masses[0, [0, SKY, NAMES.index("car")]] = [0.2, 0.1, 0.1]
    named = bands_lib.parse_delta("vegetation=+0.1, sky=-0.05", NAMES)
    assert named == {VEGETATION: 0.1, SKY: -0.05}
    change = bands_lib.resolve_changes(named, masses, NAMES)[0]
    # +0.05 net: road and car give it in proportion to their band mass (2 : 1).
    np.testing.assert_allclose(change[[0, NAMES.index("car")]], [-0.05 / 1.5, -0.05 / 3])
    assert abs(change.sum()) < 1e-6 and (masses[0] + change >= 0).all()
    with pytest.raises(bands_lib.BandError, match="add [+]0.450 .* other classes hold 0.400"):
        bands_lib.resolve_changes({VEGETATION: 0.45}, masses, NAMES)
    with pytest.raises(bands_lib.BandError, match="no class left unnamed is in the band"):
        bands_lib.resolve_changes({0: -0.2, SKY: -0.1, NAMES.index("car"): 0.1}, masses, NAMES)
    with pytest.raises(bands_lib.BandError, match="given twice"):
        bands_lib.parse_delta("sky=0.1,sky=-0.1", NAMES)
    with pytest.raises(bands_lib.BandError, match="'sky' is not class=change"):
        bands_lib.parse_delta("sky", NAMES)
    assert bands_lib.parse_band("0.25,0.75", 32) == (8, 24)
    assert bands_lib.parse_band("0,32", 32) == (0, 32)
    with pytest.raises(bands_lib.BandError, match="two values"):
        bands_lib.parse_band("8", 32)


def test_demo_sheet_of_partial_edits(runs, tmp_path):
    out = tmp_path / "demos"
    summary = demos.write_demos(
        str(out),
        layout_source=runs["layout"],
        steps=2,
        partial_source=runs["partial"],
        log=lambda *_: None,
    )
    sheet = np.asarray(Image.open(out / demos.PARTIAL_FILE))
    # 3 rows of 16 x 32 layouts enlarged x6 (96 x 192), a title column and a header row.
    cell_h, cell_w = 96, 192
    height = demos.HEADER + 3 * (cell_h + demos.GAP) - demos.GAP
    assert sheet.shape == (height, demos.LABEL_WIDTH + 3 * cell_w + 2 * demos.GAP, 3)
    assert summary["skipped"] == [] and summary["files"][demos.PARTIAL_FILE]
    edits = summary["partial_editing"]
    assert [e["title"] for e in edits["edits"]] == ["more vegetation", "more sky", "more road"]
    assert edits["band"] == [10, 22]  # PARTIAL_BAND of 32 columns
    # Per row: the edited cell equals the input cell outside the band (x6: columns 60..131).
    x0 = demos.LABEL_WIDTH
    for row in range(3):
        top = demos.HEADER + row * (cell_h + demos.GAP)
        cells = [
            sheet[top : top + cell_h, x0 + k * (cell_w + demos.GAP) :][:, :cell_w] for k in range(3)
        ]
        np.testing.assert_array_equal(cells[2][:, :60], cells[0][:, :60])
        np.testing.assert_array_equal(cells[2][:, 132:], cells[0][:, 132:])
        assert (cells[2][:, 60:132] != cells[0][:, 60:132]).any()
        darker = cells[1][:, 60:132] <= cells[0][:, 60:132]  # the band, darkened
        assert darker.all() and (cells[1][:, 60:132] != cells[0][:, 60:132]).any()
    with pytest.raises(Exception, match="--overwrite"):
        demos.write_demos(str(out), layout_source=runs["layout"], partial_source=runs["partial"])


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--checkpoint_dir=x"], "--layouts"),
        (["--checkpoint_dir=x", "--layouts=l"], "--band"),
        (["--layouts=l", "--band=1,2"], "--stage=partial run"),
        (["--checkpoint_dir=x", "--layouts=l", "--band=1,2", "--num_images=3"], "--num_images"),
        (["--checkpoint_dir=x", "--mode=demos"], "--partial_checkpoint_dir"),
    ],
)
def test_partial_cli_flag_errors(extra, message):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
    done = subprocess.run(
        [sys.executable, "synthesize.py", "--model=palette", "--partial", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 2 and message in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr


def test_partial_cli_end_to_end(runs, tmp_path):
    layouts = _street_layouts(tmp_path / "layouts", count=2)
    out = tmp_path / "cli"
    args = [
        "synthesize.py",
        "--model=palette",
        "--partial",
        f"--checkpoint_dir={runs['partial']}",
        f"--spade_checkpoint_dir={runs['spade']}",
        f"--layouts={tmp_path / 'layouts'}",
        "--band=0.5,1.0",
        "--delta=sky=+0.05",
        "--val_fraction=0",
        f"--output_dir={out}",
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    masks = _read(out / "masks", 2)
    np.testing.assert_array_equal(masks[:, ::2, :32:2], layouts[:, :, :16])  # left half kept
    np.testing.assert_array_equal(np.load(out / "bands.npy"), [[16, 32]] * 2)
    assert np.load(out / "changes.npy")[:, SKY] == pytest.approx([0.05, 0.05])
