"""The training loop shared by every model family: distribution, input, checkpoints and resume,
TensorBoard, progress, export.

    train(config) -> summary dict      (dispatches on config.model)
    fit(task, config) -> summary dict   (any family's task object, e.g. models/spade/task.py)

Resume is exact: the checkpoint holds every network, the optimizers and the global step; the
input pipelines are pure functions of (seed, step) (datasets/pipeline.py) and any noise is keyed
by the step, so a run stopped after k steps and restarted continues with exactly the batches,
noise and optimizer state of an uninterrupted run.

A task provides: `title`, `train_pairs` (the training files), `num_classes`,
`monitoring_pairs`, `build(steps_per_epoch)` -> model (with `step`, `train_step(batch)`,
`checkpoint_objects()`, `learning_rates()`, `parameter_counts()`), `dataset_fn(input_context,
start_step)`, `prepare_monitoring()`, `write_samples(writer, step)`, `evaluate(strategy, writer,
step)` -> metrics or None, `export(path)`, and `diagnose(files)` (find the bad file after a
decoder error, e.g. with datasets.pairs.diagnose_pairs).
"""

import contextlib
import json
import math
import os
import shutil
import sys
import tempfile
import time

import keras
import tensorflow as tf

from core.io import InputError
from training import checkpointing, distribute, registry
from training import run_dir as run_dir_lib
from training.progress import Progress


def set_precision(policy):
    """Sets the Keras global dtype policy from --mixed_precision."""
    keras.mixed_precision.set_global_policy("float32" if policy == "none" else policy)


def make_task(config):
    """The task object of config.model's family (see training.registry)."""
    return registry.get(config.model).make_task(config)


def describe(config, model):
    """The resolved config and the parameter counts, as printed by --dry_run."""
    lines = ["Resolved config:", json.dumps(config.to_dict(), indent=2, sort_keys=True), ""]
    lines.append("Trainable parameters:")
    for name, count in model.parameter_counts().items():
        lines.append(f"  {name:<14s} {count:>13,d}")
    return "\n".join(lines)


def dry_run(config, out=sys.stdout):
    """Prints the resolved config and every network's trainable parameter count."""
    set_precision(config.mixed_precision)
    model = _dry_run_model(config)
    print(describe(config, model), file=out)
    return model.parameter_counts()


def _dry_run_model(config):
    # Build the networks only: no data is read and no pretrained weights are loaded.
    return registry.get(config.model).build_for_dry_run(config)


def train(config, strategy=None, log=print):
    """Trains config.model as `config` says; resumes the run in config.checkpoint_dir."""
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config.seed)
    set_precision(config.mixed_precision)
    return fit(make_task(config), config, strategy=strategy, log=log)


def fit(task, config, strategy=None, log=print):
    """Runs the training loop for `task`.

    Args:
        task: a model family's task object (see the module docstring).
        config: the family's typed config (a training.config.RunConfig subclass).
        strategy: a tf.distribute strategy; default from config.distribute.
        log: where one-line messages go.

    Returns:
        {"step", "losses" (last step's), "metrics" (last evaluation or None), "export" (path or
        None), "stopped" (reason), "model"} (and "gan" for SPADE, the same object).
    """
    strategy = strategy or distribute.make_strategy(config.distribute)
    is_chief, task_id = distribute.worker_info(strategy)
    batch_size = config.batch_size
    if batch_size % strategy.num_replicas_in_sync:
        raise ValueError(
            f"--batch_size={batch_size} must be divisible by the {strategy.num_replicas_in_sync} "
            "replicas"
        )

    run_dir = config.checkpoint_dir
    ckpt_dir = os.path.join(run_dir, "checkpoints")
    created, resuming = [], True
    if is_chief:
        created = _paths_to_create(config)
        resuming = run_dir_lib.prepare_run_dir(config)
    saved = []  # the steps checkpointed by this call
    try:
        return _fit(task, config, strategy, is_chief, task_id, ckpt_dir, saved, log)
    except BaseException:
        # A first start that fails before its first checkpoint leaves nothing behind: its
        # config.json would pin the config of a run that never trained.
        if created and not resuming and not saved:
            _remove_created(created)
            log(f"Removed what the failed start created in {run_dir}")
        raise


def _paths_to_create(config):
    """The files and topmost folders that the run's start will create (absent now)."""
    paths = [
        config.checkpoint_dir,
        os.path.join(config.checkpoint_dir, run_dir_lib.CONFIG_FILE),
        os.path.join(config.checkpoint_dir, "checkpoints"),
        config.tensorboard_dir,
        config.results_dir,
    ]
    tops = []
    for path in paths:
        path, top = os.path.abspath(path), None
        while not os.path.lexists(path):
            top, parent = path, os.path.dirname(path)
            if parent == path:
                break
            path = parent
        if top is not None and top not in tops:
            tops.append(top)
    # Paths inside a folder that will be created go with it.
    return [p for p in tops if not any(p.startswith(q + os.sep) for q in tops if q != p)]


def _remove_created(paths):
    for path in paths:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.remove(path)


