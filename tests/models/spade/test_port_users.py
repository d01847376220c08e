"""Users of the SPADE TF port (MarAl15/SemanticImageSynthesis), each of their commands run their
way: train.py with --image_dir / --label_dir, the port's semantic_labels.txt or no label set
(the values found in the masks), --log_dir, --prob_dataset, the separate sample PNGs, and
test_one.py with the port's flags and file names, at 1:2 (docs/coming_from.md)."""

import os
import subprocess
import sys

import numpy as np
import pytest
from absl import flags as absl_flags
from conftest import ROOT
from PIL import Image

import flags as cli
from core.config import ConfigError
from datasets.config import DISCOVER, DataConfig
from datasets.label_values import discover_label_values
from datasets.sources import resolve_pairs, subset_pairs
from models.spade import inference
from models.spade import labels as spade_labels
from semantic_labels import LabelSetError, load_label_set
from semantic_labels import label_values as values_lib

HEIGHT, WIDTH = 32, 64  # Cityscapes' 1:2


def _masks(root, count=4, values=(0, 255)):
    """The port's layout: images/train/*.jpg and annotations/train/*.png (0 / 255 masks)."""
    images, labels = root / "images" / "train", root / "annotations" / "train"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    for i in range(count):
        mask = np.full((HEIGHT, WIDTH), values[0], np.uint8)
        mask[:, 16 + 8 * i :] = values[-1]  # the foreground moves right sample by sample
        image = np.stack([mask, 255 - mask, np.full_like(mask, 60)], axis=-1)
        Image.fromarray(image).save(images / f"p{i}.jpg")
        Image.fromarray(mask, mode="L").save(labels / f"p{i}.png")
    return root / "images", root / "annotations"


def _port_example(images, labels, *extra):
    """The port README's training example (its paths), with our tiny widths at 32 x 64."""
    return [
        "--use_vae",
        f"--image_dir={images}",
        f"--label_dir={labels}",
        *extra,
        "--decay_epoch=400",
        "--total_epochs=800",
        "--batch_size=2",
        "--print_info_freq=20",
        "--img_height=32",
        "--img_width=64",
        "--load_size=32",
        "--ngf=4",
        "--ndf=4",
        "--z_dim=8",
        "--spade_hidden=8",
        "--encoder_input_size=32",
        "--n_layers_D=2",
        "--num_discriminators=1",
    ]


def test_port_train_example_reads_its_folders_not_the_built_in_scenes(tmp_path):
    images, labels = _masks(tmp_path)
    txt = tmp_path / "semantic_labels.txt"
    config = cli.config_from_args(
        _port_example(
            images,
            labels,
            f"--semantic_label_path={txt}",
            f"--checkpoint_dir={tmp_path / 'ckpt'}",
            f"--results_dir={tmp_path / 'results' / 'train'}",
            f"--log_dir={tmp_path / 'logs'}",
        )
    )
    assert (config.dataset, config.image_dir, config.label_dir) == (
        "folders",
        str(images),
        str(labels),
    )
    assert config.semantic_label_path == str(txt) and config.use_vae
    assert config.tensorboard_dir == str(tmp_path / "logs")
    assert config.image_size == (HEIGHT, WIDTH)
    assert (config.decay_epoch, config.total_epochs, config.batch_size) == (400, 800, 2)
    # Without a label set, a folder dataset's values are found in its masks.
    plain = cli.config_from_args([f"--image_dir={images}", f"--label_dir={labels}"])
    assert (plain.dataset, plain.semantic_label_path) == ("folders", DISCOVER)
    # A label set chosen by the preset stays (Cityscapes-format folders).
    city = cli.config_from_args(
        ["--preset=cityscapes_128x256", f"--image_dir={images}", f"--label_dir={labels}"]
    )
    assert (city.dataset, city.semantic_label_path) == ("folders", "cityscapes")
    # The port's size flags at its defaults: resize to 286 x 286, crop 256 (and 1:2 likewise).
    sizes = cli.config_from_args(["--img_height=286", "--img_width=286", "--crop_size=256"])
    assert (sizes.load_size, sizes.load_width, sizes.image_size) == (286, 286, (256, 256))
    wide = cli.config_from_args(["--img_height=72", "--img_width=144", "--crop_size=64"])
    assert (wide.load_size, wide.load_width, wide.image_size) == (72, 144, (64, 128))
    # One of the two is not enough, and says what is missing.
    with pytest.raises(ConfigError, match="--image_dir is not read by --dataset=scenes.*folders"):
        cli.config_from_args([f"--image_dir={images}"])
    with pytest.raises(ConfigError, match="--dataset=folders needs --image_dir and --label_dir"):
        cli.config_from_args(["--dataset=folders", f"--label_dir={labels}"])


