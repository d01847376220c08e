"""SavedModel exports of the layout side (layouts, partial edits, the palette -> layout ->
image pipeline), per-level snapshots, and loading for inference.

Serving signature `serve` / serving_default:
    (palette float32 [N, C], z float32 [N, z_dim]) ->
        {"layout_soft": float32 [N, H, W, C], "layout": uint8 [N, H, W] (argmax train ids)}
at the level (and fade-in alpha) the run had reached when exported; the generator runs in
inference mode, so the SavedModel's output equals the Keras model's. Beside it META_FILE
records {"label_set", "class_names", "num_classes", "z_dim", "level", "alpha", "height",
"width", "step"}: palettes of another label set are refused before the model runs.

Partial editing (export_partial, a stage=partial run), signature `serve_partial`:
    (layout uint8 [N, H, W] train ids, band int32 [N, 2], delta float32 [N, C],
     z float32 [N, z_dim]) -> {"layout_soft": float32 [N, H, W, C], "layout": uint8 [N, H, W]}
band = (start, end): the COLUMNS start .. end - 1 of every row are regenerated (0 <= start <
end <= W, checked in the graph); delta = the change of the layout's class proportions asked
for (sums to ~0; 0 regenerates the band with the proportions it had): the target palette is
the input's + delta. Outside the band the output is the input, exactly. META_FILE records
"stage": "partial" and "band": "columns".

The pipeline (export_palette_pipeline: a layout run + a SPADE run, or an e2e run, optionally
a partial run), signatures
    serve / serving_default   (palette float32 [N, C], z float32 [N, z_dim])
    serve_partial             (layout, band, delta, z float32 [N, partial z_dim]), as above
each -> {"layout": uint8 [N, H, W], "layout_soft": float32 [N, H, W, C], "image": uint8
[N, H, W, 3], "image_float": float32 [N, H, W, 3] in [-1, 1]}: SPADE draws the argmax layout.
Beside it PIPELINE_META_FILE.

Per-level snapshots: <run_dir>/levels/level<k>_<H>x<W>.* (tf.train.Checkpoint of the
generator), written when level k's schedule ends (see task.py); `LayoutGenerator` loads the run's
newest checkpoint (its level) or, given `level`, that level's snapshot. `PartialEditor` edits
with a stage=partial run (at its last level) or a SavedModel with serve_partial.
"""

import json
import os
import re

import keras
import numpy as np
import tensorflow as tf

from core.errors import UserError
from models.palette import bands as bands_lib
from models.palette import sources
from models.palette.config import PaletteConfig
from models.palette.labels import layout_label_set
from models.palette.trainer import PaletteLayoutGAN, PalettePartialGAN
from training import checkpointing
from training import run_dir as run_dir_lib

META_FILE = "semsynth_palette.json"
PIPELINE_META_FILE = "semsynth_palette_pipeline.json"
LEVELS_DIR = "levels"
_SNAPSHOT = re.compile(r"^level(\d+)_(\d+)x(\d+)\.index$")


class LayoutCheckpointError(UserError):
    """A layout checkpoint or export cannot serve the request (another level, label set)."""


def _outputs(soft):
    return {
        "layout_soft": tf.cast(soft, tf.float32),
        "layout": tf.cast(tf.argmax(soft, axis=-1), tf.uint8),
    }


