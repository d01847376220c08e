"""Write procedural street scenes in the Cityscapes layout (the Palette commands' default data):

    python -m tools.streets --out=data/streets_128x256 [--num_train=300] [--num_val=30]
        [--height=128] [--width=256] [--seed=0]

Layout and guarantees (idempotent, resumable, never overwrites) in datasets/streets.py. Prints
the dataset folder (<out>, holding leftImg8bit/ and gtFine/).
"""

import flags as cli

PROGRAM = "python -m tools.streets"


def _run(flag_values, positional):
    cli.reject_positional(positional)
    from datasets.streets import generate_streets

    path = generate_streets(
        flag_values.out,
        num_train=flag_values.num_train,
        num_val=flag_values.num_val,
        height=flag_values.height,
        width=flag_values.width,
        seed=flag_values.seed,
    )
    print(path)
    return path


def main(args=None):
    """Runs the command; `args` (without the program name) runs it in-process."""
    return cli.run_tool(
        PROGRAM, cli.define_streets_flags, _run, args, required=("out",), value_errors=True
    )


if __name__ == "__main__":
    main()