# Every data flag: (arguments under which it is read, arguments under which it is not). The
# assertion below keeps the table complete when a data field is added.
_STREETS = ["--dataset=streets", "--semantic_label_path=cityscapes"]
_READ = {
    "train_list": ["--model=segformer", "--dataset=json", "--train_list=t.json"],
    "val_list": ["--model=segformer", "--dataset=json", "--train_list=t.json", "--val_list=v"],
    "data_root": ["--dataset=ade20k", "--data_root=d"],
    "image_dir": ["--image_dir=i", "--label_dir=l"],
    "label_dir": ["--image_dir=i", "--label_dir=l"],
    "val_image_dir": ["--image_dir=i", "--label_dir=l", "--val_image_dir=vi"],
    "val_label_dir": ["--image_dir=i", "--label_dir=l", "--val_label_dir=vl"],
    "num_scenes": ["--num_scenes=3"],
    "scenes_size": ["--scenes_size=32"],
    "streets_height": [*_STREETS, "--streets_height=32"],
    "streets_width": [*_STREETS, "--streets_width=32"],
    "num_streets": [*_STREETS, "--num_streets=3"],
    "load_extra": ["--dataset=cityscapes", "--semantic_label_path=cityscapes", "--load_extra"],
    "num_pages": ["--model=stylegan2", "--num_pages=3"],
    "num_crops": ["--model=stylegan2", "--num_crops=30"],
    "prob_dataset": ["--prob_dataset=0.5"],
}  # fmt: skip
_NOT_READ_BY_ADE20K = ["--dataset=ade20k"]  # reads data_root and prob_dataset only
_UNREAD = {
    "data_root": ["--model=stylegan2", "--dataset=images", "--image_dir=i", "--data_root=d"],
    "prob_dataset": ["--model=stylegan2", "--dataset=images", "--image_dir=i", "--prob_dataset=.5"],
}


@pytest.mark.parametrize("name", sorted(_READ))
def test_every_data_flag_is_read_or_refused(name):
    assert set(_READ) == DataConfig.field_names() - {"dataset", "semantic_label_path"}
    config = cli.config_from_args(_READ[name])
    assert name in config.data_fields_read()
    flag = next(arg for arg in _READ[name] if arg.split("=")[0] == f"--{name}")
    assert getattr(config, name) != DataConfig.__dataclass_fields__[name].default, flag
    unread = _UNREAD.get(name) or [*_NOT_READ_BY_ADE20K, flag]
    if name in ("train_list", "val_list"):
        unread = ["--model=segformer", *unread]
    with pytest.raises(ConfigError, match=f"--{name} (is not read by|applies to) --dataset="):
        cli.config_from_args(unread)


