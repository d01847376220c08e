"""StyleGAN2 benchmark: D and G training steps, synthesis, feature clustering, peak memory.

Run from the repository root (the full default run takes ~25-40 minutes on 2 CPU cores):

    python -m bench.bench_stylegan2 [--preset stylegan2_256] [--channel_multiplier 2]
        [--batch 4] [--steps N] [--warmup N] [--json PATH]
    python -m bench.bench_stylegan2 --quick        # tiny preset, a few steps: a smoke check

Everything is float32 with random-init weights (weights do not change the compute):

- training, batch 4: the model's own `_d_step` and `_g_step` under tf.function, each timed on
  its own, on a step without lazy regularisation (step 1: the tf.cond takes its plain branch,
  exactly what `train_step` runs there); `train_step` on a regularisation step (step 0: R1 and
  path length) is timed in another process, for information;
- synthesis images/s of the EMA generator (const noise) at batch 4 and 1;
- clustering (Synthesis in Style, step 3): `GeneratorRunner.feature_fn` + `cluster_features`
  on N samples for one k, all synthesis layers, as `synthesize.py --mode=clusters` runs it.

Absolute times on a shared CPU drift with the load, so every time is put beside a baseline
measured in the same run: the rate of a large float32 matmul (FLOP/s = 2 n^3 / t), measured at
the start and end of the run and, inside each timed case, before its first timed call and after
every one (the same load as the calls). The executed FLOPs of each traced step are profiled and
reported as a fraction of that rate. The time spent in the FIR filters (depthwise convolutions
and the bilinear 2x upsampling of the skip generator) comes from a TensorFlow profiler trace of
one D and one G step: per-op durations summed by op type.

Each case runs in its own subprocess, so that its peak resident memory (VmHWM of
/proc/self/status) is its own. The script prints markdown tables and PASS / FAIL lines for the
targets (see bench/README.md); --json writes everything measured.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import re
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
    cpu_snapshot,
    dense_flops,
    fmt,
    kib_to_gib,
    live_ops,
    loadavg,
    log,
    machine_info,
    median,
    ok,
    others_cpu_share,
    proc_status_kib,
    profile_flops,
    run_main,
    run_worker,
    time_matmul,
)

# Targets of the issue, checked on the reference preset at 256 px, batch 4.
TARGET_PRESET = "stylegan2_256"
TARGET_MATMUL_FRACTION = 0.50  # D step and G step FLOP/s, each, over the float32 matmul rate
TARGET_CLUSTER_PEAK_GIB = 4.0  # peak resident memory of clustering N = 100 samples at batch 4

# The full run and --quick: untimed / timed calls of each case, clustering size, yardstick.
FULL = {
    "preset": TARGET_PRESET,
    "warmup": 1,
    "steps": 3,
    "reg_warmup": 1,
    "reg_steps": 1,
    "synth_warmup": 2,
    "synth_runs": 5,
    "cluster_samples": 100,
    "cluster_k": 20,
    "matmul_size": 4096,
}
QUICK = {
    "preset": "tiny",
    "warmup": 1,
    "steps": 3,
    "reg_warmup": 1,
    "reg_steps": 2,
    "synth_warmup": 1,
    "synth_runs": 3,
    "cluster_samples": 8,
    "cluster_k": 5,
    "matmul_size": 1024,
}

# How profile_flops splits a step's FLOPs: the top-level name scopes of the traced steps
# (StyleGAN2GAN calls the generator's mapping and synthesis networks directly).
NETWORKS = ("mapping", "synthesis", "discriminator")
# FIR filtering: the [1, 3, 3, 1] blur is a depthwise conv, the skip upsampling a bilinear resize.
FIR_OP_PREFIXES = ("DepthwiseConv2dNative", "ResizeBilinear")
# Padding and crops, mostly those of the FIR filters (and their gradients, Slice).
PAD_SLICE_OPS = ("Pad", "PadV2", "Slice", "StridedSlice", "StridedSliceGrad")
# Ops that call a function: their trace events contain their body's ops, counted on their own.
CALL_OPS = ("PartitionedCall", "StatefulPartitionedCall", "If", "StatelessIf", "While")


def _other_network(network):
    return "other"


def _progress(message):
    """A worker's progress line (run_worker echoes stderr lines that start with two spaces)."""
    print(f"  {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------
# Worker helpers (TensorFlow imported inside).
# ------------------------------------------------------------------------------------------


def _config(args):
    """The resolved train config of the preset, as train.py would build it."""
    import flags as cli

    flag_args = [
        "--model=stylegan2",
        f"--preset={args.preset}",
        f"--batch_size={args.batch}",
    ]
    if args.channel_multiplier is not None:
        flag_args.append(f"--channel_multiplier={args.channel_multiplier}")
    return cli.config_from_args(flag_args)


class _Yardstick:
    """The float32 matmul rate sampled in this process, between the timed calls."""

    def __init__(self, n):
        self.timer = MatmulTimer(n, "float32")
        self.samples = []

    def sample(self):
        self.samples.append(self.timer.gflops())

    def rate(self):
        return median(self.samples)


def _timed_calls(calls, warmup, runs, yardstick=None):
    """Runs every (label, fn) of `calls` in turn, `warmup` untimed rounds then `runs` timed.

    The yardstick (if any) samples the matmul rate before the first timed round and after
    every timed call. Returns ({label: timed seconds}, {label: warm-up seconds}, share of the
    machine's CPU time other processes used during the timed rounds).
    """
    times = {label: [] for label, _ in calls}
    warmup_times = {label: [] for label, _ in calls}
    for _ in range(warmup):
        for label, fn in calls:
            start = time.perf_counter()
            fn()
            warmup_times[label].append(time.perf_counter() - start)
            _progress(
                f"{label} warm-up {len(warmup_times[label])}: {warmup_times[label][-1]:.2f} s"
            )
    if yardstick is not None:
        yardstick.sample()
    before = cpu_snapshot()
    for _ in range(runs):
        for label, fn in calls:
            start = time.perf_counter()
            fn()
            times[label].append(time.perf_counter() - start)
            _progress(f"{label} timed {len(times[label])}: {times[label][-1]:.2f} s")
            if yardstick is not None:
                yardstick.sample()
    return times, warmup_times, others_cpu_share(before, cpu_snapshot())


@contextlib.contextmanager
def _cond_inlined(regularised):
    """Traces StyleGAN2GAN's lazy-regularisation tf.cond as the branch a step takes, inline.

    The v1 profiler counts the ops of a graph, not those of the functions an If op calls, and
    inside a cond branch the batch size captured from outside has no static value, so most
    shapes (and FLOPs) would be unknown. For the FLOP count only, the module's `tf` is replaced
    by a view of TensorFlow whose `cond` calls the taken branch directly: the same ops as the
    branch the timed function runs, in the outer graph, with static shapes.
    """
    import tensorflow as tf

    from models.stylegan2 import trainer as stylegan2_gan

    class _TakenBranch:
        def __getattr__(self, name):
            return getattr(tf, name)

        @staticmethod
        def cond(pred, true_fn=None, false_fn=None, name=None):
            return true_fn() if regularised else false_fn()

    stylegan2_gan.tf = _TakenBranch()
    try:
        yield
    finally:
        stylegan2_gan.tf = tf


def _uncounted_depthwise_flops(graph, live):
    """FLOPs of the live depthwise-conv backprops, which TF's profiler has no count for.

    Both cost what the forward conv does: 2 FLOPs per output-gradient element and filter tap.
    """
    import tensorflow as tf

    counts, unknown = {}, 0
    for op in graph.get_operations():
        if op.name not in live or op.type not in (
            "DepthwiseConv2dNativeBackpropInput",
            "DepthwiseConv2dNativeBackpropFilter",
        ):
            continue
        out_backprop = op.inputs[2].shape  # [N, H', W', C M]
        if op.type.endswith("Input"):
            filter_shape = op.inputs[1].shape  # [kh, kw, C, M]
        else:
            filter_shape = tf.TensorShape(tf.get_static_value(op.inputs[1]))
        if not (out_backprop.is_fully_defined() and filter_shape.is_fully_defined()):
            unknown += 1
            continue
        flops = 2 * out_backprop.num_elements() * filter_shape[0] * filter_shape[1]
        counts[op.type] = counts.get(op.type, 0) + flops
    return counts, unknown


def _profile(graph):
    """profile_flops by network, plus the depthwise backprops and a check of static shapes."""
    flops = profile_flops(graph, networks=NETWORKS, fallback=_other_network)
    live = live_ops(graph)
    extra, unknown = _uncounted_depthwise_flops(graph, live)
    by_op = dict(flops["by_op"])
    for op_type, count in extra.items():
        by_op[op_type] = by_op.get(op_type, 0) + count
    flops["by_op"] = dict(sorted(by_op.items(), key=lambda kv: -kv[1]))
    flops["executed"] += sum(extra.values())
    every_op = {op.name for op in graph.get_operations()}
    flops["graph"] += sum(_uncounted_depthwise_flops(graph, every_op)[0].values())
    # A FLOP count is only complete when no function call hides ops and every conv's shape
    # is static (the profiler skips ops with unknown shapes).
    flops["call_ops"] = sum(
        1 for op in graph.get_operations() if op.name in live and op.type in CALL_OPS
    )
    flops["unknown_shape_convs"] = unknown + sum(
        1
        for op in graph.get_operations()
        if op.name in live
        and ("Conv2D" in op.type or "Depthwise" in op.type or "MatMul" in op.type)
        and op.type
        not in ("DepthwiseConv2dNativeBackpropInput", "DepthwiseConv2dNativeBackpropFilter")
        and not all(t.shape.is_fully_defined() for t in op.outputs)
    )
    return flops


def _fir_flops(by_op):
    return sum(f for op, f in by_op.items() if op.startswith(FIR_OP_PREFIXES))


def _flop_summary(flops, seconds, rate):
    """The numbers a report needs from one profiled step and its median time."""
    executed = flops["executed"]
    achieved = executed / 1e9 / seconds
    return {
        "gflop": executed / 1e9,
        "graph_gflop": flops["graph"] / 1e9,
        "dense_gflop": dense_flops(flops["by_op"]) / 1e9,
        "fir_gflop": _fir_flops(flops["by_op"]) / 1e9,
        "gflop_by_op": {op: f / 1e9 for op, f in flops["by_op"].items()},
        "gflop_by_part": {part: f / 1e9 for part, f in flops["by_part"].items()},
        "call_ops": flops["call_ops"],
        "unknown_shape_convs": flops["unknown_shape_convs"],
        "achieved_gflops": achieved,
        "fraction_of_matmul": achieved / rate if rate else None,
        "dense_fraction_of_matmul": (
            dense_flops(flops["by_op"]) / 1e9 / seconds / rate if rate else None
        ),
    }


def _canonical_op_type(op_type):
    """oneDNN's and Grappler's op names as the TF op they stand for (_MklNativeConv2D: Conv2D)."""
    return re.sub(r"^_(MklNative|Mkl)?", "", op_type)


def _op_group(op_type):
    if op_type.startswith(FIR_OP_PREFIXES):
        return "fir"
    if "Conv2D" in op_type or "MatMul" in op_type:
        return "dense"
    if op_type in PAD_SLICE_OPS:
        return "pad_slice"
    return "other"


def _traced_op_seconds(fn, logdir):
    """Runs fn() once under the TF profiler; returns (wall s, {op type: summed op seconds}).

    The host trace holds one event per executed op (named "<op name>:<op type>") on the
    executor's threads, lasting from its start to its end, oneDNN's parallel work included.
    With two inter-op threads two ops can overlap, so the sum can exceed the wall time.
    """
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    shutil.rmtree(logdir, ignore_errors=True)
    options = tf.profiler.experimental.ProfilerOptions(
        host_tracer_level=2, python_tracer_level=0, device_tracer_level=0
    )
    tf.profiler.experimental.start(logdir, options=options)
    start = time.perf_counter()
    try:
        fn()
    finally:
        wall_s = time.perf_counter() - start
        tf.profiler.experimental.stop()
    seconds = {}
    for path in glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True):
        space = xplane_pb2.XSpace()
        with open(path, "rb") as file:
            space.ParseFromString(file.read())
        for plane in space.planes:
            if not plane.name.startswith("/host:CPU"):
                continue
            for line in plane.lines:
                for event in line.events:
                    meta = plane.event_metadata[event.metadata_id]
                    op_type = meta.display_name
                    if not op_type or not meta.name.endswith(":" + op_type) or op_type in CALL_OPS:
                        continue
                    op_type = _canonical_op_type(op_type)
                    seconds[op_type] = seconds.get(op_type, 0.0) + event.duration_ps * 1e-12
    shutil.rmtree(logdir, ignore_errors=True)
    return wall_s, dict(sorted(seconds.items(), key=lambda kv: -kv[1]))


