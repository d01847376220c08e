"""training/run_dir.prepare_run_dir: resuming a run whose config.json predates a setting."""

import json

import pytest

import flags as cli
from training.run_dir import RunDirError, prepare_run_dir


def test_a_setting_added_after_the_run_counts_as_its_default(tmp_path):
    config = cli.config_from_args([f"--checkpoint_dir={tmp_path / 'run'}"])
    assert prepare_run_dir(config) is False  # a new run
    path = tmp_path / "run" / "config.json"
    stored = json.loads(path.read_text())
    # As written before non-square SPADE and --prob_dataset existed.
    del stored["aspect_ratio"], stored["prob_dataset"]
    path.write_text(json.dumps(stored))
    assert prepare_run_dir(config) is True  # resumed: the run used the defaults
    with pytest.raises(RunDirError, match="--aspect_ratio: 1.0 in the run, 2.0 now"):
        prepare_run_dir(config.replace(aspect_ratio=2.0))
