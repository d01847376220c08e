"""Synthesize a folder: python synthesize.py --model=spade --label_dir=D --checkpoint_dir=RUN

Every label map PNG under --label_dir (recursively) becomes an image with the same relative
path and stem under --output_dir, in batches, with a progress bar. Label maps of another size
are resized (nearest) to the model's size.
"""

import os

from absl import app
from absl import flags as absl_flags

import flags as cli

cli.define_synthesize_flags()
FLAGS = absl_flags.FLAGS


def main(argv):
    with cli.user_errors(os.path.basename(__file__)):
        _main(argv)


def _main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.label_dir:
        raise app.UsageError("--label_dir is required")
    if not os.path.isdir(FLAGS.label_dir):
        raise app.UsageError(f"--label_dir={FLAGS.label_dir} is not a directory")
    if FLAGS.batch_size < 1:
        raise app.UsageError("--batch_size must be >= 1")
    import keras
    import numpy as np
    from PIL import Image

    from datasets.pipeline import load_image, load_label_map
    from training.export import Synthesizer, check_writable, resize_label_map

    rel_paths = sorted(
        os.path.relpath(os.path.join(root, name), FLAGS.label_dir)
        for root, _, names in os.walk(FLAGS.label_dir)
        for name in names
        if name.lower().endswith(".png")
    )
    if not rel_paths:
        raise app.UsageError(f"--label_dir={FLAGS.label_dir} has no .png label maps")
    outputs = [os.path.join(FLAGS.output_dir, p) for p in rel_paths]
    check_writable(outputs, FLAGS.overwrite)

    synth = Synthesizer(checkpoint_dir=FLAGS.checkpoint_dir, saved_model=FLAGS.saved_model)
    if FLAGS.style_filename and not synth.use_vae:
        raise app.UsageError("--style_filename needs a model trained with --use_vae")
    style_image = load_image(FLAGS.style_filename) if FLAGS.style_filename else None
    rng = np.random.default_rng(FLAGS.seed)
    progbar = keras.utils.Progbar(len(rel_paths), unit_name="image")
    for start in range(0, len(rel_paths), FLAGS.batch_size):
        chunk = rel_paths[start : start + FLAGS.batch_size]
        labels = np.stack(
            [
                resize_label_map(load_label_map(os.path.join(FLAGS.label_dir, p)), synth.crop_size)
                for p in chunk
            ]
        )
        z = style = None
        if style_image is not None:
            style = np.repeat(style_image[None], len(chunk), axis=0)
        elif synth.use_vae:
            z = rng.standard_normal((len(chunk), synth.z_dim)).astype(np.float32)
        images = synth(labels, z=z, style=style)
        for rel, image in zip(chunk, images):
            out = os.path.join(FLAGS.output_dir, rel)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            Image.fromarray(image).save(out)
        progbar.add(len(chunk))
    print(f"Wrote {len(rel_paths)} images to {FLAGS.output_dir}")


if __name__ == "__main__":
    app.run(main)
