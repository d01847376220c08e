"""OSMIS (one-shot synthesis of images and segmentation masks) and SIV-GAN (images only).

    config.py     OSMISConfig and the presets (tiny, osmis)
    inputs.py     the one-shot input (image + mask, image, video frames, built-in scene) and the
                  configuration chosen from it (output size, blocks)
    networks.py   generator (multi-scale images + mask), three-branch discriminator, feature
                  augmentation
    augment.py    differentiable augmentation of images and masks (TensorFlow only; reusable)
    trainer.py    OSMISGAN: G / D steps, EMA
    task.py       data wiring, sample grids, the input record of the run directory
    export.py     the SavedModel and OSMISRunner
    inference.py  synthesize_osmis_pairs (synthesize.py --model=osmis)

Importing this package registers the family with the training engine (training.registry).
"""

from models.osmis.config import PRESETS, OSMISConfig
from training import registry


def _make_task(config):
    from models.osmis.task import OSMISTask

    return OSMISTask(config)


def _build_for_dry_run(config):
    from models.osmis.inputs import load_input
    from models.osmis.trainer import OSMISGAN

    one_shot = load_input(config)
    # --dry_run prints the configuration chosen from the input with the parameter counts.
    print(f"Input: {one_shot.source}; {one_shot.num_classes or 'no'} mask classes")
    print(f"Chosen configuration: {one_shot.layout.describe()}")
    return OSMISGAN.from_run_config(
        config, layout=one_shot.layout, num_classes=one_shot.num_classes
    )


registry.register(
    registry.Family(
        name="osmis",
        config_class=OSMISConfig,
        presets=PRESETS,
        make_task=_make_task,
        build_for_dry_run=_build_for_dry_run,
        title="OSMIS",
    )
)
