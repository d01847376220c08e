"""Semantic Palette on the built-in streets at 32 x 64: proportion control, downstream mIoU and
step times.

Run from the repository root:

    python -m bench.bench_palette            # 8 + 8 min of GAN training, then 4 SegFormers
    python -m bench.bench_palette --quick    # a few minutes: checks that it all works

Steps (every one at 32 x 64, the 1:2 of Cityscapes):
1. generate the built-in streets (--num_streets training streets, a tenth as many held out);
2. train the layout GAN (tiny widths, 4 levels 4x8 .. 32x64, --fade_steps / --stable_steps per
   level, stopped at --layout_minutes) with its palette estimator, and a SPADE (tiny, 32 x 64,
   --spade_minutes) on the same streets; export SPADE;
3. proportion control: --num_eval_palettes palettes drawn from the estimator -> layouts, once
   with the palette and once with the palette input zeroed (the same generator and z): MAE and
   Jensen-Shannon divergence between the target and the layout's achieved proportions;
4. downstream: the tiny SegFormer, --seg_steps steps each, trained on real only / Palette pairs
   only (generated online, palette -> layout -> image) / real + Palette (1:1 per batch) /
   real + SPADE images of the real training layouts (1:1), evaluated on the held-out streets
   (evaluation/synthetic_to_real.py);
5. step times: the layout GAN's training step at each level, and beside them the end-to-end
   (stage=e2e) step at the last level: the layout critic, SPADE's discriminator and the
   unconditional image discriminator, then one generator step over the layout generator and
   SPADE (models/palette/e2e_trainer.py; the bench's layout and SPADE settings, fresh weights:
   the time does not depend on them); batch --batch_size, with the matmul yardstick of
   bench/bench_spade.py (a 1024^2 float32 matmul's GFLOP/s, measured right before and after
   the timed steps: the load they saw).

Writes <output_dir>/bench_palette.md (the tables for the docs, with the settings used) and
bench_palette.json, and keeps the runs under <output_dir>.
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

from bench.common import MatmulTimer, loadavg, median  # noqa: E402

HEIGHT, WIDTH, NUM_LEVELS = 32, 64, 4  # 4x8, 8x16, 16x32, 32x64
MATMUL_N = 1024
# (full, quick) defaults; the full setting trains each GAN for about 8 minutes on 2 CPU cores.
DEFAULTS = {
    "num_streets": (200, 16),
    "fade_steps": (150, 3),
    "stable_steps": (150, 3),
    "layout_steps": (100000, 30),
    "layout_minutes": (8.0, 0.0),
    "spade_steps": (100000, 10),
    "spade_minutes": (8.0, 0.0),
    "seg_steps": (600, 24),  # quick: past the tiny preset's 20 warm-up steps
    "batch_size": (8, 4),
    "num_eval_palettes": (256, 16),
    "timing_steps": (10, 2),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_palette", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="Tiny setting: checks the pipeline, no conclusions."
    )
    for name, (full, quick) in DEFAULTS.items():
        parser.add_argument(
            f"--{name}", type=type(full), default=None, help=f"default {full} ({quick} quick)"
        )
    parser.add_argument(
        "--data_root",
        default=os.path.join(tempfile.gettempdir(), "semsynth_bench_data"),
        help="Where the streets are generated (reused between runs).",
    )
    parser.add_argument("--output_dir", default="outputs/bench_palette")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="Replace an earlier run.")
    args = parser.parse_args(argv)
    for name, (full, quick) in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    return args


def _street_flags(args):
    return [
        "--dataset=streets",
        "--semantic_label_path=cityscapes",
        f"--data_root={args.data_root}",
        f"--num_streets={args.num_streets}",
        f"--streets_height={HEIGHT}",
        f"--streets_width={WIDTH}",
        f"--seed={args.seed}",
    ]


def layout_config(args, run_dir):
    import flags as cli

    return cli.config_from_args(
        [
            "--model=palette",
            "--preset=tiny",
            *_street_flags(args),
            f"--num_levels={NUM_LEVELS}",
            f"--fade_steps={args.fade_steps}",
            f"--stable_steps={args.stable_steps}",
            f"--max_steps={args.layout_steps}",
            f"--max_minutes={args.layout_minutes}",
            f"--batch_size={args.batch_size}",
            f"--save_img_freq={args.fade_steps + args.stable_steps}",
            f"--checkpoint_dir={run_dir}",
            "--export=false",
        ]
    )


def spade_config(args, run_dir):
    import flags as cli

    return cli.config_from_args(
        [
            "--model=spade",
            "--preset=tiny",
            *_street_flags(args),
            f"--img_height={HEIGHT}",
            f"--img_width={WIDTH}",
            f"--load_size={HEIGHT}",
            f"--batch_size={args.batch_size}",
            f"--max_steps={args.spade_steps}",
            f"--max_minutes={args.spade_minutes}",
            f"--checkpoint_dir={run_dir}",
            "--save_img_freq=500",
            "--export=true",
        ]
    )


def train_spade(args, run_dir):
    """(export path, steps trained, SPADEConfig) of the bench's SPADE."""
    from training import loop

    config = spade_config(args, run_dir)
    result = loop.train(config)
    return result["export"], int(result["step"]), config


