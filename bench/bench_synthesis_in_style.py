"""Synthesis in Style on the built-in document pages, end to end, at CPU scale.

Run from the repository root:

    python -m bench.bench_synthesis_in_style            # ~35 min on 2 shared CPU cores
    python -m bench.bench_synthesis_in_style --quick    # a few minutes: smoke check, no conclusions

Phases (each announced by a time-stamped line on stderr):
1. the built-in document pages (datasets/documents.py: --num_pages training pages and a tenth
   as many held out, 1024 x 768, ink masks background / printed_text / handwritten_text) and
   the GAN's crops of them (--num_crops tiles of --resolution px, each showing the page
   downscaled by a random factor in 1-4, datasets/crops.py);
2. StyleGAN2 `tiny` on the crops for --gan_minutes (or --gan_steps) at --resolution;
3. feature clusters of its EMA generator (--cluster_samples samples, one k = --k, every
   synthesis layer);
4. cluster labels from `models.synthesis_in_style.labels.auto_label_clusters`, a colour
  heuristic that
   stands in for the human annotator of the paper (light = background, dark grey = printed,
   dark coloured = handwritten), written as <clusters>/annotations_k<k>.json and loaded back
   through the annotator's loader;
5. --num_synthetic synthetic image / mask pairs (coarse layers decide the class, fine layers
   the ink shape);
6. two SegFormer `tiny` runs on one budget (--seg_steps, --seg_batch, --seed, crops of
   --resolution px): on the synthetic training pairs, and on random crops of the real training
   pages with their true masks;
7. both evaluated the same way on the held-out real pages: sliding windows of --resolution px
   over the whole page (models/segformer/inference.py, as segment.py does) at each page scale of
   --eval_scales, probabilities resized back to the page, scored against the full-resolution
   masks with evaluation/segmentation_metrics.py.

Scale: a GAN crop shows the page downscaled 1-4x (page scale 0.25-1), so the synthetic pairs
show text smaller than the page has it; SegFormer's own random resize (0.5-2x) comes on top for
both runs. The real-page run sees the pages at 0.5-2x. --eval_scales (default 1 and 0.5)
evaluates at full page resolution (segment.py's setting, the paper's) and at half, which lies
inside both runs' training scales.

Writes <output_dir>/bench_synthesis_in_style.md (settings, the table, machine, phase times,
notes) and bench_synthesis_in_style.json; the run directories, clusters, synthetic pairs and one
coloured prediction per run and scale stay under <output_dir>.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shlex
import shutil
import sys
import tempfile
import threading
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from bench import common  # noqa: E402  (after the path fix, for `python bench/...` too)

# (full, quick) defaults. The full setting is sized for ~35 min on 2 CPU cores shared with
# other jobs: 15 min of GAN training, ~3 + ~10 min of SegFormer (the real-page run is bound by
# its input pipeline: every element decodes and resizes a whole 1024 x 768 page for one crop),
# the rest a few minutes.
DEFAULTS = {
    "num_pages": (40, 3),
    "num_crops": (4000, 120),
    "resolution": (64, 32),
    "gan_minutes": (15.0, 0.0),
    "gan_steps": (100000, 20),
    "gan_batch": (8, 4),
    "cluster_samples": (100, 8),
    "k": (8, 4),
    "num_synthetic": (1000, 24),
    "seg_steps": (400, 30),  # the tiny preset's own max_steps
    "seg_batch": (8, 4),
}
CLASS_NAMES = ("background", "printed_text", "handwritten_text")  # semantic_labels/documents
TEXT_CLASSES = ("printed_text", "handwritten_text")
# The reference's rule constants, for 256 px samples; scaled to --resolution by default.
REFERENCE_RESOLUTION, REFERENCE_MIN_AREA, REFERENCE_DILATION = 256, 50, 5
HEARTBEAT_S = 120.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_synthesis_in_style", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="Tiny setting (a few minutes): checks the pipeline, no conclusions.",
    )
    helps = {
        "num_pages": "built-in training pages (a tenth as many, at least 1, held out)",
        "num_crops": "GAN training crops cut from the training pages",
        "resolution": "GAN resolution = synthetic pair size = SegFormer crop = eval tile (px)",
        "gan_minutes": "StyleGAN2 time budget in minutes (0: --gan_steps decides)",
        "gan_steps": "StyleGAN2 step limit",
        "gan_batch": "StyleGAN2 batch",
        "cluster_samples": "generated samples clustered",
        "k": "clusters per layer",
        "num_synthetic": "synthetic image / mask pairs (90%% train, 10%% val)",
        "seg_steps": "training steps of each SegFormer",
        "seg_batch": "batch of each SegFormer",
    }
    for name, (full, quick) in DEFAULTS.items():
        parser.add_argument(
            f"--{name}",
            type=type(full),
            default=None,
            help=f"{helps[name]}; default {full} ({quick} with --quick)",
        )
    parser.add_argument(
        "--gan_pl_weight",
        type=float,
        default=0.0,
        help="path-length regularisation weight (default 0: off, it about "
        "doubles the step time of the tiny GAN on CPU; the preset has 2)",
    )
    parser.add_argument(
        "--gan_ema_kimg",
        type=float,
        default=1.0,
        help="generator EMA half-life in thousands of images (default 1, for "
        "a run of some 10-20 thousand images; the preset's 10 suits 100k+)",
    )
    parser.add_argument(
        "--gan_flags",
        default="",
        help="more train.py flags for the StyleGAN2 run, one string, e.g. "
        '"--channel_multiplier=1 --r1_gamma=1"',
    )
    parser.add_argument(
        "--seg_class_weights",
        default="none",
        choices=("none", "inverse", "sqrt_inverse"),
        help="cross-entropy class weights of both SegFormers, from each run's own training "
        "pixels: inverse frequency (tools.class_weights) or its square root (milder); "
        "handwriting is under 1 %% of the page pixels",
    )
    parser.add_argument(
        "--truncation_psi",
        type=float,
        default=1.0,
        help="truncation of clustering and synthesis (1 = off)",
    )
    parser.add_argument(
        "--cluster_batch",
        type=int,
        default=16,
        help="samples per generator call in clustering and synthesis",
    )
    parser.add_argument(
        "--min_area",
        type=int,
        default=None,
        help="coarse regions under this many px^2 are dropped (default: the "
        "reference's 50 at 256 px scaled to --resolution)",
    )
    parser.add_argument(
        "--dilation",
        type=int,
        default=None,
        help="odd side of the coarse-region dilation (default: the reference's "
        "5 at 256 px scaled to --resolution)",
    )
    parser.add_argument(
        "--eval_scales",
        default="1,0.5",
        help="page scales the held-out pages are segmented at, comma-separated",
    )
    parser.add_argument(
        "--overlap",
        type=float,
        default=0.25,
        help="overlap of the sliding windows (segment.py's default)",
    )
    parser.add_argument("--eval_batch", type=int, default=32, help="tiles per forward pass")
    parser.add_argument(
        "--data_root",
        default=os.path.join(tempfile.gettempdir(), "semsynth_bench_data"),
        help="where pages and crops are generated (reused between runs)",
    )
    parser.add_argument("--output_dir", default="outputs/bench_synthesis_in_style")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an earlier run in --output_dir"
    )
    args = parser.parse_args(argv)
    for name, (full, quick) in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    try:
        args.eval_scales = [float(s) for s in args.eval_scales.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--eval_scales={args.eval_scales!r} must be comma-separated numbers")
    if not args.eval_scales or not all(0 < s <= 4 for s in args.eval_scales):
        parser.error(f"--eval_scales={args.eval_scales} must be numbers in (0, 4]")
    if args.resolution % 32:
        parser.error(
            f"--resolution={args.resolution} must be a multiple of 32 (the SegFormer "
            "crop and the sliding-window tile)"
        )
    if args.min_area is None:
        ratio = (args.resolution / REFERENCE_RESOLUTION) ** 2
        args.min_area = max(1, round(REFERENCE_MIN_AREA * ratio))
    if args.dilation is None:
        side = REFERENCE_DILATION * args.resolution / REFERENCE_RESOLUTION
        args.dilation = max(1, 2 * round((side - 1) / 2) + 1)  # the nearest odd side
    if args.dilation % 2 == 0:
        parser.error(f"--dilation={args.dilation} must be odd")
    return args


# ------------------------------------------------------------------------------------------
# Progress
# ------------------------------------------------------------------------------------------


class Phases:
    """Times the phases and announces each one's start and end on stderr."""

    def __init__(self):
        self.minutes = {}

    def run(self, name, fn, *args, **kwargs):
        common.log(f"{name} ...")
        start = time.time()
        stop = threading.Event()

        def heartbeat():  # long phases (GAN, SegFormer) print nothing else for minutes
            while not stop.wait(HEARTBEAT_S):
                common.log(f"  ... {name}: {(time.time() - start) / 60:.1f} min so far")

        thread = threading.Thread(target=heartbeat, daemon=True)
        thread.start()
        try:
            return fn(*args, **kwargs)
        finally:
            stop.set()
            thread.join()
            self.minutes[name] = (time.time() - start) / 60.0
            common.log(f"{name}: done in {self.minutes[name]:.1f} min")


