"""StyleGAN2's typed config and presets (config F at 256 px as Synthesis in Style trains it)."""

import dataclasses

from core.config import ConfigError, field
from datasets.config import DataConfig
from training.config import AdamConfig, RunConfig

RESOLUTIONS = (8, 16, 32, 64, 128, 256, 512, 1024)


@dataclasses.dataclass(frozen=True, kw_only=True)
class StyleGAN2Config(RunConfig, DataConfig, AdamConfig):
    """A StyleGAN2 run on unlabelled images: G, D, lazy R1 and path-length, EMA."""

    model: str = field("stylegan2", "Model family.", choices=("stylegan2",))
    dataset: str = field("documents", "documents (built-in pages) or images.")
    resolution: int = field(256, "Generated image size (px), a power of 2 in 8..1024.")
    z_dim: int = field(512, "Input latent z.")
    w_dim: int = field(512, "Intermediate latent w (one per synthesis layer).")
    mapping_layers: int = field(8, "Dense layers of the mapping network (lr multiplier 0.01).")
    channel_multiplier: int = field(2, "Widths at 64 px and finer: 256/128/64 * cm.")
    width: float = field(1.0, "Scale on every width; 1.0 = the reference networks.")
    batch_size: int = field(8, "Global mini-batch size.")
    lr: float = field(0.001, "Adam lr, G and D alike (scaled by k/(k+1) for lazy regularisation).")
    beta1: float = field(0.0, "Adam beta1.")
    beta2: float = field(0.99, "Adam beta2.")
    lr_schedule: str = field(
        "cosine", "constant | cosine (to 0 over max_steps).", choices=("constant", "cosine")
    )
    max_steps: int = field(100000, "Stop after this many steps.", resumable=True)
    total_epochs: int = field(1000, "Total epochs (max_steps decides).", resumable=True)
    r1_gamma: float = field(10.0, "R1 weight gamma on reals (applied as gamma/2 * r1_interval).")
    r1_interval: int = field(16, "Lazy R1: every this many D steps.")
    pl_weight: float = field(2.0, "Path-length weight (0: off).")
    pl_interval: int = field(4, "Lazy path-length regularisation every this many G steps (0: off).")
    pl_batch_shrink: int = field(2, "The path-length pass uses batch // pl_batch_shrink samples.")
    pl_decay: float = field(0.01, "Running-mean decay of the path lengths.")
    # EMA of G with half-life ema_half_life_kimg thousand images: decay per step
    # 0.5 ** (batch_size / (1000 * ema_half_life_kimg)) = 0.5 ** (32 / 10000) at batch 32.
    ema_half_life_kimg: float = field(10.0, "Half-life of the generator EMA (thousand images).")
    # StyleGAN2-ADA's ramp-up: the half-life is at most ema_rampup x the images seen so far, so a
    # short run's EMA follows G instead of keeping most of its random initialisation.
    ema_rampup: float = field(
        0.0, "EMA half-life ramp-up: at most this fraction of the images seen (0: off)."
    )
    style_mixing_prob: float = field(0.9, "Probability of style mixing.")

    def data_fields_read(self):
        # The document crops and image lists are read here (task.py), not through
        # datasets.resolve_pairs: --prob_dataset does not apply.
        return super().data_fields_read() - {"prob_dataset"}

    def validate(self):
        super().validate()
        if self.dataset not in ("documents", "images"):
            raise ConfigError(
                f"dataset={self.dataset} holds labelled pairs; model=stylegan2 trains on "
                "unlabelled images: dataset=documents (built-in) or dataset=images",
                ("dataset", "model"),
            )
        if self.dataset == "images" and not (self.image_dir or self.train_list):
            raise ConfigError(
                "dataset=images needs image_dir or train_list",
                ("dataset", "image_dir", "train_list"),
            )
        if self.resolution not in RESOLUTIONS:
            raise ConfigError(
                f"resolution={self.resolution} must be a power of 2 in 8..1024", ("resolution",)
            )
        self.check_positive("channel_multiplier", "z_dim", "w_dim", "mapping_layers")
        self.check_positive("r1_interval", "num_pages", "num_crops")
        if self.pl_weight < 0 or self.pl_interval < 0 or self.r1_gamma < 0:
            raise ConfigError(
                "pl_weight, pl_interval and r1_gamma must be >= 0",
                ("pl_weight", "pl_interval", "r1_gamma"),
            )
        if not 0 <= self.style_mixing_prob <= 1:
            raise ConfigError(
                f"style_mixing_prob={self.style_mixing_prob} must lie in [0, 1]",
                ("style_mixing_prob",),
            )
        if self.mixed_precision != "none":
            raise ConfigError(
                "model=stylegan2 trains in float32 only (R1 and path-length penalties are "
                "second-order gradients that under- and overflow in 16-bit); use "
                "mixed_precision=none",
                ("model", "mixed_precision"),
            )


PRESETS = {
    # Tests and the demo: 32 px, latents of 32, every width 16 (512 * 1/32); well under a
    # second per training step on 2 CPU cores.
    "tiny": StyleGAN2Config(
        preset="tiny",
        resolution=32,
        z_dim=32,
        w_dim=32,
        mapping_layers=2,
        width=1.0 / 32,
        batch_size=4,
        lr=0.002,
        lr_schedule="constant",
        max_steps=200,
        ema_rampup=0.05,  # StyleGAN2-ADA's value: short runs sample a current EMA
    ),
    # Synthesis in Style's recipe: StyleGAN2 config F at 256 px (cm 2; 30,034,338 G and
    # 28,864,129 D parameters) trained with batch 8, lr 0.001 (not StyleGAN2's 0.002) and
    # cosine decay over 100k iterations.
    "stylegan2_256": StyleGAN2Config(preset="stylegan2_256"),
}
