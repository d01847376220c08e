"""training/loop.py on a tiny SPADE: a moved run resumes, damaged checkpoints and stale temp
folders of killed saves are handled at start, a failed first start leaves nothing behind."""

import os
import shutil

import numpy as np
import pytest
from conftest import tiny_train_args
from PIL import Image

import flags as cli
from core.errors import UserError


def _train(data_root, run_dir, *extra):
    from training import loop

    messages = []
    config = cli.config_from_args(tiny_train_args(data_root, str(run_dir), *extra))
    return loop.train(config, log=messages.append), messages


@pytest.mark.slow
def test_moved_run_resumes_past_damaged_checkpoints_and_stale_temps(scenes_root, tmp_path):
    first = tmp_path / "first"
    result, _ = _train(scenes_root, first, "--max_steps=2", "--save_model_freq=1")
    assert result["step"] == 2
    # Moved, then given by a relative path: the run is its contents, not where it was.
    moved = tmp_path / "elsewhere" / "moved"
    os.makedirs(moved.parent)
    shutil.move(str(first), str(moved))
    cwd = os.getcwd()
    os.chdir(tmp_path / "elsewhere")
    try:
        result, messages = _train(scenes_root, "moved", "--max_steps=3", "--save_model_freq=1")
    finally:
        os.chdir(cwd)
    assert result["step"] == 3
    assert any("Resumed" in m and "at step 2" in m for m in messages), messages

    # A kill mid-save left a temp folder; the newest index is damaged; garbage ckpt-999.
    ckpts = moved / "checkpoints"
    os.makedirs(ckpts / "ckpt-4_temp")
    (ckpts / "ckpt-4_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"half")
    (ckpts / "ckpt-3.index").write_bytes(b"\0" * 40)
    (ckpts / "ckpt-999.index").write_bytes(b"garbage")
    (ckpts / "ckpt-999.data-00000-of-00001").write_bytes(b"garbage")
    result, messages = _train(scenes_root, moved, "--max_steps=4", "--save_model_freq=1")
    assert result["step"] == 4
    assert not (ckpts / "ckpt-4_temp").exists()
    assert any("ckpt-4_temp" in m for m in messages), messages
    fallback = [m for m in messages if "unreadable checkpoint" in m]
    assert len(fallback) == 1 and "ckpt-3.index" in fallback[0] and "ckpt-999.index" in fallback[0]
    assert any("Resumed" in m and "at step 2" in m for m in messages), messages


def _bad_folder_data(root):
    images, labels = root / "images", root / "labels"
    images.mkdir()
    labels.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(
            images / f"p{i}.png"
        )
        label = rng.choice([2, 3], (40, 40)).astype(np.uint8)
        label[:2, :2] = 250  # outside ADE20K's 151 classes: training refuses it
        Image.fromarray(label, mode="L").save(labels / f"p{i}.png")
    # ADE20K's label set: 250 is outside it (without one, the values would be discovered).
    return [
        "--dataset=folders",
        f"--image_dir={images}",
        f"--label_dir={labels}",
        "--semantic_label_path=ade20k",
    ]


@pytest.mark.parametrize("existing", [False, True])
def test_failed_first_start_leaves_nothing_behind(tmp_path, float32_policy, existing):
    data_flags = _bad_folder_data(tmp_path)
    run_dir = tmp_path / "run"
    if existing:  # a folder the user made: it stays, with what they put there
        run_dir.mkdir()
        (run_dir / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="250"):
        _train("unused", run_dir, "--max_steps=2", *data_flags)
    if existing:
        assert sorted(os.listdir(run_dir)) == ["notes.txt"]
    else:
        assert not run_dir.exists()