def _sublog(message):
    common.log("  " + str(message).strip())


# ------------------------------------------------------------------------------------------
# The phases
# ------------------------------------------------------------------------------------------


def gan_config(args, run_dir):
    """The StyleGAN2 train config: tiny preset on the built-in document crops."""
    import flags as cli

    return cli.config_from_args(
        [
            "--model=stylegan2",
            "--preset=tiny",
            "--dataset=documents",
            f"--data_root={args.data_root}",
            f"--num_pages={args.num_pages}",
            f"--num_crops={args.num_crops}",
            f"--resolution={args.resolution}",
            f"--batch_size={args.gan_batch}",
            f"--max_steps={args.gan_steps}",
            f"--max_minutes={args.gan_minutes}",
            f"--pl_weight={args.gan_pl_weight}",
            f"--ema_half_life_kimg={args.gan_ema_kimg}",
            f"--seed={args.seed}",
            f"--checkpoint_dir={run_dir}",
            "--progress=false",
            "--export=false",
            "--save_img_freq=500",
            "--save_model_freq=1000",
            *shlex.split(args.gan_flags),
        ]
    )


def prepare_data(config):
    """Pages and GAN crops; returns {"pages_root", "crops_dir", scale and ink statistics}."""
    import numpy as np

    from datasets import documents
    from datasets.pipeline import load_label_map
    from models.stylegan2.task import builtin_document_crops, builtin_document_pages

    pages_root = builtin_document_pages(config)
    train_list, _ = builtin_document_crops(config, log=_sublog)
    crops_dir = os.path.dirname(train_list)
    with open(os.path.join(crops_dir, "crops_manifest.json"), encoding="utf-8") as file:
        scales = np.array([crop["scale"] for crop in json.load(file)["crops"]])
    ink = {}
    for split in ("training", "validation"):
        counts = np.zeros(len(CLASS_NAMES), np.int64)
        pairs = documents.document_pairs(pages_root, split)
        for _, label_path in pairs:
            counts += np.bincount(load_label_map(label_path).ravel(), minlength=len(CLASS_NAMES))[
                : len(CLASS_NAMES)
            ]
        ink[split] = {"pages": len(pairs), "class_share": _shares(counts)}
    return {
        "pages_root": pages_root,
        "crops_dir": crops_dir,
        "crop_page_scale": {
            "min": float(scales.min()),
            "median": float(np.median(scales)),
            "max": float(scales.max()),
        },
        "pages": ink,
    }


