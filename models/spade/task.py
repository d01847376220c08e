"""What the generic training loop needs to know about SPADE (data, model, samples, export)."""

import os

import numpy as np
import tensorflow as tf
from PIL import Image

import datasets
from datasets import pipeline
from datasets.sources import data_source_kwargs
from models.spade import export as export_lib
from models.spade import labels as spade_labels
from models.spade.config import SPADE_DATASETS
from models.spade.trainer import SPADEGAN


def image_grid(label_set, labels, reals, fakes):
    """Rows of [label colours | real | synthesized], uint8 [N*H, 3*W, 3]."""
    rows = []
    for label, real, fake in zip(labels, reals, fakes):
        colors = spade_labels.colorize(label_set, label)  # "don't care" pixels black
        rows.append(np.concatenate([colors, real, fake], axis=1))
    return np.concatenate(rows, axis=0)


def to_uint8(images):
    """[-1, 1] float -> [0, 255] uint8."""
    return np.clip(np.round((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(
        np.uint8
    )


def build_dataset_info(config):
    """Training / validation pairs and the label set of a SPADE config."""
    label_set, _, _ = spade_labels.resolve_spade_labels(config)
    kwargs = dict(data_source_kwargs(config), choices=SPADE_DATASETS)  # the sources SPADE reads
    train_pairs = datasets.resolve_pairs(config.dataset, "training", **kwargs)
    val_pairs = datasets.resolve_pairs(config.dataset, "validation", **kwargs)
    return label_set, train_pairs, val_pairs


class SPADETask:
    """SPADE for training/loop.fit: pairs, the GAN, sample grids, the SavedModel."""

    title = "SPADE"

    def __init__(self, config):
        self.config = config
        self.label_set, self.train_pairs, self.val_pairs = build_dataset_info(config)
        # Cityscapes-like label sets add a "don't care" channel (models/spade/labels.py).
        _, self.label_map, self.num_classes = spade_labels.resolve_spade_labels(config)
        self.model = None
        self._sample_batch = None

    def build(self, steps_per_epoch):
        """Creates the model (the caller opens the strategy scope)."""
        self.model = SPADEGAN.from_run_config(
            self.config, self.num_classes, steps_per_epoch=steps_per_epoch
        )
        return self.model

    def dataset_fn(self, input_context, start_step):
        return pipeline.make_train_dataset(
            self.train_pairs,
            num_classes=self.num_classes,
            load_size=(self.config.load_size, self.config.load_width),
            crop_size=self.config.image_size,
            global_batch_size=self.config.batch_size,
            seed=self.config.seed,
            start_step=start_step,
            input_context=input_context,
            label_map=self.label_map,
        )

    def prepare_monitoring(self):
        """Loads the fixed (held-out when there are any) pairs shown in the sample grids."""
        pairs = self.monitoring_pairs
        dataset = pipeline.make_eval_dataset(
            pairs,
            num_classes=self.num_classes,
            size=self.config.image_size,
            batch_size=len(pairs),
            label_map=self.label_map,
        )
        self._sample_batch = next(iter(dataset))

    @property
    def monitoring_pairs(self):
        return (self.val_pairs or self.train_pairs)[:4]

    def diagnose(self, pairs):
        """Opens every (image, label) file to name the one the pipeline failed on."""
        from datasets.pairs import diagnose_pairs

        # Files of mapped datasets hold raw values (Cityscapes labelIds), checked by the map.
        diagnose_pairs(pairs, self.num_classes if self.label_map is None else 256)

    def write_samples(self, writer, step):
        batch = self._sample_batch
        fake = self.model.synthesize(batch["label"], training=False)
        grid = image_grid(
            self.label_set, batch["label"].numpy(), to_uint8(batch["image"]), to_uint8(fake)
        )
        os.makedirs(self.config.results_dir, exist_ok=True)
        Image.fromarray(grid).save(os.path.join(self.config.results_dir, f"step_{step:08d}.png"))
        if writer is not None:
            with writer.as_default(step=step):
                tf.summary.image("samples/label_real_fake", grid[None], max_outputs=1)

    def evaluate(self, strategy, writer, step):
        """SPADE has no validation metric during training (see evaluate.py, planned)."""
        return None

    def export(self, path):
        return export_lib.export_spade(self.model, path, self.config.semantic_label_path)
