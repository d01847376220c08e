"""Synthesize from one label map: python test_one.py --label_filename=L.png --checkpoint_dir=RUN

With a --use_vae run, --style_filename gives the style (z = the encoder's mean) and
--num_samples > 1 draws different random z. Works from a run directory or --saved_model.
Outputs: <results_dir>/<stem>.png, or <stem>_<i>.png for several samples; with --port_names
the SPADE TF port's <stem>_synthesized.png and copies of the preprocessed inputs.

The port's flags that describe the run (--use_vae, --semantic_label_path, --img_height,
--img_width, --crop_size, --num_upsampling_layers, --num_generator_filters,
--num_encoder_filters) are accepted and checked against it: a contradiction is an error.
"""

import os

from absl import app
from absl import flags as absl_flags

import flags as cli

cli.define_test_one_flags()
FLAGS = absl_flags.FLAGS


def main(argv):
    with cli.user_errors(os.path.basename(__file__)):
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
        if not FLAGS.label_filename:
            raise app.UsageError("--label_filename is required")
        if FLAGS.num_samples < 1:
            raise app.UsageError("--num_samples must be >= 1")
        from models.spade import inference  # TensorFlow loads after the flags are checked

        inference.synthesize_label_map(
            FLAGS.label_filename,
            FLAGS.results_dir,
            checkpoint_dir=FLAGS.checkpoint_dir,
            saved_model=FLAGS.saved_model,
            style_filename=FLAGS.style_filename,
            num_samples=FLAGS.num_samples,
            seed=FLAGS.seed,
            overwrite=FLAGS.overwrite,
            port_names=FLAGS.port_names,
            run_flags=cli.given_run_flags(FLAGS),
        )


if __name__ == "__main__":
    cli.run(main)
