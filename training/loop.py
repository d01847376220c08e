"""The SPADE training loop: distribution, input, checkpoints and resume, TensorBoard, export.

    train(config) -> summary dict

Resume is exact: the checkpoint holds every network, both optimizers and the global step; the
input pipeline is a pure function of (seed, step) (datasets/pipeline.py) and the latent noise is
keyed by the step, so a run stopped after k steps and restarted continues with exactly the
batches, noise and optimizer state of an uninterrupted run.
"""

import contextlib
import json
import math
import os
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

import datasets
from datasets import pairs as pairs_lib
from datasets import pipeline
from models.spade_gan import SPADEGAN
from semantic_labels import load_label_set
from training import distribute
from training import export as export_lib
from training import run_dir as run_dir_lib


def set_precision(policy):
    """Sets the Keras global dtype policy from --mixed_precision."""
    keras.mixed_precision.set_global_policy("float32" if policy == "none" else policy)


def image_grid(label_set, labels, reals, fakes):
    """Rows of [label colours | real | synthesized], uint8 [N*S, 3*S, 3]."""
    rows = []
    for label, real, fake in zip(labels, reals, fakes):
        rows.append(np.concatenate([label_set.colorize(label), real, fake], axis=1))
    return np.concatenate(rows, axis=0)


def _to_uint8(images):
    return np.clip(np.round((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(
        np.uint8
    )


def build_dataset_info(config):
    """Training / validation pairs and the label set of a config."""
    label_set = load_label_set(config["semantic_label_path"])
    kwargs = dict(
        data_root=config["data_root"],
        image_dir=config["image_dir"],
        label_dir=config["label_dir"],
        val_image_dir=config["val_image_dir"],
        val_label_dir=config["val_label_dir"],
        scenes_size=config["scenes_size"],
        num_scenes=config["num_scenes"],
    )
    train_pairs = datasets.resolve_pairs(config["dataset"], "training", **kwargs)
    val_pairs = datasets.resolve_pairs(config["dataset"], "validation", **kwargs)
    return label_set, train_pairs, val_pairs


def describe(config, gan):
    """The resolved config and the parameter counts, as printed by --dry_run."""
    lines = ["Resolved config:", json.dumps(config, indent=2, sort_keys=True), ""]
    lines.append("Trainable parameters:")
    for name, count in gan.parameter_counts().items():
        lines.append(f"  {name:<14s} {count:>13,d}")
    return "\n".join(lines)


def dry_run(config, out=sys.stdout):
    """Prints the resolved config and every network's trainable parameter count."""
    set_precision(config["mixed_precision"])
    label_set = load_label_set(config["semantic_label_path"])
    dry = dict(config, vgg_weights="none")  # the VGG loss network is not trained: skip loading
    gan = SPADEGAN(dry, label_set.num_classes, steps_per_epoch=1)
    print(describe(config, gan), file=out)
    return gan.parameter_counts()


def train(config, strategy=None, log=print):
    """Trains SPADE as `config` says; resumes the run in config["checkpoint_dir"] if any.

    Args:
        config: resolved config (flags.resolve_train_config).
        strategy: a tf.distribute strategy; default from config["distribute"].
        log: where one-line messages go.

    Returns:
        {"step", "losses" (last step's), "export" (path or None), "stopped" (reason)}.
    """
    from flags import RESUMABLE_KEYS  # the config contract lives with the flags

    if config["deterministic"]:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config["seed"])
    set_precision(config["mixed_precision"])
    strategy = strategy or distribute.make_strategy(config["distribute"])
    is_chief, task_id = distribute.worker_info(strategy)

    label_set, train_pairs, val_pairs = build_dataset_info(config)
    batch_size = config["batch_size"]
    if batch_size % strategy.num_replicas_in_sync:
        raise ValueError(
            f"--batch_size={batch_size} must be divisible by the {strategy.num_replicas_in_sync} "
            "replicas"
        )
    steps_per_epoch = max(1, len(train_pairs) // batch_size)
    total_steps = config["max_steps"] or config["total_epochs"] * steps_per_epoch

    run_dir = config["checkpoint_dir"]
    if is_chief:
        run_dir_lib.prepare_run_dir(config, RESUMABLE_KEYS)
    ckpt_dir = os.path.join(run_dir, "checkpoints")
    # Every worker joins the (collective) save; only the chief's files are kept.
    save_dir = ckpt_dir if is_chief else tempfile.mkdtemp(prefix=f"semsynth_worker{task_id}_")

    with strategy.scope():
        gan = SPADEGAN(config, label_set.num_classes, steps_per_epoch=steps_per_epoch)
    checkpoint = tf.train.Checkpoint(**gan.checkpoint_objects())
    manager = tf.train.CheckpointManager(
        checkpoint, save_dir, max_to_keep=config["keep_checkpoints"]
    )
    latest = tf.train.latest_checkpoint(ckpt_dir)
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
        log(f"Resumed {latest} at step {int(gan.step.numpy())}")
    start_step = int(gan.step.numpy())

    def dataset_fn(input_context):
        return pipeline.make_train_dataset(
            train_pairs,
            num_classes=label_set.num_classes,
            load_size=config["load_size"],
            crop_size=config["crop_size"],
            global_batch_size=batch_size,
            seed=config["seed"],
            start_step=start_step,
            input_context=input_context,
        )

    iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))

    def step_fn(batch):
        return gan.train_step(batch)

    @tf.function(jit_compile=config["xla"])
    def replica_step(batch):
        return step_fn(batch)

    @tf.function
    def train_step(iterator):
        batch = next(iterator)
        per_replica = strategy.run(replica_step if config["xla"] else step_fn, args=(batch,))
        gan.step.assign_add(1)
        return {
            k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
            for k, v in per_replica.items()
        }

    writer = tf.summary.create_file_writer(config["tensorboard_dir"]) if is_chief else None
    sample_pairs = (val_pairs or train_pairs)[:4]
    with _named_data_errors(sample_pairs, label_set.num_classes):
        sample_batch = _sample_batch(sample_pairs, label_set, config)
    if is_chief:
        os.makedirs(config["results_dir"], exist_ok=True)

    log(
        f"Training SPADE ({config['preset']}) on {len(train_pairs)} pairs, "
        f"{strategy.num_replicas_in_sync} replica(s), batch {batch_size}, steps "
        f"{start_step} -> {total_steps}; run dir {run_dir}"
    )
    progbar = (
        # No stateless metrics: show each step's losses, not a running average since the start.
        keras.utils.Progbar(total_steps, stateless_metrics=(), unit_name="step")
        if config["progress"] and is_chief
        else None
    )
    started = time.time()
    losses, stopped, step = {}, "finished", start_step
    window_start, window_steps = time.time(), 0
    try:
        while step < total_steps:
            if config["max_minutes"] and time.time() - started > 60 * config["max_minutes"]:
                stopped = f"time budget of {config['max_minutes']} min reached"
                break
            with _named_data_errors(train_pairs, label_set.num_classes):
                losses = train_step(iterator)
            step += 1
            window_steps += 1
            losses = {k: float(v) for k, v in losses.items()}
            if not all(math.isfinite(v) for v in losses.values()):
                manager.save(checkpoint_number=step)
                raise FloatingPointError(f"non-finite loss at step {step}: {losses}")
            if progbar is not None:
                progbar.update(step, values=list(losses.items()), finalize=False)
            if writer is not None and (step % config["print_info_freq"] == 0 or step == 1):
                elapsed = time.time() - window_start
                _write_scalars(writer, step, losses, gan, elapsed / window_steps, batch_size)
                window_start, window_steps = time.time(), 0
            if is_chief and step % config["save_img_freq"] == 0:
                _write_samples(writer, gan, sample_batch, label_set, config, step)
            if step % config["save_model_freq"] == 0:
                manager.save(checkpoint_number=step)
    except KeyboardInterrupt:
        stopped = "interrupted"
        log("\nInterrupted: saving a checkpoint before exiting.")
    step = int(gan.step.numpy())
    manager.save(checkpoint_number=step)
    if progbar is not None:
        progbar.update(step, finalize=True)
    export_path = None
    if is_chief:
        _write_samples(writer, gan, sample_batch, label_set, config, step)
        writer.flush()
        if config["export"] and stopped != "interrupted":
            export_path = export_lib.export_spade(gan, os.path.join(run_dir, "export"))
            log(f"Exported SavedModel to {export_path}")
    log(f"Stopped at step {step}: {stopped}. Checkpoints in {ckpt_dir}")
    return {"step": step, "losses": losses, "export": export_path, "stopped": stopped, "gan": gan}


@contextlib.contextmanager
def _named_data_errors(pairs, num_classes):
    """Re-raises input-pipeline failures as DatasetError naming the bad file."""
    try:
        yield
    except tf.errors.InvalidArgumentError as e:
        # The pipeline's in-graph checks name the file; a decoder error (a corrupt file) does
        # not, so then find the file the slow way.
        if "assertion failed" in e.message:
            raise pairs_lib.DatasetError(_assertion_text(e.message)) from None
        pairs_lib.diagnose_pairs(pairs, num_classes)
        raise


def _assertion_text(message):
    """The data of a failed tf.debugging.Assert, without TF's graph trace."""
    text = message[message.index("assertion failed") :]
    return "bad training data: " + text.splitlines()[0]


def _write_scalars(writer, step, losses, gan, seconds_per_step, batch_size):
    with writer.as_default(step=step):
        for name, value in losses.items():
            tf.summary.scalar(f"loss/{name}", value)
        for name, value in gan.learning_rates().items():
            tf.summary.scalar(f"lr/{name}", value)
        tf.summary.scalar("perf/step_time_s", seconds_per_step)
        tf.summary.scalar("perf/images_per_s", batch_size / max(seconds_per_step, 1e-9))


def _sample_batch(pairs, label_set, config):
    """A fixed batch of (held-out, when there are any) pairs for the sample grids."""
    dataset = pipeline.make_eval_dataset(
        pairs,
        num_classes=label_set.num_classes,
        size=config["crop_size"],
        batch_size=len(pairs),
    )
    return next(iter(dataset))


def _write_samples(writer, gan, batch, label_set, config, step):
    fake = gan.synthesize(batch["label"], training=False)
    grid = image_grid(
        label_set, batch["label"].numpy(), _to_uint8(batch["image"]), _to_uint8(fake)
    )
    Image.fromarray(grid).save(os.path.join(config["results_dir"], f"step_{step:08d}.png"))
    if writer is not None:
        with writer.as_default(step=step):
            tf.summary.image("samples/label_real_fake", grid[None], max_outputs=1)
