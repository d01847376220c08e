"""Semantic Palette's image side: the presets that agree with SPADE's, end-to-end fine-tuning
(stage=e2e) of a layout run and a SPADE run, its source checks, and the combined
palette -> layout -> image SavedModel.

The source runs are written directly (config.json + one checkpoint of freshly built networks at
the step that finishes the last level): what is tested is how they are read, checked, fine-tuned
and exported, not how well they were trained."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from palette_testdata import make_cityscapes_layouts

import flags as cli
from models.palette import sources
from models.palette.export import PartialEditor, export_palette_pipeline
from models.palette.task import PaletteE2ETask
from models.palette.trainer import PaletteLayoutGAN, PalettePartialGAN
from models.spade.export import Synthesizer
from models.spade.trainer import SPADEGAN
from training import checkpointing
from training import run_dir as run_dir_lib

FINAL_STEP = 14  # 4 levels of 2 fade-in + 2 stable steps: level 3 at alpha 1 from step 14


def _quiet(*_):
    pass


def _layout_args(data_root, run_dir, *extra):
    return [
        "--model=palette",
        "--preset=tiny",  # 4 levels: 4x8 .. 32x64
        "--dataset=cityscapes",
        f"--data_root={data_root}",
        f"--checkpoint_dir={run_dir}",
        "--batch_size=2",
        "--z_dim=8",
        "--channel_base=16",
        "--max_channels=8",
        "--fade_steps=2",
        "--stable_steps=2",
        "--progress=false",
        "--export=false",
        *extra,
    ]


def _spade_args(data_root, run_dir, *extra):
    return [
        "--model=spade",
        "--preset=palette_tiny",
        "--dataset=cityscapes",
        f"--data_root={data_root}",
        f"--checkpoint_dir={run_dir}",
        "--batch_size=2",
        "--ngf=4",
        "--ndf=4",
        "--spade_hidden=4",
        "--n_layers_D=3",
        "--progress=false",
        "--export=false",
        *extra,
    ]


def _write_run(config, model, step):
    """A run directory of `config` whose one checkpoint holds `model` at `step`."""
    run_dir_lib.prepare_run_dir(config)
    model.step.assign(step)
    checkpoint = tf.train.Checkpoint(**model.checkpoint_objects())
    folder = os.path.join(config.checkpoint_dir, "checkpoints")
    manager = tf.train.CheckpointManager(checkpoint, folder, max_to_keep=2)
    checkpointing.save_checkpoint(manager, step)
    return config.checkpoint_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Data, a layout run, a partial run and a SPADE run at 32x64 on the fixture tree."""
    tf.keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("e2e")
    data = make_cityscapes_layouts(root / "data", count=6)
    layout = cli.config_from_args(_layout_args(data, root / "layout"))
    partial = cli.config_from_args(
        _layout_args(data, root / "partial", "--stage=partial", "--spade_hidden=4")
    )
    spade = cli.config_from_args(_spade_args(data, root / "spade"))
    out = {"root": root, "data": data, "layout_config": layout, "spade_config": spade}
    out["layout"] = _write_run(
        layout, PaletteLayoutGAN.from_run_config(layout, num_classes=19), FINAL_STEP
    )
    out["partial"] = _write_run(
        partial, PalettePartialGAN.from_run_config(partial, num_classes=19), FINAL_STEP
    )
    out["spade"] = _write_run(spade, SPADEGAN.from_run_config(spade, num_classes=20), 7)
    return out


def _e2e_args(runs, run_dir, *extra):
    return _layout_args(
        runs["data"],
        run_dir,
        "--stage=e2e",
        f"--layout_run={runs['layout']}",
        f"--image_run={runs['spade']}",
        *extra,
    )


def test_palette_presets_reach_the_spade_presets_sizes():
    tiny = cli.config_from_args(["--model=palette", "--preset=tiny"])
    spade_tiny = cli.config_from_args(["--model=spade", "--preset=palette_tiny"])
    assert tiny.layout_size == spade_tiny.image_size == (32, 64)
    assert tiny.dataset == spade_tiny.dataset == "streets"
    assert (tiny.streets_height, tiny.streets_width) == (spade_tiny.streets_height, 64)
    assert spade_tiny.semantic_label_path == "cityscapes" and spade_tiny.vgg_weights == "none"
    assert (spade_tiny.ngf, spade_tiny.ndf, spade_tiny.use_vae) == (8, 8, False)
    paper = cli.config_from_args(["--model=palette", "--preset=cityscapes_128x256"])
    spade_paper = cli.config_from_args(["--model=spade", "--preset=cityscapes_128x256"])
    assert paper.layout_size == spade_paper.image_size == (128, 256)
    assert paper.dataset == spade_paper.dataset
    sources.check_layout_and_image(tiny, spade_tiny, "tiny")
    sources.check_layout_and_image(paper, spade_paper, "paper")


