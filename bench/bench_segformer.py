"""SegFormer-B0 benchmark: ours against keras-hub's, side by side in the same run.

Run from the repository root (the full default run takes ~10-15 minutes on 2 CPU cores):

    python -m bench.bench_segformer [--steps N] [--warmup N] [--batch B] [--json PATH]

What is measured, at 512 x 512 with 150 classes (ADE20K), float32:

- training images/s: one AdamW step (forward, sparse cross-entropy with ignore 255 on logits at
  the label size, backward, update) under tf.function, batch 2 by default. Two versions of ours:
  "plain", the very same step function as keras-hub's (one AdamW, constant lr 6e-5, weight decay
  0.01 except on norms; only the model call differs), and "trainer", `SegFormerTrainer.train_step`
  (what train.py runs: two AdamW optimizers, encoder and decode head, poly/warm-up schedule).
- inference latency: tf.function forward at training=False, batch 1, up to full-resolution
  logits: keras-hub's segmenter ends in a Resizing layer to the input size, so ours is timed with
  `upsample_logits` to the same [1, 512, 512, 150] (and, for information, alone at 1/4).
- sliding window: `models.segformer.inference.predict_probs` over a 1024 x 2048 (H x W) image,
  tiles 512, overlap 0.25 (15 tiles), 4 tiles per call, probabilities averaged on the image.

keras-hub's SegFormer-B0 is built with random weights (MiTBackbone B0 config, image_shape
(512, 512, 3), SegFormerBackbone(projection_filters=256), SegFormerImageSegmenter(150 classes)):
the same 3,752,694 trainable parameters as ours; weights do not change the compute.

Each case runs in its own subprocess, so that its peak resident memory (VmHWM of
/proc/self/status) is its own and one case's graphs and caches cannot slow the next. Every
worker imports keras_hub (~150 MB of Python modules), ours included, so that peak memory
compares the models and steps, not the imports. Times are medians; ratios are ours / theirs from
the same run (for latencies: theirs / ours, so that above 1.0 means ours is faster). Timings are
only meaningful on an otherwise idle machine: the load average at start and end is printed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import statistics
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from bench.common import (  # noqa: E402  (after the sys.path entry for a direct run)
    add_worker_arguments,
    all_finite,
    cpu_snapshot,
    fmt,
    kib_to_gib,
    loadavg,
    log,
    machine_info,
    ok,
    others_cpu_share,
    proc_status_kib,
    run_main,
    run_worker,
)

NUM_CLASSES = 150  # ADE20K
IGNORE_INDEX = 255
IGNORED_FRACTION = 0.05  # share of label pixels set to IGNORE_INDEX in the synthetic batch
LR, WEIGHT_DECAY = 6e-5, 0.01  # SegFormer's AdamW recipe
# keras-hub's MiT-B0 configuration (identical to ours,
# models.segformer.networks.MIT_VARIANTS["b0"]).
MIT_B0 = {
    "layerwise_depths": [2, 2, 2, 2],
    "num_layers": 4,
    "layerwise_num_heads": [1, 2, 5, 8],
    "layerwise_sr_ratios": [8, 4, 2, 1],
    "max_drop_path_rate": 0.1,
    "layerwise_patch_sizes": [7, 3, 3, 3],
    "layerwise_strides": [4, 2, 2, 2],
    "hidden_dims": [32, 64, 160, 256],
}
# Sliding window: the image is SLIDE_TILES_HIGH x SLIDE_TILES_WIDE tile sizes (1024 x 2048 at
# 512), tiles overlapping by SLIDE_OVERLAP, SLIDE_BATCH tiles per call.
SLIDE_TILES_HIGH, SLIDE_TILES_WIDE = 2, 4
SLIDE_OVERLAP, SLIDE_BATCH = 0.25, 4

# Targets of the issue: ours / theirs ratios.
TARGET_SPEED_RATIO = 1.0  # ours at least as fast (training images/s, inference speed)
TARGET_MEMORY_RATIO = 1.0  # ours' peak RSS at most theirs

# A case whose timed calls shared more than this fraction of the machine's CPU time with other
# processes is flagged: its times are inflated.
CONTENTION_WARNING = 0.05


# ------------------------------------------------------------------------------------------
# Helpers shared by the parent and the workers (no TensorFlow import here).
# ------------------------------------------------------------------------------------------


def other_benchmarks():
    """Command lines of other running `bench.*` / `bench_*` processes (they skew timings)."""
    found = []
    own = {os.getpid(), os.getppid()}
    for pid in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not pid.isdigit() or int(pid) in own:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                args = file.read().split(b"\0")
        except OSError:
            continue
        text = " ".join(a.decode(errors="replace") for a in args if a)
        if "bench_" in text and "bench_segformer" not in text and "python" in text:
            found.append(f"{pid}: {text[:120]}")
    return found


# ------------------------------------------------------------------------------------------
# Workers: one measurement each, in a subprocess of the parent run.
# ------------------------------------------------------------------------------------------


def _progress(message):
    # Indented lines are echoed live by the parent.
    print(f"  {message}", file=sys.stderr, flush=True)


def _import_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    # Imported by every worker, ours included, so that peak memory compares like with like.
    importlib.import_module("keras_hub")

    return tf, keras


def _synthetic_batch(batch, size, seed=0):
    """Normalised random images [B, S, S, 3] float32 and labels [B, S, S] int32 (5% ignored)."""
    import numpy as np

    from models.segformer import networks as segformer

    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)  # [B, S, S, 3]
    images = np.asarray(segformer.preprocess(raw))  # [B, S, S, 3] float32
    labels = rng.integers(0, NUM_CLASSES, (batch, size, size)).astype(np.int32)  # [B, S, S]
    labels[rng.random(labels.shape) < IGNORED_FRACTION] = IGNORE_INDEX
    return images, labels


def build_ours():
    from models.segformer import networks as segformer

    return segformer.SegFormer("b0", num_classes=NUM_CLASSES)


def build_theirs(size):
    """keras-hub 0.32 SegFormer-B0, random weights, fixed square input `size`."""
    import keras_hub

    encoder = keras_hub.models.MiTBackbone(**MIT_B0, image_shape=(size, size, 3))
    backbone = keras_hub.models.SegFormerBackbone(image_encoder=encoder, projection_filters=256)
    return keras_hub.models.SegFormerImageSegmenter(backbone=backbone, num_classes=NUM_CLASSES)


def _trainable_count(variables):
    return int(sum(math.prod(v.shape) for v in variables))


def _timed(fn, warmup, runs, label):
    """Calls fn() warmup + runs times; returns (first call s, timed seconds list, share of the
    machine's CPU time other processes used during the timed calls)."""
    first_s, times, before = None, [], None
    for i in range(warmup + runs):
        if i == warmup:
            before = cpu_snapshot()
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        if i == 0:
            first_s = elapsed
        if i >= warmup:
            times.append(elapsed)
        _progress(
            f"{label} call {i + 1}/{warmup + runs}: {elapsed:.3f} s"
            + ("" if i >= warmup else " (warm-up)")
        )
    others = others_cpu_share(before, cpu_snapshot())
    _progress(
        f"{label}: other processes used {100 * others:.0f}% of the CPU while timed"
        if others is not None
        else f"{label}: CPU use of other processes unknown"
    )
    return first_s, times, others


def _plain_adamw():
    import keras

    optimizer = keras.optimizers.AdamW(learning_rate=LR, weight_decay=WEIGHT_DECAY)
    optimizer.exclude_from_weight_decay(var_names=["gamma", "beta"])
    return optimizer


def worker_train(args):
    """Training steps of one implementation ("ours", "ours_trainer", "theirs")."""
    tf, _ = _import_tf()
    from losses import segmentation as seg_losses

    size, batch = args.size, args.batch
    images, labels = _synthetic_batch(batch, size)
    images, labels = tf.constant(images), tf.constant(labels)

    if args.impl == "ours_trainer":
        import flags as semsynth_flags
        from models.segformer.trainer import SegFormerTrainer

        config = semsynth_flags.config_from_args(
            [
                "--model=segformer",
                "--preset=segformer_b0",
                "--dataset=ade20k",
                f"--batch_size={batch}",
                f"--crop_size={size}",
            ]
        )
        trainer = SegFormerTrainer.from_run_config(
            config, NUM_CLASSES, total_steps=config.max_steps
        )
        variables = trainer.segformer.trainable_variables
        step_fn = tf.function(trainer.train_step)
        batch_dict = {"image": images, "label": labels}

        def step():
            return float(step_fn(batch_dict)["loss"])

        step_kind = "SegFormerTrainer.train_step (2 AdamW, poly/warm-up lr)"
    else:
        if args.impl == "ours":
            model = build_ours()
            model(images[:1], training=False)  # creates the weights
        else:
            model = build_theirs(size)
        variables = model.trainable_variables
        optimizer = _plain_adamw()
        optimizer.build(variables)

        # The same function for both models: only the model differs. Our logits are at 1/4 and
        # upsampled to the label size inside cross_entropy; keras-hub's are already at 512
        # (its Resizing layer), where that upsampling is a no-op.
        @tf.function
        def train_step(images, labels):
            with tf.GradientTape() as tape:
                logits = model(images, training=True)  # [B, h, w, K] float32
                loss = seg_losses.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX)
            grads = tape.gradient(loss, variables)
            optimizer.apply_gradients(zip(grads, variables))
            return loss

        def step():
            return float(train_step(images, labels))

        step_kind = "plain AdamW step (the same function for both models)"

    rss_built = proc_status_kib("VmRSS")
    losses = []
    first_s, times, others = _timed(
        lambda: losses.append(step()), args.warmup, args.steps, f"train {args.impl}"
    )
    peak = proc_status_kib("VmHWM")
    median = statistics.median(times)
    return {
        "impl": args.impl,
        "step_kind": step_kind,
        "batch": batch,
        "size": size,
        "trainable_params": _trainable_count(variables),
        "first_call_s": first_s,
        "step_s": times,
        "others_cpu_share": others,
        "median_step_s": median,
        "images_per_s": batch / median,
        "losses": losses,
        "losses_finite": all_finite(losses),
        "rss_after_build_kib": rss_built,
        "peak_rss_kib": peak,
    }