def proportion_control(layout_run, num_palettes, seed):
    """MAE / JS of target vs achieved proportions, with the palette and with it zeroed."""
    import numpy as np

    from evaluation import palette_metrics as pm
    from models.palette.export import LayoutGenerator
    from models.palette.inference import generator_label_set, load_palette_estimator

    generator = LayoutGenerator(layout_run)
    label_set = generator_label_set(generator)
    estimator = load_palette_estimator(layout_run, label_set)
    rng = np.random.default_rng([seed, 5])
    targets = estimator.sample(num_palettes, rng)  # [P, C]
    z = rng.standard_normal((num_palettes, generator.z_dim)).astype(np.float32)
    rows = {}
    for name, palettes in (("palette", targets), ("palette zeroed", np.zeros_like(targets))):
        _, layouts = generator(palettes, z)  # [P, H, W]
        achieved = pm.proportions(layouts, label_set.num_classes)
        metrics = pm.target_metrics(targets, achieved)
        rows[name] = {
            key: {"mean": float(metrics[key].mean()), "std": float(metrics[key].std())}
            for key in ("mae", "js")
        }
    return {
        "rows": rows,
        "num_palettes": num_palettes,
        "level": generator.level,
        "size": [generator.height, generator.width],
    }


def _time_steps(step, batch, timer, timing_steps, warmup):
    """Median wall time of `step(batch)` and the matmul rate right before and after."""
    for _ in range(warmup):
        step(batch)
    before = timer.gflops()
    times = []
    for _ in range(timing_steps):
        start = time.perf_counter()
        losses = step(batch)
        float(next(iter(losses.values())))  # waits for the step
        times.append(time.perf_counter() - start)
    after = timer.gflops()
    seconds, rate = median(times), (before + after) / 2
    return {
        "step_ms": 1e3 * seconds,
        "matmul_gflops": rate,
        # Step time in units of the yardstick: GFLOP a dense matmul does meanwhile.
        "matmul_equivalent_gflop": seconds * rate,
        "times_s": times,
    }


def step_times(config, image_config, timing_steps, warmup=2):
    """The layout GAN's train step per level and the e2e step (ms), the matmul rate around
    each timing."""
    import tensorflow as tf

    from models.palette.task import PaletteTask

    task = PaletteTask(config.replace(max_level=NUM_LEVELS - 1))
    gan = task.build(steps_per_epoch=1)
    batch = next(iter(task.dataset_fn(None, 0)))
    step = tf.function(gan.train_step)
    timer = MatmulTimer(MATMUL_N, "float32")
    period = config.fade_steps + config.stable_steps
    levels = []
    for level in range(NUM_LEVELS):
        gan.step.assign(level * period + config.fade_steps)  # the stable phase (alpha 1)
        timed = _time_steps(step, batch, timer, timing_steps, warmup)
        levels.append({"level": level, "size": list(gan.level_size(level)), **timed})
    e2e = e2e_step_time(config, image_config, timer, timing_steps, warmup)
    return {"batch_size": config.batch_size, "levels": levels, "e2e": e2e, "matmul_n": MATMUL_N}


