"""SPADE (GauGAN): label map (+ optional style image) -> image.

    config.py    SPADEConfig and the presets (tiny, ade20k_256, cityscapes_128x256)
    labels.py    label set -> one-hot channels (a "don't care" channel for ignored pixels)
    networks.py  generator, multiscale PatchGAN discriminator, VAE encoder
    trainer.py   SPADEGAN: train_step (D step, G step), optimizers, lr schedule
    task.py      data wiring, sample grids, export for the training engine
    export.py    the SavedModel and the inference runtime (Synthesizer)

Importing this package registers the family with the training engine (training.registry); it
loads no TensorFlow until a task or model is built.
"""

from models.spade.config import PRESETS, SPADEConfig
from training import registry


def _make_task(config):
    from models.spade.task import SPADETask

    return SPADETask(config)


def _build_for_dry_run(config):
    from models.spade.labels import num_spade_classes
    from models.spade.trainer import SPADEGAN

    return SPADEGAN.from_run_config(config.replace(vgg_weights="none"), num_spade_classes(config))


registry.register(
    registry.Family(
        name="spade",
        config_class=SPADEConfig,
        presets=PRESETS,
        make_task=_make_task,
        build_for_dry_run=_build_for_dry_run,
        title="SPADE",
    )
)
