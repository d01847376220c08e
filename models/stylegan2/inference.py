"""StyleGAN2 inference on files: random samples of a trained generator as PNGs.

Example:
    write_samples("runs/stylegan2_tiny", "outputs/synthesized", num_samples=16)
"""

import os

import numpy as np

from core import io as core_io


def write_samples(
    checkpoint_dir: str,
    output_dir: str,
    *,
    num_samples: int = 100,
    batch_size: int = 8,
    truncation_psi: float = 1.0,
    seed: int = 0,
    overwrite: bool = False,
) -> list[str]:
    """Writes num_samples random images of the run's EMA generator (synthesize.py --mode=samples).

    Args:
        checkpoint_dir: a StyleGAN2 run directory (its latest checkpoint).
        output_dir: where <output_dir>/000000.png ... go.
        num_samples: images to write.
        batch_size: latents per generator call.
        truncation_psi: truncation towards the mean w (1 = off).
        seed: seed of the latents z.
        overwrite: start over, replacing existing images. Without it a rerun with the same
            settings resumes (skips the images done), and other existing images are refused.

    Returns:
        The output paths (done earlier or now).
    """
    import keras

    from models.stylegan2.export import GeneratorRunner

    outputs = [os.path.join(output_dir, f"{i:06d}.png") for i in range(num_samples)]
    progress = core_io.OutputProgress.load(
        output_dir,
        {
            "checkpoint_dir": os.path.abspath(checkpoint_dir),
            "truncation_psi": truncation_psi,
            "seed": seed,
        },
        overwrite,
    )
    if not progress.resuming:
        core_io.check_overwrite(outputs, overwrite)
    runner = GeneratorRunner(checkpoint_dir, truncation_psi=truncation_psi, seed=seed)
    rng = np.random.default_rng(seed)
    progress.start()
    progbar = keras.utils.Progbar(len(outputs), unit_name="image")
    written = 0
    for start in range(0, len(outputs), batch_size):
        chunk = outputs[start : start + batch_size]
        # Drawn for done chunks too: a resumed run gives the images of an uninterrupted one.
        z = rng.standard_normal((len(chunk), runner.z_dim)).astype(np.float32)  # [B, z_dim]
        todo = [not progress.done(path) for path in chunk]
        if any(todo):
            for path, image, needed in zip(chunk, runner.images(z), todo):
                if needed:
                    core_io.save_image_atomic(image, path)
                    written += 1
            progress.add([path for path, needed in zip(chunk, todo) if needed])
        progbar.add(len(chunk))
    progress.finish()
    print(f"Wrote {written} images to {output_dir}")
    return outputs
