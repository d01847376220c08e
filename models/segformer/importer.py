"""Hugging Face SegFormer / MiT checkpoints -> our SegFormer (and back, for round trips).

Sources (transformers' SegformerForSemanticSegmentation / SegformerForImageClassification /
SegformerModel state dicts; names as in transformers' modeling_segformer.py, v4.x):
    nvidia/segformer-b{0..5}-finetuned-ade-512-512 / -640-640   150 classes
    nvidia/segformer-b{0..5}-finetuned-cityscapes-1024-1024      19 classes
    nvidia/mit-b{0..5}                                           encoder only (ImageNet)
read from model.safetensors or pytorch_model.bin (torch zip or legacy pickle, no torch needed).

Name mapping (E = decoder_hidden_size, i stage, j block; "segformer." prefix on the encoder):
    encoder.patch_embeddings.i.proj.{weight,bias}      patch_embed_i.proj kernel/bias
    encoder.patch_embeddings.i.layer_norm.*            patch_embed_i.norm gamma/beta
    encoder.block.i.j.layer_norm_{1,2}.*               block_i_j.norm{1,2}
    encoder.block.i.j.attention.self.query.*           block_i_j.attn.q
    encoder.block.i.j.attention.self.{key,value}.*     block_i_j.attn.kv (keys, then values)
    encoder.block.i.j.attention.self.sr.*              block_i_j.attn.sr (sr_ratio > 1)
    encoder.block.i.j.attention.self.layer_norm.*      block_i_j.attn.sr_norm (sr_ratio > 1)
    encoder.block.i.j.attention.output.dense.*         block_i_j.attn.proj
    encoder.block.i.j.mlp.dense{1,2}.*                 block_i_j.mlp.fc{1,2}
    encoder.block.i.j.mlp.dwconv.dwconv.*              block_i_j.mlp.dwconv
    encoder.layer_norm.i.*                             norm_i
    decode_head.linear_c.i.proj.*                      head.linear_c{i+1}
    decode_head.linear_fuse.weight                     head.fuse_conv (no bias)
    decode_head.batch_norm.{weight,bias,running_mean,running_var}   head.fuse_bn
    decode_head.classifier.*                           head.classifier
Layouts: Linear [out, in] -> Dense [in, out]; Conv2d [out, in, kh, kw] -> [kh, kw, in, out];
depthwise [C, 1, 3, 3] -> [3, 3, C, 1]. batch_norm.num_batches_tracked and an ImageNet
classifier (classifier.*, of mit-b*) are not used.

Example:
    model, info = load_hf_segformer("segformer-b0-ade")     # a folder with config.json
    logits = model(preprocess(images))
"""

import json
import os

import numpy as np

from core import tensor_files
from core.errors import UserError
from core.settings import parse_settings
from models.segformer import networks as segformer

ENCODER_PREFIX = "segformer."
HEAD_PREFIX = "decode_head."
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# Present in the published files but not part of our network.
IGNORED = ("num_batches_tracked",)
IMAGENET_CLASSIFIER = ("classifier.weight", "classifier.bias")


class SegFormerImportError(UserError):
    """A Hugging Face checkpoint cannot be imported; the message names the file and keys."""


def _linear(dense, name):
    return [
        (
            dense.kernel,
            {f"{name}.weight": (dense.kernel.shape[1], dense.kernel.shape[0])},
            "linear",
        ),
        (dense.bias, {f"{name}.bias": tuple(dense.bias.shape)}, "vector"),
    ]


def _conv(conv, name, bias=True):
    kh, kw, cin, cout = conv.kernel.shape
    entries = [(conv.kernel, {f"{name}.weight": (cout, cin, kh, kw)}, "conv")]
    if bias:
        entries.append((conv.bias, {f"{name}.bias": (cout,)}, "vector"))
    return entries


def _norm(norm, name):
    return [
        (norm.gamma, {f"{name}.weight": tuple(norm.gamma.shape)}, "vector"),
        (norm.beta, {f"{name}.bias": tuple(norm.beta.shape)}, "vector"),
    ]