def export_palette(gan, path, label_set, level=None, alpha=None):
    """Writes `gan`'s generator as a SavedModel at `path` (replaced atomically).

    Args:
        gan: a PaletteLayoutGAN.
        path: the SavedModel folder.
        label_set: the layouts' semantic_labels.LabelSet (recorded in META_FILE).
        level, alpha: the level exported (default: the level and alpha the step reached).
    """
    if level is None:
        level, scheduled = gan.schedule()
        alpha = scheduled if alpha is None else alpha
    alpha = 1.0 if alpha is None else float(alpha)
    archive = keras.export.ExportArchive()
    archive.track(gan.generator)

    def serve(palette, z):
        soft = gan.generator(z, palette, level=level, alpha=alpha, training=False)[0]
        return _outputs(soft)

    archive.add_endpoint(
        "serve",
        serve,
        input_signature=[
            tf.TensorSpec([None, gan.num_classes], tf.float32, name="palette"),
            tf.TensorSpec([None, gan.z_dim], tf.float32, name="z"),
        ],
    )
    height, width = gan.level_size(level)
    meta = {
        "label_set": label_set.name,
        "class_names": list(label_set.names),
        "num_classes": gan.num_classes,
        "z_dim": gan.z_dim,
        "level": int(level),
        "alpha": float(alpha),
        "height": int(height),
        "width": int(width),
        "step": int(gan.step.numpy()),
    }
    return run_dir_lib.write_saved_model(archive, path, json_files={META_FILE: meta})


# === Per-level snapshots ===


def snapshot_prefix(run_dir, level, size):
    return os.path.join(run_dir, LEVELS_DIR, f"level{level}_{size[0]}x{size[1]}")


def generator_snapshots(run_dir):
    """{level: snapshot prefix} of a run directory."""
    folder = os.path.join(run_dir, LEVELS_DIR)
    if not os.path.isdir(folder):
        return {}
    found = {}
    for name in os.listdir(folder):
        match = _SNAPSHOT.match(name)
        if match:
            found[int(match.group(1))] = os.path.join(folder, name[: -len(".index")])
    return found


def snapshot_finished_levels(gan, run_dir, step):
    """Keeps the generator of the level whose schedule ended exactly at `step` (if any)."""
    period = gan.fade_steps + gan.stable_steps
    if step <= 0 or step % period or step // period > gan.max_level:
        return None
    level = step // period - 1
    prefix = snapshot_prefix(run_dir, level, gan.level_size(level))
    if os.path.exists(prefix + ".index"):
        return None
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    checkpoint = tf.train.Checkpoint(
        generator=checkpointing.variable_bundle(gan.generator), step=gan.step
    )
    return checkpoint.write(prefix)


# === Loading for inference ===


