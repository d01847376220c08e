"""SPADE / GauGAN benchmark: training step, generator latency, input pipeline, peak memory.

Run from the repository root (the full default run takes ~15-20 minutes on 2 CPU cores):

    python -m bench.bench_spade [--presets tiny,ade20k_256] [--policies float32,mixed_bfloat16]
        [--steps N] [--warmup N] [--json PATH]

Absolute times on a shared CPU drift with the load of the machine, so every time is put beside
a baseline measured in the same run: the rate of a large square float32 / bfloat16 matmul
(FLOP/s = 2 n^3 / t), measured at the start and again at the end (the drift check), and inside
each training case right before and right after its timed steps (the same load as the steps).
The model FLOPs of each training step (every conv dense, as the network defines it) are
profiled on its traced graph and reported as a fraction of that rate, beside the FLOPs the step
actually executes (the convs over the one-hot map run as lookups): a fraction is comparable
across machines and loads where seconds are not.

Each (preset, policy) case runs in its own subprocess, so that its peak resident memory (VmHWM
of /proc/self/status) is its own and one case's graphs, caches and thread pools cannot slow or
inflate the next. A case builds SPADEGAN with the VAE encoder at batch 1 and the VGG19
perceptual loss, whose weights are a random-init VGG19 saved once to a temporary .weights.h5
(the same compute as the ImageNet weights, which cannot be downloaded here).

The script prints markdown tables and PASS / FAIL lines for the performance targets of
ade20k_256 at batch 1 (see bench/README.md); --json writes everything measured.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from bench.common import (  # noqa: E402  (after the sys.path entry for a direct run)
    MatmulTimer,
    add_worker_arguments,
    all_finite,
    dense_flops,
    fmt,
    kib_to_gib,
    loadavg,
    log,
    machine_info,
    median,
    ok,
    proc_status_kib,
    profile_flops,
    run_main,
    run_worker,
    time_matmul,
)

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
# Untimed calls (the first one traces) and timed calls per preset: an ade20k_256 step takes
# tens of seconds on 2 cores, a tiny one a fraction of a second.
DEFAULT_WARMUP = {"tiny": 3, "ade20k_256": 1}
DEFAULT_STEPS = {"tiny": 10, "ade20k_256": 3}
FALLBACK_WARMUP, FALLBACK_STEPS = 1, 3

# Targets of the issue, checked at ade20k_256, batch 1.
TARGET_PRESET = "ade20k_256"
TARGET_F32_MATMUL_FRACTION = 0.75  # float32 step FLOP/s over the float32 matmul rate
TARGET_BF16_SPEEDUP = 1.6  # float32 step time over mixed_bfloat16 step time
TARGET_PIPELINE_RATIO = 10.0  # input pipeline images/s over the float32 training images/s
TARGET_PEAK_RSS_GIB = 4.0  # peak resident memory of a training process

# How profile_flops splits a training step's FLOPs: the top-level scopes of SPADEGAN's networks
# (anything else is the perceptual loss's VGG or "other"), and the layers worth seeing
# separately (SPADE's convs and the residual convs).
NETWORKS = ("generator", "discriminator", "encoder")
LAYER_KINDS = ("mlp_shared", "mlp_gamma", "mlp_beta", "conv_0", "conv_1", "conv_s", "fc")


def _other_network(network):
    return "vgg" if network.startswith("vgg19") else "other"


def _profile_flops(graph):
    """profile_flops split by SPADEGAN's networks and layer kinds (see bench.common)."""
    return profile_flops(graph, networks=NETWORKS, layer_kinds=LAYER_KINDS, fallback=_other_network)


# ------------------------------------------------------------------------------------------
# Workers: each runs in its own process and writes a JSON result file.
# ------------------------------------------------------------------------------------------


def worker_vgg(args):
    """Saves a random-init notop VGG19 to args.vgg_weights (the stand-in for ImageNet's)."""
    import keras

    keras.utils.set_random_seed(0)
    vgg = keras.applications.VGG19(include_top=False, weights=None)
    vgg.save_weights(args.vgg_weights)
    return {"path": args.vgg_weights, "bytes": os.path.getsize(args.vgg_weights)}


def worker_matmul(args):
    """The machine's float32 and bfloat16 matmul rate (run at the start and end of a run)."""
    return time_matmul(args.matmul_size, args.matmul_runs)