def worker_infer(args):
    """Forward latency at training=False, batch 1, of one implementation ("ours", "theirs")."""
    tf, _ = _import_tf()
    from models.segformer import networks as segformer

    size = args.size
    images, _ = _synthetic_batch(1, size)
    images = tf.constant(images)
    if args.impl == "ours":
        model = build_ours()
        forward = tf.function(
            lambda x: model(x, training=False), autograph=False
        )  # [1, S/4, S/4, K]
        # The same output as keras-hub's segmenter: logits at the input size.
        full = tf.function(
            lambda x: segformer.upsample_logits(model(x, training=False), (size, size)),
            autograph=False,
        )  # [1, S, S, K]
        functions = {"full_resolution": full, "quarter_resolution": forward}
    else:
        model = build_theirs(size)
        functions = {
            "full_resolution": tf.function(lambda x: model(x, training=False), autograph=False)
        }
    rss_built = None
    result = {"impl": args.impl, "size": size, "cases": {}}
    for name, function in functions.items():
        shape = None

        def call(function=function):
            nonlocal shape
            out = function(images)
            shape = tuple(out.shape)
            # One element to host: a CPU tf.function has finished when it returns.
            float(out[0, 0, 0, 0])

        if rss_built is None:
            rss_built = proc_status_kib("VmRSS")
        first_s, times, others = _timed(
            call, args.infer_warmup, args.infer_runs, f"infer {args.impl} {name}"
        )
        result["cases"][name] = {
            "output_shape": list(shape),
            "first_call_s": first_s,
            "latency_s": times,
            "others_cpu_share": others,
            "median_latency_s": statistics.median(times),
            # The full-resolution function runs first: its peak is that of the process so far.
            "peak_rss_kib": proc_status_kib("VmHWM"),
        }
    result["trainable_params"] = _trainable_count(model.trainable_variables)
    result["rss_after_build_kib"] = rss_built
    result["peak_rss_kib"] = result["cases"]["full_resolution"]["peak_rss_kib"]
    return result


