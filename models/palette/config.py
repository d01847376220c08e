"""Semantic Palette's typed config and presets (layout, partial editing, end-to-end).

`PaletteConfig` holds every setting of a Semantic Palette run: the run, the data (label maps
only for the layout stages; image / label pairs for e2e), Adam, the progressive networks, the
level schedule and the losses. Three stages:

- layout: palette -> layout (the progressive layout GAN);
- partial: partial editing (the same GAN with SPADE blocks; a random band of columns of the
  layout regenerated, see models.palette.bands);
- e2e: end-to-end fine-tuning of a trained layout run (--layout_run, stage layout) and a
  trained SPADE run (--image_run) together (models.palette.e2e_trainer). The layout networks'
  settings must equal the layout run's (an error lists the differences).

`PRESETS`: `tiny` (32 x 64 layouts over 4 levels, widths <= 32, z 32, the procedural streets at
32 x 64) for tests and smoke runs, whose top level is the size of SPADE's `palette_tiny`; and
`cityscapes_128x256`, the paper's (512-d z, 6 levels from 4 x 8 to 128 x 256, channels
min(512, 2**(12 - level))), whose top level is SPADE's `cityscapes_128x256`.

Level schedule: level k trains for fade_steps + stable_steps steps (level 0 is stable
throughout), its first fade_steps fading in (alpha 0 -> 1); the last level trained, max_level,
then goes on stable until max_steps. See models.palette.trainer.level_schedule.
"""

import dataclasses

from core.config import ConfigError, field
from datasets.config import DATASETS, DataConfig
from training.config import AdamConfig, RunConfig