def _time_split(wall_s, op_seconds):
    """Summed op time per group (dense / fir / pad_slice / other), and the top op types."""
    groups = {"dense": 0.0, "fir": 0.0, "pad_slice": 0.0, "other": 0.0}
    for op_type, seconds in op_seconds.items():
        groups[_op_group(op_type)] += seconds
    total = sum(groups.values())
    return {
        "wall_s": wall_s,
        "op_total_s": total,
        "group_s": groups,
        "group_share": {g: s / total if total else None for g, s in groups.items()},
        "top_ops_s": dict(list(op_seconds.items())[:10]),
        "fir_ops_s": {op: s for op, s in op_seconds.items() if _op_group(op) == "fir"},
    }


# ------------------------------------------------------------------------------------------
# Workers: each runs in its own process and writes a JSON result file.
# ------------------------------------------------------------------------------------------


def worker_matmul(args):
    """The machine's float32 matmul rate (run at the start and end of a run)."""
    return time_matmul(args.matmul_size, args.matmul_runs, dtypes=("float32",))


def _build_gan(args, for_training=True):
    import keras

    from models.stylegan2.trainer import StyleGAN2GAN

    keras.utils.set_random_seed(0)
    config = _config(args)
    start = time.perf_counter()
    # steps_per_epoch only shapes the cosine schedule, which spans max_steps anyway.
    gan = StyleGAN2GAN.from_run_config(config, steps_per_epoch=1000, for_training=for_training)
    return gan, config, time.perf_counter() - start


