"""Helpers shared by the benchmark scripts (bench/bench_*.py), independent of any model.

Importing this module does not import TensorFlow: the parent process of a benchmark only
starts workers and formats reports, and its own memory and start-up should stay small. The
helpers that need TensorFlow (MatmulTimer, time_matmul, live_ops, profile_flops) import it
when called, inside the worker processes.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import math
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import threading
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIB = 2.0**30
# Ops whose FLOPs a matmul rate is a fair yardstick for (see dense_flops).
DENSE_OPS = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter")


# ------------------------------------------------------------------------------------------
# Machine, memory and numbers (no TensorFlow import).
# ------------------------------------------------------------------------------------------


def proc_status_kib(field):
    """A memory field of /proc/self/status ("VmHWM", "VmRSS") in KiB, or None off Linux."""
    try:
        with open("/proc/self/status", encoding="ascii") as file:
            for line in file:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def kib_to_gib(kib):
    """KiB to GiB; None stays None (a field proc_status_kib could not read)."""
    return None if kib is None else kib * 1024 / GIB


def loadavg():
    """The 1, 5 and 15 minute load averages of /proc/loadavg, or None off Linux."""
    try:
        with open("/proc/loadavg", encoding="ascii") as file:
            return [float(v) for v in file.read().split()[:3]]
    except OSError:
        return None


def package_version(package):
    """The installed version of a distribution ("tensorflow", "keras-hub"), or None."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info():
    """CPU model, cores, bf16-relevant CPU flags, library versions, date, load (no TF import)."""
    model, cpu_flags = None, None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as file:
            for line in file:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model is None:
                    model = value.strip()
                elif key == "flags" and cpu_flags is None:
                    cpu_flags = set(value.split())
                if model is not None and cpu_flags is not None:
                    break  # the first CPU's: every core of a machine reports the same
    except OSError:
        pass
    model = model or platform.processor() or "unknown"
    cpu_flags = cpu_flags or set()
    try:
        usable_cores = len(os.sched_getaffinity(0))
    except AttributeError:
        usable_cores = os.cpu_count()
    return {
        "cpu_model": model,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable_cores,
        # bf16 is only a speed lever on CPUs with native bf16 dot products (Zen 4, Cooper
        # Lake, Sapphire Rapids); elsewhere bf16 kernels convert to float32 and lose.
        "avx512_bf16": "avx512_bf16" in cpu_flags,
        "amx_bf16": "amx_bf16" in cpu_flags,
        "avx512f": "avx512f" in cpu_flags,
        "tensorflow": package_version("tensorflow"),
        "keras": package_version("keras"),
        "keras_hub": package_version("keras-hub"),
        "python": platform.python_version(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "loadavg_start": loadavg(),
    }


def median(values):
    """The median of `values`, or None when there are none."""
    return statistics.median(values) if values else None


def all_finite(values):
    """Whether every number in `values` (a number, or lists / tuples / dicts of them) is finite."""
    if isinstance(values, dict):
        return all(all_finite(v) for v in values.values())
    if isinstance(values, (list, tuple)):
        return all(all_finite(v) for v in values)
    return math.isfinite(values)


# ------------------------------------------------------------------------------------------
# The matmul yardstick and FLOP counts (TensorFlow imported when called).
# ------------------------------------------------------------------------------------------


class MatmulTimer:
    """Times one n x n matmul of `dtype` per call to `seconds()` (tf.function).

    The operands are made afresh for every call and freed after it, so that holding a timer
    costs no memory between calls (a benchmark may measure its peak memory meanwhile).

    Args:
        n: side of the square matrices.
        dtype: "float32" or "bfloat16".
    """

    def __init__(self, n, dtype):
        import tensorflow as tf

        self.n, self.dtype = int(n), dtype
        # Reducing in the graph keeps the host copy out of the timing; it costs n^2 adds
        # against the matmul's 2 n^3 FLOPs.
        self._matmul = tf.function(lambda a, b: tf.reduce_sum(tf.matmul(a, b)))
        self.seconds()  # traces, creates the oneDNN primitive: not a representative time

    def seconds(self):
        """Wall time of one matmul (operands made outside the timing)."""
        import tensorflow as tf

        shape = (self.n, self.n)
        a = tf.cast(tf.random.stateless_normal(shape, seed=(1, 2)), self.dtype)  # [n, n]
        b = tf.cast(tf.random.stateless_normal(shape, seed=(3, 4)), self.dtype)  # [n, n]
        start = time.perf_counter()
        self._matmul(a, b).numpy()
        return time.perf_counter() - start

    def gflops(self):
        """The rate of one timed matmul in GFLOP/s (2 n^3 FLOPs)."""
        return 2.0 * self.n**3 / self.seconds() / 1e9


def time_matmul(n, runs, dtypes=("float32", "bfloat16")):
    """{dtype: median time and GFLOP/s of an n x n matmul over `runs` timed runs}."""
    results = {}
    for dtype in dtypes:
        timer = MatmulTimer(n, dtype)
        times = [timer.seconds() for _ in range(runs)]
        seconds = median(times)
        results[dtype] = {
            "n": n,
            "times_s": times,
            "median_s": seconds,
            "gflops": 2.0 * n**3 / seconds / 1e9,
        }
    return results


def live_ops(graph):
    """Names of the ops TF executes: those the outputs or a side effect depend on.

    tf.function prunes the rest when it instantiates the graph. A gradient tape leaves many
    such ops behind (in a GAN: Conv2DBackpropFilter of frozen or non-target weights, such as a
    perceptual-loss VGG or D in the G step; Conv2DBackpropInput of convs over a constant
    input). Counting them would overstate the work done per step.
    """
    roots = [tensor.op for tensor in graph.outputs]
    roots += list(getattr(graph, "control_outputs", []))
    roots += [op for op in graph.get_operations() if op.op_def.is_stateful]
    live, pending = set(), roots
    while pending:
        op = pending.pop()
        if op.name in live:
            continue
        live.add(op.name)
        pending.extend(tensor.op for tensor in op.inputs)
        pending.extend(op.control_inputs)
    return live


def _other_network(network):
    return "other"


def profile_flops(graph, networks=None, layer_kinds=(), fallback=_other_network):
    """FLOPs of a traced graph with static shapes, counted by TF's v1 profiler.

    Op names are read as "[gradient_tape/]<network>_<k>/<block>_<k>/<layer>_<k>/..." (Keras'
    name scopes, with the "_<k>" uniquifying suffixes dropped).

    Args:
        graph: a tf.Graph, e.g. `tf_function.get_concrete_function(...).graph`.
        networks: top-level scope names counted as parts of their own ("generator", ...); any
            other top-level name goes through `fallback`. None: every name is its own part.
        layer_kinds: scope names whose FLOPs are summed in "by_layer" ("conv_0", "fc", ...);
            an op counts for the first of its scopes that is one of them.
        fallback: maps a top-level name not in `networks` to the part it counts for.

    Returns:
        {"graph": FLOPs of every op in the graph, "executed": FLOPs of the ops TF runs (see
        live_ops), "by_op": {op type: executed FLOPs}, "by_part": {"<network> forward" /
        "<network> backward": executed FLOPs}, "by_layer": {layer kind: executed FLOPs}},
        each dict sorted by decreasing FLOPs.
    """
    import tensorflow as tf

    profiler = tf.compat.v1.profiler
    options = (
        profiler.ProfileOptionBuilder(profiler.ProfileOptionBuilder.float_operation())
        .with_empty_output()
        .build()
    )
    # The "scope" view holds every op with FLOPs as a node carrying its own count.
    result = profiler.profile(graph=graph, cmd="scope", options=options)
    node_flops, pending = {}, list(result.children)
    while pending:
        node = pending.pop()
        node_flops[node.name] = node_flops.get(node.name, 0) + int(node.float_ops)
        pending.extend(node.children)
    live = live_ops(graph)
    by_op, by_part, by_layer = {}, {}, {}
    for name, flops in node_flops.items():
        if name not in live or not flops:
            continue
        op_type = graph.get_operation_by_name(name).type
        by_op[op_type] = by_op.get(op_type, 0) + flops
        parts = [re.sub(r"_\d+$", "", part) for part in name.split("/")]
        backward = parts[0] == "gradient_tape"
        network = parts[1] if backward and len(parts) > 1 else parts[0]
        if networks is not None and network not in networks:
            network = fallback(network)
        part = f"{network} {'backward' if backward else 'forward'}"
        by_part[part] = by_part.get(part, 0) + flops
        kind = next((p for p in parts if p in layer_kinds), None)
        if kind is not None:
            by_layer[kind] = by_layer.get(kind, 0) + flops

    def ranked(counts):
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))

    return {
        "graph": int(result.total_float_ops),
        "executed": sum(by_op.values()),
        "by_op": ranked(by_op),
        "by_part": ranked(by_part),
        "by_layer": ranked(by_layer),
    }


