"""Synthetic-to-real: does synthesized training data help a segmenter on real images?

Three SegFormers are trained on the same budget (the same train.py flags: preset, steps,
batch, seed, learning rate) and differ only in their training batches:

    real       the real dataset's training pairs
    synthetic  synthesized pairs only (images synthesized from label maps, with those maps)
    mixed      real + synthetic, 1:1 in every batch (half of each batch from each,
               datasets.segmentation.make_mixed_seg_train_dataset)

Each is then evaluated on the same held-out real split (the dataset's validation pairs,
resized to the training crop size as in training validation) with the project's confusion
matrix: mIoU, pixel accuracy, mean accuracy and per-class IoU. The synthesized pairs come
from an exported SPADE SavedModel applied to the real training label maps (written under
<output_dir>/synthetic_data/, with a JSON pair list), or from any synthesized dataset: a JSON
pair list or an image folder + label folder matched by stem. Their labels must hold the same
raw values as the real dataset's label files (one raw -> train-id table serves both); a
synthetic pair folder (datasets.synthetic_pairs, e.g. synthesize.py --model=palette, masks of
train ids) given by its train.json is first rewritten in the real raw values (Cityscapes
labelIds for the streets) under <output_dir>/synthetic_data/.

The Palette source (palette_online=PaletteOnlineSource(layout run, spade_checkpoint_dir=...)):
the synthetic pairs are made online while the segmenter trains, as in the Semantic Palette
paper: batch s of the stream is palette (drawn from the estimator) -> layout -> SPADE image,
a pure function of (seed, s), augmented like the real pairs; "mixed" takes half of every batch
from it. `settings` runs a subset (the benchmark adds real + SPADE-from-real-layouts with a
second call, settings=("mixed",)). Real + partially edited pairs are not offered: this version
has no partial-editing model.

Outputs in <output_dir> (never overwritten without overwrite=True): results.csv,
results.md (markdown table), results.png (bar plot), results.json, and the three run
directories runs/{real,synthetic,mixed}/ (config, checkpoints, export).

Example:
    run_synthetic_to_real(
        ["--preset=tiny", "--dataset=scenes", "--data_root=data", "--max_steps=300"],
        "outputs/s2r", spade_model="runs/spade_tiny/export")
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil

import numpy as np

SETTINGS = ("real", "synthetic", "mixed")
SETTING_TITLES = {
    "real": "real only",
    "synthetic": "synthetic only",
    "mixed": "real + synthetic (1:1 per batch)",
}
RESULT_FILES = ("results.csv", "results.md", "results.png", "results.json")
RUNS_DIR = "runs"
SYNTHETIC_DIR = "synthetic_data"
# train.py flags the experiment sets itself (one run directory per setting, SegFormer only).
_RESERVED_FLAGS = ("model", "checkpoint_dir", "tensorboard_dir", "results_dir", "dry_run")


def _finite_or_none(value):
    """A float, or None for NaN (a class absent from ground truth and prediction)."""
    value = float(value)
    return value if math.isfinite(value) else None


def _config_error(message):
    from core.config import ConfigError

    return ConfigError(message)


def check_train_args(train_args) -> list[str]:
    """The train.py flags shared by the three runs; refuses the ones the experiment owns."""
    train_args = list(train_args)
    for arg in train_args:
        name = arg.lstrip("-").split("=", 1)[0]
        if name.startswith("no"):
            name = name[2:] if name[2:] in _RESERVED_FLAGS else name
        if name in _RESERVED_FLAGS:
            raise _config_error(
                f"--train_flags must not set --{name}: the experiment trains --model=segformer "
                "into <output_dir>/runs/<setting>"
            )
    return train_args


def check_budget(config):
    """The experiment's runs must be fixed in steps: epochs would differ between them."""
    if not config.max_steps:
        raise _config_error(
            "--train_flags must fix the budget in steps (--max_steps, or a preset that sets "
            "it): epochs would give the three runs different step counts"
        )
    if config.batch_size % 2:
        raise _config_error(
            f"--batch_size={config.batch_size} must be even: the mixed run "
            "takes half of every batch from each dataset"
        )
    return config


