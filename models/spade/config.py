"""SPADE's typed config and presets.

`SPADEConfig` holds every setting of a SPADE run (the run, the data, Adam, the networks and the
losses); `PRESETS` are instances of it. `tiny` is for tests and the demo; `ade20k_256` is the
paper's configuration with the reference parameter counts (asserted in tests/);
`cityscapes_128x256` is Semantic Palette's image synthesizer setting (Cityscapes at 1:2);
`palette_tiny` its tiny twin (32x64 streets, the top level of the palette `tiny` preset).

Non-square images: crop_size is the HEIGHT of the crops and of the synthesized images, and
aspect_ratio = width / height, so the width is round(crop_size * aspect_ratio) (load_size
likewise). The generator's first feature map is (crop_size / 2**n) x (width / 2**n) for its n
x2 upsamplings, so both sides must be multiples of 2**n. (The reference code calls the width
crop_size; the command line also takes the TF port's --img_height / --img_width.)

Labels with an ignore value (Cityscapes: labelIds -> 19 train ids, the void labelIds and 255
ignored): SPADE has no "ignore" for its input, so ignored pixels become one extra class, the
last one-hot channel ("don't care"), as NVIDIA's SPADE does with contain_dontcare_label. SPADE
on Cityscapes therefore sees 19 + 1 = 20 channels (models/spade/labels.py).
"""

import dataclasses
from typing import ClassVar

from core.config import ConfigError, field
from datasets.config import DataConfig
from training.config import AdamConfig, RunConfig

UPSAMPLINGS = {"normal": 5, "more": 6, "most": 7}
# The data SPADE reads; the last two store Cityscapes labelIds (semantic_label_path=cityscapes).
SPADE_DATASETS = ("scenes", "ade20k", "folders", "cityscapes", "streets")
LABEL_ID_DATASETS = ("cityscapes", "streets")
SAMPLE_FILES = ("grid", "separate", "both")


@dataclasses.dataclass(frozen=True, kw_only=True)
class SPADEConfig(RunConfig, DataConfig, AdamConfig):
    """A SPADE (GauGAN) run: generator, multiscale discriminator, optional VAE encoder."""

    model: str = field("spade", "Model family.", choices=("spade",))
    crop_size: int = field(64, "Training crop and synthesis height (px).")
    load_size: int = field(72, "Images are resized to this height before the random crop (px).")
    aspect_ratio: float = field(
        1.0, "Width / height of crops and synthesized images (Cityscapes: 2.0)."
    )
    ngf: int = field(8, "Generator base width (the first blocks use 16 * ngf channels).")
    ndf: int = field(8, "Discriminator and encoder base width.")
    z_dim: int = field(32, "Latent size of the VAE style code.")
    spade_hidden: int = field(16, "Width of the shared conv inside each SPADE layer.")
    num_upsampling_layers: str = field(
        "normal", "normal = 5 x2 upsamplings, more = 6, most = 7.", choices=tuple(UPSAMPLINGS)
    )
    norm_G: str = field(
        "syncbatch", "SPADE's parameter-free norm.", choices=("syncbatch", "batch", "instance")
    )
    num_discriminators: int = field(2, "Scales of the multiscale PatchGAN.")
    n_layers_D: int = field(4, "Conv layers per PatchGAN.")
    encoder_input_size: int = field(64, "The VAE encoder resizes its input to this (px).")
    use_vae: bool = field(False, "Train with the VAE image encoder (style control).")
    lambda_features: float = field(10.0, "Weight of the feature-matching loss.")
    lambda_vgg: float = field(10.0, "Weight of the VGG19 perceptual loss.")
    lambda_kld: float = field(0.05, "Weight of the KL divergence (with use_vae).")
    vgg_weights: str = field(
        "none", "VGG19 weights: imagenet, a local weights file, or none (loss off)."
    )
    ttur: bool = field(True, "Two time-scale update rule (G lr/2, D lr*2).")
    decay_epoch: int = field(50, "Epoch from which the lr decays linearly to zero.", resumable=True)
    # Adam as SPADE's code sets it (the paper's 0.5 / 0.999 are documented typos).
    beta1: float = field(0.0, "Adam beta1.")
    beta2: float = field(0.9, "Adam beta2.")
    sample_files: str = field(
        "grid",
        "Samples written every save_img_freq steps: grid (label | real | synthesized rows), "
        "separate (the SPADE TF port's real / label / synthesized PNGs per sample) or both.",
        resumable=True,
        choices=SAMPLE_FILES,
    )

    # --dataset=folders without a label set: the label values are found in the label maps
    # (models/spade/labels.py), as the SPADE TF port does.
    discovers_label_values: ClassVar[bool] = True

    def validate(self):
        super().validate()
        if self.dataset not in SPADE_DATASETS:
            raise ConfigError(
                f"dataset={self.dataset} is a segmentation dataset; model=spade reads "
                f"{', '.join(SPADE_DATASETS)}",
                ("dataset", "model"),
            )
        if self.dataset in LABEL_ID_DATASETS and self.semantic_label_path != "cityscapes":
            raise ConfigError(
                f"dataset={self.dataset} stores Cityscapes labelIds: use "
                f"semantic_label_path=cityscapes, not {self.semantic_label_path} (the preset "
                "cityscapes_128x256 sets it)",
                ("dataset", "semantic_label_path"),
            )
        self.check_positive("crop_size", "load_size", "ngf", "ndf", "z_dim", "spade_hidden")
        self.check_positive("aspect_ratio")
        self.check_positive("num_discriminators", "n_layers_D")
        if self.load_size < self.crop_size:
            raise ConfigError(
                f"load_size={self.load_size} must be >= crop_size={self.crop_size}",
                ("load_size", "crop_size"),
            )
        if not 0 <= self.decay_epoch <= self.total_epochs:
            raise ConfigError(
                f"decay_epoch={self.decay_epoch} must lie in [0, total_epochs={self.total_epochs}]",
                ("decay_epoch", "total_epochs"),
            )
        num_up = UPSAMPLINGS[self.num_upsampling_layers]
        if self.crop_size % 2**num_up:
            raise ConfigError(
                f"crop_size={self.crop_size} must be a multiple of {2**num_up} for "
                f"num_upsampling_layers={self.num_upsampling_layers}",
                ("crop_size", "num_upsampling_layers"),
            )
        if self.crop_width % 2**num_up:
            raise ConfigError(
                f"aspect_ratio={self.aspect_ratio} makes the crops {self.crop_width} px wide "
                f"(crop_size={self.crop_size} x aspect_ratio), not a multiple of {2**num_up} "
                f"for num_upsampling_layers={self.num_upsampling_layers}",
                ("aspect_ratio", "crop_size", "num_upsampling_layers"),
            )

    @property
    def crop_width(self):
        """Width of the crops and synthesized images: round(crop_size * aspect_ratio)."""
        return int(round(self.crop_size * self.aspect_ratio))

    @property
    def load_width(self):
        """Width images are resized to before the crop: round(load_size * aspect_ratio)."""
        return int(round(self.load_size * self.aspect_ratio))

    @property
    def image_size(self):
        """(height, width) of the crops and synthesized images."""
        return self.crop_size, self.crop_width


