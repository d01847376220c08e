"""OSMIS configuration chosen from the input, the presets and flags, and the bad inputs: each a
clear error naming the file or flag, before anything is written."""

import json

import numpy as np
import pytest
from PIL import Image

import flags as cli
from core.config import ConfigError
from core.errors import UserError
from models.osmis import inputs
from models.osmis.config import PRESETS


def test_reference_example_854x480_max_330():
    layout = inputs.choose_layout(480, 854, 330)
    assert (layout.height, layout.width) == (192, 320)
    assert layout.num_blocks == 7 and layout.noise_shape == (3, 5)
    assert (layout.num_blocks_d, layout.num_blocks_d0) == (7, 3)


@pytest.mark.parametrize("height", [24, 40, 64, 100, 181, 256, 330, 480, 700])
@pytest.mark.parametrize("aspect", [1.0, 1.5, 2.0, 0.5])
def test_noise_map_is_3_to_7_px(height, aspect):
    width = int(round(height * aspect))
    layout = inputs.choose_layout(height, width, 330)
    bounded = inputs.bounded_size(height, width, 330)
    possible = any(
        all(3 <= round(side / 2 ** (b - 1)) <= 7 for side in bounded) for b in range(3, 10)
    )
    if possible:
        assert all(3 <= side <= 7 for side in layout.noise_shape), layout
    assert 3 <= max(layout.noise_shape) <= 7 and min(layout.noise_shape) >= 1, layout
    scale = 2 ** (layout.num_blocks - 1)
    assert (layout.height, layout.width) == tuple(s * scale for s in layout.noise_shape)
    # The output keeps the bounded size within a rounding of the noise map.
    assert abs(layout.height - bounded[0]) <= scale / 2 + 1e-6
    # Layout decisions stay at least 1 px.
    assert min(layout.height, layout.width) // 2**layout.num_blocks_d >= 1


def test_block_override_and_too_small():
    layout = inputs.choose_layout(480, 854, 330, num_blocks=6)
    assert layout.noise_shape == (6, 10) and (layout.height, layout.width) == (192, 320)
    with pytest.raises(UserError, match="too small for 3 generator blocks"):
        inputs.choose_layout(8, 10, 330, where="tiny.png")
    with pytest.raises(UserError, match="noise map"):
        inputs.choose_layout(16, 200, 330, num_blocks=9)


def test_presets_and_flags():
    tiny, paper = PRESETS["tiny"], PRESETS["osmis"]
    assert (paper.max_size, paper.ch_g, paper.batch_size, paper.z_dim) == (330, 32, 5, 64)
    assert (paper.lr, paper.beta1, paper.beta2, paper.max_steps) == (2e-4, 0.5, 0.999, 150000)
    assert (paper.ema_decay, paper.lambda_diversity, paper.aug_prob) == (0.9999, 0.15, 0.7)
    assert tiny.max_size <= 64 and tiny.ch_g * 8 <= 32 and tiny.batch_size == 2
    config = cli.config_from_args(
        ["--model=osmis", "--max_size=48", "--aug_prob=0.5", "--gan_loss=hinge", "--z_dim=8"]
    )
    assert (config.max_size, config.aug_prob, config.gan_loss, config.z_dim) == (
        48,
        0.5,
        "hinge",
        8,
    )
    with pytest.raises(ConfigError, match="--label_dir"):
        cli.config_from_args(["--model=osmis", "--label_dir=x"])
    with pytest.raises(ConfigError, match="--ngf"):
        cli.config_from_args(["--model=osmis", "--ngf=8"])
    with pytest.raises(ConfigError, match="mask"):
        cli.config_from_args(["--model=osmis", "--mask=m.png"])
    with pytest.raises(ConfigError, match="image_dir"):
        cli.config_from_args(["--model=osmis", "--image=a.png", "--image_dir=d"])


def _save(path, array):
    Image.fromarray(array).save(path)
    return str(path)


def _config(**values):
    return PRESETS["tiny"].replace(**values)


def test_image_and_mask_inputs(tmp_path):
    rng = np.random.RandomState(0)
    image = _save(tmp_path / "image.png", rng.randint(0, 255, (30, 40, 3), dtype=np.uint8))
    ids = np.zeros((30, 40), np.uint8)
    ids[5:15, 5:20] = 7
    ids[20:, :] = 3
    mask = _save(tmp_path / "mask.png", ids)
    one_shot = inputs.load_input(_config(image=image, mask=mask))
    assert one_shot.class_ids == (0, 3, 7)
    assert set(np.unique(one_shot.masks)) == {0, 1, 2}
    assert one_shot.frames.shape == (1, one_shot.layout.height, one_shot.layout.width, 3)
    # A colour mask with a class-colour JSON: classes are the JSON's entries.
    colours = {"sky": "#0000ff", "grass": [0, 255, 0]}
    json_path = tmp_path / "colours.json"
    json_path.write_text(json.dumps(colours))
    rgb = np.zeros((30, 40, 3), np.uint8)
    rgb[:15] = (0, 0, 255)
    rgb[15:] = (0, 255, 0)
    colour_mask = _save(tmp_path / "colour.png", rgb)
    one_shot = inputs.load_input(
        _config(image=image, mask=colour_mask, mask_colours=str(json_path))
    )
    assert one_shot.class_ids == (0, 1) and one_shot.label_set.names == ("sky", "grass")
    # SIV-GAN: the image alone; a folder of frames.
    assert inputs.load_input(_config(image=image)).masks is None
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        _save(frames / f"{i:03d}.png", rng.randint(0, 255, (30, 40, 3), dtype=np.uint8))
    video = inputs.load_input(_config(image_dir=str(frames)))
    assert video.frames.shape[0] == 3 and video.masks is None


