"""SegFormer's typed config and presets (the MiT variants b0-b5 and a tiny one for tests)."""

import dataclasses

from core.config import ConfigError, field
from datasets.config import DataConfig
from training.config import AdamConfig, RunConfig

VARIANTS = ("tiny", "b0", "b1", "b2", "b3", "b4", "b5")
# What the training batches are made of: "real" the dataset's training pairs; "synthetic" only
# the pairs of synthetic_train_list (a JSON pair list, labels in the dataset's raw values);
# "mixed" every batch half real, half synthetic (evaluation/synthetic_to_real.py sets these).
TRAIN_MIXES = ("real", "synthetic", "mixed")


@dataclasses.dataclass(frozen=True, kw_only=True)
class SegFormerConfig(RunConfig, DataConfig, AdamConfig):
    """A SegFormer run: MiT encoder + all-MLP head, AdamW with warm-up and poly decay."""

    model: str = field("segformer", "Model family.", choices=("segformer",))
    variant: str = field("tiny", "MiT encoder size.", choices=VARIANTS)
    crop_size: int = field(512, "Training crop (px), a multiple of 32.")
    num_classes: int = field(None, "Classes of the segmenter (default: the label set's).")
    lr: float = field(6e-5, "AdamW learning rate; the decode head uses lr * head_lr_mult.")
    weight_decay: float = field(0.01, "AdamW weight decay (none on normalisation parameters).")
    head_lr_mult: float = field(10.0, "Decode-head lr multiplier.")
    warmup_steps: int = field(1500, "Linear lr warm-up steps, then poly decay to 0.")
    lr_power: float = field(1.0, "Power of the poly lr decay.")
    clip_grad_norm: float = field(0.0, "Global gradient-norm clipping (0: off).")
    ce_weight: float = field(1.0, "Weight of the cross-entropy loss.")
    jaccard_weight: float = field(0.0, "Weight of the power-Jaccard loss.")
    class_weights: str = field(None, "JSON of per-class CE weights (tools.class_weights).")
    pretrained: str = field(None, "keras-hub preset name or local preset directory.")
    # The network follows the origin of its weights (models.segformer.networks.ARCHITECTURES):
    # the original SegFormer's exact GELU and LayerNorm eps 1e-5, or keras-hub's tanh GELU and
    # 1e-6 block pre-norms when its presets are loaded. Default: keras_hub with --pretrained.
    architecture: str = field(
        None,
        "original | keras_hub (default: keras_hub with pretrained, else original).",
        choices=("original", "keras_hub"),
    )
    batch_size: int = field(16, "Global mini-batch size.")
    max_steps: int = field(160000, "Stop after this many steps.", resumable=True)
    total_epochs: int = field(1000, "Total epochs (max_steps decides).", resumable=True)
    eval_freq: int = field(4000, "Steps between validation runs (0: off).")
    train_mix: str = field(
        "real", "real | synthetic | mixed training batches.", choices=TRAIN_MIXES
    )
    synthetic_train_list: str = field(None, "JSON pair list of the synthetic training pairs.")

    def derive(self):
        super().derive()
        if self.architecture is None:
            self._set("architecture", "keras_hub" if self.pretrained else "original")

    def validate(self):
        super().validate()
        if self.pretrained and self.architecture != "keras_hub":
            raise ConfigError(
                "pretrained keras-hub weights need architecture=keras_hub (its GELU and "
                "LayerNorm epsilons)",
                ("pretrained", "architecture"),
            )
        if self.dataset == "images":
            raise ConfigError(
                f"dataset={self.dataset} holds unlabelled images (model=stylegan2); a "
                "segmenter needs labelled pairs",
                ("dataset",),
            )
        self.check_positive("crop_size")
        if self.crop_size % 32:
            raise ConfigError(
                f"crop_size={self.crop_size} must be a multiple of 32", ("crop_size",)
            )
        if self.mixed_precision == "mixed_float16":
            raise ConfigError(
                "mixed_precision=mixed_float16 is not supported for model=segformer (two "
                "optimizers, encoder and head, cannot share one dynamic loss scale); use "
                "mixed_bfloat16",
                ("mixed_precision",),
            )
        if self.ce_weight < 0 or self.jaccard_weight < 0:
            raise ConfigError(
                "ce_weight and jaccard_weight must be >= 0", ("ce_weight", "jaccard_weight")
            )
        if self.train_mix != "real" and not self.synthetic_train_list:
            raise ConfigError(
                f"train_mix={self.train_mix!r} needs synthetic_train_list",
                ("train_mix", "synthetic_train_list"),
            )
        if self.train_mix == "mixed" and self.batch_size % 2:
            raise ConfigError(
                f"batch_size={self.batch_size} must be even for a mixed real + synthetic run "
                "(half of every batch from each)",
                ("batch_size",),
            )
        if self.ce_weight + self.jaccard_weight <= 0:
            raise ConfigError(
                "ce_weight + jaccard_weight must be positive", ("ce_weight", "jaccard_weight")
            )


def _preset(name, variant, **overrides):
    return SegFormerConfig(preset=name, variant=variant, **overrides)


PRESETS = {
    # Tests and the demo: a 4-stage MiT of widths 8-64, 64 px crops.
    "tiny": _preset(
        "tiny",
        "tiny",
        crop_size=64,
        batch_size=8,
        lr=1e-3,
        head_lr_mult=1.0,
        warmup_steps=20,
        max_steps=400,
        eval_freq=100,
    ),
    # The SegFormer recipe (ADE20K 160k schedule) for every MiT size.
    **{f"segformer_b{i}": _preset(f"segformer_b{i}", f"b{i}") for i in range(6)},
}