@pytest.mark.slow  # the module's source runs: ~25 s of setup
def test_e2e_sources_are_checked_and_nothing_is_written(runs, tmp_path):
    from training import loop

    layout_config, spade_config = runs["layout_config"], runs["spade_config"]
    bad_runs = {
        ("--layout_run", str(tmp_path / "none")): "--layout_run=.*none: no such run directory",
        ("--layout_run", runs["spade"]): "is a run of --model=spade, not --model=palette",
        ("--image_run", runs["layout"]): "is a run of --model=palette, not --model=spade",
        ("--layout_run", runs["partial"]): "is a run of --stage=partial, not layout",
    }
    run_dir = tmp_path / "e2e"
    for (flag, value), message in bad_runs.items():
        config = cli.config_from_args([*_e2e_args(runs, run_dir), f"{flag}={value}"])
        with pytest.raises(sources.SourceRunError, match=message):
            loop.train(config, log=_quiet)
        assert not run_dir.exists()  # checked before the run directory is created
    other = cli.config_from_args(_e2e_args(runs, run_dir, "--z_dim=16", "--max_channels=4"))
    with pytest.raises(sources.SourceRunError, match=r"give its values:\n  --z_dim=8 \(this run"):
        sources.load_e2e_sources(other)
    with pytest.raises(
        sources.SourceRunError, match="32x64 but the image synthesizer makes 64x128"
    ):
        sources.check_layout_and_image(
            layout_config, spade_config.replace(crop_size=64, load_size=64), "w"
        )
    with pytest.raises(sources.SourceRunError, match="'cityscapes' .19 classes. but .*'ade20k'"):
        sources.check_layout_and_image(
            layout_config,
            spade_config.replace(
                dataset="folders", image_dir="i", label_dir="l", semantic_label_path="ade20k"
            ),
            "w",
        )
    # A layout checkpoint of another level: level 2, or level 3 still fading in.
    with pytest.raises(sources.SourceRunError, match=r"level 2 \(16x32\), not its last level 3"):
        sources.check_final_level(layout_config, 10, "w")
    with pytest.raises(sources.SourceRunError, match="fading in at alpha 0.50.*step 14 or more"):
        sources.check_final_level(layout_config, 13, "w")
    sources.check_final_level(layout_config, FINAL_STEP, "w")


