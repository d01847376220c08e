"""evaluate.py --mode=palette: generated pairs of a palette-conditioned synthesizer (Semantic
Palette) against real pairs, with the metrics of evaluation/palette_metrics.py.

    FID                 of the generated images against the real images (evaluation/fid.py,
                        InceptionV3 pool features; at least 2 images per set)
    GMM log-likelihood  mean log-likelihood of the generated palettes (the masks' class
                        proportions) under a Gaussian mixture fitted to the real palettes
                        (components chosen by AIC, or gmm_components), beside the real
                        palettes' own (the reference a perfect generator reaches)
    EMD, Frechet        between the real and the generated palette sets
    KL / JS / MAE       between each pair's target palette (targets.npy [N, C] in pair order,
                        or palettes.json {"targets": [[...], ...]}) and the proportions its mask
                        achieved: mean and std over the pairs; skipped, with a note, when the
                        folder holds no targets

Palettes count every class of the label set, 255 pixels excluded. Outputs in output_dir
(refused when it holds anything, unless overwrite): results.csv (metric, value, std, count),
results.md, results.json and per_sample.csv (target metrics per pair).

Example:
    run_palette("outputs/palette_pairs", "data/real_pairs", "outputs/palette_eval",
                inception_weights="random")
"""

from __future__ import annotations

import os

import numpy as np

from core import io as core_io
from core.errors import UserError
from evaluation import palette_metrics as pm

RESULT_FILES = ("results.csv", "results.md", "results.json", "per_sample.csv")


class PaletteEvaluationError(UserError):
    """Inputs of --mode=palette that cannot work; the message names the flag or file."""


def _mask_palettes(pairs, num_classes: int, flag: str) -> np.ndarray:
    """[N, C] class proportions of the pairs' masks; a bad mask is named."""
    from datasets.pairs import DatasetError
    from datasets.pipeline import load_label_map

    palettes = []
    for _, mask_path in pairs:
        try:
            palettes.append(pm.proportions(load_label_map(mask_path), num_classes))
        except ValueError as error:
            raise DatasetError(f"{flag}: mask {mask_path}: {error}") from None
    return np.stack(palettes)


def _summary(values) -> dict:
    values = np.asarray(values, np.float64)
    return {"mean": float(values.mean()), "std": float(values.std()), "count": int(values.size)}