def _shares(counts):
    total = max(int(sum(counts)), 1)
    return {name: int(n) / total for name, n in zip(CLASS_NAMES, counts)}


def train_gan(config):
    from training import loop

    result = loop.train(config, log=_sublog)
    return {"steps": int(result["step"]), "stopped": result["stopped"], "losses": result["losses"]}


def make_runner(args, run_dir):
    from models.stylegan2.export import GeneratorRunner

    return GeneratorRunner(run_dir, truncation_psi=args.truncation_psi, seed=args.seed)


def cluster(args, runner, clusters_dir):
    from models.synthesis_in_style.clusters import cluster_features

    return cluster_features(
        runner.feature_fn,
        num_samples=args.cluster_samples,
        batch_size=args.cluster_batch,
        k_values=[args.k],
        out_dir=clusters_dir,
        z_dim=runner.z_dim,
        seed=args.seed,
        generator_meta=runner.meta(),
        layers=runner.layers,
        progress=False,
    )


def label_clusters(args, clusters):
    """Heuristic labels -> annotations_k<k>.json -> the validated mapping and a summary."""
    from models.synthesis_in_style.labels import (
        auto_label_clusters,
        default_layers,
        load_label_mapping,
    )

    k = args.k
    path = os.path.join(clusters.directory, f"annotations_k{k:02d}.json")
    with open(path, "w", encoding="utf-8") as file:
        json.dump(auto_label_clusters(clusters, k), file, indent=1)
    mapping = load_label_mapping(path, clusters=clusters, k=k, palette="documents")
    coarse, fine = default_layers(clusters)
    summary = {}
    for role, layers in (("coarse", coarse), ("fine", fine)):
        for layer in layers:
            labels = list(mapping["layers"][layer].values())
            summary[layer] = {"role": role, **{name: labels.count(name) for name in CLASS_NAMES}}
    return {"path": path, "mapping": mapping, "coarse": coarse, "fine": fine, "layers": summary}