def worker_case(args):
    """Times SPADEGAN.train_step and synthesize for one (preset, policy) at batch 1."""
    import keras
    import numpy as np
    import tensorflow as tf

    import flags as cli
    from datasets.scenes import render_scene
    from models.spade.trainer import SPADEGAN
    from semantic_labels import load_label_set

    keras.utils.set_random_seed(0)
    # Before any network is built: the VGG of the perceptual loss is built under the global
    # policy at construction.
    keras.mixed_precision.set_global_policy(args.policy)
    mixed_precision = "none" if args.policy == "float32" else args.policy
    config = cli.config_from_args(
        [
            f"--preset={args.preset}",
            "--batch_size=1",
            "--use_vae",
            f"--mixed_precision={mixed_precision}",
            f"--vgg_weights={args.vgg_weights}",
        ]
    )
    num_classes = load_label_set(config.semantic_label_path).num_classes
    start = time.perf_counter()
    # steps_per_epoch only shapes the lr schedule; large enough that lr stays constant here.
    gan = SPADEGAN.from_run_config(config, num_classes, steps_per_epoch=1000)
    build_s = time.perf_counter() - start

    # A real built-in scene (ADE20K ids) rather than noise labels: the one-hot map is as
    # sparse as in training.
    size = config.crop_size
    image, label = render_scene(0, size, size)  # [S, S, 3] uint8, [S, S] uint8
    batch = {
        "image": tf.constant(image[None].astype(np.float32) / 127.5 - 1.0),  # [1, S, S, 3]
        "label": tf.constant(label[None].astype(np.int32)),  # [1, S, S]
    }
    batch_size = int(batch["label"].shape[0])

    train_step = tf.function(gan.train_step)

    def run_step():
        losses = train_step(batch)
        return {name: float(value.numpy()) for name, value in losses.items()}  # syncs

    all_losses, warmup_times, step_times = [], [], []
    for _ in range(args.warmup):
        start = time.perf_counter()
        all_losses.append(run_step())
        warmup_times.append(time.perf_counter() - start)
        print(f"  warm-up step {len(warmup_times)}: {warmup_times[-1]:.2f} s", file=sys.stderr)
    # The training peak: the warm-up steps (the first one included) run the whole step, so it
    # is reached by now. Read before any matmul below, whose buffers and oneDNN caches stay
    # resident and would count as training memory (~0.35 GiB for n = 4096).
    peak_train_kib = proc_status_kib("VmHWM")

    # The yardstick under the load the timed steps see: a shared machine's speed drifts within
    # minutes, so one matmul per dtype is timed before the first step and after every step, in
    # this process; the case's rate is their median.
    rate_dtypes = ("float32",) if args.policy == "float32" else ("float32", "bfloat16")
    timers = {dtype: MatmulTimer(args.matmul_size, dtype) for dtype in rate_dtypes}
    rate_samples = {dtype: [] for dtype in rate_dtypes}

    def sample_rates():
        for dtype, timer in timers.items():
            rate_samples[dtype].append(timer.gflops())

    sample_rates()
    loadavg_steps = loadavg()
    for _ in range(args.steps):
        start = time.perf_counter()
        all_losses.append(run_step())
        step_times.append(time.perf_counter() - start)
        print(f"  timed step {len(step_times)}: {step_times[-1]:.2f} s", file=sys.stderr)
        sample_rates()
    matmul_local = {dtype: median(samples) for dtype, samples in rate_samples.items()}

    train_flops = _profile_flops(train_step.get_concrete_function(batch).graph)
    # Model FLOPs: the same step with the convs over the one-hot map computed densely and D
    # run on the concatenated pairs, as the network defines them (traced and profiled only,
    # never run). The step that runs does that work by lookup (models.layers.one_hot_conv),
    # so it executes fewer FLOPs.
    gan.one_hot_lookup = False
    model_flops = _profile_flops(tf.function(gan.train_step).get_concrete_function(batch).graph)
    gan.one_hot_lookup = True

    synthesize = tf.function(lambda label: gan.synthesize(label, training=False))
    gen_times = []
    for i in range(args.gen_warmup + args.gen_runs):
        start = time.perf_counter()
        synthesize(batch["label"]).numpy()
        if i >= args.gen_warmup:
            gen_times.append(time.perf_counter() - start)
    gen_flops = _profile_flops(synthesize.get_concrete_function(batch["label"]).graph)

    step_s = median(step_times)
    return {
        "preset": args.preset,
        "policy": args.policy,
        "batch_size": batch_size,
        "crop_size": size,
        "num_classes": num_classes,
        "parameters": gan.parameter_counts(),
        "build_s": build_s,
        "warmup_times_s": warmup_times,
        "step_times_s": step_times,
        "step_median_s": step_s,
        "images_per_s": batch_size / step_s,
        "losses_last": all_losses[-1],
        "losses_finite": all_finite(all_losses),
        # Model FLOPs (every conv dense, as the network defines it) and executed FLOPs (see
        # bench.common.live_ops); the whole graph's count is kept for reference.
        "train_gflop": model_flops["executed"] / 1e9,
        "train_executed_gflop": train_flops["executed"] / 1e9,
        "train_graph_gflop": train_flops["graph"] / 1e9,
        "train_dense_gflop": dense_flops(train_flops["by_op"]) / 1e9,
        "train_gflop_by_op": {op: f / 1e9 for op, f in train_flops["by_op"].items()},
        "train_gflop_by_part": {k: f / 1e9 for k, f in train_flops["by_part"].items()},
        "train_gflop_by_layer": {k: f / 1e9 for k, f in train_flops["by_layer"].items()},
        "achieved_gflops": model_flops["executed"] / 1e9 / step_s,
        "achieved_executed_gflops": train_flops["executed"] / 1e9 / step_s,
        "matmul_samples_gflops": rate_samples,
        "matmul_local_gflops": matmul_local,
        "loadavg_steps_start": loadavg_steps,
        "gen_times_s": gen_times,
        "gen_latency_s": median(gen_times),
        "gen_gflop": gen_flops["executed"] / 1e9,
        "gen_gflop_by_layer": {k: f / 1e9 for k, f in gen_flops["by_layer"].items()},
        "peak_rss_train_gib": kib_to_gib(peak_train_kib),
        # With the matmul timers' memory, profiling and inference: not the training peak.
        "peak_rss_end_gib": kib_to_gib(proc_status_kib("VmHWM")),
    }


