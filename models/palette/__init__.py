"""Semantic Palette (Le Moing et al., CVPR 2021): class proportions -> semantic layouts.

    config.py     PaletteConfig and the presets (tiny, cityscapes_128x256)
    estimator.py  the palette estimator (Gaussian mixture over class proportions, AIC)
    networks.py   equalised-lr layers, PixelNorm, the assisted activation, the progressive
                  layout generator and critic
    trainer.py    PaletteLayoutGAN: level / fade-in schedule, WGAN-GP D and G steps
    task.py       data wiring (label maps -> blurred soft layouts), estimator, samples
    export.py     the SavedModel, per-level snapshots, LayoutGenerator (inference runtime)
    inference.py  palette files, layouts from palettes, synthetic pairs

Importing this package registers the family with the training engine (training.registry); it
loads no TensorFlow until a task or model is built.
"""

from models.palette.config import PRESETS, PaletteConfig
from training import registry


def _make_task(config):
    from models.palette.task import PaletteTask

    return PaletteTask(config)


def _build_for_dry_run(config):
    from models.palette.labels import layout_label_set
    from models.palette.trainer import PaletteLayoutGAN

    label_set, _ = layout_label_set(config)
    return PaletteLayoutGAN.from_run_config(config, num_classes=label_set.num_classes)


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
