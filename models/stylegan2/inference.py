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
        overwrite: replace existing images.

    Returns:
        The paths written.
    """
    import keras
    from PIL import Image

    from models.stylegan2.export import GeneratorRunner

    outputs = [os.path.join(output_dir, f"{i:06d}.png") for i in range(num_samples)]
    core_io.check_overwrite(outputs, overwrite)
    runner = GeneratorRunner(checkpoint_dir, truncation_psi=truncation_psi, seed=seed)
    rng = np.random.default_rng(seed)
    os.makedirs(output_dir, exist_ok=True)
    progbar = keras.utils.Progbar(len(outputs), unit_name="image")
    for start in range(0, len(outputs), batch_size):
        chunk = outputs[start : start + batch_size]
        z = rng.standard_normal((len(chunk), runner.z_dim)).astype(np.float32)  # [B, z_dim]
        for path, image in zip(chunk, runner.images(z)):
            Image.fromarray(image).save(path)
        progbar.add(len(chunk))
    print(f"Wrote {len(outputs)} images to {output_dir}")
    return outputs