def _real_batch(args, resolution):
    import tensorflow as tf

    # Uniform noise in [-1, 1] stands in for real images: the compute does not depend on them.
    shape = [args.batch, resolution, resolution, 3]
    return tf.random.stateless_uniform(shape, seed=(1, 2), minval=-1.0, maxval=1.0)


def _to_floats(values):
    return {name: float(value.numpy()) for name, value in values.items()}  # syncs


def worker_train(args):
    """Times `_d_step` and `_g_step` (no regularisation), profiles their FLOPs and op times."""
    import tensorflow as tf

    gan, config, build_s = _build_gan(args)
    real = _real_batch(args, config.resolution)  # [B, R, R, 3]
    # Step 1 is no multiple of r1_interval (16) nor pl_interval (4): both conds take their
    # plain branch. Nothing here increments the step (the training loop does), so every call
    # below is such a step.
    gan.step.assign(1)
    d_step = tf.function(lambda images: gan._d_step(images))
    # The batch size as train_step passes it: tf.shape of the static-shaped batch.
    g_step = tf.function(lambda images: gan._g_step(tf.shape(images)[0]))
    losses = []

    def run(step_fn):
        return lambda: losses.append(_to_floats(step_fn(real)))

    calls = [("D step", run(d_step)), ("G step", run(g_step))]
    # Warm-up alternates D and G as train_step does; its first calls trace.
    _, warmup_times, _ = _timed_calls(calls, args.warmup, 0)
    # Read before any matmul timer, whose buffers would count as training memory.
    peak_train_kib = proc_status_kib("VmHWM")

    yardstick = _Yardstick(args.matmul_size)
    loadavg_steps = loadavg()
    times, _, others = _timed_calls(calls, 0, args.steps, yardstick)
    rate = yardstick.rate()

    # One more step of each under the profiler: where the time goes, per op type.
    logdir = os.path.join(args.work_dir, f"trace_{os.getpid()}")
    splits = {}
    for label, fn in calls:
        wall_s, op_seconds = _traced_op_seconds(fn, logdir)
        splits[label] = _time_split(wall_s, op_seconds)
        _progress(f"{label} under the profiler: {wall_s:.2f} s")

    # FLOPs of the same steps, traced with the taken cond branch inline (see _cond_inlined).
    with _cond_inlined(regularised=False):
        d_graph = tf.function(lambda images: gan._d_step(images)).get_concrete_function(real)
        g_graph = tf.function(
            lambda images: gan._g_step(tf.shape(images)[0])
        ).get_concrete_function(real)
    steps = {}
    for label, graph in (("D step", d_graph.graph), ("G step", g_graph.graph)):
        seconds = median(times[label])
        steps[label] = {
            "times_s": times[label],
            "warmup_times_s": warmup_times[label],
            "median_s": seconds,
            "images_per_s": args.batch / seconds,
            **_flop_summary(_profile(graph), seconds, rate),
            "time_split": splits[label],
        }
    return {
        "preset": args.preset,
        "batch": args.batch,
        "resolution": config.resolution,
        "channel_multiplier": config.channel_multiplier,
        "parameters": gan.parameter_counts(),
        "build_s": build_s,
        "steps": steps,
        "losses_last": losses[-1],
        "losses_finite": all_finite(losses),
        "matmul_samples_gflops": yardstick.samples,
        "matmul_local_gflops": rate,
        "others_cpu_share": others,
        "loadavg_steps_start": loadavg_steps,
        "peak_rss_train_gib": kib_to_gib(peak_train_kib),
        # With the matmul timers, the profiler and FLOP tracing: not the training peak.
        "peak_rss_end_gib": kib_to_gib(proc_status_kib("VmHWM")),
    }


