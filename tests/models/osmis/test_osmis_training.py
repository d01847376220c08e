"""OSMIS training: SIV-GAN mode and the input record (fast); through the engine (slow: tracing
the train step takes most of a minute on 2 CPU cores) a tiny run with finite losses and its run
directory, the SavedModel equal to the Keras model, synthesize.py's pairs read by SegFormer's
pair reader and evaluate.py --mode=one_shot, exact resume, and the paper preset's dry run."""

import io
import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT
from PIL import Image

import flags as cli
from core.errors import UserError
from datasets.pairs import json_list_pairs
from evaluation import one_shot
from models.osmis import inputs
from models.osmis.config import PRESETS
from models.osmis.task import OSMISTask
from models.osmis.trainer import OSMISGAN
from training import loop

# A 16 x 24 built-in scene: 3 generator blocks (noise 4 x 6), widths <= 32.
TINY_ARGS = [
    "--model=osmis",
    "--preset=tiny",
    "--scenes_size=16",
    "--max_size=24",
    "--batch_size=2",
    "--z_dim=8",
    "--progress=false",
    "--deterministic",
]


def _train(run_dir, *extra):
    config = cli.config_from_args([*TINY_ARGS, f"--checkpoint_dir={run_dir}", *extra])
    return config, loop.train(config, log=lambda *_: None)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("osmis") / "run")
    config, summary = _train(run_dir, "--max_steps=2", "--save_img_freq=1", "--save_model_freq=1")
    return config, summary


@pytest.mark.slow
def test_tiny_run_trains_and_writes_its_run_directory(tiny_run):
    config, summary = tiny_run
    assert summary["step"] == 2 and summary["stopped"] == "finished"
    losses = summary["losses"]
    assert all(np.isfinite(v) for v in losses.values()), losses
    for name in ("g_low_level", "g_content", "g_layout", "g_diversity", "d_real_content"):
        assert name in losses
    assert losses["diversity"] > 0 and losses["g_diversity"] < 0
    run_dir = config.checkpoint_dir
    for name in ("osmis_input.json", "input/image.png", "input/mask.png", "samples"):
        assert os.path.exists(os.path.join(run_dir, name)), name
    assert sorted(os.listdir(os.path.join(run_dir, "samples"))) == [
        "step_00000001.png",
        "step_00000002.png",
    ]
    gan = summary["model"]
    assert gan.image_size == (16, 24) and gan.num_blocks == 3 and gan.num_classes > 1
    # The EMA generator moved away from G's initial weights but stays close to G (decay 0.9999).
    assert not gan.generator_ema.trainable_weights


@pytest.mark.slow
def test_export_equals_keras(tiny_run):
    config, summary = tiny_run
    gan = summary["model"]
    z = tf.constant(np.random.RandomState(0).randn(3, gan.z_dim).astype("float32"))
    image, mask = gan.sample(z)
    module = tf.saved_model.load(summary["export"])
    served = module.serve(z)
    np.testing.assert_allclose(served["image_float"].numpy(), image.numpy(), atol=1e-5)
    np.testing.assert_allclose(served["mask_probs"].numpy(), mask.numpy(), atol=1e-5)
    # Served masks hold the original class ids (ADE20K ids of the built-in scene).
    with open(os.path.join(config.checkpoint_dir, "osmis_input.json")) as f:
        class_ids = json.load(f)["class_ids"]
    assert set(np.unique(served["mask"].numpy())) <= set(class_ids)