def worker_slide(args):
    """Sliding-window probabilities of a (2 x 4 tiles) image with one implementation."""
    tf, _ = _import_tf()
    import numpy as np

    from models.segformer import networks as segformer
    from models.segformer.inference import predict_probs, tile_origins

    tile = args.size
    height, width = SLIDE_TILES_HIGH * tile, SLIDE_TILES_WIDE * tile
    rng = np.random.default_rng(1)
    raw = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)  # [H, W, 3]
    image = np.asarray(segformer.preprocess(raw))  # [H, W, 3] float32
    model = build_ours() if args.impl == "ours" else build_theirs(tile)
    # A batch dimension of None: the last call of an image holds fewer tiles, no retrace.
    predict_fn = tf.function(
        lambda x: model(x, training=False),
        input_signature=[tf.TensorSpec([None, tile, tile, 3], tf.float32)],
        autograph=False,
    )
    stride = max(1, int(round(tile * (1.0 - SLIDE_OVERLAP))))
    num_tiles = len(tile_origins(height, tile, stride)) * len(tile_origins(width, tile, stride))
    rss_built = proc_status_kib("VmRSS")
    shape = None

    def call():
        nonlocal shape
        probs = predict_probs(
            predict_fn,
            image,
            NUM_CLASSES,
            mode="slide",
            tile=(tile, tile),
            overlap=SLIDE_OVERLAP,
            batch_size=SLIDE_BATCH,
        )
        shape = probs.shape

    first_s, times, others = _timed(call, args.slide_warmup, args.slide_runs, f"slide {args.impl}")
    median = statistics.median(times)
    return {
        "impl": args.impl,
        "image_hw": [height, width],
        "tile": tile,
        "overlap": SLIDE_OVERLAP,
        "tiles_per_image": num_tiles,
        "tiles_per_call": SLIDE_BATCH,
        "output_shape": list(shape),
        "first_call_s": first_s,
        "image_s": times,
        "others_cpu_share": others,
        "median_image_s": median,
        "images_per_s": 1.0 / median,
        "tiles_per_s": num_tiles / median,
        "trainable_params": _trainable_count(model.trainable_variables),
        "rss_after_build_kib": rss_built,
        "peak_rss_kib": proc_status_kib("VmHWM"),
    }


