"""Shared test set-up: repo root on sys.path, a tiny built-in dataset.

The markers (`slow`, `lint`) are registered in pyproject.toml, [tool.pytest.ini_options].
"""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Tiny built-in scenes shared by the training tests: 8 training and a few validation pairs.
TINY_SCENES = {"num_scenes": 8, "scenes_size": 64}


@pytest.fixture(scope="session")
def scenes_root(tmp_path_factory):
    """A data root holding the tiny built-in scenes (generated once per test session)."""
    import datasets

    root = str(tmp_path_factory.mktemp("data"))
    datasets.resolve_pairs("scenes", "training", data_root=root, **TINY_SCENES)
    return root


@pytest.fixture
def float32_policy():
    """Restores the float32 Keras policy after a test that changes it."""
    import keras

    yield
    keras.mixed_precision.set_global_policy("float32")


def tiny_train_args(data_root, run_dir, *extra):
    """Command-line style arguments of a tiny, fast SPADE training run (on the tiny scenes,
    unless `extra` gives another --dataset: the scene flags are then left out, since a data
    flag the source does not read is an error)."""
    datasets = [arg.split("=", 1)[1] for arg in extra if arg.startswith("--dataset=")]
    scenes = not datasets or datasets[-1] == "scenes"
    scene_flags = [
        "--dataset=scenes",
        f"--data_root={data_root}",
        f"--num_scenes={TINY_SCENES['num_scenes']}",
        f"--scenes_size={TINY_SCENES['scenes_size']}",
    ]
    return [
        "--preset=tiny",
        *(scene_flags if scenes else []),
        f"--checkpoint_dir={run_dir}",
        "--batch_size=2",
        "--crop_size=32",
        "--load_size=36",
        "--encoder_input_size=32",
        "--ngf=4",
        "--ndf=4",
        "--z_dim=8",
        "--spade_hidden=8",
        "--n_layers_D=3",
        "--progress=false",
        "--export=false",
        *extra,
    ]
