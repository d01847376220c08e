"""evaluate.py --mode=one_shot: generated image / mask pairs of a one-shot synthesizer (OSMIS,
One-Shot GAN) against the ONE real pair they were learned from.

    SIFID            each generated image against the real image (evaluation/sifid.py; the
                     first max-pool, or every stage with sifid_all_layers): mean and std
    LPIPS diversity  mean LPIPS between pairs of generated images (all pairs, or lpips_pairs
                     random ones; evaluation/lpips.py): higher is more diverse
    distance to train
                     each generated image's LPIPS to the real (training) image: mean, and the
                     smallest (a near-copy shows as a value near 0)
    mIoU             a SegFormer (evaluation/synthetic_to_real.py's machinery, a short budget)
                     trained on the generated pairs, tested on the real pair; with real_dir
                     (more real pairs) also tested on those, and the reverse: one trained on the
                     real pairs, tested on the generated ones (do generated masks match their
                     images the way real masks do?)

Generated images must share one size; the real pair is resized to it (image bilinear, mask
nearest) when it differs, and the report says so. Masks hold the synthetic folder's label-set
ids, the real ones too (255 = ignore).

Outputs in output_dir (refused when it holds anything, unless overwrite): results.csv (metric,
value, std, count), results.md, results.json, per_image.csv (SIFID and distance to train per
generated image), sheet.png (the real pair, then generated pairs: image | colour mask) and,
with the mIoU part, lists/ (the JSON pair lists) and runs/ (the SegFormer run directories).

Example:
    run_one_shot("outputs/osmis_pairs", "data/one.jpg", "data/one.png", "outputs/one_shot",
                 inception_weights="random", lpips_backbone_weights="random")
"""

from __future__ import annotations

import math
import os
import shutil

import numpy as np

from core import io as core_io
from core.errors import UserError

RESULT_FILES = ("results.csv", "results.md", "results.json", "per_image.csv", "sheet.png")
LISTS_DIR = "lists"
RUNS_DIR = "runs"
# train.py flags the one-shot mIoU sets itself (data, run directories, budget: --seg_steps).
RESERVED_TRAIN_FLAGS = (
    "model",
    "checkpoint_dir",
    "tensorboard_dir",
    "results_dir",
    "dry_run",
    "dataset",
    "train_list",
    "val_list",
    "semantic_label_path",
    "max_steps",
    "train_mix",
    "synthetic_train_list",
)
SEGMENTATION_TITLES = {
    "synthetic_to_real": "trained on generated pairs, tested on the real pair",
    "synthetic_to_real_dir": "trained on generated pairs, tested on --real_dir pairs",
    "real_to_synthetic": "trained on the real pairs, tested on the generated pairs",
}


class OneShotError(UserError):
    """Inputs of --mode=one_shot that cannot work; the message names the flag or file."""


def check_train_args(train_args) -> list[str]:
    """The train.py flags of the one-shot segmenters; refuses the ones this mode sets."""
    train_args = list(train_args)
    for arg in train_args:
        name = arg.lstrip("-").split("=", 1)[0]
        if name.startswith("no") and name[2:] in RESERVED_TRAIN_FLAGS:
            name = name[2:]
        if name in RESERVED_TRAIN_FLAGS:
            hint = "; the budget is --seg_steps" if name == "max_steps" else ""
            raise _config_error(
                f"--train_flags must not set --{name} in --mode=one_shot: the mode trains "
                f"SegFormer on the generated and real pairs into <output_dir>/runs{hint}"
            )
    return train_args


def _config_error(message):
    from core.config import ConfigError

    return ConfigError(message)


def _check_args(real_image, real_mask, lpips_pairs, sheet_pairs, batch_size, seg_steps) -> None:
    for flag, value in (
        ("--lpips_pairs", lpips_pairs),
        ("--batch_size", batch_size),
        ("--sheet_pairs", sheet_pairs),
    ):
        if value < 1:
            raise OneShotError(f"{flag} must be >= 1, got {value}")
    if seg_steps < 0:
        raise OneShotError(f"--seg_steps must be >= 0 (0 skips the mIoU), got {seg_steps}")
    for flag, path in (("--real_image", real_image), ("--real_mask", real_mask)):
        if not path:
            raise OneShotError(f"{flag} is required in --mode=one_shot")
        if not os.path.isfile(path):
            from datasets.pairs import DatasetNotFoundError

            raise DatasetNotFoundError(f"{flag}={path} does not exist")


