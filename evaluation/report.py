"""The evaluations evaluate.py runs, with their checks, terminal tables and result files.

    evaluate_synthesis()   FID / KID of synthesized images against real ones (evaluation/fid.py)
                           and, with the label maps they came from and a segmenter trained on
                           real data, semantic consistency (SPADE's protocol)
    report_synthetic_to_real()
                           the three SegFormer runs of evaluation/synthetic_to_real.py, printed
                           as a markdown table

Inputs are checked before TensorFlow loads, so a wrong folder fails in a second; every error
names the flag or file at fault.

Example:
    results = evaluate_synthesis("outputs/synth", "data/real", inception_weights="random")
"""

import math
import os

from core import io as core_io
from core.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
LABEL_SUFFIXES = ("", "_seg")  # <stem>.png, or <stem>_seg.png as in FaceSynthetics
SEGMENTER_META = "semsynth_segmenter.json"  # models.segformer.export.META_FILE (no TF import)
RUN_CONFIG = "config.json"


class EvaluationError(UserError):
    """Settings of an evaluation that cannot work; the message names the flag."""


def list_files(folder: str, flag: str, extensions) -> dict[str, str]:
    """{relative path without extension: path} of the files under `folder` (recursive)."""
    from datasets.pairs import DatasetError

    if not folder:
        raise EvaluationError(f"{flag} is required")
    found = core_io.find_files(folder, extensions, f"{flag}={folder}")
    if not found:
        raise DatasetError(f"{flag}={folder} holds no files ({', '.join(extensions)})")
    return found


