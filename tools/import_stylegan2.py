"""Import a rosinality stylegan2-pytorch checkpoint (as Synthesis in Style trains it) as a
StyleGAN2 run directory:

    python -m tools.import_stylegan2 --checkpoint=550000.pt --output_dir=RUN
        [--set=name=value,...] [--overwrite]

g_ema -> the EMA generator (what synthesize.py uses), g -> the generator, d -> the
discriminator (models/stylegan2/importer.py); fresh Adam states. The architecture (resolution,
latent sizes, mapping depth, channel multiplier) comes from the tensors; the training settings
are Synthesis in Style's (preset stylegan2_256) unless --set gives others.
"""

import flags as cli
from tools.import_segformer import _settings

PROGRAM = "python -m tools.import_stylegan2"


def _run(flag_values, positional):
    cli.reject_positional(positional)
    settings = _settings(flag_values.set)
    from models.stylegan2.importer import import_rosinality_run  # TensorFlow after the flags

    return import_rosinality_run(
        flag_values.checkpoint,
        flag_values.output_dir,
        settings=settings,
        overwrite=flag_values.overwrite,
    )


def main(args=None):
    """Runs the command; `args` (without the program name) runs it in-process."""
    return cli.run_tool(
        PROGRAM,
        cli.define_import_stylegan2_flags,
        _run,
        args,
        required=("checkpoint", "output_dir"),
        value_errors=True,
    )


if __name__ == "__main__":
    main()
