"""core/io.py: atomic images and the progress file of a folder of outputs."""

import json

import numpy as np
import pytest
from PIL import Image

from core import io as core_io
from core.io import OutputExistsError, OutputProgress


def test_save_image_atomic_leaves_no_temporary(tmp_path):
    path = core_io.save_image_atomic(np.full((4, 5, 3), 7, np.uint8), tmp_path / "a" / "x.png")
    assert np.asarray(Image.open(path)).shape == (4, 5, 3)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["x.png"]
    with pytest.raises(ValueError, match="no image format"):
        core_io.save_image_atomic(np.zeros((2, 2), np.uint8), tmp_path / "x.unknown")
    assert not list(tmp_path.glob("*.unknown")) and not list(tmp_path.glob(".*"))


def test_progress_resumes_refuses_other_settings_and_starts_over(tmp_path):
    out = tmp_path / "out"
    progress = OutputProgress.load(out, {"seed": 1, "k": (1, 2)}, overwrite=False)
    assert not progress.resuming
    progress.start()
    (out / "a.png").write_bytes(b"a")
    progress.add([out / "a.png"], extra=5)
    # A kill while appending the next line: the torn line is ignored.
    with open(out / core_io.PROGRESS_FILE, "a") as file:
        file.write('{"done": ["b.p')

    again = OutputProgress.load(out, {"seed": 1, "k": [1, 2]}, overwrite=False)
    assert again.resuming and not again.finished
    assert again.done(out / "a.png") and not again.done(out / "b.png")
    assert again.records == [{"done": ["a.png"], "extra": 5}]
    again.start()
    again.add([out / "b.png"])  # a listed file that is missing is not done
    assert not again.done(out / "b.png")
    again.finish()
    assert OutputProgress.load(out, {"seed": 1, "k": [1, 2]}, overwrite=False).finished

    with pytest.raises(OutputExistsError, match=r"--output_dir=.*out is not empty.*seed: 1 then"):
        OutputProgress.load(out, {"seed": 2, "k": [1, 2]}, overwrite=False)
    fresh = OutputProgress.load(out, {"seed": 2, "k": [1, 2]}, overwrite=True)
    assert not fresh.resuming and not fresh.done(out / "a.png")
    fresh.start()
    lines = (out / core_io.PROGRESS_FILE).read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"settings": {"seed": 2, "k": [1, 2]}}]


def test_progress_moved_folder_still_resumes(tmp_path):
    progress = OutputProgress.load(tmp_path / "a", {"x": 1}, overwrite=False)
    progress.start()
    (tmp_path / "a" / "f.png").write_bytes(b"f")
    progress.add([tmp_path / "a" / "f.png"])
    (tmp_path / "a").rename(tmp_path / "b")
    assert OutputProgress.load(tmp_path / "b", {"x": 1}, overwrite=False).done(
        tmp_path / "b" / "f.png"
    )