def worker_pipeline(args):
    """images/s of make_train_dataset on the built-in scenes (load 286, crop 256, batch 1)."""
    import datasets
    from datasets.pipeline import make_train_dataset
    from semantic_labels import load_label_set

    start = time.perf_counter()
    pairs = datasets.resolve_pairs(
        "scenes",
        "training",
        data_root=args.data_root,
        scenes_size=256,
        num_scenes=args.num_scenes,
    )
    generate_s = time.perf_counter() - start
    dataset = make_train_dataset(
        pairs,
        num_classes=load_label_set("scenes").num_classes,
        load_size=286,
        crop_size=256,
        global_batch_size=1,
        seed=0,
    )
    iterator = iter(dataset)
    # Warm-up lets AUTOTUNE settle its parallelism and prefetch depth.
    for _ in range(args.pipeline_warmup):
        next(iterator)
    start = time.perf_counter()
    images = 0
    for _ in range(args.pipeline_elements):
        batch = next(iterator)  # eager tensors: the element is fully produced
        images += int(batch["image"].shape[0])
    seconds = time.perf_counter() - start
    return {
        "num_files": len(pairs),
        "scenes_ready_s": generate_s,
        "elements": args.pipeline_elements,
        "seconds": seconds,
        "images_per_s": images / seconds,
        "image_shape": [int(d) for d in batch["image"].shape],
        "peak_rss_gib": kib_to_gib(proc_status_kib("VmHWM")),
    }


WORKERS = {
    "vgg": worker_vgg,
    "matmul": worker_matmul,
    "case": worker_case,
    "pipeline": worker_pipeline,
}


# ------------------------------------------------------------------------------------------
# Parent: runs the workers, prints the report.
# ------------------------------------------------------------------------------------------


def _run_worker(kind, worker_args, work_dir, timeout_s):
    """Runs `python -m bench.bench_spade --worker=kind ...`; returns its result or an error."""
    return run_worker("bench.bench_spade", kind, worker_args, work_dir, timeout_s)


def _highest_rate(matmul_start, matmul_end, dtype):
    """The higher of the run's start and end matmul rates of `dtype` (None if not measured)."""
    rates = [m[dtype]["gflops"] for m in (matmul_start, matmul_end) if m and dtype in m]
    return max(rates) if rates else None


