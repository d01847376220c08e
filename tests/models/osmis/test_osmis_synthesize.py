"""synthesize.py --model=osmis: its flags are checked before TensorFlow loads (fast; the pairs
it writes are tested on a trained run in test_osmis_training.py)."""

import os
import subprocess
import sys

import pytest
from conftest import ROOT


@pytest.mark.parametrize(
    "args, message",
    [
        (["--checkpoint_dir=run", "--k=3"], "--k is not used by --model=osmis"),
        (["--checkpoint_dir=run", "--mode=dataset"], "--mode is not used by --model=osmis"),
        ([], "needs exactly one of --checkpoint_dir (an OSMIS run) and --saved_model"),
        (["--checkpoint_dir=run", "--saved_model=export"], "needs exactly one of"),
        (["--checkpoint_dir=run", "--num_images=0"], "--num_images must be >= 1"),
        (["--saved_model=export", "stray"], "unexpected arguments: stray"),
    ],
)
def test_synthesize_osmis_flag_errors(args, message, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "synthesize.py"), "--model=osmis", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert not os.listdir(tmp_path)  # nothing written (no outputs/osmis_pairs)
