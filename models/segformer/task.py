"""What the generic training loop needs to know about SegFormer: data, model, evaluation, export.

Evaluation runs every --eval_freq steps on the validation split (resized to --crop_size) with a
streaming confusion matrix that sums over replicas; the best checkpoint by validation mIoU is
kept in <run>/best/ with its metrics in <run>/best.json.
"""

import json
import os

import numpy as np
import tensorflow as tf
from PIL import Image

import datasets
from core.errors import UserError
from datasets import segmentation as seg_data
from datasets.sources import data_source_kwargs
from evaluation.segmentation_metrics import ConfusionMatrix, metrics_from_confusion
from models.segformer import export as seg_export
from models.segformer import networks as segformer
from models.segformer.labels import LABEL_SET_FILE, label_set_json, resolve_labels
from models.segformer.trainer import SegFormerTrainer
from training import run_dir as run_dir_lib


def resolve_pairs(config, split):
    """(image, label) pairs of a split of a config: datasets.resolve_pairs of its fields."""
    pages = None
    if config.dataset == "documents":  # generated on first use (shared with StyleGAN2)
        from models.stylegan2.task import builtin_document_pages

        pages = builtin_document_pages(config)
    return datasets.resolve_pairs(
        config.dataset,
        split,
        **data_source_kwargs(config),
        split_seed=config.seed,
        document_pages=pages,
    )


def resolve_train_mix(config, real_pairs):
    """(train_mix, real pairs, synthetic pairs) of a config (see config.TRAIN_MIXES)."""
    if config.train_mix == "real":
        return config.train_mix, real_pairs, []
    synthetic = datasets.json_list_pairs(config.synthetic_train_list, flag="synthetic_train_list")
    return config.train_mix, real_pairs, synthetic


# Built-in --class_weights: the pixel frequencies (%) a system published, turned into weights
# by datasets.class_weights.class_weights_from_frequencies (inverse, normalised to sum 1, 0 for
# an absent class). "facesynthetics_seed": the FaceSynthetics SegFormer system's 19 classes.
BUILTIN_CLASS_FREQUENCIES = {
    "facesynthetics_seed": (
        62.478843, 8.605424, 0.75495, 0.052647, 0.05276, 0.109988, 0.110996, 0.189292,
        0.193591, 0.108976, 0.183389, 0.209963, 1.66163, 8.457067, 0.67025, 14.718491,
        0.164434, 1.277309, 0.0,
    ),
}  # fmt: skip


def load_class_weights(path, num_classes):
    """[num_classes] float32 weights of --class_weights (a JSON file or a built-in name)."""
    if not path:
        return None
    if path in BUILTIN_CLASS_FREQUENCIES:
        from datasets.class_weights import class_weights_from_frequencies

        frequencies = BUILTIN_CLASS_FREQUENCIES[path]
        if len(frequencies) != num_classes:
            raise UserError(
                f"--class_weights={path} holds {len(frequencies)} classes, the model {num_classes}"
            )
        return class_weights_from_frequencies(frequencies).astype(np.float32)
    if not os.path.exists(path):
        raise FileNotFoundError(f"--class_weights={path} does not exist")
    with open(path) as f:
        weights = json.load(f).get("weights")
    if not isinstance(weights, list) or len(weights) != num_classes:
        raise ValueError(f"--class_weights={path} must hold 'weights' with {num_classes} numbers")
    return np.asarray(weights, np.float32)


def build_segformer_for_dry_run(config):
    _, _, num_classes = resolve_labels(config)
    return SegFormerTrainer.from_run_config(config, num_classes, total_steps=1)