WORKERS = {"train": worker_train, "infer": worker_infer, "slide": worker_slide}


# ------------------------------------------------------------------------------------------
# Parent: runs the workers, prints the report.
# ------------------------------------------------------------------------------------------


def _run_worker(kind, worker_args, work_dir, timeout_s):
    """Runs `python -m bench.bench_segformer --worker=kind ...`; returns its result or error."""
    return run_worker(
        "bench.bench_segformer", kind, worker_args, work_dir, timeout_s, args_in_error=True
    )


def _contention(result):
    """Largest share of the CPU other processes took during a case's timed calls (or None)."""
    shares = [
        values.get("others_cpu_share") for values in (result.get("cases") or {"": result}).values()
    ]
    shares = [share for share in shares if share is not None]
    return max(shares) if shares else None


def _run_case(name, kind, worker_args, work_dir, args):
    """Runs one case; reruns it (up to --retries times) while other processes took more than
    --max_contention of the CPU during its timed calls, and keeps the least disturbed attempt.
    On a shared machine this is what keeps one case's load from deciding a ratio."""
    attempts, best = [], None
    for attempt in range(1 + args.retries):
        log(f"case {name} ..." if attempt == 0 else f"case {name}, attempt {attempt + 1} ...")
        result = _run_worker(kind, worker_args, work_dir, args.timeout_s)
        if "error" in result:
            log(f"case {name} FAILED: {result['error']}")
            for line in result["stderr_tail"][-10:]:
                log(f"    {line}")
            return result
        share = _contention(result)
        attempts.append(share)
        log(
            f"case {name} done in {result['wall_s']:.0f} s; other processes' CPU share while "
            f"timed: {fmt(None if share is None else 100 * share, '.0f')}%"
        )
        if best is None or (share is not None and share < _contention(best)):
            best = result
        if share is None or share <= args.max_contention:
            break
        if attempt < args.retries:
            log(
                f"case {name}: more than {100 * args.max_contention:.0f}% taken by other "
                f"processes; waiting {args.retry_wait_s:.0f} s and running it again"
            )
            time.sleep(args.retry_wait_s)
    best["attempts_others_cpu_share"] = attempts
    return best


def _ratio(numerator, denominator):
    if numerator is None or denominator in (None, 0):
        return None
    return numerator / denominator


def _get(result, *keys):
    """Nested lookup that gives None on a failed case or a missing key."""
    value = ok(result)
    for key in keys:
        if value is None:
            return None
        value = value.get(key) if isinstance(value, dict) else None
    return value


