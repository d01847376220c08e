"""Export a SPADE run as a SavedModel: python -m tools.export_spade --checkpoint_dir=RUN
[--output=DIR]

Writes the latest checkpoint of the run directory to --output (default <checkpoint_dir>/export),
replacing an earlier export in one rename (models/spade/export.py). test_one.py and
synthesize.py read it with --saved_model.
"""

import flags as cli

PROGRAM = "python -m tools.export_spade"


def _run(flag_values, positional):
    cli.reject_positional(positional)
    from models.spade.export import export_run  # TensorFlow loads after the flags are parsed

    path = export_run(flag_values.checkpoint_dir, flag_values.output)
    print(f"Exported {flag_values.checkpoint_dir} to {path}")
    return path


def main(args=None):
    """Runs the command; `args` (without the program name) runs it in-process."""
    return cli.run_tool(
        PROGRAM,
        cli.define_export_spade_flags,
        _run,
        args,
        required=("checkpoint_dir",),
        value_errors=True,
    )


if __name__ == "__main__":
    main()