def _add_fractions(case):
    """Achieved FLOP/s over the matmul rate measured between the case's own timed steps."""
    achieved, local = case["achieved_gflops"], case["matmul_local_gflops"]
    case["fraction_of_f32_matmul"] = achieved / local["float32"]
    case["executed_fraction_of_f32_matmul"] = case["achieved_executed_gflops"] / local["float32"]
    case["fraction_of_bf16_matmul"] = achieved / local["bfloat16"] if "bfloat16" in local else None


def check_targets(cases, pipeline, f32_highest, machine):
    """PASS / FAIL / SKIP of each target, with the numbers behind it."""
    by_policy = {c["policy"]: c for c in cases if c["preset"] == TARGET_PRESET and "error" not in c}
    f32, bf16 = by_policy.get("float32"), by_policy.get("mixed_bfloat16")
    checks = []

    def add(name, ok, detail):
        status = "SKIP" if ok is None else ("PASS" if ok else "FAIL")
        checks.append({"target": name, "status": status, "detail": detail})

    name = f"float32 step >= {TARGET_F32_MATMUL_FRACTION:.0%} of the float32 matmul rate"
    if f32:
        fraction, local = f32["fraction_of_f32_matmul"], f32["matmul_local_gflops"]["float32"]
        detail = (
            f"{f32['achieved_gflops']:.1f} GFLOP/s ({f32['train_gflop']:.1f} model GFLOP in "
            f"{f32['step_median_s']:.2f} s) = {fraction:.1%} of {local:.1f} GFLOP/s, the "
            "matmul rate measured between the timed steps; executed FLOPs "
            f"{f32['train_executed_gflop']:.1f} GFLOP = "
            f"{f32['executed_fraction_of_f32_matmul']:.1%} (one-hot convs by lookup)"
        )
        if f32_highest:
            detail += (
                f" ({f32['achieved_gflops'] / f32_highest:.1%} of the run's highest, "
                f"{f32_highest:.1f})"
            )
        add(name, fraction >= TARGET_F32_MATMUL_FRACTION, detail)
    else:
        add(name, None, f"needs {TARGET_PRESET} float32")

    name = f"mixed_bfloat16 >= {TARGET_BF16_SPEEDUP}x faster than float32, finite losses"
    if f32 and bf16:
        speedup = f32["step_median_s"] / bf16["step_median_s"]
        detail = (
            f"{f32['step_median_s']:.2f} s / {bf16['step_median_s']:.2f} s = {speedup:.2f}x; "
            f"losses finite: {bf16['losses_finite']}"
        )
        if not (machine["avx512_bf16"] or machine["amx_bf16"]):
            rates = bf16["matmul_local_gflops"]
            detail += (
                "; this CPU has neither avx512_bf16 nor amx_bf16, so bfloat16 is emulated "
                f"(bf16 matmul {rates['bfloat16']:.1f} vs f32 {rates['float32']:.1f} GFLOP/s)"
            )
        add(name, speedup >= TARGET_BF16_SPEEDUP and bf16["losses_finite"], detail)
    else:
        add(name, None, f"needs {TARGET_PRESET} in float32 and mixed_bfloat16")

    name = f"input pipeline >= {TARGET_PIPELINE_RATIO:.0f}x the training images/s"
    if f32 and pipeline and "error" not in pipeline:
        ratio = pipeline["images_per_s"] / f32["images_per_s"]
        add(
            name,
            ratio >= TARGET_PIPELINE_RATIO,
            f"{pipeline['images_per_s']:.1f} images/s / {f32['images_per_s']:.3f} images/s "
            f"= {ratio:.0f}x",
        )
    else:
        add(name, None, f"needs the pipeline and {TARGET_PRESET} float32")

    name = f"peak resident memory of training <= {TARGET_PEAK_RSS_GIB:.0f} GiB"
    peaks = {
        p: c["peak_rss_train_gib"] for p, c in by_policy.items() if c.get("peak_rss_train_gib")
    }
    if peaks:
        add(
            name,
            max(peaks.values()) <= TARGET_PEAK_RSS_GIB,
            ", ".join(f"{p}: {v:.2f} GiB" for p, v in peaks.items()),
        )
    else:
        add(name, None, f"needs {TARGET_PRESET} cases")
    return checks