class LayoutGenerator:
    """(palettes, z) -> layouts, from a run directory or an exported SavedModel.

    Args:
        source: a run directory of train.py --model=palette, or a SavedModel folder of
            export_palette.
        level: the level wanted (default: the run's current level, or the export's). A run
            serves another level only from its per-level snapshots; an export only its own.
        log: where notes on skipped unreadable checkpoints go.

    Attributes:
        label_set_name, class_names, num_classes, z_dim, level, alpha, height, width.
    """

    def __init__(self, source, level=None, log=print):
        self._gan = self._module = None
        if os.path.exists(os.path.join(source, "saved_model.pb")):
            self._load_export(source, level)
        elif os.path.exists(os.path.join(source, run_dir_lib.CONFIG_FILE)):
            self._load_run(source, level, log)
        else:
            raise LayoutCheckpointError(
                f"{source} is neither a palette run directory (no {run_dir_lib.CONFIG_FILE}) "
                "nor a SavedModel folder (no saved_model.pb)"
            )

    def _load_export(self, source, level):
        path = os.path.join(source, META_FILE)
        try:
            with open(path) as f:
                meta = json.load(f)
        except (OSError, ValueError) as error:
            raise LayoutCheckpointError(f"{source}: {path} is unreadable ({error})") from None
        if meta.get("stage", "layout") != "layout":
            raise LayoutCheckpointError(
                f"{source} is the export of a --stage={meta['stage']} run (serve_partial), not "
                "of a layout generator"
            )
        if level is not None and level != meta["level"]:
            raise LayoutCheckpointError(
                f"{source} holds the layout generator of level {meta['level']} "
                f"({meta['height']}x{meta['width']}), not level {level}; export that level"
            )
        self._module = tf.saved_model.load(source)
        self.label_set_name = meta["label_set"]
        self.class_names = tuple(meta["class_names"])
        self.num_classes = int(meta["num_classes"])
        self.z_dim = int(meta["z_dim"])
        self.level, self.alpha = int(meta["level"]), float(meta["alpha"])
        self.height, self.width = int(meta["height"]), int(meta["width"])

    def _load_run(self, source, level, log):
        config = run_dir_lib.load_run_config(source, PaletteConfig)
        if config.stage != "layout":
            raise LayoutCheckpointError(
                f"{source} is a run of --stage={config.stage}: layouts from palettes come from "
                "a stage=layout run (or the export of an e2e run)"
            )
        label_set, _ = layout_label_set(config)
        gan = PaletteLayoutGAN.from_run_config(
            config, num_classes=label_set.num_classes, for_training=False
        )
        checkpointing.restore_run_for_inference(gan.checkpoint_objects(), source, log=log)
        current, alpha = gan.schedule()
        if level is not None and level != current:
            snapshots = generator_snapshots(source)
            if level not in snapshots:
                available = sorted({*snapshots, current})
                raise LayoutCheckpointError(
                    f"--checkpoint_dir={source} has no layout generator of level {level}: its "
                    f"checkpoint is at level {current} "
                    f"({'x'.join(map(str, gan.level_size(current)))}) and it keeps levels "
                    f"{available}"
                )
            checkpoint = tf.train.Checkpoint(generator=checkpointing.variable_bundle(gan.generator))
            checkpoint.read(snapshots[level]).assert_existing_objects_matched().expect_partial()
            current, alpha = level, 1.0
        self._gan = gan
        self.label_set_name = label_set.name
        self.class_names = tuple(label_set.names)
        self.num_classes = label_set.num_classes
        self.z_dim = gan.z_dim
        self.level, self.alpha = current, alpha
        self.height, self.width = gan.level_size(current)

    def __call__(self, palettes, z):
        """palettes float32 [N, C], z float32 [N, z_dim] -> (soft [N, H, W, C] float32,
        layout uint8 [N, H, W] train ids)."""
        palettes = tf.constant(np.asarray(palettes, np.float32))
        z = tf.constant(np.asarray(z, np.float32))
        if self._module is not None:
            out = self._module.serve(palettes, z)
        else:
            soft = self._gan.generate(z, palettes, level=self.level, alpha=self.alpha)
            out = _outputs(soft)
        return out["layout_soft"].numpy(), out["layout"].numpy()


# === Partial editing ===


def partial_edit(generator, layout, band, change, z, *, level, alpha, num_classes, size):
    """The edited soft layouts of a PartialLayoutGenerator, in graph ops (checks included).

    Args:
        generator: the PartialLayoutGenerator.
        layout: uint8 / int [N, H, W] train ids, (H, W) = `size` (the trained size).
        band: int32 [N, 2] column ranges (start, end) to regenerate.
        change: float32 [N, C] requested change of the class proportions.
        z: float32 [N, z_dim].
        level, alpha: the generator's level and fade-in weight.
        num_classes: C.
        size: (H, W).
    Returns:
        float32 [N, H_level, W_level, C] soft layouts, equal to the input outside the band.
    """
    height, width = size
    ids = tf.cast(layout, tf.int32)  # [N, H, W]
    checks = [
        tf.debugging.Assert(
            bands_lib.bands_valid(band, width),
            ["every band (start, end) must satisfy 0 <= start < end <=", width, "got", band],
            summarize=20,
        ),
        tf.debugging.Assert(
            tf.reduce_max(ids) < num_classes,
            ["layout values must be train ids below", num_classes, "got", tf.reduce_max(ids)],
        ),
    ]
    with tf.control_dependencies(checks):
        one_hot = tf.one_hot(ids, num_classes, dtype=tf.float32)  # [N, H, W, C]
    keep = bands_lib.keep_masks(band, height, width)  # [N, H, W, 1]
    delta = bands_lib.network_delta(one_hot, keep, change)  # [N, C]
    soft, _, _ = generator(z, one_hot, keep, delta, level=level, alpha=alpha, training=False)
    return soft


def _partial_specs(num_classes, z_dim, size):
    return [
        tf.TensorSpec([None, *size], tf.uint8, name="layout"),
        tf.TensorSpec([None, 2], tf.int32, name="band"),
        tf.TensorSpec([None, num_classes], tf.float32, name="delta"),
        tf.TensorSpec([None, z_dim], tf.float32, name="z"),
    ]