def test_bad_inputs_name_the_file(tmp_path):
    rng = np.random.RandomState(1)
    image = _save(tmp_path / "image.png", rng.randint(0, 255, (30, 40, 3), dtype=np.uint8))
    small_mask = _save(tmp_path / "small_mask.png", np.zeros((20, 40), np.uint8))
    with pytest.raises(UserError, match="small_mask.png is 20 x 40 px but --image=.*30 x 40"):
        inputs.load_input(_config(image=image, mask=small_mask))
    ids = np.zeros((30, 40), np.uint8)
    ids[:5] = 9
    mask = _save(tmp_path / "mask.png", ids)
    colours = tmp_path / "colours.json"
    colours.write_text(json.dumps({"background": "#000000", "car": "#ff0000"}))
    with pytest.raises(UserError, match=r"mask.png has class ids \[9\] missing from"):
        inputs.load_input(_config(image=image, mask=mask, mask_colours=str(colours)))
    rgb = np.zeros((30, 40, 3), np.uint8)
    rgb[:5] = (1, 2, 3)
    colour_mask = _save(tmp_path / "colour.png", rgb)
    with pytest.raises(UserError, match="colour.png has 1 colour.*#010203"):
        inputs.load_input(_config(image=image, mask=colour_mask, mask_colours=str(colours)))
    with pytest.raises(UserError, match="colour.png is a colour image"):
        inputs.load_input(_config(image=image, mask=colour_mask))
    tiny = _save(tmp_path / "tiny.png", np.zeros((8, 10, 3), np.uint8))
    with pytest.raises(UserError, match="tiny.png is 8 x 10 px: too small"):
        inputs.load_input(_config(image=tiny))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="--image_dir=.*empty has no frames"):
        inputs.load_input(_config(image_dir=str(empty)))
    with pytest.raises(FileNotFoundError, match="missing.png"):
        inputs.load_input(_config(image=str(tmp_path / "missing.png")))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    with pytest.raises(UserError, match="broken.png is not a readable image"):
        inputs.load_input(_config(image=str(broken)))


def test_colour_augmentation_setting_and_older_runs(tmp_path):
    """aug_colour: off in the paper preset (the reference is geometric only), on in tiny, a
    flag either way; a config.json written before the setting existed (its runs used colour)
    resumes as it was trained, and a different setting is refused by name."""
    from training import run_dir

    assert PRESETS["osmis"].aug_colour is False and PRESETS["tiny"].aug_colour is True
    assert cli.config_from_args(["--model=osmis"]).aug_colour is True
    assert cli.config_from_args(["--model=osmis", "--noaug_colour"]).aug_colour is False
    paper = cli.config_from_args(["--model=osmis", "--preset=osmis", "--aug_colour"])
    assert paper.aug_colour is True
    config = cli.config_from_args(["--model=osmis", f"--checkpoint_dir={tmp_path}"])
    older = config.to_dict()
    del older["aug_colour"]
    (tmp_path / "config.json").write_text(json.dumps(older))
    assert run_dir.load_run_config(str(tmp_path), type(config)).aug_colour is True
    assert run_dir.prepare_run_dir(config) is True  # resumes
    with pytest.raises(run_dir.RunDirError, match="--aug_colour: True in the run, False now"):
        run_dir.prepare_run_dir(config.replace(aug_colour=False))


def test_mp4_video_through_the_image_flag(tmp_path):
    """--image=video.mp4: imageio (its ffmpeg plugin, the binary of imageio-ffmpeg) reads the
    frames, in order, within H.264's loss."""
    iio = pytest.importorskip("imageio.v3", reason="imageio is not installed (mp4 needs it)")
    pytest.importorskip("imageio_ffmpeg", reason="imageio-ffmpeg (its ffmpeg) is not installed")
    colours = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40]], np.uint8)
    written = np.broadcast_to(colours[:, None, None], (4, 32, 48, 3)).copy()  # [F, H, W, 3]
    written[:, :16, :24] = 128  # a grey corner: frames are not flat
    path = str(tmp_path / "video.mp4")
    iio.imwrite(path, written, plugin="FFMPEG", fps=5)
    config = cli.config_from_args(["--model=osmis", f"--image={path}"])
    video = inputs.load_input(config)
    assert video.masks is None and video.files == [path]
    h, w = video.layout.height, video.layout.width
    assert video.frames.shape == (4, h, w, 3) and video.frames.dtype == np.uint8
    corner = video.frames[:, : h // 2 - 2, : w // 2 - 2].reshape(4, -1, 3).mean(axis=1)
    rest = video.frames[:, h // 2 + 2 :, w // 2 + 2 :].reshape(4, -1, 3).mean(axis=1)
    np.testing.assert_allclose(corner, 128, atol=12)
    np.testing.assert_allclose(rest, colours, atol=12)


def test_video_without_imageio_names_the_package(tmp_path, monkeypatch):
    """A video Pillow cannot read, without imageio: an error naming the file and imageio."""
    import sys

    monkeypatch.setitem(sys.modules, "imageio", None)  # import imageio raises ImportError
    monkeypatch.setitem(sys.modules, "imageio.v3", None)
    path = tmp_path / "video.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    with pytest.raises(UserError, match=r"video.mp4: Pillow cannot read .* imageio\[ffmpeg\]"):
        inputs.load_input(_config(image=str(path)))
