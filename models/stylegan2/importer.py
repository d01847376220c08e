"""rosinality stylegan2-pytorch checkpoints -> our StyleGAN2 generator / EMA / discriminator.

Source: the `{"g", "d", "g_ema", "g_optim", "d_optim", "args"}` .pt files of rosinality's
stylegan2-pytorch train.py (model.py's Generator / Discriminator state dicts), which Synthesis in
Style trains; torch zip or legacy format, read without torch (core/tensor_files.py). The
optimizer states are not imported (fine-tuning starts fresh Adam moments).

Generator (L = log2(resolution); j = 0 .. 2 (L - 2) - 1; k = 0 .. 2 (L - 2)):
    style.{i+1}.{weight,bias}              mapping.dense{i} (EqualLinear, i = 0 .. 7)
    input.input [1, C, 4, 4]               synthesis.const [1, 4, 4, C]
    conv1.* / convs.{j}.*                  synthesis.convs[0] / convs[j + 1] (StyledConv):
        .conv.weight [1, out, in, 3, 3]        conv.kernel [3, 3, in, out]
        .conv.modulation.{weight,bias}         conv.style (EqualLinear, bias init 1)
        .noise.weight [1]                      noise_strength []
        .activate.bias [out]                   bias
    to_rgb1.* / to_rgbs.{j//2}.*           synthesis.to_rgbs[0] / to_rgbs[j//2 + 1]:
        .conv.weight [1, 3, in, 1, 1], .conv.modulation.*, .bias [1, 3, 1, 1]
    noises.noise_{k} [1, 1, R, R]          convs[k].noise_const [1, R, R, 1] (fixed noise)
    (buffers convs.{j}.conv.blur.kernel and to_rgbs.{j}.upsample.kernel are the fixed
    [1, 3, 3, 1] FIR filters: not variables here)
Discriminator (b = 1 .. L - 2, from the finest block):
    convs.0.0.weight, convs.0.1.bias       from_rgb
    convs.{b}.conv1.0.weight, .conv1.1.bias        blocks[b - 1].conv0
    convs.{b}.conv2.1.weight, .conv2.2.bias        blocks[b - 1].conv1 (blur, stride 2)
    convs.{b}.skip.1.weight                        blocks[b - 1].skip
    final_conv.0.weight, final_conv.1.bias         final_conv (stddev channel last)
    final_linear.0.{weight,bias}           final_dense (input flattened C, H, W -> H, W, C)
    final_linear.1.{weight,bias}           out
Equalised learning rate is the same in both: weights stored unscaled (EqualLinear's divided by
lr_mul), biases used times lr_mul, so values map one to one up to layout.

Example:
    generator, ema, discriminator = load_rosinality("550000.pt")
"""

import os

import numpy as np

from core import tensor_files
from core.errors import UserError
from core.settings import parse_settings

BLUR_BUFFERS = ("blur.kernel", "upsample.kernel")
# Blur modules inside the discriminator's Sequentials hold their kernel as a buffer too.
DISCRIMINATOR_BUFFERS = ("conv2.0.kernel", "skip.0.kernel")


class StyleGAN2ImportError(UserError):
    """A rosinality checkpoint cannot be imported; the message names the file and keys."""


def _linear(layer, name):
    units_in, units_out = layer.kernel.shape
    entries = [(layer.kernel, f"{name}.weight", (units_out, units_in), "linear")]
    if layer.bias is not None:
        entries.append((layer.bias, f"{name}.bias", (units_out,), "vector"))
    return entries


def _modconv(conv, name):
    k, _, cin, cout = conv.kernel.shape
    return [
        (conv.kernel, f"{name}.weight", (1, cout, cin, k, k), "modconv"),
        *_linear(conv.style, f"{name}.modulation"),
    ]


def generator_mapping(generator):
    """[(variable, rosinality name, its shape, layout)] of a StyleGAN2Generator."""
    entries = []
    for i, dense in enumerate(generator.mapping.dense_layers):
        entries += _linear(dense, f"style.{i + 1}")
    synthesis = generator.synthesis
    c = synthesis.input_channels
    entries.append((synthesis.const, "input.input", (1, c, 4, 4), "const"))
    for index, conv in enumerate(synthesis.convs):
        name = "conv1" if index == 0 else f"convs.{index - 1}"
        entries += _modconv(conv.conv, f"{name}.conv")
        entries.append((conv.noise_strength, f"{name}.noise.weight", (1,), "scalar"))
        entries.append((conv.bias, f"{name}.activate.bias", (conv.filters,), "vector"))
        r = conv.resolution
        entries.append((conv.noise_const, f"noises.noise_{index}", (1, 1, r, r), "noise"))
    for index, to_rgb in enumerate(synthesis.to_rgbs):
        name = "to_rgb1" if index == 0 else f"to_rgbs.{index - 1}"
        entries += _modconv(to_rgb.conv, f"{name}.conv")
        channels = to_rgb.channels
        entries.append((to_rgb.bias, f"{name}.bias", (1, channels, 1, 1), "rgb_bias"))
    return entries