def e2e_step_time(config, image_config, timer, timing_steps, warmup=2):
    """The end-to-end (stage=e2e) train step at the last level on a batch of real street
    pairs: PaletteE2EGAN of the bench's layout and SPADE settings (fresh weights)."""
    import tensorflow as tf

    from models.palette.e2e_trainer import PaletteE2EGAN
    from models.palette.labels import layout_label_set
    from models.palette.task import layout_pairs, make_pair_dataset
    from models.spade.labels import num_spade_classes

    config = config.replace(max_level=NUM_LEVELS - 1)
    label_set, label_map = layout_label_set(config)
    num_classes = label_set.num_classes
    model = PaletteE2EGAN.from_run_config(config, image_config, num_classes=num_classes)
    dataset = make_pair_dataset(
        layout_pairs(config),
        label_map=label_map,
        num_classes=num_classes,
        # SPADE's "don't care" channel, when it has one, takes the ignored pixels.
        dontcare=num_classes if num_spade_classes(image_config) > num_classes else None,
        size=config.layout_size,
        blur_sigma=config.blur_sigma,
        global_batch_size=config.batch_size,
        seed=config.seed,
        start_step=0,
    )
    batch = next(iter(dataset))
    timed = _time_steps(tf.function(model.train_step), batch, timer, timing_steps, warmup)
    return {"level": model.level, "size": list(model.image_size), **timed}


def _pct(value):
    return "-" if value is None else f"{100.0 * value:.1f}"


