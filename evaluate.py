"""Evaluate synthesized images, or synthesized training data.

    python evaluate.py --mode=synthesis --synth_dir=SYNTH --real_dir=REAL \
        [--label_dir=LABELS --segmenter=SEGFORMER_EXPORT] [--output=results.json]

FID and KID (InceptionV3 pool features, evaluation/fid.py) of the --synth_dir images against
the --real_dir images; with --label_dir (the label maps the images were synthesized from) and
--segmenter (a SegFormer trained on real data), also the semantic consistency: mIoU and pixel
accuracy of the segmenter's predictions on the synthesized images against those label maps
(SPADE's protocol). Folders are searched recursively; every image of a folder must have one
size unless --image_size resizes them all. --inception_weights=imagenet needs Keras' download
(or a local weights file); --inception_weights=random runs offline but its numbers are NOT
comparable to published FIDs (the report says so).

    python evaluate.py --mode=synthetic_to_real --train_flags="--dataset=scenes --preset=tiny \
        --max_steps=300" --spade_model=runs/spade_tiny/export --output_dir=outputs/s2r

trains SegFormer three ways on one budget (real only, synthetic only, real + synthetic 1:1
per batch), evaluates each on the real validation split and writes results.csv, results.md
and results.png (evaluation/synthetic_to_real.py).

In Python (tests, benchmarks): `evaluate.run(["--mode=synthesis", ...])` returns the results.
"""

import json
import os

from absl import app
from absl import flags as absl_flags

import flags as cli

FLAGS = absl_flags.FLAGS

_NAMED = 5  # how many files an error message lists
_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
_LABEL_SUFFIXES = ("", "_seg")  # <stem>.png, or <stem>_seg.png as in FaceSynthetics


def main(argv):
    with cli.user_errors(os.path.basename(__file__)):
        if len(argv) > 1:
            raise cli.ConfigError(f"unexpected arguments: {' '.join(argv[1:])}")
        evaluate_from_flags(FLAGS)


def run(args):
    """Runs evaluate.py in-process with command-line style `args`; returns the results dict.

    Errors are raised (not turned into an exit status), e.g. run(["--synth_dir=...", ...]).
    """
    flag_values = absl_flags.FlagValues()
    cli.define_evaluate_flags(flag_values)
    flag_values(["evaluate.py", *args])
    return evaluate_from_flags(flag_values)


def evaluate_from_flags(flag_values):
    """Runs the evaluation --mode asks for; returns its results dict."""
    if flag_values.mode == "synthesis":
        return evaluate_synthesis(flag_values)
    return synthetic_to_real_from_flags(flag_values)


def _listing(items) -> str:
    items = list(items)
    more = f" and {len(items) - _NAMED} more" if len(items) > _NAMED else ""
    return ", ".join(map(str, items[:_NAMED])) + more


def _list_files(folder: str, flag: str, extensions) -> dict[str, str]:
    """{relative path without extension: path} of the files under `folder` (recursive)."""
    from datasets.pairs import DatasetError, DatasetNotFoundError

    if not folder:
        raise cli.ConfigError(f"{flag} is required")
    if not os.path.isdir(folder):
        raise DatasetNotFoundError(f"{flag}={folder} does not exist or is not a folder")
    found = {}
    for root, subfolders, names in os.walk(folder):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in sorted(names):
            stem, extension = os.path.splitext(name)
            if name.startswith(".") or extension.lower() not in extensions:
                continue
            path = os.path.join(root, name)
            key = os.path.relpath(os.path.join(root, stem), folder).replace(os.sep, "/")
            if key in found:
                raise DatasetError(f"{flag}={folder}: two files share the stem {key!r}: "
                                   f"{found[key]} and {path}")
            found[key] = path
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

    labels = _list_files(label_dir, "--label_dir", (".png",))
    pairs, unmatched = [], []
    used = set()
    for stem, path in synth.items():
        keys = [stem + suffix for suffix in _LABEL_SUFFIXES if stem + suffix in labels]
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
            problems.append(f"images without a label map: {_listing(unmatched)}")
        if unused:
            problems.append(f"label maps without an image: {_listing(unused)}")
        raise DatasetError("; ".join(problems))
    return pairs


def _check_writable(path, overwrite: bool, flag: str) -> None:
    if path and os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{flag}={path} already exists; pass --overwrite or another {flag}")


_SEGMENTER_META = "semsynth_segmenter.json"  # models.segformer.export.META_FILE (no TF import here)
_RUN_CONFIG = "config.json"


