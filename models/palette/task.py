"""What the generic training loop needs to know about the Semantic Palette layout synthesizer.

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
"""

import math
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from core import io as core_io
from datasets import pipeline, segmentation
from datasets.sources import resolve_pairs
from models.palette import export as export_lib
from models.palette.estimator import PaletteEstimator, proportions
from models.palette.labels import layout_label_set
from models.palette.trainer import PaletteLayoutGAN

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

    def build(self, steps_per_epoch):
        """Creates the model (the caller opens the strategy scope)."""
        self.model = PaletteLayoutGAN.from_run_config(self.config, num_classes=self.num_classes)
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

    def write_samples(self, writer, step):
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
        return export_lib.export_palette(self.model, path, self.label_set)