def _conv(conv, weight_name, bias_name):
    k, _, cin, cout = conv.kernel.shape
    entries = [(conv.kernel, weight_name, (cout, cin, k, k), "conv")]
    if conv.bias is not None:
        entries.append((conv.bias, bias_name, (cout,), "vector"))
    return entries


def discriminator_mapping(discriminator):
    """[(variable, rosinality name, its shape, layout)] of a StyleGAN2Discriminator."""
    entries = _conv(discriminator.from_rgb, "convs.0.0.weight", "convs.0.1.bias")
    for b, block in enumerate(discriminator.blocks, start=1):
        p = f"convs.{b}"
        entries += _conv(block.conv0, f"{p}.conv1.0.weight", f"{p}.conv1.1.bias")
        entries += _conv(block.conv1, f"{p}.conv2.1.weight", f"{p}.conv2.2.bias")
        entries += _conv(block.skip, f"{p}.skip.1.weight", None)
    entries += _conv(discriminator.final_conv, "final_conv.0.weight", "final_conv.1.bias")
    dense = discriminator.final_dense
    units_in, units_out = dense.kernel.shape
    entries.append((dense.kernel, "final_linear.0.weight", (units_out, units_in), "nchw_linear"))
    entries.append((dense.bias, "final_linear.0.bias", (units_out,), "vector"))
    entries += _linear(discriminator.out, "final_linear.1")
    return entries


def from_torch_layout(tensor, layout, shape):
    """Our value of one rosinality tensor; `shape` is our variable's shape."""
    if layout == "linear":  # [out, in] -> [in, out]
        return tensor.T
    if layout == "modconv":  # [1, out, in, k, k] -> [k, k, in, out]
        return tensor[0].transpose(2, 3, 1, 0)
    if layout == "conv":  # [out, in, k, k] -> [k, k, in, out]
        return tensor.transpose(2, 3, 1, 0)
    if layout in ("const", "noise"):  # [1, C, H, W] -> [1, H, W, C]
        return tensor.transpose(0, 2, 3, 1)
    if layout in ("scalar", "rgb_bias"):
        return tensor.reshape(shape)
    if layout == "nchw_linear":  # [out, C*4*4 in C, H, W order] -> [H*W*C in H, W, C order, out]
        out = tensor.shape[0]
        channels = tensor.shape[1] // 16
        return tensor.reshape(out, channels, 4, 4).transpose(2, 3, 1, 0).reshape(-1, out)
    return tensor


def to_torch_layout(value, layout, torch_shape):
    """The rosinality tensor of our `value` (the inverse of from_torch_layout)."""
    if layout == "linear":
        return value.T
    if layout == "modconv":
        return value.transpose(3, 2, 0, 1)[None]
    if layout == "conv":
        return value.transpose(3, 2, 0, 1)
    if layout in ("const", "noise"):
        return value.transpose(0, 3, 1, 2)
    if layout in ("scalar", "rgb_bias"):
        return value.reshape(torch_shape)
    if layout == "nchw_linear":
        out = value.shape[1]
        channels = value.shape[0] // 16
        return value.reshape(4, 4, channels, out).transpose(3, 2, 0, 1).reshape(out, -1)
    return value


def export_state_dict(entries):
    """{rosinality name: float32 array} of a mapping (tests; export to rosinality's format)."""
    return {
        name: np.ascontiguousarray(to_torch_layout(np.asarray(var.numpy()), layout, shape))
        for var, name, shape, layout in entries
    }


def assign_state_dict(entries, tensors, where, ignore=()):
    """Checks every name and shape, then copies the tensors into the mapped variables."""
    expected = {name: shape for _, name, shape, _ in entries}
    try:
        tensor_files.check_names_and_shapes(tensors, expected, where, ignore=ignore)
    except tensor_files.TensorFileError as error:
        raise StyleGAN2ImportError(str(error)) from None
    for variable, name, _, layout in entries:
        value = from_torch_layout(np.asarray(tensors[name], np.float32), layout, variable.shape)
        variable.assign(value.astype(variable.dtype))


def _section(checkpoint, key, path):
    if key not in checkpoint or not isinstance(checkpoint[key], dict):
        raise StyleGAN2ImportError(
            f"--checkpoint={path} has no {key!r} state dict (keys: {sorted(checkpoint)}); "
            "expected rosinality's {'g', 'd', 'g_ema', ...}"
        )
    return tensor_files.flatten_state_dict(checkpoint[key])