def _fit(task, config, strategy, is_chief, task_id, ckpt_dir, saved, log):
    """fit's body, inside its run directory; `saved` collects the steps checkpointed."""
    run_dir = config.checkpoint_dir
    batch_size = config.batch_size
    train_pairs = task.train_pairs
    steps_per_epoch = max(1, len(train_pairs) // batch_size)
    total_steps = config.max_steps or config.total_epochs * steps_per_epoch
    if is_chief:
        checkpointing.remove_stale_temp_folders(ckpt_dir, log=log)
    # Every worker joins the (collective) save; only the chief's files are kept.
    save_dir = ckpt_dir if is_chief else tempfile.mkdtemp(prefix=f"semsynth_worker{task_id}_")

    with strategy.scope():
        model = task.build(steps_per_epoch)
    checkpoint = tf.train.Checkpoint(**model.checkpoint_objects())
    manager = tf.train.CheckpointManager(checkpoint, save_dir, max_to_keep=config.keep_checkpoints)
    latest = checkpointing.restore_newest_readable(
        checkpoint,
        ckpt_dir,
        where=f"--checkpoint_dir={run_dir}",
        check=lambda status: status.assert_existing_objects_matched(),
        log=log,
    )
    if latest:
        log(f"Resumed {latest} at step {int(model.step.numpy())}")
    start_step = int(model.step.numpy())

    def save(step):
        checkpointing.save_checkpoint(manager, step)
        saved.append(step)

    iterator = iter(
        strategy.distribute_datasets_from_function(
            lambda context: task.dataset_fn(context, start_step)
        )
    )

    def step_fn(batch):
        return model.train_step(batch)

    @tf.function(jit_compile=config.xla)
    def replica_step(batch):
        return step_fn(batch)

    @tf.function
    def train_step(iterator):
        batch = next(iterator)
        per_replica = strategy.run(replica_step if config.xla else step_fn, args=(batch,))
        model.step.assign_add(1)
        return {
            k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
            for k, v in per_replica.items()
        }

    writer = tf.summary.create_file_writer(config.tensorboard_dir) if is_chief else None
    with _named_data_errors(task, task.monitoring_pairs):
        task.prepare_monitoring()

    log(
        f"Training {task.title} ({config.preset}) on {len(train_pairs)} "
        f"{getattr(task, 'example_name', 'pairs')}, "
        f"{strategy.num_replicas_in_sync} replica(s), batch {batch_size}, steps "
        f"{start_step} -> {total_steps}; run dir {run_dir}"
    )
    progress = (
        Progress(start_step, total_steps, config.max_minutes, every=config.print_info_freq)
        if config.progress and is_chief
        else None
    )
    eval_freq = config.eval_freq or 0
    started = time.time()
    losses, metrics, stopped, step = {}, None, "finished", start_step
    window_start, window_steps = time.time(), 0
    try:
        while step < total_steps:
            if config.max_minutes and time.time() - started > 60 * config.max_minutes:
                stopped = f"time budget of {config.max_minutes} min reached"
                break
            with _named_data_errors(task, train_pairs):
                losses = train_step(iterator)
            step += 1
            window_steps += 1
            losses = {k: float(v) for k, v in losses.items()}
            if not all(math.isfinite(v) for v in losses.values()):
                save(step)
                raise FloatingPointError(f"non-finite loss at step {step}: {losses}")
            if progress is not None:
                progress.update(step, losses)
            if writer is not None and (step % config.print_info_freq == 0 or step == 1):
                elapsed = time.time() - window_start
                _write_scalars(writer, step, losses, model, elapsed / window_steps, batch_size)
                window_start, window_steps = time.time(), 0
            if is_chief and step % config.save_img_freq == 0:
                task.write_samples(writer, step)
            if step % config.save_model_freq == 0:
                save(step)
            if eval_freq and step % eval_freq == 0:
                metrics = task.evaluate(strategy, writer, step) or metrics
    except KeyboardInterrupt:
        stopped = "interrupted"
        log("\nInterrupted: saving a checkpoint before exiting.")
    step = int(model.step.numpy())
    if not saved or saved[-1] != step:  # saving one step twice would rewrite its files
        save(step)
    if progress is not None:
        progress.finish(step)
    if stopped != "interrupted" and eval_freq and step % eval_freq:
        metrics = task.evaluate(strategy, writer, step) or metrics
    export_path = None
    if is_chief:
        task.write_samples(writer, step)
        writer.flush()
        if config.export and stopped != "interrupted":
            export_path = task.export(os.path.join(run_dir, "export"))
            log(f"Exported SavedModel to {export_path}")
    log(f"Stopped at step {step}: {stopped}. Checkpoints in {ckpt_dir}")
    return {
        "step": step,
        "losses": losses,
        "metrics": metrics,
        "export": export_path,
        "stopped": stopped,
        "model": model,
        "gan": model,
    }


@contextlib.contextmanager
def _named_data_errors(task, items):
    """Re-raises input-pipeline failures as DatasetError naming the bad file.

    `items` are the files the failing pipeline reads, checked by the task's `diagnose(items)`
    (which raises the error naming the file).
    """
    try:
        yield
    except tf.errors.InvalidArgumentError as e:
        # The pipeline's in-graph checks name the file; a decoder error (a corrupt file) does
        # not, so then find the file the slow way.
        if "assertion failed" in e.message:
            raise InputError(_assertion_text(e.message)) from None
        task.diagnose(items)
        raise


def _assertion_text(message):
    """The data of a failed tf.debugging.Assert, without TF's graph trace."""
    text = message[message.index("assertion failed") :]
    return "bad training data: " + text.splitlines()[0]


def _write_scalars(writer, step, losses, model, seconds_per_step, batch_size):
    with writer.as_default(step=step):
        for name, value in losses.items():
            tf.summary.scalar(f"loss/{name}", value)
        for name, value in model.learning_rates().items():
            tf.summary.scalar(f"lr/{name}", value)
        tf.summary.scalar("perf/step_time_s", seconds_per_step)
        tf.summary.scalar("perf/images_per_s", batch_size / max(seconds_per_step, 1e-9))
