"""Segment images: python segment.py --input=IMG|DIR|GLOB --output_dir=OUT --checkpoint_dir=RUN

The model comes from --checkpoint_dir (a training run) or --saved_model (an export). Every
input image gives, under --output_dir:
    <stem>.png          class ids, 8-bit grey (the format of the label maps)
    <stem>_color.png    the classes in the label set's colours
    <stem>_overlay.png  50% blend of the image and the colours
Images of any size are segmented by sliding windows (--mode=slide, --tile_size, --overlap) or
in one pass padded to a multiple of 32 (--mode=whole); an image whose longer side exceeds
--max_image_size (default 3000 px, 0 = off) is shrunk first and its prediction enlarged back.
--input may also be a JSON list of image paths (relative to the list's folder), as the
Synthesis-in-Style reference's lists.

Document pages for PAGE-XML pipelines: --page_xml also writes
    <stem>.xml            PAGE XML (2019-07-15 schema): a TextRegion per text class, a TextLine
                          per line polygon (--merge_mode=none | min_area_bbox | convex_hull,
                          --max_diff_percentage, --min_confidence, --text_classes)
    <stem>_contours.png   the colours with the line polygons drawn in white
models.synthesis_in_style.page_xml.page_to_label_image turns such a file back into a label map.

With --gt_dir (label maps matched by stem: <stem>.png, or <stem>_seg.png as in FaceSynthetics)
the script also prints per-class IoU, Dice, precision, recall, mIoU and pixel accuracy over all
images, and writes OUT/metrics.csv and OUT/confusion.png. Label value 255 is ignored, and with
--ignore_dontcare (default) so is the label set's "other" class (ADE20K's 0), as in the
ADE20K benchmark.

In Python: models.segformer.inference.segment_images(input_path, output_dir, ...).
"""

import os

from absl import flags as absl_flags

import flags as cli

cli.define_segment_flags()
FLAGS = absl_flags.FLAGS


def main(argv):
    with cli.user_errors(os.path.basename(__file__)):
        if len(argv) > 1:
            raise cli.ConfigError(f"unexpected arguments: {' '.join(argv[1:])}")
        # TensorFlow loads only after the flag and file checks of segment_images.
        from models.segformer.inference import segment_images

        segment_images(
            FLAGS.input,
            FLAGS.output_dir,
            checkpoint_dir=FLAGS.checkpoint_dir,
            saved_model=FLAGS.saved_model,
            mode=FLAGS.mode,
            tile_size=FLAGS.tile_size,
            overlap=FLAGS.overlap,
            batch_size=FLAGS.batch_size,
            gt_dir=FLAGS.gt_dir,
            semantic_label_path=FLAGS.semantic_label_path,
            ignore_dontcare=FLAGS.ignore_dontcare,
            overwrite=FLAGS.overwrite,
            max_image_size=FLAGS.max_image_size,
            page_xml=FLAGS.page_xml,
            merge_mode=FLAGS.merge_mode,
            max_diff_percentage=FLAGS.max_diff_percentage,
            min_confidence=FLAGS.min_confidence,
            text_classes=FLAGS.text_classes,
        )


if __name__ == "__main__":
    cli.run(main)