def test_absl_log_dir_is_the_tensorboard_dir_of_train_py(tmp_path):
    # train.py's FLAGS hold absl's --log_dir (absl.logging defines it); the port's meaning wins.
    flag_values = absl_flags.FlagValues()
    absl_flags.DEFINE_string("log_dir", "", "absl's log-file directory", flag_values=flag_values)
    cli.define_train_flags(flag_values)
    assert "TensorBoard" in flag_values["log_dir"].help
    flag_values(["train.py", f"--log_dir={tmp_path / 'logs'}", "--max_steps=1"])
    config = cli.resolve_train_config(flag_values)
    assert config.tensorboard_dir == str(tmp_path / "logs")
    assert config.results_dir == os.path.join(config.checkpoint_dir, "samples")
    same = cli.config_from_args([f"--log_dir={tmp_path}", f"--tensorboard_dir={tmp_path}"])
    assert same.tensorboard_dir == str(tmp_path)
    with pytest.raises(ConfigError, match="--log_dir=a and --tensorboard_dir=b both name"):
        cli.config_from_args(["--log_dir=a", "--tensorboard_dir=b"])


def test_port_label_values_txt_reads_writes_and_maps(tmp_path):
    assert values_lib.parse_label_values("0, 3, 255", "f") == (0, 3, 255)
    assert values_lib.parse_label_values("[7]\n", "f") == (7,)
    assert values_lib.parse_label_values("(4, 1,\n 9)", "f") == (4, 1, 9)  # file order = ids
    for text, match in [
        ("", "holds no label values"),
        ("0, 256", "'256' is not a label value"),
        ("0, x", "'x' is not a label value"),
        ("1, 2, 1", r"repeats the values \[1\]"),
    ]:
        with pytest.raises(LabelSetError, match=match):
            values_lib.parse_label_values(text, "f")
    path = tmp_path / "semantic_labels.txt"
    values_lib.write_label_values(path, (0, 255))
    assert path.read_text() == "0, 255\n"  # the port's literal_eval reads it as (0, 255)
    labels = load_label_set(str(path))
    assert labels.names == ("value_0", "value_255") and labels.source_ids == (0, 255)
    assert labels.colors[0].tolist() == [0, 0, 0] and labels.colors[1].tolist() == [128, 0, 0]
    table = values_lib.value_table((0, 255))
    assert (table[0], table[255], table[1]) == (0, 1, -1)
    mask = np.array([[0, 255], [255, 0]], np.uint8)
    np.testing.assert_array_equal(values_lib.to_class_ids(mask, (0, 255), "m"), [[0, 1], [1, 0]])
    with pytest.raises(LabelSetError, match="m holds the values 7"):
        values_lib.to_class_ids(np.array([[0, 7]], np.uint8), (0, 255), "m")
    with pytest.raises(LabelSetError, match="does not exist"):
        load_label_set(str(tmp_path / "missing.txt"))


def test_masks_without_a_label_set_are_discovered_saved_and_kept(tmp_path):
    images, labels = _masks(tmp_path)
    run = tmp_path / "run"
    config = cli.config_from_args(
        [f"--image_dir={images}", f"--label_dir={labels}", f"--checkpoint_dir={run}"]
    )
    label_paths = [label for _, label in resolve_pairs("folders", "training", **_dirs(config))]
    assert discover_label_values(label_paths) == (0, 255)
    log = []
    label_set, table, num_classes = spade_labels.resolve_spade_labels(
        config, label_paths=label_paths, log=log.append
    )
    assert num_classes == 2 and (table[0], table[255]) == (0, 1) and table[128] == -1
    assert "0, 255 -> classes 0..1" in log[0]
    assert spade_labels.num_spade_classes(config) == 2  # a --dry_run scans them too
    # Kept in the run directory; from then on the copy decides (resume, test_one.py, export).
    spade_labels.save_run_label_values(config, label_set)
    assert (run / "semantic_labels.txt").read_text() == "0, 255\n"
    with pytest.raises(spade_labels.LabelValuesError, match="semantic_labels.txt does not exist"):
        spade_labels.spade_label_set(config, run_dir=str(tmp_path / "elsewhere"))
    assert spade_labels.spade_label_set(config).source_ids == (0, 255)
    # A .txt of the port that lists other values than the run's is refused on resume.
    other = tmp_path / "other.txt"
    other.write_text("0, 128, 255")
    moved = config.replace(semantic_label_path=str(other))
    with pytest.raises(spade_labels.LabelValuesError, match="lists the values 0, 128, 255"):
        spade_labels.spade_label_set(moved, label_paths=label_paths)
    # The port's behaviour: a .txt that does not exist yet is filled by scanning.
    fresh = config.replace(
        semantic_label_path=str(tmp_path / "new.txt"), checkpoint_dir=str(tmp_path / "r2")
    )
    spade_labels.spade_label_set(fresh, label_paths=label_paths, log=log.append)
    assert (tmp_path / "new.txt").read_text() == "0, 255\n"


