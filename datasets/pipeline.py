"""tf.data pipelines of (image, label map) pairs, reproducible from any training step.

Batches are dicts: {"image": [N, H, W, 3] float32 in [-1, 1], "label": [N, H, W] int32}.
Labels stay integers; the model one-hot encodes them.

Training order is a pure function of the global element index i: batch step s holds
i in [s * B, (s + 1) * B) (B = global batch), epoch e = i // n holds a permutation of the n
files (`index_shuffle`, seeded by (seed, e)), and the augmentation of element i uses stateless
random ops seeded by (seed, i). So a run resumed at step k sees exactly the batches a run from
step 0 sees from step k on, and input pipeline p of P reads its slice of every global batch.

Preprocessing follows SPADE: resize to load_size (image bicubic, label nearest), one random
crop of crop_size shared by image and label, random horizontal flip of both; evaluation only
resizes.

The plumbing every training stream shares lives here too, for datasets/segmentation.py and
datasets/images.py: argument checks (`check_pairs`, `check_positive`, `check_start_step`), the
element index (`pipeline_slice`, `element_index`) and the streams themselves
(`training_stream`, `one_pass`, `data_options`), label decoding and resizing (`decode_label`,
`resize_label`) and the stateless horizontal flip (`coin_flip`, `mirror_where`).
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf
from PIL import Image

from .pairs import DatasetError, DatasetNotFoundError

# ------------------------------------------------------------------------------------------
# Argument checks
# ------------------------------------------------------------------------------------------


def check_pairs(pairs) -> tuple[list[str], list[str]]:
    """(image paths, label paths) of a non-empty list of (image, label) pairs."""
    if not pairs:
        raise DatasetError("the dataset has no (image, label) pairs")
    image_paths, label_paths = [], []
    for pair in pairs:
        if len(pair) != 2:
            raise DatasetError(f"expected (image_path, label_path) pairs, got {pair!r}")
        image_paths.append(os.fspath(pair[0]))
        label_paths.append(os.fspath(pair[1]))
    return image_paths, label_paths


def check_positive(name: str, value) -> int:
    """`value` as an int; raises ValueError naming `name` unless it is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_start_step(start_step) -> int:
    """`start_step` as an int; raises ValueError unless it is a non-negative integer."""
    integer = isinstance(start_step, (int, np.integer)) and not isinstance(start_step, bool)
    if not integer or start_step < 0:
        raise ValueError(f"start_step must be a non-negative integer, got {start_step!r}")
    return int(start_step)


# ------------------------------------------------------------------------------------------
# Decoding and preprocessing (graph-mode ops)
# ------------------------------------------------------------------------------------------


def decode_label(label_path):
    """Reads a label map with graph-mode ops: [H, W] uint8 raw values.

    A file with more than one channel fails an in-graph assertion naming it: a palette or RGB
    "label" would otherwise be converted to grey levels silently and train on garbage.

    Args:
        label_path: scalar string tensor; a single-channel 8-bit PNG.
    """
    # channels=0 keeps the stored channel count, so that the check below can see it.
    label = tf.io.decode_png(tf.io.read_file(label_path), channels=0)  # [H, W, C] uint8
    one_channel = tf.debugging.Assert(
        tf.equal(tf.shape(label)[2], 1),
        [
            "label map",
            label_path,
            "has",
            tf.shape(label)[2],
            "channels (palette or colour PNG?); it must be single-channel 8-bit (mode L)",
        ],
    )
    with tf.control_dependencies([one_channel]):
        return label[:, :, 0]  # [H, W]