def synthesize(args, runner, clusters, labels, out_dir):
    from models.synthesis_in_style.dataset_writer import synthesize_dataset
    from models.synthesis_in_style.palette import load_palette

    manifest = synthesize_dataset(
        runner.feature_fn,
        mapping=labels["mapping"],
        clusters=clusters,
        palette=load_palette("documents"),
        num_images=args.num_synthetic,
        out_dir=out_dir,
        batch_size=args.cluster_batch,
        z_dim=runner.z_dim,
        seed=args.seed,
        coarse_layers=labels["coarse"],
        fine_layers=labels["fine"],
        min_area=args.min_area,
        dilation=args.dilation,
        progress=False,
    )
    counts = manifest["counts"]
    pixels = [counts["class_pixels"].get(name, 0) for name in CLASS_NAMES]
    return {
        "train": counts["train"],
        "val": counts["val"],
        "attempts": counts["attempts"],
        "discarded": counts["discarded"],
        "class_share": _shares(pixels),
        "train_list": os.path.join(out_dir, "train.json"),
        "val_list": os.path.join(out_dir, "val.json"),
    }


def _seg_flags(args, run_dir):
    # eval_freq=0: no model selection on held-out data; both runs are scored at their last step.
    return [
        "--model=segformer",
        "--preset=tiny",
        f"--crop_size={args.resolution}",
        f"--batch_size={args.seg_batch}",
        f"--max_steps={args.seg_steps}",
        "--eval_freq=0",
        f"--seed={args.seed}",
        f"--checkpoint_dir={run_dir}",
        "--progress=false",
        "--export=false",
        "--save_img_freq=500",
        "--save_model_freq=100000",
    ]


def class_weight_flags(args, out_dir, pairs):
    """[--class_weights=FILE] with the weights of --seg_class_weights for one training source
    (its training pairs), written under out_dir; [] for none."""
    if args.seg_class_weights == "none":
        return []
    import numpy as np

    from datasets import class_weights as weights_lib

    counts = weights_lib.count_pixels(pairs, num_classes=len(CLASS_NAMES))
    weights = weights_lib.class_weights_from_frequencies(counts)
    if args.seg_class_weights == "sqrt_inverse":
        weights = np.sqrt(weights) / np.sqrt(weights).sum()
    path = os.path.join(out_dir, "class_weights.json")
    os.makedirs(out_dir, exist_ok=True)
    with open(path, "w") as f:
        json.dump({"weights": weights.tolist(), "pixel_counts": counts.tolist()}, f)
    _sublog(
        "class weights ("
        + args.seg_class_weights
        + "): "
        + ", ".join(f"{n} {w:.3f}" for n, w in zip(CLASS_NAMES, weights))
    )
    return [f"--class_weights={path}"]


def train_segformer(flag_list):
    import keras

    import flags as cli
    from training import loop

    keras.backend.clear_session()
    gc.collect()
    result = loop.train(cli.config_from_args(flag_list), log=_sublog)
    return {"steps": int(result["step"]), "final_loss": result["losses"]}