def _dirs(config):
    return {"image_dir": config.image_dir, "label_dir": config.label_dir}


def test_prob_dataset_keeps_a_fixed_nested_fraction(tmp_path):
    pairs = [(f"i{k}", f"l{k}") for k in range(10)]
    half, fifth = subset_pairs(pairs, 0.5), subset_pairs(pairs, 0.2)
    assert len(half) == 5 and len(fifth) == 2 and set(fifth) <= set(half)
    assert half == subset_pairs(pairs, 0.5) and half == sorted(half)  # fixed, in file order
    assert subset_pairs(pairs, 0.01) == [pairs[int(np.random.default_rng(0).permutation(10)[0])]]
    assert subset_pairs(pairs, 1.0) == pairs
    images, labels = _masks(tmp_path)
    config = cli.config_from_args(
        [f"--image_dir={images}", f"--label_dir={labels}", "--prob_dataset=0.5"]
    )
    kwargs = {**_dirs(config), "prob_dataset": config.prob_dataset}
    assert len(resolve_pairs("folders", "training", **kwargs)) == 2
    with pytest.raises(ConfigError, match=r"--prob_dataset=1.5 must lie in \(0, 1\]"):
        cli.config_from_args(["--prob_dataset=1.5"])


def _fake_run(root, *args):
    """A run directory as train.py leaves it, without checkpoints (config and label values)."""
    config = cli.config_from_args([f"--checkpoint_dir={root}", *args])
    os.makedirs(root, exist_ok=True)
    config.save(os.path.join(root, "config.json"))
    return config


