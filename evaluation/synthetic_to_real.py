"""Synthetic-to-real: does synthesized training data help a segmenter on real images?

Three SegFormers are trained on the same budget (the same train.py flags: preset, steps,
batch, seed, learning rate) and differ only in their training batches:

    real       the real dataset's training pairs
    synthetic  synthesized pairs only (images synthesized from label maps, with those maps)
    mixed      real + synthetic, 1:1 in every batch (half of each batch from each,
               datasets.segmentation.make_mixed_seg_train_dataset)

Each is then evaluated on the same held-out real split (the dataset's validation pairs,
resized to the training crop size as in training validation) with the project's confusion
matrix: mIoU, pixel accuracy, mean accuracy and per-class IoU. The synthesized pairs come
from an exported SPADE SavedModel applied to the real training label maps (written under
<output_dir>/synthetic_data/, with a JSON pair list), or from any synthesized dataset: a JSON
pair list or an image folder + label folder matched by stem. Their labels must hold the same
raw values as the real dataset's label files (one raw -> train-id table serves both).

Outputs in <output_dir> (never overwritten without overwrite=True): results.csv,
results.md (markdown table), results.png (bar plot), results.json, and the three run
directories runs/{real,synthetic,mixed}/ (config, checkpoints, export).

Example:
    run_synthetic_to_real(
        ["--preset=tiny", "--dataset=scenes", "--data_root=data", "--max_steps=300"],
        "outputs/s2r", spade_model="runs/spade_tiny/export")
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil

import numpy as np

SETTINGS = ("real", "synthetic", "mixed")
SETTING_TITLES = {
    "real": "real only",
    "synthetic": "synthetic only",
    "mixed": "real + synthetic (1:1 per batch)",
}
RESULT_FILES = ("results.csv", "results.md", "results.png", "results.json")
RUNS_DIR = "runs"
SYNTHETIC_DIR = "synthetic_data"
# train.py flags the experiment sets itself (one run directory per setting, SegFormer only).
_RESERVED_FLAGS = ("model", "checkpoint_dir", "tensorboard_dir", "results_dir", "dry_run")


def _finite_or_none(value):
    """A float, or None for NaN (a class absent from ground truth and prediction)."""
    value = float(value)
    return value if math.isfinite(value) else None


def _config_error(message):
    from core.config import ConfigError

    return ConfigError(message)


def check_train_args(train_args) -> list[str]:
    """The train.py flags shared by the three runs; refuses the ones the experiment owns."""
    train_args = list(train_args)
    for arg in train_args:
        name = arg.lstrip("-").split("=", 1)[0]
        if name.startswith("no"):
            name = name[2:] if name[2:] in _RESERVED_FLAGS else name
        if name in _RESERVED_FLAGS:
            raise _config_error(
                f"--train_flags must not set --{name}: the experiment trains --model=segformer "
                "into <output_dir>/runs/<setting>"
            )
    return train_args


def check_budget(config):
    """The experiment's runs must be fixed in steps: epochs would differ between them."""
    if not config.max_steps:
        raise _config_error(
            "--train_flags must fix the budget in steps (--max_steps, or a preset that sets "
            "it): epochs would give the three runs different step counts"
        )
    if config.batch_size % 2:
        raise _config_error(
            f"--batch_size={config.batch_size} must be even: the mixed run "
            "takes half of every batch from each dataset"
        )
    return config