def load_pair(image_path, label_path, num_classes: int) -> dict:
    """Reads one pair with graph-mode ops; in-graph checks name the offending file(s).

    Args:
        image_path: scalar string tensor; any format tf.io.decode_image reads.
        label_path: scalar string tensor; a single-channel 8-bit PNG of class ids.
        num_classes: label values must be < num_classes.

    Returns:
        {"image": [H, W, 3] uint8, "label": [H, W] uint8, "image_path", "label_path"}.
    """
    image_path = tf.convert_to_tensor(image_path, tf.string)
    label_path = tf.convert_to_tensor(label_path, tf.string)
    image = tf.io.decode_image(
        tf.io.read_file(image_path), channels=3, expand_animations=False
    )  # [H, W, 3] uint8
    label = decode_label(label_path)  # [H, W] uint8
    image_size, label_size = tf.shape(image)[:2], tf.shape(label)
    same_size = tf.debugging.Assert(
        tf.reduce_all(tf.equal(image_size, label_size)),
        [
            "image",
            image_path,
            "has size (h, w)",
            image_size,
            "but its label map",
            label_path,
            "has size",
            label_size,
        ],
    )
    largest = tf.cast(tf.reduce_max(label), tf.int32)
    in_range = tf.debugging.Assert(
        largest < num_classes,
        [
            "label map",
            label_path,
            "holds value",
            largest,
            "but num_classes is",
            num_classes,
            "(allowed range 0 ..",
            num_classes - 1,
            ")",
        ],
    )
    with tf.control_dependencies([same_size, in_range]):
        image = tf.identity(image)
        label = tf.identity(label)
    return {"image": image, "label": label, "image_path": image_path, "label_path": label_path}


INVALID_LABEL = -1  # label-map entry of raw values that belong to no class


def apply_label_map(label, label_map, label_path="label map"):
    """Raw label values -> class ids through a [256] table, in graph; unknown values fail
    naming file and value.

    Args:
        label: [H, W] integer raw values (uint8 from the PNG).
        label_map: [256] int table: raw value -> id, INVALID_LABEL (-1) for values that belong
            to no class (datasets.segmentation.make_label_map and friends).
        label_path: scalar string naming the file in the error message.

    Returns:
        [H, W] int32 ids (for segmentation: train ids, 255 = ignore).
    """
    table = tf.convert_to_tensor(label_map, tf.int32)  # [256]
    raw = tf.cast(label, tf.int32)  # [H, W]
    mapped = tf.gather(table, raw)  # [H, W]
    unknown = tf.reduce_max(tf.where(mapped == INVALID_LABEL, raw, -1))
    known = tf.debugging.Assert(
        unknown < 0,
        [
            "label map",
            label_path,
            "holds raw value",
            unknown,
            "which is neither a class of this dataset nor ignored (wrong dataset or label set?)",
        ],
    )
    with tf.control_dependencies([known]):
        return tf.identity(mapped)


def image_size(size, name: str = "size") -> tuple[int, int]:
    """A side (square) or an (h, w) pair -> (h, w) of positive ints; ValueError naming `name`."""
    if isinstance(size, (tuple, list)):
        if len(size) != 2:
            raise ValueError(f"{name} must be an int or an (h, w) pair, got {size!r}")
        return check_positive(f"{name}[0]", size[0]), check_positive(f"{name}[1]", size[1])
    side = check_positive(name, size)
    return side, side


def _resize_image(image, size):
    # antialias=True: the reference resizes with PIL, whose bicubic filter widens when it
    # shrinks; plain bicubic would alias on ADE20K's larger photos.
    image = tf.image.resize(
        tf.cast(image, tf.float32), image_size(size), method="bicubic", antialias=True
    )  # [h, w, 3]
    return tf.clip_by_value(image, 0.0, 255.0)  # bicubic overshoots at edges


def resize_label(label, size):
    """Nearest-neighbour resize of a [H, W] label map to size = (h, w): [h, w] int32."""
    label = tf.image.resize(label[..., None], size, method="nearest")  # [h, w, 1]
    return tf.cast(label[..., 0], tf.int32)  # [h, w]


def coin_flip(seed):
    """A stateless scalar bool, True with probability 1/2 (whether to mirror an element).

    Args:
        seed: [2] int tensor.
    """
    return tf.random.stateless_uniform([], seed=seed) < 0.5


def mirror_where(mirrored, x):
    """x ([H, W] or [H, W, C]) flipped left-right where the scalar bool `mirrored` holds."""
    return tf.where(mirrored, tf.reverse(x, axis=[1]), x)