def format_report(report):
    """The markdown report: machine, matmul baseline, cases, pipeline, targets."""
    m = report["machine"]
    lines = [
        "## Machine",
        "",
        f"{m['cpu_model']}, {m['usable_cpus']} usable of {m['logical_cpus']} logical CPUs; "
        f"avx512_bf16: {'yes' if m['avx512_bf16'] else 'no'}, "
        f"amx_bf16: {'yes' if m['amx_bf16'] else 'no'}, "
        f"avx512f: {'yes' if m['avx512f'] else 'no'}; TensorFlow {m['tensorflow']}, "
        f"Keras {m['keras']}, Python {m['python']}; {m['date']}; "
        f"load average at start {m['loadavg_start']}, at end {m.get('loadavg_end')}.",
        "",
        "## Matmul baseline (the machine's achievable rate, same run)",
        "",
        "| dtype | n | start: median s | start: GFLOP/s | end: median s | end: GFLOP/s | drift |",
        "|---|---|---|---|---|---|---|",
    ]
    start, end = report["matmul_start"], report["matmul_end"]
    for dtype in ("float32", "bfloat16"):
        s = start.get(dtype, {}) if "error" not in start else {}
        e = end.get(dtype, {}) if "error" not in end else {}
        drift = e["gflops"] / s["gflops"] - 1.0 if s.get("gflops") and e.get("gflops") else None
        lines.append(
            f"| {dtype} | {s.get('n', e.get('n', '-'))} | {fmt(s.get('median_s'))} | "
            f"{fmt(s.get('gflops'), '.1f')} | {fmt(e.get('median_s'))} | "
            f"{fmt(e.get('gflops'), '.1f')} | {fmt(drift, '+.1%')} |"
        )
    lines += [
        "",
        "The training fractions below use the matmul rate measured inside each case, before its "
        "first and after each of its timed steps (median), i.e. under the same load.",
        "",
        "## Training step (G + D + E, VGG loss, batch 1) and generator inference",
        "",
        "GFLOP/step: model FLOPs (every conv dense, as the network defines it) / executed "
        "FLOPs (G's convs over the one-hot map run as lookups); achieved GFLOP/s and the "
        "fractions use model FLOPs, the executed fraction is in brackets.",
        "",
        "| preset | policy | step s (median) | images/s | GFLOP/step model / executed "
        "| achieved GFLOP/s | matmul f32 / bf16 GFLOP/s | % f32 matmul (executed) "
        "| % bf16 matmul | G latency s | G GFLOP | peak RSS GiB | losses finite |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in report["cases"]:
        if "error" in c:
            lines.append(
                f"| {c['preset']} | {c['policy']} | FAILED: {c['error']} | | | | | | | | | | |"
            )
            continue
        lines.append(
            f"| {c['preset']} | {c['policy']} | {fmt(c['step_median_s'], '.3f')} | "
            f"{fmt(c['images_per_s'], '.3g')} | {fmt(c['train_gflop'], '.1f')} / "
            f"{fmt(c['train_executed_gflop'], '.1f')} | "
            f"{fmt(c['achieved_gflops'], '.1f')} | "
            f"{fmt(c['matmul_local_gflops'].get('float32'), '.1f')} / "
            f"{fmt(c['matmul_local_gflops'].get('bfloat16'), '.1f')} | "
            f"{fmt(c['fraction_of_f32_matmul'], '.1%')} "
            f"({fmt(c['executed_fraction_of_f32_matmul'], '.1%')}) | "
            f"{fmt(c['fraction_of_bf16_matmul'], '.1%')} | "
            f"{fmt(c['gen_latency_s'], '.3f')} | {fmt(c['gen_gflop'], '.1f')} | "
            f"{fmt(c['peak_rss_train_gib'], '.2f')} | "
            f"{'yes' if c['losses_finite'] else 'NO'} |"
        )
    lines += [
        "",
        "Per case: step times, last losses, executed GFLOP by op type, network part and layer:",
        "",
    ]
    for c in report["cases"]:
        if "error" in c:
            lines.append(f"- {c['preset']} / {c['policy']}: {c['error']}")
            lines += [f"    {line}" for line in c.get("stderr_tail", [])[-8:]]
            continue

        def listing(gflop_by_key, count=8):
            return ", ".join(f"{k} {g:.1f}" for k, g in list(gflop_by_key.items())[:count])

        losses = ", ".join(f"{k} {v:.4g}" for k, v in c["losses_last"].items())
        lines += [
            f"- {c['preset']} / {c['policy']}: build {c['build_s']:.1f} s; warm-up "
            f"{', '.join(f'{t:.2f}' for t in c['warmup_times_s'])} s (the first traces); "
            f"timed {', '.join(f'{t:.2f}' for t in c['step_times_s'])} s; losses: {losses}",
            "    matmul GFLOP/s before the first and after each timed step: "
            + "; ".join(
                f"{dtype} {', '.join(f'{g:.1f}' for g in samples)}"
                for dtype, samples in c["matmul_samples_gflops"].items()
            )
            + f"; load average as they began: {c['loadavg_steps_start']}",
            f"    executed {c['train_executed_gflop']:.1f} GFLOP (the traced graph holds "
            f"{c['train_graph_gflop']:.1f}; the rest are gradient ops tf.function prunes), "
            f"conv+matmul {c['train_dense_gflop']:.1f}",
            f"    by op: {listing(c['train_gflop_by_op'], 5)}",
            f"    by part: {listing(c['train_gflop_by_part'])}",
            f"    by layer: {listing(c['train_gflop_by_layer'])}",
        ]
    p = report["pipeline"]
    lines += ["", "## Input pipeline (built-in scenes, load 286, crop 256, batch 1)", ""]
    if p is None:
        lines.append("not run (--skip_pipeline)")
    elif "error" in p:
        lines.append(f"FAILED: {p['error']}")
        lines += [f"    {line}" for line in p.get("stderr_tail", [])[-8:]]
    else:
        lines.append(
            f"{p['images_per_s']:.1f} images/s ({p['elements']} elements in "
            f"{p['seconds']:.2f} s after warm-up, {p['num_files']} files; scenes ready in "
            f"{p['scenes_ready_s']:.1f} s; peak RSS {p['peak_rss_gib']:.2f} GiB). Measured "
            "alone: in training it shares the cores with the step."
        )
    lines += ["", f"## Targets ({TARGET_PRESET}, batch 1)", ""]
    for check in report["targets"]:
        lines.append(f"- {check['status']}: {check['target']} -- {check['detail']}")
    lines += ["", f"Run time: {report['run_time_s'] / 60:.1f} min."]
    return "\n".join(lines)


def _parse_list(text, allowed, flag):
    values = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in values if v not in allowed]
    if not values or unknown:
        raise ValueError(
            f"{flag}={text!r}: unknown value(s) {unknown or '(empty)'}; "
            f"choose from {', '.join(allowed)}"
        )
    return values


