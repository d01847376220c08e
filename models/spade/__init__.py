"""SPADE (GauGAN): label map (+ optional style image) -> image.

    config.py    SPADEConfig and the presets (tiny, ade20k_256)
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
    from models.spade.trainer import SPADEGAN
    from semantic_labels import load_label_set

    label_set = load_label_set(config.semantic_label_path)
    return SPADEGAN.from_run_config(config.replace(vgg_weights="none"), label_set.num_classes)


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