def dense_flops(by_op):
    """FLOPs of the convolution and matmul ops: the part a matmul rate is a fair yardstick for."""
    return sum(flops for op, flops in by_op.items() if op in DENSE_OPS or "MatMul" in op)


# ------------------------------------------------------------------------------------------
# Parent side: workers in subprocesses, logging, report formatting.
# ------------------------------------------------------------------------------------------


def log(message):
    """Prints a time-stamped progress line to stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_worker(module, kind, worker_args, work_dir, timeout_s, args_in_error=False):
    """Runs `python -m <module> --worker=kind --result=... *worker_args`; returns its result.

    The worker writes its result as JSON to the --result path; the returned dict gets
    "wall_s" added. Its stderr lines starting with two spaces (its progress) are echoed live.
    On a failure (a non-zero exit, no result file, killed at `timeout_s` seconds) the result
    is {"error": ..., "stderr_tail": last 30 stderr lines, "wall_s": ...}; the error names
    `worker_args` too when `args_in_error` is set.
    """
    result_path = os.path.join(work_dir, f"result_{kind}_{time.monotonic_ns()}.json")
    command = [
        sys.executable,
        "-m",
        module,
        f"--worker={kind}",
        f"--result={result_path}",
        *worker_args,
    ]
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    start = time.perf_counter()
    # stderr is echoed live (progress) and its tail kept for the report if the worker fails.
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )
    # A hung worker is killed at the limit even while it prints nothing.
    timer = threading.Timer(timeout_s, process.kill)
    timer.start()
    tail = []
    try:
        for line in process.stderr:
            tail = (tail + [line.rstrip()])[-30:]
            if line.startswith("  "):  # the workers' own progress lines
                print(line.rstrip(), file=sys.stderr, flush=True)
        returncode = process.wait()
    finally:
        timer.cancel()
    wall_s = time.perf_counter() - start
    if returncode != 0 or not os.path.isfile(result_path):
        worker = f"{kind} {' '.join(worker_args)}" if args_in_error else kind
        reason = f"worker {worker} exited with {returncode} after {wall_s:.0f} s"
        return {"error": reason, "stderr_tail": tail, "wall_s": wall_s}
    with open(result_path, encoding="utf-8") as file:
        result = json.load(file)
    result["wall_s"] = wall_s
    return result


def ok(result):
    """The result of a worker, or None if it failed (an "error" key) or did not run."""
    return None if result is None or "error" in result else result


def fmt(value, spec=".3g", missing="-"):
    """`value` formatted with `spec` for a table cell; `missing` for None, NaN and inf."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    return format(value, spec)