@pytest.mark.slow
def test_synthesize_writes_pairs_that_segformer_and_evaluate_read(tiny_run, tmp_path):
    config, summary = tiny_run
    run_dir = config.checkpoint_dir
    # synthesize.py --model=osmis as the user runs it (the checkpoint), and the function on
    # the SavedModel: the same pairs.
    out = tmp_path / "pairs"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
    args = ["--num_images=5", "--batch_size=2", "--seed=1", "--val_fraction=0.2"]
    proc = subprocess.run(
        [sys.executable, "synthesize.py", "--model=osmis", f"--checkpoint_dir={run_dir}",
         *args, f"--output_dir={out}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    from models.osmis.inference import synthesize_osmis_pairs

    manifest = synthesize_osmis_pairs(
        None, str(tmp_path / "export_pairs"), 5, batch_size=2, seed=1, val_fraction=0.2,
        saved_model=summary["export"], progress=False,
    )  # fmt: skip
    assert manifest["source"] == "osmis" and manifest["settings"]["step"] is None

    # SegFormer's JSON pair reader takes the lists: 4 training pairs, 1 validation pair.
    train = json_list_pairs(str(out / "train.json"))
    val = json_list_pairs(str(out / "val.json"))
    assert len(train) == 4 and len(val) == 1
    with open(out / "label_set.json") as f:
        assert json.load(f)["name"] == "ade20k"  # masks keep the built-in scene's ADE20K ids
    with open(os.path.join(run_dir, "osmis_input.json")) as f:
        class_ids = json.load(f)["class_ids"]
    exported = tmp_path / "export_pairs"
    for image_path, mask_path in train + val:
        image, mask = np.asarray(Image.open(image_path)), np.asarray(Image.open(mask_path))
        assert image.shape == (16, 24, 3) and mask.shape == (16, 24) and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= set(class_ids)
        # The checkpoint's pair and the SavedModel's: equal masks, images within a grey level.
        image_name = os.path.relpath(image_path, out)
        np.testing.assert_array_equal(
            mask, np.asarray(Image.open(exported / os.path.relpath(mask_path, out)))
        )
        other = np.asarray(Image.open(exported / image_name)).astype(int)
        assert np.abs(image.astype(int) - other).max() <= 1
    latents = np.load(out / "latents.npy")
    assert latents.shape == (5, 8) and len(np.unique(latents[:, 0])) == 5
    np.testing.assert_array_equal(latents, np.load(exported / "latents.npy"))

    # evaluate.py --mode=one_shot against the run's input pair (random weights: offline).
    results = one_shot.run_one_shot(
        str(out), os.path.join(run_dir, "input", "image.png"),
        os.path.join(run_dir, "input", "mask.png"), str(tmp_path / "one_shot"),
        inception_weights="random", lpips_backbone_weights="random", log=lambda _: None,
    )  # fmt: skip
    assert results["num_generated"] == 5 and results["size"] == [16, 24]
    assert results["label_set"] == "ade20k" and not any("resized" in n for n in results["notes"])
    assert results["sifid"]["pool1"]["count"] == 5
    assert np.isfinite(results["sifid"]["pool1"]["mean"])
    assert results["lpips_diversity"]["count"] == 10  # all pairs of 5


def test_siv_gan_mode_trains_on_an_image_without_mask(tmp_path):
    from PIL import Image

    path = str(tmp_path / "image.png")
    Image.fromarray(np.random.RandomState(0).randint(0, 255, (20, 28, 3), np.uint8)).save(path)
    config = PRESETS["tiny"].replace(image=path, max_size=24, z_dim=8, gan_loss="hinge")
    one_shot = inputs.load_input(config)
    assert one_shot.num_classes == 0
    keras.utils.set_random_seed(0)
    gan = OSMISGAN.from_run_config(config, layout=one_shot.layout, num_classes=0)
    before = [v.numpy().copy() for v in gan.generator.trainable_weights]
    batch = {"image": tf.constant(one_shot.frames[[0, 0]], tf.float32) / 127.5 - 1}
    # Eager: tracing the step would cost most of a minute on 2 CPU cores.
    losses = {k: float(v) for k, v in gan.train_step(batch).items()}
    assert all(np.isfinite(v) for v in losses.values()), losses
    assert "g_content" in losses and losses["diversity"] > 0
    changed = [not np.array_equal(b, v.numpy()) for b, v in zip(before, gan.generator.weights)]
    assert all(changed)
    image, mask = gan.sample(tf.zeros((1, 8)))
    assert mask is None and image.shape == (1, 16, 24, 3)


@pytest.mark.slow
def test_every_branch_separates_real_from_a_fixed_generator():
    # Regression: the layout decisions had signs frozen at initialisation; with this seed two
    # consecutive ones disagreed and the layout branch could not separate the real image from
    # the untrained generator's output (0.6 logits after 30 D steps, 9-13 with the fix). No
    # augmentation: the low-level and layout branches must learn a fixed real-vs-fake split fast.
    config = PRESETS["tiny"].replace(
        scenes_size=16, max_size=24, z_dim=8, ch_d=8, aug_prob=0.0, bernoulli_warmup=0
    )
    one_shot = inputs.load_input(config)
    k = one_shot.num_classes
    keras.utils.set_random_seed(2)
    gan = OSMISGAN.from_run_config(config, layout=one_shot.layout, num_classes=k)
    image = tf.constant(one_shot.frames[[0, 0]], tf.float32) / 127.5 - 1
    mask = tf.one_hot(tf.constant(one_shot.masks[[0, 0]], tf.int32), k)
    d_step = tf.function(lambda: gan._d_step(image, mask))
    for _ in range(30):
        d_step()
    d = gan.discriminator
    fake = gan.generator.generate(tf.random.normal((4, gan.z_dim), seed=1), training=False)
    fake_mask = tf.one_hot(tf.argmax(fake["mask"], -1), k)
    real_out = d.split(d(gan._real_scales(image), masks=mask))
    fake_out = d.split(d(gan._fake_scales(fake["images"]), masks=fake_mask))
    for branch in ("low_level", "layout"):
        for block, (r, f) in enumerate(zip(real_out[branch], fake_out[branch])):
            margin = float(tf.reduce_mean(r) - tf.reduce_mean(f))
            assert margin > 2.0, (branch, block, margin)
    # The content branch learns more slowly (class-masked averages of a one-image batch); it
    # must at least call the fakes' copies more "fake" than the real ones.
    for r, f in zip(real_out["content"], fake_out["content"]):
        p_fake = [float(tf.reduce_mean(tf.nn.softmax(x)[..., k])) for x in (r, f)]
        assert p_fake[1] > p_fake[0], p_fake


@pytest.mark.slow
def test_resume_equals_an_uninterrupted_run(tiny_run, tmp_path):
    # The fixture's run kept checkpoints 1 and 2: resume a copy from step 1 to step 2.
    config, straight = tiny_run
    resumed_dir = tmp_path / "resumed"
    shutil.copytree(config.checkpoint_dir, resumed_dir)
    for name in os.listdir(resumed_dir / "checkpoints"):
        if name.startswith("ckpt-2"):
            os.remove(resumed_dir / "checkpoints" / name)
    _, resumed = _train(resumed_dir, "--max_steps=2", "--export=false")
    assert resumed["step"] == straight["step"] == 2
    for name in ("generator", "generator_ema", "discriminator"):
        a = getattr(straight["model"], name).weights
        b = getattr(resumed["model"], name).weights
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x.numpy(), y.numpy(), err_msg=f"{name} {x.path}")
    for key, value in straight["losses"].items():
        assert resumed["losses"][key] == pytest.approx(value, rel=1e-6, abs=1e-7), key


def test_resumed_run_must_find_its_input(tmp_path):
    config = PRESETS["tiny"].replace(scenes_size=16, max_size=24, checkpoint_dir=str(tmp_path))
    task = OSMISTask(config)
    task._record_input()
    assert os.path.isfile(tmp_path / "input" / "mask.png")
    task._record_input()  # the same input: fine
    other = OSMISTask(config.replace(scene_index=1))
    with pytest.raises(UserError, match="another input"):
        other._record_input()


@pytest.mark.slow
def test_paper_preset_dry_run_prints_configuration_and_counts(capsys):
    config = cli.config_from_args(["--model=osmis", "--preset=osmis"])
    counts = loop.dry_run(config, out=io.StringIO())
    printed = capsys.readouterr().out
    assert "output 192 x 320 px, 7 generator blocks (noise map 3 x 5)" in printed
    assert "7 discriminator blocks (3 low-level)" in printed
    # The built-in scene has 7 classes; these counts equal the independent count of
    # tests/models/osmis/test_osmis_networks.py for that configuration.
    assert counts == {"generator": 5_888_604, "discriminator": 1_263_686}