class SegFormerTask:
    """SegFormer for training/loop.fit."""

    title = "SegFormer"

    def __init__(self, config):
        self.config = config
        self.label_set, self.label_map, self.num_classes = resolve_labels(config)
        self.train_pairs = resolve_pairs(config, "training")
        self.val_pairs = resolve_pairs(config, "validation")
        self.train_mix, self.real_train_pairs, self.synthetic_train_pairs = resolve_train_mix(
            config, self.train_pairs
        )
        if self.train_mix == "synthetic":
            self.train_pairs = self.synthetic_train_pairs
        elif self.train_mix == "mixed":  # the loop sizes epochs and checks files on all of them
            self.train_pairs = self.real_train_pairs + self.synthetic_train_pairs
        self.class_weights = load_class_weights(config.class_weights, self.num_classes)
        self.model = None
        self.best = {"mIoU": -1.0, "step": None}
        self._eval_step = None

    @property
    def monitoring_pairs(self):
        return (self.val_pairs or self.train_pairs)[:4]

    def build(self, steps_per_epoch):
        cfg = self.config
        total = cfg.max_steps or cfg.total_epochs * steps_per_epoch
        self.model = SegFormerTrainer.from_run_config(
            cfg, self.num_classes, total_steps=total, class_weights=self.class_weights
        )
        if cfg.pretrained:
            segformer.load_keras_hub_weights(self.model.segformer, cfg.pretrained)
        self.confusion = ConfusionMatrix(self.num_classes)
        return self.model

    def dataset_fn(self, input_context, start_step):
        cfg = self.config
        kwargs = dict(
            num_classes=self.num_classes,
            crop_size=cfg.crop_size,
            global_batch_size=cfg.batch_size,
            seed=cfg.seed,
            start_step=start_step,
            input_context=input_context,
            label_map=self.label_map,
            flip_pairs=self.label_set.flip_pairs,
            scale_range=(cfg.scale_min, cfg.scale_max),
            photometric=cfg.photometric,
            extra_augmentations=cfg.extra_augmentations(),
        )
        if self.train_mix == "mixed":
            return seg_data.make_mixed_seg_train_dataset(
                self.real_train_pairs, self.synthetic_train_pairs, **kwargs
            )
        return seg_data.make_seg_train_dataset(self.train_pairs, **kwargs)

    def _eval_dataset(self, pairs, batch_size):
        size = self.config.crop_size
        return seg_data.make_seg_eval_dataset(
            pairs,
            num_classes=self.num_classes,
            label_map=self.label_map,
            size=size,
            batch_size=batch_size,
        )

    def prepare_monitoring(self):
        run_dir = self.config.checkpoint_dir
        os.makedirs(run_dir, exist_ok=True)
        run_dir_lib.write_json_atomic(
            os.path.join(run_dir, LABEL_SET_FILE), label_set_json(self.label_set)
        )
        best = os.path.join(run_dir, "best.json")
        if os.path.exists(best):
            with open(best) as f:
                self.best = json.load(f)
        pairs = self.monitoring_pairs
        self._sample_batch = next(iter(self._eval_dataset(pairs, len(pairs))))
        self._predict = tf.function(lambda x: self.model.segformer(x, training=False))

    def _predictions(self, images, size):
        logits = self._predict(images)
        logits = segformer.upsample_logits(logits, size)
        return tf.argmax(logits, axis=-1, output_type=tf.int32)

    def diagnose(self, pairs):
        """Opens every (image, label) file to name the one the pipeline failed on."""
        from datasets.pairs import diagnose_pairs

        diagnose_pairs(pairs, self.num_classes)

    def write_samples(self, writer, step):
        batch = self._sample_batch
        preds = self._predictions(batch["image"], tf.shape(batch["label"])[1:3]).numpy()
        mean = np.asarray(seg_data.IMAGENET_MEAN) * 255
        std = np.asarray(seg_data.IMAGENET_STD) * 255
        images = np.clip(batch["image"].numpy() * std + mean, 0, 255).astype(np.uint8)
        rows = []
        for image, label, pred in zip(images, batch["label"].numpy(), preds):
            colors = self.label_set.colors
            gt = np.where(label[..., None] == 255, 0, colors[np.minimum(label, len(colors) - 1)])
            overlay = (0.5 * image + 0.5 * colors[pred]).astype(np.uint8)
            rows.append(np.concatenate([image, gt.astype(np.uint8), overlay], axis=1))
        grid = np.concatenate(rows, axis=0)
        os.makedirs(self.config.results_dir, exist_ok=True)
        Image.fromarray(grid).save(os.path.join(self.config.results_dir, f"step_{step:08d}.png"))
        if writer is not None:
            with writer.as_default(step=step):
                tf.summary.image("samples/image_truth_prediction", grid[None], max_outputs=1)

    def evaluate(self, strategy, writer, step):
        """mIoU, pixel accuracy and per-class IoU on the validation split (all replicas)."""
        if not self.val_pairs:
            return None
        model, confusion = self.model, self.confusion
        confusion.reset()
        dataset = strategy.experimental_distribute_dataset(
            self._eval_dataset(self.val_pairs, self.config.batch_size)
        )

        if self._eval_step is None:  # traced once per run, not once per evaluation

            @tf.function(reduce_retracing=True)
            def eval_step(batch):
                def replica_fn(batch):
                    logits = model.segformer(batch["image"], training=False)
                    logits = segformer.upsample_logits(logits, tf.shape(batch["label"])[1:3])
                    predictions = tf.argmax(logits, -1, output_type=tf.int32)
                    confusion.update(batch["label"], predictions)

                strategy.run(replica_fn, args=({"image": batch["image"], "label": batch["label"]},))

            self._eval_step = eval_step

        for batch in dataset:
            self._eval_step(batch)
        metrics = metrics_from_confusion(confusion.result())
        if writer is not None:
            with writer.as_default(step=step):
                tf.summary.scalar("val/mIoU", metrics["miou"])
                tf.summary.scalar("val/pixel_accuracy", metrics["pixel_accuracy"])
                for name, iou in zip(self.label_set.names, metrics["iou"]):
                    if np.isfinite(iou):
                        tf.summary.scalar(f"val_IoU/{name}", iou)
        if metrics["miou"] > self.best["mIoU"]:
            self._save_best(step, metrics)
        return metrics

    def _save_best(self, step, metrics):
        run_dir = self.config.checkpoint_dir
        checkpoint = tf.train.Checkpoint(**self.model.checkpoint_objects())
        manager = tf.train.CheckpointManager(checkpoint, os.path.join(run_dir, "best"), 1)
        manager.save(checkpoint_number=step)
        self.best = {
            "mIoU": float(metrics["miou"]),
            "step": int(step),
            "pixel_accuracy": float(metrics["pixel_accuracy"]),
        }
        run_dir_lib.write_json_atomic(os.path.join(run_dir, "best.json"), self.best)

    def export(self, path):
        exported = seg_export.export_segformer(
            self.model.segformer, path, LABEL_SET_FILE, label_map=self.label_map
        )
        run_dir_lib.write_json_atomic(
            os.path.join(exported, LABEL_SET_FILE), label_set_json(self.label_set)
        )
        return exported
