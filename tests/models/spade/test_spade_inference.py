"""models/spade/inference.py: label ids outside the model's classes, resumable folders,
damaged checkpoints (on an untrained tiny SPADE: no training needed)."""

import os

import numpy as np
import pytest
from conftest import tiny_train_args
from PIL import Image

import flags as cli
from core import io as core_io
from models.spade import inference
from models.spade.inference import SynthesisError

# Each test needs a trained tiny SPADE run (half a minute to make): the full tier runs them.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def spade_run(scenes_root, tmp_path_factory):
    """A tiny VAE SPADE run directory with ckpt-1 and ckpt-2, and its export."""
    import tensorflow as tf

    from models.spade import export as export_lib
    from models.spade.trainer import SPADEGAN
    from training.run_dir import prepare_run_dir

    root = tmp_path_factory.mktemp("spade_run")
    config = cli.config_from_args(tiny_train_args(scenes_root, str(root / "run"), "--use_vae"))
    prepare_run_dir(config)
    gan = SPADEGAN.from_run_config(config, 151, for_training=False)
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(**gan.checkpoint_objects()), str(root / "run" / "checkpoints"), 5
    )
    for step in (1, 2):
        gan.step.assign(step)
        manager.save(checkpoint_number=step)
    export_lib.export_spade(gan, str(root / "export"), config.semantic_label_path)
    return root


def _labels(folder, count, bad=None):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        label = rng.choice([1, 2, 3, 17], (32, 32)).astype(np.uint8)
        if bad == i:
            label[0, :3] = [150, 151, 250]
        Image.fromarray(label, mode="L").save(folder / f"m{i}.png")
    return folder


@pytest.mark.parametrize("source", ["checkpoint_dir", "saved_model"])
def test_out_of_range_ids_are_refused_before_writing(spade_run, tmp_path, source):
    model = (
        {"checkpoint_dir": str(spade_run / "run")}
        if source == "checkpoint_dir"
        else {"saved_model": str(spade_run / "export")}
    )
    labels = _labels(tmp_path / "labels", 3, bad=2)
    bad = str(labels / "m2.png")
    with pytest.raises(SynthesisError, match=rf"{bad} holds class ids 151, 250 outside .* 151"):
        inference.synthesize_label_map(bad, str(tmp_path / "one"), **model)
    with pytest.raises(SynthesisError, match=rf"{bad} holds class ids 151, 250"):
        inference.synthesize_label_folder(str(labels), str(tmp_path / "many"), **model)
    assert not (tmp_path / "one").exists() and not (tmp_path / "many").exists()


def test_killed_folder_synthesis_resumes_to_the_uninterrupted_result(
    spade_run, tmp_path, monkeypatch
):
    labels = _labels(tmp_path / "labels", 5)
    model = {"checkpoint_dir": str(spade_run / "run"), "batch_size": 2, "seed": 3}
    inference.synthesize_label_folder(str(labels), str(tmp_path / "straight"), **model)

    save, calls = core_io.save_image_atomic, []

    def killed_after_three(image, path, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt  # the kill
        calls.append(path)
        return save(image, path, **kwargs)

    monkeypatch.setattr(core_io, "save_image_atomic", killed_after_three)
    with pytest.raises(KeyboardInterrupt):
        inference.synthesize_label_folder(str(labels), str(tmp_path / "resumed"), **model)
    monkeypatch.setattr(core_io, "save_image_atomic", save)
    partial = sorted(n for n in os.listdir(tmp_path / "resumed") if not n.startswith("."))
    assert partial == ["m0.png", "m1.png", "m2.png"]  # whole files only, no temporaries
    before = (tmp_path / "resumed" / "m0.png").stat().st_mtime_ns
    inference.synthesize_label_folder(str(labels), str(tmp_path / "resumed"), **model)
    assert (tmp_path / "resumed" / "m0.png").stat().st_mtime_ns == before  # kept, not redone
    for i in range(5):
        np.testing.assert_array_equal(
            np.asarray(Image.open(tmp_path / "resumed" / f"m{i}.png")),
            np.asarray(Image.open(tmp_path / "straight" / f"m{i}.png")),
        )
    # Another seed is another run: refused, and --overwrite starts over.
    with pytest.raises(FileExistsError, match="other settings.*seed: 3 then, 4 now"):
        inference.synthesize_label_folder(
            str(labels), str(tmp_path / "resumed"), **{**model, "seed": 4}
        )
    inference.synthesize_label_folder(
        str(labels), str(tmp_path / "resumed"), **{**model, "seed": 4}, overwrite=True
    )


def test_damaged_newest_checkpoint_falls_back(spade_run, tmp_path):
    import shutil

    from models.spade.export import Synthesizer

    run = tmp_path / "run"
    shutil.copytree(spade_run / "run", run)
    (run / "checkpoints" / "ckpt-2.index").write_bytes(b"not an sstable")
    messages = []
    synth = Synthesizer(checkpoint_dir=str(run), log=messages.append)
    assert synth.step == 1
    assert len(messages) == 1 and "ckpt-2.index" in messages[0]
