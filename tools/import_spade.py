"""Import an NVlabs/SPADE checkpoint (GauGAN) as a SPADE run directory:

    python -m tools.import_spade --checkpoint=checkpoints/ade20k_pretrained --output_dir=RUN
        [--num_upsampling_layers=normal --crop_size=256 --aspect_ratio=1.0]
        [--set=name=value,...] [--overwrite]

The folder is NVlabs' checkpoints/<name> (its released checkpoints.tar.gz holds
ade20k_pretrained): latest_net_G.pth, and when present latest_net_E.pth (the VAE encoder),
latest_net_D.pth and opt.txt / opt.pkl; torch is not needed (models/spade/importer.py). The
run is read by test_one.py / synthesize.py --checkpoint_dir=RUN and fine-tuned by train.py
--model=spade --checkpoint_dir=RUN with the run's settings (a step-0 run; a missing D starts
fresh). The size flags are NVlabs' options, needed only where the folder has no opt files.
"""

import flags as cli
from tools.import_segformer import _settings

PROGRAM = "python -m tools.import_spade"


def _run(flag_values, positional):
    cli.reject_positional(positional)
    settings = _settings(flag_values.set)
    from models.spade.importer import import_nvlabs_run  # TensorFlow after the flags

    return import_nvlabs_run(
        flag_values.checkpoint,
        flag_values.output_dir,
        num_upsampling_layers=flag_values.num_upsampling_layers,
        crop_size=flag_values.crop_size,
        aspect_ratio=flag_values.aspect_ratio,
        settings=settings,
        overwrite=flag_values.overwrite,
    )


def main(args=None):
    """Runs the command; `args` (without the program name) runs it in-process."""
    return cli.run_tool(
        PROGRAM,
        cli.define_import_spade_flags,
        _run,
        args,
        required=("checkpoint", "output_dir"),
        value_errors=True,
    )


if __name__ == "__main__":
    main()