def format_report(report) -> str:
    args = report["args"]
    control = report["proportion_control"]
    lines = [
        f"Built-in streets at {HEIGHT}x{WIDTH}: {args['num_streets']} training streets, "
        f"{report['num_val']} held out. Layout GAN (tiny widths, {NUM_LEVELS} levels to "
        f"{HEIGHT}x{WIDTH}, fade {args['fade_steps']} + stable {args['stable_steps']} steps per "
        f"level) trained {report['layout_steps']} steps (reached level {control['level']}, "
        f"{control['size'][0]}x{control['size'][1]}); SPADE tiny {report['spade_steps']} steps; "
        f"batch {args['batch_size']}. "
        f"{'Quick setting (a smoke run, no conclusions). ' if args['quick'] else ''}"
        f"{report['machine']}, {report['date']}, {report['total_minutes']:.0f} min in all; the "
        f"machine was shared (load average {report['loadavg']}).",
        "",
        f"Proportion control ({control['num_palettes']} palettes drawn from the estimator, the "
        "same z for both rows; lower is better):",
        "",
        "| layout generator input | MAE | JS (nats) |",
        "|---|---:|---:|",
    ]
    for name, row in control["rows"].items():
        lines.append(
            f"| {name} | {row['mae']['mean']:.4f} +- {row['mae']['std']:.4f} | "
            f"{row['js']['mean']:.4f} +- {row['js']['std']:.4f} |"
        )
    lines += [
        "",
        f"Downstream: SegFormer tiny, {args['seg_steps']} steps, batch {args['batch_size']}, "
        f"evaluated on the {report['num_val']} held-out real streets:",
        "",
        "| SegFormer trained on | mIoU (%) | pixel accuracy (%) |",
        "|---|---:|---:|",
    ]
    for title, values in report["downstream"].items():
        lines.append(f"| {title} | {_pct(values['miou'])} | {_pct(values['pixel_accuracy'])} |")
    timing = report["step_times"]
    lines += [
        "",
        f"Layout GAN training step (D + G, batch {timing['batch_size']}), median of "
        f"{args['timing_steps']}; yardstick: a {timing['matmul_n']}^2 float32 matmul measured "
        "around the timed steps:",
        "",
        "| level | size | step (ms) | matmul GFLOP/s | step in matmul GFLOP |",
        "|---:|---|---:|---:|---:|",
    ]
    for row in timing["levels"]:
        lines.append(
            f"| {row['level']} | {row['size'][0]}x{row['size'][1]} | {row['step_ms']:.1f} | "
            f"{row['matmul_gflops']:.1f} | {row['matmul_equivalent_gflop']:.2f} |"
        )
    e2e = timing["e2e"]
    lines += [
        f"| {e2e['level']} + SPADE (e2e) | {e2e['size'][0]}x{e2e['size'][1]} | "
        f"{e2e['step_ms']:.1f} | {e2e['matmul_gflops']:.1f} | "
        f"{e2e['matmul_equivalent_gflop']:.2f} |",
        "",
        f"{e2e['level']} + SPADE (e2e): the end-to-end step (stage=e2e) at the last level on "
        "real street pairs: the layout critic, SPADE's discriminator and the unconditional "
        "image discriminator, then one generator step over the layout generator and SPADE "
        "(the bench's SPADE settings). Real + partially edited: not run (the benchmark trains "
        "no partial-editing model).",
        "Command: `python -m bench.bench_palette"
        + "".join(f" {arg}" for arg in report["argv"])
        + "`; phases (min): "
        + ", ".join(f"{name} {minutes:.1f}" for name, minutes in report["minutes"].items()),
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    output_dir = args.output_dir
    if os.path.isdir(output_dir) and os.listdir(output_dir):
        if not args.overwrite:
            sys.exit(
                f"bench_palette: error: --output_dir={output_dir} is not empty; pass "
                "--overwrite or another --output_dir"
            )
        shutil.rmtree(output_dir)
    os.makedirs(output_dir)
    started, minutes, load = time.time(), {}, [loadavg()]

    def phase(name, since):
        minutes[name] = (time.time() - since) / 60.0
        load.append(loadavg())
        print(f"[bench] {name}: {minutes[name]:.1f} min", flush=True)

    import datasets
    import flags as cli
    from evaluation import synthetic_to_real as s2r
    from training import loop

    since = time.time()
    kwargs = dict(
        data_root=args.data_root,
        streets_height=HEIGHT,
        streets_width=WIDTH,
        num_streets=args.num_streets,
    )
    datasets.resolve_pairs("streets", "training", **kwargs)
    num_val = len(datasets.resolve_pairs("streets", "validation", **kwargs))
    phase("streets", since)

    since = time.time()
    layout_run = os.path.join(output_dir, "layout")
    config = layout_config(args, layout_run)
    layout_steps = int(loop.train(config)["step"])
    phase("layout GAN", since)

    since = time.time()
    spade_export, spade_steps, image_config = train_spade(args, os.path.join(output_dir, "spade"))
    phase("SPADE", since)

    since = time.time()
    control = proportion_control(layout_run, args.num_eval_palettes, args.seed)
    phase("proportion control", since)

    since = time.time()
    train_args = [
        "--preset=tiny",
        *[f for f in _street_flags(args) if not f.startswith("--semantic_label_path")],
        f"--crop_size={HEIGHT}",
        f"--batch_size={args.batch_size}",
        f"--max_steps={args.seg_steps}",
    ]
    seg_config = cli.synthetic_to_real_config(train_args)
    palette = s2r.run_synthetic_to_real(
        seg_config,
        train_args,
        os.path.join(output_dir, "downstream_palette"),
        palette_online=s2r.PaletteOnlineSource(
            layout_run, spade_checkpoint_dir=os.path.join(output_dir, "spade")
        ),
    )
    spade = s2r.run_synthetic_to_real(
        seg_config,
        train_args,
        os.path.join(output_dir, "downstream_spade"),
        spade_model=spade_export,
        settings=("mixed",),
    )
    downstream = {
        "real only": palette["settings"]["real"],
        "Palette pairs only (online)": palette["settings"]["synthetic"],
        "real + Palette (1:1 per batch, online)": palette["settings"]["mixed"],
        "real + SPADE from the real layouts (1:1)": spade["settings"]["mixed"],
    }
    phase("downstream (4 SegFormers)", since)

    since = time.time()
    timing = step_times(config, image_config, args.timing_steps)
    phase("step times", since)

    report = {
        "args": vars(args),
        "argv": sys.argv[1:] if argv is None else list(argv),
        "num_val": num_val,
        "layout_steps": layout_steps,
        "spade_steps": spade_steps,
        "proportion_control": control,
        "downstream": {
            title: {key: values[key] for key in ("miou", "pixel_accuracy", "steps", "iou")}
            for title, values in downstream.items()
        },
        "step_times": timing,
        "minutes": minutes,
        "total_minutes": (time.time() - started) / 60.0,
        "loadavg": " / ".join(f"{values[0]:.1f}" for values in load if values),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "date": datetime.date.today().isoformat(),
    }
    markdown = format_report(report)
    with open(os.path.join(output_dir, "bench_palette.md"), "w") as file:
        file.write(markdown)
    with open(os.path.join(output_dir, "bench_palette.json"), "w") as file:
        json.dump(report, file, indent=1, default=str)
    print()
    print(markdown)
    print(f"Wrote {output_dir}/bench_palette.md")
    return report


if __name__ == "__main__":
    main()
