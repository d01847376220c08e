"""SegFormer: MiT encoder + all-MLP decode head for semantic segmentation.

    config.py     SegFormerConfig and the presets (tiny, segformer_b0 .. b5)
    networks.py   the MiT encoder, the decode head, keras-hub weight loading
    trainer.py    SegFormerTrainer: train_step, AdamW (encoder / head lr), schedules
    task.py       data wiring, validation mIoU, sample grids
    export.py     the SavedModel and load_segmenter
    inference.py  sliding-window / whole-image prediction

Importing this package registers the family with the training engine (training.registry).
"""

from models.segformer.config import PRESETS, SegFormerConfig
from training import registry


def _make_task(config):
    from models.segformer.task import SegFormerTask

    return SegFormerTask(config)


def _build_for_dry_run(config):
    from models.segformer.task import build_segformer_for_dry_run

    return build_segformer_for_dry_run(config)


registry.register(
    registry.Family(
        name="segformer",
        config_class=SegFormerConfig,
        presets=PRESETS,
        make_task=_make_task,
        build_for_dry_run=_build_for_dry_run,
        title="SegFormer",
    )
)