def evaluate_segmenter(args, run_dir, pairs, out_dir):
    """{scale: metrics} of one SegFormer run on the held-out pages (sliding windows).

    The page is resized to each scale (Lanczos, as the GAN crops were), segmented with
    --resolution px tiles exactly as segment.py does, its probabilities resized (bilinear) back
    to the page and scored against the full-resolution mask, so every scale and run is scored
    on the same pixels. The first page's prediction is saved in colour per scale.
    """
    import numpy as np
    import tensorflow as tf
    from PIL import Image

    from datasets.pipeline import load_image, load_label_map
    from evaluation import segmentation_metrics as seg_metrics
    from models.segformer.export import load_segmenter
    from models.segformer.inference import predict_probs
    from semantic_labels import load_label_set

    segmenter = load_segmenter(checkpoint_dir=run_dir)
    num_classes = int(segmenter.num_classes)
    table = None if segmenter.label_map is None else np.asarray(segmenter.label_map)
    label_set = load_label_set("documents")
    os.makedirs(out_dir, exist_ok=True)
    results = {}
    for scale in args.eval_scales:
        confusion = seg_metrics.ConfusionMatrix(num_classes)
        for index, (image_path, label_path) in enumerate(pairs):
            image = load_image(image_path)  # [H, W, 3] uint8
            label = load_label_map(label_path)  # [H, W] uint8
            if table is not None:
                label = table[label].astype(np.uint8)  # identity for the documents label set
            height, width = label.shape
            if scale != 1.0:
                size = (max(1, round(width * scale)), max(1, round(height * scale)))
                image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))
            normalised = np.asarray(segmenter.preprocess(image[None]), np.float32)[0]
            probs = predict_probs(
                segmenter.predict_logits,
                normalised,
                num_classes,
                mode="slide",
                tile=args.resolution,
                overlap=args.overlap,
                batch_size=args.eval_batch,
                size_divisor=32,
            )  # [h, w, C]
            if scale != 1.0:
                probs = tf.image.resize(probs, (height, width), method="bilinear").numpy()
            prediction = probs.argmax(axis=-1).astype(np.uint8)  # [H, W]
            confusion.update(label, prediction)
            if index == 0:
                Image.fromarray(label_set.colorize(prediction)).save(
                    os.path.join(out_dir, f"page0_scale{scale:g}_color.png")
                )
        results[scale] = _metrics(confusion.result())
    return results


def _metrics(cm):
    """The numbers of the table from a confusion matrix (the one metrics implementation)."""
    import math

    from evaluation.segmentation_metrics import metrics_from_confusion

    metrics = metrics_from_confusion(cm)
    iou = {name: float(metrics["iou"][i]) for i, name in enumerate(CLASS_NAMES)}
    text = [iou[name] for name in TEXT_CLASSES]
    return {
        "iou": iou,
        # A text class absent from both truth and prediction would be NaN; count it as 0 here
        # so that the mean stays a mean of the two classes.
        "text_mean_iou": sum(0.0 if math.isnan(v) else v for v in text) / len(text),
        "miou": float(metrics["miou"]),
        "pixel_accuracy": float(metrics["pixel_accuracy"]),
        "precision": {n: float(metrics["precision"][i]) for i, n in enumerate(CLASS_NAMES)},
        "recall": {n: float(metrics["recall"][i]) for i, n in enumerate(CLASS_NAMES)},
    }


def all_background_reference(pairs):
    """The metrics of predicting background everywhere: what pixel accuracy is worth here."""
    import numpy as np

    from datasets.pipeline import load_label_map

    cm = np.zeros((len(CLASS_NAMES), len(CLASS_NAMES)), np.int64)
    for _, label_path in pairs:
        counts = np.bincount(load_label_map(label_path).ravel(), minlength=len(CLASS_NAMES))
        cm[:, 0] += counts[: len(CLASS_NAMES)]
    return _metrics(cm)


# ------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------


def _pct(value):
    return common.fmt(None if value is None else 100.0 * value, ".1f")


