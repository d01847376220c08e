"""What the generic training loop needs to know about OSMIS: the one-shot input, the GAN,
sample grids, export.

The input lives in memory (one image + mask, one image, or the frames of a video). Every step's
batch is `batch_size` draws of its frames (all the same image for a single image), chosen by a
stateless draw keyed by (seed, step), so a resumed run sees the batches of an uninterrupted one;
the differentiable augmentation inside the trainer makes the samples of a batch differ.

The run directory also holds osmis_input.json (the chosen layout, the classes and their
original ids, colours and names: what synthesis needs without the input files; a resumed run
must find the same) and input/ (the training image and mask at the training size, e.g. for
SIFID against the one real image).
"""

import os

import numpy as np
import tensorflow as tf
from PIL import Image

from core import io as core_io
from models.osmis import inputs as inputs_lib
from models.osmis.trainer import OSMISGAN

INPUT_RECORD = inputs_lib.INPUT_RECORD
GRID = 4  # sample grid: GRID x GRID fixed latents


def to_uint8(images):
    """[-1, 1] float -> [0, 255] uint8."""
    return np.clip(np.round((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(
        np.uint8
    )


def colourize(class_masks, class_ids, label_set):
    """[N, H, W] contiguous class ids -> [N, H, W, 3] uint8 in the label set's colours."""
    colours = label_set.colors[np.asarray(class_ids, np.int64)]  # [K, 3]
    return colours[class_masks]


def sample_grid(images, masks=None):
    """[N, H, W, 3] images (and [N, H, W, 3] mask colours) -> one uint8 grid; each image above
    its mask when given."""
    tiles = images if masks is None else np.concatenate([images, masks], axis=1)  # [N, 2H, W, 3]
    n, h, w, _ = tiles.shape
    rows = max(1, n // GRID)
    cols = min(n, GRID)
    tiles = tiles[: rows * cols]
    return (
        tiles.reshape(rows, cols, h, w, 3).transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, 3)
    )


class OSMISTask:
    """OSMIS for training/loop.fit: the one-shot input, the GAN, sample grids, the SavedModel."""

    title = "OSMIS"
    example_name = "input frames"

    def __init__(self, config):
        self.config = config
        self.input = inputs_lib.load_input(config)
        self.num_classes = self.input.num_classes
        self.train_pairs = list(self.input.files)
        self.model = None
        if self.num_classes == 0:
            self.title = "SIV-GAN"
        self._grid_z = (
            np.random.default_rng(config.seed)
            .standard_normal((GRID * GRID, config.z_dim))
            .astype(np.float32)
        )

    @property
    def monitoring_pairs(self):
        return []

    def diagnose(self, files):
        """Nothing to find: the input was read (and checked) before training."""

    def build(self, steps_per_epoch):
        """Creates the model (the caller opens the strategy scope) and records the input."""
        self._record_input()
        self.model = OSMISGAN.from_run_config(
            self.config, layout=self.input.layout, num_classes=self.num_classes
        )
        return self.model

    def _record_input(self):
        run_dir = self.config.checkpoint_dir
        path = os.path.join(run_dir, INPUT_RECORD)
        record = self.input.record()
        if os.path.isfile(path):
            inputs_lib.check_record(record, inputs_lib.read_record(run_dir), path)
            return
        input_dir = os.path.join(run_dir, "input")
        os.makedirs(input_dir, exist_ok=True)
        core_io.save_image_atomic(self.input.frames[0], os.path.join(input_dir, "image.png"))
        if self.input.masks is not None:
            ids = np.asarray(self.input.class_ids, np.uint8)[self.input.masks[0]]
            core_io.save_image_atomic(ids, os.path.join(input_dir, "mask.png"))
        core_io.write_json_atomic(path, record, indent=2, sort_keys=True)

    def dataset_fn(self, input_context, start_step):
        """Per-replica batches {"image", "mask"?} of stateless frame draws keyed by the step."""
        config = self.config
        replicas = input_context.num_replicas_in_sync if input_context else 1
        pipelines = input_context.num_input_pipelines if input_context else 1
        pipeline_id = input_context.input_pipeline_id if input_context else 0
        global_batch = config.batch_size
        per_pipeline = global_batch // pipelines
        per_replica = global_batch // replicas
        frames = tf.constant(self.input.frames)  # [F, H, W, 3] uint8
        masks = None if self.input.masks is None else tf.constant(self.input.masks)
        num_frames = int(self.input.frames.shape[0])
        seed = int(config.seed)

        def element(step):
            key = tf.stack([tf.constant(seed, tf.int64), step])
            index = tf.random.stateless_uniform(
                [global_batch], seed=key, maxval=num_frames, dtype=tf.int32
            )
            index = index[pipeline_id * per_pipeline : (pipeline_id + 1) * per_pipeline]
            batch = {"image": tf.cast(tf.gather(frames, index), tf.float32) / 127.5 - 1.0}
            if masks is not None:
                batch["mask"] = tf.cast(tf.gather(masks, tf.zeros_like(index)), tf.int32)
            return batch

        dataset = tf.data.Dataset.counter(start=start_step, dtype=tf.int64).map(element)
        # Each pipeline's slice goes to its replicas in per-replica batches.
        return dataset.unbatch().batch(per_replica, drop_remainder=True).prefetch(2)

    def prepare_monitoring(self):
        pass

    def write_samples(self, writer, step):
        images, masks = self.model.sample(tf.constant(self._grid_z))
        images = to_uint8(images)
        mask_colours = None
        if masks is not None:
            classes = np.argmax(masks.numpy(), axis=-1)
            mask_colours = colourize(classes, self.input.class_ids, self.input.label_set)
        grid = sample_grid(images, mask_colours)
        os.makedirs(self.config.results_dir, exist_ok=True)
        Image.fromarray(grid).save(os.path.join(self.config.results_dir, f"step_{step:08d}.png"))
        if writer is not None:
            with writer.as_default(step=step):
                tf.summary.image("samples/ema_fixed_z_image_mask", grid[None], max_outputs=1)

    def evaluate(self, strategy, writer, step):
        """No metric during training; SIFID / LPIPS: evaluate.py --mode=one_shot."""
        return None

    def export(self, path):
        from models.osmis import export as export_lib

        return export_lib.export_osmis(self.model, path, self.input.record())