def export_partial(gan, path, label_set, level=None, alpha=None):
    """Writes a PalettePartialGAN's generator as a SavedModel with `serve_partial` (see the
    module docstring) at `path` (replaced atomically).

    Args:
        gan: a PalettePartialGAN.
        path: the SavedModel folder.
        label_set: the layouts' LabelSet (recorded in META_FILE).
        level, alpha: the level exported (default: the level and alpha the step reached);
            the input layouts are always of the trained (max_level) size.
    """
    if level is None:
        level, scheduled = gan.schedule()
        alpha = scheduled if alpha is None else alpha
    alpha = 1.0 if alpha is None else float(alpha)
    size = gan.level_size(gan.max_level)
    archive = keras.export.ExportArchive()
    archive.track(gan.generator)

    def serve_partial(layout, band, delta, z):
        soft = partial_edit(
            gan.generator,
            layout,
            band,
            delta,
            z,
            level=level,
            alpha=alpha,
            num_classes=gan.num_classes,
            size=size,
        )
        return _outputs(soft)

    archive.add_endpoint(
        "serve_partial",
        serve_partial,
        input_signature=_partial_specs(gan.num_classes, gan.z_dim, size),
    )
    height, width = gan.level_size(level)
    meta = {
        "stage": "partial",
        "band": "columns",
        "label_set": label_set.name,
        "class_names": list(label_set.names),
        "num_classes": gan.num_classes,
        "z_dim": gan.z_dim,
        "level": int(level),
        "alpha": float(alpha),
        "input_height": int(size[0]),
        "input_width": int(size[1]),
        "height": int(height),
        "width": int(width),
        "step": int(gan.step.numpy()),
    }
    return run_dir_lib.write_saved_model(archive, path, json_files={META_FILE: meta})


