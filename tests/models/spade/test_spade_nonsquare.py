"""SPADE at 1:2 (Cityscapes): config and flags, the pipeline, the networks, a training step on
the built-in streets with the "don't care" channel, and the non-square export."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_train_args

import flags as cli
from core.config import ConfigError
from datasets import pipeline
from datasets.streets import CAR, ROAD, SKY
from models.spade import labels as spade_labels
from models.spade.config import PRESETS

# Tiny streets at 32 x 64, shared by the tests of this module.
STREETS = ("--num_streets=4", "--streets_height=32", "--streets_width=64")


def _args(run_dir, data_root, *extra):
    return [
        *tiny_train_args(str(data_root), str(run_dir), "--dataset=streets"),
        f"--data_root={data_root}",
        "--semantic_label_path=cityscapes",
        *STREETS,
        "--img_height=32",
        "--img_width=64",
        "--load_size=32",
        *extra,
    ]


def test_image_size_flags_set_crop_size_and_aspect_ratio(tmp_path):
    config = cli.config_from_args(_args(tmp_path / "run", tmp_path))
    assert (config.crop_size, config.aspect_ratio) == (32, 2.0)
    assert config.image_size == (32, 64) and config.load_width == 64
    same = cli.config_from_args(["--crop_size=32", "--aspect_ratio=2", "--load_size=36"])
    assert same.image_size == (32, 64) and same.load_width == 72
    # Square stays square: the tiny preset is unchanged.
    assert PRESETS["tiny"].aspect_ratio == 1.0 and PRESETS["tiny"].image_size == (64, 64)
    preset = PRESETS["cityscapes_128x256"]
    assert preset.image_size == (128, 256) and preset.load_size == 128
    assert (preset.dataset, preset.semantic_label_path, preset.ngf) == (
        "cityscapes",
        "cityscapes",
        64,
    )


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--img_height=32"], "--img_width is missing"),
        (["--img_width=64"], "--img_height is missing"),
        (["--img_height=32", "--img_width=64", "--crop_size=64"], "--crop_size=64 is larger"),
        (["--img_height=32", "--img_width=64", "--aspect_ratio=1.5"], "--aspect_ratio=1.5 contra"),
        (["--crop_size=64", "--aspect_ratio=1.3"], "83 px wide.*multiple of 32"),
        (["--aspect_ratio=0"], "aspect_ratio must be positive"),
        (["--dataset=streets"], "use --semantic_label_path=cityscapes"),
        (["--model=segformer", "--img_height=32", "--img_width=64"], "do not apply"),
    ],
)
def test_image_size_flag_errors(extra, match):
    with pytest.raises(ConfigError, match=match):
        cli.config_from_args(extra)


def test_generator_and_discriminator_at_1_to_2():
    from models.spade import networks
    from models.spade.trainer import SPADEGAN

    config = cli.config_from_args(
        ["--img_height=32", "--img_width=64", "--load_size=32", "--ngf=4", "--ndf=4"]
        + ["--spade_hidden=8", "--z_dim=8", "--encoder_input_size=32", "--use_vae"]
    )
    gan = SPADEGAN.from_run_config(config, num_classes=20)
    assert gan.image_size == (32, 64)
    generator = gan.generator
    assert (generator.sh, generator.sw) == (1, 2)  # 32 x 64 over 5 x2 upsamplings
    labels = tf.constant(np.random.default_rng(0).integers(0, 20, (2, 32, 64)), tf.int32)
    image = generator(labels, z=tf.zeros((2, 8)), training=False)
    assert image.shape == (2, 32, 64, 3)
    outputs = gan.discriminator(tf.zeros((2, 32, 64, 23)), training=False)
    for scale in outputs:  # fully convolutional: the patch map is wider than high at 1:2
        height, width = scale[-1].shape[1:3]
        assert width > height and scale[-1].shape[-1] == 1
    mu, _ = gan.encoder(tf.zeros((2, 32, 64, 3)), training=False)
    assert mu.shape == (2, 8)
    # The paper preset's first map is 4 x 8.
    assert networks.generator_start_size(256, 2.0, "normal") == (4, 8)


def test_pipeline_crops_image_and_label_together_at_1_to_2():
    rng = np.random.default_rng(1)
    label = rng.integers(0, 100, (40, 80)).astype(np.uint8)
    image = np.stack([label * 2, 255 - label * 2, np.zeros_like(label)], axis=-1)
    offsets = set()
    for i in range(12):
        out_image, out_label = pipeline.preprocess_train(
            image, label, [3, i], load_size=(40, 80), crop_size=(32, 72), flip=True
        )
        assert out_image.shape == (32, 72, 3) and out_label.shape == (32, 72)
        pixels = np.round((out_image.numpy() + 1.0) * 127.5).astype(np.int32)
        np.testing.assert_array_equal(pixels[..., 0], out_label.numpy() * 2)
        _, plain = pipeline.preprocess_train(image, label, [3, i], (40, 80), (32, 72), False)
        found = [
            (r, c)
            for r in range(9)
            for c in range(9)
            if np.array_equal(label[r : r + 32, c : c + 72], plain.numpy())
        ]
        assert len(found) == 1
        offsets.add(found[0])
    # Rows and columns draw their own offsets in their own ranges.
    assert len({r for r, _ in offsets}) > 2 and len({c for _, c in offsets}) > 2
    eval_image, eval_label = pipeline.preprocess_eval(image, label, (20, 40))
    assert eval_image.shape == (20, 40, 3) and eval_label.shape == (20, 40)


def test_cityscapes_label_ids_map_to_train_ids_and_a_dont_care_channel(tmp_path):
    config = cli.config_from_args(_args(tmp_path / "run", tmp_path))
    label_set, table, num_classes = spade_labels.resolve_spade_labels(config)
    assert label_set.num_classes == 19 and num_classes == 20
    assert spade_labels.num_spade_classes(config) == 20
    assert table[ROAD] == 0 and table[SKY] == 10 and table[CAR] == 13
    assert table[0] == 19 and table[255] == 19 and table[34] == -1  # void -> don't care
    colors = spade_labels.colorize(label_set, np.array([[0, 19]]))
    assert colors[0, 0].tolist() == [128, 64, 128] and colors[0, 1].tolist() == [0, 0, 0]
    # ADE20K-style sets (no ignore value) are read as they are.
    _, none, classes = spade_labels.resolve_spade_labels(PRESETS["tiny"])
    assert none is None and classes == 151


def test_tiny_spade_trains_at_1_to_2_on_streets(tmp_path):
    from models.spade.task import SPADETask

    config = cli.config_from_args(_args(tmp_path / "run", tmp_path, "--n_layers_D=2"))
    task = SPADETask(config)
    gan = task.build(steps_per_epoch=2)
    batches = iter(task.dataset_fn(None, start_step=0))
    before = [v.numpy() for v in gan.generator.weights]
    for _ in range(2):
        batch = next(batches)
        assert batch["image"].shape == (2, 32, 64, 3) and batch["label"].shape == (2, 32, 64)
        assert int(tf.reduce_max(batch["label"])) < 20
        losses = gan.train_step(batch)
        assert all(np.isfinite(float(v)) for v in losses.values())
    assert any(
        not np.array_equal(a, b) for a, b in zip(before, (w.numpy() for w in gan.generator.weights))
    )
    task.prepare_monitoring()
    task.write_samples(None, step=2)
    from PIL import Image

    grid = np.asarray(Image.open(tmp_path / "run" / "samples" / "step_00000002.png"))
    assert grid.shape == (32, 3 * 64, 3)  # one held-out street: label | real | fake


@pytest.mark.slow  # a SavedModel export: ~20 s
def test_non_square_export_equals_the_keras_model(tmp_path):
    from models.spade import export as export_lib
    from models.spade.trainer import SPADEGAN

    config = cli.config_from_args(_args(tmp_path / "run", tmp_path))
    gan = SPADEGAN.from_run_config(config, 20, for_training=False)
    path = export_lib.export_spade(gan, str(tmp_path / "export"), config.semantic_label_path)
    synth = export_lib.Synthesizer(saved_model=path)
    assert synth.image_size == (32, 64) and synth.num_classes == 20
    labels = np.random.default_rng(0).integers(0, 20, (2, 32, 64)).astype(np.uint8)
    expected = export_lib._to_uint8(gan.synthesize(tf.constant(labels), training=False))
    np.testing.assert_array_equal(synth(labels), expected.numpy())
    with pytest.raises(ValueError, match=r"\[N, 32, 64\]"):
        synth(labels[:, :, :32])
    resized = export_lib.resize_label_map(np.zeros((64, 128), np.uint8), synth.image_size)
    assert resized.shape == (32, 64)
