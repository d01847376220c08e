"""Train a model: python train.py --model=spade [--preset=tiny] [--dataset=scenes] [...]

Defaults run the tiny SPADE preset on the built-in procedural scenes. Flags: flags.py, or
`python train.py --helpfull`. An existing --checkpoint_dir is resumed.
"""

from absl import app
from absl import flags as absl_flags

import flags as cli

cli.define_train_flags()


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    with cli.user_errors("train.py"):
        config = cli.resolve_train_config(absl_flags.FLAGS)
        from training import loop  # TensorFlow loads after the flags are parsed

        if config.dry_run:
            loop.dry_run(config)
            return
        loop.train(config)


if __name__ == "__main__":
    cli.run(main)
