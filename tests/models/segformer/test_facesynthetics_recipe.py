"""The FaceSynthetics SegFormer system's recipe: the segformer_facesynthetics preset, the
one-cycle cosine schedule, its built-in class weights, mixed float16 with loss scaling, and a
run on the seed's prepared input/ folder."""

import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import flags as cli
from models.segformer.task import load_class_weights
from models.segformer.trainer import OneCycleCosine, SegFormerTrainer


def one_cycle_reference(step, peak, total, pct_start, div=25.0, final_div=1e4):
    """PyTorch's OneCycleLR (anneal_strategy="cos", two phases), written out."""
    start, final = peak / div, peak / div / final_div
    rise_end, fall_end = pct_start * total - 1, total - 1

    def cos(a, b, t):
        return b + (a - b) / 2 * (1 + math.cos(math.pi * t))

    if step <= rise_end:
        return cos(start, peak, step / rise_end)
    return cos(peak, final, (step - rise_end) / (fall_end - rise_end))


def test_one_cycle_cosine_is_pytorch_one_cycle():
    schedule = OneCycleCosine(1.0, total_steps=100, pct_start=0.21)
    # Golden points: start peak/25, peak at step pct * T - 1 = 20, half-way down, the end.
    assert float(schedule(0)) == pytest.approx(0.04)
    assert float(schedule(10)) == pytest.approx(0.52)
    assert float(schedule(20)) == pytest.approx(1.0)
    assert float(schedule(59.5)) == pytest.approx((1.0 + 4e-6) / 2, rel=1e-5)
    assert float(schedule(99)) == pytest.approx(4e-6, rel=1e-3)
    assert float(schedule(500)) == pytest.approx(4e-6, rel=1e-3)  # past the end: stays
    # The seed's numbers: 5e-5, 5 epochs of 25 steps, 12.5% rising.
    seed = OneCycleCosine(5e-5, total_steps=125, pct_start=0.125)
    for step in (0, 7, 14, 15, 16, 60, 124):
        assert float(seed(step)) == pytest.approx(
            one_cycle_reference(step, 5e-5, 125, 0.125), rel=1e-5
        )
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(seed))
    assert isinstance(restored, OneCycleCosine) and restored.get_config() == seed.get_config()
    # No rising phase when pct_start * T <= 1: it starts at the peak.
    assert float(OneCycleCosine(2.0, 4, pct_start=0.2)(0)) == pytest.approx(2.0)


def test_the_preset_is_the_seed_recipe():
    config = cli.config_from_args(["--model=segformer", "--preset=segformer_facesynthetics"])
    expected = {
        "variant": "b0",
        "dataset": "facesynthetics",
        "data_root": "input",
        "crop_size": 512,
        "batch_size": 32,
        "lr": 5e-5,
        "weight_decay": 1e-3,
        "head_lr_mult": 1.0,
        "lr_schedule": "one_cycle",
        "pct_start": 0.125,
        "total_epochs": 5,
        "max_steps": 0,
        "clip_grad_value": 1.0,
        "ce_weight": 1.0,
        "jaccard_weight": 1.0,
        "class_weights": "facesynthetics_seed",
        "scale_min": 1.0,
        "scale_max": 1.0,
        "photometric": False,
    }
    assert {name: getattr(config, name) for name in expected} == expected
    augment = config.extra_augmentations()
    assert (augment.elastic, augment.grid_distortion, augment.optical_distortion) == (
        0.2,
        0.2,
        0.4,
    )  # the seed's OneOf(p=0.8) over p = 0.5, 0.5, 1
    assert (augment.clahe, augment.brightness_contrast, augment.gamma) == (0.8, 0.8, 0.8)
    # Flags override it; the new flags reach the config.
    config = cli.config_from_args(
        [
            "--model=segformer",
            "--preset=segformer_facesynthetics",
            "--data_root=/data/input",
            "--pct_start=0.3",
            "--clahe_prob=0",
            "--mixed_precision=mixed_float16",
        ]
    )
    assert (config.data_root, config.pct_start, config.clahe_prob) == ("/data/input", 0.3, 0.0)
    assert config.mixed_precision == "mixed_float16"
    # Wrong combinations name their flags.
    for args, message in (
        (["--preset=segformer_b0", "--lr_schedule=one_cycle"], "--warmup_steps=1500 applies"),
        (["--elastic_prob=0.6", "--optical_distortion_prob=0.6"], "must be at most 1"),
        (["--gamma_prob=2"], "--gamma_prob=2.0 must be a probability"),
        (["--scale_min=2", "--scale_max=1"], "0 < --scale_min <= --scale_max"),
    ):
        with pytest.raises(ValueError, match=message):
            cli.config_from_args(["--model=segformer", *args])
    with pytest.raises(ValueError, match="--lr_schedule='one_cycle' is not one of"):
        cli.config_from_args(["--model=stylegan2", "--lr_schedule=one_cycle"])
    with pytest.raises(ValueError, match="--clahe_prob does not apply to --model=spade"):
        cli.config_from_args(["--model=spade", "--clahe_prob=0.5"])


def test_the_built_in_class_weights_are_the_seed_frequencies():
    weights = load_class_weights("facesynthetics_seed", 19)
    assert weights.dtype == np.float32 and weights.shape == (19,)
    assert weights.sum() == pytest.approx(1.0) and weights[18] == 0.0  # FACEWEAR never occurs
    assert weights[3] > weights[2] > weights[1] > weights[0]  # rarer classes weigh more
    assert weights[1] / weights[0] == pytest.approx(62.478843 / 8.605424, rel=1e-5)  # inverse
    with pytest.raises(ValueError, match="--class_weights=facesynthetics_seed holds 19 classes"):
        load_class_weights("facesynthetics_seed", 150)