# The layout sources this family reads (label maps; the images are not used). "streets" joins
# once datasets/ provides it (it is then in DATASETS).
LAYOUT_DATASETS = tuple(d for d in ("streets", "cityscapes", "folders", "json") if d in DATASETS)
# Sources whose files store Cityscapes labelIds (mapped to the 19 train ids).
CITYSCAPES_LABEL_DATASETS = ("streets", "cityscapes")
STAGES = ("layout", "partial", "e2e")
# Fields that only one stage reads, with that stage: another stage given them is an error.
STAGE_FIELDS = {
    "spade_hidden": "partial",
    "band_min_width": "partial",
    "band_max_width": "partial",
    "layout_run": "e2e",
    "image_run": "e2e",
    "lambda_e2e": "e2e",
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class PaletteConfig(RunConfig, DataConfig, AdamConfig):
    """A Semantic Palette layout-synthesizer run: progressive WGAN-GP on soft layouts."""

    model: str = field("palette", "Model family.", choices=("palette",))
    dataset: str = field("cityscapes", "Layout source (label maps only).", choices=tuple(DATASETS))
    semantic_label_path: str = field(
        "cityscapes", "Label set of the layouts (cityscapes for Cityscapes-layout files)."
    )
    stage: str = field(
        "layout",
        "layout: palette -> layout; partial: partial editing; e2e: end-to-end fine-tuning of a "
        "layout run and a SPADE run.",
        choices=STAGES,
    )
    # === Networks ===
    z_dim: int = field(512, "Latent z of the layout generator.")
    start_size: int = field(4, "Height of the level-0 layout (px).")
    aspect_ratio: float = field(
        2.0,
        "Width / height of the layouts (2: 4x8 start for 1:2 scenes); start_size * it is whole.",
    )
    num_levels: int = field(6, "Levels of the networks (the last: start_size * 2**(n-1) high).")
    max_level: int = field(
        None, "Train up to this level, 0-based (default the last).", resumable=True
    )
    channel_base: int = field(4096, "Level k has min(max_channels, channel_base / 2**k) channels.")
    max_channels: int = field(512, "The widest level's channels.")
    feedback: bool = field(True, "Feed each level's layout back into the next block.")
    mbstd_group_size: int = field(4, "Minibatch-stddev group size of the critic.")
    spade_hidden: int = field(128, "stage=partial: hidden channels of each SPADE layer.")
    # === Partial editing (stage=partial) ===
    band_min_width: float = field(
        0.25, "stage=partial: narrowest regenerated band, a fraction of the layout width."
    )
    band_max_width: float = field(
        0.5, "stage=partial: widest regenerated band, a fraction of the layout width."
    )
    # === End-to-end fine-tuning (stage=e2e) ===
    layout_run: str = field(None, "stage=e2e: run directory of a trained layout stage.")
    image_run: str = field(
        None, "stage=e2e: run directory of a trained SPADE run (no VAE) at the layout size."
    )
    lambda_e2e: float = field(
        0.01,
        "stage=e2e: weight of the unconditional image discriminator's hinge loss on images "
        "made from generated layouts.",
    )
    # === Level schedule ===
    fade_steps: int = field(2000, "Steps of a new level's fade-in (alpha 0 -> 1).")
    stable_steps: int = field(2000, "Steps of a level after its fade-in.")
    # === Losses ===
    lambda_gp: float = field(10.0, "WGAN-GP gradient-penalty weight.")
    lambda_drift: float = field(0.001, "ProGAN's drift penalty on real critic scores.")
    lambda_entropy: float = field(1.0, "Weight of the pixel-entropy loss (every level).")
    lambda_spread: float = field(1.0, "Weight of the spread loss (every level).")
    lambda_kl: float = field(0.0, "Weight of KL(target || mean soft layout) (0: off).")
    # === Data ===
    blur_sigma: float = field(1.0, "Gaussian blur of real layouts, px at the trained size.")
    max_components: int = field(30, "Palette estimator: GMMs of 1..this many components.")
    estimator_path: str = field(
        None, "A fitted palette estimator (JSON / .npz) to use instead of fitting one."
    )
    # === Optimisation (Adam as ProGAN / Semantic Palette) ===
    batch_size: int = field(16, "Global mini-batch size.")
    lr: float = field(1e-3, "Adam learning rate, G and D.")
    beta1: float = field(0.0, "Adam beta1.")
    beta2: float = field(0.99, "Adam beta2.")

    def derive(self):
        super().derive()
        if self.max_level is None:
            self._set("max_level", self.num_levels - 1)

    def replace(self, **changes):
        # max_level defaults to the last level: a preset's (derived) last level follows a new
        # num_levels unless max_level is given too.
        if (
            "num_levels" in changes
            and "max_level" not in changes
            and self.max_level == self.num_levels - 1
        ):
            changes["max_level"] = None
        return super().replace(**changes)

    def validate(self):
        super().validate()
        if self.dataset not in LAYOUT_DATASETS:
            raise ConfigError(
                f"dataset={self.dataset}: model=palette reads layouts from "
                f"{', '.join(LAYOUT_DATASETS)}",
                ("dataset", "model"),
            )
        if self.dataset in CITYSCAPES_LABEL_DATASETS and self.semantic_label_path != "cityscapes":
            raise ConfigError(
                f"dataset={self.dataset} stores Cityscapes labelIds: semantic_label_path must be "
                f"cityscapes, got {self.semantic_label_path}",
                ("semantic_label_path", "dataset"),
            )
        defaults = {f.name: f.default for f in dataclasses.fields(PaletteConfig)}
        for name, stage in STAGE_FIELDS.items():
            if self.stage != stage and getattr(self, name) != defaults[name]:
                raise ConfigError(
                    f"{name} applies to stage={stage} only, not stage={self.stage}",
                    (name, "stage"),
                )
        if self.stage == "partial":
            self.check_positive("spade_hidden")
            if not 0 < self.band_min_width <= self.band_max_width <= 1:
                raise ConfigError(
                    f"band widths must satisfy 0 < band_min_width ({self.band_min_width}) <= "
                    f"band_max_width ({self.band_max_width}) <= 1",
                    ("band_min_width", "band_max_width"),
                )
        if self.stage == "e2e":
            missing = [name for name in ("layout_run", "image_run") if not getattr(self, name)]
            if missing:
                raise ConfigError(
                    "stage=e2e fine-tunes a trained layout run and a trained SPADE run: give "
                    + " and ".join(f"--{name}" for name in missing),
                    tuple(missing),
                )
            self.check_non_negative("lambda_e2e")
        self.check_positive("z_dim", "start_size", "aspect_ratio", "num_levels")
        width = self.start_size * self.aspect_ratio
        if abs(width - round(width)) > 1e-6:
            raise ConfigError(
                f"start_size={self.start_size} x aspect_ratio={self.aspect_ratio} = {width:g} must "
                "be a whole number of pixels",
                ("start_size", "aspect_ratio"),
            )
        self.check_positive("channel_base", "max_channels", "mbstd_group_size", "stable_steps")
        self.check_positive("max_components")
        self.check_non_negative("fade_steps", "lambda_gp", "lambda_drift", "lambda_entropy")
        self.check_non_negative("lambda_spread", "lambda_kl", "blur_sigma")
        if not 0 <= self.max_level < self.num_levels:
            raise ConfigError(
                f"max_level={self.max_level} must lie in [0, num_levels={self.num_levels})",
                ("max_level", "num_levels"),
            )
        if self.mixed_precision != "none":
            raise ConfigError(
                "model=palette trains in float32 only (the gradient penalty is a second-order "
                "gradient); use mixed_precision=none",
                ("model", "mixed_precision"),
            )

    # === Derived sizes ===

    def level_size(self, level):
        """(H, W) of the layouts at `level`."""
        h = self.start_size * 2**level
        return h, int(round(h * self.aspect_ratio))

    @property
    def layout_size(self):
        """(H, W) of the layouts trained: max_level's size."""
        return self.level_size(self.max_level)


PRESETS = {
    # Tests and smoke runs: 4 levels (4x8 .. 32x64, the size of SPADE's palette_tiny), widths
    # 32/32/16/8, z 32, on the procedural streets rendered at 32x64; a tiny fraction of a
    # second per step on 2 CPU cores. max_steps ends level 3's stable phase.
    "tiny": PaletteConfig(
        preset="tiny",
        dataset="streets",
        streets_height=32,
        streets_width=64,
        z_dim=32,
        num_levels=4,
        channel_base=64,
        max_channels=32,
        fade_steps=50,
        stable_steps=50,
        batch_size=4,
        max_steps=400,
        max_components=10,
        blur_sigma=0.5,
    ),
    # The paper on Cityscapes: 128 x 256 layouts over 6 levels (4x8 .. 128x256), z 512,
    # channels min(512, 2**(12 - level)) = 512, 512, 512, 512, 256, 128; Adam 1e-3 (0, 0.99);
    # WGAN-GP lambda 10. The per-level step counts are ours (the reference facts give none):
    # 20k fade-in + 20k stable steps per level at batch 16 (ProGAN's 600k images per phase at
    # its batch sizes are ~40k steps).
    "cityscapes_128x256": PaletteConfig(
        preset="cityscapes_128x256",
        z_dim=512,
        num_levels=6,
        channel_base=4096,
        max_channels=512,
        fade_steps=20000,
        stable_steps=20000,
        batch_size=16,
        max_steps=240000,
    ),
}