class PartialEditor:
    """(layouts, bands, deltas, z) -> edited layouts (and images), from a stage=partial run
    directory (its checkpoint at its last level) or a SavedModel with `serve_partial`
    (export_partial at the last level, or export_palette_pipeline with a partial run), with
    the bad inputs named before the model runs.

    Args:
        source: the run directory or SavedModel folder.
        flag: how error messages name `source` (e.g. "--checkpoint_dir").

    Attributes:
        num_classes, z_dim, height, width (the input layouts' size, also the edits' size),
        class_names, label_set_name, has_images (a pipeline export: the outputs hold "image").

    Example:
        editor = PartialEditor("runs/palette_partial")
        edited = editor(layouts, [[8, 24]] * n, changes, z)["layout"]  # uint8 [N, H, W]
    """

    def __init__(self, source, flag=None):
        self.source = os.fspath(source)
        self._where = f"{flag}={self.source}" if flag else self.source
        self._module = self._gan = None
        self.has_images = False
        if os.path.exists(os.path.join(self.source, "saved_model.pb")):
            self._load_export(flag)
        elif os.path.exists(os.path.join(self.source, run_dir_lib.CONFIG_FILE)):
            self._load_run(flag)
        else:
            raise LayoutCheckpointError(
                f"{self._where} is neither a run directory (no {run_dir_lib.CONFIG_FILE}) nor a "
                "SavedModel folder (no saved_model.pb)"
            )

    def _load_export(self, flag):
        saved_model = self.source
        partial_meta = os.path.join(saved_model, META_FILE)
        pipeline_meta = os.path.join(saved_model, PIPELINE_META_FILE)
        meta = {}
        for path in (partial_meta, pipeline_meta):
            if os.path.exists(path):
                with open(path) as f:
                    meta = json.load(f)
                break
        if meta.get("stage") == "partial":  # export_partial
            self.z_dim = int(meta["z_dim"])
            self.height, self.width = int(meta["input_height"]), int(meta["input_width"])
            if (int(meta["height"]), int(meta["width"])) != (self.height, self.width):
                raise LayoutCheckpointError(
                    f"{self._where} was exported at level {meta['level']} ({meta['height']}x"
                    f"{meta['width']}), before its last level: its edits are not of the "
                    f"{self.height}x{self.width} input's size; export the run at its last level"
                )
        elif meta.get("partial"):  # export_palette_pipeline with a partial run
            self.z_dim = int(meta["partial_z_dim"])
            self.height, self.width = int(meta["height"]), int(meta["width"])
            self.has_images = True
        else:
            raise LayoutCheckpointError(
                f"{self._where} is not a SavedModel with serve_partial (no partial export "
                f"{META_FILE} or pipeline {PIPELINE_META_FILE} with a partial run): partial "
                "edits come from a --stage=partial run or its export"
            )
        self._module = tf.saved_model.load(saved_model)
        self.num_classes = int(meta["num_classes"])
        self.class_names = tuple(meta["class_names"])
        self.label_set_name = meta["label_set"]

    def _load_run(self, flag):
        flag = flag or "partial_source"
        config = sources.read_run_config(self.source, flag, "palette", PaletteConfig)
        if config.stage != "partial":
            raise LayoutCheckpointError(
                f"{self._where} is a run of --stage={config.stage}: it has no partial-editing "
                "model; partial edits come from a run of train.py --model=palette "
                "--stage=partial (or its export)"
            )
        gan, label_set = _partial_source(self.source, None, flag)
        self._gan = gan
        self.z_dim = gan.z_dim
        self.height, self.width = gan.level_size(gan.max_level)
        self.num_classes = label_set.num_classes
        self.class_names = tuple(label_set.names)
        self.label_set_name = label_set.name

    def __call__(self, layouts, bands, deltas, z):
        """layouts uint8 [N, H, W] train ids, bands [N, 2] column ranges, deltas float32
        [N, C] proportion changes, z float32 [N, z_dim] -> the outputs as NumPy:
        {"layout": uint8 [N, H, W], "layout_soft": float32 [N, H, W, C]} (+ "image" uint8
        [N, H, W, 3], "image_float" of a pipeline export)."""
        layouts = np.asarray(layouts)
        n = len(layouts)
        if layouts.shape[1:] != (self.height, self.width):
            raise bands_lib.BandError(
                f"layouts must be [N, {self.height}, {self.width}], got {list(layouts.shape)}"
            )
        if layouts.size and int(layouts.max()) >= self.num_classes:
            raise bands_lib.BandError(
                f"layout value {int(layouts.max())} is not one of the {self.num_classes} train ids"
            )
        bands = bands_lib.check_bands(bands, self.height, self.width, count=n)
        deltas = np.asarray(deltas, np.float32)
        if deltas.shape != (n, self.num_classes):
            raise bands_lib.BandError(
                f"deltas must be [{n}, {self.num_classes}] (one change per class of "
                f"{', '.join(self.class_names)}), got {list(deltas.shape)}"
            )
        args = (
            tf.constant(layouts.astype(np.uint8)),
            tf.constant(bands),
            tf.constant(deltas),
            tf.constant(np.asarray(z, np.float32)),
        )
        if self._module is not None:
            out = self._module.serve_partial(*args)
        else:
            gan = self._gan
            soft = partial_edit(
                gan.generator,
                *args,
                level=gan.max_level,
                alpha=1.0,
                num_classes=gan.num_classes,
                size=(self.height, self.width),
            )
            out = _outputs(soft)
        return {k: v.numpy() for k, v in out.items()}


# === The palette -> layout -> image pipeline ===


def _label_set_of(label_set, where):
    if label_set is None:
        raise LayoutCheckpointError(f"{where}: give the label set of in-memory models")
    return label_set


