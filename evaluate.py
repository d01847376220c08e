"""Evaluate synthesized images, or synthesized training data.

    python evaluate.py --mode=synthesis --synth_dir=SYNTH --real_dir=REAL \
        [--label_dir=LABELS --segmenter=SEGFORMER_EXPORT] [--output=results.json]

FID and KID (InceptionV3 pool features, evaluation/fid.py) of the --synth_dir images against
the --real_dir images; with --label_dir (the label maps the images were synthesized from) and
--segmenter (a SegFormer trained on real data), also the semantic consistency: mIoU and pixel
accuracy of the segmenter's predictions on the synthesized images against those label maps
(SPADE's protocol). Folders are searched recursively; every image of a folder must have one
size unless --image_size resizes them all. --inception_weights=imagenet needs Keras' download
(or a local weights file); --inception_weights=random runs offline but its numbers are NOT
comparable to published FIDs (the report says so).

    python evaluate.py --mode=synthetic_to_real --train_flags="--dataset=scenes --preset=tiny \
        --max_steps=300" --spade_model=runs/spade_tiny/export --output_dir=outputs/s2r

trains SegFormer three ways on one budget (real only, synthetic only, real + synthetic 1:1
per batch), evaluates each on the real validation split and writes results.csv, results.md
and results.png (evaluation/synthetic_to_real.py).

In Python: evaluation.report.evaluate_synthesis(synth_dir, real_dir, ...) and
evaluation.report.report_synthetic_to_real(config, train_args, output_dir, ...).
"""

import os

from absl import flags as absl_flags

import flags as cli

cli.define_evaluate_flags()
FLAGS = absl_flags.FLAGS


def main(argv):
    with cli.user_errors(os.path.basename(__file__)):
        if len(argv) > 1:
            raise cli.ConfigError(f"unexpected arguments: {' '.join(argv[1:])}")
        from evaluation import report  # TensorFlow loads only after the input checks

        if FLAGS.mode == "synthesis":
            report.evaluate_synthesis(
                FLAGS.synth_dir,
                FLAGS.real_dir,
                label_dir=FLAGS.label_dir,
                segmenter=FLAGS.segmenter,
                inception_weights=FLAGS.inception_weights,
                image_size=FLAGS.image_size,
                batch_size=FLAGS.batch_size,
                kid_subsets=FLAGS.kid_subsets,
                kid_subset_size=FLAGS.kid_subset_size,
                seed=FLAGS.seed,
                output=FLAGS.output,
                overwrite=FLAGS.overwrite,
            )
            return
        config, train_args = cli.parse_train_flags_string(FLAGS.train_flags)
        report.report_synthetic_to_real(
            config,
            train_args,
            FLAGS.output_dir,
            spade_model=FLAGS.spade_model,
            synthetic_list=FLAGS.synthetic_list,
            synthetic_image_dir=FLAGS.synthetic_image_dir,
            synthetic_label_dir=FLAGS.synthetic_label_dir,
            overwrite=FLAGS.overwrite,
            synth_batch_size=FLAGS.batch_size,
        )


if __name__ == "__main__":
    cli.run(main)