def _image_size(path: str) -> tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels."""
    from PIL import Image

    from datasets.pairs import DatasetError

    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DatasetError(f"cannot read image {path}: {error}") from None


def _check_one_size(paths, flag: str, folder: str):
    """(width, height) shared by every image; mixed sizes raise naming one file per size."""
    from datasets.pairs import DatasetError

    by_size = {}
    for path in paths:
        by_size.setdefault(_image_size(path), path)
    if len(by_size) > 1:
        examples = ", ".join(f"{path} is {w}x{h}" for (w, h), path in list(by_size.items())[:4])
        raise DatasetError(
            f"{flag}={folder} holds images of {len(by_size)} sizes ({examples}, width x "
            "height); pass --image_size=N to resize every image to N x N first"
        )
    return next(iter(by_size))


def _check_fid_count(paths, flag: str, folder: str) -> None:
    from datasets.pairs import DatasetError
    from evaluation.fid import MIN_IMAGES

    if len(paths) < MIN_IMAGES:
        raise DatasetError(
            f"{flag}={folder} has {len(paths)} image(s): FID and KID need at least {MIN_IMAGES} "
            "per folder (a covariance), and published FIDs use 10,000 or more (a full-rank "
            "2048-d covariance needs more than 2048)"
        )


def pair_with_labels(synth: dict[str, str], synth_dir: str, label_dir: str):
    """(synthesized image, label map) pairs matched by stem; names the unmatched ones."""
    from datasets.pairs import DatasetError

    labels = list_files(label_dir, "--label_dir", (".png",))
    pairs, unmatched = [], []
    used = set()
    for stem, path in synth.items():
        keys = [stem + suffix for suffix in LABEL_SUFFIXES if stem + suffix in labels]
        if keys:
            pairs.append((path, labels[keys[0]]))
            used.add(keys[0])
        else:
            unmatched.append(stem)
    unused = sorted(set(labels) - used)
    if unmatched or len(synth) != len(labels):
        problems = [
            f"--synth_dir={synth_dir} has {len(synth)} images and --label_dir={label_dir} "
            f"{len(labels)} label maps; each synthesized image needs the label map it was "
            "synthesized from (<stem>.png or <stem>_seg.png)"
        ]
        if unmatched:
            problems.append(f"images without a label map: {core_io.list_some(unmatched)}")
        if unused:
            problems.append(f"label maps without an image: {core_io.list_some(unused)}")
        raise DatasetError("; ".join(problems))
    return pairs


def segmenter_kind(path: str) -> str:
    """ "saved_model" or "checkpoint_dir": what --segmenter points at, checked before TF loads."""
    if not os.path.exists(path):
        raise EvaluationError(f"--segmenter={path} does not exist")
    if os.path.isfile(os.path.join(path, SEGMENTER_META)):
        return "saved_model"
    if os.path.isfile(os.path.join(path, RUN_CONFIG)):
        return "checkpoint_dir"
    raise EvaluationError(
        f"--segmenter={path} is neither an exported SegFormer (no {SEGMENTER_META}) nor a "
        f"SegFormer run directory (no {RUN_CONFIG})"
    )


def _load_segmenter(path: str):
    from models.segformer.export import load_segmenter

    return load_segmenter(**{segmenter_kind(path): path})


def _class_names(segmenter) -> list[str]:
    from semantic_labels import LabelSetError, load_label_set

    try:
        label_set = load_label_set(segmenter.label_set_name)
        if label_set.num_classes == segmenter.num_classes:
            return list(label_set.names)
    except (LabelSetError, FileNotFoundError, TypeError):
        pass
    return [str(c) for c in range(segmenter.num_classes)]


def _check_synthesis_args(
    label_dir, segmenter, image_size, batch_size, kid_subsets, kid_subset_size
):
    for name, value in (("batch_size", batch_size), ("kid_subsets", kid_subsets)):
        if value < 1:
            raise EvaluationError(f"--{name} must be >= 1, got {value}")
    if kid_subset_size < 2:
        raise EvaluationError(f"--kid_subset_size must be >= 2, got {kid_subset_size}")
    if image_size < 0:
        raise EvaluationError(f"--image_size must be >= 0, got {image_size}")
    if bool(label_dir) != bool(segmenter):
        given, missing = (
            ("--label_dir", "--segmenter") if label_dir else ("--segmenter", "--label_dir")
        )
        raise EvaluationError(
            f"semantic consistency needs both --label_dir and --segmenter; "
            f"{given} was given without {missing}"
        )


def evaluate_synthesis(
    synth_dir: str,
    real_dir: str,
    *,
    label_dir=None,
    segmenter=None,
    inception_weights: str = "imagenet",
    image_size: int = 0,
    batch_size: int = 16,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
    output=None,
    overwrite: bool = False,
) -> dict:
    """FID, KID (and semantic consistency) of synth_dir; prints a table, writes `output`.

    Args:
        synth_dir: synthesized images (searched recursively).
        real_dir: real images to compare with (searched recursively).
        label_dir: the label maps the synth_dir images were synthesized from, matched by
            relative path and stem (<stem>.png or <stem>_seg.png); with segmenter.
        segmenter: an exported SegFormer SavedModel or a SegFormer run directory, trained on
            real data (semantic consistency).
        inception_weights: "imagenet" (Keras download), a local weights file, or "random"
            (smoke tests only; not comparable to published FIDs).
        image_size: resize every image to this square size first; 0 keeps each folder's own
            size (one size per folder).
        batch_size: images per Inception / segmenter batch.
        kid_subsets: random subsets KID is averaged over.
        kid_subset_size: images per KID subset (fewer if a set is smaller).
        seed: seed of the KID subsets (and of random Inception weights).
        output: write the results as JSON to this file (optional).
        overwrite: replace an existing `output`.

    Returns:
        The results dict (also written to `output`).
    """
    _check_synthesis_args(
        label_dir, segmenter, image_size, batch_size, kid_subsets, kid_subset_size
    )
    synth = list_files(synth_dir, "--synth_dir", IMAGE_EXTENSIONS)
    real = list_files(real_dir, "--real_dir", IMAGE_EXTENSIONS)
    synth_paths, real_paths = list(synth.values()), list(real.values())
    _check_fid_count(synth_paths, "--synth_dir", synth_dir)
    _check_fid_count(real_paths, "--real_dir", real_dir)
    sizes = {}
    if not image_size:
        sizes = {
            "synth": _check_one_size(synth_paths, "--synth_dir", synth_dir),
            "real": _check_one_size(real_paths, "--real_dir", real_dir),
        }
    pairs = None
    if label_dir:
        pairs = pair_with_labels(synth, synth_dir, label_dir)
        segmenter_kind(segmenter)
    core_io.check_overwrite(output, overwrite, flag="--output")

    # TensorFlow loads only now: flag and file errors above come without its start-up time.
    from evaluation import fid as fid_lib
    from evaluation import inception as inception_lib

    inception = inception_lib.InceptionFeatures(inception_weights, seed=seed, batch_size=batch_size)
    print(f"Inception features of {len(real_paths)} real images ({real_dir})")
    real_stats = inception.stats_from_files(
        real_paths, name=f"--real_dir={real_dir}", image_size=image_size or None, progress=True
    )
    print(f"Inception features of {len(synth_paths)} synthesized images ({synth_dir})")
    synth_stats = inception.stats_from_files(
        synth_paths, name=f"--synth_dir={synth_dir}", image_size=image_size or None, progress=True
    )
    fid = fid_lib.fid_from_stats(real_stats, synth_stats)
    kid_mean, kid_std = fid_lib.kid_from_features(
        real_stats.features,
        synth_stats.features,
        num_subsets=kid_subsets,
        subset_size=kid_subset_size,
        seed=seed,
        names=(f"--real_dir={real_dir}", f"--synth_dir={synth_dir}"),
    )
    notes = []
    if not inception.comparable:
        notes.append(inception_lib.NOT_COMPARABLE)
    full_rank = real_stats.covariance_full_rank and synth_stats.covariance_full_rank
    if not full_rank:
        notes.append(
            f"FID from {min(real_stats.count, synth_stats.count)} images per set, not more "
            f"than the {inception_lib.FEATURE_DIM} feature dimensions: the covariances are "
            "rank-deficient and FID is biased upwards; compare it only with FIDs from as many "
            "images (KID has no such bias)"
        )
    if sizes and sizes["synth"] != sizes["real"]:
        notes.append(
            f"synthesized images are {sizes['synth'][0]}x{sizes['synth'][1]}, real "
            f"ones {sizes['real'][0]}x{sizes['real'][1]}; both are resized to 299x299 "
            "for Inception (--image_size=N compares them at one size first)"
        )
    results = {
        "mode": "synthesis",
        "synth_dir": synth_dir,
        "real_dir": real_dir,
        "num_synth": synth_stats.count,
        "num_real": real_stats.count,
        "image_size": image_size or None,
        "fid": fid,
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        "kid_subsets": kid_subsets,
        "kid_subset_size": min(kid_subset_size, real_stats.count, synth_stats.count),
        "inception_weights": inception_weights,
        "comparable_to_published": inception.comparable,
        "covariance_full_rank": full_rank,
        "notes": notes,
        "semantic_consistency": None,
    }
    if pairs is not None:
        results["semantic_consistency"] = _semantic_consistency(
            segmenter, label_dir, pairs, batch_size
        )
    print(format_synthesis_table(results))
    if output:
        core_io.write_json_atomic(output, results, indent=1, newline=False)
        print(f"Wrote {output}")
    return results


def _semantic_consistency(segmenter_path, label_dir, pairs, batch_size) -> dict:
    from evaluation.segmentation_metrics import format_table
    from evaluation.semantic_consistency import semantic_consistency

    segmenter = _load_segmenter(segmenter_path)
    print(f"Segmenting {len(pairs)} synthesized images with {segmenter_path}")
    metrics = semantic_consistency(segmenter, pairs, batch_size=batch_size, progress=True)
    names = _class_names(segmenter)
    print(format_table(metrics, names))

    def number(value):
        return float(value) if math.isfinite(value) else None

    return {
        "segmenter": segmenter_path,
        "label_dir": label_dir,
        "num_images": metrics["num_images"],
        "miou": number(metrics["miou"]),
        "pixel_accuracy": number(metrics["pixel_accuracy"]),
        "mean_accuracy": number(metrics["mean_accuracy"]),
        "per_class_iou": {
            name: number(iou) for name, iou in zip(names, metrics["iou"]) if math.isfinite(iou)
        },
    }


def format_synthesis_table(results) -> str:
    """The terminal report of evaluate_synthesis."""

    def percent(value):
        return "-" if value is None else f"{100.0 * value:.2f}"

    rows = [
        ("synthesized images", f"{results['num_synth']}  ({results['synth_dir']})"),
        ("real images", f"{results['num_real']}  ({results['real_dir']})"),
        ("Inception weights", results["inception_weights"]),
        ("FID", f"{results['fid']:.3f}"),
        (
            "KID x 1e3",
            f"{1e3 * results['kid_mean']:.3f} +- {1e3 * results['kid_std']:.3f} "
            f"({results['kid_subsets']} subsets of {results['kid_subset_size']})",
        ),
    ]
    consistency = results["semantic_consistency"]
    if consistency:
        rows += [
            (
                "semantic consistency",
                f"{consistency['num_images']} images, segmenter {consistency['segmenter']}",
            ),
            ("  mIoU (%)", percent(consistency["miou"])),
            ("  pixel accuracy (%)", percent(consistency["pixel_accuracy"])),
        ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name.ljust(width)}  {value}" for name, value in rows]
    lines += [f"NOTE: {note}" for note in results["notes"]]
    return "\n".join(lines)


def report_synthetic_to_real(
    config, train_args, output_dir: str, *, synth_batch_size: int = 8, **kwargs
) -> dict:
    """Runs evaluation.synthetic_to_real.run_synthetic_to_real and prints its markdown table.

    Args:
        config, train_args, output_dir, synth_batch_size, **kwargs: those of
            run_synthetic_to_real (synth_batch_size is evaluate.py's --batch_size).

    Returns:
        Its results dict.
    """
    from evaluation import synthetic_to_real as s2r

    if synth_batch_size < 1:
        raise EvaluationError(f"--batch_size must be >= 1, got {synth_batch_size}")
    results = s2r.run_synthetic_to_real(
        config, train_args, output_dir, synth_batch_size=synth_batch_size, **kwargs
    )
    print(s2r.format_markdown(results))
    print("Wrote " + ", ".join(results["files"].values()))
    return results
