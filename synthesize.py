"""Synthesize with a trained model.

SPADE (--mode=labels, the default): python synthesize.py --label_dir=D --checkpoint_dir=RUN
    Every label map PNG under --label_dir (recursively) becomes an image with the same relative
    path and stem under --output_dir, in batches, with a progress bar. Label maps of another
    size are resized (nearest) to the model's size.

StyleGAN2 (--model=stylegan2 --checkpoint_dir=RUN):
    --mode=samples    --num_samples random images (optionally --truncation_psi) as PNGs.
    --mode=clusters   Synthesis in Style, step 3: sample --num_samples images, cluster every
                      synthesis layer's features with spherical k-means for every k in
                      --k_range; writes <checkpoint_dir>/clusters (centres, cluster maps,
                      overviews) for the annotator (python -m annotator).
    --mode=dataset    step 6: with the cluster labels of --k (annotator JSON), synthesize
                      --num_images image / mask pairs, train/val JSON lists and a COCO ground
                      truth; refuses while a cluster of the used layers is unlabelled.
                      --mask_rule picks the rule from cluster classes to masks
                      (coarse_fine: the paper's; fine_only).

Semantic Palette (--model=palette --checkpoint_dir=LAYOUT_RUN --spade_checkpoint_dir=SPADE_RUN):
    --mode=pairs      --num_images palette -> layout -> image pairs in the project's pair format
                      (images/, masks/, masks_colour/, train.json, val.json, targets.npy,
                      achieved.npy); palettes from --palettes (JSON / CSV) or drawn from the
                      run's estimator. A SPADE model is required (no pair without its image).
    --mode=demos      palette interpolation and latent interpolation (PNG strips and GIFs);
                      with --partial_checkpoint_dir (a --stage=partial run) the partial-editing
                      sheet too.
    --partial         edit given layouts (--layouts: a folder or JSON list of train-id PNGs) with
                      --checkpoint_dir = a --stage=partial run (or --saved_model = its export):
                      the columns --band=x0,x1 regenerated with the proportions changed by
                      --delta=vegetation=+0.1,...; the edited pairs plus the inputs.

The work is done by models/spade/inference.py (labels), models/stylegan2/inference.py
(samples), models/synthesis_in_style/pipeline.py (clusters, dataset) and
models/palette/inference.py, models/palette/demos.py, models/palette/partial.py (palette).
"""

import os

from absl import app
from absl import flags as absl_flags

import flags as cli

cli.define_synthesize_flags()
FLAGS = absl_flags.FLAGS


def main(argv):
    with cli.user_errors(os.path.basename(__file__)):
        if FLAGS.model == "osmis":
            _synthesize_osmis(argv)
            return
        if FLAGS.model == "palette":
            palette_main(argv)
            return
        mode = _check_flags(argv)
        # TensorFlow loads after the flags are checked.
        if mode == "labels":
            from models.spade.inference import synthesize_label_folder

            synthesize_label_folder(
                FLAGS.label_dir,
                FLAGS.output_dir or "outputs/synthesized",
                checkpoint_dir=FLAGS.checkpoint_dir,
                saved_model=FLAGS.saved_model,
                style_filename=FLAGS.style_filename,
                batch_size=FLAGS.batch_size,
                seed=FLAGS.seed,
                overwrite=FLAGS.overwrite,
            )
        elif mode == "samples":
            from models.stylegan2.inference import write_samples

            write_samples(
                FLAGS.checkpoint_dir,
                FLAGS.output_dir or "outputs/synthesized",
                num_samples=FLAGS.num_samples,
                batch_size=FLAGS.batch_size,
                truncation_psi=FLAGS.truncation_psi,
                seed=FLAGS.seed,
                overwrite=FLAGS.overwrite,
            )
        elif mode == "clusters":
            from models.synthesis_in_style.pipeline import cluster_generator

            cluster_generator(
                FLAGS.checkpoint_dir,
                FLAGS.output_dir,
                k_range=FLAGS.k_range,
                num_samples=FLAGS.num_samples,
                batch_size=FLAGS.batch_size,
                max_pixels=FLAGS.max_pixels,
                truncation_psi=FLAGS.truncation_psi,
                seed=FLAGS.seed,
                overwrite=FLAGS.overwrite,
                palette=FLAGS.palette,
            )
        else:
            from models.synthesis_in_style.pipeline import build_dataset

            build_dataset(
                FLAGS.checkpoint_dir,
                k=FLAGS.k,
                output_dir=FLAGS.output_dir,
                clusters_dir=FLAGS.clusters_dir,
                mapping=FLAGS.mapping,
                palette=FLAGS.palette,
                coarse_layers=FLAGS.coarse_layers,
                fine_layers=FLAGS.fine_layers,
                min_area=FLAGS.min_area,
                overlap_policy=FLAGS.overlap_policy,
                num_images=FLAGS.num_images,
                val_fraction=FLAGS.val_fraction,
                batch_size=FLAGS.batch_size,
                truncation_psi=FLAGS.truncation_psi,
                seed=FLAGS.seed,
                overwrite=FLAGS.overwrite,
                mask_rule=FLAGS.mask_rule,
            )


