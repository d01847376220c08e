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


# The kinds of image of write_separate_samples, named as the SPADE TF port names them.
SEPARATE_SAMPLE_KINDS = ("real_image", "segmentation_map", "synthesized_image")


def write_separate_samples(results_dir, step, label_set, labels, reals, fakes):
    """The SPADE TF port's per-sample PNGs: step_<step>_<k>_{real_image, segmentation_map
    (label colours), synthesized_image}.png for sample k; returns the paths."""
    paths = []
    for k, (label, real, fake) in enumerate(zip(labels, reals, fakes)):
        images = (real, spade_labels.colorize(label_set, label), fake)
        for kind, image in zip(SEPARATE_SAMPLE_KINDS, images):
            path = os.path.join(results_dir, f"step_{step:08d}_{k}_{kind}.png")
            Image.fromarray(np.asarray(image, np.uint8)).save(path)
            paths.append(path)
    return paths


def to_uint8(images):
    """[-1, 1] float -> [0, 255] uint8."""
    return np.clip(np.round((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(
        np.uint8
    )


def build_dataset_info(config, log=print):
    """Training / validation pairs and the label set of a SPADE config.

    The pairs come first: label values to discover (models/spade/labels.py) are read from
    their label maps.
    """
    kwargs = dict(data_source_kwargs(config), choices=SPADE_DATASETS)  # the sources SPADE reads
    train_pairs = datasets.resolve_pairs(config.dataset, "training", **kwargs)
    val_pairs = datasets.resolve_pairs(config.dataset, "validation", **kwargs)
    label_paths = [label for _, label in train_pairs + val_pairs]
    label_set = spade_labels.spade_label_set(config, label_paths=label_paths, log=log)
    return label_set, train_pairs, val_pairs


def data_summary(config, train_pairs, val_pairs):
    """One line on where the data comes from, e.g. for --dataset=folders its two folders."""
    sources = {
        "folders": f"--image_dir={config.image_dir} --label_dir={config.label_dir}",
        "json": f"--train_list={config.train_list}",
    }
    where = sources.get(config.dataset, f"--data_root={config.data_root}")
    share = "" if config.prob_dataset == 1.0 else f" (--prob_dataset={config.prob_dataset:g})"
    return (
        f"Data: --dataset={config.dataset} ({where}): {len(train_pairs)} training{share} / "
        f"{len(val_pairs)} validation pairs; label set {config.semantic_label_path}"
    )


class SPADETask:
    """SPADE for training/loop.fit: pairs, the GAN, sample grids, the SavedModel."""

    title = "SPADE"

    def __init__(self, config, log=print):
        self.config = config
        self.label_set, self.train_pairs, self.val_pairs = build_dataset_info(config, log=log)
        log(data_summary(config, self.train_pairs, self.val_pairs))
        # Cityscapes-like label sets add a "don't care" channel; label values map raw file
        # values to channels (models/spade/labels.py).
        self.label_map, self.num_classes = spade_labels.spade_label_table(config, self.label_set)
        self.label_values = spade_labels.label_values_of(config, self.label_set)
        self.model = None
        self._sample_batch = None

    def build(self, steps_per_epoch):
        """Creates the model (the caller opens the strategy scope), and keeps label values in
        the run directory, which exists by now."""
        spade_labels.save_run_label_values(self.config, self.label_set)
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
        labels, reals, fakes = batch["label"].numpy(), to_uint8(batch["image"]), to_uint8(fake)
        grid = image_grid(self.label_set, labels, reals, fakes)
        os.makedirs(self.config.results_dir, exist_ok=True)
        if self.config.sample_files in ("grid", "both"):
            Image.fromarray(grid).save(
                os.path.join(self.config.results_dir, f"step_{step:08d}.png")
            )
        if self.config.sample_files in ("separate", "both"):
            write_separate_samples(
                self.config.results_dir, step, self.label_set, labels, reals, fakes
            )
        if writer is not None:
            with writer.as_default(step=step):
                tf.summary.image("samples/label_real_fake", grid[None], max_outputs=1)

    def evaluate(self, strategy, writer, step):
        """SPADE has no validation metric during training (see evaluate.py, planned)."""
        return None

    def export(self, path):
        return export_lib.export_spade(
            self.model, path, self.config.semantic_label_path, label_values=self.label_values
        )