def format_report(report) -> str:
    """The markdown the README gets: settings, the table, machine, phase times, notes."""
    args = report["args"]
    data, gan, labels, synthetic = (
        report["data"],
        report["gan"],
        report["labels"],
        report["synthetic"],
    )
    res = args["resolution"]
    scale = data["crop_page_scale"]
    pages = data["pages"]
    coarse_counts = _label_counts(labels["layers"], "coarse")
    fine_counts = _label_counts(labels["layers"], "fine")
    images_seen = gan["steps"] * args["gan_batch"]
    lines = [
        "### Synthesis in Style on the built-in documents (CPU scale)",
        "",
        ("**Quick setting: a smoke run, no conclusions.** " if args["quick"] else "")
        + f"Built-in pages (1024 x 768): {pages['training']['pages']} training, "
        f"{pages['validation']['pages']} held out. StyleGAN2 `tiny` at {res} px on "
        f"{args['num_crops']} crops of the training pages (page scale "
        f"{scale['min']:.2f}-{scale['max']:.2f}, median {scale['median']:.2f}): "
        f"{gan['steps']} steps of batch {args['gan_batch']} ({images_seen / 1000:.1f} kimg) in "
        f"{report['minutes']['2 StyleGAN2']:.1f} min ({gan['stopped']}); path-length reg. "
        f"weight {args['gan_pl_weight']:g}, EMA half-life {args['gan_ema_kimg']:g} kimg"
        + (f", extra flags `{args['gan_flags']}`" if args["gan_flags"] else "")
        + f". Clusters: {args['cluster_samples']} samples, k = {args['k']}, truncation psi "
        f"{args['truncation_psi']:g}; coarse layers {', '.join(labels['coarse'])} "
        f"(clusters background / printed / handwritten: {coarse_counts}), fine layers "
        f"{', '.join(labels['fine'])} ({fine_counts}). Synthetic pairs: "
        f"{synthetic['train'] + synthetic['val']} of {res} px ({synthetic['train']} used for "
        f"training; {synthetic['discarded']} samples discarded), min area {args['min_area']} "
        f"px^2, dilation {args['dilation']}. SegFormer `tiny`: {args['seg_steps']} steps, batch "
        f"{args['seg_batch']}, {res} px crops, seed {args['seed']}, last step scored, class "
        f"weights {args.get('seg_class_weights', 'none')}, for both runs.",
        "",
        "| SegFormer trained on | page scale | printed IoU (%) | handwritten IoU (%) | "
        "text mean IoU (%) | pixel acc. (%) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    titles = {
        "synthetic": "synthetic pairs (GAN + heuristic cluster labels)",
        "real": "real training pages (true masks)",
    }
    for scale_value in args["eval_scales"]:
        for setting in ("synthetic", "real"):
            m = report["evaluation"][setting][str(scale_value)]
            lines.append(
                f"| {titles[setting]} | {scale_value:g} | {_pct(m['iou']['printed_text'])} | "
                f"{_pct(m['iou']['handwritten_text'])} | {_pct(m['text_mean_iou'])} | "
                f"{_pct(m['pixel_accuracy'])} |"
            )
    reference = report["all_background"]
    lines.append(
        f"| (nothing: background everywhere) | any | 0.0 | 0.0 | 0.0 | "
        f"{_pct(reference['pixel_accuracy'])} |"
    )
    share_real = pages["validation"]["class_share"]
    share_syn = synthetic["class_share"]
    machine = report["machine"]
    load_start = machine.get("loadavg_start") or [None]
    load_end = report.get("loadavg_end") or [None]
    lines += [
        "",
        "How it was measured: each held-out page is resized to the page scale, covered by "
        f"{res} px windows (overlap {args['overlap']:g}, probabilities averaged, as "
        "`segment.py --mode=slide` does), the probabilities resized back to 1024 x 768 and "
        "compared with the full-resolution ink masks (`evaluation/segmentation_metrics.py`, "
        "one confusion matrix over all held-out pages). Text mean IoU = mean of the printed "
        "and handwritten IoU.",
        "",
        "What the numbers mean:",
        f"- CPU scale: the `tiny` GAN (widths 16 and less) at {res} px trained for minutes "
        "(the paper: 256 px, config F, 100k steps of batch 8 on GPUs), so its samples are "
        "blurry text-like page textures, "
        "and every network here is tiny. The numbers check that the pipeline runs end to end "
        "and compare two training sources on one budget; they are not the paper's results.",
        "- The cluster labels come from a colour heuristic (`auto_label_clusters`: light "
        "clusters background, dark grey printed, dark coloured handwritten), not from a "
        "person in the annotation app as in the paper. Ink of a dark pen and print look "
        "alike to it, and a cluster that mixes paper and ink goes to whichever its mean "
        "colour is nearer.",
        f"- Ink share of the pixels (background / printed / handwritten, %): held-out pages "
        f"{_share_text(share_real)}; synthetic masks {_share_text(share_syn)}.",
        f"- Scale: a GAN crop shows the page at {scale['min']:.2f}-{scale['max']:.2f} of its "
        "size, so the synthetic pairs (and the segmenter trained on them) see text smaller "
        "than the full-resolution pages have it; SegFormer's random resize (0.5-2x) comes on "
        "top in both runs, and the real-page run sees the pages at 0.5-2x. Page scale 1 is "
        "segment.py's (and the paper's) setting; 0.5 lies inside both runs' training scales "
        "too, but there thin strokes are resampled twice (the page down, the probabilities up "
        "again).",
        f"- Pixel accuracy is dominated by background (~{100 * share_real['background']:.0f}% "
        "of the pixels): the last row is what predicting no text at all scores.",
        *_behaviour_notes(report),
        "",
        f"Machine: {machine['cpu_model']}, {machine['usable_cpus']} usable CPUs "
        f"(shared with other jobs: load average {common.fmt(load_start[0], '.1f')} at the "
        f"start, {common.fmt(load_end[0], '.1f')} at the end), TensorFlow "
        f"{machine['tensorflow']}, Keras {machine['keras']}, Python {machine['python']}, "
        f"{machine['date']}.",
        "",
        "Phase times (min): "
        + ", ".join(
            f"{name.split(' ', 1)[1]} {minutes:.1f}" for name, minutes in report["minutes"].items()
        )
        + f"; total {report['total_minutes']:.1f}.",
        "",
        "Command: `python -m bench.bench_synthesis_in_style"
        + (" --quick" if args["quick"] else "")
        + "`",
    ]
    return "\n".join(lines) + "\n"