def _check_flags(argv) -> str:
    """The mode to run; flag combinations that cannot work are usage errors."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.batch_size < 1:
        raise app.UsageError("--batch_size must be >= 1")
    mode = FLAGS.mode or ("labels" if FLAGS.model == "spade" else "samples")
    if (FLAGS.model == "spade") != (mode == "labels"):
        raise app.UsageError(
            f"--mode={mode} is not a mode of --model={FLAGS.model} (spade: labels; stylegan2: "
            "samples, clusters, dataset)"
        )
    if mode == "labels":
        if not FLAGS.label_dir:
            raise app.UsageError("--label_dir is required")
        return mode
    if not FLAGS.checkpoint_dir:
        raise app.UsageError(f"--mode={mode} needs --checkpoint_dir (a StyleGAN2 run)")
    if FLAGS["mask_rule"].present and mode != "dataset":
        raise app.UsageError(f"--mask_rule is used by --mode=dataset only, not --mode={mode}")
    if mode in ("samples", "clusters") and FLAGS.num_samples < 1:
        raise app.UsageError("--num_samples must be >= 1")
    if mode == "dataset":
        if FLAGS.k is None:
            raise app.UsageError("--mode=dataset needs --k (the annotated number of clusters)")
        if FLAGS.num_images < 1:
            raise app.UsageError("--num_images must be >= 1")
    return mode


# The synthesize.py flags --model=osmis reads; any other given on the command line is refused.
OSMIS_FLAGS = (
    "model", "checkpoint_dir", "saved_model", "output_dir", "num_images", "val_fraction",
    "batch_size", "seed", "overwrite",
)  # fmt: skip


def _synthesize_osmis(argv):
    """--model=osmis: image / mask pairs of an OSMIS run (its EMA generator) or SavedModel."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    for flag in FLAGS.get_flags_for_module(cli.__name__):
        if flag.present and flag.name not in OSMIS_FLAGS:
            raise app.UsageError(
                f"--{flag.name} is not used by --model=osmis (it reads --"
                + ", --".join(OSMIS_FLAGS[1:])
                + ")"
            )
    if bool(FLAGS.checkpoint_dir) == bool(FLAGS.saved_model):
        raise app.UsageError(
            "--model=osmis needs exactly one of --checkpoint_dir (an OSMIS run) and "
            "--saved_model (its export)"
        )
    for name in ("num_images", "batch_size"):
        if FLAGS[name].value < 1:
            raise app.UsageError(f"--{name} must be >= 1")
    # TensorFlow loads after the flags are checked.
    from models.osmis.inference import synthesize_osmis_pairs

    synthesize_osmis_pairs(
        FLAGS.checkpoint_dir,
        FLAGS.output_dir or "outputs/osmis_pairs",
        FLAGS.num_images,
        saved_model=FLAGS.saved_model,
        batch_size=FLAGS.batch_size,
        val_fraction=FLAGS.val_fraction,
        seed=FLAGS.seed,
        overwrite=FLAGS.overwrite,
    )


_PALETTE_MODEL_FLAGS = (
    "model", "mode", "checkpoint_dir", "saved_model", "spade_checkpoint_dir",
    "spade_saved_model", "palettes", "estimator_path", "level", "seed", "output_dir",
    "overwrite", "partial",
)  # fmt: skip
# The flags each --model=palette mode reads (any other given is refused).
PALETTE_FLAGS = {
    "pairs": (*_PALETTE_MODEL_FLAGS, "num_images", "val_fraction", "batch_size"),
    "demos": (*_PALETTE_MODEL_FLAGS, "demo_steps", "partial_checkpoint_dir"),
    "partial": (
        "model", "mode", "partial", "checkpoint_dir", "saved_model", "spade_checkpoint_dir",
        "spade_saved_model", "layouts", "band", "delta", "seed", "output_dir", "overwrite",
        "val_fraction", "batch_size",
    ),
}  # fmt: skip


