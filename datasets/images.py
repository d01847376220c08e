"""Unlabelled images for GAN training: file lists and reproducible tf.data pipelines.

Batches are dicts {"image": [N, S, S, 3] float32 in [-1, 1]}.

Images come from a folder (searched recursively) or from a JSON list of paths relative to the
JSON file, as datasets/crops.py writes (`["crops/000000.png", ...]`; `{"images": [...]}` and
the segmentation `{"pairs": [{"image", "label"}]}` lists are read too).

The training stream follows datasets/pipeline.py: element i of the global stream is file
`index_shuffle(i % n, seed=(seed, i // n))` of the n files, flipped by a stateless draw seeded
by (seed, i); batch step s holds elements [s * B, (s + 1) * B). A run resumed at step k thus
sees what a run from step 0 sees from step k on, and input pipeline p of P reads its slice of
every global batch (`pipeline_slice`).

Preprocessing: centre square crop (the shorter side), then resize to size x size only when the
crop is not already that size: area averaging when shrinking, bicubic when enlarging.

A file the decoder rejects stops the pipeline with a TensorFlow error that names no file:
files that are no image at all are caught in graph (an assertion naming the path), and
`named_image_errors(paths)` (or `diagnose_images(paths)`) turns any other decode failure into
a DatasetError naming the file.
"""

from __future__ import annotations

import contextlib
import os

import tensorflow as tf
from PIL import Image

from core.io import IMAGE_EXTENSIONS, find_files, read_json_list, resolve_listed

from .pairs import DatasetError, DatasetNotFoundError
from .pipeline import check_positive, coin_flip, mirror_where, one_pass, training_stream

# First bytes of the formats tf.io.decode_image reads.
_SIGNATURES = (b"\x89PNG", b"\xff\xd8\xff", b"BM", b"GIF8", b"RIFF")


def image_list(
    *, image_dir: str | None = None, list_path: str | None = None, flag: str | None = None
) -> list[str]:
    """Absolute paths of the training images of a folder or a JSON list.

    Args:
        image_dir: folder searched recursively for .png .jpg .jpeg .bmp .webp (hidden files
            skipped); the paths come back sorted.
        list_path: JSON file: a list of paths, {"images": [...]} or {"pairs": [{"image", ...}]};
            relative paths are relative to its folder; file order is kept.
        flag: the command-line flag that gave the folder or file, named in error messages.

    Raises:
        ValueError: neither or both of image_dir and list_path.
        DatasetError: no images, or a malformed list (names the folder or file).
        DatasetNotFoundError: the folder, the list or listed files do not exist.
    """
    if (image_dir is None) == (list_path is None):
        raise ValueError("give exactly one of image_dir and list_path")
    if image_dir is not None:
        where = f"{flag}={image_dir}" if flag else f"image folder {image_dir}"
        found = find_files(image_dir, IMAGE_EXTENSIONS, where, recursive=True)
        if not found:
            raise DatasetError(f"{where} has no images ({', '.join(IMAGE_EXTENSIONS)})")
        return sorted(os.path.abspath(path) for path in found.values())

    where = f"{flag}={list_path}" if flag else f"image list {list_path}"
    spec = read_json_list(list_path, where)
    if isinstance(spec, dict):
        if "images" in spec:
            entries = spec["images"]
        elif "pairs" in spec and isinstance(spec["pairs"], list):
            entries = [
                pair.get("image") if isinstance(pair, dict) else pair for pair in spec["pairs"]
            ]
        else:
            entries = None
    else:
        entries = spec
    if not isinstance(entries, list) or not entries:
        raise DatasetError(
            f'{where}: expected a non-empty JSON list of image paths (["crops/000000.png", '
            '...] or {"images": [...]})'
        )
    for position, entry in enumerate(entries):
        if not isinstance(entry, str) or not entry:
            raise DatasetError(f"{where}: entry {position} must be a path string, got {entry!r}")
    return resolve_listed(entries, list_path, where)


def _check_paths(paths) -> list[str]:
    paths = [os.fspath(path) for path in paths]
    if not paths:
        raise DatasetError("the dataset has no images")
    return paths