def _behaviour_notes(report):
    """Notes read off the numbers: printed precision / recall, classes never predicted."""
    import math

    args, evaluation = report["args"], report["evaluation"]
    first = str(args["eval_scales"][0])
    notes = [
        "- Printed text precision / recall (%) at page scale "
        f"{args['eval_scales'][0]:g}: "
        + "; ".join(
            f"{setting} {_pct(evaluation[setting][first]['precision']['printed_text'])} / "
            f"{_pct(evaluation[setting][first]['recall']['printed_text'])}"
            for setting in ("synthetic", "real")
        )
        + "."
    ]
    # Precision is NaN exactly when a class is never predicted.
    silent = [
        f"{setting} @ scale {float(scale):g}"
        for setting in ("synthetic", "real")
        for scale, m in evaluation[setting].items()
        if math.isnan(m["precision"]["handwritten_text"])
    ]
    if silent:
        notes.append("- handwritten_text was never predicted by: " + ", ".join(silent) + ".")
    if report["synthetic"]["class_share"]["handwritten_text"] == 0:
        notes.append(
            "- The heuristic labelled no cluster handwritten_text (no cluster's mean "
            "colour was a distinct pen colour), so the synthetic masks hold no "
            "handwriting and the segmenter trained on them cannot learn it."
        )
    return notes


def _label_counts(layers, role):
    parts = []
    for summary in layers.values():
        if summary["role"] == role:
            parts.append("/".join(str(summary[name]) for name in CLASS_NAMES))
    return ", ".join(parts)


def _share_text(share):
    return " / ".join(f"{100 * share[name]:.1f}" for name in CLASS_NAMES)


# ------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------