def weight_mapping(model, include_head=True):
    """[(our variable, {hf name: hf shape}, layout)] of a built SegFormer, in a fixed order.

    Every entry maps one variable to one HF tensor, except the attention's kv Dense, which
    maps to the two tensors key and value.
    """
    if not model.built:
        model.build((None, None, None, 3))
    entries = []
    encoder = model.encoder
    p = ENCODER_PREFIX + "encoder."
    for stage in range(4):
        embed = encoder.patch_embeds[stage]
        entries += _conv(embed.proj, f"{p}patch_embeddings.{stage}.proj")
        entries += _norm(embed.norm, f"{p}patch_embeddings.{stage}.layer_norm")
        for j, block in enumerate(encoder.stage_blocks(stage)):
            b = f"{p}block.{stage}.{j}"
            attn = block.attn
            entries += _norm(block.norm1, f"{b}.layer_norm_1")
            entries += _linear(attn.q, f"{b}.attention.self.query")
            dim = attn.dim
            entries.append(
                (
                    attn.kv.kernel,
                    {
                        f"{b}.attention.self.key.weight": (dim, attn.kv.kernel.shape[0]),
                        f"{b}.attention.self.value.weight": (dim, attn.kv.kernel.shape[0]),
                    },
                    "kv",
                )
            )
            entries.append(
                (
                    attn.kv.bias,
                    {
                        f"{b}.attention.self.key.bias": (dim,),
                        f"{b}.attention.self.value.bias": (dim,),
                    },
                    "kv",
                )
            )
            if attn.sr is not None:
                entries += _conv(attn.sr, f"{b}.attention.self.sr")
                entries += _norm(attn.sr_norm, f"{b}.attention.self.layer_norm")
            entries += _linear(attn.proj, f"{b}.attention.output.dense")
            entries += _norm(block.norm2, f"{b}.layer_norm_2")
            mlp = block.mlp
            entries += _linear(mlp.fc1, f"{b}.mlp.dense1")
            kh, kw, channels, _ = mlp.dwconv.kernel.shape
            entries.append(
                (
                    mlp.dwconv.kernel,
                    {f"{b}.mlp.dwconv.dwconv.weight": (channels, 1, kh, kw)},
                    "depthwise",
                )
            )
            entries.append(
                (mlp.dwconv.bias, {f"{b}.mlp.dwconv.dwconv.bias": (channels,)}, "vector")
            )
            entries += _linear(mlp.fc2, f"{b}.mlp.dense2")
        entries += _norm(encoder.stage_norms[stage], f"{p}layer_norm.{stage}")
    if include_head:
        head = model.head
        for i, linear in enumerate(head.linear_c):
            entries += _linear(linear, f"{HEAD_PREFIX}linear_c.{i}.proj")
        entries += _conv(head.fuse_conv, f"{HEAD_PREFIX}linear_fuse", bias=False)
        bn = head.fuse_bn
        channels = tuple(bn.gamma.shape)
        entries += [
            (bn.gamma, {f"{HEAD_PREFIX}batch_norm.weight": channels}, "vector"),
            (bn.beta, {f"{HEAD_PREFIX}batch_norm.bias": channels}, "vector"),
            (bn.moving_mean, {f"{HEAD_PREFIX}batch_norm.running_mean": channels}, "vector"),
            (bn.moving_variance, {f"{HEAD_PREFIX}batch_norm.running_var": channels}, "vector"),
        ]
        entries += _conv(head.classifier, f"{HEAD_PREFIX}classifier")
    return entries


def from_torch_layout(tensors, layout):
    """Our value from the HF tensors of one mapping entry (a list, in the mapping's order)."""
    if layout == "kv":  # keys then values, each Linear [C, C_in] (or a bias [C])
        if tensors[0].ndim == 2:
            return np.concatenate([t.T for t in tensors], axis=1)  # [C_in, 2C]
        return np.concatenate(tensors)  # [2C]
    (tensor,) = tensors
    if layout == "linear":  # [out, in] -> [in, out]
        return tensor.T
    if layout == "conv":  # [out, in, kh, kw] -> [kh, kw, in, out]
        return tensor.transpose(2, 3, 1, 0)
    if layout == "depthwise":  # [C, 1, kh, kw] -> [kh, kw, C, 1]
        return tensor.transpose(2, 3, 0, 1)
    return tensor


def to_torch_layout(value, names, layout):
    """{hf name: tensor} of our `value` (the inverse of from_torch_layout)."""
    if layout == "kv":
        halves = np.split(value, 2, axis=-1)  # keys, values
        return {n: (h.T if h.ndim == 2 else h) for n, h in zip(names, halves)}
    (name,) = names
    if layout == "linear":
        return {name: value.T}
    if layout == "conv":
        return {name: value.transpose(3, 2, 0, 1)}
    if layout == "depthwise":
        return {name: value.transpose(2, 3, 0, 1)}
    return {name: value}