def _segmenter_kind(path: str) -> str:
    """"saved_model" or "checkpoint_dir": what --segmenter points at, checked before TF loads."""
    if not os.path.exists(path):
        raise cli.ConfigError(f"--segmenter={path} does not exist")
    if os.path.isfile(os.path.join(path, _SEGMENTER_META)):
        return "saved_model"
    if os.path.isfile(os.path.join(path, _RUN_CONFIG)):
        return "checkpoint_dir"
    raise cli.ConfigError(
        f"--segmenter={path} is neither an exported SegFormer (no {_SEGMENTER_META}) nor a "
        f"SegFormer run directory (no {_RUN_CONFIG})"
    )


def _load_segmenter(path: str):
    from models.segformer.export import load_segmenter

    return load_segmenter(**{_segmenter_kind(path): path})


def _class_names(segmenter) -> list[str]:
    from semantic_labels import LabelSetError, load_label_set

    try:
        label_set = load_label_set(segmenter.label_set_name)
        if label_set.num_classes == segmenter.num_classes:
            return list(label_set.names)
    except (LabelSetError, FileNotFoundError, TypeError):
        pass
    return [str(c) for c in range(segmenter.num_classes)]


def _check_synthesis_flags(flag_values):
    for name in ("batch_size", "kid_subsets"):
        if flag_values[name].value < 1:
            raise cli.ConfigError(f"--{name} must be >= 1, got {flag_values[name].value}")
    if flag_values.kid_subset_size < 2:
        raise cli.ConfigError(f"--kid_subset_size must be >= 2, got "
                              f"{flag_values.kid_subset_size}")
    if flag_values.image_size < 0:
        raise cli.ConfigError(f"--image_size must be >= 0, got {flag_values.image_size}")
    if bool(flag_values.label_dir) != bool(flag_values.segmenter):
        given, missing = (("--label_dir", "--segmenter") if flag_values.label_dir
                          else ("--segmenter", "--label_dir"))
        raise cli.ConfigError(f"semantic consistency needs both --label_dir and --segmenter; "
                              f"{given} was given without {missing}")