def main(argv=None):
    args = parse_args(argv)
    output_dir = os.path.abspath(args.output_dir)
    if os.path.isfile(output_dir):
        sys.exit(f"bench_synthesis_in_style: error: --output_dir={output_dir} is a file")
    if os.path.isdir(output_dir) and os.listdir(output_dir):
        if not args.overwrite:
            sys.exit(
                f"bench_synthesis_in_style: error: --output_dir={output_dir} is not empty; "
                "pass --overwrite or another --output_dir"
            )
        shutil.rmtree(output_dir)
    os.makedirs(output_dir, exist_ok=True)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    machine = common.machine_info()
    started = time.time()
    phases = Phases()
    gan_dir = os.path.join(output_dir, "stylegan2")
    clusters_dir = os.path.join(gan_dir, "clusters")  # where synthesize.py looks by default
    synthetic_dir = os.path.join(output_dir, "synthetic")
    seg_dirs = {
        setting: os.path.join(output_dir, f"segformer_{setting}")
        for setting in ("synthetic", "real")
    }
    common.log(f"bench_synthesis_in_style: output in {output_dir}, data in {args.data_root}")

    config = gan_config(args, gan_dir)
    data = phases.run("1 pages + GAN crops", prepare_data, config)
    gan = phases.run("2 StyleGAN2", train_gan, config)
    _sublog(
        f"StyleGAN2: {gan['steps']} steps ({gan['stopped']}), last losses "
        + ", ".join(f"{k} {v:.3g}" for k, v in gan["losses"].items())
    )

    def clusters_phase():
        runner = make_runner(args, gan_dir)
        return runner, cluster(args, runner, clusters_dir)

    runner, clusters = phases.run("3 feature clusters", clusters_phase)
    labels = phases.run("4 cluster labels", label_clusters, args, clusters)
    for layer, summary in labels["layers"].items():
        _sublog(
            f"{layer} ({summary['role']}): "
            + ", ".join(f"{name} {summary[name]}" for name in CLASS_NAMES)
        )
    synthetic = phases.run(
        "5 synthetic pairs", synthesize, args, runner, clusters, labels, synthetic_dir
    )
    _sublog(
        f"{synthetic['train']} train + {synthetic['val']} val pairs, "
        f"{synthetic['discarded']} discarded; class share "
        f"{_share_text(synthetic['class_share'])} %"
    )
    del runner

    from datasets import documents
    from datasets.pairs import json_list_pairs

    segformers = {}
    segformers["synthetic"] = phases.run(
        "6a SegFormer on synthetic pairs",
        train_segformer,
        _seg_flags(args, seg_dirs["synthetic"])
        + [
            "--dataset=json",
            f"--train_list={synthetic['train_list']}",
            f"--val_list={synthetic['val_list']}",
            "--semantic_label_path=documents",
        ]
        + class_weight_flags(
            args,
            os.path.join(output_dir, "weights_synthetic"),
            json_list_pairs(synthetic["train_list"]),
        ),
    )
    segformers["real"] = phases.run(
        "6b SegFormer on real pages",
        train_segformer,
        _seg_flags(args, seg_dirs["real"])
        + ["--dataset=documents", f"--data_root={args.data_root}", f"--num_pages={args.num_pages}"]
        + class_weight_flags(
            args,
            os.path.join(output_dir, "weights_real"),
            documents.document_pairs(data["pages_root"], "training"),
        ),
    )

    def evaluate_all():
        from datasets import documents

        pairs = documents.document_pairs(data["pages_root"], "validation")
        results = {}
        for setting, run_dir in seg_dirs.items():
            per_scale = evaluate_segmenter(
                args, run_dir, pairs, os.path.join(output_dir, "eval", setting)
            )
            results[setting] = {str(s): m for s, m in per_scale.items()}
            for s, m in per_scale.items():
                _sublog(
                    f"{setting} @ scale {s:g}: printed {_pct(m['iou']['printed_text'])}, "
                    f"handwritten {_pct(m['iou']['handwritten_text'])}, text mean "
                    f"{_pct(m['text_mean_iou'])}, pixel acc. {_pct(m['pixel_accuracy'])} %"
                )
        return results, all_background_reference(pairs)

    evaluation, reference = phases.run("7 evaluation on held-out pages", evaluate_all)

    report = {
        "args": vars(args),
        "data": data,
        "gan": gan,
        "labels": {key: labels[key] for key in ("path", "coarse", "fine", "layers")},
        "synthetic": synthetic,
        "segformers": segformers,
        "evaluation": evaluation,
        "all_background": reference,
        "minutes": phases.minutes,
        "total_minutes": (time.time() - started) / 60.0,
        "machine": machine,
        "loadavg_end": common.loadavg(),
    }
    markdown = format_report(report)
    with open(
        os.path.join(output_dir, "bench_synthesis_in_style.md"), "w", encoding="utf-8"
    ) as file:
        file.write(markdown)
    with open(
        os.path.join(output_dir, "bench_synthesis_in_style.json"), "w", encoding="utf-8"
    ) as file:
        json.dump(report, file, indent=1, default=str)
    print(markdown)
    common.log(f"wrote {output_dir}/bench_synthesis_in_style.md")
    return report


if __name__ == "__main__":
    main()