def write_pair_list(pairs, path: str, **extra) -> str:
    """Writes (image, label) pairs as a JSON pair list (paths relative to its folder)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    spec = dict(extra)
    spec["pairs"] = [
        {
            "image": os.path.relpath(os.path.abspath(image), folder),
            "label": os.path.relpath(os.path.abspath(label), folder),
        }
        for image, label in pairs
    ]
    with open(path, "w", encoding="utf-8") as file:
        json.dump(spec, file, indent=1)
    return path


def synthesize_pairs(
    spade_model: str,
    label_paths,
    output_dir: str,
    *,
    batch_size: int = 8,
    seed: int = 0,
    progress: bool = True,
    label_map=None,
) -> str:
    """Synthesizes one image per label map with an exported SPADE; returns the pair list.

    Writes output_dir/images/NNNNNN_<stem>.png (the synthesized images), output_dir/labels/
    NNNNNN_<stem>.png (the label maps resized, nearest, to the generator's size: exactly what
    it saw) and output_dir/pairs.json. VAE generators draw z from a generator seeded by `seed`.

    Args:
        spade_model: a SavedModel written by models.spade.export (train.py's <run>/export).
        label_paths: label map files (raw values, as the generator was trained on).
        output_dir: where the pairs go (created).
        batch_size: label maps per generator call.
        seed: seed of z.
        label_map: the real dataset's [256] raw value -> train id table (None: the files hold
            SPADE's channel ids). Raw values (Cityscapes labelIds) are mapped to SPADE's
            channels, ignored ones to its last ("don't care") channel; the written labels keep
            the raw values.
        progress: show a progress bar.
    """
    import keras
    from PIL import Image

    from datasets.pipeline import load_label_map
    from models.spade.export import Synthesizer, resize_label_map

    if not os.path.isdir(spade_model):
        raise FileNotFoundError(f"--spade_model={spade_model} does not exist")
    synthesizer = Synthesizer(saved_model=spade_model)
    size = synthesizer.image_size  # (height, width)
    image_dir = os.path.join(output_dir, "images")
    label_dir = os.path.join(output_dir, "labels")
    os.makedirs(image_dir, exist_ok=True)
    os.makedirs(label_dir, exist_ok=True)
    rng = np.random.default_rng(seed)
    bar = keras.utils.Progbar(len(label_paths), unit_name="image") if progress else None
    pairs = []
    for start in range(0, len(label_paths), batch_size):
        chunk = label_paths[start : start + batch_size]
        labels = np.stack(
            [resize_label_map(load_label_map(path), size) for path in chunk]
        )  # [b, H, W] uint8
        z = (
            rng.standard_normal((len(chunk), synthesizer.z_dim)).astype(np.float32)
            if synthesizer.use_vae
            else None
        )
        images = synthesizer(_spade_channels(labels, label_map, synthesizer), z=z)  # [b, H, W, 3]
        for offset, (path, label, image) in enumerate(zip(chunk, labels, images)):
            name = f"{start + offset:06d}_{os.path.splitext(os.path.basename(path))[0]}.png"
            pair = (os.path.join(image_dir, name), os.path.join(label_dir, name))
            Image.fromarray(image).save(pair[0])
            Image.fromarray(label).save(pair[1])
            pairs.append(pair)
        if bar is not None:
            bar.add(len(chunk))
    return write_pair_list(
        pairs, os.path.join(output_dir, "pairs.json"), generator=os.path.abspath(spade_model)
    )


def _spade_channels(labels, label_map, synthesizer):
    """Raw label maps [b, H, W] -> SPADE's channel ids (see synthesize_pairs' label_map)."""
    if label_map is None:
        return labels
    table = np.asarray(label_map).astype(np.int64)
    dontcare = (synthesizer.num_classes or int(table[table != 255].max()) + 2) - 1
    channels = table[labels]  # [b, H, W] train ids, 255 = ignore
    return np.where(channels == 255, dontcare, channels).astype(np.uint8)


def evaluate_segformer(
    model, pairs, *, num_classes: int, label_map, size, batch_size: int = 8
) -> dict:
    """metrics_from_confusion of a SegFormer on `pairs` resized to `size` (no augmentation)."""
    import tensorflow as tf

    from datasets.segmentation import make_seg_eval_dataset
    from evaluation.segmentation_metrics import ConfusionMatrix, metrics_from_confusion
    from models.segformer import networks as segformer

    confusion = ConfusionMatrix(num_classes)

    @tf.function(reduce_retracing=True)
    def predict(images, label_size):
        logits = segformer.upsample_logits(model(images, training=False), label_size)
        return tf.argmax(logits, axis=-1, output_type=tf.int32)  # [N, H, W]

    dataset = make_seg_eval_dataset(
        pairs, num_classes=num_classes, label_map=label_map, size=size, batch_size=batch_size
    )
    for batch in dataset:
        confusion.update(batch["label"], predict(batch["image"], tf.shape(batch["label"])[1:3]))
    return metrics_from_confusion(confusion.result())


def _prepare_output_dir(output_dir: str, overwrite: bool) -> None:
    from core import io as core_io

    if core_io.check_overwrite_dir(output_dir, overwrite, flag="--output_dir", holds="results"):
        # Only what this experiment writes is removed; stale runs would otherwise be resumed.
        for name in (*RESULT_FILES, RUNS_DIR, SYNTHETIC_DIR):
            path = os.path.join(output_dir, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
    os.makedirs(output_dir, exist_ok=True)


def check_synthetic_source(
    spade_model=None,
    synthetic_list=None,
    synthetic_image_dir=None,
    synthetic_label_dir=None,
    palette_online=None,
) -> None:
    """Exactly one source of synthetic pairs, and its files exist (before any work is done)."""
    from datasets.pairs import DatasetNotFoundError

    folder_given = bool(synthetic_image_dir or synthetic_label_dir)
    given = [bool(spade_model), bool(synthetic_list), folder_given, palette_online is not None]
    if sum(given) != 1:
        raise _config_error(
            "give exactly one source of synthetic data: --spade_model (synthesize from the real "
            "training label maps), --synthetic_list (a JSON pair list, or a synthetic pair "
            "folder's train.json), --synthetic_image_dir with --synthetic_label_dir, or a "
            "Palette model generating pairs online"
        )
    if folder_given and not (synthetic_image_dir and synthetic_label_dir):
        raise _config_error("--synthetic_image_dir and --synthetic_label_dir go together")
    for flag, path, exists in (
        ("--spade_model", spade_model, os.path.isdir),
        ("--synthetic_list", synthetic_list, os.path.isfile),
        ("--synthetic_image_dir", synthetic_image_dir, os.path.isdir),
        ("--synthetic_label_dir", synthetic_label_dir, os.path.isdir),
    ):
        if path and not exists(path):
            raise DatasetNotFoundError(f"{flag}={path} does not exist")


def resolve_synthetic_pairs(
    output_dir: str,
    real_pairs,
    *,
    spade_model=None,
    synthetic_list=None,
    synthetic_image_dir=None,
    synthetic_label_dir=None,
    batch_size: int = 8,
    seed: int = 0,
    progress: bool = True,
    label_map=None,
    spade_label_map=None,
) -> tuple[str, int]:
    """(JSON pair list, number of pairs) of the synthetic training set, from one source.

    A synthetic pair folder (datasets.synthetic_pairs: masks of train ids) given as
    synthetic_list gets its masks rewritten in the real dataset's raw values (`label_map`,
    e.g. Cityscapes labelIds) under output_dir/synthetic_data/, so that one table reads both.
    `spade_label_map` maps raw label files to SPADE's channels (synthesize_pairs' label_map).
    """
    from datasets.pairs import folder_pairs, json_list_pairs

    check_synthetic_source(spade_model, synthetic_list, synthetic_image_dir, synthetic_label_dir)
    folder = os.path.join(output_dir, SYNTHETIC_DIR)
    if spade_model:
        path = synthesize_pairs(
            spade_model,
            [label for _, label in real_pairs],
            folder,
            batch_size=batch_size,
            seed=seed,
            progress=progress,
            label_map=spade_label_map,
        )
        return path, len(real_pairs)
    if synthetic_list:
        pairs = json_list_pairs(synthetic_list, flag="--synthetic_list")
        if label_map is not None and pair_folder_label_set(synthetic_list) is not None:
            return relabel_pair_folder(synthetic_list, pairs, label_map, folder), len(pairs)
        return synthetic_list, len(pairs)
    pairs = folder_pairs(
        synthetic_image_dir,
        synthetic_label_dir,
        image_flag="--synthetic_image_dir",
        label_flag="--synthetic_label_dir",
    )
    return write_pair_list(pairs, os.path.join(folder, "pairs.json")), len(pairs)


# === Synthetic pair folders (train-id masks) against raw-value datasets ===


def pair_folder_label_set(pair_list: str):
    """The label set of the synthetic pair folder (datasets.synthetic_pairs) a pair list lies
    in (its label_set.json beside dataset.json), or None for any other pair list."""
    from datasets.synthetic_pairs import DATASET_FORMAT
    from semantic_labels import load_label_set

    folder = os.path.dirname(os.path.abspath(pair_list))
    manifest, labels = (os.path.join(folder, name) for name in ("dataset.json", "label_set.json"))
    if not (os.path.isfile(manifest) and os.path.isfile(labels)):
        return None
    try:
        with open(manifest, encoding="utf-8") as file:
            if json.load(file).get("format") != DATASET_FORMAT:
                return None
    except (OSError, ValueError, AttributeError):
        return None
    return load_label_set(labels)


def raw_values_of_ids(label_map, num_classes: int) -> np.ndarray:
    """uint8 [256] train id -> a raw file value the [256] `label_map` maps back to it (the
    smallest); 255 (ignore) -> a raw value mapped to ignore. Identity when label_map is."""
    table = np.asarray(label_map).astype(np.int64)
    inverse = np.zeros(256, np.uint8)
    for train_id in [*range(num_classes), 255]:
        raw = np.flatnonzero(table == train_id)
        if raw.size == 0:
            if train_id == 255:
                inverse[255] = 255
                continue
            raise _config_error(
                f"the real dataset's label files have no value for class {train_id}: synthetic "
                "masks cannot be written in its raw values"
            )
        inverse[train_id] = raw[0]
    return inverse


def relabel_pair_folder(pair_list: str, pairs, label_map, output_dir: str) -> str:
    """Writes the masks of a synthetic pair folder in the real dataset's raw values.

    Synthetic pair folders store train ids; a dataset such as Cityscapes (or the built-in
    streets) stores labelIds, and the segmenter reads both through the dataset's one table.
    Returns the new pair list (the original images, the relabelled masks under
    output_dir/labels/), or pair_list itself when the table is the identity.
    """
    from PIL import Image

    from datasets.pipeline import load_label_map

    num_classes = len(pair_folder_label_set(pair_list).names)
    inverse = raw_values_of_ids(label_map, num_classes)
    if np.array_equal(inverse[:num_classes], np.arange(num_classes)):
        return pair_list
    label_dir = os.path.join(output_dir, "labels")
    os.makedirs(label_dir, exist_ok=True)
    relabelled = []
    for index, (image, label) in enumerate(pairs):
        path = os.path.join(label_dir, f"{index:06d}_{os.path.basename(label)}")
        Image.fromarray(inverse[load_label_map(label)]).save(path)
        relabelled.append((image, path))
    return write_pair_list(
        relabelled,
        os.path.join(output_dir, "pairs.json"),
        relabelled_from=os.path.abspath(pair_list),
    )


# === Palette pairs generated online, during segmenter training (as the paper) ===

ONLINE_SEED_OFFSET = 2**31 + 1  # the online stream's augmentation never repeats the real one's


class PaletteOnlineSource:
    """Palette -> layout -> image pairs made while the segmenter trains.

    Batch s of the stream is sample_fn(s, B) of models.palette.inference.palette_pair_sampler
    (palettes drawn from the estimator, or cycled from a palette file), a pure function of
    (seed, s): a resumed segmenter run sees the batches of an uninterrupted one.

    Args:
        layout_source: a palette run directory or layout SavedModel.
        spade_checkpoint_dir / spade_saved_model: the image synthesizer.
        estimator_path: the estimator to draw palettes from (default the layout run's).
        palettes_path: a palette file to cycle through instead.

    Example:
        PaletteOnlineSource("runs/palette", spade_checkpoint_dir="runs/spade_streets")
    """

    def __init__(
        self,
        layout_source,
        *,
        spade_checkpoint_dir=None,
        spade_saved_model=None,
        estimator_path=None,
        palettes_path=None,
    ):
        self.layout_source = layout_source
        self.spade_checkpoint_dir = spade_checkpoint_dir
        self.spade_saved_model = spade_saved_model
        self.estimator_path = estimator_path
        self.palettes_path = palettes_path

    def describe(self) -> dict:
        return {
            "layout_source": os.path.abspath(self.layout_source),
            "image_source": os.path.abspath(self.spade_checkpoint_dir or self.spade_saved_model),
            "palettes": self.palettes_path or "estimator",
        }

    def sampler(self, label_set, seed: int, batch_size: int):
        """(sample_fn, image size (H, W)); the models load now (a bad source fails early)."""
        from models.palette import inference
        from models.palette.export import LayoutGenerator

        generator = LayoutGenerator(self.layout_source)
        layouts = inference.generator_label_set(generator)
        if tuple(layouts.names) != tuple(label_set.names):
            raise _config_error(
                f"the Palette model's layouts are of {layouts.name!r}, the segmenter's data of "
                f"{label_set.name!r}"
            )
        if not (self.spade_checkpoint_dir or self.spade_saved_model):
            raise _config_error("online Palette pairs need a SPADE model for the images")
        image_fn = inference.LayoutImageSynthesizer(
            self.spade_checkpoint_dir,
            self.spade_saved_model,
            label_set=layouts,
            layout_size=(generator.height, generator.width),
        )
        palettes = estimator = None
        if self.palettes_path:
            palettes = inference.load_palettes(self.palettes_path, layouts)
        else:
            estimator = inference.load_palette_estimator(
                self.layout_source, layouts, self.estimator_path
            )
        sample_fn = inference.palette_pair_sampler(
            generator,
            image_fn,
            num_classes=layouts.num_classes,
            seed=seed,
            batch_size=batch_size,
            estimator=estimator,
            palettes=palettes,
        )
        return sample_fn, image_fn.image_size


def make_online_pair_stream(
    sample_fn,
    *,
    image_size,
    global_batch_size: int,
    crop_size,
    seed: int = 0,
    start_step: int = 0,
    input_context=None,
    flip_pairs=(),
):
    """Infinite stream of segmenter batches made online by `sample_fn`, augmented as the real
    ones (datasets.segmentation.preprocess_seg_train, element seed (seed', s * B + j)).

    Args:
        sample_fn: (step, B) -> {"images": uint8 [B, H, W, 3], "masks": uint8 [B, H, W] train
            ids, ...}, a pure function of step.
        image_size: (H, W) of its images.
        global_batch_size: B, pairs per step (split over the replicas in order).
        crop_size, flip_pairs: as make_seg_train_dataset's.
        seed, start_step: the augmentation seed; the first step (resume).
        input_context: from tf.distribute; one input pipeline only (the generator runs in it).

    Returns:
        Dataset of {"image": [b, crop_h, crop_w, 3] float32, "label": [b, crop_h, crop_w]
        int32}, b = B / replicas.
    """
    import tensorflow as tf

    from datasets import segmentation as seg_data

    replicas = input_context.num_replicas_in_sync if input_context is not None else 1
    if input_context is not None and input_context.num_input_pipelines > 1:
        raise ValueError("online Palette pairs are generated in one input pipeline (one worker)")
    if global_batch_size % replicas:
        raise ValueError(
            f"the online batch ({global_batch_size}) must be divisible by the {replicas} replicas"
        )
    height, width = image_size
    batch = int(global_batch_size)
    stream_seed = tf.constant(int(seed) + ONLINE_SEED_OFFSET, tf.int64)

    def generate(step):
        pairs = sample_fn(int(step.numpy()), batch)
        return pairs["images"], pairs["masks"].astype(np.int32)

    def pairs_of_step(step):
        images, labels = tf.py_function(generate, [step], (tf.uint8, tf.int32))
        images = tf.ensure_shape(images, (batch, height, width, 3))  # [B, H, W, 3]
        labels = tf.ensure_shape(labels, (batch, height, width))  # [B, H, W]
        index = step * batch + tf.range(batch, dtype=tf.int64)  # [B]
        seeds = tf.stack([tf.fill([batch], stream_seed), index], axis=1)  # [B, 2]
        return tf.data.Dataset.from_tensor_slices((images, labels, seeds))

    def augment(image, label, element_seed):
        image, label = seg_data.preprocess_seg_train(
            image, label, element_seed, crop_size=crop_size, flip_pairs=flip_pairs
        )
        return {"image": image, "label": label}

    dataset = tf.data.Dataset.counter(start=int(start_step), dtype=tf.int64)
    dataset = dataset.flat_map(pairs_of_step)  # the generator runs once per step, in order
    dataset = dataset.map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(batch // replicas, drop_remainder=True)
    return dataset.prefetch(1)


def online_segformer_task(config, mix: str, sample_fn, image_size):
    """A SegFormer task (models.segformer.task) whose training batches are online Palette
    pairs (mix "synthetic") or half real, half online Palette pairs (mix "mixed")."""
    import tensorflow as tf

    from datasets import segmentation as seg_data
    from models.segformer.task import SegFormerTask

    class OnlinePaletteSegFormerTask(SegFormerTask):
        title = f"SegFormer ({SETTING_TITLES[mix]}, Palette pairs made online)"

        def dataset_fn(self, input_context, start_step):
            cfg = self.config
            online_batch = cfg.batch_size if mix == "synthetic" else cfg.batch_size // 2
            online = make_online_pair_stream(
                sample_fn,
                image_size=image_size,
                global_batch_size=online_batch,
                crop_size=cfg.crop_size,
                seed=cfg.seed,
                start_step=start_step,
                input_context=input_context,
                flip_pairs=self.label_set.flip_pairs,
            )
            if mix == "synthetic":
                return online
            real = seg_data.make_seg_train_dataset(
                self.real_train_pairs,
                num_classes=self.num_classes,
                crop_size=cfg.crop_size,
                global_batch_size=cfg.batch_size // 2,
                seed=cfg.seed,
                start_step=start_step,
                input_context=input_context,
                label_map=self.label_map,
                flip_pairs=self.label_set.flip_pairs,
            )

            def concat(first, second):
                return {key: tf.concat([first[key], second[key]], axis=0) for key in first}

            return tf.data.Dataset.zip((real, online)).map(concat)  # [b, ...]: real, online

    if mix not in ("synthetic", "mixed"):
        raise ValueError(f"online pairs serve the synthetic and mixed settings, not {mix!r}")
    return OnlinePaletteSegFormerTask(config)


def run_synthetic_to_real(
    config,
    train_args,
    output_dir: str,
    *,
    spade_model=None,
    synthetic_list=None,
    synthetic_image_dir=None,
    synthetic_label_dir=None,
    palette_online=None,
    settings=SETTINGS,
    overwrite: bool = False,
    synth_batch_size: int = 8,
    log=print,
) -> dict:
    """Trains and evaluates the settings; writes the results files. See the module doc.

    Args:
        config: the SegFormer config shared by the runs (a SegFormerConfig, e.g. from
            train.py flags: dataset, preset, max_steps, batch_size, seed, ...); each run gets
            its own checkpoint_dir under output_dir.
        train_args: the train.py flags that config came from, recorded in the results.
        output_dir: results folder (refused when it holds anything, unless overwrite).
        spade_model, synthetic_list, synthetic_image_dir + synthetic_label_dir, palette_online
            (a PaletteOnlineSource: pairs generated during training): the one source of
            synthetic pairs. A synthetic_list in a synthetic pair folder (e.g. synthesize.py
            --model=palette's train.json) is relabelled to the real dataset's raw values.
        settings: the settings to run, a subset of SETTINGS in any order (e.g. ("mixed",)
            beside another experiment's real-only run).
        overwrite: replace the results and runs of an earlier experiment in output_dir.
        synth_batch_size: label maps per SPADE call.
        log: where one-line messages go.

    Returns:
        {"settings": {setting: {"miou", "pixel_accuracy", "mean_accuracy", "iou" [C],
        "num_train_pairs", "steps", "export"}}, "class_names", "num_val_pairs",
        "synthetic_list", "source", "train_args", "files": {name: path}}.
    """
    from datasets.pairs import DatasetError
    from models.segformer.task import resolve_labels, resolve_pairs
    from models.spade.config import LABEL_ID_DATASETS
    from training import loop

    train_args = check_train_args(train_args)
    settings_to_run = tuple(settings)
    if not settings_to_run or any(s not in SETTINGS for s in settings_to_run):
        raise _config_error(f"settings must be some of {', '.join(SETTINGS)}, got {settings}")
    runs_dir = os.path.join(output_dir, RUNS_DIR)
    # Config errors surface before anything is written or trained.
    config = check_budget(config.replace(checkpoint_dir=os.path.join(runs_dir, "real")))
    label_set, label_map, num_classes = resolve_labels(config)
    check_synthetic_source(
        spade_model, synthetic_list, synthetic_image_dir, synthetic_label_dir, palette_online
    )
    _prepare_output_dir(output_dir, overwrite)
    real_pairs = resolve_pairs(config, "training")
    val_pairs = resolve_pairs(config, "validation")
    if not val_pairs:
        raise DatasetError(
            "the real dataset has no validation split to evaluate on; give one in "
            "--train_flags (--val_image_dir / --val_label_dir, or --val_list)"
        )
    if palette_online is not None:
        synthetic_list, num_synthetic, source = None, None, "palette_online"
        sample_fn, image_size = palette_online.sampler(label_set, config.seed, config.batch_size)
    else:
        source = "spade_model" if spade_model else "pairs"
        synthetic_list, num_synthetic = resolve_synthetic_pairs(
            output_dir,
            real_pairs,
            spade_model=spade_model,
            synthetic_list=synthetic_list,
            synthetic_image_dir=synthetic_image_dir,
            synthetic_label_dir=synthetic_label_dir,
            batch_size=synth_batch_size,
            seed=config.seed,
            progress=config.progress,
            label_map=label_map,
            # Data of labelIds (streets, Cityscapes): SPADE was trained on their train ids.
            spade_label_map=label_map if config.dataset in LABEL_ID_DATASETS else None,
        )
    results_settings = {}
    for setting in settings_to_run:
        online = palette_online is not None and setting != "real"
        run_config = config.replace(
            checkpoint_dir=os.path.join(runs_dir, setting),
            tensorboard_dir=None,
            results_dir=None,
            # Online runs read the real pairs only from files; their task makes the rest.
            train_mix="real" if online else setting,
            synthetic_train_list=(
                None if setting == "real" or online else os.path.abspath(synthetic_list)
            ),
        )
        log(
            f"[synthetic_to_real] training '{SETTING_TITLES[setting]}' for "
            f"{run_config.max_steps} steps, batch {run_config.batch_size}"
            + (" (Palette pairs made online)" if online else "")
        )
        if online:
            task = online_segformer_task(run_config, setting, sample_fn, image_size)
            if run_config.deterministic:
                import tensorflow as tf

                tf.config.experimental.enable_op_determinism()
            import keras

            keras.utils.set_random_seed(run_config.seed)
            loop.set_precision(run_config.mixed_precision)
            result = loop.fit(task, run_config, log=log)
        else:
            result = loop.train(run_config, log=log)
        metrics = evaluate_segformer(
            result["model"].segformer,
            val_pairs,
            num_classes=num_classes,
            label_map=label_map,
            size=run_config.crop_size,
            batch_size=run_config.batch_size,
        )
        steps = int(result["step"])
        if setting == "real":
            pairs_seen = len(real_pairs)
        elif online:  # every online pair is new: the count generated
            pairs_seen = steps * run_config.batch_size // (1 if setting == "synthetic" else 2)
            pairs_seen += len(real_pairs) if setting == "mixed" else 0
        else:
            pairs_seen = num_synthetic + (len(real_pairs) if setting == "mixed" else 0)
        results_settings[setting] = {
            "miou": _finite_or_none(metrics["miou"]),
            "pixel_accuracy": _finite_or_none(metrics["pixel_accuracy"]),
            "mean_accuracy": _finite_or_none(metrics["mean_accuracy"]),
            "iou": [_finite_or_none(v) for v in metrics["iou"]],
            "gt_pixels": [int(v) for v in metrics["gt_pixels"]],
            "num_train_pairs": pairs_seen,
            "steps": steps,
            "export": result["export"],
        }
        log(
            f"[synthetic_to_real] {SETTING_TITLES[setting]}: mIoU "
            f"{_percent(metrics['miou'])}, pixel accuracy {_percent(metrics['pixel_accuracy'])}"
        )
    results = {
        "settings": results_settings,
        "class_names": list(label_set.names),
        "num_val_pairs": len(val_pairs),
        "synthetic_list": os.path.abspath(synthetic_list) if synthetic_list else None,
        "source": source,
        "palette_online": palette_online.describe() if palette_online is not None else None,
        "train_args": train_args,
        "preset": config.preset,
        "batch_size": config.batch_size,
        "max_steps": config.max_steps,
        "seed": config.seed,
    }
    results["files"] = write_results(results, output_dir)
    return results


def _percent(value) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{100.0 * value:.2f}"


def _csv_number(value) -> str:
    return "" if value is None else f"{value:.6f}"


def _present_classes(results) -> list[int]:
    """Classes with ground-truth pixels in the validation split (the ones IoU can judge)."""
    gt = np.sum([s["gt_pixels"] for s in results["settings"].values()], axis=0)
    return [int(c) for c in np.flatnonzero(gt)]


def format_markdown(results) -> str:
    """The results as markdown: settings table, then per-class IoU (%) of the present classes."""
    settings = results["settings"]
    lines = [
        f"Synthetic-to-real, SegFormer preset `{results['preset']}`, {results['max_steps']} "
        f"steps, batch {results['batch_size']}, seed {results['seed']}; evaluated on "
        f"{results['num_val_pairs']} held-out real images.",
        "",
        "| setting | training pairs | steps | mIoU (%) | pixel accuracy (%) | mean accuracy (%) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for setting, values in settings.items():
        lines.append(
            f"| {SETTING_TITLES[setting]} | {values['num_train_pairs']} | {values['steps']} | "
            f"{_percent(values['miou'])} | {_percent(values['pixel_accuracy'])} | "
            f"{_percent(values['mean_accuracy'])} |"
        )
    present = _present_classes(results)
    if present:
        names = results["class_names"]
        lines += [
            "",
            "Per-class IoU (%):",
            "",
            "| class | " + " | ".join(SETTING_TITLES[s] for s in settings) + " |",
            "|---|" + "---:|" * len(settings),
        ]
        for c in present:
            cells = " | ".join(_percent(settings[s]["iou"][c]) for s in settings)
            lines.append(f"| {names[c] if c < len(names) else c} | {cells} |")
    return "\n".join(lines) + "\n"


def write_results(results, output_dir: str) -> dict:
    """Writes results.csv, results.md, results.png and results.json; returns their paths."""
    paths = {name: os.path.join(output_dir, name) for name in RESULT_FILES}
    settings = results["settings"]
    present = _present_classes(results)
    names = results["class_names"]
    with open(paths["results.csv"], "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(
            [
                "setting",
                "num_train_pairs",
                "steps",
                "miou",
                "pixel_accuracy",
                "mean_accuracy",
                *(f"iou_{names[c]}" for c in present),
            ]
        )
        for setting, values in settings.items():
            writer.writerow(
                [
                    setting,
                    values["num_train_pairs"],
                    values["steps"],
                    *(
                        _csv_number(values[key])
                        for key in ("miou", "pixel_accuracy", "mean_accuracy")
                    ),
                    *(_csv_number(values["iou"][c]) for c in present),
                ]
            )
    with open(paths["results.md"], "w", encoding="utf-8") as file:
        file.write(format_markdown(results))
    plot_results(results, paths["results.png"])
    with open(paths["results.json"], "w", encoding="utf-8") as file:
        json.dump(results, file, indent=1)
    return paths


def plot_results(results, path: str) -> None:
    """Grouped bars of mIoU and pixel accuracy per setting (matplotlib, no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    settings = list(results["settings"])
    metrics = (("miou", "mIoU"), ("pixel_accuracy", "pixel accuracy"))
    figure = Figure(figsize=(6.5, 4.0))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    width = 0.8 / len(metrics)
    positions = np.arange(len(settings))
    for index, (key, title) in enumerate(metrics):
        values = [100.0 * (results["settings"][s][key] or 0.0) for s in settings]
        bars = axes.bar(
            positions + (index - (len(metrics) - 1) / 2) * width, values, width, label=title
        )
        axes.bar_label(bars, fmt="%.1f", fontsize=8)
    axes.set_xticks(positions, [SETTING_TITLES[s] for s in settings], fontsize=8)
    axes.set_ylabel("% on held-out real images")
    axes.set_ylim(0, 105)
    axes.set_title(f"Synthetic-to-real ({results['preset']}, {results['max_steps']} steps)")
    axes.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