def infer_architecture(g_ema, where):
    """{resolution, z_dim, w_dim, mapping_layers, channel_multiplier} of a g_ema state dict."""
    try:
        first = g_ema["style.1.weight"]
        widths = {
            int(name.split(".")[1]) for name in g_ema if name.startswith("convs.")
        }  # 0 .. 2 (L - 2) - 1
    except KeyError as error:
        raise StyleGAN2ImportError(f"{where}: not a rosinality generator (no {error})") from None
    mapping_layers = len({n.split(".")[1] for n in g_ema if n.startswith("style.")})
    resolution = 2 ** (2 + (max(widths) + 1) // 2) if widths else 4
    # Widths: 512 * width up to 32 px, then 16384 * cm / R * width: the 4 px conv tells the
    # width scale (1 for published networks), the 64 px block (convs 6, 7) the multiplier.
    width = g_ema["conv1.conv.weight"].shape[1] / 512.0
    channel_multiplier = 2
    if resolution >= 64:
        c64 = g_ema["convs.6.conv.weight"].shape[1]
        channel_multiplier = max(1, int(round(c64 / (256 * width))))
    return {
        "resolution": resolution,
        "z_dim": int(first.shape[1]),
        "w_dim": int(first.shape[0]),
        "mapping_layers": mapping_layers,
        "channel_multiplier": channel_multiplier,
        "width": width,
    }


def read_rosinality(path):
    """(g, d, g_ema state dicts, args dict or {}) of a rosinality .pt file."""
    try:
        checkpoint = tensor_files.read_torch_checkpoint(path)
    except tensor_files.TensorFileError as error:
        raise StyleGAN2ImportError(str(error)) from None
    if not isinstance(checkpoint, dict):
        raise StyleGAN2ImportError(f"--checkpoint={path} holds a {type(checkpoint).__name__}")
    g_ema = _section(checkpoint, "g_ema", path)
    g = tensor_files.flatten_state_dict(checkpoint.get("g") or {}) or None
    d = tensor_files.flatten_state_dict(checkpoint.get("d") or {}) or None
    args = checkpoint.get("args")
    args = vars(args) if hasattr(args, "__dict__") else (args if isinstance(args, dict) else {})
    return g, d, g_ema, args


def load_into(trainer, path, log=print):
    """Copies a rosinality checkpoint into a StyleGAN2 trainer's generator_ema (and its
    generator / discriminator when the trainer has them and the file holds g / d)."""
    g, d, g_ema, _ = read_rosinality(path)
    where = f"--checkpoint={path}"
    ignore = BLUR_BUFFERS
    assign_state_dict(generator_mapping(trainer.generator_ema), g_ema, f"{where} [g_ema]", ignore)
    missing = []
    if getattr(trainer, "generator", None) is not None:
        if g is None:
            missing.append("g")
        else:
            assign_state_dict(generator_mapping(trainer.generator), g, f"{where} [g]", ignore)
        if d is None:
            missing.append("d")
        else:
            assign_state_dict(
                discriminator_mapping(trainer.discriminator),
                d,
                f"{where} [d]",
                DISCRIMINATOR_BUFFERS,
            )
    return missing


def import_rosinality_run(checkpoint, output_dir, *, settings=None, overwrite=False, log=print):
    """Writes a StyleGAN2 run directory (config.json, checkpoints/ckpt-0) of a rosinality
    checkpoint: g_ema -> generator_ema, g -> generator, d -> discriminator; fresh Adam states.

    Args:
        checkpoint: the .pt file.
        output_dir: the run directory to create.
        settings: other StyleGAN2Config fields of the run ({name: value}), e.g. dataset.
        overwrite: replace an existing output_dir.
    """
    import tensorflow as tf

    from core import io as core_io
    from models.stylegan2.config import PRESETS
    from models.stylegan2.trainer import StyleGAN2GAN
    from training import run_dir as run_dir_lib

    if os.path.exists(output_dir) and os.listdir(output_dir) and not overwrite:
        raise StyleGAN2ImportError(
            f"--output_dir={output_dir} exists and is not empty; give --overwrite to replace it"
        )
    _, _, g_ema, _ = read_rosinality(checkpoint)
    arch = infer_architecture(g_ema, f"--checkpoint={checkpoint}")
    final_dir = os.path.abspath(output_dir)
    # Synthesis in Style's recipe (the stylegan2_256 preset) with the file's architecture.
    preset = PRESETS["stylegan2_256"]
    fixed = ("checkpoint_dir", "model", *arch)
    typed = parse_settings(type(preset), settings or {}, fixed=fixed)
    config = preset.replace(checkpoint_dir=final_dir, **arch, **typed)
    with core_io.atomic_directory(final_dir) as tmp:
        trainer = StyleGAN2GAN.from_run_config(config)
        missing = load_into(trainer, checkpoint, log=log)
        if missing:
            log(f"Warning: {checkpoint} has no {' / '.join(missing)}: those networks start fresh")
        run_dir_lib.write_json_atomic(os.path.join(tmp, run_dir_lib.CONFIG_FILE), config.to_dict())
        run_dir_lib.write_json_atomic(
            os.path.join(tmp, "imported_from.json"),
            {
                "source": "rosinality stylegan2-pytorch",
                "checkpoint": os.path.abspath(checkpoint),
                **arch,
            },
        )
        manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(**trainer.checkpoint_objects()),
            os.path.join(tmp, "checkpoints"),
            max_to_keep=1,
        )
        manager.save(checkpoint_number=0)
    log(f"Imported {checkpoint} ({arch['resolution']} px) into {final_dir}")
    return final_dir