def compare(cases):
    """Ratios ours / theirs (speed: > 1 means ours is faster; memory: < 1 means ours is smaller)
    and the PASS / FAIL lines of the targets."""
    ours_plain, ours_trainer, theirs = (
        cases.get(k) for k in ("train_ours", "train_ours_trainer", "train_theirs")
    )
    infer_ours, infer_theirs = cases.get("infer_ours"), cases.get("infer_theirs")
    slide_ours, slide_theirs = cases.get("slide_ours"), cases.get("slide_theirs")
    their_latency = _get(infer_theirs, "cases", "full_resolution", "median_latency_s")

    rows = []  # (quantity, ours, theirs, ratio, target or None)

    def add(name, ours, theirs_value, ratio, target, unit_spec=".3g"):
        rows.append(
            {
                "quantity": name,
                "ours": ours,
                "theirs": theirs_value,
                "ratio": ratio,
                "target": target,
                "spec": unit_spec,
            }
        )

    for label, ours in (("plain step", ours_plain), ("SegFormerTrainer.train_step", ours_trainer)):
        ours_ips = _get(ours, "images_per_s")
        theirs_ips = _get(theirs, "images_per_s")
        add(
            f"train images/s ({label})",
            ours_ips,
            theirs_ips,
            _ratio(ours_ips, theirs_ips),
            (">=", TARGET_SPEED_RATIO),
        )
    for label, key in (
        ("full-res logits, as theirs", "full_resolution"),
        ("1/4-res logits, ours only", "quarter_resolution"),
    ):
        ours_latency = _get(infer_ours, "cases", key, "median_latency_s")
        target = (">=", TARGET_SPEED_RATIO) if key == "full_resolution" else None
        add(
            f"inference ms, batch 1 ({label}); ratio = speed",
            None if ours_latency is None else 1e3 * ours_latency,
            None if their_latency is None else 1e3 * their_latency,
            _ratio(their_latency, ours_latency),
            target,
        )
    slide_ours_ips, slide_theirs_ips = (_get(r, "images_per_s") for r in (slide_ours, slide_theirs))
    add(
        "sliding window images/s (tiles/s = x15)",
        slide_ours_ips,
        slide_theirs_ips,
        _ratio(slide_ours_ips, slide_theirs_ips),
        None,
    )
    for label, ours_case, theirs_case in (
        ("train, plain step", ours_plain, theirs),
        ("train, SegFormerTrainer", ours_trainer, theirs),
        ("inference", infer_ours, infer_theirs),
        ("sliding window", slide_ours, slide_theirs),
    ):
        ours_gib, theirs_gib = (
            kib_to_gib(_get(c, "peak_rss_kib")) for c in (ours_case, theirs_case)
        )
        target = None if label == "sliding window" else ("<=", TARGET_MEMORY_RATIO)
        add(f"peak RSS GiB ({label})", ours_gib, theirs_gib, _ratio(ours_gib, theirs_gib), target)
    for row in rows:
        if row["target"] is None:
            row["verdict"] = ""
        elif row["ratio"] is None:
            row["verdict"] = "SKIP"
        else:
            op, bound = row["target"]
            ok = row["ratio"] >= bound if op == ">=" else row["ratio"] <= bound
            row["verdict"] = "PASS" if ok else "FAIL"
    return rows