def worker_train_step(args):
    """Times the full train_step on a regularisation step (R1 and path length)."""
    import tensorflow as tf

    gan, config, build_s = _build_gan(args)
    real = _real_batch(args, config.resolution)  # [B, R, R, 3]
    gan.step.assign(0)  # a multiple of both intervals: R1 and path length both run
    train_step = tf.function(gan.train_step)
    losses = []
    calls = [
        ("train_step (R1 + PL)", lambda: losses.append(_to_floats(train_step({"image": real}))))
    ]
    _, warmup_times, _ = _timed_calls(calls, args.warmup, 0)
    peak_train_kib = proc_status_kib("VmHWM")
    yardstick = _Yardstick(args.matmul_size)
    times, _, others = _timed_calls(calls, 0, args.steps, yardstick)
    rate = yardstick.rate()
    with _cond_inlined(regularised=True):
        graph = tf.function(gan.train_step).get_concrete_function({"image": real}).graph
    label = calls[0][0]
    seconds = median(times[label])
    return {
        "preset": args.preset,
        "batch": args.batch,
        "times_s": times[label],
        "warmup_times_s": warmup_times[label],
        "median_s": seconds,
        "images_per_s": args.batch / seconds,
        **_flop_summary(_profile(graph), seconds, rate),
        "losses_last": losses[-1],
        "losses_finite": all_finite(losses),
        "matmul_samples_gflops": yardstick.samples,
        "matmul_local_gflops": rate,
        "others_cpu_share": others,
        "build_s": build_s,
        "peak_rss_train_gib": kib_to_gib(peak_train_kib),
    }


def worker_synthesis(args):
    """images/s of the EMA generator (const noise) at each batch of --synth_batches."""
    import tensorflow as tf

    gan, config, build_s = _build_gan(args, for_training=False)
    sample = tf.function(lambda z: gan.sample(z, noise_mode="const"))
    batches = [int(b) for b in args.synth_batches.split(",")]
    latents = {
        b: tf.random.stateless_normal([b, config.z_dim], seed=(3, b)) for b in batches
    }  # [b, z_dim]
    yardstick = _Yardstick(args.matmul_size)
    cases = {}
    for b in batches:
        label = f"synthesis batch {b}"
        calls = [(label, lambda b=b: sample(latents[b]).numpy())]
        times, warmup_times, others = _timed_calls(
            calls, args.synth_warmup, args.synth_runs, yardstick
        )
        seconds = median(times[label])
        rate = median(yardstick.samples[-args.synth_runs - 1 :])
        flops = _profile(sample.get_concrete_function(latents[b]).graph)
        cases[str(b)] = {
            "batch": b,
            "times_s": times[label],
            "warmup_times_s": warmup_times[label],
            "median_s": seconds,
            "images_per_s": b / seconds,
            "matmul_local_gflops": rate,
            "others_cpu_share": others,
            **_flop_summary(flops, seconds, rate),
        }
    return {
        "preset": args.preset,
        "resolution": config.resolution,
        "build_s": build_s,
        "cases": cases,
        "peak_rss_gib": kib_to_gib(proc_status_kib("VmHWM")),
    }


def worker_checkpoint(args):
    """A run directory (config.json + checkpoint of a random-init EMA generator) for clustering."""
    import tensorflow as tf

    from training import run_dir as run_dir_lib

    gan, config, _ = _build_gan(args, for_training=False)
    os.makedirs(os.path.join(args.run_dir, "checkpoints"), exist_ok=True)
    run_dir_lib.write_json_atomic(
        os.path.join(args.run_dir, run_dir_lib.CONFIG_FILE), config.to_dict()
    )
    checkpoint = tf.train.Checkpoint(**gan.checkpoint_objects())
    path = checkpoint.save(os.path.join(args.run_dir, "checkpoints", "ckpt"))
    return {"checkpoint": path}


def worker_cluster(args):
    """cluster_features on --cluster_samples samples for one k, as synthesize.py runs it."""
    from models.stylegan2.export import GeneratorRunner
    from models.synthesis_in_style import clusters as feature_clusters

    start = time.perf_counter()
    runner = GeneratorRunner(args.run_dir)
    runner_s = time.perf_counter() - start
    peak_runner_kib = proc_status_kib("VmHWM")
    feature_s = []

    def feature_fn(z):
        start = time.perf_counter()
        result = runner.feature_fn(z)
        feature_s.append(time.perf_counter() - start)
        return result

    out_dir = os.path.join(args.work_dir, f"clusters_{os.getpid()}")
    before = cpu_snapshot()
    start = time.perf_counter()
    feature_clusters.cluster_features(
        feature_fn,
        num_samples=args.cluster_samples,
        batch_size=args.batch,
        k_values=[args.cluster_k],
        out_dir=out_dir,
        z_dim=runner.z_dim,
        seed=0,
        generator_meta=runner.meta(),
        layers=runner.layers,
        max_pixels_per_layer_batch=args.max_pixels,
        progress=False,
    )
    wall_s = time.perf_counter() - start
    others = others_cpu_share(before, cpu_snapshot())
    files = sum(len(names) for _, _, names in os.walk(out_dir))
    shutil.rmtree(out_dir, ignore_errors=True)
    return {
        "num_samples": args.cluster_samples,
        "batch": args.batch,
        "k": args.cluster_k,
        "max_pixels": args.max_pixels,
        "layers": len(runner.layers),
        "resolution": runner.resolution,
        "runner_s": runner_s,
        "wall_s_cluster": wall_s,
        "feature_fn_calls": len(feature_s),
        # The first call traces the feature function.
        "feature_fn_s": sum(feature_s),
        "feature_fn_first_s": feature_s[0] if feature_s else None,
        "files_written": files,
        "others_cpu_share": others,
        "peak_rss_runner_gib": kib_to_gib(peak_runner_kib),
        "peak_rss_gib": kib_to_gib(proc_status_kib("VmHWM")),
    }


