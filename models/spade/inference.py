"""SPADE inference on files: a folder of label maps, or one label map, to PNG images.

The model comes from a run directory (its latest checkpoint) or an exported SavedModel
(models.spade.export.Synthesizer). Label maps of another size are resized (nearest) to the
model's size; class ids outside the model's classes are refused (naming the file and values)
before anything is written. Outputs are checked before the model loads: existing files are
refused unless overwrite (core.io.check_overwrite). Every image is written atomically, and a
folder of outputs keeps a progress file (core.io.OutputProgress): a killed run, rerun with the
same settings, resumes where it stopped (overwrite starts over).

Runs on label values (the SPADE TF port's semantic_labels.txt, models/spade/labels.py) read raw
label maps (e.g. 0 / 255 masks) and map them to class ids as training did. test_one.py's port
flags that describe the run (RUN_FLAGS: --use_vae, --semantic_label_path, ...) are checked
against it by `check_run_flags`, and `port_names` writes the port's file names.

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


def read_label_map(path: str, num_classes, label_values=None) -> np.ndarray:
    """The label map at `path` as [H, W] uint8 class ids; class ids >= num_classes raise
    SynthesisError.

    Args:
        path: an 8-bit label map PNG.
        num_classes: the model's class count (None: unknown, no check; an old export).
        label_values: the raw value of each class of a run on label values (the file's
            values are mapped to the class ids; others raise naming the file), or None.
    """
    from datasets.pipeline import load_label_map
    from semantic_labels import label_values as values_lib

    label = load_label_map(path)
    if label_values is not None:
        label = values_lib.to_class_ids(label, label_values, f"label map {path}")
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
        read_label_map(os.path.join(label_dir, rel), synth.num_classes, synth.label_values)
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
                    read_label_map(
                        os.path.join(label_dir, p), synth.num_classes, synth.label_values
                    ),
                    synth.image_size,
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
    port_names: bool = False,
    run_flags=None,
) -> list[str]:
    """Synthesizes num_samples images from one label map (test_one.py).

    Writes <results_dir>/<stem>.png, or <stem>_<i>.png for several samples. With port_names,
    the SPADE TF port's names: <stem>_synthesized.png (<stem>_synthesized_<i>.png), plus the
    preprocessed inputs under their own file names: the label map resized to the model's size
    (its raw values) and the style image at that size. A model without a VAE is
    deterministic: it writes one image (with a warning).

    Args:
        label_filename: the 8-bit label map PNG.
        results_dir: where the PNG(s) go.
        checkpoint_dir, saved_model: the model (one of them).
        style_filename: style image of a --use_vae model (z = its encoding).
        num_samples: images to draw, each with its own random z (VAE models).
        seed: seed of the random z.
        overwrite: replace existing output images.
        port_names: write the port's file names and input copies (above).
        run_flags: {flag: value} the user gave that describe the run (the port's --use_vae,
            --semantic_label_path, ...): checked against it by `check_run_flags`.

    Returns:
        The paths written.
    """
    if run_flags:  # before TensorFlow loads: a contradiction is told at once
        check_run_flags(run_flags, checkpoint_dir=checkpoint_dir, saved_model=saved_model)
    from absl import logging
    from PIL import Image

    from datasets.pipeline import load_image, load_label_map
    from models.spade.export import Synthesizer, resize_label_map

    synth = Synthesizer(checkpoint_dir=checkpoint_dir, saved_model=saved_model)
    label = resize_label_map(
        read_label_map(label_filename, synth.num_classes, synth.label_values), synth.image_size
    )
    count = num_samples
    if count > 1 and not synth.use_vae:
        logging.warning(
            "--num_samples=%d: a run without --use_vae is deterministic; writing 1", count
        )
        count = 1
    if style_filename and not synth.use_vae:
        raise SynthesisError("--style_filename needs a model trained with --use_vae")

    stem = os.path.splitext(os.path.basename(label_filename))[0]
    suffix = "_synthesized" if port_names else ""
    if count == 1:
        names = [f"{stem}{suffix}.png"]
    else:
        names = [f"{stem}{suffix}_{i}.png" for i in range(count)]
    paths = [os.path.join(results_dir, n) for n in names]
    copies = {}  # the port's copies of the preprocessed inputs: path -> image
    if port_names:
        height, width = synth.image_size
        raw = resize_label_map(load_label_map(label_filename), synth.image_size)
        copies[os.path.join(results_dir, os.path.basename(label_filename))] = raw
        if style_filename:
            style_copy = Image.fromarray(load_image(style_filename)).resize(
                (width, height), Image.BICUBIC
            )
            style_path = os.path.join(results_dir, os.path.basename(style_filename))
            if style_path in copies:
                raise SynthesisError(
                    f"--label_filename and --style_filename share the name "
                    f"{os.path.basename(style_filename)}: the port's copies of both would be "
                    f"{style_path}; rename one"
                )
            copies[style_path] = np.asarray(style_copy)
    core_io.check_overwrite([*paths, *copies], overwrite)

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
    for path, image in copies.items():
        core_io.save_image_atomic(image, path)
        print(path)
    return [*paths, *copies]


# test_one.py flags that describe the run rather than choose anything (the SPADE TF port's
# test_one.py needs them to rebuild the model; here the run knows them): each given one must
# agree with the run.
RUN_FLAGS = (
    "use_vae",
    "semantic_label_path",
    "img_height",
    "img_width",
    "crop_size",
    "num_upsampling_layers",
    "num_generator_filters",
    "num_encoder_filters",
)


def check_run_flags(given, *, checkpoint_dir=None, saved_model=None):
    """Checks the run-describing flags a user gave (RUN_FLAGS) against the run.

    Reads only the run's config.json (or an export's meta), before any model loads.

    Args:
        given: {flag name: value} of the flags given on the command line.
        checkpoint_dir, saved_model: the model (one of them).

    Raises:
        SynthesisError: naming the flag, its value and the run's, when they contradict; or a
            flag that an export does not record (give --checkpoint_dir).
    """
    unknown = sorted(set(given) - set(RUN_FLAGS))
    if unknown:
        raise ValueError(f"not run flags: {unknown}")
    facts = _run_facts(checkpoint_dir, saved_model)
    source = (
        f"--checkpoint_dir={checkpoint_dir}" if checkpoint_dir else f"--saved_model={saved_model}"
    )
    # With a smaller --crop_size, --img_height / --img_width are the size images are resized to
    # before the crop, as in the port (flags.py reads them so for train.py too).
    resized = given.get("crop_size", given.get("img_height")) != given.get("img_height")
    for name in RUN_FLAGS:
        if name not in given:
            continue
        value = given[name]
        if name == "semantic_label_path":
            _check_label_set(value, facts, source)
            continue
        fact = name
        if resized and name in ("img_height", "img_width"):
            fact = {"img_height": "load_size", "img_width": "load_width"}[name]
        if facts.get(fact) is None:
            raise SynthesisError(
                f"--{name}={value} cannot be checked: {source} does not record it "
                "(give --checkpoint_dir, or leave the flag out: the model knows it)"
            )
        if value != facts[fact]:
            raise SynthesisError(
                f"--{name}={_flag_text(value)} contradicts the run: {source} was trained with "
                f"{fact}={_flag_text(facts[fact])} (leave the flag out: the model knows it)"
            )


def _flag_text(value):
    return str(value).lower() if isinstance(value, bool) else str(value)


def _run_facts(checkpoint_dir, saved_model):
    """What a run or export records, under the names of RUN_FLAGS (None: not recorded)."""
    from models.spade import labels as spade_labels
    from models.spade.config import SPADEConfig
    from training import run_dir as run_dir_lib

    if bool(checkpoint_dir) == bool(saved_model):
        raise SynthesisError("give exactly one of --checkpoint_dir and --saved_model")
    if checkpoint_dir:
        config = run_dir_lib.load_run_config(checkpoint_dir, SPADEConfig)
        label_set = spade_labels.spade_label_set(config, run_dir=checkpoint_dir)
        height, width = config.image_size
        return {
            "use_vae": bool(config.use_vae),
            "img_height": height,
            "img_width": width,
            "load_size": config.load_size,
            "load_width": config.load_width,
            "crop_size": config.crop_size,
            "num_upsampling_layers": config.num_upsampling_layers,
            "num_generator_filters": config.ngf,
            "num_encoder_filters": config.ndf,
            "semantic_label_path": config.semantic_label_path,
            "label_set": label_set,
            "label_values": spade_labels.label_values_of(config, label_set),
        }
    from models.spade.export import META_FILE, _exported_meta

    meta = _exported_meta(saved_model)
    if meta is None:
        raise SynthesisError(
            f"--saved_model={saved_model} has no {META_FILE} (an older export): it records "
            "nothing to check the flags against; leave them out"
        )
    height, width = meta["image_size"]
    values = meta.get("label_values")
    return {
        "use_vae": bool(meta["use_vae"]),
        "img_height": height,
        "img_width": width,
        "crop_size": meta["crop_size"],
        "semantic_label_path": meta.get("label_set"),
        "label_set": None,
        "label_values": None if values is None else tuple(values),
    }


def _check_label_set(given_path, facts, source):
    """--semantic_label_path must name the run's label set: the same classes (names), and
    for label values the same values in the same order."""
    from semantic_labels import load_label_set

    given = load_label_set(given_path)
    run_values = facts["label_values"]
    if run_values is not None or (given.source_ids is not None and given.ignore_index is None):
        if given.source_ids != run_values:
            given_text = (
                f"the values {', '.join(map(str, given.source_ids))}"
                if given.source_ids is not None
                else f"the label set {given.name!r}"
            )
            run_text = (
                f"the label values {', '.join(map(str, run_values))}"
                if run_values is not None
                else f"the label set {facts['semantic_label_path']}"
            )
            raise SynthesisError(
                f"--semantic_label_path={given_path} ({given_text}) contradicts the run: "
                f"{source} was trained on {run_text}"
            )
        return
    run_set = facts["label_set"]
    if run_set is None:  # an export: it records the label set's name or file
        run_set = load_label_set(facts["semantic_label_path"])
    if given.names != run_set.names:
        raise SynthesisError(
            f"--semantic_label_path={given_path} (label set {given.name!r}, "
            f"{given.num_classes} classes) contradicts the run: {source} was trained on "
            f"{facts['semantic_label_path']} ({run_set.num_classes} classes)"
        )