def format_report(report):
    machine, cases, rows = report["machine"], report["cases"], report["comparison"]
    lines = [
        "## SegFormer-B0: ours vs keras-hub (same run)",
        "",
        f"Machine: {machine['cpu_model']}, {machine['usable_cpus']} usable cores "
        f"({machine['logical_cpus']} logical); TF {machine['tensorflow']}, Keras "
        f"{machine['keras']}, keras-hub {machine['keras_hub']}, Python {machine['python']}; "
        f"{machine['date']}; load average start {machine['loadavg_start']}, end "
        f"{machine.get('loadavg_end')}.",
        f"Settings: {report['size']}x{report['size']}, {NUM_CLASSES} classes, float32; "
        f"train batch {report['batch']}, {report['warmup']} warm-up + {report['steps']} timed "
        f"steps; inference batch 1, {report['infer_warmup']} + {report['infer_runs']} calls; "
        f"sliding window {SLIDE_TILES_HIGH * report['size']}x{SLIDE_TILES_WIDE * report['size']}"
        f" (HxW), tile {report['size']}, overlap {SLIDE_OVERLAP}, {SLIDE_BATCH} tiles/call, "
        f"{report['slide_warmup']} + {report['slide_runs']} images. Medians.",
    ]
    if report.get("other_benchmarks"):
        lines.append(
            "WARNING: other benchmarks were running, timings are unreliable: "
            + "; ".join(report["other_benchmarks"])
        )
    lines += [
        "",
        "| quantity | ours | keras-hub | ratio ours/theirs | target | |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        target = "" if row["target"] is None else f"{row['target'][0]} {row['target'][1]:g}"
        lines.append(
            f"| {row['quantity']} | {fmt(row['ours'])} | {fmt(row['theirs'])} | "
            f"{fmt(row['ratio'], '.3f')} | {target} | {row['verdict']} |"
        )
    verdicts = [row["verdict"] for row in rows if row["verdict"]]
    overall = "PASS" if verdicts and all(v == "PASS" for v in verdicts) else "FAIL"
    lines += ["", f"Overall: {overall} ({verdicts.count('PASS')}/{len(verdicts)} targets met)"]

    lines += [
        "",
        "| case | median s | min s | max s | n | first call s | params | RSS built GiB "
        "| peak RSS GiB | others' CPU % | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    contended = []
    for name, case in cases.items():
        if not ok(case):
            lines.append(
                f"| {name} | FAILED: {case.get('error') if case else 'not run'} | | | | | | | | | |"
            )
            continue
        subcases = case.get("cases") or {"": case}
        for sub, values in subcases.items():
            times = values.get("step_s") or values.get("latency_s") or values.get("image_s")
            others = values.get("others_cpu_share")
            attempts = case.get("attempts_others_cpu_share") or []
            reruns = f" (best of {len(attempts)})" if len(attempts) > 1 else ""
            if others is not None and others > CONTENTION_WARNING:
                contended.append(f"{name}{' ' + sub if sub else ''} ({100 * others:.0f}%)")
            lines.append(
                f"| {name}{' ' + sub if sub else ''} | {fmt(statistics.median(times), '.4g')} "
                f"| {fmt(min(times), '.4g')} | {fmt(max(times), '.4g')} | {len(times)} "
                f"| {fmt(values.get('first_call_s'), '.3g')} "
                f"| {case.get('trainable_params', '-')} "
                f"| {fmt(kib_to_gib(case.get('rss_after_build_kib')), '.3f')} "
                f"| {fmt(kib_to_gib(values.get('peak_rss_kib')), '.3f')} "
                f"| {fmt(None if others is None else 100 * others, '.0f')}{reruns} "
                f"| {fmt(case['wall_s'], '.0f')} |"
            )
    if contended:
        lines += [
            "",
            f"WARNING: other processes used more than {100 * CONTENTION_WARNING:.0f}% "
            "of the machine's CPU time during the timed calls of: "
            + ", ".join(contended)
            + ". Those times are inflated; rerun on an idle machine.",
        ]
    notes = []
    for name in ("train_ours", "train_ours_trainer", "train_theirs"):
        case = ok(cases.get(name))
        if case:
            losses = ", ".join(f"{v:.3f}" for v in case["losses"][-3:])
            notes.append(
                f"- {name}: {case['step_kind']}; last losses {losses}; "
                f"all finite: {case['losses_finite']}"
            )
    for name in ("slide_ours", "slide_theirs"):
        case = ok(cases.get(name))
        if case:
            notes.append(
                f"- {name}: {case['tiles_per_image']} tiles/image, "
                f"{case['tiles_per_s']:.3g} tiles/s, output {case['output_shape']}"
            )
    lines += ["", *notes, "", f"Total wall time: {report['wall_s']:.0f} s"]
    return "\n".join(lines)


def main_parent(args):
    if args.size % 32 or args.size < 64:
        raise ValueError(f"--size={args.size} must be a multiple of 32 and >= 64")
    for name in ("steps", "warmup", "batch", "infer_runs", "slide_runs", "retries"):
        minimum = 0 if name in ("warmup", "retries") else 1
        if getattr(args, name) < minimum:
            raise ValueError(f"--{name} must be >= {minimum}, got {getattr(args, name)}")
    started = time.perf_counter()
    machine = machine_info()
    others = other_benchmarks()
    if others:
        log(
            "WARNING: other benchmarks are running, timings will be unreliable: "
            + "; ".join(others)
        )
    common = [f"--size={args.size}"]
    train_args = [
        *common,
        f"--batch={args.batch}",
        f"--steps={args.steps}",
        f"--warmup={args.warmup}",
    ]
    infer_args = [*common, f"--infer_runs={args.infer_runs}", f"--infer_warmup={args.infer_warmup}"]
    slide_args = [*common, f"--slide_runs={args.slide_runs}", f"--slide_warmup={args.slide_warmup}"]
    plan = [
        ("train_ours", "train", ["--impl=ours", *train_args]),
        ("train_theirs", "train", ["--impl=theirs", *train_args]),
        ("train_ours_trainer", "train", ["--impl=ours_trainer", *train_args]),
        ("infer_ours", "infer", ["--impl=ours", *infer_args]),
        ("infer_theirs", "infer", ["--impl=theirs", *infer_args]),
        ("slide_ours", "slide", ["--impl=ours", *slide_args]),
    ]
    if not args.skip_slide_theirs:
        plan.append(("slide_theirs", "slide", ["--impl=theirs", *slide_args]))
    cases = {}
    with tempfile.TemporaryDirectory(prefix="semsynth_bench_segformer_") as work_dir:
        for name, kind, worker_args in plan:
            cases[name] = _run_case(name, kind, worker_args, work_dir, args)
    machine["loadavg_end"] = loadavg()
    report = {
        "machine": machine,
        "other_benchmarks": others + [o for o in other_benchmarks() if o not in others],
        "size": args.size,
        "batch": args.batch,
        "steps": args.steps,
        "warmup": args.warmup,
        "infer_runs": args.infer_runs,
        "infer_warmup": args.infer_warmup,
        "slide_runs": args.slide_runs,
        "slide_warmup": args.slide_warmup,
        "cases": cases,
    }
    report["comparison"] = compare(cases)
    report["wall_s"] = time.perf_counter() - started
    print(format_report(report), flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(report, file, indent=2)
        log(f"wrote {args.json}")
    return 0 if all(ok(c) for c in cases.values()) else 1


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_segformer",
        description="SegFormer-B0 training / inference / sliding-window benchmark, ours "
        "against keras-hub's in the same run (see bench/README.md).",
    )
    parser.add_argument("--steps", type=int, default=10, help="Timed training steps per case.")
    parser.add_argument(
        "--warmup",
        type=int,
        default=2,
        help="Untimed training steps before them (the first traces).",
    )
    parser.add_argument("--batch", type=int, default=2, help="Training batch size.")
    parser.add_argument("--infer_runs", type=int, default=20, help="Timed inference calls.")
    parser.add_argument("--infer_warmup", type=int, default=3, help="Untimed inference calls.")
    parser.add_argument("--slide_runs", type=int, default=3, help="Timed sliding-window images.")
    parser.add_argument(
        "--slide_warmup", type=int, default=1, help="Untimed sliding-window images."
    )
    parser.add_argument(
        "--skip_slide_theirs",
        action="store_true",
        help="Do not run keras-hub's model through the sliding window.",
    )
    parser.add_argument("--json", default=None, help="Write everything measured to this file.")
    add_worker_arguments(parser, WORKERS, timeout_s=1200.0)
    parser.add_argument(
        "--max_contention",
        type=float,
        default=0.10,
        help="Rerun a case when other processes took more than this fraction "
        "of the machine's CPU time during its timed calls.",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        help="Reruns per case at most (the least disturbed attempt is kept).",
    )
    parser.add_argument("--retry_wait_s", type=float, default=30.0, help="Pause before a rerun.")
    # Image / tile side (512); smaller sizes are for smoke runs of the script only.
    parser.add_argument("--size", type=int, default=512, help=argparse.SUPPRESS)
    # Internal: the arguments of one measurement in a worker subprocess.
    parser.add_argument(
        "--impl", choices=("ours", "ours_trainer", "theirs"), help=argparse.SUPPRESS
    )
    return parser


def main(argv=None):
    return run_main(build_parser(), WORKERS, main_parent, argv)


if __name__ == "__main__":
    sys.exit(main())