def evaluate_synthesis(flag_values) -> dict:
    """FID, KID (and semantic consistency) of --synth_dir; prints a table, writes --output."""
    _check_synthesis_flags(flag_values)
    synth_dir, real_dir = flag_values.synth_dir, flag_values.real_dir
    synth = _list_files(synth_dir, "--synth_dir", _IMAGE_EXTENSIONS)
    real = _list_files(real_dir, "--real_dir", _IMAGE_EXTENSIONS)
    synth_paths, real_paths = list(synth.values()), list(real.values())
    _check_fid_count(synth_paths, "--synth_dir", synth_dir)
    _check_fid_count(real_paths, "--real_dir", real_dir)
    sizes = {}
    if not flag_values.image_size:
        sizes = {"synth": _check_one_size(synth_paths, "--synth_dir", synth_dir),
                 "real": _check_one_size(real_paths, "--real_dir", real_dir)}
    pairs = None
    if flag_values.label_dir:
        pairs = pair_with_labels(synth, synth_dir, flag_values.label_dir)
        _segmenter_kind(flag_values.segmenter)
    _check_writable(flag_values.output, flag_values.overwrite, "--output")

    # TensorFlow loads only now: flag and file errors above come without its start-up time.
    from evaluation import fid as fid_lib
    from evaluation import inception as inception_lib

    try:
        inception = inception_lib.InceptionFeatures(
            flag_values.inception_weights, seed=flag_values.seed,
            batch_size=flag_values.batch_size,
        )
    except inception_lib.InceptionWeightsError as error:
        raise cli.ConfigError(str(error)) from None
    image_size = flag_values.image_size or None
    print(f"Inception features of {len(real_paths)} real images ({real_dir})")
    real_stats = inception.stats_from_files(real_paths, name=f"--real_dir={real_dir}",
                                            image_size=image_size, progress=True)
    print(f"Inception features of {len(synth_paths)} synthesized images ({synth_dir})")
    synth_stats = inception.stats_from_files(synth_paths, name=f"--synth_dir={synth_dir}",
                                             image_size=image_size, progress=True)
    fid = fid_lib.fid_from_stats(real_stats, synth_stats)
    kid_mean, kid_std = fid_lib.kid_from_features(
        real_stats.features, synth_stats.features, num_subsets=flag_values.kid_subsets,
        subset_size=flag_values.kid_subset_size, seed=flag_values.seed,
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
        notes.append(f"synthesized images are {sizes['synth'][0]}x{sizes['synth'][1]}, real "
                     f"ones {sizes['real'][0]}x{sizes['real'][1]}; both are resized to 299x299 "
                     "for Inception (--image_size=N compares them at one size first)")
    results = {
        "mode": "synthesis",
        "synth_dir": synth_dir,
        "real_dir": real_dir,
        "num_synth": synth_stats.count,
        "num_real": real_stats.count,
        "image_size": flag_values.image_size or None,
        "fid": fid,
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        "kid_subsets": flag_values.kid_subsets,
        "kid_subset_size": min(flag_values.kid_subset_size, real_stats.count, synth_stats.count),
        "inception_weights": flag_values.inception_weights,
        "comparable_to_published": inception.comparable,
        "covariance_full_rank": full_rank,
        "notes": notes,
        "semantic_consistency": None,
    }
    if pairs is not None:
        results["semantic_consistency"] = _semantic_consistency(flag_values, pairs)
    print(format_synthesis_table(results))
    if flag_values.output:
        directory = os.path.dirname(os.path.abspath(flag_values.output))
        os.makedirs(directory, exist_ok=True)
        with open(flag_values.output, "w", encoding="utf-8") as file:
            json.dump(results, file, indent=1)
        print(f"Wrote {flag_values.output}")
    return results


def _semantic_consistency(flag_values, pairs) -> dict:
    import math

    from evaluation.segmentation_metrics import format_table
    from evaluation.semantic_consistency import semantic_consistency

    segmenter = _load_segmenter(flag_values.segmenter)
    print(f"Segmenting {len(pairs)} synthesized images with {flag_values.segmenter}")
    metrics = semantic_consistency(segmenter, pairs, batch_size=flag_values.batch_size,
                                   progress=True)
    names = _class_names(segmenter)
    print(format_table(metrics, names))

    def number(value):
        return float(value) if math.isfinite(value) else None

    return {
        "segmenter": flag_values.segmenter,
        "label_dir": flag_values.label_dir,
        "num_images": metrics["num_images"],
        "miou": number(metrics["miou"]),
        "pixel_accuracy": number(metrics["pixel_accuracy"]),
        "mean_accuracy": number(metrics["mean_accuracy"]),
        "per_class_iou": {name: number(iou) for name, iou in zip(names, metrics["iou"])
                          if math.isfinite(iou)},
    }


def format_synthesis_table(results) -> str:
    """The terminal report of --mode=synthesis."""
    def percent(value):
        return "-" if value is None else f"{100.0 * value:.2f}"

    rows = [
        ("synthesized images", f"{results['num_synth']}  ({results['synth_dir']})"),
        ("real images", f"{results['num_real']}  ({results['real_dir']})"),
        ("Inception weights", results["inception_weights"]),
        ("FID", f"{results['fid']:.3f}"),
        ("KID x 1e3", f"{1e3 * results['kid_mean']:.3f} +- {1e3 * results['kid_std']:.3f} "
                      f"({results['kid_subsets']} subsets of {results['kid_subset_size']})"),
    ]
    consistency = results["semantic_consistency"]
    if consistency:
        rows += [
            ("semantic consistency", f"{consistency['num_images']} images, segmenter "
                                     f"{consistency['segmenter']}"),
            ("  mIoU (%)", percent(consistency["miou"])),
            ("  pixel accuracy (%)", percent(consistency["pixel_accuracy"])),
        ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name.ljust(width)}  {value}" for name, value in rows]
    lines += [f"NOTE: {note}" for note in results["notes"]]
    return "\n".join(lines)


def synthetic_to_real_from_flags(flag_values) -> dict:
    """--mode=synthetic_to_real: the three SegFormer runs and their comparison."""
    import shlex

    if flag_values.batch_size < 1:
        raise cli.ConfigError(f"--batch_size must be >= 1, got {flag_values.batch_size}")
    try:
        train_args = shlex.split(flag_values.train_flags or "")
    except ValueError as error:
        raise cli.ConfigError(f"--train_flags cannot be split into flags: {error}") from None
    from evaluation import synthetic_to_real as s2r

    try:
        results = s2r.run_synthetic_to_real(
            train_args, flag_values.output_dir, spade_model=flag_values.spade_model,
            synthetic_list=flag_values.synthetic_list,
            synthetic_image_dir=flag_values.synthetic_image_dir,
            synthetic_label_dir=flag_values.synthetic_label_dir,
            overwrite=flag_values.overwrite, synth_batch_size=flag_values.batch_size,
        )
    except absl_flags.Error as error:  # an unknown or malformed flag inside --train_flags
        raise cli.ConfigError(f"--train_flags: {error}") from None
    print(s2r.format_markdown(results))
    print("Wrote " + ", ".join(results["files"].values()))
    return results


if __name__ == "__main__":
    cli.define_evaluate_flags()
    app.run(main)
