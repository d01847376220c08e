"""StyleGAN2 (config F), as Synthesis in Style trains it on unlabelled document crops.

    config.py    StyleGAN2Config and the presets (tiny, stylegan2_256)
    networks.py  mapping network, synthesis network, discriminator
    trainer.py   StyleGAN2GAN: D / G steps, lazy R1 and path-length, EMA
    task.py      data wiring (documents, image folders), sample grids
    export.py    the SavedModel and the GeneratorRunner (features for clustering)

Importing this package registers the family with the training engine (training.registry).
"""

from models.stylegan2.config import PRESETS, StyleGAN2Config
from training import registry


def _make_task(config):
    from models.stylegan2.task import StyleGAN2Task

    return StyleGAN2Task(config)


def _build_for_dry_run(config):
    from models.stylegan2.trainer import StyleGAN2GAN

    return StyleGAN2GAN.from_run_config(config)


registry.register(
    registry.Family(
        name="stylegan2",
        config_class=StyleGAN2Config,
        presets=PRESETS,
        make_task=_make_task,
        build_for_dry_run=_build_for_dry_run,
        title="StyleGAN2",
    )
)
