"""Bad input, run as the user runs it: every script and tools/ command in a subprocess.

Each case of the matrix asserts the convention of docs/cli.md: exit status 2, one line naming
the file or flag on stderr, no traceback, and every file that existed before unchanged (and the
outputs it must not create absent). Cases that need a trained model share one tiny SPADE run
made once per module with train.py --max_steps=2 (and its export); they are marked slow.
`test_recovery` runs the other side of the reliability items: a moved run, stale temp folders
and a killed synthesize.py all end in a clean exit 0.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import ROOT, tiny_train_args
from PIL import Image

from core import io as core_io


def _run(args, timeout=600, cwd=ROOT):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


def _checksums(*roots):
    sums = {}
    for root in roots:
        for folder, _, names in os.walk(root):
            for name in names:
                path = os.path.join(folder, name)
                if os.path.isfile(path) and not os.path.islink(path):
                    with open(path, "rb") as file:
                        sums[path] = hashlib.sha256(file.read()).hexdigest()
    return sums


def _png(path, array, mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.asarray(array, np.uint8), mode=mode).save(path)
    return str(path)


def _label(path, values=(1, 2, 3, 17), size=32, bad=None):
    label = np.random.default_rng(0).choice(values, (size, size)).astype(np.uint8)
    if bad is not None:
        label[0, : len(bad)] = bad
    return _png(path, label, "L")


def _image(path, size=(32, 32)):
    return _png(path, np.random.default_rng(1).integers(0, 255, (*size, 3)))


# ==============================================================================================
# The shared trained model (slow cases only)
# ==============================================================================================


@pytest.fixture(scope="module")
def model(scenes_root, tmp_path_factory):
    """A tiny SPADE run (2 steps, ckpt-1 and ckpt-2, no VAE) and its export, via train.py."""
    root = tmp_path_factory.mktemp("bad_inputs_model")
    run = root / "run"
    args = tiny_train_args(scenes_root, str(run), "--max_steps=2", "--save_model_freq=1")
    proc = _run(["train.py", *[a for a in args if a != "--export=false"], "--export=true"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"root": root, "run": run, "export": run / "export", "data": scenes_root}


def _copy_run(model, tmp):
    copy = tmp / "run_copy"
    shutil.copytree(model["run"], copy)
    return copy


# ==============================================================================================
# The cases: (tmp, model) -> (argv, expected text on stderr, paths that must not exist after)
# ==============================================================================================

_KILLING_SAVE = """
import errno, os, runpy, sys
import tensorflow as tf
def full_disk(self, checkpoint_number=None, **kwargs):
    folder = self.directory
    os.makedirs(os.path.join(folder, f"ckpt-{checkpoint_number}_temp"), exist_ok=True)
    with open(os.path.join(folder, f"ckpt-{checkpoint_number}_temp", "part-0"), "wb") as f:
        f.write(b"half a shard")
    raise OSError(errno.ENOSPC, "No space left on device")