def run_palette(
    synth_dir: str,
    real_dir: str,
    output_dir: str,
    *,
    inception_weights: str = "imagenet",
    image_size: int = 0,
    batch_size: int = 16,
    gmm_components: int = 0,
    seed: int = 0,
    overwrite: bool = False,
    log=print,
) -> dict:
    """Scores the generated pairs of synth_dir against the real pairs of real_dir.

    Args:
        synth_dir: a synthetic pair folder (evaluation/pair_folders.py) with its label set and,
            for KL / JS / MAE, targets.npy or palettes.json.
        real_dir: real pairs (a pair folder, or images/ + masks/ or labels/), masks in the same
            label set's ids.
        output_dir: where the results go (module docstring).
        inception_weights: FID's InceptionV3: "imagenet", a local no-top .h5, or "random".
        image_size: resize the images to this square size before Inception (0: as they are).
        batch_size: images per Inception batch.
        gmm_components: components of the Gaussian mixture; 0 picks 1..30 by AIC.
        seed: seed of the mixture fit and of random Inception weights.
        overwrite: replace the results of an earlier run in output_dir.
        log: where one-line messages go.

    Returns:
        The results dict (also results.json).
    """
    from datasets.pairs import DatasetError
    from evaluation.fid import MIN_IMAGES
    from evaluation.pair_folders import read_pair_folder

    for flag, value in (("--batch_size", batch_size),):
        if value < 1:
            raise PaletteEvaluationError(f"{flag} must be >= 1, got {value}")
    if gmm_components < 0 or image_size < 0:
        raise PaletteEvaluationError(
            "--gmm_components and --image_size must be >= 0 (0: chosen by AIC / as they are)"
        )
    synth = read_pair_folder(synth_dir, "--synth_dir", with_targets=True)
    real = read_pair_folder(real_dir, "--real_dir")
    if synth.label_set is None:
        raise PaletteEvaluationError(
            f"--synth_dir={synth_dir} names no label set (label_set.json, or 'label_set' in "
            "train.json): the palettes' classes are unknown"
        )
    num_classes = synth.label_set.num_classes
    for flag, folder, count in (
        ("--synth_dir", synth_dir, len(synth.pairs)),
        ("--real_dir", real_dir, len(real.pairs)),
    ):
        if count < MIN_IMAGES:
            raise DatasetError(
                f"{flag}={folder} has {count} pair(s): FID and the Frechet distance need at "
                f"least {MIN_IMAGES} per set"
            )
    if synth.targets is not None and synth.targets.shape[1] != num_classes:
        raise PaletteEvaluationError(
            f"--synth_dir={synth_dir}: the target palettes have {synth.targets.shape[1]} "
            f"classes, its label set {synth.label_set.name!r} {num_classes}"
        )
    if gmm_components > len(real.pairs):
        raise PaletteEvaluationError(
            f"--gmm_components={gmm_components} exceeds the {len(real.pairs)} real palettes"
        )
    if core_io.check_overwrite_dir(output_dir, overwrite, flag="--output_dir", holds="results"):
        for name in RESULT_FILES:
            if os.path.exists(os.path.join(output_dir, name)):
                os.remove(os.path.join(output_dir, name))
    os.makedirs(output_dir, exist_ok=True)

    generated = _mask_palettes(synth.pairs, num_classes, f"--synth_dir={synth_dir}")
    real_palettes = _mask_palettes(real.pairs, num_classes, f"--real_dir={real_dir}")
    notes = []
    if gmm_components:
        from sklearn.mixture import GaussianMixture

        gmm = GaussianMixture(
            gmm_components, covariance_type="full", reg_covar=1e-6, random_state=seed
        ).fit(real_palettes)
    else:
        gmm = pm.fit_gmm(real_palettes, seed=seed)
    emd = pm.emd(real_palettes, generated, seed=seed)
    if emd["method"] == "sliced":
        notes.append(
            f"EMD is the sliced Wasserstein-1 estimate ({len(real_palettes)} and "
            f"{len(generated)} palettes: their exact transport problem is too large here); "
            "compare it only with sliced values"
        )
    results = {
        "mode": "palette",
        "synth_dir": synth_dir,
        "real_dir": real_dir,
        "num_generated": len(generated),
        "num_real": len(real_palettes),
        "label_set": synth.label_set.name,
        "gmm_components": int(gmm.n_components),
        "gmm_log_likelihood_generated": pm.gmm_log_likelihood(gmm, generated),
        "gmm_log_likelihood_real": pm.gmm_log_likelihood(gmm, real_palettes),
        "emd": emd["value"],
        "emd_method": emd["method"],
        "palette_frechet_distance": pm.palette_frechet_distance(real_palettes, generated),
        "target_metrics": None,
        "inception_weights": inception_weights,
        "notes": notes,
        "per_sample": [],
    }
    if synth.targets is None:
        notes.append(
            f"--synth_dir={synth_dir} holds no targets.npy or palettes.json: KL / JS / MAE "
            "between target and achieved palettes are not computed"
        )
    else:
        per_sample = pm.target_metrics(synth.targets, generated)
        results["target_metrics"] = {name: _summary(v) for name, v in per_sample.items()}
        results["per_sample"] = [
            {
                "image": os.path.relpath(image, synth_dir),
                **{name: float(values[i]) for name, values in per_sample.items()},
            }
            for i, (image, _) in enumerate(synth.pairs)
        ]

    # TensorFlow loads only now.
    from evaluation import fid as fid_lib
    from evaluation import inception as inception_lib

    inception = inception_lib.InceptionFeatures(inception_weights, seed=seed, batch_size=batch_size)
    log(f"[palette] Inception features of {len(real.pairs)} real and {len(synth.pairs)} generated")
    stats = [
        inception.stats_from_files(
            [image for image, _ in folder.pairs],
            name=f"{flag}={folder.folder}",
            image_size=image_size or None,
            keep_features=False,
        )
        for flag, folder in (("--real_dir", real), ("--synth_dir", synth))
    ]
    results["fid"] = fid_lib.fid_from_stats(*stats)
    if not inception.comparable:
        notes.append(inception_lib.NOT_COMPARABLE)
    if not (stats[0].covariance_full_rank and stats[1].covariance_full_rank):
        notes.append(
            f"FID from {min(s.count for s in stats)} images per set, not more than the "
            f"{inception_lib.FEATURE_DIM} feature dimensions: biased upwards; compare it only "
            "with FIDs from as many images"
        )
    results["files"] = write_results(results, output_dir)
    return results


def metric_rows(results) -> list[tuple]:
    """(metric, value, std, count) rows of results.csv and results.md."""
    generated, real = results["num_generated"], results["num_real"]
    rows = [
        ("fid", results["fid"], None, generated),
        ("gmm_log_likelihood_generated", results["gmm_log_likelihood_generated"], None, generated),
        ("gmm_log_likelihood_real", results["gmm_log_likelihood_real"], None, real),
        (f"emd_{results['emd_method']}", results["emd"], None, generated),
        ("palette_frechet_distance", results["palette_frechet_distance"], None, generated),
    ]
    for name, summary in (results["target_metrics"] or {}).items():
        rows.append((f"target_{name}", summary["mean"], summary["std"], summary["count"]))
    return rows


def format_markdown(results) -> str:
    """The results as markdown: one table of metrics, then the notes."""
    lines = [
        f"Palette evaluation: {results['num_generated']} generated pairs ({results['synth_dir']}) "
        f"against {results['num_real']} real pairs ({results['real_dir']}); label set "
        f"`{results['label_set']}`, GMM of {results['gmm_components']} component(s) fitted to "
        "the real palettes.",
        "",
        "| metric | value | std | count |",
        "|---|---:|---:|---:|",
    ]
    for name, value, std, count in metric_rows(results):
        lines.append(f"| {name} | {value:.4f} | {'' if std is None else f'{std:.4f}'} | {count} |")
    lines += [""] + [f"NOTE: {note}" for note in results["notes"]]
    return "\n".join(lines).rstrip() + "\n"


def write_results(results, output_dir: str) -> dict:
    """Writes results.csv, results.md, results.json and per_sample.csv; returns their paths."""
    from evaluation.result_files import write_csv, write_json, write_text

    paths = {name: os.path.join(output_dir, name) for name in RESULT_FILES}
    write_csv(paths["results.csv"], ["metric", "value", "std", "count"], metric_rows(results))
    header = ["image", "kl", "js", "mae"]
    write_csv(
        paths["per_sample.csv"],
        header,
        [[row[key] for key in header] for row in results["per_sample"]],
    )
    write_text(paths["results.md"], format_markdown(results))
    write_json(paths["results.json"], dict(results, files=paths))
    return paths