@pytest.mark.slow  # eager steps of three generators: ~45 s
def test_e2e_steps_train_both_generators_from_the_source_runs(runs, tmp_path):
    config = cli.config_from_args(_e2e_args(runs, tmp_path / "e2e"))
    task = PaletteE2ETask(config)
    os.makedirs(config.checkpoint_dir)
    model = task.build(1, log=_quiet)
    # The networks start as the source runs' (restored), the new discriminator from scratch.
    source = PaletteLayoutGAN.from_run_config(
        runs["layout_config"], num_classes=19, for_training=False
    )
    checkpointing.restore_run_for_inference(source.checkpoint_objects(), runs["layout"], log=_quiet)
    for a, b in zip(source.generator.variables, model.layout_gan.generator.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(model.step.numpy()) == 0  # the e2e run counts its own steps
    assert model.parameter_counts()["uncond_discriminator"] > 0
    batch = next(iter(task.dataset_fn(None, 0)))
    assert batch["image"].shape == (2, 32, 64, 3) and batch["layout"].shape == (2, 32, 64, 19)
    assert batch["label"].numpy().max() == 19  # the ignored bottom rows: "don't care"
    nets = {
        "layout G": model.layout_gan.generator,
        "image G": model.image_gan.generator,
        "uncond D": model.uncond_discriminator,
    }
    before = {k: [v.numpy().copy() for v in n.trainable_variables] for k, n in nets.items()}
    for _ in range(2):  # eagerly: the engine's tf.function path is the slow test's
        losses = {k: float(v) for k, v in model.train_step(batch).items()}
        model.step.assign_add(1)
    assert all(np.isfinite(v) for v in losses.values()), losses
    assert {"D_wgan", "D_hinge", "D_uncond", "G_wgan", "G_GAN", "G_GAN_Feat", "G_e2e"} <= set(
        losses
    )
    for name, net in nets.items():
        changed = [
            not np.allclose(a, b.numpy()) for a, b in zip(before[name], net.trainable_variables)
        ]
        assert any(changed), name
    # The e2e term alone reaches the layout generator through SPADE (straight-through).
    with tf.GradientTape() as tape:
        _, _, _, images = model._images_of_generated_layouts(
            2, batch["proportions"], 400, training=True
        )
        loss = tf.reduce_mean(model.uncond_discriminator(images, training=True)[0][-1])
    grads = tape.gradient(loss, model.layout_gan.generator.trainable_variables)
    assert any(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)


@pytest.mark.slow  # tracing SPADE, the layout and the partial generators for the SavedModel
def test_pipeline_export_equals_the_keras_models(runs, tmp_path):
    path = export_palette_pipeline(
        runs["layout"], runs["spade"], str(tmp_path / "pipeline"), partial_source=runs["partial"]
    )
    module = tf.saved_model.load(path)
    rng = np.random.default_rng(0)
    palettes = rng.dirichlet(np.ones(19), size=2).astype(np.float32)
    z = rng.standard_normal((2, 8)).astype(np.float32)
    out = {k: v.numpy() for k, v in module.serve(palettes, z).items()}
    layout_config = runs["layout_config"]
    gan = PaletteLayoutGAN.from_run_config(layout_config, num_classes=19, for_training=False)
    checkpointing.restore_run_for_inference(gan.checkpoint_objects(), runs["layout"], log=_quiet)
    soft = gan.generate(tf.constant(z), tf.constant(palettes)).numpy()  # level 3, alpha 1
    np.testing.assert_allclose(out["layout_soft"], soft, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out["layout"], soft.argmax(-1))
    synthesizer = Synthesizer(checkpoint_dir=runs["spade"], log=_quiet)
    images = synthesizer(out["layout"])
    assert out["image"].shape == (2, 32, 64, 3)
    assert np.abs(out["image"].astype(int) - images).max() <= 1  # uint8 rounding
    # serve_partial: the partial run's edit, then SPADE.
    editor = PartialEditor(path)
    bands = np.array([[10, 30], [0, 16]], np.int32)
    change = np.zeros((2, 19), np.float32)
    edited = editor(out["layout"], bands, change, z)
    outside = np.ones((2, 32, 64), bool)
    outside[0, :, 10:30] = outside[1, :, 0:16] = False
    np.testing.assert_array_equal(edited["layout"][outside], out["layout"][outside])
    images = synthesizer(edited["layout"])
    assert np.abs(edited["image"].astype(int) - images).max() <= 1
    with pytest.raises(sources.SourceRunError, match="is a run of --model=spade"):
        export_palette_pipeline(runs["spade"], runs["spade"], str(tmp_path / "bad"))
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow  # two engine runs, each tracing the whole e2e step: the full tier runs it
def test_e2e_through_the_engine_resumes_exactly(runs, tmp_path):
    """2 steps straight == 1 step, stop, 1 more."""
    from training import loop

    common = ("--save_model_freq=1", "--keep_checkpoints=3", "--save_img_freq=2", "--deterministic")
    straight_dir = tmp_path / "straight"
    straight = loop.train(
        cli.config_from_args(_e2e_args(runs, straight_dir, "--max_steps=2", *common)),
        log=_quiet,
    )
    assert straight["step"] == 2 and all(np.isfinite(v) for v in straight["losses"].values())
    assert (straight_dir / "image_config.json").exists()
    assert sorted(p.name for p in (straight_dir / "samples").iterdir()) == ["step_00000002.png"]
    # Resume from the step-1 checkpoint of a copy.
    resumed_dir = tmp_path / "resumed"
    shutil.copytree(straight_dir, resumed_dir)
    for name in os.listdir(resumed_dir / "checkpoints"):
        if name.startswith("ckpt-2"):
            os.remove(resumed_dir / "checkpoints" / name)
    messages = []
    resumed = loop.train(
        cli.config_from_args(_e2e_args(runs, resumed_dir, "--max_steps=2", *common)),
        log=messages.append,
    )
    assert any("Resumed" in m and "at step 1" in m for m in messages)
    a_objects = straight["model"].checkpoint_objects()
    b_objects = resumed["model"].checkpoint_objects()
    for key in ("layout_generator", "image_generator", "uncond_discriminator"):
        a = a_objects[key].variables_by_position
        b = b_objects[key].variables_by_position
        for k in a:
            np.testing.assert_array_equal(a[k].numpy(), b[k].numpy(), err_msg=f"{key} {k}")