def test_test_one_checks_the_port_flags_against_the_run(tmp_path):
    images, labels = _masks(tmp_path)
    run = tmp_path / "run"
    config = _fake_run(
        run,
        f"--image_dir={images}",
        f"--label_dir={labels}",
        "--img_height=32",
        "--img_width=64",
        "--load_size=32",
    )
    values_lib.write_label_values(run / "semantic_labels.txt", (0, 255))
    ok = tmp_path / "labels.txt"
    values_lib.write_label_values(ok, (0, 255))
    check = inference.check_run_flags
    check(
        {"use_vae": False, "semantic_label_path": str(ok), "img_height": 32, "img_width": 64},
        checkpoint_dir=str(run),
    )
    check({"img_height": 32, "img_width": 64, "crop_size": 32}, checkpoint_dir=str(run))
    bad = tmp_path / "bad.txt"
    values_lib.write_label_values(bad, (0, 1))
    for given, match in [
        ({"use_vae": True}, "--use_vae=true contradicts the run: .* use_vae=false"),
        ({"semantic_label_path": str(bad)}, r"\(the values 0, 1\) contradicts .* 0, 255"),
        ({"semantic_label_path": "ade20k"}, "label set 'ade20k'.* contradicts .* 0, 255"),
        ({"img_width": 32}, "--img_width=32 contradicts the run: .* img_width=64"),
        ({"num_generator_filters": 64}, f"was trained with num_generator_filters={config.ngf}"),
        # The port's meaning with a smaller --crop_size: --img_height is the resize height.
        ({"img_height": 36, "crop_size": 32}, "--img_height=36 contradicts .* load_size=32"),
    ]:
        with pytest.raises(inference.SynthesisError, match=match):
            check(given, checkpoint_dir=str(run))
    # As the port's user runs it: the contradiction is one line, exit 2, before TensorFlow.
    proc = subprocess.run(
        [
            sys.executable,
            "test_one.py",
            "--use_vae",
            f"--label_filename={labels / 'train' / 'p0.png'}",
            f"--semantic_label_path={ok}",
            f"--checkpoint_dir={run}",
            f"--results_dir={tmp_path / 'out'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=ROOT),
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith("test_one.py: error: --use_vae=true contradicts the run")
    )
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


@pytest.mark.slow  # a tiny SPADE with its encoder trains one step at 32 x 64 (~30 s)
def test_port_user_trains_on_masks_then_synthesizes_at_1_to_2(tmp_path, capsys):
    from training import loop

    images, labels = _masks(tmp_path)
    txt = tmp_path / "semantic_labels.txt"  # does not exist yet: the port fills it
    run, logs, results = tmp_path / "ckpt", tmp_path / "logs", tmp_path / "results" / "train"
    config = cli.config_from_args(
        _port_example(
            images,
            labels,
            f"--semantic_label_path={txt}",
            f"--checkpoint_dir={run}",
            f"--results_dir={results}",
            f"--log_dir={logs}",
            "--prob_dataset=0.5",
            "--sample_files=both",
            "--max_steps=1",
            "--progress=false",
            "--export=false",
        )
    )
    messages = []
    summary = loop.train(config, log=messages.append)
    assert summary["step"] == 1 and summary["model"].num_classes == 2
    assert txt.read_text() == "0, 255\n" and (run / "semantic_labels.txt").exists()
    printed = capsys.readouterr().out
    assert "Label values found in 2 label maps: 0, 255 -> classes 0..1" in printed
    assert "2 training (--prob_dataset=0.5) / 0 validation pairs" in printed
    assert [n for n in os.listdir(logs) if n.startswith("events.out.tfevents")]
    assert not (run / "logs").exists()  # TensorBoard went where --log_dir says
    names = sorted(os.listdir(results))
    assert "step_00000001.png" in names
    for k in (0, 1):  # the port's separate PNGs beside the grid, one set per sample
        for kind in ("real_image", "segmentation_map", "synthesized_image"):
            image = np.asarray(Image.open(results / f"step_00000001_{k}_{kind}.png"))
            assert image.shape == (HEIGHT, WIDTH, 3), kind
    # test_one.py the port's way: its flags checked, its names, the inputs' copies.
    out = tmp_path / "results" / "test"
    label_file = labels / "train" / "p3.png"
    written = inference.synthesize_label_map(
        str(label_file),
        str(out),
        checkpoint_dir=str(run),
        style_filename=str(images / "train" / "p1.jpg"),
        port_names=True,
        run_flags={"use_vae": True, "semantic_label_path": str(txt), "img_height": 32},
    )
    assert sorted(os.path.basename(p) for p in written) == [
        "p1.jpg",
        "p3.png",
        "p3_synthesized.png",
    ]
    assert np.asarray(Image.open(out / "p3_synthesized.png")).shape == (HEIGHT, WIDTH, 3)
    copy = np.asarray(Image.open(out / "p3.png"))
    np.testing.assert_array_equal(copy, np.asarray(Image.open(label_file)))  # raw 0 / 255
    assert np.asarray(Image.open(out / "p1.jpg")).shape == (HEIGHT, WIDTH, 3)
    # synthesize.py's folder synthesis at 1:2 from the raw masks (mapped with the run's values).
    folder = inference.synthesize_label_folder(
        str(labels), str(tmp_path / "synth"), checkpoint_dir=str(run)
    )
    assert len(folder) == 4
    assert np.asarray(Image.open(folder[0])).shape == (HEIGHT, WIDTH, 3)
    odd = tmp_path / "odd.png"  # a value the run never saw: refused, naming the file
    Image.fromarray(np.full((HEIGHT, WIDTH), 7, np.uint8), mode="L").save(odd)
    with pytest.raises(LabelSetError, match=r"odd.png holds the values 7, which the label"):
        inference.read_label_map(str(odd), 2, (0, 255))
