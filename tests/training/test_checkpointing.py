"""training/checkpointing.py: falling back past damaged checkpoints, a full disk, stale temps."""

import errno
import hashlib
import os

import pytest
import tensorflow as tf

from training import checkpointing
from training.checkpointing import CheckpointError


def _checksums(folder):
    return {
        name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
        for name in sorted(os.listdir(folder))
        if (folder / name).is_file()
    }


@pytest.fixture
def two_checkpoints(tmp_path):
    """ckpt-1 (v = 1) and ckpt-2 (v = 2) of one variable, written by a CheckpointManager."""
    variable = tf.Variable(0.0)
    checkpoint = tf.train.Checkpoint(v=variable)
    manager = tf.train.CheckpointManager(checkpoint, str(tmp_path / "ckpts"), max_to_keep=5)
    for step in (1, 2):
        variable.assign(float(step))
        manager.save(checkpoint_number=step)
    return tmp_path / "ckpts", checkpoint, variable, manager


def test_restores_the_newest(two_checkpoints):
    folder, checkpoint, variable, _ = two_checkpoints
    variable.assign(0.0)
    messages = []
    prefix = checkpointing.restore_newest_readable(
        checkpoint, str(folder), where="RUN", log=messages.append
    )
    assert prefix == str(folder / "ckpt-2") and float(variable) == 2.0 and messages == []


def test_damaged_index_and_garbage_files_fall_back_naming_them(two_checkpoints):
    folder, checkpoint, variable, _ = two_checkpoints
    (folder / "ckpt-2.index").write_bytes(b"not an sstable")
    (folder / "ckpt-999.index").write_bytes(os.urandom(200))
    (folder / "ckpt-999.data-00000-of-00001").write_bytes(os.urandom(200))
    variable.assign(0.0)
    messages = []
    prefix = checkpointing.restore_newest_readable(
        checkpoint, str(folder), where="RUN", log=messages.append
    )
    assert prefix == str(folder / "ckpt-1") and float(variable) == 1.0
    assert len(messages) == 1  # one line
    assert "ckpt-999.index" in messages[0] and "ckpt-2.index" in messages[0]
    assert "ckpt-1" in messages[0]


def test_damaged_data_falls_back(two_checkpoints):
    folder, checkpoint, variable, _ = two_checkpoints
    data = folder / "ckpt-2.data-00000-of-00001"
    data.write_bytes(b"\0" * data.stat().st_size)
    messages = []
    prefix = checkpointing.restore_newest_readable(
        checkpoint, str(folder), where="RUN", log=messages.append
    )
    assert prefix == str(folder / "ckpt-1") and float(variable) == 1.0
    assert "ckpt-2.data" in messages[0]


def test_no_readable_checkpoint_names_the_folder(two_checkpoints):
    folder, checkpoint, _, _ = two_checkpoints
    for step in (1, 2):
        (folder / f"ckpt-{step}.index").write_bytes(b"")
    with pytest.raises(CheckpointError, match=rf"RUN: no readable checkpoint in {folder}"):
        checkpointing.restore_newest_readable(checkpoint, str(folder), where="RUN")
    assert (
        checkpointing.restore_newest_readable(checkpoint, str(folder / "none"), where="R") is None
    )


def test_disk_full_is_named_and_leaves_no_partial_files(two_checkpoints, monkeypatch):
    folder, _, _, manager = two_checkpoints
    before = _checksums(folder)

    def full_disk(self, checkpoint_number=None, **kwargs):
        # What TF leaves when the disk fills mid-save: a temp folder and a partial index.
        os.makedirs(folder / f"ckpt-{checkpoint_number}_temp")
        (folder / f"ckpt-{checkpoint_number}_temp" / "part-00000-of-00001.data").write_bytes(b"x")
        (folder / f"ckpt-{checkpoint_number}.index").write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tf.train.CheckpointManager, "save", full_disk)
    with pytest.raises(CheckpointError) as raised:
        checkpointing.save_checkpoint(manager, 3)
    message = str(raised.value)
    assert str(folder / "ckpt-3") in message and "no space left on device" in message
    assert "bytes needed" in message
    assert _checksums(folder) == before  # ckpt-1, ckpt-2 and the state file untouched
    assert not (folder / "ckpt-3_temp").exists()


def test_disk_full_reported_by_tensorflow(two_checkpoints, monkeypatch):
    folder, _, _, manager = two_checkpoints

    def full_disk(self, checkpoint_number=None, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "write failed: No space left on device")

    monkeypatch.setattr(tf.train.CheckpointManager, "save", full_disk)
    with pytest.raises(CheckpointError, match="no space left"):
        checkpointing.save_checkpoint(manager, 3)


def test_other_write_errors_are_not_hidden(two_checkpoints, monkeypatch):
    _, _, _, manager = two_checkpoints

    def broken(self, checkpoint_number=None, **kwargs):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(tf.train.CheckpointManager, "save", broken)
    with pytest.raises(OSError, match="I/O error"):
        checkpointing.save_checkpoint(manager, 3)


def test_stale_temp_folders_are_removed(two_checkpoints):
    folder, _, _, _ = two_checkpoints
    os.makedirs(folder / "ckpt-3_temp")
    (folder / "ckpt-3_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"x")
    os.makedirs(folder / "mine_temp")  # not a checkpoint temp: kept
    before = _checksums(folder)
    messages = []
    removed = checkpointing.remove_stale_temp_folders(str(folder), log=messages.append)
    assert removed == [str(folder / "ckpt-3_temp")] and not (folder / "ckpt-3_temp").exists()
    assert (folder / "mine_temp").is_dir() and _checksums(folder) == before
    assert len(messages) == 1 and "ckpt-3_temp" in messages[0]