def cpu_snapshot():
    """(CPU seconds the whole machine was busy, CPU seconds of this process, wall time)."""
    busy = None
    try:
        with open("/proc/stat", encoding="ascii") as file:
            values = [int(v) for v in file.readline().split()[1:9]]
        # user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
        busy = (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        pass
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return busy, usage.ru_utime + usage.ru_stime, time.perf_counter()


def others_cpu_share(before, after):
    """Share of the machine's CPU time other processes used between two cpu_snapshot()s, or
    None where /proc/stat is unreadable."""
    if before[0] is None or after[0] is None or after[2] <= before[2]:
        return None
    others = (after[0] - before[0]) - (after[1] - before[1])
    return max(0.0, others / ((after[2] - before[2]) * (os.cpu_count() or 1)))


def add_worker_arguments(parser, workers, timeout_s):
    """The arguments every benchmark's parent / worker split needs: --timeout_s (public), and
    --worker / --result (internal: one measurement in a subprocess of the parent run)."""
    import argparse

    parser.add_argument(
        "--timeout_s",
        type=float,
        default=timeout_s,
        help="Wall-clock limit of each worker process.",
    )
    parser.add_argument("--worker", choices=sorted(workers), help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)


def run_main(parser, workers, main_parent, argv=None):
    """A benchmark's entry point: `--worker=KIND` runs one measurement of `workers` and writes
    its JSON to --result (in the subprocess run_worker starts); otherwise main_parent(args)
    runs the whole benchmark, input errors becoming a usage error."""
    args = parser.parse_args(argv)
    if args.worker:
        result = workers[args.worker](args)
        with open(args.result, "w", encoding="utf-8") as file:
            json.dump(result, file, indent=2)
        return 0
    try:
        return main_parent(args)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