PRESETS = {
    # Smoke runs, tests and the README demo: 64 px, widths 8, a few minutes on 2 CPU cores.
    "tiny": SPADEConfig(
        preset="tiny",
        crop_size=64,
        load_size=72,
        ngf=8,
        ndf=8,
        z_dim=32,
        spade_hidden=16,
        encoder_input_size=64,
        batch_size=8,
        total_epochs=100,
        decay_epoch=50,
        vgg_weights="none",  # no ImageNet weights offline; the perceptual loss is off
        lr=2e-4,
        beta1=0.0,
        beta2=0.9,
    ),
    # Semantic Palette's tiny image synthesizer: the size of the palette family's tiny preset
    # (its top level, 32x64) on the same procedural streets (rendered at 32x64, so the whole
    # image is used, load_size = crop_size); widths 8, no VGG offline.
    "palette_tiny": SPADEConfig(
        preset="palette_tiny",
        dataset="streets",
        semantic_label_path="cityscapes",
        streets_height=32,
        streets_width=64,
        crop_size=32,
        load_size=32,
        aspect_ratio=2.0,
        ngf=8,
        ndf=8,
        z_dim=32,
        spade_hidden=16,
        encoder_input_size=32,
        batch_size=8,
        total_epochs=20,
        decay_epoch=10,
        vgg_weights="none",  # no ImageNet weights offline; the perceptual loss is off
        lr=2e-4,
        beta1=0.0,
        beta2=0.9,
    ),
    # The SPADE paper on ADE20K at 256x256 (reference parameter counts).
    "ade20k_256": SPADEConfig(
        preset="ade20k_256",
        crop_size=256,
        load_size=286,
        ngf=64,
        ndf=64,
        z_dim=256,
        spade_hidden=128,
        encoder_input_size=256,
        batch_size=32,  # the paper: 32 on 8 GPUs
        total_epochs=200,
        decay_epoch=100,  # constant lr for 100 epochs, then linear to 0
        vgg_weights="imagenet",
        lr=2e-4,
        beta1=0.0,
        beta2=0.9,
    ),
    # Semantic Palette's image synthesizer: GauGAN on Cityscapes at 128x256 (1:2), the full
    # image resized without an extra crop (load_size = crop_size), no VAE, hinge + feature
    # matching x10 + VGG x10. Batch 16 (our choice; the paper does not state it here).
    "cityscapes_128x256": SPADEConfig(
        preset="cityscapes_128x256",
        dataset="cityscapes",
        semantic_label_path="cityscapes",
        crop_size=128,
        load_size=128,
        aspect_ratio=2.0,
        ngf=64,
        ndf=64,
        z_dim=256,
        spade_hidden=128,
        encoder_input_size=256,
        batch_size=16,
        total_epochs=200,
        decay_epoch=100,
        vgg_weights="imagenet",
        lr=2e-4,
        beta1=0.0,
        beta2=0.9,
    ),
}
