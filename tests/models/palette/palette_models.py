"""Untrained tiny palette and SPADE run directories for the synthesis, demo and downstream
tests: a layout run at level 2 (16 x 32 layouts, with its palette estimator), a partial-editing
run (stage=partial) at the same level and size, and a SPADE run at 32 x 64 on Cityscapes train
ids (+ "don't care"), all made without training (seconds)."""

import os

import numpy as np
from palette_testdata import make_cityscapes_layouts, tiny_palette_args

import flags as cli
from semantic_labels import load_label_set

CITYSCAPES = load_label_set("cityscapes")
LAYOUT_STEP = 12  # fade 2 + stable 2 per level: step 12 is level 2 (16 x 32), alpha 1


def _save(objects, run_dir, step):
    import tensorflow as tf

    checkpoint = tf.train.Checkpoint(**objects)
    manager = tf.train.CheckpointManager(checkpoint, os.path.join(run_dir, "checkpoints"), 2)
    manager.save(checkpoint_number=step)


def make_layout_run(data_root, run_dir):
    """A tiny palette run directory (untrained weights) at level 2, with its estimator."""
    from models.palette.estimator import PaletteEstimator
    from models.palette.task import ESTIMATOR_FILE
    from models.palette.trainer import PaletteLayoutGAN
    from training.run_dir import prepare_run_dir

    config = cli.config_from_args(tiny_palette_args(data_root, str(run_dir)))
    prepare_run_dir(config)
    gan = PaletteLayoutGAN.from_run_config(config, num_classes=19, for_training=False)
    gan.step.assign(LAYOUT_STEP)
    _save(gan.checkpoint_objects(), str(run_dir), LAYOUT_STEP)
    rng = np.random.default_rng(0)
    palettes = rng.dirichlet(np.full(19, 0.5), 40)  # [40, 19]
    PaletteEstimator.fit(palettes, CITYSCAPES, max_components=2).save(
        os.path.join(run_dir, ESTIMATOR_FILE)
    )
    return str(run_dir)


def make_partial_run(data_root, run_dir):
    """A tiny stage=partial run directory (untrained weights) at its last level, 16 x 32."""
    from models.palette.trainer import PalettePartialGAN
    from training.run_dir import prepare_run_dir

    args = tiny_palette_args(data_root, str(run_dir), "--stage=partial", "--spade_hidden=4")
    config = cli.config_from_args(args)
    prepare_run_dir(config)
    gan = PalettePartialGAN.from_run_config(config, num_classes=19, for_training=False)
    gan.step.assign(LAYOUT_STEP)
    _save(gan.checkpoint_objects(), str(run_dir), LAYOUT_STEP)
    return str(run_dir)


def make_spade_run(data_root, run_dir):
    """A tiny SPADE run directory (untrained weights) at 32 x 64 on Cityscapes layouts."""
    from conftest import tiny_train_args

    from models.spade.trainer import SPADEGAN
    from training.run_dir import prepare_run_dir

    config = cli.config_from_args(
        tiny_train_args(
            data_root,
            str(run_dir),
            "--dataset=cityscapes",
            f"--data_root={data_root}",
            "--semantic_label_path=cityscapes",
            "--img_height=32",
            "--img_width=64",
            "--load_size=32",
        )
    )
    prepare_run_dir(config)
    gan = SPADEGAN.from_run_config(config, 20, for_training=False)
    gan.step.assign(1)
    _save(gan.checkpoint_objects(), str(run_dir), 1)
    return str(run_dir)


def make_models(root):
    """(data root, layout run, SPADE run) under root."""
    data_root = make_cityscapes_layouts(os.path.join(root, "data"))
    layout = make_layout_run(data_root, os.path.join(root, "layout_run"))
    spade = make_spade_run(data_root, os.path.join(root, "spade_run"))
    return data_root, layout, spade
