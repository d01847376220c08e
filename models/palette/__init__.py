"""Semantic Palette (Le Moing et al., CVPR 2021): class proportions -> semantic layouts.

    config.py     PaletteConfig and the presets (tiny, cityscapes_128x256)
    estimator.py  the palette estimator (Gaussian mixture over class proportions, AIC)
    networks.py   equalised-lr layers, PixelNorm, the assisted activation, the progressive
                  layout generator and critic, the partial-editing generator
    bands.py      the band of a partial edit: drawing, keep masks, checks
    trainer.py    PaletteLayoutGAN (level / fade-in schedule, WGAN-GP D and G steps) and
                  PalettePartialGAN (partial editing)
    e2e_trainer.py  PaletteE2EGAN: layout G and SPADE fine-tuned together (stage=e2e)
    sources.py    the layout / SPADE runs an e2e run or a pipeline export starts from
    task.py       data wiring (label maps -> blurred soft layouts; pairs for e2e), estimator,
                  samples
    export.py     the SavedModels (layouts, partial edits, the palette -> layout -> image
                  pipeline), per-level snapshots, LayoutGenerator (inference runtime)
    inference.py  palette files, layouts from palettes, synthetic pairs
    partial.py    partial editing of given layouts -> pairs (synthesize.py --partial)
    demos.py      interpolation strips / GIFs, the partial-editing sheet

Importing this package registers the family with the training engine (training.registry); it
loads no TensorFlow until a task or model is built.
"""

from models.palette.config import PRESETS, PaletteConfig
from training import registry


def _make_task(config):
    from models.palette import task

    if config.stage == "e2e":
        return task.PaletteE2ETask(config)
    return task.PaletteTask(config)


def _build_for_dry_run(config):
    from models.palette.labels import layout_label_set
    from models.palette.trainer import PaletteLayoutGAN, PalettePartialGAN

    label_set, _ = layout_label_set(config)
    if config.stage == "e2e":
        from models.palette.e2e_trainer import PaletteE2EGAN
        from models.palette.sources import load_e2e_sources

        _, image_config = load_e2e_sources(config, read_checkpoints=False)
        return PaletteE2EGAN.from_run_config(
            config, image_config, num_classes=label_set.num_classes, vgg_weights="none"
        )
    cls = PalettePartialGAN if config.stage == "partial" else PaletteLayoutGAN
    return cls.from_run_config(config, num_classes=label_set.num_classes)


registry.register(
    registry.Family(
        name="palette",
        config_class=PaletteConfig,
        presets=PRESETS,
        make_task=_make_task,
        build_for_dry_run=_build_for_dry_run,
        title="Semantic Palette",
    )
)
