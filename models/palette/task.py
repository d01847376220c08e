"""What the generic training loop needs to know about Semantic Palette: the layout and partial
stages (PaletteTask) and end-to-end fine-tuning (PaletteE2ETask).

Data: label maps only (the images are not read). Each training element is a label map mapped
to train ids (Cityscapes labelIds -> 19 train ids; 255 = ignore), resized (nearest) to the
trained size (max_level's), randomly mirrored, turned into its palette (the class proportions
of its labelled pixels) and its one-hot map, Gaussian-blurred (sigma blur_sigma px) and
renormalised per pixel; pixels that no labelled pixel reaches through the blur (a large
ignored area) become uniform. The trainer average-pools the layouts to the level it trains.

At the start the palette estimator (models.palette.estimator) is fitted on the training
layouts' palettes and saved in the run directory as palette_estimator.json (a resumed run, or
--estimator_path, loads one instead; another label set's is refused).

Samples (PNG in results_dir and TensorBoard): rows of [real layout | generated layout (argmax,
class colours, at the level trained, upscaled) | proportion bars, target vs achieved] for the
palettes of 4 real layouts, then for 4 palettes drawn from the estimator; the scalar
proportions/mae is the mean absolute difference of target and achieved (soft) proportions.
When save_img_freq divides fade_steps + stable_steps, the sample write at each level's end also
keeps that level's generator in <run_dir>/levels/ (export.generator_snapshots).

stage=partial: the same data; no estimator; samples are rows of [real layout | input with the
band black | edited layout | proportion bars, real vs achieved] for 4 real layouts with fixed
bands; the export has serve_partial (export.export_partial).

stage=e2e (PaletteE2ETask): pairs (image and label map) resized to the layout size, mirrored
together; the label map gives SPADE's input (ignored pixels on its "don't care" channel), the
real soft layout and its palette. At its start the run checks --layout_run / --image_run
(models.palette.sources), loads their networks (unless it resumes) and keeps the image run's
config as image_config.json. Samples: rows of [real layout | real image | SPADE's image of it |
generated layout for the real palette | SPADE's image of that | bars]; the export is the
palette -> layout -> image pipeline (export.export_palette_pipeline).
"""

import math
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from core import io as core_io
from datasets import pipeline, segmentation
from datasets.sources import resolve_pairs
from models.palette import bands as bands_lib
from models.palette import export as export_lib
from models.palette import sources
from models.palette.e2e_trainer import PaletteE2EGAN
from models.palette.estimator import PaletteEstimator, proportions
from models.palette.labels import layout_label_set
from models.palette.trainer import PaletteLayoutGAN, PalettePartialGAN
from training import checkpointing

ESTIMATOR_FILE = "palette_estimator.json"
NUM_REAL_SAMPLES = 4
NUM_DRAWN_SAMPLES = 4


def layout_pairs(config, split="training"):
    """The (image, label) pairs of a config's layout source (only the labels are read)."""
    kwargs = dict(
        data_root=config.data_root,
        image_dir=config.image_dir,
        label_dir=config.label_dir,
        val_image_dir=config.val_image_dir,
        val_label_dir=config.val_label_dir,
        train_list=config.train_list,
        val_list=config.val_list,
    )
    # The procedural street scenes' settings, once datasets/ has them.
    for name in ("streets_height", "streets_width", "num_streets"):
        if hasattr(config, name):
            kwargs[name] = getattr(config, name)
    return resolve_pairs(config.dataset, split, **kwargs)