def palette_main(argv):
    """--model=palette: --mode=pairs (palette -> layout -> image pairs) or --mode=demos."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    mode = FLAGS.mode or "pairs"
    if mode not in ("pairs", "demos"):
        raise app.UsageError(f"--mode={mode} is not a mode of --model=palette (pairs, demos)")
    if FLAGS.partial:
        if mode != "pairs":
            raise app.UsageError(
                "--partial writes pairs of edited layouts (--mode=pairs); the demos' partial-"
                "editing sheet takes --partial_checkpoint_dir"
            )
        palette_partial_main()
        return
    for flag in FLAGS.flags_by_module_dict().get(cli.__name__, []):
        if flag.present and flag.name not in PALETTE_FLAGS[mode]:
            raise app.UsageError(f"--{flag.name} is not used by --model=palette --mode={mode}")
    if bool(FLAGS.checkpoint_dir) == bool(FLAGS.saved_model):
        raise app.UsageError(
            "--model=palette needs the layout model: --checkpoint_dir (a train.py "
            "--model=palette run) or --saved_model (its export)"
        )
    if FLAGS.batch_size < 1 or FLAGS.num_images < 1:
        raise app.UsageError("--batch_size and --num_images must be >= 1")
    if mode == "pairs" and not (FLAGS.spade_checkpoint_dir or FLAGS.spade_saved_model):
        raise app.UsageError(
            "--model=palette --mode=pairs needs the image synthesizer: --spade_checkpoint_dir "
            "or --spade_saved_model (a SPADE of the layouts' label set); a pair needs its image"
        )
    model = dict(
        layout_source=FLAGS.checkpoint_dir or FLAGS.saved_model,
        spade_checkpoint_dir=FLAGS.spade_checkpoint_dir,
        spade_saved_model=FLAGS.spade_saved_model,
        palettes_path=FLAGS.palettes,
        estimator_path=FLAGS.estimator_path,
        level=FLAGS.level,
        seed=FLAGS.seed,
        overwrite=FLAGS.overwrite,
    )
    if mode == "demos":
        from models.palette.demos import write_demos

        write_demos(
            FLAGS.output_dir or "outputs/palette_demos",
            steps=FLAGS.demo_steps,
            partial_source=FLAGS.partial_checkpoint_dir,
            **model,
        )
        return
    from models.palette.inference import synthesize_palette_pairs

    synthesize_palette_pairs(
        FLAGS.output_dir or "outputs/palette_pairs",
        num_images=FLAGS.num_images,
        batch_size=FLAGS.batch_size,
        val_fraction=FLAGS.val_fraction,
        **model,
    )


def palette_partial_main():
    """--model=palette --partial: edit the --layouts in --band by --delta, then images."""
    for flag in FLAGS.flags_by_module_dict().get(cli.__name__, []):
        if flag.present and flag.name not in PALETTE_FLAGS["partial"]:
            raise app.UsageError(f"--{flag.name} is not used by --model=palette --partial")
    if bool(FLAGS.checkpoint_dir) == bool(FLAGS.saved_model):
        raise app.UsageError(
            "--model=palette --partial needs the partial-editing model: --checkpoint_dir (a "
            "train.py --model=palette --stage=partial run) or --saved_model (its export, or a "
            "pipeline export with serve_partial)"
        )
    if not FLAGS.layouts:
        raise app.UsageError(
            "--model=palette --partial needs --layouts (a folder or JSON list of train-id "
            "layout PNGs)"
        )
    if not FLAGS.band:
        raise app.UsageError(
            "--model=palette --partial needs --band (the columns to regenerate, x0,x1: columns "
            "8,24 or fractions of the width 0.25,0.75)"
        )
    if FLAGS.batch_size < 1:
        raise app.UsageError("--batch_size must be >= 1")
    from models.palette.partial import synthesize_partial_pairs

    synthesize_partial_pairs(
        FLAGS.output_dir or "outputs/palette_partial",
        partial_source=FLAGS.checkpoint_dir or FLAGS.saved_model,
        layouts_path=FLAGS.layouts,
        band=FLAGS.band,
        delta=FLAGS.delta,
        spade_checkpoint_dir=FLAGS.spade_checkpoint_dir,
        spade_saved_model=FLAGS.spade_saved_model,
        batch_size=FLAGS.batch_size,
        seed=FLAGS.seed,
        val_fraction=FLAGS.val_fraction,
        overwrite=FLAGS.overwrite,
        source_flag="--checkpoint_dir" if FLAGS.checkpoint_dir else "--saved_model",
    )


if __name__ == "__main__":
    cli.run(main)
