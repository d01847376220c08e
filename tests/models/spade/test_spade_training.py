"""SPADE training end to end on tiny configs: steps, resume, export, distribution, CLI."""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, tiny_train_args

import flags as cli


def _config(scenes_root, run_dir, *extra):
    return cli.config_from_args(tiny_train_args(scenes_root, str(run_dir), *extra))


def _weights(model):
    return [np.array(v) for v in model.weights]


def _run(args, timeout=300, env=None):
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


@pytest.mark.parametrize("use_vae", [False, True])
def test_train_step_changes_every_network_with_finite_losses(scenes_root, tmp_path, use_vae):
    from datasets import pipeline
    from models.spade import task as spade_task
    from models.spade.trainer import SPADEGAN

    config = _config(scenes_root, tmp_path / "run", *(["--use_vae"] if use_vae else []))
    label_set, pairs, _ = spade_task.build_dataset_info(config)
    gan = SPADEGAN.from_run_config(config, label_set.num_classes, steps_per_epoch=4)
    batch = next(
        iter(
            pipeline.make_train_dataset(
                pairs,
                num_classes=label_set.num_classes,
                load_size=36,
                crop_size=32,
                global_batch_size=2,
            )
        )
    )
    nets = {"generator": gan.generator, "discriminator": gan.discriminator}
    if use_vae:
        nets["encoder"] = gan.encoder
    before = {name: _weights(net) for name, net in nets.items()}
    losses = gan.train_step(batch)
    expected = {"G_GAN", "G_GAN_Feat", "G_total", "D_hinge"} | ({"KLD"} if use_vae else set())
    assert set(losses) == expected
    assert all(np.isfinite(float(v)) for v in losses.values())
    for name, net in nets.items():
        changed = [not np.array_equal(a, b) for a, b in zip(before[name], _weights(net))]
        assert any(changed), f"{name} did not change"
    # G's optimizer stepped G and E, D's optimizer stepped D: one step each.
    assert int(gan.g_optimizer.iterations) == 1 and int(gan.d_optimizer.iterations) == 1


@pytest.mark.slow  # tens of seconds: the full tier runs it
def test_train_loop_writes_config_checkpoints_samples_and_logs(scenes_root, tmp_path):
    from training import loop

    run_dir = tmp_path / "run"
    config = _config(
        scenes_root,
        run_dir,
        "--max_steps=3",
        "--save_model_freq=2",
        "--save_img_freq=2",
        "--print_info_freq=1",
    )
    result = loop.train(config, log=lambda *_: None)
    assert result["step"] == 3
    assert all(np.isfinite(v) for v in result["losses"].values())
    stored = json.loads((run_dir / "config.json").read_text())
    assert stored["ngf"] == 4 and stored["preset"] == "tiny"
    assert (run_dir / "checkpoints" / "checkpoint").exists()
    assert sorted(os.listdir(run_dir / "samples")) == ["step_00000002.png", "step_00000003.png"]
    assert glob.glob(str(run_dir / "logs" / "events.out.tfevents.*"))


@pytest.mark.slow  # tens of seconds: the full tier runs it
def test_resume_equals_uninterrupted_run(scenes_root, tmp_path):
    """2 steps, stop, 2 more steps == 4 steps in one go (op determinism on)."""
    from training import loop

    common = ("--deterministic", "--use_vae", "--save_model_freq=100")
    straight = loop.train(
        _config(scenes_root, tmp_path / "a", "--max_steps=4", *common), log=lambda *_: None
    )
    loop.train(_config(scenes_root, tmp_path / "b", "--max_steps=2", *common), log=lambda *_: None)
    messages = []
    resumed = loop.train(
        _config(scenes_root, tmp_path / "b", "--max_steps=4", *common), log=messages.append
    )
    assert any("Resumed" in m and "at step 2" in m for m in messages)
    assert resumed["step"] == straight["step"] == 4
    for name in ("generator", "discriminator", "encoder"):
        a = _weights(getattr(straight["gan"], name))
        b = _weights(getattr(resumed["gan"], name))
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y, err_msg=name)
    for name in ("g_optimizer", "d_optimizer"):
        for x, y in zip(
            getattr(straight["gan"], name).variables, getattr(resumed["gan"], name).variables
        ):
            np.testing.assert_array_equal(np.array(x), np.array(y), err_msg=name)