WORKERS = {
    "matmul": worker_matmul,
    "train": worker_train,
    "train_step": worker_train_step,
    "synthesis": worker_synthesis,
    "checkpoint": worker_checkpoint,
    "cluster": worker_cluster,
}


# ------------------------------------------------------------------------------------------
# Parent: runs the workers, prints the report.
# ------------------------------------------------------------------------------------------


def check_targets(report):
    """PASS / FAIL / SKIP of each target, with the numbers behind it."""
    checks = []
    on_target = report["settings"]["preset"] == TARGET_PRESET
    scope = "" if on_target else f" (SKIP: targets apply to {TARGET_PRESET})"

    def add(name, passed, detail):
        status = "SKIP" if passed is None or not on_target else ("PASS" if passed else "FAIL")
        checks.append({"target": name, "status": status, "detail": detail + scope})

    train = ok(report["train"])
    for label in ("D step", "G step"):
        name = f"{label} >= {TARGET_MATMUL_FRACTION:.0%} of the float32 matmul rate"
        if train is None:
            add(name, None, "the training case failed")
            continue
        step = train["steps"][label]
        split = step["time_split"]
        detail = (
            f"{step['achieved_gflops']:.1f} GFLOP/s ({step['gflop']:.4g} GFLOP in "
            f"{step['median_s']:.2f} s) = {step['fraction_of_matmul']:.1%} of "
            f"{train['matmul_local_gflops']:.1f} GFLOP/s, the matmul rate measured between the "
            f"timed steps; FIR ops {split['group_share']['fir']:.1%} of the op time, "
            f"{step['fir_gflop'] / step['gflop']:.1%} of the FLOPs"
        )
        add(name, step["fraction_of_matmul"] >= TARGET_MATMUL_FRACTION, detail)

    cluster = ok(report["cluster"])
    settings = report["settings"]
    name = (
        f"clustering N = {settings['cluster_samples']}, batch {settings['batch']}: peak "
        f"RSS < {TARGET_CLUSTER_PEAK_GIB:.0f} GiB"
    )
    if cluster is None:
        add(name, None, "the clustering case failed or was skipped")
    else:
        add(
            name,
            cluster["peak_rss_gib"] < TARGET_CLUSTER_PEAK_GIB,
            f"{cluster['peak_rss_gib']:.2f} GiB ({cluster['wall_s_cluster']:.0f} s, "
            f"k = {cluster['k']}, {cluster['layers']} layers)",
        )
    return checks


def _failed_lines(name, result):
    lines = [f"{name} FAILED: {result['error']}"]
    return lines + [f"    {line}" for line in result.get("stderr_tail", [])[-8:]]


def _others(share):
    return fmt(share, ".0%")