def main_parent(args):
    from models.spade.config import PRESETS

    presets_run = _parse_list(args.presets, tuple(PRESETS), "--presets")
    policies_run = _parse_list(args.policies, POLICIES, "--policies")
    for name in ("steps", "warmup", "matmul_runs", "pipeline_elements", "num_scenes"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name} must be >= 1, got {value}")
    if args.json:
        json_dir = os.path.dirname(os.path.abspath(args.json))
        if not os.path.isdir(json_dir):
            raise FileNotFoundError(f"--json={args.json}: folder {json_dir} does not exist")

    run_start = time.perf_counter()
    report = {"machine": machine_info(), "args": vars(args)}
    work_dir = tempfile.mkdtemp(prefix="semsynth_bench_")
    try:
        vgg_weights = os.path.join(work_dir, "vgg19_random_init.weights.h5")
        log("saving a random-init VGG19 for the perceptual loss")
        vgg = _run_worker("vgg", [f"--vgg_weights={vgg_weights}"], work_dir, args.timeout_s)
        if "error" in vgg:
            raise RuntimeError(f"{vgg['error']}:\n" + "\n".join(vgg["stderr_tail"]))

        matmul_args = [f"--matmul_size={args.matmul_size}", f"--matmul_runs={args.matmul_runs}"]
        log(f"matmul baseline (start), n={args.matmul_size}")
        report["matmul_start"] = _run_worker("matmul", matmul_args, work_dir, args.timeout_s)

        cases = []
        for preset in presets_run:
            warmup = args.warmup or DEFAULT_WARMUP.get(preset, FALLBACK_WARMUP)
            steps = args.steps or DEFAULT_STEPS.get(preset, FALLBACK_STEPS)
            for policy in policies_run:
                log(f"case {preset} / {policy}: {warmup} warm-up + {steps} timed steps")
                case_args = [
                    f"--preset={preset}",
                    f"--policy={policy}",
                    f"--warmup={warmup}",
                    f"--steps={steps}",
                    f"--vgg_weights={vgg_weights}",
                    f"--gen_warmup={min(warmup, 2)}",
                    f"--gen_runs={max(steps, 3)}",
                    *matmul_args,
                ]
                case = _run_worker("case", case_args, work_dir, args.timeout_s)
                case.setdefault("preset", preset)
                case.setdefault("policy", policy)
                cases.append(case)
                if "error" not in case:
                    log(
                        f"  median step {case['step_median_s']:.3f} s, "
                        f"peak RSS {case['peak_rss_train_gib']:.2f} GiB"
                    )

        report["pipeline"] = None
        if not args.skip_pipeline:
            data_root = args.data_root or os.path.join(
                tempfile.gettempdir(), "semsynth_bench_data", f"n{args.num_scenes}"
            )
            log(f"input pipeline on {args.num_scenes} built-in scenes under {data_root}")
            report["pipeline"] = _run_worker(
                "pipeline",
                [
                    f"--data_root={data_root}",
                    f"--num_scenes={args.num_scenes}",
                    f"--pipeline_elements={args.pipeline_elements}",
                    f"--pipeline_warmup={args.pipeline_warmup}",
                ],
                work_dir,
                args.timeout_s,
            )

        log("matmul baseline (end)")
        report["matmul_end"] = _run_worker("matmul", matmul_args, work_dir, args.timeout_s)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)

    matmul_start, matmul_end = ok(report["matmul_start"]), ok(report["matmul_end"])
    for case in cases:
        if "error" not in case:
            _add_fractions(case)
    report["cases"] = cases
    report["targets"] = check_targets(
        cases,
        report["pipeline"],
        _highest_rate(matmul_start, matmul_end, "float32"),
        report["machine"],
    )
    report["machine"]["loadavg_end"] = loadavg()
    report["run_time_s"] = time.perf_counter() - run_start
    print(format_report(report))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(report, file, indent=2)
        log(f"wrote {args.json}")
    failed = [c for c in cases if "error" in c]
    return 1 if failed else 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_spade",
        description="SPADE training / inference / input-pipeline benchmark (see bench/README.md).",
    )
    parser.add_argument(
        "--presets", default="tiny,ade20k_256", help="Comma-separated SPADE presets to time."
    )
    parser.add_argument(
        "--policies",
        default="float32,mixed_bfloat16",
        help=f"Comma-separated Keras dtype policies ({', '.join(POLICIES)}).",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="Timed training steps per case (default: tiny 10, ade20k_256 3).",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="Untimed steps before them, the first traces (tiny 3, ade20k_256 1).",
    )
    parser.add_argument("--json", default=None, help="Write everything measured to this file.")
    parser.add_argument(
        "--matmul_size", type=int, default=4096, help="Side n of the square matmul baseline."
    )
    parser.add_argument(
        "--matmul_runs", type=int, default=3, help="Timed matmuls per dtype (after one untimed)."
    )
    parser.add_argument(
        "--skip_pipeline", action="store_true", help="Do not measure the input pipeline."
    )
    parser.add_argument(
        "--data_root",
        default=None,
        help="Where the built-in scenes are generated (default: a reused "
        "folder under the system temp dir).",
    )
    parser.add_argument(
        "--num_scenes",
        type=int,
        default=64,
        help="Built-in training scenes for the input pipeline.",
    )
    parser.add_argument(
        "--pipeline_elements",
        type=int,
        default=300,
        help="Timed input-pipeline elements (batch 1).",
    )
    parser.add_argument(
        "--pipeline_warmup", type=int, default=30, help="Untimed input-pipeline elements first."
    )
    add_worker_arguments(parser, WORKERS, timeout_s=1800.0)
    # Internal: the arguments of one measurement in a worker subprocess.
    parser.add_argument("--preset", help=argparse.SUPPRESS)
    parser.add_argument("--policy", help=argparse.SUPPRESS)
    parser.add_argument("--vgg_weights", help=argparse.SUPPRESS)
    parser.add_argument("--gen_warmup", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--gen_runs", type=int, default=3, help=argparse.SUPPRESS)
    return parser


def main(argv=None):
    return run_main(build_parser(), WORKERS, main_parent, argv)


if __name__ == "__main__":
    sys.exit(main())