def preprocess_train(image, label, seed, load_size, crop_size, flip: bool):
    """SPADE training augmentation of one pair; a pure function of its inputs.

    Args:
        image: [H, W, 3] uint8 (or float in [0, 255]).
        label: [H, W] integer class ids.
        seed: [2] int tensor seeding the stateless crop and flip.
        load_size: side (or (h, w)) both are resized to first.
        crop_size: side (or (h, w)) of the random crop, shared by image and label.
        flip: whether to flip both horizontally with probability 1/2.

    Returns:
        image [crop_h, crop_w, 3] float32 in [-1, 1], label [crop_h, crop_w] int32.
    """
    (load_h, load_w), (crop_h, crop_w) = image_size(load_size), image_size(crop_size)
    if crop_h > load_h or crop_w > load_w:
        raise ValueError(f"crop_size={crop_size} must not exceed load_size={load_size}")
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    image = _resize_image(image, (load_h, load_w))  # [Lh, Lw, 3]
    label = resize_label(label, (load_h, load_w))  # [Lh, Lw]
    # One offset for both: independent crops would misalign the pair.
    if load_h - crop_h == load_w - crop_w:  # square crops (and 1:2 without slack) draw so
        offset = tf.random.stateless_uniform(
            [2], seed=crop_seed, minval=0, maxval=load_h - crop_h + 1, dtype=tf.int32
        )
    else:  # a range per axis: integer draws take one scalar maxval, so draw and reduce
        offset = tf.random.stateless_uniform(
            [2], seed=crop_seed, minval=0, maxval=2**30, dtype=tf.int32
        ) % tf.constant([load_h - crop_h + 1, load_w - crop_w + 1], tf.int32)
    image = tf.slice(image, [offset[0], offset[1], 0], [crop_h, crop_w, 3])  # [Ch, Cw, 3]
    label = tf.slice(label, offset, [crop_h, crop_w])  # [Ch, Cw]
    if flip:
        mirrored = coin_flip(flip_seed)
        image, label = mirror_where(mirrored, image), mirror_where(mirrored, label)
    return image / 127.5 - 1.0, label


def preprocess_eval(image, label, size):
    """Evaluation preprocessing: resize only (image bicubic, label nearest).

    Args:
        size: side of the square output, or its (h, w).

    Returns image [h, w, 3] float32 in [-1, 1], label [h, w] int32.
    """
    size = image_size(size)
    image = _resize_image(image, size)  # [h, w, 3]
    return image / 127.5 - 1.0, resize_label(label, size)


# ------------------------------------------------------------------------------------------
# Streams: every training stream is a pure function of (seed, global element index)
# ------------------------------------------------------------------------------------------


def data_options() -> tf.data.Options:
    """Deterministic order, and no automatic sharding (the streams shard themselves)."""
    options = tf.data.Options()
    options.deterministic = True
    # We shard by element index ourselves; tf.distribute must not shard again.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return options


def pipeline_slice(global_batch_size: int, input_context) -> tuple[int, int, int]:
    """(pipeline id, elements per step of this pipeline, per-replica batch).

    Input pipeline p of P (tf.distribute.InputContext) reads the slice [p*B/P, (p+1)*B/P) of
    each global batch of B elements, so the pipelines together read what one pipeline would.
    """
    if input_context is None:
        return 0, global_batch_size, global_batch_size
    num_pipelines = input_context.num_input_pipelines
    replica_batch = input_context.get_per_replica_batch_size(global_batch_size)
    if global_batch_size % num_pipelines:
        raise ValueError(
            f"global_batch_size={global_batch_size} is not divisible by the "
            f"{num_pipelines} input pipelines"
        )
    pipeline_batch = global_batch_size // num_pipelines
    if pipeline_batch % replica_batch:
        raise ValueError(
            f"each input pipeline reads {pipeline_batch} elements per step, not a multiple of "
            f"the per-replica batch {replica_batch}"
        )
    return input_context.input_pipeline_id, pipeline_batch, replica_batch


