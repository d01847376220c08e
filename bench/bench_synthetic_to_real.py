"""Synthetic-to-real on the built-in scenes: does SPADE data help a SegFormer on real images?

Run from the repository root:

    python -m bench.bench_synthetic_to_real            # ~1 hour on 2 CPU cores
    python -m bench.bench_synthetic_to_real --quick    # a few minutes: checks that it all works

Steps (every one at a small resolution, --scenes_size px, default 64):
1. generate the built-in scenes (--num_scenes training scenes, a tenth as many held out);
2. train SPADE (tiny preset; --spade_steps, stopped early by --spade_minutes) and export it;
3. synthesize one image per real training label map with the exported SPADE;
4. train the tiny SegFormer three ways on the same budget (--seg_steps, --batch_size, seed):
   real only, synthetic only, real + synthetic (half of every batch from each), and evaluate
   each on the held-out real scenes (evaluation/synthetic_to_real.py);
5. FID / KID of the SPADE images against the real training images (InceptionV3: random
   weights unless --inception_weights gives ImageNet ones; random-weight numbers only compare
   within this run and the output says so), and the semantic consistency of the SPADE images:
   the real-only SegFormer segments them and is scored against the label maps they were
   synthesized from; the same segmenter on the real training images is the reference.

Writes <output_dir>/bench_synthetic_to_real.md (the table for the README, with the settings
used), bench_synthetic_to_real.json, and everything evaluate.py writes under
<output_dir>/synthetic_to_real/ and <output_dir>/synthesis.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

# (full, quick) defaults; the full setting is sized for about an hour on 2 CPU cores.
DEFAULTS = {
    "num_scenes": (300, 16),
    "scenes_size": (64, 32),
    "spade_steps": (100000, 20),
    "spade_minutes": (25.0, 0.0),
    "seg_steps": (1000, 40),  # quick: past the tiny preset's 20 warm-up steps
    "batch_size": (8, 4),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_synthetic_to_real", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="Tiny setting (a few minutes): checks the pipeline, no conclusions.",
    )
    for name, (full, quick) in DEFAULTS.items():
        parser.add_argument(
            f"--{name}",
            type=type(full),
            default=None,
            help=f"default {full} ({quick} with --quick)",
        )
    parser.add_argument(
        "--data_root",
        default=os.path.join(tempfile.gettempdir(), "semsynth_bench_data"),
        help="Where the scenes are generated (reused between runs).",
    )
    parser.add_argument("--output_dir", default="outputs/bench_synthetic_to_real")
    parser.add_argument(
        "--inception_weights",
        default="random",
        help="random (default; numbers not comparable to published FIDs), "
        "imagenet, or a local InceptionV3 notop .h5 file.",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--overwrite", action="store_true", help="Replace an earlier run in --output_dir."
    )
    args = parser.parse_args(argv)
    for name, (full, quick) in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    return args


def _scene_flags(args):
    return [
        "--dataset=scenes",
        f"--data_root={args.data_root}",
        f"--num_scenes={args.num_scenes}",
        f"--scenes_size={args.scenes_size}",
        f"--crop_size={args.scenes_size}",
        f"--batch_size={args.batch_size}",
        f"--seed={args.seed}",
    ]


def train_spade(args, run_dir):
    """Tiny SPADE on the scenes at --scenes_size; returns (export path, steps trained)."""
    import flags as cli
    from training import loop

    size = args.scenes_size
    config = cli.config_from_args(
        [
            "--model=spade",
            "--preset=tiny",
            *_scene_flags(args),
            f"--load_size={size + size // 8}",
            f"--encoder_input_size={size}",
            f"--max_steps={args.spade_steps}",
            f"--max_minutes={args.spade_minutes}",
            f"--checkpoint_dir={run_dir}",
            "--export=true",
            "--save_img_freq=500",
        ]
    )
    result = loop.train(config)
    return result["export"], result["step"]


def _real_consistency(segmenter_path, pairs):
    """The real-only segmenter on the real training images: the reference for consistency."""
    from evaluation.semantic_consistency import semantic_consistency
    from models.segformer.export import load_segmenter

    metrics = semantic_consistency(load_segmenter(saved_model=segmenter_path), pairs)
    return {
        "miou": metrics["miou"],
        "pixel_accuracy": metrics["pixel_accuracy"],
        "num_images": metrics["num_images"],
    }


def _percent(value):
    return "-" if value is None else f"{100.0 * value:.1f}"


def format_report(report) -> str:
    """The markdown the README gets: settings, the three settings' table, synthesis metrics."""
    args = report["args"]
    s2r = report["synthetic_to_real"]
    synthesis = report["synthesis"]
    lines = [
        f"Built-in scenes at {args['scenes_size']} px: {args['num_scenes']} training scenes, "
        f"{s2r['num_val_pairs']} held-out; SPADE `tiny` trained {report['spade_steps']} steps "
        f"(batch {args['batch_size']}); SegFormer `tiny` {args['seg_steps']} steps, batch "
        f"{args['batch_size']}, seed {args['seed']} for each setting. "
        f"{'Quick setting (a smoke run, no conclusions). ' if args['quick'] else ''}"
        f"{report['machine']}, {report['date']}, {report['total_minutes']:.0f} min in all.",
        "",
        "| SegFormer trained on | training pairs | mIoU on real (%) | pixel accuracy (%) |",
        "|---|---:|---:|---:|",
    ]
    titles = {
        "real": "real only",
        "synthetic": "SPADE only",
        "mixed": "real + SPADE (1:1 per batch)",
    }
    for setting, values in s2r["settings"].items():
        lines.append(
            f"| {titles[setting]} | {values['num_train_pairs']} | "
            f"{_percent(values['miou'])} | {_percent(values['pixel_accuracy'])} |"
        )
    consistency = synthesis["semantic_consistency"]
    reference = report["real_consistency"]
    lines += [
        "",
        "| SPADE images | value |",
        "|---|---:|",
        f"| FID ({synthesis['num_synth']} vs {synthesis['num_real']} real images) | "
        f"{synthesis['fid']:.2f} |",
        f"| KID x 1e3 | {1e3 * synthesis['kid_mean']:.2f} +- {1e3 * synthesis['kid_std']:.2f} |",
        f"| semantic consistency mIoU / pixel acc. (%) | {_percent(consistency['miou'])} / "
        f"{_percent(consistency['pixel_accuracy'])} |",
        f"| same segmenter on the real images (reference) | {_percent(reference['miou'])} / "
        f"{_percent(reference['pixel_accuracy'])} |",
        "",
        f"Inception weights: {args['inception_weights']}."
        + (
            ""
            if synthesis["comparable_to_published"]
            else " RANDOM weights: FID / KID compare sets within this run only and are NOT "
            "comparable to published FIDs."
        ),
    ]
    lines += [f"Note: {note}" for note in synthesis["notes"] if "RANDOM" not in note]
    lines.append(
        "Command: `python -m bench.bench_synthetic_to_real"
        + "".join(f" {arg}" for arg in report.get("argv", ["--quick"] if args["quick"] else []))
        + "`; phases (min): "
        + ", ".join(f"{name} {minutes:.1f}" for name, minutes in report["minutes"].items())
    )
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    output_dir = args.output_dir
    if os.path.isdir(output_dir) and os.listdir(output_dir):
        if not args.overwrite:
            sys.exit(
                f"bench_synthetic_to_real: error: --output_dir={output_dir} is not empty; "
                "pass --overwrite or another --output_dir"
            )
        shutil.rmtree(output_dir)
    os.makedirs(output_dir)
    started = time.time()
    minutes = {}

    def phase(name, since):
        minutes[name] = (time.time() - since) / 60.0
        print(f"[bench] {name}: {minutes[name]:.1f} min", flush=True)

    import datasets
    from evaluation import report
    from evaluation import synthetic_to_real as s2r

    since = time.time()
    real_pairs = datasets.resolve_pairs(
        "scenes",
        "training",
        data_root=args.data_root,
        scenes_size=args.scenes_size,
        num_scenes=args.num_scenes,
    )
    phase("scenes", since)

    since = time.time()
    spade_export, spade_steps = train_spade(args, os.path.join(output_dir, "spade"))
    phase("SPADE", since)

    since = time.time()
    s2r_dir = os.path.join(output_dir, "synthetic_to_real")
    import flags as cli

    train_args = ["--preset=tiny", *_scene_flags(args), f"--max_steps={args.seg_steps}"]
    results = s2r.run_synthetic_to_real(
        cli.synthetic_to_real_config(train_args),
        train_args,
        s2r_dir,
        spade_model=spade_export,
    )
    phase("synthesis + 3 SegFormers", since)

    since = time.time()
    synthetic = os.path.join(s2r_dir, s2r.SYNTHETIC_DIR)
    real_image_dir = os.path.dirname(real_pairs[0][0])
    segmenter = results["settings"]["real"]["export"]
    synthesis = report.evaluate_synthesis(
        f"{synthetic}/images",
        real_image_dir,
        label_dir=f"{synthetic}/labels",
        segmenter=segmenter,
        inception_weights=args.inception_weights,
        seed=args.seed,
        output=os.path.join(output_dir, "synthesis.json"),
    )
    real_consistency = _real_consistency(segmenter, real_pairs)
    phase("FID / KID / consistency", since)

    report = {
        "args": vars(args),
        "argv": sys.argv[1:],  # the command line as given, for the report
        "spade_steps": spade_steps,
        "synthetic_to_real": {key: results[key] for key in ("settings", "num_val_pairs")},
        "synthesis": synthesis,
        "real_consistency": real_consistency,
        "minutes": minutes,
        "total_minutes": (time.time() - started) / 60.0,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "date": datetime.date.today().isoformat(),
    }
    markdown = format_report(report)
    with open(os.path.join(output_dir, "bench_synthetic_to_real.md"), "w") as file:
        file.write(markdown)
    with open(os.path.join(output_dir, "bench_synthetic_to_real.json"), "w") as file:
        json.dump(report, file, indent=1, default=str)
    print()
    print(markdown)
    print(f"Wrote {output_dir}/bench_synthetic_to_real.md")
    return report


if __name__ == "__main__":
    main()
