"""Synthesize from one label map: python test_one.py --label_filename=L.png --checkpoint_dir=RUN

With a --use_vae run, --style_filename gives the style (z = the encoder's mean) and
--num_samples > 1 draws different random z. Works from a run directory or --saved_model.
Outputs: <results_dir>/<stem>.png, or <stem>_<i>.png for several samples.
"""

import os

from absl import app, logging
from absl import flags as absl_flags

import flags as cli

cli.define_test_one_flags()
FLAGS = absl_flags.FLAGS


def main(argv):
    with cli.user_errors(os.path.basename(__file__)):
        _main(argv)


def _main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.label_filename:
        raise app.UsageError("--label_filename is required")
    if FLAGS.num_samples < 1:
        raise app.UsageError("--num_samples must be >= 1")
    import numpy as np
    from PIL import Image

    from datasets.pipeline import load_image, load_label_map
    from models.spade.export import Synthesizer, check_writable, resize_label_map

    synth = Synthesizer(checkpoint_dir=FLAGS.checkpoint_dir, saved_model=FLAGS.saved_model)
    label = resize_label_map(load_label_map(FLAGS.label_filename), synth.crop_size)
    count = FLAGS.num_samples
    if count > 1 and not synth.use_vae:
        logging.warning("--num_samples=%d: a run without --use_vae is deterministic; writing 1",
                        count)
        count = 1
    if FLAGS.style_filename and not synth.use_vae:
        raise app.UsageError("--style_filename needs a model trained with --use_vae")

    stem = os.path.splitext(os.path.basename(FLAGS.label_filename))[0]
    names = [f"{stem}.png"] if count == 1 else [f"{stem}_{i}.png" for i in range(count)]
    paths = [os.path.join(FLAGS.results_dir, n) for n in names]
    check_writable(paths, FLAGS.overwrite)

    labels = np.repeat(label[None], count, axis=0)
    z = style = None
    if FLAGS.style_filename:
        style = np.repeat(load_image(FLAGS.style_filename)[None], count, axis=0)
    elif synth.use_vae:
        z = np.random.default_rng(FLAGS.seed).standard_normal((count, synth.z_dim))
        z = z.astype(np.float32)
    images = synth(labels, z=z, style=style)
    os.makedirs(FLAGS.results_dir, exist_ok=True)
    for path, image in zip(paths, images):
        Image.fromarray(image).save(path)
        print(path)


if __name__ == "__main__":
    app.run(main)