def test_resume_refuses_another_config(scenes_root, tmp_path):
    from training import loop
    from training.run_dir import RunDirError, prepare_run_dir

    assert prepare_run_dir(_config(scenes_root, tmp_path / "run")) is False
    before = (tmp_path / "run" / "config.json").read_text()
    with pytest.raises(RunDirError, match=r"--ngf: 4 in the run, 8 now"):
        loop.train(
            _config(scenes_root, tmp_path / "run", "--max_steps=2", "--ngf=8"), log=lambda *_: None
        )
    assert (tmp_path / "run" / "config.json").read_text() == before
    # Keys about how long or how visibly we train may change on resume.
    again = _config(scenes_root, tmp_path / "run", "--max_steps=2", "--print_info_freq=7")
    assert prepare_run_dir(again) is True
    assert (tmp_path / "run" / "config.json").read_text() == before


@pytest.mark.slow  # tens of seconds: the full tier runs it
def test_bfloat16_step_has_finite_losses(scenes_root, tmp_path, float32_policy):
    from training import loop

    config = _config(
        scenes_root,
        tmp_path / "run",
        "--max_steps=1",
        "--use_vae",
        "--mixed_precision=mixed_bfloat16",
    )
    result = loop.train(config, log=lambda *_: None)
    assert result["step"] == 1
    assert all(np.isfinite(v) for v in result["losses"].values())
    assert result["gan"].generator.compute_dtype == "bfloat16"


@pytest.mark.slow  # tens of seconds: the full tier runs it
@pytest.mark.parametrize("use_vae", [False, True])
def test_savedmodel_matches_keras_model(scenes_root, tmp_path, use_vae):
    import tensorflow as tf

    from models.spade import export as export_lib
    from models.spade import task as spade_task
    from models.spade.trainer import SPADEGAN

    config = _config(scenes_root, tmp_path / "run", *(["--use_vae"] if use_vae else []))
    label_set, pairs, _ = spade_task.build_dataset_info(config)
    gan = SPADEGAN.from_run_config(config, label_set.num_classes)
    rng = np.random.default_rng(0)
    labels = rng.choice([2, 3, 5, 10, 17], size=(2, 32, 32)).astype(np.uint8)
    path = export_lib.export_spade(gan, str(tmp_path / "export"), config.semantic_label_path)
    loaded = tf.saved_model.load(path)
    if use_vae:
        z = rng.standard_normal((2, 8)).astype(np.float32)
        expected = gan.synthesize(tf.constant(labels), z=tf.constant(z), training=False)
        got = loaded.serve_z(tf.constant(labels), tf.constant(z))
        style = rng.integers(0, 256, size=(2, 40, 48, 3)).astype(np.uint8)
        style_f = tf.constant(style, tf.float32) / 127.5 - 1.0
        expected_style = gan.synthesize(tf.constant(labels), style_image=style_f, training=False)
        got_style = loaded.serve_style(tf.constant(labels), tf.constant(style))
        np.testing.assert_allclose(got_style["image_float"], expected_style, atol=1e-5)
    else:
        expected = gan.synthesize(tf.constant(labels), training=False)
        got = loaded.serve(tf.constant(labels))
    np.testing.assert_allclose(got["image_float"], expected, atol=1e-5)
    assert got["image"].dtype == tf.uint8 and got["image"].shape == (2, 32, 32, 3)
    # The signature is visible to the standard tool.
    cli_tool = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    shown = subprocess.run(
        [cli_tool, "show", "--dir", path, "--all"], capture_output=True, text=True, timeout=120
    )
    assert shown.returncode == 0, shown.stderr
    assert "serving_default" in shown.stdout and "label" in shown.stdout
    assert "DT_UINT8" in shown.stdout