def _prepare_output_dir(output_dir: str, overwrite: bool) -> None:
    if core_io.check_overwrite_dir(output_dir, overwrite, flag="--output_dir", holds="results"):
        for name in (*RESULT_FILES, LISTS_DIR, RUNS_DIR):  # only what this mode writes
            path = os.path.join(output_dir, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
    os.makedirs(output_dir, exist_ok=True)


def _summary(values) -> dict:
    values = np.asarray(values, np.float64)
    return {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "count": int(values.size),
    }


def run_one_shot(
    synth_dir: str,
    real_image: str,
    real_mask: str,
    output_dir: str,
    *,
    real_dir=None,
    inception_weights: str = "imagenet",
    sifid_all_layers: bool = False,
    lpips_backbone_weights: str = "imagenet",
    lpips_linear_weights: str = "uniform",
    lpips_pairs: int = 200,
    segmenter_config=None,
    seg_steps: int = 0,
    batch_size: int = 8,
    sheet_pairs: int = 8,
    seed: int = 0,
    overwrite: bool = False,
    log=print,
) -> dict:
    """Scores the generated pairs of synth_dir against the real pair; writes the result files.

    Args:
        synth_dir: a synthetic pair folder (evaluation/pair_folders.py), at least 2 pairs.
        real_image, real_mask: the one real pair (the generator's training pair).
        output_dir: where the results go (module docstring).
        real_dir: more real pairs (a pair folder, or images/ + masks/): the mIoU is also
            tested on them, and the reverse segmenter trained on all real pairs.
        inception_weights: SIFID's InceptionV3: "imagenet", a local no-top .h5, or "random".
        sifid_all_layers: SIFID at pool1, pool2 and mixed7 instead of pool1 alone.
        lpips_backbone_weights, lpips_linear_weights: evaluation.lpips.LPIPS's weights.
        lpips_pairs: most generated pairs LPIPS diversity averages over.
        segmenter_config: a SegFormerConfig (evaluate.py: --train_flags + --seg_steps), or
            None to skip the mIoU part.
        seg_steps: the segmenters' training steps (recorded; the config holds them).
        batch_size: images per SIFID / LPIPS / segmenter evaluation batch.
        sheet_pairs: generated pairs shown in sheet.png.
        seed: seed of the LPIPS pair draw and of random weights.
        overwrite: replace the results of an earlier run in output_dir.
        log: where one-line messages go.

    Returns:
        The results dict (also results.json).
    """
    from datasets.pairs import DatasetError
    from evaluation.pair_folders import load_pairs, read_pair_folder

    _check_args(real_image, real_mask, lpips_pairs, sheet_pairs, batch_size, seg_steps)
    synth = read_pair_folder(synth_dir, "--synth_dir")
    if len(synth.pairs) < 2:
        raise DatasetError(
            f"--synth_dir={synth_dir} has {len(synth.pairs)} pair(s): LPIPS diversity needs at "
            "least 2 generated pairs"
        )
    if synth.label_set is None:
        raise OneShotError(
            f"--synth_dir={synth_dir} names no label set (label_set.json, or 'label_set' in "
            "train.json): the masks' classes are unknown"
        )
    label_set = synth.label_set
    extra = read_pair_folder(real_dir, "--real_dir") if real_dir else None
    images, masks = load_pairs(synth.pairs, label_set.num_classes)  # [N, H, W, 3], [N, H, W]
    size = images.shape[1:3]
    notes = []
    real_images, real_masks = load_pairs([(real_image, real_mask)], label_set.num_classes)
    if real_images.shape[1:3] != size:
        notes.append(
            f"the real pair ({real_images.shape[2]}x{real_images.shape[1]}) is resized to the "
            f"generated size {size[1]}x{size[0]} for SIFID, LPIPS and the sheet"
        )
        real_images, real_masks = load_pairs(
            [(real_image, real_mask)], label_set.num_classes, size=size
        )
    _prepare_output_dir(output_dir, overwrite)

    # TensorFlow loads only now.
    from evaluation import lpips as lpips_lib
    from evaluation import sifid as sifid_lib

    stages = sifid_lib.ALL_STAGES if sifid_all_layers else (sifid_lib.DEFAULT_STAGE,)
    sifid = sifid_lib.SIFIDFeatures(inception_weights, stages=stages, seed=seed)
    sifid.check_size(*size, what=f"the generated images of --synth_dir={synth_dir}")
    log(f"[one_shot] SIFID ({', '.join(stages)}) of {len(images)} generated images")
    sifid_values = sifid.sifid(real_images[0], images)
    if not sifid.comparable:
        notes.append(sifid_lib.NOT_COMPARABLE)
    lpips = lpips_lib.LPIPS(
        lpips_backbone_weights, lpips_linear_weights, seed=seed, batch_size=batch_size
    )
    log(f"[one_shot] LPIPS diversity and distance to train ({lpips.comparability} weights)")
    diversity = lpips_lib.diversity(lpips, images, max_pairs=lpips_pairs, seed=seed)
    to_train = lpips_lib.distance_to_train(lpips, images, real_images)
    if lpips.note:
        notes.append(lpips.note)

    results = {
        "mode": "one_shot",
        "synth_dir": synth_dir,
        "real_image": real_image,
        "real_mask": real_mask,
        "real_dir": real_dir,
        "num_generated": len(images),
        "size": [int(size[0]), int(size[1])],
        "label_set": label_set.name,
        "sifid": {stage: _summary(values) for stage, values in sifid_values.items()},
        "lpips_diversity": _summary(diversity),
        "lpips_distance_to_train": _summary(to_train),
        "weights": {
            "inception": inception_weights,
            "lpips_backbone": lpips_backbone_weights,
            "lpips_linear": lpips_linear_weights,
            "lpips_comparability": lpips.comparability,
        },
        "segmentation": None,
        "notes": notes,
        "per_image": [
            {
                "image": os.path.relpath(path, synth_dir),
                **{f"sifid_{stage}": float(sifid_values[stage][i]) for stage in stages},
                "lpips_to_train": float(to_train[i]),
            }
            for i, (path, _) in enumerate(synth.pairs)
        ],
    }
    if segmenter_config is not None:
        results["segmentation"] = _segmentation(
            segmenter_config,
            synth,
            [(real_image, real_mask)],
            extra.pairs if extra else None,
            output_dir,
            batch_size=batch_size,
            seg_steps=seg_steps,
            log=log,
        )
    results["files"] = write_results(
        results, output_dir, images, masks, real_images, real_masks, label_set, sheet_pairs
    )
    return results


def _segmentation(
    config, synth, real_pairs, extra_pairs, output_dir, *, batch_size, seg_steps, log
) -> dict:
    """The mIoU part: SegFormers trained on one side, tested on the other (module docstring)."""
    from evaluation import synthetic_to_real as s2r
    from models.segformer.task import resolve_labels
    from training import loop

    lists = os.path.join(output_dir, LISTS_DIR)
    paths = {
        "generated": s2r.write_pair_list(synth.pairs, os.path.join(lists, "generated.json")),
        "real": s2r.write_pair_list(real_pairs, os.path.join(lists, "real.json")),
    }
    runs = [("synthetic_to_real", "generated", [("synthetic_to_real", real_pairs)])]
    if extra_pairs:
        paths["real_dir"] = s2r.write_pair_list(extra_pairs, os.path.join(lists, "real_dir.json"))
        paths["real_all"] = s2r.write_pair_list(
            real_pairs + extra_pairs, os.path.join(lists, "real_all.json")
        )
        runs[0][2].append(("synthetic_to_real_dir", extra_pairs))
        runs.append(("real_to_synthetic", "real_all", [("real_to_synthetic", synth.pairs)]))
    scores = {}
    for run_name, train_list, tests in runs:
        run_config = config.replace(
            dataset="json",
            train_list=os.path.abspath(paths[train_list]),
            val_list=None,
            semantic_label_path=synth.label_set_source,
            checkpoint_dir=os.path.join(output_dir, RUNS_DIR, run_name),
            tensorboard_dir=None,
            results_dir=None,
            train_mix="real",
            synthetic_train_list=None,
            eval_freq=0,
            export=False,
        )
        _, label_map, num_classes = resolve_labels(run_config)
        log(f"[one_shot] SegFormer {run_name}: {run_config.max_steps} steps on {train_list}")
        model = loop.train(run_config, log=log)["model"].segformer
        for key, pairs in tests:
            metrics = s2r.evaluate_segformer(
                model,
                pairs,
                num_classes=num_classes,
                label_map=label_map,
                size=run_config.crop_size,
                batch_size=batch_size,
            )
            scores[key] = {
                "miou": _finite_or_none(metrics["miou"]),
                "pixel_accuracy": _finite_or_none(metrics["pixel_accuracy"]),
                "test_pairs": len(pairs),
                "train_pairs": len(synth.pairs)
                if train_list == "generated"
                else len(real_pairs) + len(extra_pairs or []),
                "steps": seg_steps or run_config.max_steps,
            }
            log(f"[one_shot] {SEGMENTATION_TITLES[key]}: mIoU {_percent(scores[key]['miou'])}")
    return scores


def _finite_or_none(value):
    value = float(value)
    return value if math.isfinite(value) else None


def _percent(value) -> str:
    return "-" if value is None else f"{100.0 * value:.2f}"


def metric_rows(results) -> list[tuple[str, float | None, float | None, int | None]]:
    """(metric, value, std, count) rows of results.csv and results.md."""
    rows = []
    for stage, summary in results["sifid"].items():
        rows.append((f"sifid_{stage}", summary["mean"], summary["std"], summary["count"]))
    diversity, to_train = results["lpips_diversity"], results["lpips_distance_to_train"]
    rows.append(("lpips_diversity", diversity["mean"], diversity["std"], diversity["count"]))
    rows.append(("lpips_distance_to_train", to_train["mean"], to_train["std"], to_train["count"]))
    rows.append(("lpips_distance_to_train_min", to_train["min"], None, to_train["count"]))
    for key, score in (results["segmentation"] or {}).items():
        rows.append((f"miou_{key}", score["miou"], None, score["test_pairs"]))
        rows.append((f"pixel_accuracy_{key}", score["pixel_accuracy"], None, score["test_pairs"]))
    return rows


def format_markdown(results) -> str:
    """The results as markdown: one table of metrics, then the notes."""
    lines = [
        f"One-shot evaluation of {results['num_generated']} generated pairs "
        f"({results['synth_dir']}, {results['size'][1]}x{results['size'][0]}) against "
        f"{results['real_image']}.",
        "",
        "| metric | value | std | count |",
        "|---|---:|---:|---:|",
    ]
    for name, value, std, count in metric_rows(results):
        shown = "-" if value is None else f"{value:.4f}"
        lines.append(f"| {name} | {shown} | {'' if std is None else f'{std:.4f}'} | {count} |")
    if results["segmentation"]:
        lines += [
            "",
            "mIoU runs: "
            + "; ".join(f"{key}: {SEGMENTATION_TITLES[key]}" for key in results["segmentation"])
            + ".",
        ]
    lines += [""] + [f"NOTE: {note}" for note in results["notes"]]
    return "\n".join(lines).rstrip() + "\n"


def write_results(
    results, output_dir, images, masks, real_images, real_masks, label_set, sheet_pairs
) -> dict:
    """Writes the result files (module docstring); returns their paths."""
    from evaluation.result_files import write_csv, write_json, write_text

    paths = {name: os.path.join(output_dir, name) for name in RESULT_FILES}
    write_csv(paths["results.csv"], ["metric", "value", "std", "count"], metric_rows(results))
    per_image = results["per_image"]
    write_csv(paths["per_image.csv"], list(per_image[0]), [list(row.values()) for row in per_image])
    write_text(paths["results.md"], format_markdown(results))
    core_io.save_image_atomic(
        pair_sheet(
            real_images[0], real_masks[0], images[:sheet_pairs], masks[:sheet_pairs], label_set
        ),
        paths["sheet.png"],
    )
    write_json(paths["results.json"], dict(results, files=paths))
    return paths


def colour_mask(mask, label_set) -> np.ndarray:
    """[H, W] class ids -> [H, W, 3] label-set colours; 255 (ignore) and unknown ids black."""
    out = np.zeros((*mask.shape, 3), np.uint8)
    known = mask < label_set.num_classes
    out[known] = label_set.colors[mask[known]]
    return out


def pair_sheet(real_image, real_mask, images, masks, label_set, columns: int = 4) -> np.ndarray:
    """One PNG of pairs (image | colour mask): the real pair first, in a red frame, then the
    generated ones, `columns` pairs per row; uint8 [H', W', 3]."""
    gap, frame = 4, 2
    cells = []
    for index, (image, mask) in enumerate([(real_image, real_mask), *zip(images, masks)]):
        cell = np.concatenate(
            [image, np.full((image.shape[0], gap, 3), 255, np.uint8), colour_mask(mask, label_set)],
            axis=1,
        )  # [H, 2W + gap, 3]
        border = (255, 0, 0) if index == 0 else (255, 255, 255)
        cell = np.pad(cell, ((frame, frame), (frame, frame), (0, 0)))
        cell[:frame], cell[-frame:], cell[:, :frame], cell[:, -frame:] = (border,) * 4
        cells.append(cell)
    columns = min(columns, len(cells))
    rows = -(-len(cells) // columns)
    height, width = cells[0].shape[:2]
    sheet = np.full((rows * (height + gap), columns * (width + gap), 3), 255, np.uint8)
    for index, cell in enumerate(cells):
        top, left = (index // columns) * (height + gap), (index % columns) * (width + gap)
        sheet[top : top + height, left : left + width] = cell
    return sheet
