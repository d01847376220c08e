"""OSMIS on the built-in one-shot scene: train, generate pairs, and score the pairs.

Run from the repository root:

    python -m bench.bench_osmis            # the recorded setting (~25 min on 2 CPU cores)
    python -m bench.bench_osmis --quick    # a few minutes: checks that it all works

Steps, all at a small CPU scale (--scenes_size px high, 3:2, default 64 x 96):
1. train OSMIS on built-in training scene --scene_index (image + label map) with the tiny
   preset widened to --ch (G widths 8x .. 1x ch), --osmis_steps iterations or --osmis_minutes,
   batch 5 as in the paper, and an EMA decay for a short run (--ema_decay; the paper's 0.9999
   would leave the EMA generator near its random start after a few thousand steps);
2. generate --num_images pairs with synthesize.py's function (datasets.synthetic_pairs format);
3. score them:
   (a) mask-image alignment: a SegFormer (tiny) trained on the real pair alone, with the
       standard augmentation of the segmentation pipeline (random scale 0.5-2, crop, flip,
       photometric distortion), segments the generated images; mIoU against the generated
       masks (the same segmenter on its own training pair is the ceiling);
   (b) diversity: LPIPS between generated samples (0 for the trivial generator that copies the
       real image) and each sample's LPIPS to the real image; with RANDOM VGG weights and
       uniform linear layers (offline): comparable within this run only. SIFID (random
       Inception) comes with it from evaluate.py --mode=one_shot's code;
   (c) downstream: a SegFormer trained on the generated pairs vs one trained on the single
       real pair (standard augmentation), same budget (--seg_steps, batch 8), scored on
       --num_heldout held-out built-in scenes (validation seeds) at the same size: their
       classes mapped to the one-shot scene's classes, pixels of other classes ignored; scenes
       with less than half of their pixels in those classes are skipped;
   (d) G and D step times (the trainer's own _g_step / _d_step under tf.function, batch 5)
       beside a float32 matmul yardstick measured in the same process between the steps
       (bench/common.py), and their convolution FLOPs as a fraction of its rate.

Writes <output_dir>/bench_osmis.md (the tables of docs/osmis.md), bench_osmis.json, the OSMIS
run (osmis_run/), the pairs (pairs/), the one-shot evaluation with its sheet.png (one_shot/)
and the SegFormer runs (segformer/). The machine may be shared: the report gives the load.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from bench.common import (  # noqa: E402  (after the sys.path entry for a direct run)
    MatmulTimer,
    cpu_snapshot,
    dense_flops,
    loadavg,
    log,
    machine_info,
    median,
    others_cpu_share,
    profile_flops,
)

# (full, quick) defaults; the full setting takes ~25 minutes on 2 shared CPU cores.
DEFAULTS = {
    "scenes_size": (64, 32),
    "ch": (8, 4),
    "osmis_steps": (3000, 10),
    "osmis_minutes": (18.0, 0.0),
    "ema_decay": (0.995, 0.9),
    "num_images": (100, 6),
    "seg_steps": (400, 25),
    "num_heldout": (40, 4),
    "timing_steps": (5, 1),
    "matmul_size": (1024, 256),
}
BATCH = 5  # OSMIS batch (the paper's)
SEG_BATCH = 8
SEG_CROP = 64  # SegFormer training crop (a multiple of 32)
SHEET_PAIRS = 7  # generated pairs beside the real one in sheet.png (two rows of 4)
MIN_LABELLED = 0.5  # held-out scenes need this share of pixels in the one-shot classes


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_osmis", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="Tiny setting (minutes): checks the pipeline only."
    )
    for name, (full, quick) in DEFAULTS.items():
        parser.add_argument(
            f"--{name}",
            type=type(full),
            default=None,
            help=f"default {full} ({quick} with --quick)",
        )
    parser.add_argument("--scene_index", type=int, default=0, help="The one-shot scene.")
    parser.add_argument(
        "--osmis_flags",
        default="",
        help='more train.py flags for the OSMIS run, one string, e.g. "--noaug_colour '
        '--lambda_diversity=0.05"',
    )
    parser.add_argument("--output_dir", default="outputs/bench_osmis")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--overwrite", action="store_true", help="Replace an earlier run in --output_dir."
    )
    args = parser.parse_args(argv)
    for name, (full, quick) in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.scenes_size < 16 or args.num_images < 2 or args.num_heldout < 1:
        parser.error("--scenes_size must be >= 16, --num_images >= 2, --num_heldout >= 1")
    return args


# === 1. OSMIS ==================================================================================


def osmis_config(args, run_dir):
    """The bench's OSMIS config: train.py flags, then the fields without a flag (widths, the
    scene, the Bernoulli warm-up) set on the tiny preset's values."""
    import flags as cli

    size = args.scenes_size
    config = cli.config_from_args(
        [
            "--model=osmis",
            "--preset=tiny",
            f"--scenes_size={size}",
            f"--max_size={size * 3 // 2}",
            "--z_dim=64",
            f"--batch_size={BATCH}",
            f"--ema_decay={args.ema_decay}",
            f"--max_steps={args.osmis_steps}",
            f"--max_minutes={args.osmis_minutes}",
            f"--seed={args.seed}",
            f"--checkpoint_dir={run_dir}",
            f"--save_img_freq={max(1, args.osmis_steps // 4)}",
            f"--save_model_freq={max(1, args.osmis_steps // 4)}",
            "--progress=false",
            *shlex.split(args.osmis_flags),
        ]
    )
    return config.replace(
        ch_g=args.ch,
        ch_d=args.ch,
        scene_index=args.scene_index,
        bernoulli_warmup=max(1, args.osmis_steps // 10),
    )


def train_osmis(args, run_dir):
    from training import loop

    config = osmis_config(args, run_dir)
    result = loop.train(config)
    model = result["model"]
    return config, {
        "steps": int(result["step"]),
        "stopped": result.get("stopped"),
        "losses_last": {k: float(v) for k, v in result["losses"].items()},
        "parameters": model.parameter_counts(),
        "image_size": list(model.image_size),
        "num_blocks": model.num_blocks,
        "export": result["export"],
    }


# === 3. data in the one-shot scene's classes =====================================================


def class_table(class_ids):
    """[256] ADE20K id -> one-shot class 0..K-1, every other id -> 255 (ignored)."""
    import numpy as np

    table = np.full(256, 255, np.uint8)
    table[np.asarray(class_ids)] = np.arange(len(class_ids), dtype=np.uint8)
    return table


def write_label_set(path, class_ids):
    """The one-shot scene's K classes as a label set JSON (ADE20K names and colours)."""
    from semantic_labels import load_label_set

    ade = load_label_set("ade20k")
    spec = {
        "name": "osmis_scene",
        "description": f"the classes of the bench's one-shot scene (ADE20K ids {class_ids})",
        "dontcare_id": None,
        "classes": [
            {"id": k, "name": ade.names[i], "color": [int(c) for c in ade.colors[i]]}
            for k, i in enumerate(class_ids)
        ],
    }
    with open(path, "w", encoding="utf-8") as file:
        json.dump(spec, file, indent=1)
    return [entry["name"] for entry in spec["classes"]]


def write_list(path, pairs):
    with open(path, "w", encoding="utf-8") as file:
        json.dump({"pairs": [{"image": i, "label": m} for i, m in pairs]}, file, indent=1)
    return path


def remap_pairs(pairs, table, out_dir):
    """Copies of the masks of (image, mask) pairs in the one-shot classes; new pair list."""
    import numpy as np
    from PIL import Image

    os.makedirs(out_dir, exist_ok=True)
    remapped = []
    for index, (image_path, mask_path) in enumerate(pairs):
        mask = table[np.asarray(Image.open(mask_path))]
        path = os.path.join(out_dir, f"{index:06d}.png")
        Image.fromarray(mask).save(path)
        remapped.append((os.path.abspath(image_path), os.path.abspath(path)))
    return remapped


def heldout_scenes(args, size, table, out_dir):
    """Validation scenes at `size` with most pixels in the one-shot classes, remapped."""
    import numpy as np
    from PIL import Image

    from datasets.scenes import render_scene, scene_seed

    os.makedirs(out_dir, exist_ok=True)
    pairs, shares, index = [], [], 0
    while len(pairs) < args.num_heldout and index < 20 * args.num_heldout:
        image, label = render_scene(scene_seed(args.seed, "validation", index), *size)
        mask = table[label]
        share = float(np.mean(mask != 255))
        index += 1
        if share < MIN_LABELLED:
            continue
        image_path = os.path.join(out_dir, f"scene_{index - 1:04d}.png")
        mask_path = os.path.join(out_dir, f"scene_{index - 1:04d}_mask.png")
        Image.fromarray(image).save(image_path)
        Image.fromarray(mask).save(mask_path)
        pairs.append((image_path, mask_path))
        shares.append(share)
    return pairs, {"scenes_tried": index, "labelled_share_mean": float(np.mean(shares))}


# === SegFormer ===================================================================================


def train_segformer(args, train_list, label_set_path, run_dir):
    import flags as cli
    from models.segformer.labels import resolve_labels
    from training import loop

    config = cli.config_from_args(
        [
            "--model=segformer",
            "--preset=tiny",
            "--dataset=json",
            f"--train_list={train_list}",
            f"--semantic_label_path={label_set_path}",
            f"--crop_size={SEG_CROP}",
            f"--batch_size={SEG_BATCH}",
            f"--max_steps={args.seg_steps}",
            "--eval_freq=0",
            "--export=false",
            "--progress=false",
            f"--seed={args.seed}",
            f"--checkpoint_dir={run_dir}",
        ]
    )
    _, label_map, num_classes = resolve_labels(config)
    model = loop.train(config)["model"].segformer
    return model, label_map, num_classes


def score(model, pairs, label_map, num_classes, names):
    """mIoU, pixel accuracy and per-class IoU of a SegFormer on pairs at their own size."""
    import math

    from evaluation.synthetic_to_real import evaluate_segformer

    metrics = evaluate_segformer(
        model, pairs, num_classes=num_classes, label_map=label_map, size=None, batch_size=8
    )

    def number(value):
        value = float(value)
        return value if math.isfinite(value) else None

    return {
        "miou": number(metrics["miou"]),
        "pixel_accuracy": number(metrics["pixel_accuracy"]),
        "iou": {name: number(v) for name, v in zip(names, metrics["iou"])},
        "pairs": len(pairs),
    }


# === (d) step times ==============================================================================


def time_steps(args, config, layout, num_classes):
    """Median G / D step times (batch 5) of a fresh OSMISGAN of the run's configuration, the
    matmul yardstick sampled between them, and their dense FLOPs."""
    import tensorflow as tf

    from models.osmis.inputs import load_input
    from models.osmis.trainer import OSMISGAN

    one_shot = load_input(config)
    gan = OSMISGAN.from_run_config(config, layout=layout, num_classes=num_classes)
    image = tf.constant(one_shot.frames[[0] * BATCH], tf.float32) / 127.5 - 1.0  # [B, H, W, 3]
    mask = tf.one_hot(tf.constant(one_shot.masks[[0] * BATCH], tf.int32), num_classes)
    # A Python batch size keeps every shape static, so the profiler counts every op's FLOPs.
    g_step = tf.function(lambda: gan._g_step(BATCH))
    d_step = tf.function(lambda x, m: gan._d_step(x, m))
    calls = {"G step": lambda: g_step(), "D step": lambda: d_step(image, mask)}
    for fn in calls.values():  # traces
        tf.nest.map_structure(lambda t: t.numpy(), fn())
    timer = MatmulTimer(args.matmul_size, "float32")
    rates, times = [timer.gflops()], {label: [] for label in calls}
    before = cpu_snapshot()
    for _ in range(args.timing_steps):
        for label, fn in calls.items():
            start = time.perf_counter()
            tf.nest.map_structure(lambda t: t.numpy(), fn())
            times[label].append(time.perf_counter() - start)
            rates.append(timer.gflops())
    others = others_cpu_share(before, cpu_snapshot())
    rate = median(rates)
    graphs = {
        "G step": g_step.get_concrete_function().graph,
        "D step": d_step.get_concrete_function(image, mask).graph,
    }
    steps = {}
    for label, graph in graphs.items():
        seconds = median(times[label])
        flops = dense_flops(profile_flops(graph)["by_op"])
        steps[label] = {
            "times_s": times[label],
            "median_s": seconds,
            "dense_gflop": flops / 1e9,
            "gflops": flops / seconds / 1e9,
            "fraction_of_matmul": flops / seconds / 1e9 / rate,
        }
    return {
        "steps": steps,
        "matmul_n": args.matmul_size,
        "matmul_gflops": rate,
        "matmul_samples_gflops": rates,
        "others_cpu_share": others,
    }


# === Report ======================================================================================


def _pct(value):
    return "-" if value is None else f"{100.0 * value:.1f}"


def format_report(report) -> str:
    args, osmis = report["args"], report["osmis"]
    h, w = osmis["image_size"]
    a, c = report["alignment"], report["downstream"]
    one_shot, timing = report["one_shot"], report["timing"]
    load = report["machine"]["loadavg_start"]
    lines = [
        f"One-shot scene: built-in training scene {args['scene_index']} at {h} x {w} px "
        f"({len(report['classes'])} classes: {', '.join(report['classes'])}). OSMIS: tiny preset "
        f"widened to ch {args['ch']} (G {osmis['parameters']['generator']:,} / D "
        f"{osmis['parameters']['discriminator']:,} parameters, {osmis['num_blocks']} generator "
        f"blocks), batch {BATCH}, EMA decay {args['ema_decay']}, {osmis['steps']} iterations "
        f"in {report['minutes']['osmis']:.1f} min (limit {args['osmis_steps']} steps / "
        f"{args['osmis_minutes']:g} min); {report['num_generated']} generated pairs. SegFormer "
        f"tiny: {args['seg_steps']} steps, batch {SEG_BATCH}, {SEG_CROP} px crops, standard "
        "augmentation."
        + (f" More OSMIS flags: `{args['osmis_flags']}`." if args.get("osmis_flags") else "")
        + (" Quick setting (a smoke run, no conclusions)." if args["quick"] else ""),
        f"{report['machine']['cpu_model']}, {report['machine']['usable_cpus']} cores, "
        f"{report['date']}, {report['total_minutes']:.0f} min in all; timings taken UNDER LOAD "
        f"(a shared machine: load average {load[0]:.1f} at the start, other processes used "
        f"{_pct(report['others_cpu_share'])} % of the CPU time during the run)."
        if load
        else "",
        "",
        "(a) Mask-image alignment: SegFormer trained on the real pair alone, applied to the "
        "generated images, scored against the generated masks.",
        "",
        "| segmenter trained on the real pair, tested on | pairs | mIoU (%) | pixel accuracy (%) |",
        "|---|---:|---:|---:|",
        f"| the generated pairs (their masks as truth) | {a['generated']['pairs']} | "
        f"{_pct(a['generated']['miou'])} | {_pct(a['generated']['pixel_accuracy'])} |",
        f"| its own training pair (ceiling) | 1 | {_pct(a['real']['miou'])} | "
        f"{_pct(a['real']['pixel_accuracy'])} |",
        "",
        "(b) Diversity and realism (RANDOM-weight VGG16 LPIPS and InceptionV3 SIFID, offline: "
        "comparable within this run only, NOT to published values).",
        "",
        "| metric | generated pairs | trivial copy of the real image |",
        "|---|---:|---:|",
        f"| LPIPS between samples (diversity) | {one_shot['lpips_diversity']['mean']:.4f} | "
        f"{report['copy_lpips']:.4f} |",
        f"| LPIPS to the real image, mean / min | "
        f"{one_shot['lpips_distance_to_train']['mean']:.4f} / "
        f"{one_shot['lpips_distance_to_train']['min']:.4f} | 0 / 0 |",
        f"| SIFID (pool1) | {one_shot['sifid']['pool1']['mean']:.4g} | 0 |",
        "",
        f"(c) Downstream: SegFormer on {c['heldout']['pairs']} held-out built-in scenes "
        f"(validation seeds; classes mapped to the one-shot scene's, other pixels ignored: "
        f"{_pct(c['heldout']['labelled_share_mean'])} % of pixels scored).",
        "",
        "| SegFormer trained on | training pairs | mIoU (%) | pixel accuracy (%) |",
        "|---|---:|---:|---:|",
    ]
    for key, title in (
        ("real", "the single real pair, standard augmentation"),
        ("generated", "OSMIS pairs, standard augmentation"),
    ):
        row = c[key]
        lines.append(
            f"| {title} | {row['train_pairs']} | {_pct(row['miou'])} | "
            f"{_pct(row['pixel_accuracy'])} |"
        )
    names = report["classes"]
    lines += [
        "",
        "Per-class IoU (%) on the held-out scenes: "
        + "; ".join(
            f"{name} {_pct(c['real']['iou'][name])} (real) / {_pct(c['generated']['iou'][name])} "
            "(OSMIS)"
            for name in names
        )
        + ".",
        "",
        f"(d) Step times (batch {BATCH}, float32, medians of {args['timing_steps']}), beside a "
        f"{timing['matmul_n']}^2 float32 matmul at {timing['matmul_gflops']:.1f} GFLOP/s in "
        "the same process.",
        "",
        "| step | time (s) | images/s | conv GFLOP | GFLOP/s | of the matmul rate |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, step in timing["steps"].items():
        lines.append(
            f"| {label} | {step['median_s']:.3f} | {BATCH / step['median_s']:.1f} | "
            f"{step['dense_gflop']:.2f} | {step['gflops']:.1f} | "
            f"{100 * step['fraction_of_matmul']:.0f} % |"
        )
    lines += [
        "",
        "Command: `python -m bench.bench_osmis"
        + "".join(f" {arg}" for arg in report["argv"])
        + "`; phases (min): "
        + ", ".join(f"{name} {minutes:.1f}" for name, minutes in report["minutes"].items()),
    ]
    return "\n".join(line for line in lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    output_dir = args.output_dir
    if os.path.isdir(output_dir) and os.listdir(output_dir):
        if not args.overwrite:
            sys.exit(
                f"bench_osmis: error: --output_dir={output_dir} is not empty; pass --overwrite "
                "or another --output_dir"
            )
        shutil.rmtree(output_dir)
    os.makedirs(output_dir, exist_ok=True)
    machine = machine_info()
    started, minutes, cpu_before = time.time(), {}, cpu_snapshot()

    def phase(name, since):
        minutes[name] = (time.time() - since) / 60.0
        log(f"{name}: {minutes[name]:.1f} min")

    import numpy as np
    from PIL import Image

    from datasets.pairs import json_list_pairs
    from evaluation import lpips as lpips_lib
    from evaluation import one_shot as one_shot_lib
    from models.osmis import inputs as inputs_lib
    from models.osmis.inference import synthesize_osmis_pairs

    since = time.time()
    run_dir = os.path.join(output_dir, "osmis_run")
    config, osmis = train_osmis(args, run_dir)
    phase("osmis", since)

    since = time.time()
    pairs_dir = os.path.join(output_dir, "pairs")
    synthesize_osmis_pairs(
        run_dir, pairs_dir, args.num_images, batch_size=10, seed=args.seed, progress=False
    )
    record = inputs_lib.read_record(run_dir)
    layout = inputs_lib.Layout.from_dict(record["layout"])
    class_ids = record["class_ids"]
    real_image = os.path.join(run_dir, "input", "image.png")
    real_mask = os.path.join(run_dir, "input", "mask.png")
    phase("synthesis", since)

    # (b) SIFID, LPIPS diversity / distance to train, and the sheet: evaluate.py's code.
    since = time.time()
    one_shot = one_shot_lib.run_one_shot(
        pairs_dir,
        real_image,
        real_mask,
        os.path.join(output_dir, "one_shot"),
        inception_weights="random",
        lpips_backbone_weights="random",
        sheet_pairs=SHEET_PAIRS,
        seed=args.seed,
        log=log,
    )
    real = np.asarray(Image.open(real_image))[None]  # [1, H, W, 3]
    lpips = lpips_lib.LPIPS("random", "uniform", seed=args.seed)
    copy_lpips = float(lpips(real, real)[0])  # the trivial copy: every sample is the real image
    phase("one-shot metrics", since)

    # The segmenters' data, in the one-shot scene's K classes.
    since = time.time()
    data = os.path.join(output_dir, "segformer", "data")
    os.makedirs(data, exist_ok=True)
    table = class_table(class_ids)
    label_set_path = os.path.join(data, "classes.json")
    names = write_label_set(label_set_path, class_ids)
    real_pairs = remap_pairs([(real_image, real_mask)], table, os.path.join(data, "real"))
    generated_all = json_list_pairs(os.path.join(pairs_dir, "train.json"))
    generated_all += json_list_pairs(os.path.join(pairs_dir, "val.json"))
    generated = remap_pairs(sorted(generated_all), table, os.path.join(data, "generated"))
    heldout, heldout_info = heldout_scenes(
        args, (layout.height, layout.width), table, os.path.join(data, "heldout")
    )
    lists = {
        "real": write_list(os.path.join(data, "real.json"), real_pairs),
        "generated": write_list(os.path.join(data, "generated.json"), generated),
    }
    runs = {}
    for key in ("real", "generated"):
        runs[key] = train_segformer(
            args, lists[key], label_set_path, os.path.join(output_dir, "segformer", key)
        )
    phase("SegFormers", since)

    since = time.time()
    real_model, label_map, num_classes = runs["real"]
    alignment = {
        "generated": score(real_model, generated, label_map, num_classes, names),
        "real": score(real_model, real_pairs, label_map, num_classes, names),
    }
    downstream = {"heldout": {"pairs": len(heldout), **heldout_info}}
    for key, train_pairs in (("real", real_pairs), ("generated", generated)):
        model = runs[key][0]
        downstream[key] = {
            **score(model, heldout, label_map, num_classes, names),
            "train_pairs": len(train_pairs),
        }
    phase("scoring", since)

    since = time.time()
    timing = time_steps(args, config, layout, len(class_ids))
    phase("step times", since)

    shutil.copy(
        os.path.join(output_dir, "one_shot", "sheet.png"), os.path.join(output_dir, "sheet.png")
    )
    report = {
        "args": vars(args),
        "argv": sys.argv[1:] if argv is None else list(argv),
        "machine": machine,
        "date": time.strftime("%Y-%m-%d"),
        "osmis": osmis,
        "classes": names,
        "class_ids": class_ids,
        "num_generated": len(generated),
        "one_shot": {
            key: one_shot[key]
            for key in ("sifid", "lpips_diversity", "lpips_distance_to_train", "notes")
        },
        "copy_lpips": copy_lpips,
        "alignment": alignment,
        "downstream": downstream,
        "timing": timing,
        "minutes": minutes,
        "total_minutes": (time.time() - started) / 60.0,
        "others_cpu_share": others_cpu_share(cpu_before, cpu_snapshot()),
        "loadavg_end": loadavg(),
    }
    markdown = format_report(report)
    with open(os.path.join(output_dir, "bench_osmis.md"), "w", encoding="utf-8") as file:
        file.write(markdown)
    with open(os.path.join(output_dir, "bench_osmis.json"), "w", encoding="utf-8") as file:
        json.dump(report, file, indent=1, default=str)
    print(markdown)
    print(f"Wrote {output_dir}/bench_osmis.md, bench_osmis.json and sheet.png")
    return report


if __name__ == "__main__":
    main()