_MIRRORED_SCRIPT = r"""
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np
import flags as cli
from training import loop
args = json.loads(sys.argv[1])
mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
result = loop.train(cli.config_from_args(args + ["--checkpoint_dir=" + sys.argv[2]]),
                    strategy=mirrored, log=lambda *_: None)
gan = result["gan"]
differences = 0
for net in (gan.generator, gan.discriminator):
    for v in net.weights:
        values = [np.array(x) for x in v.value.values]
        assert len(values) == 2, v.path
        differences += int(not np.array_equal(values[0], values[1]))
single = loop.train(cli.config_from_args(args + ["--checkpoint_dir=" + sys.argv[3]]),
                    strategy=tf.distribute.get_strategy(), log=lambda *_: None)
gap = max(float(np.max(np.abs(np.array(a) - np.array(b))))
          for a, b in zip(gan.generator.trainable_weights,
                          single["gan"].generator.trainable_weights))
print(json.dumps({"differences": differences, "gap": gap, "losses": result["losses"],
                  "single_losses": single["losses"]}))
"""


@pytest.mark.slow
def test_mirrored_two_replicas_stay_identical_and_match_one_device(scenes_root, tmp_path):
    args = tiny_train_args(
        scenes_root, "unused", "--max_steps=1", "--norm_G=syncbatch", "--deterministic"
    )
    args = [a for a in args if not a.startswith("--checkpoint_dir")]
    script = tmp_path / "mirrored.py"
    script.write_text(_MIRRORED_SCRIPT)
    proc = _run(
        [str(script), json.dumps(args), str(tmp_path / "m"), str(tmp_path / "s")],
        env={"PYTHONPATH": ROOT},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    # After an update every replica holds the same weights (gradients were all-reduced).
    assert report["differences"] == 0
    # Two replicas of batch 1 with synchronised BN compute the losses of one device with batch 2
    # (same weights, same data split, global batch statistics).
    for name, value in report["losses"].items():
        assert abs(value - report["single_losses"][name]) < 1e-5 * max(1.0, abs(value)), name
    # Adam's first update is about +-lr per weight, so weights agree only to that scale.
    assert report["gap"] < 2 * 1e-4, report


@pytest.mark.slow
def test_test_one_and_synthesize_cli(scenes_root, tmp_path):
    from training import loop

    run_dir = tmp_path / "run"
    config = _config(scenes_root, run_dir, "--max_steps=1", "--export=true", "--use_vae")
    loop.train(config, log=lambda *_: None)
    label = sorted(
        glob.glob(
            os.path.join(
                scenes_root,
                "scenes_64",
                "ADEChallengeData2016",
                "annotations",
                "validation",
                "*.png",
            )
        )
    )[0]
    out = tmp_path / "one"
    proc = _run(
        [
            "test_one.py",
            f"--saved_model={run_dir / 'export'}",
            f"--label_filename={label}",
            f"--results_dir={out}",
            "--num_samples=2",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    stem = os.path.splitext(os.path.basename(label))[0]
    from PIL import Image

    a = np.asarray(Image.open(out / f"{stem}_0.png"))
    b = np.asarray(Image.open(out / f"{stem}_1.png"))
    assert a.shape == (32, 32, 3) and not np.array_equal(a, b)  # different random z
    # Existing outputs are not overwritten without --overwrite.
    mtime = os.path.getmtime(out / f"{stem}_0.png")
    proc = _run(
        [
            "test_one.py",
            f"--checkpoint_dir={run_dir}",
            f"--label_filename={label}",
            f"--results_dir={out}",
            "--num_samples=2",
        ]
    )
    assert proc.returncode != 0 and "already exist" in proc.stderr
    assert os.path.getmtime(out / f"{stem}_0.png") == mtime

    # On-demand export of the run's latest checkpoint reproduces the end-of-training export.
    proc = _run(
        [
            "-m",
            "tools.export_spade",
            f"--checkpoint_dir={run_dir}",
            f"--output={tmp_path / 'export2'}",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = _run(
        [
            "test_one.py",
            f"--saved_model={tmp_path / 'export2'}",
            f"--label_filename={label}",
            f"--results_dir={tmp_path / 'one2'}",
            "--style_filename=" + label.replace("annotations", "images")[:-4] + ".jpg",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = _run(
        [
            "test_one.py",
            f"--saved_model={run_dir / 'export'}",
            f"--label_filename={label}",
            f"--results_dir={tmp_path / 'one3'}",
            "--style_filename=" + label.replace("annotations", "images")[:-4] + ".jpg",
        ]
    )
    np.testing.assert_array_equal(
        np.asarray(Image.open(tmp_path / "one2" / f"{stem}.png")),
        np.asarray(Image.open(tmp_path / "one3" / f"{stem}.png")),
    )

    label_dir = os.path.dirname(label)
    proc = _run(
        [
            "synthesize.py",
            "--model=spade",
            f"--label_dir={label_dir}",
            f"--checkpoint_dir={run_dir}",
            f"--output_dir={tmp_path / 'synth'}",
            "--batch_size=3",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = [name for name in os.listdir(tmp_path / "synth") if not name.startswith(".")]
    assert sorted(written) == sorted(os.listdir(label_dir))


def test_corrupt_training_image_is_named(tmp_path, float32_policy):
    from PIL import Image

    from datasets.pairs import DatasetError
    from training import loop

    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(
            images / f"p{i}.jpg"
        )
        Image.fromarray(rng.choice([2, 3], (40, 40)).astype(np.uint8), mode="L").save(
            labels / f"p{i}.png"
        )
    (images / "p2.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    config = cli.config_from_args(
        tiny_train_args(
            "unused",
            str(tmp_path / "run"),
            "--dataset=folders",
            f"--image_dir={images}",
            f"--label_dir={labels}",
            "--max_steps=4",
        )
    )
    with pytest.raises(DatasetError, match="p2.jpg"):
        loop.train(config, log=lambda *_: None)


@pytest.mark.slow  # tens of seconds: the full tier runs it
def test_dry_run_prints_reference_parameter_counts():
    proc = _run(["train.py", "--model=spade", "--preset=ade20k_256", "--use_vae", "--dry_run"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "111,942,595" in proc.stdout  # generator with VAE
    assert "10,463,424" in proc.stdout  # encoder
    assert "5,836,930" in proc.stdout  # multiscale discriminator


def test_bad_flags_name_the_flag():
    with pytest.raises(ValueError, match="--preset='nope'"):
        cli.config_from_args(["--preset=nope"])
    with pytest.raises(ValueError, match="--crop_size=100 must be a multiple of 32"):
        cli.config_from_args(["--crop_size=100", "--load_size=110"])
    proc = _run(
        [
            "train.py",
            "--model=spade",
            "--dataset=ade20k",
            "--data_root=/nonexistent/ade",
            "--dry_run=false",
            "--max_steps=1",
        ]
    )
    assert proc.returncode != 0 and "/nonexistent/ade" in proc.stderr


@pytest.mark.slow
def test_multiworker_two_processes_on_localhost(scenes_root, tmp_path):
    import socket

    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    run_dir = tmp_path / "run"
    args = tiny_train_args(
        scenes_root, str(run_dir), "--max_steps=2", "--distribute=multiworker", "--norm_G=instance"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
    procs = []
    for index in range(2):
        worker_env = dict(
            env,
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "train.py", *args],
                cwd=ROOT,
                env=worker_env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (_out, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    assert "Stopped at step 2" in outputs[0][1] + outputs[0][0]
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    assert latest is not None and latest.endswith("-2")