def _layout_source(source, label_set):
    """(PaletteLayoutGAN, SPADEGAN or None, LabelSet) of a layout source: a PaletteLayoutGAN,
    a PaletteE2EGAN, or the run directory of a stage=layout or stage=e2e run."""
    from models.palette.e2e_trainer import PaletteE2EGAN

    if isinstance(source, PaletteE2EGAN):
        return source.layout_gan, source.image_gan, _label_set_of(label_set, "e2e model")
    if isinstance(source, PaletteLayoutGAN) and not isinstance(source, PalettePartialGAN):
        level, alpha = source.schedule()
        if (level, alpha) != (source.max_level, 1.0):
            raise LayoutCheckpointError(
                f"the layout generator is at level {level} (alpha {alpha:.2f}), not its last "
                f"level {source.max_level} with the fade-in finished"
            )
        return source, None, _label_set_of(label_set, "layout model")
    config = sources.read_run_config(source, "layout_source", "palette", PaletteConfig)
    run_label_set, _ = layout_label_set(config)
    if config.stage == "e2e":
        image_config = sources.read_image_config_copy(source)
        layout_gan = PaletteLayoutGAN.from_run_config(
            config, num_classes=run_label_set.num_classes, for_training=False
        )
        image_gan = _image_gan(image_config)
        objects = {
            "layout_generator": checkpointing.variable_bundle(layout_gan.generator),
            "image_generator": checkpointing.variable_bundle(image_gan.generator),
        }
        sources.restore_networks(objects, source, "layout_source")
        return layout_gan, image_gan, run_label_set
    if config.stage != "layout":
        raise LayoutCheckpointError(
            f"layout_source={source} is a run of --stage={config.stage}, not layout or e2e"
        )
    _, step = sources.load_layout_source(source, "layout_source")
    layout_gan = PaletteLayoutGAN.from_run_config(
        config, num_classes=run_label_set.num_classes, for_training=False
    )
    sources.restore_networks(
        {"generator": checkpointing.variable_bundle(layout_gan.generator)}, source, "layout_source"
    )
    layout_gan.step.assign(step)
    return layout_gan, None, run_label_set


def _image_gan(image_config):
    from models.spade.labels import num_spade_classes
    from models.spade.trainer import SPADEGAN

    return SPADEGAN.from_run_config(
        image_config, num_spade_classes(image_config), for_training=False
    )


def _image_source(source):
    """(SPADEGAN, label set name) of an image source: a SPADEGAN or a SPADE run directory."""
    from models.spade.trainer import SPADEGAN

    if isinstance(source, SPADEGAN):
        return source, None
    config = sources.load_image_source(source, "image_source")
    gan = _image_gan(config)
    sources.restore_networks(
        {"generator": checkpointing.variable_bundle(gan.generator)}, source, "image_source"
    )
    return gan, config.semantic_label_path


def _partial_source(source, label_set, flag="partial_source"):
    """(PalettePartialGAN, LabelSet) of a partial source: the model or a stage=partial run
    (its checkpoint at its last level)."""
    if isinstance(source, PalettePartialGAN):
        return source, label_set
    config, _ = sources.load_layout_source(source, flag, stage="partial")
    run_label_set, _ = layout_label_set(config)
    gan = PalettePartialGAN.from_run_config(
        config, num_classes=run_label_set.num_classes, for_training=False
    )
    sources.restore_networks(
        {"generator": checkpointing.variable_bundle(gan.generator)}, source, flag
    )
    return gan, run_label_set