def test_mixed_float16_trains_with_one_loss_scale_for_both_optimizers(float32_policy):
    keras.mixed_precision.set_global_policy("mixed_float16")
    trainer = SegFormerTrainer(
        num_classes=5,
        variant="tiny",
        crop_size=32,
        lr=1e-3,
        head_lr_mult=1.0,
        lr_schedule="one_cycle",
        pct_start=0.25,
        warmup_steps=0,
        total_steps=8,
        jaccard_weight=1.0,
        clip_grad_value=1e-4,
        mixed_precision="mixed_float16",
    )
    assert trainer.loss_scaled and trainer.segformer.compute_dtype == "float16"
    rng = np.random.default_rng(0)
    batch = {
        "image": tf.constant(rng.normal(size=(2, 32, 32, 3)), tf.float32),
        "label": tf.constant(rng.integers(0, 5, (2, 32, 32)), tf.int32),
    }
    applied = []  # the largest unscaled gradient the encoder optimizer receives, per step
    apply = trainer.encoder_optimizer.apply_gradients

    def spy(grads_and_vars):
        grads_and_vars = list(grads_and_vars)
        scale = float(trainer.encoder_optimizer.dynamic_scale)
        applied.append(max(float(tf.reduce_max(tf.abs(g))) for g, _ in grads_and_vars) / scale)
        return apply(grads_and_vars)

    trainer.encoder_optimizer.apply_gradients = spy
    before = [v.numpy().copy() for v in trainer.segformer.trainable_variables]
    losses = trainer.train_step(batch)  # eager: tracing the step costs more than running it
    assert set(losses) == {"CE", "Jaccard", "loss"}
    assert all(np.isfinite(float(v)) for v in losses.values())
    after = [v.numpy() for v in trainer.segformer.trainable_variables]
    assert sum(not np.array_equal(a, b) for a, b in zip(before, after)) > len(before) // 2
    # Clipped element-wise at 1e-4 in the unscaled gradient (the scale is 2 ** 15).
    assert applied[0] == pytest.approx(1e-4, rel=1e-3)
    scales = [float(trainer.encoder_optimizer.dynamic_scale)]
    assert scales[0] == float(trainer.head_optimizer.dynamic_scale) == 2.0**15
    # The one-cycle schedule drives both optimizers: step 1 of 8, rising over 2 steps.
    rate = float(OneCycleCosine(1e-3, 8, pct_start=0.25)(1))
    assert float(trainer.learning_rates()["lr_encoder"]) == pytest.approx(rate, rel=1e-5)
    assert float(trainer.learning_rates()["lr_head"]) == pytest.approx(rate, rel=1e-5)

    # An overflowing scale: the step is skipped by both optimizers, both scales halve.
    for optimizer in (trainer.encoder_optimizer, trainer.head_optimizer):
        optimizer.dynamic_scale.assign(3e38)
    before = [v.numpy().copy() for v in trainer.segformer.trainable_variables]
    trainer.train_step(batch)
    for a, b in zip(before, trainer.segformer.trainable_variables):
        np.testing.assert_array_equal(a, b.numpy())
    assert float(trainer.encoder_optimizer.dynamic_scale) == pytest.approx(1.5e38, rel=1e-6)
    assert float(trainer.head_optimizer.dynamic_scale) == pytest.approx(1.5e38, rel=1e-6)
    # The AdamW states keep their checkpoint names; the loss scales are saved beside them.
    objects = trainer.checkpoint_objects()
    assert objects["encoder_optimizer"] is trainer.encoder_optimizer.inner_optimizer
    assert {"encoder_loss_scale", "head_loss_scale"} <= set(objects)


def prepared_input(root, split, ids, size=32):
    """The seed's input/<split>/{images,annotations}/ with {id}.png and {id}_seg.png."""
    rng = np.random.default_rng(7)
    for folder in ("images", "annotations"):
        os.makedirs(root / split / folder, exist_ok=True)
    for k in ids:
        label = rng.integers(0, 19, (size // 8, size // 8)).astype(np.uint8)
        label = np.kron(label, np.ones((8, 8), np.uint8))  # [size, size] blocks of classes
        image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / split / "images" / f"{k:06d}.png")
        Image.fromarray(label).save(root / split / "annotations" / f"{k:06d}_seg.png")


@pytest.mark.slow
def test_the_seed_users_command_trains_on_its_input_folder(tmp_path):
    from training import loop

    root = tmp_path / "input"
    prepared_input(root, "train", range(4))
    prepared_input(root, "val", range(4, 6))
    # train.py --model=segformer --preset=segformer_facesynthetics --data_root=input, shrunk.
    config = cli.config_from_args(
        [
            "--model=segformer",
            "--preset=segformer_facesynthetics",
            f"--data_root={root}",
            "--variant=tiny",
            "--crop_size=32",
            "--batch_size=2",
            "--max_steps=2",
            "--eval_freq=2",
            f"--checkpoint_dir={tmp_path / 'run'}",
            "--progress=false",
            "--export=false",
        ]
    )
    result = loop.train(config, log=lambda *_: None)
    assert result["step"] == 2
    assert set(result["losses"]) == {"CE", "Jaccard", "loss"}
    assert all(np.isfinite(v) for v in result["losses"].values())
    metrics = result["metrics"]  # the seed logged none: mIoU and per-class IoU
    assert 0.0 <= metrics["miou"] <= 1.0 and len(metrics["iou"]) == 19
