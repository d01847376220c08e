"""Write procedural outdoor scenes in the ADE20K (ADEChallengeData2016) layout:

    python -m tools.scenes --out=data/scenes_256 [--num_train=300] [--num_val=30] [--size=256]
        [--seed=0]

Layout and guarantees in datasets/scenes.py. Prints the dataset folder
(<out>/ADEChallengeData2016).
"""

import flags as cli

PROGRAM = "python -m tools.scenes"


def _run(flag_values, positional):
    cli.reject_positional(positional)
    from datasets.scenes import generate_scenes

    path = generate_scenes(
        flag_values.out,
        num_train=flag_values.num_train,
        num_val=flag_values.num_val,
        size=flag_values.size,
        seed=flag_values.seed,
    )
    print(path)
    return path


def main(args=None):
    """Runs the command; `args` (without the program name) runs it in-process."""
    return cli.run_tool(
        PROGRAM, cli.define_scenes_flags, _run, args, required=("out",), value_errors=True
    )


if __name__ == "__main__":
    main()
