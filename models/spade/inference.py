"""SPADE inference on files: a folder of label maps, or one label map, to PNG images.

The model comes from a run directory (its latest checkpoint) or an exported SavedModel
(models.spade.export.Synthesizer). Label maps of another size are resized (nearest) to the
model's size; class ids outside the model's classes are refused (naming the file and values)
before anything is written. Outputs are checked before the model loads: existing files are
refused unless overwrite (core.io.check_overwrite). Every image is written atomically, and a
folder of outputs keeps a progress file (core.io.OutputProgress): a killed run, rerun with the
same settings, resumes where it stopped (overwrite starts over).

Example:
    synthesize_label_folder("labels/", "outputs/synthesized", checkpoint_dir="runs/spade_tiny")
"""

import os

import numpy as np

from core import io as core_io
from core.errors import UserError


class SynthesisError(UserError):
    """Bad input for synthesis (a folder, a style image, a model without a VAE)."""


def _style_batch(style_image, count):
    """The style image repeated count times: uint8 [count, H, W, 3], or None."""
    return None if style_image is None else np.repeat(style_image[None], count, axis=0)


def _load_synthesizer(checkpoint_dir, saved_model, style_filename):
    from models.spade.export import Synthesizer

    synth = Synthesizer(checkpoint_dir=checkpoint_dir, saved_model=saved_model)
    if style_filename and not synth.use_vae:
        raise SynthesisError("--style_filename needs a model trained with --use_vae")
    return synth


def read_label_map(path: str, num_classes) -> np.ndarray:
    """The label map at `path` as [H, W] uint8; class ids >= num_classes raise SynthesisError.

    Args:
        path: an 8-bit label map PNG.
        num_classes: the model's class count (None: unknown, no check; an old export).
    """
    from datasets.pipeline import load_label_map

    label = load_label_map(path)
    if num_classes is not None and label.size and int(label.max()) >= num_classes:
        bad = np.unique(label[label >= num_classes]).tolist()
        raise SynthesisError(
            f"label map {path} holds class ids {core_io.list_some(map(str, bad))} outside the "
            f"model's {num_classes} classes (0..{num_classes - 1})"
        )
    return label


def list_label_maps(label_dir: str) -> list[str]:
    """The .png label maps under label_dir (recursively), as sorted relative paths."""
    if not os.path.isdir(label_dir):
        raise SynthesisError(f"--label_dir={label_dir} is not a directory")
    rel_paths = sorted(
        os.path.relpath(os.path.join(root, name), label_dir)
        for root, _, names in os.walk(label_dir)
        for name in names
        if name.lower().endswith(".png")
    )
    if not rel_paths:
        raise SynthesisError(f"--label_dir={label_dir} has no .png label maps")
    return rel_paths


