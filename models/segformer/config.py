"""SegFormer's typed config and presets: the MiT variants b0-b5, a tiny one for tests, and the
FaceSynthetics SegFormer system's recipe (segformer_facesynthetics)."""

import dataclasses

from core.config import ConfigError, field
from datasets.config import DataConfig
from training.config import AdamConfig, RunConfig

VARIANTS = ("tiny", "b0", "b1", "b2", "b3", "b4", "b5")
# What the training batches are made of: "real" the dataset's training pairs; "synthetic" only
# the pairs of synthetic_train_list (a JSON pair list, labels in the dataset's raw values);
# "mixed" every batch half real, half synthetic (evaluation/synthetic_to_real.py sets these).
TRAIN_MIXES = ("real", "synthetic", "mixed")
LR_SCHEDULES = ("poly", "one_cycle")
# The probabilities of datasets/augmentations.ExtraAugmentations, field name -> its name there.
EXTRA_AUGMENTATIONS = {
    "elastic_prob": "elastic",
    "grid_distortion_prob": "grid_distortion",
    "optical_distortion_prob": "optical_distortion",
    "clahe_prob": "clahe",
    "brightness_contrast_prob": "brightness_contrast",
    "gamma_prob": "gamma",
}
_DISTORTIONS = ("elastic_prob", "grid_distortion_prob", "optical_distortion_prob")


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
    lr_schedule: str = field(
        "poly",
        "poly (linear warm-up, poly decay) | one_cycle (PyTorch OneCycleLR, cosine).",
        choices=LR_SCHEDULES,
    )
    warmup_steps: int = field(1500, "Linear lr warm-up steps, then poly decay to 0 (poly).")
    lr_power: float = field(1.0, "Power of the poly lr decay (poly).")
    pct_start: float = field(0.3, "Fraction of the steps the one_cycle lr spends rising.")
    clip_grad_norm: float = field(0.0, "Global gradient-norm clipping (0: off).")
    clip_grad_value: float = field(0.0, "Element-wise gradient clipping to [-v, v] (0: off).")
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
    # Augmentation (datasets/segmentation.py and datasets/augmentations.py).
    scale_min: float = field(0.5, "Smallest random resize ratio before the crop.")
    scale_max: float = field(2.0, "Largest random resize ratio before the crop.")
    photometric: bool = field(True, "mmsegmentation's photometric distortion.")
    elastic_prob: float = field(0.0, "Probability of an elastic distortion.")
    grid_distortion_prob: float = field(0.0, "Probability of a grid distortion.")
    optical_distortion_prob: float = field(0.0, "Probability of an optical distortion.")
    clahe_prob: float = field(0.0, "Probability of CLAHE on the luminance.")
    brightness_contrast_prob: float = field(0.0, "Probability of a brightness-contrast change.")
    gamma_prob: float = field(0.0, "Probability of a random gamma.")

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
        self._validate_schedule()
        self._validate_augmentation()

    def _validate_schedule(self):
        self.check_non_negative("warmup_steps", "clip_grad_norm", "clip_grad_value")
        if self.lr_schedule == "one_cycle" and self.warmup_steps:
            raise ConfigError(
                f"warmup_steps={self.warmup_steps} applies to lr_schedule=poly; the one-cycle "
                "schedule rises over pct_start of the steps: give warmup_steps=0",
                ("warmup_steps", "lr_schedule", "pct_start"),
            )
        if not 0.0 < self.pct_start < 1.0:
            raise ConfigError(f"pct_start={self.pct_start} must lie in (0, 1)", ("pct_start",))

    def _validate_augmentation(self):
        if not 0.0 < self.scale_min <= self.scale_max:
            raise ConfigError(
                f"scale_min={self.scale_min} and scale_max={self.scale_max} need "
                "0 < scale_min <= scale_max",
                ("scale_min", "scale_max"),
            )
        for name in EXTRA_AUGMENTATIONS:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(
                    f"{name}={getattr(self, name)} must be a probability in [0, 1]", (name,)
                )
        if sum(getattr(self, name) for name in _DISTORTIONS) > 1.0 + 1e-9:
            raise ConfigError(
                "elastic_prob + grid_distortion_prob + optical_distortion_prob must be at most 1 "
                "(one draw picks at most one distortion per sample)",
                _DISTORTIONS,
            )

    def extra_augmentations(self):
        """The datasets.augmentations.ExtraAugmentations of the *_prob fields."""
        from datasets.augmentations import ExtraAugmentations

        return ExtraAugmentations(
            **{name: getattr(self, field_name) for field_name, name in EXTRA_AUGMENTATIONS.items()}
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
    # The FaceSynthetics SegFormer system (MiT-b0 at 512 px): its input/ folder, one AdamW at
    # 5e-5 (no head multiplier), weight decay 1e-3, PyTorch's one-cycle cosine rising over
    # 12.5% of 5 epochs, gradients clipped element-wise at 1, cross-entropy weighted by its
    # published class frequencies plus the power-Jaccard loss, and its albumentations recipe:
    # no rescaling (the faces are 512 px), flip, one of elastic / grid / optical distortion
    # (0.8 in all), CLAHE, brightness-contrast and gamma (0.8 each). Its fp16 is
    # --mixed_precision=mixed_float16 (GPUs), its nvidia/mit-b0 start --pretrained=mit_b0_*.
    "segformer_facesynthetics": _preset(
        "segformer_facesynthetics",
        "b0",
        dataset="facesynthetics",
        data_root="input",
        crop_size=512,
        batch_size=32,
        lr=5e-5,
        weight_decay=1e-3,
        head_lr_mult=1.0,
        lr_schedule="one_cycle",
        warmup_steps=0,
        pct_start=0.125,
        max_steps=0,
        total_epochs=5,
        clip_grad_value=1.0,
        ce_weight=1.0,
        jaccard_weight=1.0,
        class_weights="facesynthetics_seed",
        eval_freq=1000,
        scale_min=1.0,
        scale_max=1.0,
        photometric=False,
        elastic_prob=0.2,
        grid_distortion_prob=0.2,
        optical_distortion_prob=0.4,
        clahe_prob=0.8,
        brightness_contrast_prob=0.8,
        gamma_prob=0.8,
    ),
}