def write_pair_list(pairs, path: str, **extra) -> str:
    """Writes (image, label) pairs as a JSON pair list (paths relative to its folder)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    spec = dict(extra)
    spec["pairs"] = [
        {
            "image": os.path.relpath(os.path.abspath(image), folder),
            "label": os.path.relpath(os.path.abspath(label), folder),
        }
        for image, label in pairs
    ]
    with open(path, "w", encoding="utf-8") as file:
        json.dump(spec, file, indent=1)
    return path


def synthesize_pairs(
    spade_model: str,
    label_paths,
    output_dir: str,
    *,
    batch_size: int = 8,
    seed: int = 0,
    progress: bool = True,
) -> str:
    """Synthesizes one image per label map with an exported SPADE; returns the pair list.

    Writes output_dir/images/NNNNNN_<stem>.png (the synthesized images), output_dir/labels/
    NNNNNN_<stem>.png (the label maps resized, nearest, to the generator's size: exactly what
    it saw) and output_dir/pairs.json. VAE generators draw z from a generator seeded by `seed`.

    Args:
        spade_model: a SavedModel written by models.spade.export (train.py's <run>/export).
        label_paths: label map files (raw values, as the generator was trained on).
        output_dir: where the pairs go (created).
        batch_size: label maps per generator call.
        seed: seed of z.
        progress: show a progress bar.
    """
    import keras
    from PIL import Image

    from datasets.pipeline import load_label_map
    from models.spade.export import Synthesizer, resize_label_map

    if not os.path.isdir(spade_model):
        raise FileNotFoundError(f"--spade_model={spade_model} does not exist")
    synthesizer = Synthesizer(saved_model=spade_model)
    size = synthesizer.image_size  # (height, width)
    image_dir = os.path.join(output_dir, "images")
    label_dir = os.path.join(output_dir, "labels")
    os.makedirs(image_dir, exist_ok=True)
    os.makedirs(label_dir, exist_ok=True)
    rng = np.random.default_rng(seed)
    bar = keras.utils.Progbar(len(label_paths), unit_name="image") if progress else None
    pairs = []
    for start in range(0, len(label_paths), batch_size):
        chunk = label_paths[start : start + batch_size]
        labels = np.stack(
            [resize_label_map(load_label_map(path), size) for path in chunk]
        )  # [b, H, W] uint8
        z = (
            rng.standard_normal((len(chunk), synthesizer.z_dim)).astype(np.float32)
            if synthesizer.use_vae
            else None
        )
        images = synthesizer(labels, z=z)  # [b, S, S, 3] uint8
        for offset, (path, label, image) in enumerate(zip(chunk, labels, images)):
            name = f"{start + offset:06d}_{os.path.splitext(os.path.basename(path))[0]}.png"
            pair = (os.path.join(image_dir, name), os.path.join(label_dir, name))
            Image.fromarray(image).save(pair[0])
            Image.fromarray(label).save(pair[1])
            pairs.append(pair)
        if bar is not None:
            bar.add(len(chunk))
    return write_pair_list(
        pairs, os.path.join(output_dir, "pairs.json"), generator=os.path.abspath(spade_model)
    )


def evaluate_segformer(
    model, pairs, *, num_classes: int, label_map, size, batch_size: int = 8
) -> dict:
    """metrics_from_confusion of a SegFormer on `pairs` resized to `size` (no augmentation)."""
    import tensorflow as tf

    from datasets.segmentation import make_seg_eval_dataset
    from evaluation.segmentation_metrics import ConfusionMatrix, metrics_from_confusion
    from models.segformer import networks as segformer

    confusion = ConfusionMatrix(num_classes)

    @tf.function(reduce_retracing=True)
    def predict(images, label_size):
        logits = segformer.upsample_logits(model(images, training=False), label_size)
        return tf.argmax(logits, axis=-1, output_type=tf.int32)  # [N, H, W]

    dataset = make_seg_eval_dataset(
        pairs, num_classes=num_classes, label_map=label_map, size=size, batch_size=batch_size
    )
    for batch in dataset:
        confusion.update(batch["label"], predict(batch["image"], tf.shape(batch["label"])[1:3]))
    return metrics_from_confusion(confusion.result())


def _prepare_output_dir(output_dir: str, overwrite: bool) -> None:
    from core import io as core_io

    if core_io.check_overwrite_dir(output_dir, overwrite, flag="--output_dir", holds="results"):
        # Only what this experiment writes is removed; stale runs would otherwise be resumed.
        for name in (*RESULT_FILES, RUNS_DIR, SYNTHETIC_DIR):
            path = os.path.join(output_dir, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
    os.makedirs(output_dir, exist_ok=True)


def check_synthetic_source(
    spade_model=None, synthetic_list=None, synthetic_image_dir=None, synthetic_label_dir=None
) -> None:
    """Exactly one source of synthetic pairs, and its files exist (before any work is done)."""
    from datasets.pairs import DatasetNotFoundError

    folder_given = bool(synthetic_image_dir or synthetic_label_dir)
    if sum([bool(spade_model), bool(synthetic_list), folder_given]) != 1:
        raise _config_error(
            "give exactly one source of synthetic data: --spade_model (synthesize from the real "
            "training label maps), --synthetic_list (a JSON pair list) or "
            "--synthetic_image_dir with --synthetic_label_dir"
        )
    if folder_given and not (synthetic_image_dir and synthetic_label_dir):
        raise _config_error("--synthetic_image_dir and --synthetic_label_dir go together")
    for flag, path, exists in (
        ("--spade_model", spade_model, os.path.isdir),
        ("--synthetic_list", synthetic_list, os.path.isfile),
        ("--synthetic_image_dir", synthetic_image_dir, os.path.isdir),
        ("--synthetic_label_dir", synthetic_label_dir, os.path.isdir),
    ):
        if path and not exists(path):
            raise DatasetNotFoundError(f"{flag}={path} does not exist")


def resolve_synthetic_pairs(
    output_dir: str,
    real_pairs,
    *,
    spade_model=None,
    synthetic_list=None,
    synthetic_image_dir=None,
    synthetic_label_dir=None,
    batch_size: int = 8,
    seed: int = 0,
    progress: bool = True,
) -> tuple[str, int]:
    """(JSON pair list, number of pairs) of the synthetic training set, from one source."""
    from datasets.pairs import folder_pairs, json_list_pairs

    check_synthetic_source(spade_model, synthetic_list, synthetic_image_dir, synthetic_label_dir)
    folder = os.path.join(output_dir, SYNTHETIC_DIR)
    if spade_model:
        path = synthesize_pairs(
            spade_model,
            [label for _, label in real_pairs],
            folder,
            batch_size=batch_size,
            seed=seed,
            progress=progress,
        )
        return path, len(real_pairs)
    if synthetic_list:
        return synthetic_list, len(json_list_pairs(synthetic_list, flag="--synthetic_list"))
    pairs = folder_pairs(
        synthetic_image_dir,
        synthetic_label_dir,
        image_flag="--synthetic_image_dir",
        label_flag="--synthetic_label_dir",
    )
    return write_pair_list(pairs, os.path.join(folder, "pairs.json")), len(pairs)


def run_synthetic_to_real(
    config,
    train_args,
    output_dir: str,
    *,
    spade_model=None,
    synthetic_list=None,
    synthetic_image_dir=None,
    synthetic_label_dir=None,
    overwrite: bool = False,
    synth_batch_size: int = 8,
    log=print,
) -> dict:
    """Trains and evaluates the three settings; writes the results files. See the module doc.

    Args:
        config: the SegFormer config shared by the three runs (a SegFormerConfig, e.g. from
            train.py flags: dataset, preset, max_steps, batch_size, seed, ...); each run gets
            its own checkpoint_dir under output_dir.
        train_args: the train.py flags that config came from, recorded in the results.
        output_dir: results folder (refused when it holds anything, unless overwrite).
        spade_model, synthetic_list, synthetic_image_dir + synthetic_label_dir: the one source
            of synthetic pairs.
        overwrite: replace the results and runs of an earlier experiment in output_dir.
        synth_batch_size: label maps per SPADE call.
        log: where one-line messages go.

    Returns:
        {"settings": {setting: {"miou", "pixel_accuracy", "mean_accuracy", "iou" [C],
        "num_train_pairs", "steps", "export"}}, "class_names", "num_val_pairs",
        "synthetic_list", "train_args", "files": {name: path}}.
    """
    from datasets.pairs import DatasetError
    from models.segformer.task import resolve_labels, resolve_pairs
    from training import loop

    train_args = check_train_args(train_args)
    runs_dir = os.path.join(output_dir, RUNS_DIR)
    # Config errors surface before anything is written or trained.
    config = check_budget(config.replace(checkpoint_dir=os.path.join(runs_dir, "real")))
    label_set, label_map, num_classes = resolve_labels(config)
    check_synthetic_source(spade_model, synthetic_list, synthetic_image_dir, synthetic_label_dir)
    _prepare_output_dir(output_dir, overwrite)
    real_pairs = resolve_pairs(config, "training")
    val_pairs = resolve_pairs(config, "validation")
    if not val_pairs:
        raise DatasetError(
            "the real dataset has no validation split to evaluate on; give one in "
            "--train_flags (--val_image_dir / --val_label_dir, or --val_list)"
        )
    synthetic_list, num_synthetic = resolve_synthetic_pairs(
        output_dir,
        real_pairs,
        spade_model=spade_model,
        synthetic_list=synthetic_list,
        synthetic_image_dir=synthetic_image_dir,
        synthetic_label_dir=synthetic_label_dir,
        batch_size=synth_batch_size,
        seed=config.seed,
        progress=config.progress,
    )
    num_pairs = {
        "real": len(real_pairs),
        "synthetic": num_synthetic,
        "mixed": len(real_pairs) + num_synthetic,
    }
    settings = {}
    for setting in SETTINGS:
        run_config = config.replace(
            checkpoint_dir=os.path.join(runs_dir, setting),
            tensorboard_dir=None,
            results_dir=None,
            train_mix=setting,
            synthetic_train_list=None if setting == "real" else os.path.abspath(synthetic_list),
        )
        log(
            f"[synthetic_to_real] training '{SETTING_TITLES[setting]}' for "
            f"{run_config.max_steps} steps, batch {run_config.batch_size}"
        )
        result = loop.train(run_config, log=log)
        metrics = evaluate_segformer(
            result["model"].segformer,
            val_pairs,
            num_classes=num_classes,
            label_map=label_map,
            size=run_config.crop_size,
            batch_size=run_config.batch_size,
        )
        settings[setting] = {
            "miou": _finite_or_none(metrics["miou"]),
            "pixel_accuracy": _finite_or_none(metrics["pixel_accuracy"]),
            "mean_accuracy": _finite_or_none(metrics["mean_accuracy"]),
            "iou": [_finite_or_none(v) for v in metrics["iou"]],
            "gt_pixels": [int(v) for v in metrics["gt_pixels"]],
            "num_train_pairs": num_pairs[setting],
            "steps": int(result["step"]),
            "export": result["export"],
        }
        log(
            f"[synthetic_to_real] {SETTING_TITLES[setting]}: mIoU "
            f"{_percent(metrics['miou'])}, pixel accuracy {_percent(metrics['pixel_accuracy'])}"
        )
    results = {
        "settings": settings,
        "class_names": list(label_set.names),
        "num_val_pairs": len(val_pairs),
        "synthetic_list": os.path.abspath(synthetic_list),
        "train_args": train_args,
        "preset": config.preset,
        "batch_size": config.batch_size,
        "max_steps": config.max_steps,
        "seed": config.seed,
    }
    results["files"] = write_results(results, output_dir)
    return results


def _percent(value) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{100.0 * value:.2f}"


def _csv_number(value) -> str:
    return "" if value is None else f"{value:.6f}"


def _present_classes(results) -> list[int]:
    """Classes with ground-truth pixels in the validation split (the ones IoU can judge)."""
    gt = np.sum([s["gt_pixels"] for s in results["settings"].values()], axis=0)
    return [int(c) for c in np.flatnonzero(gt)]


def format_markdown(results) -> str:
    """The results as markdown: settings table, then per-class IoU (%) of the present classes."""
    settings = results["settings"]
    lines = [
        f"Synthetic-to-real, SegFormer preset `{results['preset']}`, {results['max_steps']} "
        f"steps, batch {results['batch_size']}, seed {results['seed']}; evaluated on "
        f"{results['num_val_pairs']} held-out real images.",
        "",
        "| setting | training pairs | steps | mIoU (%) | pixel accuracy (%) | mean accuracy (%) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for setting, values in settings.items():
        lines.append(
            f"| {SETTING_TITLES[setting]} | {values['num_train_pairs']} | {values['steps']} | "
            f"{_percent(values['miou'])} | {_percent(values['pixel_accuracy'])} | "
            f"{_percent(values['mean_accuracy'])} |"
        )
    present = _present_classes(results)
    if present:
        names = results["class_names"]
        lines += [
            "",
            "Per-class IoU (%):",
            "",
            "| class | " + " | ".join(SETTING_TITLES[s] for s in settings) + " |",
            "|---|" + "---:|" * len(settings),
        ]
        for c in present:
            cells = " | ".join(_percent(settings[s]["iou"][c]) for s in settings)
            lines.append(f"| {names[c] if c < len(names) else c} | {cells} |")
    return "\n".join(lines) + "\n"


def write_results(results, output_dir: str) -> dict:
    """Writes results.csv, results.md, results.png and results.json; returns their paths."""
    paths = {name: os.path.join(output_dir, name) for name in RESULT_FILES}
    settings = results["settings"]
    present = _present_classes(results)
    names = results["class_names"]
    with open(paths["results.csv"], "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(
            [
                "setting",
                "num_train_pairs",
                "steps",
                "miou",
                "pixel_accuracy",
                "mean_accuracy",
                *(f"iou_{names[c]}" for c in present),
            ]
        )
        for setting, values in settings.items():
            writer.writerow(
                [
                    setting,
                    values["num_train_pairs"],
                    values["steps"],
                    *(
                        _csv_number(values[key])
                        for key in ("miou", "pixel_accuracy", "mean_accuracy")
                    ),
                    *(_csv_number(values["iou"][c]) for c in present),
                ]
            )
    with open(paths["results.md"], "w", encoding="utf-8") as file:
        file.write(format_markdown(results))
    plot_results(results, paths["results.png"])
    with open(paths["results.json"], "w", encoding="utf-8") as file:
        json.dump(results, file, indent=1)
    return paths


def plot_results(results, path: str) -> None:
    """Grouped bars of mIoU and pixel accuracy per setting (matplotlib, no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    settings = list(results["settings"])
    metrics = (("miou", "mIoU"), ("pixel_accuracy", "pixel accuracy"))
    figure = Figure(figsize=(6.5, 4.0))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    width = 0.8 / len(metrics)
    positions = np.arange(len(settings))
    for index, (key, title) in enumerate(metrics):
        values = [100.0 * (results["settings"][s][key] or 0.0) for s in settings]
        bars = axes.bar(
            positions + (index - (len(metrics) - 1) / 2) * width, values, width, label=title
        )
        axes.bar_label(bars, fmt="%.1f", fontsize=8)
    axes.set_xticks(positions, [SETTING_TITLES[s] for s in settings], fontsize=8)
    axes.set_ylabel("% on held-out real images")
    axes.set_ylim(0, 105)
    axes.set_title(f"Synthetic-to-real ({results['preset']}, {results['max_steps']} steps)")
    axes.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