def element_index(
    k, *, start_step, pipeline_id, pipeline_batch, global_batch_size, num_files, seed
):
    """Where element k of one input pipeline sits in the global training stream.

    Args:
        k: scalar int64 tensor, the count of this pipeline's elements so far.
        start_step: the global step the stream (re)starts at.
        pipeline_id, pipeline_batch: this pipeline's slice of every global batch
            (pipeline_slice).
        global_batch_size: B.
        num_files: n, the files the stream cycles through.
        seed: scalar int64 tensor, the dataset seed.

    Returns:
        (i, file_index): i the element's global index (the key of its augmentation), and the
        file it reads: position i % n of the permutation of epoch i // n, seeded by (seed, epoch).
    """
    step = start_step + k // pipeline_batch
    i = step * global_batch_size + pipeline_id * pipeline_batch + k % pipeline_batch
    # index_shuffle takes a [2] seed (it pads it to the op's [3] internally).
    file_index = tf.random.experimental.index_shuffle(
        i % num_files, seed=tf.stack([seed, i // num_files]), max_index=num_files - 1
    )
    return i, file_index


def training_stream(
    num_files: int, element_fn, *, global_batch_size: int, seed, start_step, input_context
) -> tf.data.Dataset:
    """The infinite, exactly reproducible stream of per-replica batches of one input pipeline.

    Element k of this pipeline is global element i (`element_index`), which reads file
    `file_index` and is augmented with the [2] seed (seed, i): batch step s holds elements
    [s * B, (s + 1) * B), so resuming at a step repeats the batches.

    Args:
        num_files: n, the files the stream cycles through.
        element_fn: (file_index scalar int64, element seed [2] int64) -> dict of tensors.
        global_batch_size: B, the batch summed over all replicas (checked by the caller).
        seed: seeds the file order and the augmentation.
        start_step: first batch step to produce.
        input_context: from tf.distribute, or None (see `pipeline_slice`).

    Returns:
        Dataset of element_fn's dicts batched to the per-replica batch (whole batches only).
    """
    start_step = check_start_step(start_step)
    pipeline_id, pipeline_batch, replica_batch = pipeline_slice(global_batch_size, input_context)
    seed = tf.constant(int(seed), tf.int64)

    def element(k):
        i, file_index = element_index(
            k,
            start_step=start_step,
            pipeline_id=pipeline_id,
            pipeline_batch=pipeline_batch,
            global_batch_size=global_batch_size,
            num_files=num_files,
            seed=seed,
        )
        return element_fn(file_index, tf.stack([seed, i]))

    dataset = tf.data.Dataset.counter(start=0, dtype=tf.int64)
    dataset = dataset.map(element, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(replica_batch, drop_remainder=True)
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(data_options())


def one_pass(slices, element_fn, batch_size: int, *, padding_values=None) -> tf.data.Dataset:
    """One pass over `slices` in order, mapped by element_fn, batched (last batch smaller).

    Args:
        slices: what tf.data.Dataset.from_tensor_slices takes (paths, or a tuple of them).
        element_fn: maps one slice (unpacked when a tuple) to a dict of tensors.
        batch_size: elements per batch.
        padding_values: None batches elements of one shape; a dict pads each batch to its
            largest member with these values (padded_batch).
    """
    dataset = tf.data.Dataset.from_tensor_slices(slices)
    dataset = dataset.map(element_fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if padding_values is None:
        dataset = dataset.batch(batch_size, drop_remainder=False)
    else:
        dataset = dataset.padded_batch(
            batch_size, padding_values=padding_values, drop_remainder=False
        )
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(data_options())


def make_train_dataset(
    pairs,
    *,
    num_classes: int,
    load_size=286,
    crop_size=256,
    global_batch_size: int,
    seed: int = 0,
    start_step: int = 0,
    flip: bool = True,
    input_context: tf.distribute.InputContext | None = None,
    label_map=None,
) -> tf.data.Dataset:
    """Infinite, exactly reproducible stream of augmented per-replica training batches.

    Args:
        pairs: list of (image_path, label_path).
        num_classes: label values must be < num_classes (checked in graph).
        load_size: side (or (h, w)) images and labels are resized to before cropping.
        crop_size: side (or (h, w)) of the training crops; e.g. (128, 256) for Cityscapes 1:2.
        global_batch_size: B, the batch summed over all replicas.
        seed: seeds the file order and the augmentation.
        start_step: first batch step to produce (resuming gives the same batches).
        flip: random horizontal flips.
        input_context: from tf.distribute (distribute_datasets_from_function); pipeline p of
            P then yields slice [p * B / P, (p + 1) * B / P) of each global batch, in
            per-replica batches of B / num_replicas_in_sync.
        label_map: None (files store class ids) or a [256] table raw file value -> class id
            (`apply_label_map`), e.g. Cityscapes labelIds -> train ids with ignored pixels
            on an extra "don't care" class (models.spade.labels).

    Returns:
        Dataset of {"image": [b, crop_h, crop_w, 3] float32, "label": [b, crop_h, crop_w]
        int32}.
    """
    image_paths, label_paths = check_pairs(pairs)
    global_batch_size = check_positive("global_batch_size", global_batch_size)
    num_classes = check_positive("num_classes", num_classes)
    load_size = image_size(load_size, "load_size")
    crop_size = image_size(crop_size, "crop_size")
    if crop_size[0] > load_size[0] or crop_size[1] > load_size[1]:
        raise ValueError(f"crop_size={crop_size} must not exceed load_size={load_size}")
    num_files = len(image_paths)
    image_paths = tf.constant(image_paths)
    label_paths = tf.constant(label_paths)

    def element(file_index, element_seed):
        pair = _load_mapped_pair(
            image_paths[file_index], label_paths[file_index], num_classes, label_map
        )
        image, label = preprocess_train(
            pair["image"], pair["label"], element_seed, load_size, crop_size, flip
        )
        return {"image": image, "label": label}

    return training_stream(
        num_files,
        element,
        global_batch_size=global_batch_size,
        seed=seed,
        start_step=start_step,
        input_context=input_context,
    )


def _load_mapped_pair(image_path, label_path, num_classes: int, label_map) -> dict:
    """load_pair, with the raw label values mapped to class ids when label_map is given."""
    if label_map is None:
        return load_pair(image_path, label_path, num_classes)
    # 256: raw values such as Cityscapes labelIds exceed num_classes; the map checks them.
    pair = load_pair(image_path, label_path, 256)
    pair["label"] = apply_label_map(pair["label"], label_map, label_path)  # [H, W] int32
    in_range = tf.debugging.Assert(
        tf.reduce_max(pair["label"]) < num_classes,
        ["label map", label_path, "maps to a class id >= num_classes", num_classes],
    )
    with tf.control_dependencies([in_range]):
        pair["label"] = tf.identity(pair["label"])
    return pair


def make_eval_dataset(
    pairs, *, num_classes: int, size=256, batch_size: int, label_map=None
) -> tf.data.Dataset:
    """One pass over `pairs` in order, resized to size (a side or (h, w)), without augmentation.

    Args:
        label_map: None or a [256] raw value -> class id table (see make_train_dataset).

    Returns:
        Dataset of {"image": [N, h, w, 3] float32 in [-1, 1], "label": [N, h, w] int32,
        "label_path": [N] string}; the last batch may be smaller.
    """
    image_paths, label_paths = check_pairs(pairs)
    batch_size = check_positive("batch_size", batch_size)
    num_classes = check_positive("num_classes", num_classes)
    size = image_size(size)

    def element(image_path, label_path):
        pair = _load_mapped_pair(image_path, label_path, num_classes, label_map)
        image, label = preprocess_eval(pair["image"], pair["label"], size)
        return {"image": image, "label": label, "label_path": label_path}

    return one_pass((image_paths, label_paths), element, batch_size)


def _open(path: str, what: str) -> Image.Image:
    if not os.path.isfile(path):
        raise DatasetNotFoundError(f"{what} {path} does not exist")
    try:
        image = Image.open(path)
        image.load()
        return image
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DatasetError(f"cannot read {what} {path}: {error}") from None


def load_image(path: str) -> np.ndarray:
    """Reads an image file as [H, W, 3] uint8 RGB (alpha dropped, grey expanded)."""
    return np.asarray(_open(path, "image").convert("RGB"), dtype=np.uint8)


def load_label_map(path: str, num_classes: int | None = None) -> np.ndarray:
    """Reads a label map as [H, W] uint8 class ids.

    Accepts 8-bit grey (mode L) and palette PNGs (mode P, read as palette indices, which is
    what painting tools store); other modes raise DatasetError naming the file. With
    num_classes, values >= num_classes raise too.
    """
    label = _open(path, "label map")
    if label.mode in ("I", "I;16", "I;16B", "I;16L"):
        values = np.asarray(label)
        if values.size and (values.min() < 0 or values.max() > 255):
            raise DatasetError(
                f"label map {path} holds values outside 0..255 (mode {label.mode}); "
                "label maps are 8-bit"
            )
        values = values.astype(np.uint8)
    elif label.mode in ("L", "P"):
        values = np.asarray(label, dtype=np.uint8)
    else:
        raise DatasetError(
            f"label map {path} has mode {label.mode!r}: expected a single-channel 8-bit map "
            "of class ids (mode L)"
        )
    if num_classes is not None and values.size and int(values.max()) >= num_classes:
        raise DatasetError(
            f"label map {path} holds value {int(values.max())}, outside the allowed range "
            f"[0, {num_classes - 1}] for num_classes={num_classes}"
        )
    return values
