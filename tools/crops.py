"""Cut random square tiles from page scans for GAN training (Synthesis in Style, step 1):

    python -m tools.crops --input_dir=SCANS --output_dir=CROPS --num_crops=5000
    python -m tools.crops --inputs page1.png page2.png --output_dir=CROPS --num_crops=100

Pages are shrunk to --max_side, randomly downscaled (--downscale=LOW,HIGH) and cropped; writes
crops/*.png and train.json / val.json lists of relative paths (datasets/crops.py), with
--masks_dir also the aligned mask tiles and pair lists. --output_dir must be empty or new
unless --overwrite.
"""

import flags as cli

PROGRAM = "python -m tools.crops"


def _run(flag_values, positional):
    from datasets.crops import prepare_crops

    if bool(flag_values.input_dir) == bool(flag_values.inputs):
        raise cli.ConfigError("give exactly one of --input_dir and --inputs")
    if flag_values.input_dir:
        cli.reject_positional(positional)
    try:
        low, high = (float(value) for value in flag_values.downscale)
    except ValueError:
        raise cli.ConfigError(
            f"--downscale={','.join(flag_values.downscale)}: expected two numbers LOW,HIGH"
        ) from None
    result = prepare_crops(
        flag_values.input_dir,
        flag_values.output_dir,
        input_paths=[*flag_values.inputs, *positional] if flag_values.inputs else None,
        num_crops=flag_values.num_crops,
        crop_size=flag_values.crop_size,
        max_side=flag_values.max_side,
        min_side=flag_values.min_side,
        downscale=(low, high),
        val_fraction=flag_values.val_fraction,
        seed=flag_values.seed,
        masks_dir=flag_values.masks_dir,
        overwrite=flag_values.overwrite,
        progress=not flag_values.quiet,
    )
    print(
        f"{result['num_train']} training tiles in {result['train']}, "
        f"{result['num_val']} validation tiles in {result['val']}"
    )
    return result


def main(args=None):
    """Runs the command; `args` (without the program name) runs it in-process."""
    return cli.run_tool(
        PROGRAM,
        cli.define_crops_flags,
        _run,
        args,
        required=("output_dir", "num_crops"),
        value_errors=True,
    )


if __name__ == "__main__":
    main()