tf.train.CheckpointManager.save = full_disk
sys.argv = ["train.py", *sys.argv[1:]]
runpy.run_path("train.py", run_name="__main__")
"""


def _script(tmp, name, text):
    path = tmp / name
    path.write_text(textwrap.dedent(text))
    return str(path)


# --- fast: flags (item 7: absl's parsing errors exit 2 like the rest) ---


def case_train_unknown_flag(tmp, model):
    return ["train.py", "--bogus_flag=1"], "bogus_flag", []


def case_train_malformed_int(tmp, model):
    return ["train.py", "--max_steps=ten"], "--max_steps=ten", []


def case_train_bad_enum(tmp, model):
    return ["train.py", "--dataset=nope"], "dataset", []


def case_train_bad_preset(tmp, model):
    return ["train.py", "--preset=nope", "--dry_run"], "--preset", []


def case_train_positional(tmp, model):
    return ["train.py", "stray"], "stray", []


def case_train_flag_of_another_family(tmp, model):
    return ["train.py", "--model=spade", "--variant=b0", "--dry_run"], "--variant", []


def case_test_one_unknown_flag(tmp, model):
    return ["test_one.py", "--label=x.png"], "label", []


def case_test_one_no_label(tmp, model):
    return ["test_one.py", "--checkpoint_dir=x"], "--label_filename", []


def case_test_one_bad_num_samples(tmp, model):
    return ["test_one.py", "--label_filename=x.png", "--num_samples=0"], "--num_samples", []


def case_synthesize_unknown_flag(tmp, model):
    return ["synthesize.py", "--label-dir=x"], "label-dir", []


def case_synthesize_mode_of_another_model(tmp, model):
    return ["synthesize.py", "--model=spade", "--mode=samples"], "--mode=samples", []


def case_synthesize_dataset_without_k(tmp, model):
    return ["synthesize.py", "--model=stylegan2", "--mode=dataset", "--checkpoint_dir=x"], "--k", []


def case_segment_unknown_flag(tmp, model):
    return ["segment.py", "--inputs=x"], "inputs", []


def case_segment_overlap_out_of_range(tmp, model):
    image = _image(tmp / "in" / "a.png")
    out = tmp / "seg"
    return (
        [
            "segment.py",
            f"--input={image}",
            "--saved_model=x",
            "--overlap=1.5",
            f"--output_dir={out}",
        ],
        "--overlap",
        [out],
    )


def case_segment_bad_tile_size(tmp, model):
    image = _image(tmp / "in" / "a.png")
    out = tmp / "seg"
    return (
        [
            "segment.py",
            f"--input={image}",
            "--saved_model=x",
            "--tile_size=33",
            f"--output_dir={out}",
        ],
        "tile_size",
        [out],
    )


def case_evaluate_unknown_flag(tmp, model):
    return ["evaluate.py", "--fid=1"], "fid", []


def case_evaluate_bad_train_flags(tmp, model):
    out = tmp / "s2r"
    return (
        [
            "evaluate.py",
            "--mode=synthetic_to_real",
            "--train_flags=--bogus",
            f"--output_dir={out}",
        ],
        "--train_flags",
        [out],
    )


def case_tools_crops_bad_downscale(tmp, model):
    out = tmp / "crops"
    return (
        [
            "-m",
            "tools.crops",
            f"--input_dir={tmp}",
            f"--output_dir={out}",
            "--num_crops=2",
            "--downscale=a,b",
        ],
        "--downscale",
        [out],
    )


def case_tools_scenes_malformed(tmp, model):
    return ["-m", "tools.scenes", f"--out={tmp / 's'}", "--size=big"], "--size=big", [tmp / "s"]


def case_tools_export_missing_flag(tmp, model):
    return ["-m", "tools.export_spade"], "--checkpoint_dir", []


# --- fast: files ---


def case_train_missing_data_root(tmp, model):
    run = tmp / "run"
    return (
        [
            "train.py",
            "--dataset=ade20k",
            f"--data_root={tmp / 'no_ade'}",
            f"--checkpoint_dir={run}",
            "--max_steps=1",
        ],
        str(tmp / "no_ade"),
        [run],
    )


def case_train_empty_image_dir(tmp, model):
    # Item 6: a failed first start creates no run directory.
    (tmp / "images").mkdir()
    _label(tmp / "labels" / "a.png")
    run = tmp / "run"
    return (
        [
            "train.py",
            "--dataset=folders",
            f"--image_dir={tmp / 'images'}",
            f"--label_dir={tmp / 'labels'}",
            f"--checkpoint_dir={run}",
            "--max_steps=1",
        ],
        "--image_dir",
        [run],
    )


def case_train_mismatched_pairs(tmp, model):
    _image(tmp / "images" / "a.png")
    _label(tmp / "labels" / "b.png")
    run = tmp / "run"
    return (
        [
            "train.py",
            "--dataset=folders",
            f"--image_dir={tmp / 'images'}",
            f"--label_dir={tmp / 'labels'}",
            f"--checkpoint_dir={run}",
            "--max_steps=1",
        ],
        "no label map",
        [run],
    )


def case_test_one_both_sources(tmp, model):
    label = _label(tmp / "l.png")
    out = tmp / "one"
    return (
        [
            "test_one.py",
            f"--label_filename={label}",
            "--checkpoint_dir=a",
            "--saved_model=b",
            f"--results_dir={out}",
        ],
        "exactly one of --checkpoint_dir and --saved_model",
        [out],
    )


def case_test_one_not_a_saved_model(tmp, model):
    label = _label(tmp / "l.png")
    (tmp / "empty").mkdir()
    out = tmp / "one"
    return (
        [
            "test_one.py",
            f"--label_filename={label}",
            f"--saved_model={tmp / 'empty'}",
            f"--results_dir={out}",
        ],
        f"--saved_model={tmp / 'empty'}",
        [out],
    )


def case_test_one_not_a_run_dir(tmp, model):
    label = _label(tmp / "l.png")
    (tmp / "norun").mkdir()
    out = tmp / "one"
    return (
        [
            "test_one.py",
            f"--label_filename={label}",
            f"--checkpoint_dir={tmp / 'norun'}",
            f"--results_dir={out}",
        ],
        f"--checkpoint_dir={tmp / 'norun'}",
        [out],
    )


def case_synthesize_missing_label_dir(tmp, model):
    out = tmp / "synth"
    return (
        [
            "synthesize.py",
            f"--label_dir={tmp / 'nope'}",
            "--checkpoint_dir=x",
            f"--output_dir={out}",
        ],
        f"--label_dir={tmp / 'nope'}",
        [out],
    )


def case_synthesize_folder_without_pngs(tmp, model):
    (tmp / "labels").mkdir()
    (tmp / "labels" / "notes.txt").write_text("no label maps here")
    out = tmp / "synth"
    return (
        [
            "synthesize.py",
            f"--label_dir={tmp / 'labels'}",
            "--checkpoint_dir=x",
            f"--output_dir={out}",
        ],
        "no .png label maps",
        [out],
    )


def case_synthesize_existing_outputs(tmp, model):
    _label(tmp / "labels" / "a.png")
    _image(tmp / "synth" / "a.png")  # the user's own file, no run of ours recorded it
    return (
        [
            "synthesize.py",
            f"--label_dir={tmp / 'labels'}",
            "--checkpoint_dir=x",
            f"--output_dir={tmp / 'synth'}",
        ],
        "already exists; pass --overwrite",
        [],
    )


def case_synthesize_resume_with_other_settings(tmp, model):
    # Item 8: a folder of a killed run resumes only with its own settings.
    _label(tmp / "labels" / "a.png")
    progress = core_io.OutputProgress.load(tmp / "synth", {"seed": 99}, overwrite=False)
    progress.start()
    return (
        [
            "synthesize.py",
            f"--label_dir={tmp / 'labels'}",
            "--checkpoint_dir=x",
            f"--output_dir={tmp / 'synth'}",
        ],
        "holds the outputs of a run with other settings",
        [],
    )


def case_segment_missing_input(tmp, model):
    out = tmp / "seg"
    return (
        [
            "segment.py",
            f"--input={tmp / 'nope.png'}",
            "--saved_model=x",
            f"--output_dir={out}",
        ],
        f"--input={tmp / 'nope.png'}",
        [out],
    )


def case_segment_ground_truth_of_another_size(tmp, model):
    image = _image(tmp / "in" / "a.png", (32, 40))
    _label(tmp / "gt" / "a.png")
    out = tmp / "seg"
    return (
        [
            "segment.py",
            f"--input={image}",
            f"--gt_dir={tmp / 'gt'}",
            "--saved_model=x",
            f"--output_dir={out}",
        ],
        str(tmp / "gt" / "a.png"),
        [out],
    )


def case_segment_ground_truth_missing(tmp, model):
    image = _image(tmp / "in" / "a.png")
    (tmp / "gt").mkdir()
    out = tmp / "seg"
    return (
        [
            "segment.py",
            f"--input={image}",
            f"--gt_dir={tmp / 'gt'}",
            "--saved_model=x",
            f"--output_dir={out}",
        ],
        f"--gt_dir={tmp / 'gt'}",
        [out],
    )


def case_evaluate_missing_synth_dir(tmp, model):
    _image(tmp / "real" / "a.png")
    out = tmp / "r.json"
    return (
        [
            "evaluate.py",
            f"--synth_dir={tmp / 'nope'}",
            f"--real_dir={tmp / 'real'}",
            "--inception_weights=random",
            f"--output={out}",
        ],
        str(tmp / "nope"),
        [out],
    )


def case_tools_crops_corrupt_page(tmp, model):
    _image(tmp / "pages" / "good.png", (64, 64))
    (tmp / "pages" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    out = tmp / "crops"
    return (
        [
            "-m",
            "tools.crops",
            f"--input_dir={tmp / 'pages'}",
            f"--output_dir={out}",
            "--num_crops=2",
            "--crop_size=32",
            "--min_side=32",
        ],
        "broken.png",
        [out],
    )


def case_tools_crops_missing_input_dir(tmp, model):
    out = tmp / "crops"
    return (
        [
            "-m",
            "tools.crops",
            f"--input_dir={tmp / 'nope'}",
            f"--output_dir={out}",
            "--num_crops=2",
        ],
        str(tmp / "nope"),
        [out],
    )


def case_tools_label_clusters_missing_run(tmp, model):
    return (
        [
            "-m",
            "tools.label_clusters",
            f"--clusters_dir={tmp / 'nope'}",
            "--k=3",
        ],
        str(tmp / "nope"),
        [],
    )


def case_tools_export_not_a_run(tmp, model):
    (tmp / "norun").mkdir()
    return (
        [
            "-m",
            "tools.export_spade",
            f"--checkpoint_dir={tmp / 'norun'}",
            f"--output={tmp / 'export'}",
        ],
        str(tmp / "norun"),
        [tmp / "export"],
    )


# --- slow: with the trained model ---


def case_test_one_label_ids_out_of_range_checkpoint(tmp, model):
    # Item 1: class 250 of a 151-class model.
    label = _label(tmp / "l.png", bad=[250, 151])
    out = tmp / "one"
    return (
        [
            "test_one.py",
            f"--label_filename={label}",
            f"--checkpoint_dir={model['run']}",
            f"--results_dir={out}",
        ],
        f"{label} holds class ids 151, 250",
        [out],
    )


def case_test_one_label_ids_out_of_range_saved_model(tmp, model):
    label = _label(tmp / "l.png", bad=[250])
    out = tmp / "one"
    return (
        [
            "test_one.py",
            f"--label_filename={label}",
            f"--saved_model={model['export']}",
            f"--results_dir={out}",
        ],
        f"{label} holds class ids 250",
        [out],
    )


def case_synthesize_label_ids_out_of_range(tmp, model):
    _label(tmp / "labels" / "a.png")
    bad = _label(tmp / "labels" / "b.png", bad=[200])
    out = tmp / "synth"
    return (
        [
            "synthesize.py",
            f"--label_dir={tmp / 'labels'}",
            f"--saved_model={model['export']}",
            f"--output_dir={out}",
        ],
        f"{bad} holds class ids 200",
        [out],
    )


def case_test_one_corrupt_label_map(tmp, model):
    (tmp / "l.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp / "one"
    return (
        [
            "test_one.py",
            f"--label_filename={tmp / 'l.png'}",
            f"--checkpoint_dir={model['run']}",
            f"--results_dir={out}",
        ],
        str(tmp / "l.png"),
        [out],
    )


def case_test_one_style_without_vae(tmp, model):
    label = _label(tmp / "l.png")
    style = _image(tmp / "style.png")
    out = tmp / "one"
    return (
        [
            "test_one.py",
            f"--label_filename={label}",
            f"--style_filename={style}",
            f"--checkpoint_dir={model['run']}",
            f"--results_dir={out}",
        ],
        "--style_filename",
        [out],
    )


def case_test_one_existing_output(tmp, model):
    label = _label(tmp / "l.png")
    _image(tmp / "one" / "l.png")
    return (
        [
            "test_one.py",
            f"--label_filename={label}",
            f"--checkpoint_dir={model['run']}",
            f"--results_dir={tmp / 'one'}",
        ],
        "already exists; pass --overwrite",
        [],
    )


def case_test_one_no_readable_checkpoint(tmp, model):
    # Item 2: every checkpoint damaged -> one line naming the folder.
    run = _copy_run(model, tmp)
    for index in (run / "checkpoints").glob("ckpt-*.index"):
        index.write_bytes(b"not an sstable")
    (run / "checkpoints" / "ckpt-999.index").write_bytes(b"garbage")
    label = _label(tmp / "l.png")
    out = tmp / "one"
    return (
        [
            "test_one.py",
            f"--label_filename={label}",
            f"--checkpoint_dir={run}",
            f"--results_dir={out}",
        ],
        f"no readable checkpoint in {run / 'checkpoints'}",
        [out],
    )


def case_train_disk_full_during_checkpoint(tmp, model):
    # Item 3: exit 2, the path named, the earlier checkpoints intact, no ckpt-N_temp/ left.
    run = _copy_run(model, tmp)
    script = _script(tmp, "full_disk.py", _KILLING_SAVE)
    args = tiny_train_args(model["data"], str(run), "--max_steps=3", "--save_model_freq=1")
    return (
        [script, *args],
        f"{run / 'checkpoints' / 'ckpt-3'}",
        [
            run / "checkpoints" / "ckpt-3_temp",
            run / "checkpoints" / "ckpt-3.index",
        ],
    )


def case_train_label_ids_out_of_range_first_start(tmp, model):
    # Item 6: the failed first start removes the run directory it created.
    for i in range(4):
        _image(tmp / "images" / f"p{i}.png", (40, 40))
        _label(tmp / "labels" / f"p{i}.png", values=(2, 3), size=40, bad=[250])
    run = tmp / "run"
    args = tiny_train_args(
        "unused",
        str(run),
        "--max_steps=2",
        "--dataset=folders",
        f"--image_dir={tmp / 'images'}",
        f"--label_dir={tmp / 'labels'}",
        "--semantic_label_path=ade20k",  # 250 is outside it (none: the values are discovered)
    )
    return (["train.py", *args], "250", [run])


def case_train_resume_with_another_config(tmp, model):
    run = _copy_run(model, tmp)
    args = tiny_train_args(model["data"], str(run), "--max_steps=3")
    return ["train.py", *args, "--ngf=8"], "--ngf: 4 in the run, 8 now", []


FAST = [
    case_train_unknown_flag,
    case_train_malformed_int,
    case_train_bad_enum,
    case_train_bad_preset,
    case_train_positional,
    case_train_flag_of_another_family,
    case_test_one_unknown_flag,
    case_test_one_no_label,
    case_test_one_bad_num_samples,
    case_synthesize_unknown_flag,
    case_synthesize_mode_of_another_model,
    case_synthesize_dataset_without_k,
    case_segment_unknown_flag,
    case_segment_overlap_out_of_range,
    case_segment_bad_tile_size,
    case_evaluate_unknown_flag,
    case_evaluate_bad_train_flags,
    case_tools_crops_bad_downscale,
    case_tools_scenes_malformed,
    case_tools_export_missing_flag,
    case_train_missing_data_root,
    case_train_empty_image_dir,
    case_train_mismatched_pairs,
    case_test_one_both_sources,
    case_test_one_not_a_saved_model,
    case_test_one_not_a_run_dir,
    case_synthesize_missing_label_dir,
    case_synthesize_folder_without_pngs,
    case_synthesize_existing_outputs,
    case_synthesize_resume_with_other_settings,
    case_segment_missing_input,
    case_segment_ground_truth_of_another_size,
    case_segment_ground_truth_missing,
    case_evaluate_missing_synth_dir,
    case_tools_crops_corrupt_page,
    case_tools_crops_missing_input_dir,
    case_tools_label_clusters_missing_run,
    case_tools_export_not_a_run,
]
SLOW = [
    case_test_one_label_ids_out_of_range_checkpoint,
    case_test_one_label_ids_out_of_range_saved_model,
    case_synthesize_label_ids_out_of_range,
    case_test_one_corrupt_label_map,
    case_test_one_style_without_vae,
    case_test_one_existing_output,
    case_test_one_no_readable_checkpoint,
    case_train_disk_full_during_checkpoint,
    case_train_label_ids_out_of_range_first_start,
    case_train_resume_with_another_config,
]


# The fast tier keeps one case per kind of failure (a bad flag, a missing input, bad data, an
# existing output); each case is a process that imports TensorFlow (~5 s), so the rest of the
# matrix runs in the full tier.
FAST_TIER = {
    "train_unknown_flag",
    "train_flag_of_another_family",
    "train_mismatched_pairs",
    "segment_overlap_out_of_range",
    "synthesize_existing_outputs",
}


def _params(cases, slow):
    return [
        pytest.param(
            c,
            id=c.__name__[5:],
            marks=() if not slow and c.__name__[5:] in FAST_TIER else pytest.mark.slow,
        )
        for c in cases
    ]


@pytest.mark.parametrize("case", _params(FAST, slow=False) + _params(SLOW, slow=True))
def test_bad_input(case, tmp_path, request):
    trained = request.getfixturevalue("model") if case in SLOW else None
    work = tmp_path / "work"
    work.mkdir()
    argv, named, absent = case(work, trained)
    roots = [tmp_path] + ([trained["root"], trained["data"]] if trained else [])
    before = _checksums(*roots)
    proc = _run(argv)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert named in proc.stderr, proc.stderr[-3000:]
    error_lines = [line for line in proc.stderr.splitlines() if ": error: " in line]
    assert len(error_lines) == 1, proc.stderr[-3000:]
    after = _checksums(*roots)
    assert {p: after.get(p) for p in before} == before, "files that existed were changed"
    for path in absent:
        assert not os.path.lexists(path), f"{path} was created"


# ==============================================================================================
# Recovery: what used to fail now ends in exit 0 (items 4, 5, 8)
# ==============================================================================================

_KILLED_SYNTHESIS = """
import os, runpy, signal, sys
from core import io as core_io
save, written = core_io.save_image_atomic, []
def killed_after_two(image, path, **kwargs):
    if len(written) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    written.append(path)
    return save(image, path, **kwargs)