def format_report(report):
    """The markdown report: machine, matmul baseline, training, synthesis, clustering, targets."""
    m, s = report["machine"], report["settings"]
    lines = [
        "## Machine",
        "",
        f"{m['cpu_model']}, {m['usable_cpus']} usable of {m['logical_cpus']} logical CPUs; "
        f"avx512f: {'yes' if m['avx512f'] else 'no'}; TensorFlow {m['tensorflow']}, "
        f"Keras {m['keras']}, Python {m['python']}; {m['date']}; "
        f"load average at start {m['loadavg_start']}, at end {m.get('loadavg_end')}.",
        "",
        f"Preset {s['preset']} (channel multiplier {s.get('channel_multiplier', '-')}), "
        f"float32, random-init weights, training batch {s['batch']}.",
        "",
        "## Matmul baseline (float32, same run)",
        "",
        "| n | start: median s | start: GFLOP/s | end: median s | end: GFLOP/s | drift |",
        "|---|---|---|---|---|---|",
    ]
    start = (ok(report["matmul_start"]) or {}).get("float32", {})
    end = (ok(report["matmul_end"]) or {}).get("float32", {})
    drift = end["gflops"] / start["gflops"] - 1.0 if start and end else None
    lines.append(
        f"| {start.get('n', end.get('n', '-'))} | {fmt(start.get('median_s'))} | "
        f"{fmt(start.get('gflops'), '.1f')} | {fmt(end.get('median_s'))} | "
        f"{fmt(end.get('gflops'), '.1f')} | {fmt(drift, '+.1%')} |"
    )
    lines += [
        "",
        "Every fraction below uses the matmul rate measured inside the case's own process, "
        "before its first and after each of its timed calls (median), i.e. under the same load. "
        "*others' CPU* is the share of the machine's CPU time other processes took meanwhile.",
        "",
        f"## Training, batch {s['batch']} (float32)",
        "",
        "| step | median s | images/s | GFLOP/step | achieved GFLOP/s | matmul GFLOP/s "
        "| % matmul | conv+matmul % matmul | FIR % FLOPs | FIR % op time | pad/slice % op time "
        "| others' CPU |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    train, reg = report["train"], report["train_step"]
    if train is not None and "error" in train:
        lines += _failed_lines("training case", train)
    elif train is not None:
        for label, step in train["steps"].items():
            split = step["time_split"]["group_share"]
            lines.append(
                f"| {label} | {fmt(step['median_s'], '.2f')} | {fmt(step['images_per_s'])} | "
                f"{fmt(step['gflop'], '.4g')} | {fmt(step['achieved_gflops'], '.1f')} | "
                f"{fmt(train['matmul_local_gflops'], '.1f')} | "
                f"{fmt(step['fraction_of_matmul'], '.1%')} | "
                f"{fmt(step['dense_fraction_of_matmul'], '.1%')} | "
                f"{fmt(step['fir_gflop'] / step['gflop'], '.1%')} | {fmt(split['fir'], '.1%')} "
                f"| {fmt(split['pad_slice'], '.1%')} | {_others(train['others_cpu_share'])} |"
            )
    if reg is not None and "error" in reg:
        lines += _failed_lines("train_step case", reg)
    elif reg is not None:
        lines.append(
            f"| train_step, R1 + PL step (info) | {fmt(reg['median_s'], '.2f')} | "
            f"{fmt(reg['images_per_s'])} | {fmt(reg['gflop'], '.4g')} | "
            f"{fmt(reg['achieved_gflops'], '.1f')} | {fmt(reg['matmul_local_gflops'], '.1f')} | "
            f"{fmt(reg['fraction_of_matmul'], '.1%')} | "
            f"{fmt(reg['dense_fraction_of_matmul'], '.1%')} | "
            f"{fmt(reg['fir_gflop'] / reg['gflop'], '.1%')} | - | - | "
            f"{_others(reg['others_cpu_share'])} |"
        )
    if ok(train):
        d, g = train["steps"]["D step"], train["steps"]["G step"]
        pair_s = d["median_s"] + g["median_s"]
        reg_note = ""
        if ok(reg):
            # In matmul-seconds: each time times the matmul rate its own case measured.
            scaled = (
                reg["median_s"]
                * reg["matmul_local_gflops"]
                / (pair_s * train["matmul_local_gflops"])
            )
            reg_note = (
                f"; a regularisation step (R1 + PL) takes {reg['median_s']:.2f} s, "
                f"{reg['median_s'] / pair_s:.2f}x that, {scaled:.2f}x once each time is scaled "
                "by its case's matmul rate (the cases may run under different loads), for "
                f"{reg['gflop'] / (d['gflop'] + g['gflop']):.2f}x the FLOPs"
            )
        lines += [
            "",
            f"D + G (a step without regularisation): {pair_s:.2f} s = "
            f"{s['batch'] / pair_s:.3g} images/s{reg_note}. Parameters: {train['parameters']}.",
            "",
            "Per step: times, FLOPs by op and network, op time by group (profiler trace of one "
            "more step; the op times overlap on 2 inter-op threads, so their sum can exceed the "
            "wall time):",
            "",
        ]

        def listing(values, spec, count=8):
            return ", ".join(f"{k} {format(v, spec)}" for k, v in list(values.items())[:count])

        for label, step in train["steps"].items():
            split = step["time_split"]
            lines += [
                f"- {label}: warm-up {', '.join(f'{t:.2f}' for t in step['warmup_times_s'])} s "
                f"(the first traces); timed {', '.join(f'{t:.2f}' for t in step['times_s'])} s",
                f"    executed {step['gflop']:.1f} GFLOP (the traced graph holds "
                f"{step['graph_gflop']:.1f}), conv+matmul {step['dense_gflop']:.1f}, FIR "
                f"{step['fir_gflop']:.2f}; FLOP count complete: "
                f"{'yes' if not (step['call_ops'] or step['unknown_shape_convs']) else 'NO'}",
                f"    GFLOP by op: {listing(step['gflop_by_op'], '.1f', 6)}",
                f"    GFLOP by part: {listing(step['gflop_by_part'], '.1f')}",
                f"    profiled step {split['wall_s']:.2f} s, op time {split['op_total_s']:.2f} s: "
                + listing(split["group_s"], ".2f")
                + " s",
                f"    top ops (s): {listing(split['top_ops_s'], '.2f')}",
                f"    FIR ops (s): {listing(split['fir_ops_s'], '.3f')}",
            ]
        lines += [
            f"- matmul GFLOP/s before the first and after each timed step: "
            f"{', '.join(f'{g:.1f}' for g in train['matmul_samples_gflops'])}; load average as "
            f"they began: {train['loadavg_steps_start']}; last losses: "
            + ", ".join(f"{k} {v:.4g}" for k, v in train["losses_last"].items())
            + f"; all finite: {'yes' if train['losses_finite'] else 'NO'}",
        ]
        if ok(reg):
            lines.append(
                f"- train_step (R1 + PL): warm-up "
                f"{', '.join(f'{t:.2f}' for t in reg['warmup_times_s'])} s; timed "
                f"{', '.join(f'{t:.2f}' for t in reg['times_s'])} s; GFLOP by op: "
                f"{listing(reg['gflop_by_op'], '.1f', 6)}; losses finite: "
                f"{'yes' if reg['losses_finite'] else 'NO'}"
            )
        lines += [
            "",
            "Peak resident memory (VmHWM after the warm-up steps, before any matmul timer): "
            f"D + G steps {fmt(train['peak_rss_train_gib'], '.2f')} GiB"
            + (
                f", train_step with R1 + PL {fmt(reg['peak_rss_train_gib'], '.2f')} GiB"
                if ok(reg)
                else ""
            )
            + ".",
        ]

    lines += ["", "## Synthesis (EMA generator, const noise)", ""]
    synthesis = report["synthesis"]
    if synthesis is not None and "error" in synthesis:
        lines += _failed_lines("synthesis case", synthesis)
    elif synthesis is not None:
        lines += [
            "| batch | median s | images/s | GFLOP/image | achieved GFLOP/s | matmul GFLOP/s "
            "| % matmul | others' CPU |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for case in synthesis["cases"].values():
            lines.append(
                f"| {case['batch']} | {fmt(case['median_s'], '.3f')} | "
                f"{fmt(case['images_per_s'])} | {fmt(case['gflop'] / case['batch'], '.3g')} | "
                f"{fmt(case['achieved_gflops'], '.1f')} | "
                f"{fmt(case['matmul_local_gflops'], '.1f')} | "
                f"{fmt(case['fraction_of_matmul'], '.1%')} | "
                f"{_others(case['others_cpu_share'])} |"
            )
        lines += ["", f"Peak RSS of the synthesis process: {synthesis['peak_rss_gib']:.2f} GiB."]

    lines += ["", "## Clustering (GeneratorRunner.feature_fn + cluster_features)", ""]
    cluster = report["cluster"]
    if cluster is None:
        lines.append("not run (--skip_cluster)")
    elif "error" in cluster:
        lines += _failed_lines("clustering case", cluster)
    else:
        synth_rate = None
        if ok(synthesis) and str(cluster["batch"]) in synthesis["cases"]:
            synth_rate = synthesis["cases"][str(cluster["batch"])]["images_per_s"]
        pure = 2 * cluster["num_samples"] / synth_rate if synth_rate else None
        lines += [
            "| N | batch | k | layers | max pixels | wall s | feature_fn s | rest s "
            "| 2 N / synthesis images/s | peak RSS GiB | others' CPU |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
            f"| {cluster['num_samples']} | {cluster['batch']} | {cluster['k']} | "
            f"{cluster['layers']} | {cluster['max_pixels']} | "
            f"{fmt(cluster['wall_s_cluster'], '.1f')} | {fmt(cluster['feature_fn_s'], '.1f')} | "
            f"{fmt(cluster['wall_s_cluster'] - cluster['feature_fn_s'], '.1f')} | "
            f"{fmt(pure, '.1f')} | {fmt(cluster['peak_rss_gib'], '.2f')} | "
            f"{_others(cluster['others_cpu_share'])} |",
            "",
            f"Both passes synthesize every sample (feature_fn: {cluster['feature_fn_calls']} calls,"
            f" the first {fmt(cluster['feature_fn_first_s'], '.1f')} s with tracing); *rest* is "
            f"k-means, assignment and {cluster['files_written']} files written. Building the "
            f"runner (restore, mean w) took {cluster['runner_s']:.1f} s, peak RSS "
            f"{cluster['peak_rss_runner_gib']:.2f} GiB by then.",
        ]

    lines += ["", f"## Targets ({TARGET_PRESET}, batch {s['batch']})", ""]
    for check in report["targets"]:
        lines.append(f"- {check['status']}: {check['target']} -- {check['detail']}")
    lines += ["", f"Run time: {report['run_time_s'] / 60:.1f} min."]
    return "\n".join(lines)


def _settings(args):
    """The run's settings: --quick's or the full run's defaults, overridden by explicit flags."""
    base = QUICK if args.quick else FULL
    settings = {}
    for key, default in base.items():
        value = getattr(args, key)
        settings[key] = default if value is None else value
    for key in (
        "batch",
        "channel_multiplier",
        "synth_batches",
        "max_pixels",
        "matmul_runs",
        "timeout_s",
        "skip_cluster",
        "skip_train_step",
    ):
        settings[key] = getattr(args, key)
    return settings


def main_parent(args):
    from models.stylegan2.config import PRESETS

    settings = _settings(args)
    if settings["preset"] not in PRESETS:
        raise ValueError(
            f"--preset={settings['preset']!r} is unknown; choose one of {', '.join(PRESETS)}"
        )
    for key in (
        "batch",
        "steps",
        "reg_steps",
        "synth_runs",
        "cluster_samples",
        "matmul_size",
        "matmul_runs",
        "max_pixels",
    ):
        if settings[key] < 1:
            raise ValueError(f"--{key} must be >= 1, got {settings[key]}")
    for key in ("warmup", "reg_warmup", "synth_warmup"):
        if settings[key] < 0:
            raise ValueError(f"--{key} must be >= 0, got {settings[key]}")
    if not 2 <= settings["cluster_k"] <= 255:
        raise ValueError(f"--cluster_k must lie in 2..255, got {settings['cluster_k']}")
    try:
        synth_batches = [int(b) for b in settings["synth_batches"].split(",")]
    except ValueError:
        synth_batches = []
    if not synth_batches or min(synth_batches) < 1:
        raise ValueError(
            f"--synth_batches={settings['synth_batches']!r} must be a "
            "comma-separated list of positive integers"
        )
    if args.json:
        json_dir = os.path.dirname(os.path.abspath(args.json))
        if not os.path.isdir(json_dir):
            raise FileNotFoundError(f"--json={args.json}: folder {json_dir} does not exist")
    if settings["channel_multiplier"] is None:
        settings["channel_multiplier"] = PRESETS[settings["preset"]].channel_multiplier

    run_start = time.perf_counter()
    report = {"machine": machine_info(), "args": vars(args), "settings": settings}
    work_dir = tempfile.mkdtemp(prefix="semsynth_bench_sg2_")
    timeout_s = settings["timeout_s"]
    model_args = [
        f"--preset={settings['preset']}",
        f"--batch={settings['batch']}",
        f"--channel_multiplier={settings['channel_multiplier']}",
        f"--work_dir={work_dir}",
        f"--matmul_size={settings['matmul_size']}",
    ]
    matmul_args = [
        f"--matmul_size={settings['matmul_size']}",
        f"--matmul_runs={settings['matmul_runs']}",
    ]

    def run(kind, extra, what):
        log(what)
        return run_worker("bench.bench_stylegan2", kind, [*model_args, *extra], work_dir, timeout_s)

    try:
        log(f"matmul baseline (start), n={settings['matmul_size']}")
        report["matmul_start"] = run_worker(
            "bench.bench_stylegan2", "matmul", matmul_args, work_dir, timeout_s
        )
        report["train"] = run(
            "train",
            [f"--warmup={settings['warmup']}", f"--steps={settings['steps']}"],
            f"training: D and G steps, {settings['warmup']} warm-up + {settings['steps']} "
            "timed each, then one profiled each",
        )
        report["train_step"] = None
        if not settings["skip_train_step"]:
            report["train_step"] = run(
                "train_step",
                [f"--warmup={settings['reg_warmup']}", f"--steps={settings['reg_steps']}"],
                f"train_step on a regularisation step: {settings['reg_warmup']} warm-up + "
                f"{settings['reg_steps']} timed",
            )
        report["synthesis"] = run(
            "synthesis",
            [
                f"--synth_batches={settings['synth_batches']}",
                f"--synth_warmup={settings['synth_warmup']}",
                f"--synth_runs={settings['synth_runs']}",
            ],
            f"synthesis at batches {settings['synth_batches']}",
        )
        report["cluster"] = None
        if not settings["skip_cluster"]:
            run_dir = os.path.join(work_dir, "run")
            checkpoint = run(
                "checkpoint",
                [f"--run_dir={run_dir}"],
                "saving a random-init EMA generator run for clustering",
            )
            if "error" in checkpoint:
                report["cluster"] = checkpoint
            else:
                report["cluster"] = run(
                    "cluster",
                    [
                        f"--run_dir={run_dir}",
                        f"--cluster_samples={settings['cluster_samples']}",
                        f"--cluster_k={settings['cluster_k']}",
                        f"--max_pixels={settings['max_pixels']}",
                    ],
                    f"clustering N={settings['cluster_samples']}, batch {settings['batch']}, "
                    f"k={settings['cluster_k']}",
                )
        log("matmul baseline (end)")
        report["matmul_end"] = run_worker(
            "bench.bench_stylegan2", "matmul", matmul_args, work_dir, timeout_s
        )
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)

    report["targets"] = check_targets(report)
    report["machine"]["loadavg_end"] = loadavg()
    report["run_time_s"] = time.perf_counter() - run_start
    print(format_report(report))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(report, file, indent=2)
        log(f"wrote {args.json}")
    cases = [report[k] for k in ("train", "train_step", "synthesis", "cluster")]
    return 1 if any(c is not None and "error" in c for c in cases) else 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_stylegan2",
        description="StyleGAN2 training / synthesis / clustering benchmark (see bench/README.md).",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="Smoke check: tiny preset, few steps, N=8 clustering, n=1024 matmul.",
    )
    parser.add_argument(
        "--preset", default=None, help=f"StyleGAN2 preset (default {TARGET_PRESET}; --quick: tiny)."
    )
    parser.add_argument(
        "--channel_multiplier",
        type=int,
        default=None,
        help="Override the preset's channel multiplier (stylegan2_256: 2).",
    )
    parser.add_argument("--batch", type=int, default=4, help="Training batch and clustering batch.")
    parser.add_argument("--steps", type=int, default=None, help="Timed D and G steps (default 3).")
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="Untimed D and G steps before them, the first traces (default 1).",
    )
    parser.add_argument(
        "--reg_steps",
        type=int,
        default=None,
        help="Timed train_step calls on a regularisation step (default 1).",
    )
    parser.add_argument(
        "--reg_warmup",
        type=int,
        default=None,
        help="Untimed train_step calls before them (default 1).",
    )
    parser.add_argument(
        "--skip_train_step",
        action="store_true",
        help="Do not time train_step on a regularisation step.",
    )
    parser.add_argument(
        "--synth_batches", default="4,1", help="Comma-separated synthesis batch sizes."
    )
    parser.add_argument(
        "--synth_warmup",
        type=int,
        default=None,
        help="Untimed synthesis calls per batch size (default 2).",
    )
    parser.add_argument(
        "--synth_runs",
        type=int,
        default=None,
        help="Timed synthesis calls per batch size (default 5).",
    )
    parser.add_argument(
        "--cluster_samples",
        type=int,
        default=None,
        help="Samples N clustered (default 100; --quick: 8).",
    )
    parser.add_argument(
        "--cluster_k", type=int, default=None, help="The one k clustered (default 20; --quick: 5)."
    )
    parser.add_argument(
        "--max_pixels",
        type=int,
        default=20000,
        help="Pixels per layer and batch fed to the k-means fit.",
    )
    parser.add_argument("--skip_cluster", action="store_true", help="Do not time clustering.")
    parser.add_argument("--json", default=None, help="Write everything measured to this file.")
    parser.add_argument(
        "--matmul_size",
        type=int,
        default=None,
        help="Side n of the square matmul baseline (default 4096; --quick 1024).",
    )
    parser.add_argument(
        "--matmul_runs",
        type=int,
        default=3,
        help="Timed matmuls of the start / end baseline (after one untimed).",
    )
    add_worker_arguments(parser, WORKERS, timeout_s=3600.0)
    # Internal: the arguments of one measurement in a worker subprocess.
    parser.add_argument("--work_dir", help=argparse.SUPPRESS)
    parser.add_argument("--run_dir", help=argparse.SUPPRESS)
    return parser


def main(argv=None):
    return run_main(build_parser(), WORKERS, main_parent, argv)


if __name__ == "__main__":
    sys.exit(main())
