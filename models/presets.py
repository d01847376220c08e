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
    },
}

PRESETS = {"spade": SPADE_PRESETS}

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
