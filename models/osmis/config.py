"""OSMIS's typed config and presets (tiny, osmis: the paper's settings).

The input decides the architecture: --max_size and the image's aspect ratio give the output size
and the number of generator blocks (models/osmis/inputs.py, `choose_layout`), so the config holds
the rule's inputs (max_size, num_blocks = 0 for automatic), not the sizes themselves; the chosen
layout is printed by --dry_run and stored in the run directory (osmis_input.json).
"""

import dataclasses

from core.config import ConfigError, field
from datasets.config import DataConfig
from training.config import AdamConfig, RunConfig

GAN_LOSSES = ("bce", "hinge")
# DataConfig fields of labelled-pair datasets that an OSMIS run never reads.
_UNUSED_DATA_FIELDS = ("train_list", "val_list", "label_dir", "val_image_dir", "val_label_dir")


@dataclasses.dataclass(frozen=True, kw_only=True)
class OSMISConfig(RunConfig, DataConfig, AdamConfig):
    """One-shot image (+ mask) synthesis: OSMIS with a mask, SIV-GAN without one."""

    model: str = field("osmis", "Model family.", choices=("osmis",))
    dataset: str = field(
        "scenes",
        "scenes: without --image / --image_dir, one built-in scene (image + label map); "
        "images: --image or --image_dir is required.",
        choices=("scenes", "images"),
    )
    image: str = field(None, "The training image, or a video file (its frames).")
    mask: str = field(None, "Its mask: 8-bit class ids, or a colour PNG with --mask_colours.")
    mask_colours: str = field(
        None,
        "Class-colour JSON: a label set (semantic_labels format) or {name: '#RRGGBB'}; names "
        "the classes of an id mask, maps the colours of a colour mask.",
    )
    scene_index: int = field(0, "Which built-in scene is the default input.")
    max_size: int = field(330, "Longest side of the training image (px) before the block rule.")
    num_blocks: int = field(0, "Generator blocks (0: chosen from the image, noise map 3-7 px).")
    ch_g: int = field(32, "Generator width multiplier (widths 8x .. 1x: 256 .. 32).")
    ch_d: int = field(32, "Discriminator width multiplier (widths 1x .. 8x: 32 .. 256).")
    z_dim: int = field(64, "Length of the latent z.")
    batch_size: int = field(5, "Samples per step (all from the one image).")
    lr: float = field(2e-4, "Adam learning rate of G and D.")
    beta1: float = field(0.5, "Adam beta1.")
    beta2: float = field(0.999, "Adam beta2.")
    max_steps: int = field(150000, "Training iterations.", resumable=True)
    total_epochs: int = field(1, "Unused (max_steps decides).", resumable=True)
    gan_loss: str = field("bce", "Adversarial loss: bce or hinge.", choices=GAN_LOSSES)
    lambda_diversity: float = field(0.15, "Weight of the diversity regulariser (0: off).")
    ema_decay: float = field(0.9999, "Decay of the generator EMA per step (0: no EMA).")
    aug_prob: float = field(0.7, "Probability of each differentiable augmentation per sample.")
    # Default True: every run made before this setting existed used colour, so an older
    # config.json without it resumes as it was trained. The reference is geometric only, which
    # the osmis preset follows.
    aug_colour: bool = field(
        True,
        "Differentiable augmentation also changes the image's colour (brightness, contrast, "
        "saturation); False: geometric transforms only, as in the reference.",
    )
    prob_fa_content: float = field(0.4, "Probability of the content feature augmentation.")
    prob_fa_layout: float = field(0.4, "Probability of the layout feature augmentation.")
    bernoulli_warmup: int = field(
        15000, "Steps in which D sees Bernoulli samples of the generated masks (then argmax)."
    )

    def validate(self):
        super().validate()
        for name in _UNUSED_DATA_FIELDS:
            if getattr(self, name):
                raise ConfigError(
                    f"{name} does not apply to model=osmis (give image and mask, or image_dir)",
                    (name, "model"),
                )
        if self.image and self.image_dir:
            raise ConfigError(
                "give image (one image or a video file) or image_dir (video frames), not both",
                ("image", "image_dir"),
            )
        if self.mask and not self.image:
            raise ConfigError("mask needs image (the image it labels)", ("mask", "image"))
        if self.mask_colours and not self.mask:
            raise ConfigError("mask_colours needs mask", ("mask_colours", "mask"))
        if self.dataset == "images" and not (self.image or self.image_dir):
            raise ConfigError(
                "dataset=images needs image or image_dir", ("dataset", "image", "image_dir")
            )
        self.check_positive("max_size", "ch_g", "ch_d", "z_dim")
        self.check_non_negative("num_blocks", "scene_index", "bernoulli_warmup")
        if self.num_blocks and not 3 <= self.num_blocks <= 9:
            raise ConfigError(f"num_blocks={self.num_blocks} must be 0 or 3..9", ("num_blocks",))
        if self.max_size < 12:
            raise ConfigError(
                f"max_size={self.max_size} is too small for 3 generator blocks (>= 12 px)",
                ("max_size",),
            )
        for name in ("aug_prob", "prob_fa_content", "prob_fa_layout", "ema_decay"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0 or (name == "ema_decay" and value == 1.0):
                raise ConfigError(f"{name}={value} must lie in [0, 1)", (name,))
        if self.lambda_diversity < 0:
            raise ConfigError("lambda_diversity must be >= 0", ("lambda_diversity",))
        if self.mixed_precision != "none":
            raise ConfigError(
                "model=osmis trains in float32 only; use mixed_precision=none",
                ("model", "mixed_precision"),
            )


PRESETS = {
    # Tests and smoke runs: a 32 px scene, widths 4 .. 32, batch 2, a few blocks; colour
    # augmentation stays on (the default) so that tests run the whole augmentation.
    "tiny": OSMISConfig(
        preset="tiny",
        max_size=32,
        scenes_size=32,
        ch_g=4,
        ch_d=4,
        z_dim=16,
        batch_size=2,
        max_steps=200,
        bernoulli_warmup=50,
    ),
    # The papers' settings: max size 330 (an 854 x 480 image -> 192 x 320, 7 blocks), widths
    # 256 .. 32, z 64, batch 5, Adam 2e-4 (0.5, 0.999), EMA 0.9999, 150,000 iterations; the
    # reference's augmentation is geometric only (no colour).
    "osmis": OSMISConfig(preset="osmis", aug_colour=False),
}