def export_hf_state_dict(model, include_head=True):
    """{hf name: float32 array} of our SegFormer: what transformers' state_dict() holds."""
    state = {}
    for variable, names, layout in weight_mapping(model, include_head):
        state.update(to_torch_layout(np.asarray(variable.numpy()), list(names), layout))
    return state


def assign_hf_state_dict(model, tensors, where, include_head=True):
    """Copies HF tensors into our SegFormer after checking every name and shape.

    Raises:
        SegFormerImportError: names missing / extra / mis-shaped, all listed.
    """
    mapping = weight_mapping(model, include_head)
    expected = {name: shape for _, names, _ in mapping for name, shape in names.items()}
    ignore = IGNORED + (() if include_head else ("decode_head",))
    present = {n: t for n, t in tensors.items() if not n.startswith(IMAGENET_CLASSIFIER)}
    if not include_head:
        present = {n: t for n, t in present.items() if not n.startswith(HEAD_PREFIX)}
    try:
        tensor_files.check_names_and_shapes(present, expected, where, ignore=ignore)
    except tensor_files.TensorFileError as error:
        raise SegFormerImportError(str(error)) from None
    for variable, names, layout in mapping:
        value = from_torch_layout([np.asarray(tensors[n], np.float32) for n in names], layout)
        variable.assign(value.astype(variable.dtype))


def _normalise_names(tensors):
    """Accepts a bare SegformerModel (no "segformer." prefix) as well."""
    if any(n.startswith("encoder.") for n in tensors) and not any(
        n.startswith(ENCODER_PREFIX) for n in tensors
    ):
        return {
            (ENCODER_PREFIX + n if n.startswith("encoder.") else n): t for n, t in tensors.items()
        }
    return tensors


def infer_architecture(tensors, where):
    """(variant, num_classes or None, head_embed_dim or None) from the tensors' names and
    shapes (the file alone decides; config.json is only read for class names)."""
    p = ENCODER_PREFIX + "encoder."
    try:
        dims = tuple(
            int(tensors[f"{p}patch_embeddings.{i}.proj.weight"].shape[0]) for i in range(4)
        )
    except KeyError as error:
        raise SegFormerImportError(
            f"{where} is not a SegFormer / MiT checkpoint: no {error.args[0]}"
        ) from None
    depths = tuple(
        len({n.split(".")[4] for n in tensors if n.startswith(f"{p}block.{i}.")}) for i in range(4)
    )
    variant = next(
        (
            name
            for name, spec in segformer.MIT_VARIANTS.items()
            if tuple(spec["dims"]) == dims and tuple(spec["depths"]) == depths
        ),
        None,
    )
    if variant is None:
        raise SegFormerImportError(
            f"{where}: stage widths {dims} and depths {depths} are none of the MiT variants "
            f"{list(segformer.MIT_VARIANTS)}"
        )
    classifier = tensors.get(f"{HEAD_PREFIX}classifier.weight")
    if classifier is None:
        return variant, None, None
    return variant, int(classifier.shape[0]), int(classifier.shape[1])


def find_weight_file(checkpoint):
    """The weight file of a HF model folder (model.safetensors, else pytorch_model.bin), or
    `checkpoint` itself when it is a file."""
    if os.path.isfile(checkpoint):
        return checkpoint
    if not os.path.isdir(checkpoint):
        raise SegFormerImportError(f"--checkpoint={checkpoint}: no such file or folder")
    for name in WEIGHT_FILES:
        path = os.path.join(checkpoint, name)
        if os.path.isfile(path):
            return path
    raise SegFormerImportError(
        f"--checkpoint={checkpoint} holds none of {', '.join(WEIGHT_FILES)} (a Hugging Face "
        "model folder, e.g. `huggingface-cli download nvidia/mit-b0 --local-dir DIR`)"
    )


def read_hf_config(checkpoint):
    """config.json beside the weights as a dict ({} when absent)."""
    folder = checkpoint if os.path.isdir(checkpoint) else os.path.dirname(checkpoint)
    path = os.path.join(folder, "config.json")
    if not os.path.isfile(path):
        return {}
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        raise SegFormerImportError(f"{path} cannot be read: {error}") from None