def synthesize_label_folder(
    label_dir: str,
    output_dir: str,
    *,
    checkpoint_dir=None,
    saved_model=None,
    style_filename=None,
    batch_size: int = 8,
    seed: int = 0,
    overwrite: bool = False,
) -> list[str]:
    """Synthesizes an image for every label map under label_dir (synthesize.py --mode=labels).

    Each image gets the label map's relative path and stem under output_dir.

    Args:
        label_dir: folder of 8-bit label map PNGs, searched recursively.
        output_dir: where the images go.
        checkpoint_dir: a SPADE run directory; or give saved_model (an export).
        saved_model: an exported SPADE SavedModel.
        style_filename: style image of a --use_vae model (z = its encoding); without it a VAE
            model draws z at random (seeded by `seed`).
        batch_size: label maps per generator call.
        seed: seed of the random z.
        overwrite: start over, replacing existing output images. Without it a rerun with the
            same settings resumes (skips the images done), and other existing images are
            refused.

    Returns:
        The output paths (done earlier or now).
    """
    import keras

    from datasets.pipeline import load_image
    from models.spade.export import resize_label_map

    rel_paths = list_label_maps(label_dir)
    outputs = [os.path.join(output_dir, p) for p in rel_paths]
    progress = core_io.OutputProgress.load(
        output_dir,
        {
            "label_dir": os.path.abspath(label_dir),
            "model": os.path.abspath(checkpoint_dir or saved_model or ""),
            "style": os.path.abspath(style_filename) if style_filename else None,
            "seed": seed,
        },
        overwrite,
    )
    if not progress.resuming:
        core_io.check_overwrite(outputs, overwrite)

    synth = _load_synthesizer(checkpoint_dir, saved_model, style_filename)
    style_image = load_image(style_filename) if style_filename else None
    # Every label map is checked before the first image is written.
    for rel in rel_paths:
        read_label_map(os.path.join(label_dir, rel), synth.num_classes)
    todo = [not progress.done(out) for out in outputs]
    if progress.resuming:
        print(f"Resuming: {todo.count(False)} of {len(outputs)} images in {output_dir} are done")
    progress.start()
    rng = np.random.default_rng(seed)
    progbar = keras.utils.Progbar(len(rel_paths), unit_name="image")
    for start in range(0, len(rel_paths), batch_size):
        chunk = rel_paths[start : start + batch_size]
        z = None
        if style_image is None and synth.use_vae:
            # Drawn for done chunks too: a resumed run gives the images of an uninterrupted one.
            z = rng.standard_normal((len(chunk), synth.z_dim)).astype(np.float32)
        if not any(todo[start : start + batch_size]):
            progbar.add(len(chunk))
            continue
        labels = np.stack(
            [
                resize_label_map(
                    read_label_map(os.path.join(label_dir, p), synth.num_classes), synth.image_size
                )
                for p in chunk
            ]
        )  # [B, H, W]
        images = synth(labels, z=z, style=_style_batch(style_image, len(chunk)))
        written = []
        for out, image, needed in zip(outputs[start:], images, todo[start:]):
            if needed:
                core_io.save_image_atomic(image, out)
                written.append(out)
        progress.add(written)
        progbar.add(len(chunk))
    progress.finish()
    print(f"Wrote {todo.count(True)} images to {output_dir}")
    return outputs


def synthesize_label_map(
    label_filename: str,
    results_dir: str,
    *,
    checkpoint_dir=None,
    saved_model=None,
    style_filename=None,
    num_samples: int = 1,
    seed: int = 0,
    overwrite: bool = False,
) -> list[str]:
    """Synthesizes num_samples images from one label map (test_one.py).

    Writes <results_dir>/<stem>.png, or <stem>_<i>.png for several samples. A model without
    a VAE is deterministic: it writes one image (with a warning).

    Args:
        label_filename: the 8-bit label map PNG.
        results_dir: where the PNG(s) go.
        checkpoint_dir, saved_model: the model (one of them).
        style_filename: style image of a --use_vae model (z = its encoding).
        num_samples: images to draw, each with its own random z (VAE models).
        seed: seed of the random z.
        overwrite: replace existing output images.

    Returns:
        The paths written.
    """
    from absl import logging

    from datasets.pipeline import load_image
    from models.spade.export import Synthesizer, resize_label_map

    synth = Synthesizer(checkpoint_dir=checkpoint_dir, saved_model=saved_model)
    label = resize_label_map(read_label_map(label_filename, synth.num_classes), synth.image_size)
    count = num_samples
    if count > 1 and not synth.use_vae:
        logging.warning(
            "--num_samples=%d: a run without --use_vae is deterministic; writing 1", count
        )
        count = 1
    if style_filename and not synth.use_vae:
        raise SynthesisError("--style_filename needs a model trained with --use_vae")

    stem = os.path.splitext(os.path.basename(label_filename))[0]
    names = [f"{stem}.png"] if count == 1 else [f"{stem}_{i}.png" for i in range(count)]
    paths = [os.path.join(results_dir, n) for n in names]
    core_io.check_overwrite(paths, overwrite)

    labels = np.repeat(label[None], count, axis=0)  # [count, H, W]
    z = style = None
    if style_filename:
        style = _style_batch(load_image(style_filename), count)
    elif synth.use_vae:
        z = np.random.default_rng(seed).standard_normal((count, synth.z_dim))
        z = z.astype(np.float32)
    images = synth(labels, z=z, style=style)
    for path, image in zip(paths, images):
        core_io.save_image_atomic(image, path)
        print(path)
    return paths
