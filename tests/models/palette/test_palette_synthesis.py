"""Palette synthesis: palette -> layout -> image pairs in the project's pair format (library and
synthesize.py --model=palette), the demos (interpolation strips and GIFs), and bad input. The
models are untrained tiny runs (palette_models.py): the tests check the plumbing, not quality.
The fast tests stand in a colouring function for SPADE (building even a tiny SPADE takes
seconds); the slow one runs the real chain, SPADE included, through synthesize.py."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT
from palette_models import CITYSCAPES, make_layout_run, make_spade_run
from palette_testdata import make_cityscapes_layouts
from PIL import Image

from datasets.synthetic_pairs import write_pairs
from models.palette import demos
from models.palette.estimator import proportions
from models.palette.export import LayoutGenerator
from models.palette.inference import (
    PaletteError,
    load_palette_estimator,
    load_palettes,
    palette_pair_sampler,
    resize_layouts,
    synthesize_palette_pairs,
)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("palette_models")
    data_root = make_cityscapes_layouts(str(root / "data"))
    return {"data_root": data_root, "layout": make_layout_run(data_root, root / "layout_run")}


@pytest.fixture(scope="module")
def spade(models, tmp_path_factory):
    return make_spade_run(models["data_root"], tmp_path_factory.mktemp("spade") / "run")


def _colouring(layouts, rng):
    """A stand-in for SPADE: masks at 32 x 64 (layouts x2), images their colours + noise."""
    masks = resize_layouts(layouts, (32, 64))
    noise = rng.integers(0, 8, (*masks.shape, 3), dtype=np.uint8)
    return CITYSCAPES.colorize(masks) + noise, masks


def _palettes_csv(path):
    names = CITYSCAPES.names
    rows = [{"road": 0.5, "sky": 0.3, "vegetation": 0.2}, {"building": 0.6, "road": 0.4}]
    with open(path, "w") as file:
        file.write(",".join(names) + "\n")
        for row in rows:
            file.write(",".join(str(row.get(name, 0.0)) for name in names) + "\n")
    return str(path)


def _read_masks(folder, count):
    return np.stack(
        [
            np.asarray(Image.open(os.path.join(folder, "masks", f"{i:06d}.png")))
            for i in range(count)
        ]
    )


def test_pairs_from_given_palettes_in_the_pair_format(models, tmp_path):
    out = tmp_path / "pairs"
    palettes = load_palettes(_palettes_csv(tmp_path / "palettes.csv"), CITYSCAPES)
    sample_fn = palette_pair_sampler(
        LayoutGenerator(models["layout"]), _colouring, num_classes=19, batch_size=2,
        palettes=palettes,
    )  # fmt: skip
    kwargs = dict(label_set=CITYSCAPES, num_images=5, batch_size=2, progress=False)
    manifest = write_pairs(str(out), sample_fn, **kwargs)
    for folder in ("images", "masks", "masks_colour"):
        assert len(os.listdir(out / folder)) == 5
    image = np.asarray(Image.open(out / "images" / "000000.png"))
    masks = _read_masks(out, 5)
    assert image.shape == (32, 64, 3) and masks.shape == (5, 32, 64)  # the image size
    targets = np.load(out / "targets.npy")
    # The two palettes cycle in pair order: 0, 1, 0, 1, 0.
    assert targets[0, CITYSCAPES.names.index("road")] == pytest.approx(0.5)
    assert targets[1, CITYSCAPES.names.index("building")] == pytest.approx(0.6)
    np.testing.assert_allclose(targets[2], targets[0])
    np.testing.assert_allclose(np.load(out / "achieved.npy"), proportions(masks, 19), atol=1e-6)
    assert np.load(out / "latents.npy").shape == (5, 8)
    train = json.loads((out / "train.json").read_text())
    val = json.loads((out / "val.json").read_text())
    assert len(train["pairs"]) + len(val["pairs"]) == 5 and train["label_set"] == "cityscapes"
    # A batch is a function of its index: made again, batch 1 is the same.
    again = sample_fn(1, 2)
    np.testing.assert_array_equal(again["masks"], masks[2:4])
    assert write_pairs(str(out), sample_fn, **kwargs) == manifest  # complete already


def test_demos_of_layouts_write_strips_and_gifs(models, tmp_path):
    out = tmp_path / "demos"
    summary = demos.write_demos(
        str(out), layout_source=models["layout"], steps=4, log=lambda *_: None
    )
    strip = np.asarray(Image.open(out / "palette_interpolation.png"))
    # 16 x 32 layouts enlarged x6 (short side >= 96): layout, bars (half height) per frame.
    assert strip.shape == (96 + 48, 4 * 192 + 3 * demos.GAP, 3)
    gif = Image.open(out / "latent_interpolation.gif")
    assert gif.n_frames == 4 + 2  # there and back: 0 1 2 3 2 1
    # Palette interpolation: the first and last targets are palettes A and B (drawn).
    a, b = np.asarray(summary["palette_a"]), np.asarray(summary["palette_b"])
    assert summary["palettes_from"] == "estimator" and not np.allclose(a, b)
    assert summary["skipped"] == [demos.PARTIAL_SKIPPED] and summary["image_source"] is None
    # The latent strip keeps the palette and moves z: its end frames differ.
    latent = np.asarray(Image.open(out / "latent_interpolation.png"))
    assert not np.array_equal(latent[:96, :192], latent[:96, -192:])
    with pytest.raises(Exception, match="--overwrite"):
        demos.write_demos(str(out), layout_source=models["layout"], steps=4)


@pytest.mark.slow
def test_synthesize_cli_and_demos_with_spade(models, spade, tmp_path):
    out = tmp_path / "cli_pairs"
    args = [
        "synthesize.py",
        "--model=palette",
        f"--checkpoint_dir={models['layout']}",
        f"--spade_checkpoint_dir={spade}",
        "--num_images=4",
        "--batch_size=2",
        "--seed=3",
        f"--output_dir={out}",
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert np.asarray(Image.open(out / "images" / "000003.png")).shape == (32, 64, 3)
    targets = np.load(out / "targets.npy")
    assert targets.shape == (4, 19)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-5)
    assert not np.allclose(targets[0], targets[1])  # drawn, not one palette repeated
    np.testing.assert_allclose(
        np.load(out / "achieved.npy"), proportions(_read_masks(out, 4), 19), atol=1e-6
    )
    settings = json.loads((out / "dataset.json").read_text())["settings"]
    assert settings["estimator"] == os.path.abspath(models["layout"])
    # Demos with images: mask, image, bars per frame, at the SPADE size (32 x 64, x3).
    demos.write_demos(
        str(tmp_path / "demos"),
        layout_source=models["layout"],
        spade_checkpoint_dir=spade,
        steps=3,
        log=lambda *_: None,
    )
    strip = np.asarray(Image.open(tmp_path / "demos" / "palette_interpolation.png"))
    assert strip.shape == (96 + 96 + 48, 3 * 192 + 2 * demos.GAP, 3)


def test_interpolation_paths():
    rng = np.random.default_rng(0)
    z0, z1 = rng.standard_normal((2, 16))
    z1 *= np.linalg.norm(z0) / np.linalg.norm(z1)
    path = demos.slerp(z0, z1, 5)
    np.testing.assert_allclose(path[[0, -1]], [z0, z1], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), np.linalg.norm(z0), rtol=1e-5)
    palettes = demos.interpolate_palettes(np.eye(3)[0], np.eye(3)[2], 3)
    np.testing.assert_allclose(palettes, [[1, 0, 0], [0.5, 0, 0.5], [0, 0, 1]])
    layouts = np.arange(8, dtype=np.uint8).reshape(1, 2, 4)
    assert resize_layouts(layouts, (4, 8))[0, 3, 7] == 7  # whole factors repeat pixels


def test_bad_inputs(models, tmp_path):
    with pytest.raises(PaletteError, match="--spade_checkpoint_dir"):
        synthesize_palette_pairs(
            str(tmp_path / "none"), layout_source=models["layout"], num_images=2
        )
    assert not (tmp_path / "none").exists()
    with pytest.raises(PaletteError, match="--estimator_path"):
        load_palette_estimator(str(tmp_path), CITYSCAPES)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"road": 0.5, "sky": 0.2}))  # sums to 0.7
    with pytest.raises(PaletteError, match="sum to 0.7"):
        demos.write_demos(
            str(tmp_path / "bad_out"), layout_source=models["layout"], palettes_path=str(bad)
        )
    assert not (tmp_path / "bad_out").exists()
    with pytest.raises(PaletteError, match="at least 2 frames"):
        demos.write_demos(str(tmp_path / "bad_out"), layout_source=models["layout"], steps=1)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--checkpoint_dir=x"], "--spade_checkpoint_dir"),
        (["--checkpoint_dir=x", "--spade_checkpoint_dir=y", "--label_dir=z"], "--label_dir"),
        (["--spade_checkpoint_dir=y"], "--checkpoint_dir"),
        (["--checkpoint_dir=x", "--mode=samples"], "--mode=samples"),
    ],
)
def test_cli_flag_errors(tmp_path, extra, message):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
    done = subprocess.run(
        [sys.executable, "synthesize.py", "--model=palette", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 2 and message in done.stderr
    assert "Traceback" not in done.stderr