def read_hf_tensors(checkpoint):
    """(weight file, {name: array}) of a HF folder or weight file."""
    path = find_weight_file(checkpoint)
    try:
        tensors = tensor_files.read_tensor_file(path)
    except tensor_files.TensorFileError as error:
        raise SegFormerImportError(str(error)) from None
    if not isinstance(tensors, dict):
        raise SegFormerImportError(f"{path} holds a {type(tensors).__name__}, not a state dict")
    if "state_dict" in tensors and isinstance(tensors["state_dict"], dict):
        tensors = tensors["state_dict"]
    return path, _normalise_names(tensor_files.flatten_state_dict(tensors))


def _check_classes(where, encoder_only, file_classes, num_classes):
    if encoder_only and num_classes is None:
        raise SegFormerImportError(
            f"{where} holds an encoder only (MiT); give --num_classes (or a --dataset with a "
            "label set) for the fresh decode head"
        )
    if not encoder_only and num_classes is not None and num_classes != file_classes:
        raise SegFormerImportError(
            f"--num_classes={num_classes} but {where} has a {file_classes}-class head"
        )
    return file_classes or num_classes


def load_hf_segformer(checkpoint, num_classes=None, architecture="original"):
    """Our SegFormer holding a HF checkpoint's weights.

    Args:
        checkpoint: a HF model folder or its weight file.
        num_classes: classes of a fresh head for an encoder-only (mit-b*) checkpoint; for a
            segmenter it must equal the checkpoint's (or be None).
        architecture: a key of networks.ARCHITECTURES ("original" reproduces transformers).

    Returns:
        (model, info) with info = {"variant", "num_classes", "encoder_only", "weight_file",
        "id2label"}.
    """
    path, tensors = read_hf_tensors(checkpoint)
    where = f"--checkpoint={path}"
    variant, file_classes, embed_dim = infer_architecture(tensors, where)
    encoder_only = file_classes is None
    classes = _check_classes(where, encoder_only, file_classes, num_classes)
    model = segformer.SegFormer(
        variant,
        num_classes=classes,
        head_embed_dim=embed_dim,
        **segformer.ARCHITECTURES[architecture],
    )
    model.build((None, None, None, 3))
    assign_hf_state_dict(model, tensors, where, include_head=not encoder_only)
    config = read_hf_config(checkpoint)
    return model, {
        "variant": variant,
        "num_classes": classes,
        "encoder_only": encoder_only,
        "weight_file": path,
        "id2label": None if encoder_only else config.get("id2label"),
    }


# ==============================================================================================
# A run directory of an imported checkpoint
# ==============================================================================================

# Class counts of the published segmenters -> our built-in dataset of the same classes.
DATASET_OF_CLASSES = {150: "ade20k", 19: "cityscapes"}


def _label_set_of_id2label(id2label, num_classes, name):
    """A label set JSON (semantic_labels format) of HF's id2label, with a fixed palette."""
    names = [str((id2label or {}).get(str(i), f"class_{i}")) for i in range(num_classes)]
    rng = np.random.default_rng(0)  # a fixed palette: the same file for the same checkpoint
    colors = rng.integers(0, 256, size=(num_classes, 3))
    return {
        "name": name,
        "classes": [
            {"id": i, "name": n, "color": [int(c) for c in colors[i]]} for i, n in enumerate(names)
        ],
    }