core_io.save_image_atomic = killed_after_two
sys.argv = ["synthesize.py", *sys.argv[1:]]
runpy.run_path("synthesize.py", run_name="__main__")
"""


@pytest.mark.slow
def test_recovery_moved_run_with_stale_temp_resumes(model, tmp_path):
    # Items 4 and 5: moved, given by a relative path, a temp folder of a killed save.
    run = _copy_run(model, tmp_path)
    moved = tmp_path / "elsewhere" / "moved"
    os.makedirs(moved.parent)
    shutil.move(str(run), str(moved))
    os.makedirs(moved / "checkpoints" / "ckpt-3_temp")
    before = _checksums(moved / "checkpoints")
    args = tiny_train_args(model["data"], "moved", "--max_steps=3", "--save_model_freq=100")
    proc = _run([os.path.join(ROOT, "train.py"), *args], cwd=moved.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Resumed" in proc.stdout and "at step 2" in proc.stdout, proc.stdout
    assert "ckpt-3_temp" in proc.stdout and not (moved / "checkpoints" / "ckpt-3_temp").exists()
    after = _checksums(moved / "checkpoints")
    assert all(after[p] == h for p, h in before.items() if "ckpt-2." in p)
    assert os.path.exists(moved / "checkpoints" / "ckpt-3.index")


@pytest.mark.slow
def test_recovery_killed_synthesis_resumes(model, tmp_path):
    # Item 8: SIGKILL after two images; the rerun (no --overwrite) completes the folder.
    for i in range(5):
        _label(tmp_path / "labels" / f"m{i}.png", bad=[i + 1])
    common = [
        f"--label_dir={tmp_path / 'labels'}",
        f"--saved_model={model['export']}",
        "--batch_size=2",
    ]
    proc = _run(["synthesize.py", *common, f"--output_dir={tmp_path / 'straight'}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    script = _script(tmp_path, "killed.py", _KILLED_SYNTHESIS)
    out = tmp_path / "out"
    proc = _run([script, *common, f"--output_dir={out}"])
    assert proc.returncode == -9, proc.stderr[-3000:]
    names = sorted(n for n in os.listdir(out) if not n.startswith("."))
    assert names == ["m0.png", "m1.png"]  # whole files only
    proc = _run(["synthesize.py", *common, f"--output_dir={out}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Resuming: 2 of 5" in proc.stdout
    for i in range(5):
        assert (out / f"m{i}.png").read_bytes() == (
            tmp_path / "straight" / f"m{i}.png"
        ).read_bytes()
    progress = [json.loads(line) for line in (out / core_io.PROGRESS_FILE).read_text().splitlines()]
    assert progress[-1] == {"finished": True}
