"""OSMIS synthesis on files: new image / mask pairs from a trained run, in the project's pair
format (datasets.synthetic_pairs.write_pairs), so SegFormer and evaluate.py read them.

synthesize.py --model=osmis --checkpoint_dir=RUN --num_images=100 [--output_dir=D] calls

    synthesize_osmis_pairs(RUN, D, 100, saved_model=None, batch_size=8, val_fraction=0.1,
                           seed=0, overwrite=False)

(--saved_model=EXPORT instead of --checkpoint_dir: synthesize_osmis_pairs(None, D, ...,
saved_model=EXPORT)). The pairs of a checkpoint and of its export agree: equal masks and
latents, images within one grey level.

Masks hold the original class ids of the training mask (ADE20K ids for the built-in scene), and
the label set passed to write_pairs names and colours them. A SIV-GAN run (trained without a
mask) has no masks to write, and is refused.
"""

import os

import numpy as np

from core.errors import UserError


def make_sample_fn(runner, seed):
    """sample_fn(batch_index, count) -> {"images", "masks", "latents"} of write_pairs.

    The latents of batch b are drawn from a generator seeded by (seed, b), so any batch can be
    (re)made alone: a resumed write gives the pairs of an uninterrupted one.
    """

    def sample_fn(batch_index, count):
        rng = np.random.default_rng([int(seed), int(batch_index)])
        z = rng.standard_normal((count, runner.z_dim)).astype(np.float32)  # [n, z_dim]
        out = runner.generate(z)
        return {"images": out["images"], "masks": out["masks"], "latents": z}

    return sample_fn


def synthesize_osmis_pairs(
    run_dir,
    out_dir,
    num_images=100,
    *,
    batch_size=8,
    seed=0,
    overwrite=False,
    saved_model=None,
    **write_kwargs,
):
    """Writes num_images generated image / mask pairs of an OSMIS run to out_dir.

    Args:
        run_dir: the run directory (None with saved_model).
        out_dir: where write_pairs puts the pairs.
        num_images: pairs to write.
        batch_size: latents per generator call.
        seed: seed of the latents.
        overwrite: replace earlier outputs (otherwise write_pairs resumes / refuses).
        saved_model: an exported SavedModel instead of run_dir.
        **write_kwargs: further arguments of write_pairs.

    Returns:
        What write_pairs returns.
    """
    from datasets.synthetic_pairs import write_pairs
    from models.osmis.export import OSMISRunner

    if num_images < 1 or batch_size < 1:
        raise UserError("--num_images and --batch_size must be >= 1")
    runner = OSMISRunner(checkpoint_dir=run_dir, saved_model=saved_model)
    if not runner.has_masks:
        where = f"--checkpoint_dir={run_dir}" if run_dir else f"--saved_model={saved_model}"
        raise UserError(
            f"{where} is a SIV-GAN run (trained without a mask): it generates images only, "
            "no image / mask pairs"
        )
    # A resumed write must continue with the same generator (write_pairs refuses otherwise).
    settings = {
        "model": "osmis",
        "generator": os.path.abspath(run_dir or saved_model),
        "step": runner.step,
        "class_ids": list(runner.record["class_ids"]),
    }
    return write_pairs(
        out_dir,
        make_sample_fn(runner, seed),
        label_set=runner.label_set,
        num_images=num_images,
        batch_size=batch_size,
        seed=seed,
        overwrite=overwrite,
        settings=settings,
        source="osmis",
        **write_kwargs,
    )
