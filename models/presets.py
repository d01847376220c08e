"""Named configurations per model family.

A preset fixes the architecture and the training recipe; any flag given on the command line
overrides the preset's value (see flags.resolve_config). `tiny` presets exist for tests and the
demo; the paper presets reproduce the reference networks exactly (parameter counts are asserted
in tests/).
"""

SPADE_PRESETS = {
    # Smoke runs, tests and the README demo: 64 px, widths 8, a few minutes on 2 CPU cores.
    "tiny": {
        "crop_size": 64,  # training crop and synthesis size (px)
        "load_size": 72,  # images are resized to this before the random crop (px)
        "ngf": 8,  # generator base width (the first blocks use 16 * ngf channels)
        "ndf": 8,  # discriminator and encoder base width
        "z_dim": 32,  # latent size of the VAE style code
        "spade_hidden": 16,  # width of the shared conv inside each SPADE layer
        "num_upsampling_layers": "normal",  # normal = 5 x2 upsamplings, more = 6, most = 7
        "norm_G": "syncbatch",  # SPADE's parameter-free norm: syncbatch | batch | instance
        "num_discriminators": 2,  # scales of the multiscale PatchGAN
        "n_layers_D": 4,  # conv layers per PatchGAN
        "encoder_input_size": 64,  # the VAE encoder resizes its input to this (px)
        "batch_size": 8,  # global batch (split across replicas)
        "total_epochs": 100,
        "decay_epoch": 50,
        "vgg_weights": "none",  # no ImageNet weights offline; the perceptual loss is off
        "lr": 2e-4,  # base lr; TTUR: G lr/2, D lr*2
        "beta1": 0.0,
        "beta2": 0.9,
    },
    # The SPADE paper on ADE20K at 256x256 (reference parameter counts).
    "ade20k_256": {
        "crop_size": 256,
        "load_size": 286,
        "ngf": 64,
        "ndf": 64,
        "z_dim": 256,
        "spade_hidden": 128,
        "num_upsampling_layers": "normal",
        "norm_G": "syncbatch",
        "num_discriminators": 2,
        "n_layers_D": 4,
        "encoder_input_size": 256,
        "batch_size": 32,  # the paper: 32 on 8 GPUs
        "total_epochs": 200,
        "decay_epoch": 100,  # constant lr for 100 epochs, then linear decay to 0 over 100
        "vgg_weights": "imagenet",
        "lr": 2e-4,
        "beta1": 0.0,  # the paper's 0.999 / 0.5 are documented typos; the code uses 0 / 0.9
        "beta2": 0.9,
    },
}


def _segformer_preset(variant, **overrides):
    preset = {
        "variant": variant,  # MiT encoder size (models/segformer.MIT_VARIANTS)
        "crop_size": 512,  # training crop (px)
        "batch_size": 16,
        "lr": 6e-5,  # AdamW; the decode head uses lr * head_lr_mult
        "beta1": 0.9,
        "beta2": 0.999,
        "weight_decay": 0.01,  # none on normalisation parameters
        "head_lr_mult": 10.0,
        "warmup_steps": 1500,  # linear warm-up, then poly decay to 0
        "lr_power": 1.0,
        "clip_grad_norm": 0.0,  # off in the SegFormer recipe (FaceSynthetics: 1.0)
        "max_steps": 160000,
        "total_epochs": 1000,  # max_steps decides
        "eval_freq": 4000,
    }
    preset.update(overrides)
    return preset


SEGFORMER_PRESETS = {
    # Tests and the demo: a 4-stage MiT of widths 8-64, 64 px crops.
    "tiny": _segformer_preset(
        "tiny", crop_size=64, batch_size=8, lr=1e-3, head_lr_mult=1.0, warmup_steps=20,
        max_steps=400, eval_freq=100,
    ),
    **{f"segformer_b{i}": _segformer_preset(f"b{i}") for i in range(6)},
}

def _stylegan2_preset(**overrides):
    preset = {
        "resolution": 256,  # generated image size (px), a power of 2
        "z_dim": 512,  # input latent z
        "w_dim": 512,  # intermediate latent w (one per synthesis layer: 14 at 256 px)
        "mapping_layers": 8,  # Dense layers of the mapping network (lr multiplier 0.01)
        "channel_multiplier": 2,  # widths at 64 px and finer: 256/128/64 * cm (config F: 2)
        "width": 1.0,  # scale on every width; 1.0 = the reference networks
        "batch_size": 8,  # global batch
        "lr": 0.001,  # Adam, G and D alike; scaled by k/(k+1) for lazy regularisation
        "beta1": 0.0,
        "beta2": 0.99,
        "lr_schedule": "cosine",  # constant | cosine (to 0 over max_steps)
        "max_steps": 100000,
        "total_epochs": 1000,  # max_steps decides
        "r1_gamma": 10.0,  # R1 weight gamma on reals (applied as gamma / 2 * r1_interval)
        "r1_interval": 16,  # lazy R1: every 16 D steps
        "pl_weight": 2.0,  # path-length weight (applied as pl_weight * pl_interval); 0 = off
        "pl_interval": 4,  # lazy path-length regularisation: every 4 G steps; 0 = off
        "pl_batch_shrink": 2,  # the path-length pass uses batch // 2 samples
        "pl_decay": 0.01,  # running-mean decay of the path lengths
        # EMA of G with half-life ema_half_life_kimg thousand images: decay per step
        # 0.5 ** (batch_size / (1000 * ema_half_life_kimg)) = 0.5 ** (32 / 10000) at batch 32.
        "ema_half_life_kimg": 10.0,
        "style_mixing_prob": 0.9,
    }
    preset.update(overrides)
    return preset


STYLEGAN2_PRESETS = {
    # Tests and the demo: 32 px, latents of 32, every width 16 (512 * 1/32); well under a
    # second per training step on 2 CPU cores.
    "tiny": _stylegan2_preset(
        resolution=32, z_dim=32, w_dim=32, mapping_layers=2, width=1.0 / 32, batch_size=4,
        lr=0.002, lr_schedule="constant", max_steps=200,
    ),
    # Synthesis in Style's recipe: StyleGAN2 config F at 256 px (cm 2; 30,034,338 G and
    # 28,864,129 D parameters) trained with batch 8, lr 0.001 (not StyleGAN2's 0.002) and
    # cosine decay over 100k iterations.
    "stylegan2_256": _stylegan2_preset(),
}

PRESETS = {
    "spade": SPADE_PRESETS,
    "segformer": SEGFORMER_PRESETS,
    "stylegan2": STYLEGAN2_PRESETS,
}

# Models the CLI knows about; the others are announced but not built yet.
MODELS = ("spade", "segformer", "stylegan2")


def get_preset(model, name):
    """Returns a copy of preset `name` of model family `model`, with a clear error otherwise."""
    if model not in MODELS:
        raise ValueError(f"--model={model!r} is unknown; choose one of {', '.join(MODELS)}")
    if model not in PRESETS:
        raise NotImplementedError(
            f"--model={model} is not built yet in this version; available: "
            f"{', '.join(PRESETS)}"
        )
    presets = PRESETS[model]
    if name not in presets:
        raise ValueError(
            f"--preset={name!r} is unknown for --model={model}; choose one of "
            f"{', '.join(presets)}"
        )
    return dict(presets[name])
