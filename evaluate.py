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

    python evaluate.py --mode=one_shot --synth_dir=outputs/osmis_pairs \
        --real_image=data/one.jpg --real_mask=data/one.png [--real_dir=MORE_REAL_PAIRS] \
        [--sifid_all_layers] [--lpips_backbone_weights=... --lpips_linear_weights=lpips_vgg.npz] \
        [--seg_steps=200 --train_flags="--preset=tiny"] --output_dir=outputs/one_shot

SIFID of every generated image against the real one, LPIPS diversity and distance to train,
and the mIoU of a SegFormer trained on the generated pairs and tested on the real pair (and the
reverse with --real_dir): results.csv, results.md, results.json, per_image.csv and sheet.png
(evaluation/one_shot.py).

    python evaluate.py --mode=palette --synth_dir=outputs/palette_pairs \
        --real_dir=REAL_PAIRS --output_dir=outputs/palette

FID of the images, GMM log-likelihood of the generated class proportions, EMD and Frechet
distance between real and generated proportions, KL / JS / MAE between each pair's target
palette (targets.npy in --synth_dir) and its mask's proportions (evaluation/palette_report.py).

    python evaluate.py --mode=coco --coco_gt=runs/sg_dataset/coco_gt_val.json \
        --segmenter=runs/sg_segformer --output_dir=outputs/coco

COCO instance segmentation AP / AR (pycocotools, "segm") of a segmenter on the images of a COCO
ground truth, e.g. the coco_gt_val.json of synthesize.py --mode=dataset: each predicted
component of a class is a detection scored by its mean class probability; results.json,
results.md and detections.json (evaluation/coco.py).

A flag the chosen --mode does not read is refused. In Python:
evaluation.report.evaluate_synthesis(synth_dir, real_dir, ...),
evaluation.report.report_synthetic_to_real(config, train_args, output_dir, ...),
evaluation.one_shot.run_one_shot(...), evaluation.palette_report.run_palette(...) and
evaluation.coco.evaluate_coco(coco_gt, segmenter, output_dir, ...).
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
        cli.check_evaluate_mode_flags(FLAGS)
        output_dir = FLAGS.output_dir or os.path.join("outputs", FLAGS.mode)
        from evaluation import report  # TensorFlow loads only after the input checks

        if FLAGS.mode == "one_shot":
            one_shot_main(output_dir)
            return
        if FLAGS.mode == "coco":
            from evaluation import coco

            coco.evaluate_coco(
                FLAGS.coco_gt,
                FLAGS.segmenter,
                output_dir,
                image_root=FLAGS.image_root,
                tile_size=FLAGS.tile_size,
                batch_size=FLAGS.batch_size,
                max_detections=FLAGS.max_detections,
                overwrite=FLAGS.overwrite,
            )
            return
        if FLAGS.mode == "palette":
            from evaluation import palette_report

            results = palette_report.run_palette(
                FLAGS.synth_dir,
                FLAGS.real_dir,
                output_dir,
                inception_weights=FLAGS.inception_weights,
                image_size=FLAGS.image_size,
                batch_size=FLAGS.batch_size,
                gmm_components=FLAGS.gmm_components,
                seed=FLAGS.seed,
                overwrite=FLAGS.overwrite,
            )
            print(palette_report.format_markdown(results))
            return
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
            output_dir,
            spade_model=FLAGS.spade_model,
            synthetic_list=FLAGS.synthetic_list,
            synthetic_image_dir=FLAGS.synthetic_image_dir,
            synthetic_label_dir=FLAGS.synthetic_label_dir,
            overwrite=FLAGS.overwrite,
            synth_batch_size=FLAGS.batch_size,
        )


def one_shot_main(output_dir):
    from evaluation import one_shot

    config, _ = cli.one_shot_segmenter_config(FLAGS.train_flags, FLAGS.seg_steps, FLAGS.synth_dir)
    results = one_shot.run_one_shot(
        FLAGS.synth_dir,
        FLAGS.real_image,
        FLAGS.real_mask,
        output_dir,
        real_dir=FLAGS.real_dir,
        inception_weights=FLAGS.inception_weights,
        sifid_all_layers=FLAGS.sifid_all_layers,
        lpips_backbone_weights=FLAGS.lpips_backbone_weights,
        lpips_linear_weights=FLAGS.lpips_linear_weights,
        lpips_pairs=FLAGS.lpips_pairs,
        segmenter_config=config,
        seg_steps=FLAGS.seg_steps,
        batch_size=FLAGS.batch_size,
        sheet_pairs=FLAGS.sheet_pairs,
        seed=FLAGS.seed,
        overwrite=FLAGS.overwrite,
    )
    print(one_shot.format_markdown(results))


if __name__ == "__main__":
    cli.run(main)