def gaussian_kernel(sigma):
    """[2r + 1] float32 normalised Gaussian taps, r = ceil(3 sigma) (sigma > 0)."""
    radius = max(1, int(math.ceil(3 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (x / sigma) ** 2)
    return (taps / taps.sum()).astype(np.float32)


def soft_layout(train_ids, num_classes, blur_sigma):
    """[H, W] int32 train ids (255 = ignore) -> [H, W, C] blurred one-hot, rows summing to 1.

    Works eagerly and inside tf.data. Pixels the blur leaves without any class mass (inside a
    large ignored area) become uniform 1 / C.
    """
    one_hot = tf.one_hot(train_ids, num_classes, dtype=tf.float32)  # [H, W, C]; 255 -> zeros
    if blur_sigma > 0:
        taps = tf.constant(gaussian_kernel(blur_sigma))
        k = int(taps.shape[0])
        x = one_hot[None]  # [1, H, W, C]
        rows = tf.tile(tf.reshape(taps, (k, 1, 1, 1)), (1, 1, num_classes, 1))  # [k, 1, C, 1]
        cols = tf.tile(tf.reshape(taps, (1, k, 1, 1)), (1, 1, num_classes, 1))  # [1, k, C, 1]
        x = tf.nn.depthwise_conv2d(x, rows, [1, 1, 1, 1], "SAME")  # separable blur
        x = tf.nn.depthwise_conv2d(x, cols, [1, 1, 1, 1], "SAME")
        one_hot = x[0]  # [H, W, C]
    total = tf.reduce_sum(one_hot, axis=-1, keepdims=True)  # [H, W, 1]
    uniform = tf.fill(tf.shape(one_hot), 1.0 / num_classes)
    return tf.where(total > 1e-6, one_hot / tf.maximum(total, 1e-6), uniform)


def palette_of(train_ids, num_classes):
    """[H, W] int32 train ids (255 = ignore) -> [C] proportions of the labelled pixels
    (uniform when none is labelled)."""
    counts = tf.reduce_sum(tf.one_hot(train_ids, num_classes, dtype=tf.float32), axis=[0, 1])
    total = tf.reduce_sum(counts)
    return tf.where(total > 0, counts / tf.maximum(total, 1.0), 1.0 / num_classes)


def make_layout_dataset(
    label_paths,
    *,
    label_map,
    num_classes,
    size,
    blur_sigma,
    global_batch_size,
    seed,
    start_step,
    input_context=None,
):
    """The training stream of layouts: {"layout": [N, H, W, C], "proportions": [N, C]}.

    A pure function of (seed, global element index), as every training stream
    (datasets.pipeline.training_stream): resuming at a step repeats the batches.

    Args:
        label_paths: label map files (raw values, mapped by `label_map`).
        label_map: [256] raw value -> train id table (datasets.segmentation).
        num_classes: C.
        size: (H, W) of the layouts.
        blur_sigma: Gaussian blur of the one-hot maps in px (0: none).
        global_batch_size, seed, start_step, input_context: see training_stream.
    """
    paths = tf.constant([os.fspath(p) for p in label_paths])

    def element(file_index, element_seed):
        path = tf.gather(paths, file_index)
        ids = segmentation.apply_label_map(pipeline.decode_label(path), label_map, path)
        ids = pipeline.resize_label(ids, size)  # [H, W] int32
        ids = pipeline.mirror_where(pipeline.coin_flip(element_seed), ids)
        return {
            "layout": soft_layout(ids, num_classes, blur_sigma),
            "proportions": palette_of(ids, num_classes),
        }

    return pipeline.training_stream(
        len(label_paths),
        element,
        global_batch_size=global_batch_size,
        seed=seed,
        start_step=start_step,
        input_context=input_context,
    )


def read_train_ids(path, label_map, size):
    """One label map as [H, W] uint8 train ids at `size` (nearest), in NumPy."""
    raw = pipeline.load_label_map(path)
    ids = label_map[raw]
    if np.any(ids < 0):
        bad = sorted(set(raw[ids < 0].tolist()))[:10]
        raise core_io.InputError(
            f"label map {path} holds raw values {bad}, neither classes of this dataset nor "
            "ignored (wrong dataset or label set?)"
        )
    image = Image.fromarray(ids.astype(np.uint8)).resize((size[1], size[0]), Image.NEAREST)
    return np.asarray(image)


def colorize(label_set, ids):
    """[H, W] train ids (255 = ignore, shown black) -> [H, W, 3] uint8."""
    colors = np.concatenate([label_set.colors, np.zeros((256 - label_set.num_classes, 3))])
    return colors.astype(np.uint8)[np.asarray(ids, np.intp)]


def proportion_bars(label_set, target, achieved, size):
    """[H, W', 3] uint8 bar chart (W' = max(W, 4C)): per class, the target (class colour)
    then the achieved proportion (half brightness), heights relative to the largest value."""
    c = label_set.num_classes
    h, w = size[0], max(size[1], 4 * c)  # at least 2 px per bar
    image = np.full((h, w, 3), 255, np.uint8)
    width = w // (2 * c)
    top = max(float(np.max(target)), float(np.max(achieved)), 1e-6)
    for k in range(c):
        for j, (value, shade) in enumerate(((target[k], 1.0), (achieved[k], 0.5))):
            height = int(round(h * float(value) / top))
            x0 = (2 * k + j) * width
            if height:
                color = (label_set.colors[k] * shade).astype(np.uint8)
                image[h - height :, x0 : x0 + width] = color
    return image


class PaletteTask:
    """The layout synthesizer for training/loop.fit: layouts, the GAN, samples, the export."""

    title = "Semantic Palette layouts"
    example_name = "layouts"

    def __init__(self, config):
        self.config = config
        self.label_set, self.label_map = layout_label_set(config)
        self.num_classes = self.label_set.num_classes
        self.train_pairs = layout_pairs(config, "training")
        self.model = None
        self.estimator = None
        self._samples = None

    @property
    def label_paths(self):
        return [label for _, label in self.train_pairs]

    @property
    def monitoring_pairs(self):
        return self.train_pairs[:NUM_REAL_SAMPLES]

    def diagnose(self, pairs):
        from datasets.pairs import diagnose_pairs

        diagnose_pairs(pairs, None)

    @property
    def partial(self):
        return self.config.stage == "partial"

    def build(self, steps_per_epoch):
        """Creates the model (the caller opens the strategy scope)."""
        cls = PalettePartialGAN if self.partial else PaletteLayoutGAN
        self.model = cls.from_run_config(self.config, num_classes=self.num_classes)
        return self.model

    def dataset_fn(self, input_context, start_step):
        return make_layout_dataset(
            self.label_paths,
            label_map=self.label_map,
            num_classes=self.num_classes,
            size=self.config.layout_size,
            blur_sigma=self.config.blur_sigma,
            global_batch_size=self.config.batch_size,
            seed=self.config.seed,
            start_step=start_step,
            input_context=input_context,
        )

    # === The palette estimator ===

    def fit_estimator(self, log=print):
        """The run's estimator: --estimator_path, the run directory's, or fitted now (and
        saved in the run directory)."""
        cfg = self.config
        saved = os.path.join(cfg.checkpoint_dir, ESTIMATOR_FILE)
        if cfg.estimator_path:
            return PaletteEstimator.load(cfg.estimator_path, self.label_set, "--estimator_path")
        if os.path.exists(saved):
            return PaletteEstimator.load(saved, self.label_set, "the run's estimator")
        palettes = np.stack(
            [
                proportions(read_train_ids(p, self.label_map, cfg.layout_size), self.num_classes)
                for p in self.label_paths
            ]
        )  # [M, C]
        estimator = PaletteEstimator.fit(
            palettes, self.label_set, max_components=cfg.max_components, seed=cfg.seed
        )
        estimator.save(saved)
        log(
            f"Palette estimator: {estimator.num_components} Gaussian components (lowest AIC of "
            f"1..{min(cfg.max_components, len(palettes))}) on {len(palettes)} layouts -> {saved}"
        )
        return estimator

    # === Monitoring ===

    def prepare_monitoring(self):
        cfg = self.config
        if self.partial:
            self._prepare_partial_monitoring()
            return
        self.estimator = self.fit_estimator()
        rng = np.random.default_rng(cfg.seed)
        reals = np.stack(
            [read_train_ids(p, self.label_map, cfg.layout_size) for _, p in self.monitoring_pairs]
        )  # [R, H, W]
        drawn = self.estimator.sample(NUM_DRAWN_SAMPLES, rng)
        palettes = np.concatenate(
            [proportions(reals, self.num_classes).astype(np.float32), drawn]
        )  # [R + D, C]
        z = rng.standard_normal((len(palettes), cfg.z_dim)).astype(np.float32)
        self._samples = {"reals": reals, "palettes": palettes, "z": z}

    def _prepare_partial_monitoring(self):
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        reals = np.stack(
            [read_train_ids(p, self.label_map, cfg.layout_size) for _, p in self.monitoring_pairs]
        )  # [R, H, W]
        width = cfg.layout_size[1]
        low, high = self.model.band_widths()
        widths = rng.integers(low, high + 1, size=len(reals))
        starts = rng.integers(0, width - widths + 1)
        z = rng.standard_normal((len(reals), cfg.z_dim)).astype(np.float32)
        bands = np.stack([starts, starts + widths], axis=1).astype(np.int32)  # [R, 2]
        self._samples = {"reals": reals, "bands": bands, "z": z}

    def _write_partial_samples(self, writer, step):
        cfg = self.config
        samples = self._samples
        h, w = cfg.layout_size
        level, alpha = self.model.schedule(step)
        reals = samples["reals"]
        layout = tf.stack([soft_layout(ids, self.num_classes, 0.0) for ids in reals])
        keep = bands_lib.keep_masks(samples["bands"], h, w)  # [R, H, W, 1]
        delta = bands_lib.band_mass(layout, keep)  # regenerate with the real band's classes
        soft = self.model.edit(
            tf.constant(samples["z"]), layout, keep, delta, level=level, alpha=alpha
        ).numpy()  # [R, h, w, C]
        factor = h // soft.shape[1]
        ids = soft.argmax(-1).repeat(factor, axis=1).repeat(factor, axis=2)  # [R, H, W]
        target = layout.numpy().mean(axis=(1, 2))  # [R, C]
        achieved = soft.mean(axis=(1, 2))
        masked = np.where(keep.numpy()[..., 0] > 0, reals, 255)
        rows = [
            np.concatenate(
                [
                    colorize(self.label_set, reals[i]),
                    colorize(self.label_set, masked[i]),
                    colorize(self.label_set, ids[i]),
                    proportion_bars(self.label_set, target[i], achieved[i], (h, w)),
                ],
                axis=1,
            )
            for i in range(len(reals))
        ]
        self._write_grid(
            writer, step, rows, "samples/real_band_edited_proportions", target, achieved
        )

    def _write_grid(self, writer, step, rows, tag, target, achieved):
        grid = np.concatenate(rows, axis=0)  # [S * H, k W, 3]
        path = os.path.join(self.config.results_dir, f"step_{step:08d}.png")
        core_io.save_image_atomic(grid, path)
        mae = float(np.abs(np.asarray(achieved) - np.asarray(target)).mean())
        if writer is not None:
            with writer.as_default(step=step):
                tf.summary.image(tag, grid[None], max_outputs=1)
                tf.summary.scalar("proportions/mae", mae)

    def write_samples(self, writer, step):
        if self.partial:
            self._write_partial_samples(writer, step)
            export_lib.snapshot_finished_levels(self.model, self.config.checkpoint_dir, step)
            return
        cfg = self.config
        samples = self._samples
        level, alpha = self.model.schedule(step)
        soft = self.model.generate(
            tf.constant(samples["z"]), tf.constant(samples["palettes"]), level, alpha
        ).numpy()  # [S, h, w, C]
        achieved = soft.mean(axis=(1, 2))  # [S, C]
        h, w = cfg.layout_size
        factor = h // soft.shape[1]
        ids = soft.argmax(-1).repeat(factor, axis=1).repeat(factor, axis=2)  # [S, H, W]
        blank = np.full((h, w), 255, np.uint8)
        rows = []
        for i, palette in enumerate(samples["palettes"]):
            real = samples["reals"][i] if i < len(samples["reals"]) else blank
            rows.append(
                np.concatenate(
                    [
                        colorize(self.label_set, real),
                        colorize(self.label_set, ids[i]),
                        proportion_bars(self.label_set, palette, achieved[i], (h, w)),
                    ],
                    axis=1,
                )
            )
        grid = np.concatenate(rows, axis=0)  # [S * H, 3W, 3]
        core_io.save_image_atomic(grid, os.path.join(cfg.results_dir, f"step_{step:08d}.png"))
        mae = float(np.abs(achieved - samples["palettes"]).mean())
        if writer is not None:
            with writer.as_default(step=step):
                tf.summary.image("samples/real_generated_proportions", grid[None], max_outputs=1)
                tf.summary.scalar("proportions/mae", mae)
        export_lib.snapshot_finished_levels(self.model, cfg.checkpoint_dir, step)

    def evaluate(self, strategy, writer, step):
        """No metric during training (evaluate.py --mode=palette, planned)."""
        return None

    def export(self, path):
        if self.partial:
            return export_lib.export_partial(self.model, path, self.label_set)
        return export_lib.export_palette(self.model, path, self.label_set)


def make_pair_dataset(
    pairs,
    *,
    label_map,
    num_classes,
    dontcare,
    size,
    blur_sigma,
    global_batch_size,
    seed,
    start_step,
    input_context=None,
):
    """The e2e training stream: {"image": [N, H, W, 3] in [-1, 1], "label": [N, H, W] SPADE
    channel ids, "layout": [N, H, W, C] soft layouts, "proportions": [N, C]}.

    Each pair is resized to `size` (image bicubic, label nearest: no crop) and mirrored with
    its label; a pure function of (seed, element index) as every training stream.

    Args:
        pairs: (image, label) paths.
        label_map: [256] raw value -> train id (255 ignored).
        num_classes: C, the layouts' classes.
        dontcare: SPADE's channel of ignored pixels (None: SPADE has none, they stay 255).
        size, blur_sigma, global_batch_size, seed, start_step, input_context: as
            make_layout_dataset.
    """
    image_paths = tf.constant([os.fspath(i) for i, _ in pairs])
    label_paths = tf.constant([os.fspath(label) for _, label in pairs])

    def element(file_index, element_seed):
        path = tf.gather(label_paths, file_index)
        pair = pipeline.load_pair(tf.gather(image_paths, file_index), path, 256)
        ids = segmentation.apply_label_map(pair["label"], label_map, path)  # [H0, W0]
        image, ids = pipeline.preprocess_eval(pair["image"], ids, size)  # [H, W, 3], [H, W]
        mirrored = pipeline.coin_flip(element_seed)
        image, ids = pipeline.mirror_where(mirrored, image), pipeline.mirror_where(mirrored, ids)
        label = ids if dontcare is None else tf.where(ids == 255, dontcare, ids)
        return {
            "image": image,
            "label": label,
            "layout": soft_layout(ids, num_classes, blur_sigma),
            "proportions": palette_of(ids, num_classes),
        }

    return pipeline.training_stream(
        len(pairs),
        element,
        global_batch_size=global_batch_size,
        seed=seed,
        start_step=start_step,
        input_context=input_context,
    )


class PaletteE2ETask:
    """End-to-end fine-tuning for training/loop.fit: pairs, PaletteE2EGAN, samples, the
    pipeline export. Checks its --layout_run and --image_run when created (before the run
    directory is touched)."""

    title = "Semantic Palette end-to-end"

    def __init__(self, config):
        self.config = config
        self.label_set, self.label_map = layout_label_set(config)
        self.num_classes = self.label_set.num_classes
        self.layout_config, self.image_config = sources.load_e2e_sources(config)
        from models.spade.labels import num_spade_classes

        spade_classes = num_spade_classes(self.image_config)
        self.dontcare = self.num_classes if spade_classes > self.num_classes else None
        self.train_pairs = layout_pairs(config, "training")
        self.model = None
        self._samples = None

    @property
    def monitoring_pairs(self):
        return self.train_pairs[:NUM_REAL_SAMPLES]

    def diagnose(self, pairs):
        from datasets.pairs import diagnose_pairs

        diagnose_pairs(pairs, 256)  # raw values, checked by the label map

    def build(self, steps_per_epoch, log=print):
        """Creates the model (the caller opens the strategy scope); a new run starts from the
        networks of its layout and image runs."""
        cfg = self.config
        self.model = PaletteE2EGAN.from_run_config(
            cfg, self.image_config, num_classes=self.num_classes
        )
        if not checkpointing.checkpoint_prefixes(os.path.join(cfg.checkpoint_dir, "checkpoints")):
            layout_gan, image_gan = self.model.layout_gan, self.model.image_gan
            sources.restore_networks(
                {
                    "generator": checkpointing.variable_bundle(layout_gan.generator),
                    "discriminator": checkpointing.variable_bundle(layout_gan.discriminator),
                },
                cfg.layout_run,
                "--layout_run",
            )
            sources.restore_networks(
                {
                    "generator": checkpointing.variable_bundle(image_gan.generator),
                    "discriminator": checkpointing.variable_bundle(image_gan.discriminator),
                },
                cfg.image_run,
                "--image_run",
            )
            log(f"Starting from the networks of {cfg.layout_run} and {cfg.image_run}")
        sources.write_image_config_copy(cfg.checkpoint_dir, self.image_config)
        return self.model

    def dataset_fn(self, input_context, start_step):
        return make_pair_dataset(
            self.train_pairs,
            label_map=self.label_map,
            num_classes=self.num_classes,
            dontcare=self.dontcare,
            size=self.config.layout_size,
            blur_sigma=self.config.blur_sigma,
            global_batch_size=self.config.batch_size,
            seed=self.config.seed,
            start_step=start_step,
            input_context=input_context,
        )

    def prepare_monitoring(self):
        cfg = self.config
        size = cfg.layout_size
        pairs = self.monitoring_pairs
        images = np.stack(
            [
                np.asarray(
                    Image.fromarray(pipeline.load_image(i)).resize(
                        (size[1], size[0]), Image.BICUBIC
                    )
                )
                for i, _ in pairs
            ]
        )  # [R, H, W, 3]
        reals = np.stack([read_train_ids(p, self.label_map, size) for _, p in pairs])  # [R, H, W]
        labels = reals if self.dontcare is None else np.where(reals == 255, self.dontcare, reals)
        rng = np.random.default_rng(cfg.seed)
        self._samples = {
            "images": images,
            "reals": reals,
            "labels": labels.astype(np.int32),
            "palettes": proportions(reals, self.num_classes).astype(np.float32),
            "z": rng.standard_normal((len(reals), cfg.z_dim)).astype(np.float32),
        }

    def write_samples(self, writer, step):
        from models.spade.task import to_uint8

        samples = self._samples
        h, w = self.config.layout_size
        soft, generated = self.model.generate(
            tf.constant(samples["z"]), tf.constant(samples["palettes"])
        )
        soft = soft.numpy()
        achieved = soft.mean(axis=(1, 2))  # [R, C]
        of_real = self.model.image_gan.synthesize(tf.constant(samples["labels"]), training=False)
        of_real, generated = to_uint8(of_real), to_uint8(generated)
        rows = [
            np.concatenate(
                [
                    colorize(self.label_set, samples["reals"][i]),
                    samples["images"][i],
                    of_real[i],
                    colorize(self.label_set, soft[i].argmax(-1)),
                    generated[i],
                    proportion_bars(self.label_set, samples["palettes"][i], achieved[i], (h, w)),
                ],
                axis=1,
            )
            for i in range(len(soft))
        ]
        grid = np.concatenate(rows, axis=0)  # [R * H, 6W', 3]
        core_io.save_image_atomic(
            grid, os.path.join(self.config.results_dir, f"step_{step:08d}.png")
        )
        if writer is not None:
            with writer.as_default(step=step):
                tf.summary.image("samples/real_generated_layout_image", grid[None], max_outputs=1)
                mae = float(np.abs(achieved - samples["palettes"]).mean())
                tf.summary.scalar("proportions/mae", mae)

    def evaluate(self, strategy, writer, step):
        """No metric during training."""
        return None

    def export(self, path):
        return export_lib.export_palette_pipeline(self.model, None, path, label_set=self.label_set)