def load_image(path) -> tf.Tensor:
    """Reads one image with graph-mode ops: [H, W, 3] uint8.

    A file that starts like no image format fails an assertion naming the path; a damaged
    image fails in the decoder (see named_image_errors).
    """
    path = tf.convert_to_tensor(path, tf.string)
    data = tf.io.read_file(path)
    head = tf.strings.substr(data, 0, 4)
    known = tf.reduce_any([tf.strings.substr(head, 0, len(s)) == s for s in _SIGNATURES])
    is_image = tf.debugging.Assert(
        known, ["image", path, "is not a PNG, JPEG, BMP, GIF or WebP file"]
    )
    with tf.control_dependencies([is_image]):
        data = tf.identity(data)
    return tf.io.decode_image(data, channels=3, expand_animations=False)  # [H, W, 3] uint8


def preprocess_image(image, size: int) -> tf.Tensor:
    """Centre square crop, resize to size x size when needed; [size, size, 3] float32 0-255."""
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    side = tf.minimum(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    image = tf.cast(image[top : top + side, left : left + side], tf.float32)  # [s, s, 3]

    def shrink():
        return tf.image.resize(image, (size, size), method="area")  # [S, S, 3]

    def enlarge():
        enlarged = tf.image.resize(image, (size, size), method="bicubic")  # [S, S, 3]
        return tf.clip_by_value(enlarged, 0.0, 255.0)  # bicubic overshoots at edges

    # Equal size: the pixels stay exact (crops are usually cut at the training size).
    image = tf.cond(
        tf.equal(side, size),
        lambda: tf.identity(image),
        lambda: tf.cond(side > size, shrink, enlarge),
    )
    return tf.ensure_shape(image, (size, size, 3))


def make_image_dataset(
    paths,
    *,
    size: int,
    global_batch_size: int,
    seed: int = 0,
    start_step: int = 0,
    input_context: tf.distribute.InputContext | None = None,
    flip: bool = True,
) -> tf.data.Dataset:
    """Infinite, exactly reproducible stream of per-replica image batches.

    Args:
        paths: image file paths (see image_list).
        size: side of the square training images.
        global_batch_size: B, the batch summed over all replicas.
        seed: seeds the file order and the flips.
        start_step: first batch step to produce (resuming gives the same batches).
        input_context: from tf.distribute (distribute_datasets_from_function); pipeline p of
            P then yields slice [p * B / P, (p + 1) * B / P) of each global batch, in
            per-replica batches of B / num_replicas_in_sync.
        flip: random horizontal flips (probability 1/2).

    Returns:
        Dataset of {"image": [b, size, size, 3] float32 in [-1, 1]}.
    """
    paths = _check_paths(paths)
    size = check_positive("size", size)
    global_batch_size = check_positive("global_batch_size", global_batch_size)
    num_files = len(paths)
    paths = tf.constant(paths)

    def element(file_index, element_seed):
        image = preprocess_image(load_image(paths[file_index]), size)  # [S, S, 3]
        if flip:
            image = mirror_where(coin_flip(element_seed), image)
        return {"image": image / 127.5 - 1.0}

    return training_stream(
        num_files,
        element,
        global_batch_size=global_batch_size,
        seed=seed,
        start_step=start_step,
        input_context=input_context,
    )


def make_image_eval_dataset(paths, *, size: int, batch_size: int) -> tf.data.Dataset:
    """One pass over `paths` in order, without augmentation (e.g. real images for FID).

    Returns:
        Dataset of {"image": [N, size, size, 3] float32 in [-1, 1]}; the last batch may be
        smaller.
    """
    paths = _check_paths(paths)
    size = check_positive("size", size)
    batch_size = check_positive("batch_size", batch_size)

    def element(path):
        return {"image": preprocess_image(load_image(path), size) / 127.5 - 1.0}

    return one_pass(paths, element, batch_size)


def diagnose_images(paths) -> None:
    """Opens every image fully with PIL; raises DatasetError naming the first bad file.

    Slow (decodes everything): run it when the tf.data pipeline fails.
    """
    for path in _check_paths(paths):
        try:
            with Image.open(path) as image:
                image.load()
        except FileNotFoundError:
            raise DatasetNotFoundError(f"image {path} does not exist") from None
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            raise DatasetError(f"cannot read image {path}: {error}") from None


@contextlib.contextmanager
def named_image_errors(paths):
    """Re-raises input-pipeline failures over `paths` as DatasetError naming the bad file.

    Usage: `with named_image_errors(paths): for batch in dataset: ...`.
    """
    try:
        yield
    except tf.errors.InvalidArgumentError as error:
        message = error.message
        if "assertion failed" in message:
            text = message[message.index("assertion failed") :].splitlines()[0]
            raise DatasetError(f"bad training image: {text}") from None
        diagnose_images(paths)  # raises when PIL, too, cannot read a file
        raise