def import_hf_run(
    checkpoint,
    output_dir,
    *,
    dataset=None,
    data_root=None,
    image_dir=None,
    label_dir=None,
    num_classes=None,
    settings=None,
    overwrite=False,
    log=print,
):
    """Writes a SegFormer run directory holding a HF checkpoint's weights.

    The run (config.json with architecture="original", label_set.json, checkpoints/ckpt-0 at
    step 0) is what segment.py / evaluate.py --checkpoint_dir read, and what train.py resumes,
    i.e. fine-tunes, when given the same --checkpoint_dir and the run's settings.

    Args:
        checkpoint: a HF model folder (config.json + model.safetensors / pytorch_model.bin) or
            the weight file.
        output_dir: the run directory to create.
        dataset: the run's --dataset; default: ade20k for 150 classes, cityscapes for 19, else
            folders (with the checkpoint's id2label as the label set).
        data_root: the run's --data_root (where the dataset lies, for fine-tuning / evaluation).
        image_dir, label_dir: the run's folders of --dataset=folders (default
            <data_root>/images and <data_root>/labels; only fine-tuning reads them).
        num_classes: classes of the fresh head of an encoder-only (mit-b*) checkpoint.
        settings: other fields of the run's SegFormerConfig, {name: value or its string}
            (the values train.py will be given when it fine-tunes the run, e.g. crop_size).
        overwrite: replace an existing output_dir.

    Returns:
        output_dir.
    """
    import tensorflow as tf

    from core import io as core_io
    from models.segformer.config import PRESETS
    from models.segformer.labels import LABEL_SET_FILE, resolve_labels
    from models.segformer.trainer import SegFormerTrainer
    from training import run_dir as run_dir_lib

    if os.path.exists(output_dir) and os.listdir(output_dir) and not overwrite:
        raise SegFormerImportError(
            f"--output_dir={output_dir} exists and is not empty; give --overwrite to replace it"
        )
    path, tensors = read_hf_tensors(checkpoint)
    where = f"--checkpoint={path}"
    variant, file_classes, embed_dim = infer_architecture(tensors, where)
    encoder_only = file_classes is None
    if dataset is None:
        classes = file_classes or num_classes
        dataset = DATASET_OF_CLASSES.get(classes, "folders")
    builtin = dataset not in ("folders", "json")
    if encoder_only and num_classes is None and builtin:
        from datasets import segmentation as seg_data

        num_classes = seg_data.dataset_label_map(dataset)[1]
    classes = _check_classes(where, encoder_only, file_classes, num_classes)
    preset = PRESETS["tiny" if variant == "tiny" else f"segformer_{variant}"]
    final_dir = os.path.abspath(output_dir)
    changes = dict(
        checkpoint_dir=final_dir,
        architecture="original",
        dataset=dataset,
        num_classes=None if builtin else classes,
    )
    if data_root:
        changes["data_root"] = data_root
    if dataset == "folders":
        root = data_root or preset.data_root
        changes["image_dir"] = image_dir or os.path.join(root, "images")
        changes["label_dir"] = label_dir or os.path.join(root, "labels")
    id2label = None if encoder_only else read_hf_config(checkpoint).get("id2label")
    label_json = None
    if not builtin:
        label_json = _label_set_of_id2label(id2label, classes, os.path.basename(final_dir))
        changes["semantic_label_path"] = os.path.join(final_dir, LABEL_SET_FILE)
    typed = parse_settings(type(preset), settings or {}, fixed=(*changes, "model", "variant"))
    config = preset.replace(**changes, **typed)
    with core_io.atomic_directory(final_dir) as tmp:
        if label_json is not None:
            run_dir_lib.write_json_atomic(os.path.join(tmp, LABEL_SET_FILE), label_json)
            run_classes = classes
        else:
            _, _, run_classes = resolve_labels(config)
        if run_classes != classes:
            raise SegFormerImportError(
                f"{where} has {classes} classes but --dataset={dataset} has {run_classes}"
            )
        # A training trainer: the checkpoint then holds the (fresh) AdamW states too, as the
        # training loop's restore expects of a run it resumes (fine-tunes).
        trainer = SegFormerTrainer.from_run_config(
            config, classes, total_steps=max(1, config.max_steps)
        )
        model = trainer.segformer
        if embed_dim is not None and embed_dim != model.head_embed_dim:
            raise SegFormerImportError(
                f"{where}: decode head width {embed_dim}, variant {variant} uses "
                f"{model.head_embed_dim}"
            )
        assign_hf_state_dict(model, tensors, where, include_head=not encoder_only)
        run_dir_lib.write_json_atomic(os.path.join(tmp, run_dir_lib.CONFIG_FILE), config.to_dict())
        run_dir_lib.write_json_atomic(
            os.path.join(tmp, "imported_from.json"),
            {
                "source": "huggingface transformers SegFormer",
                "weight_file": os.path.abspath(path),
                "variant": variant,
                "num_classes": classes,
                "encoder_only": encoder_only,
                "fresh_head": encoder_only,
            },
        )
        manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(**trainer.checkpoint_objects()),
            os.path.join(tmp, "checkpoints"),
            max_to_keep=1,
        )
        manager.save(checkpoint_number=0)
    what = "encoder (fresh decode head)" if encoder_only else "segmenter"
    log(f"Imported the {variant} {what} of {path} ({classes} classes) into {final_dir}")
    return final_dir