def export_palette_pipeline(layout_source, image_source, path, partial_source=None, label_set=None):
    """Writes the palette -> layout -> image pipeline as one SavedModel at `path` (replaced
    atomically): `serve` and, with a partial source, `serve_partial` (module docstring).

    Args:
        layout_source: the run directory of a stage=layout run (its checkpoint at its last
            level) or of a stage=e2e run, or a PaletteLayoutGAN / PaletteE2EGAN.
        image_source: the run directory of a SPADE run (no VAE) or a SPADEGAN; None when
            layout_source is an e2e run or model (its fine-tuned SPADE is used).
        path: the SavedModel folder.
        partial_source: optional stage=partial run directory or PalettePartialGAN (its last
            level).
        label_set: the layouts' LabelSet, needed when the sources are in-memory models.

    Raises:
        SourceRunError / LayoutCheckpointError: a source of another family, stage, level,
            label set or size than the others.
    """
    layout_gan, e2e_image_gan, label_set = _layout_source(layout_source, label_set)
    if e2e_image_gan is not None and image_source is not None:
        raise LayoutCheckpointError(
            "an e2e layout source brings its own image synthesizer: give image_source=None"
        )
    image_label_set_name = None
    if e2e_image_gan is not None:
        image_gan = e2e_image_gan
    elif image_source is None:
        raise LayoutCheckpointError("give image_source (a SPADE run) for a layout-stage source")
    else:
        image_gan, image_label_set_name = _image_source(image_source)
    level = layout_gan.max_level
    size = tuple(layout_gan.level_size(level))
    if image_label_set_name is not None:
        from semantic_labels import load_label_set

        image_set = load_label_set(image_label_set_name)
        if tuple(image_set.names) != tuple(label_set.names):
            raise sources.SourceRunError(
                f"image_source={image_source} synthesizes the label set {image_set.name!r}, the "
                f"layouts are of {label_set.name!r}"
            )
    if tuple(
        image_gan.image_size
    ) != size or image_gan.num_classes - layout_gan.num_classes not in (
        0,
        1,
    ):
        raise sources.SourceRunError(
            f"the layouts are {size[0]}x{size[1]} of {layout_gan.num_classes} classes but the "
            f"image synthesizer makes {image_gan.image_size[0]}x{image_gan.image_size[1]} "
            f"images from {image_gan.num_classes} channels"
        )
    partial_gan = None
    if partial_source is not None:
        partial_gan, partial_set = _partial_source(partial_source, label_set)
        if tuple(partial_set.names) != tuple(label_set.names):
            raise sources.SourceRunError(
                f"partial_source edits layouts of {partial_set.name!r}, not {label_set.name!r}"
            )
        partial_size = tuple(partial_gan.level_size(partial_gan.max_level))
        if partial_size != size:
            raise sources.SourceRunError(
                f"partial_source edits {partial_size[0]}x{partial_size[1]} layouts, the "
                f"pipeline's are {size[0]}x{size[1]}"
            )

    archive = keras.export.ExportArchive()
    archive.track(layout_gan.generator)
    archive.track(image_gan.generator)

    def with_image(soft):
        out = _outputs(soft)
        image = image_gan.synthesize(out["layout"], training=False)  # [N, H, W, 3]
        out["image_float"] = tf.cast(image, tf.float32)
        out["image"] = tf.cast(
            tf.round(tf.clip_by_value((image + 1.0) * 127.5, 0.0, 255.0)), tf.uint8
        )
        return out

    def serve(palette, z):
        soft = layout_gan.generator(z, palette, level=level, alpha=1.0, training=False)[0]
        return with_image(soft)

    archive.add_endpoint(
        "serve",
        serve,
        input_signature=[
            tf.TensorSpec([None, layout_gan.num_classes], tf.float32, name="palette"),
            tf.TensorSpec([None, layout_gan.z_dim], tf.float32, name="z"),
        ],
    )
    if partial_gan is not None:
        archive.track(partial_gan.generator)

        def serve_partial(layout, band, delta, z):
            soft = partial_edit(
                partial_gan.generator,
                layout,
                band,
                delta,
                z,
                level=partial_gan.max_level,
                alpha=1.0,
                num_classes=partial_gan.num_classes,
                size=size,
            )
            return with_image(soft)

        archive.add_endpoint(
            "serve_partial",
            serve_partial,
            input_signature=_partial_specs(partial_gan.num_classes, partial_gan.z_dim, size),
        )
    meta = {
        "label_set": label_set.name,
        "class_names": list(label_set.names),
        "num_classes": layout_gan.num_classes,
        "z_dim": layout_gan.z_dim,
        "height": int(size[0]),
        "width": int(size[1]),
        "partial": partial_gan is not None,
        "partial_z_dim": None if partial_gan is None else partial_gan.z_dim,
        "band": "columns",
    }
    return run_dir_lib.write_saved_model(archive, path, json_files={PIPELINE_META_FILE: meta})
