"""NVlabs/SPADE checkpoints -> our SPADE generator / VAE encoder / discriminator (and back).

Source: the `latest_net_G.pth` (+ `latest_net_E.pth`, `latest_net_D.pth`) state dicts that
NVlabs/SPADE's train.py saves in checkpoints/<name>/ beside opt.txt and opt.pkl (its released
checkpoints.tar.gz: ade20k_pretrained, coco_pretrained, cityscapes_pretrained, G only); torch
zip or legacy format, read without torch (core/tensor_files.py). Names are the module names of
NVlabs' models/networks/{generator,architecture,normalization,encoder,discriminator}.py.

Generator (SPADEGenerator; nf = ngf, S = semantic_nc, blocks head_0, G_middle_0, G_middle_1,
up_0 .. up_3, and up_4 for num_upsampling_layers=most):
    fc.{weight,bias}       no VAE: Conv2d(S -> 16nf, 3) [16nf, S, 3, 3]        fc (conv)
                           VAE: Linear(z -> 16nf*sh*sw), output viewed [16nf, sh, sw]:
                           rows re-ordered C, H, W -> our H, W, C reshape        fc (Dense)
    <block>.conv_{0,1}.{weight_orig,weight_u,weight_v,bias}   spectral-norm convs (3x3)
    <block>.conv_s.{weight_orig,weight_u,weight_v}            learned shortcut (1x1, no bias)
    <block>.norm_{0,1,s}.param_free_norm.{running_mean,running_var}   moving mean / variance
        (batch-norm variants; the instance-norm variant has none; num_batches_tracked unused)
    <block>.norm_{0,1,s}.mlp_shared.0.*, .mlp_gamma.*, .mlp_beta.*    SPADE's three convs
    conv_img.{weight,bias} Conv2d(final_nc -> 3, 3), no spectral norm
Encoder (ConvEncoder, `latest_net_E.pth`): layer{k}.0.{weight_orig,weight_u,weight_v} ->
    convs[k - 1] (no bias: instance norm follows); fc_mu / fc_var: Linear(C*4*4 -> z) whose
    input is PyTorch's C, H, W flatten -> re-ordered for our H, W, C Flatten.
Discriminator (MultiscaleDiscriminator, `latest_net_D.pth`): discriminator_{i}.model0.0.* ->
    discriminators[i].conv_in; model{k}.0.0.{weight_orig,weight_u,weight_v} (k = 1 .. n - 1:
    model{k} is Sequential(Sequential(conv, InstanceNorm), LeakyReLU)) -> convs[k - 1];
    model{n}.0.* -> conv_out.

Layouts: Conv2d [out, in, kh, kw] -> [kh, kw, in, out]; Linear [out, in] -> [in, out].
Spectral norm: PyTorch keeps weight_orig and the power-iteration vectors u [out] and
v [in*kh*kw] (the weight flattened to [out, in*kh*kw]); ours keeps the raw kernel and
u [1, out], v [1, kh*kw*in] (the kernel flattened to [kh*kw*in, out]), so v's entries are
re-ordered (in, kh, kw) -> (kh, kw, in); sigma = u^T W v is then the same number, and both
divide the kernel by it without a power iteration at inference.

Classes: the convs over the one-hot map (fc without VAE, every SPADE's mlp_shared.0, D's
model0.0) have one input channel per class. NVlabs' ADE20K loader moves label 0 ("other") to
the last channel (channel k = ADE20K class k + 1, channel 150 = other); our ADE20K label set
keeps the file's ids (channel 0 = other), so those input channels are re-ordered for it.
Checkpoints trained with instance maps (NVlabs' default without --no_instance: COCO-Stuff,
Cityscapes) take one more channel, a binary instance-edge map, which our SPADE does not have:
they are refused with a message that says so.

Example:
    import_nvlabs_run("checkpoints/ade20k_pretrained", "runs/spade_ade20k")
"""

import os
import pickle

import numpy as np

from core import tensor_files
from core.errors import UserError
from core.settings import parse_settings

GENERATOR_FILE = "latest_net_G.pth"
OPT_FILES = ("opt.txt", "opt.pkl")
# Buffers of the published files that are not part of our networks.
IGNORED = ("num_batches_tracked",)
ADE20K_SEMANTIC_NC = 151  # 150 classes + "other" (NVlabs' contain_dontcare_label)
# Released models that need the instance-edge channel (semantic_nc -> name).
EDGE_RELEASES = {184: "coco_pretrained", 36: "cityscapes_pretrained"}
UPSAMPLINGS = {"normal": 5, "more": 6, "most": 7}
# The released models' settings where neither opt.txt / opt.pkl nor a flag gives them.
RELEASE_DEFAULTS = {"num_upsampling_layers": "normal", "crop_size": 256, "aspect_ratio": 1.0}


class SPADEImportError(UserError):
    """An NVlabs checkpoint cannot be imported; the message names the file and tensors."""


# ==============================================================================================
# NVlabs names and shapes of an architecture (no networks built)
# ==============================================================================================


def _conv_shapes(name, cout, cin, k, bias=True, spectral=False):
    shapes = {}
    if spectral:
        shapes[f"{name}.weight_orig"] = (cout, cin, k, k)
        shapes[f"{name}.weight_u"] = (cout,)
        shapes[f"{name}.weight_v"] = (cin * k * k,)
    else:
        shapes[f"{name}.weight"] = (cout, cin, k, k)
    if bias:
        shapes[f"{name}.bias"] = (cout,)
    return shapes


def _spade_shapes(name, channels, arch):
    s, hidden, k = arch["semantic_nc"], arch["spade_hidden"], 3
    shapes = {}
    if arch["norm_G"] != "instance":
        shapes[f"{name}.param_free_norm.running_mean"] = (channels,)
        shapes[f"{name}.param_free_norm.running_var"] = (channels,)
    shapes.update(_conv_shapes(f"{name}.mlp_shared.0", hidden, s, k))
    shapes.update(_conv_shapes(f"{name}.mlp_gamma", channels, hidden, k))
    shapes.update(_conv_shapes(f"{name}.mlp_beta", channels, hidden, k))
    return shapes


def generator_blocks(ngf, num_upsampling_layers):
    """[(NVlabs block name, fin, fout)] of a SPADEGenerator, in order."""
    nf = ngf
    blocks = [("head_0", 16 * nf, 16 * nf), ("G_middle_0", 16 * nf, 16 * nf)]
    blocks += [("G_middle_1", 16 * nf, 16 * nf), ("up_0", 16 * nf, 8 * nf)]
    blocks += [("up_1", 8 * nf, 4 * nf), ("up_2", 4 * nf, 2 * nf), ("up_3", 2 * nf, nf)]
    if num_upsampling_layers == "most":
        blocks.append(("up_4", nf, nf // 2))
    return blocks


def generator_shapes(arch):
    """{NVlabs name: shape} of a SPADEGenerator state dict.

    Args:
        arch: {semantic_nc, ngf, use_vae, z_dim, sh, sw, num_upsampling_layers, norm_G,
            spade_hidden}.
    """
    nf = arch["ngf"]
    if arch["use_vae"]:
        units = 16 * nf * arch["sh"] * arch["sw"]
        shapes = {"fc.weight": (units, arch["z_dim"]), "fc.bias": (units,)}
    else:
        shapes = _conv_shapes("fc", 16 * nf, arch["semantic_nc"], 3)
    for name, fin, fout in generator_blocks(nf, arch["num_upsampling_layers"]):
        fmiddle = min(fin, fout)
        shapes.update(_spade_shapes(f"{name}.norm_0", fin, arch))
        shapes.update(_conv_shapes(f"{name}.conv_0", fmiddle, fin, 3, spectral=True))
        shapes.update(_spade_shapes(f"{name}.norm_1", fmiddle, arch))
        shapes.update(_conv_shapes(f"{name}.conv_1", fout, fmiddle, 3, spectral=True))
        if fin != fout:
            shapes.update(_spade_shapes(f"{name}.norm_s", fin, arch))
            shapes.update(_conv_shapes(f"{name}.conv_s", fout, fin, 1, bias=False, spectral=True))
    final_nc = nf // 2 if arch["num_upsampling_layers"] == "most" else nf
    shapes.update(_conv_shapes("conv_img", 3, final_nc, 3))
    return shapes


def encoder_shapes(num_layers, ndf, z_dim):
    """{NVlabs name: shape} of a ConvEncoder state dict (num_layers stride-2 convs to 4x4)."""
    shapes, cin = {}, 3
    for i in range(num_layers):
        cout = ndf * min(2**i, 8)
        shapes.update(_conv_shapes(f"layer{i + 1}.0", cout, cin, 3, bias=False, spectral=True))
        cin = cout
    for name in ("fc_mu", "fc_var"):
        shapes[f"{name}.weight"] = (z_dim, cin * 4 * 4)
        shapes[f"{name}.bias"] = (z_dim,)
    return shapes


def discriminator_shapes(num_D, n_layers, ndf, input_nc):
    """{NVlabs name: shape} of a MultiscaleDiscriminator state dict.

    Widths ndf * min(2**k, 8), as ours (NVlabs: min(2 * previous, 512); equal for ndf = 64).
    """
    shapes = {}
    for d in range(num_D):
        p = f"discriminator_{d}"
        shapes.update(_conv_shapes(f"{p}.model0.0", ndf, input_nc, 4))
        cin = ndf
        for k in range(1, n_layers):
            cout = ndf * min(2**k, 8)
            shapes.update(
                _conv_shapes(f"{p}.model{k}.0.0", cout, cin, 4, bias=False, spectral=True)
            )
            cin = cout
        shapes.update(_conv_shapes(f"{p}.model{n_layers}.0", 1, cin, 4))
    return shapes


def parameter_count(shapes):
    """What PyTorch counts as parameters in a state dict table (not u, v, running stats)."""
    buffers = ("weight_u", "weight_v", "running_mean", "running_var", "num_batches_tracked")
    return sum(int(np.prod(shape)) for name, shape in shapes.items() if not name.endswith(buffers))


# ==============================================================================================
# Our networks' variables under NVlabs names
# ==============================================================================================

# An entry is (our variable, NVlabs name, NVlabs shape, layout); a layout is a name or
# (name, dims): "conv", "onehot_conv" (a conv whose first input channels are the one-hot map:
# re-ordered by the class order), "vector", "sn_u", ("sn_v", (in, kh, kw)), "linear",
# ("linear_chw_out", (c, h, w)), ("bias_chw", (c, h, w)), ("linear_chw_in", (c, h, w)).


def _conv(conv, name, layout="conv"):
    kh, kw, cin, cout = conv.kernel.shape
    if conv.spectral_norm:
        entries = [
            (conv.kernel, f"{name}.weight_orig", (cout, cin, kh, kw), layout),
            (conv.u, f"{name}.weight_u", (cout,), "sn_u"),
            (conv.v, f"{name}.weight_v", (cin * kh * kw,), ("sn_v", (cin, kh, kw))),
        ]
    else:
        entries = [(conv.kernel, f"{name}.weight", (cout, cin, kh, kw), layout)]
    if conv.use_bias:
        entries.append((conv.bias, f"{name}.bias", (cout,), "vector"))
    return entries


def _spade(norm, name):
    entries = []
    if hasattr(norm.param_free_norm, "moving_mean"):  # batch norm (not instance norm)
        pfn = norm.param_free_norm
        channels = tuple(pfn.moving_mean.shape)
        entries.append(
            (pfn.moving_mean, f"{name}.param_free_norm.running_mean", channels, "vector")
        )
        entries.append(
            (pfn.moving_variance, f"{name}.param_free_norm.running_var", channels, "vector")
        )
    entries += _conv(norm.mlp_shared, f"{name}.mlp_shared.0", "onehot_conv")
    entries += _conv(norm.mlp_gamma, f"{name}.mlp_gamma")
    entries += _conv(norm.mlp_beta, f"{name}.mlp_beta")
    return entries


def generator_mapping(generator):
    """[(variable, NVlabs name, its shape, layout)] of a built SPADEGenerator."""
    nf = generator.ngf
    if generator.use_vae:
        z_dim, units = generator.fc.kernel.shape
        dims = (16 * nf, generator.sh, generator.sw)
        entries = [
            (generator.fc.kernel, "fc.weight", (units, z_dim), ("linear_chw_out", dims)),
            (generator.fc.bias, "fc.bias", (units,), ("bias_chw", dims)),
        ]
    else:
        entries = _conv(generator.fc, "fc", "onehot_conv")
    blocks = [generator.head_0, generator.g_middle_0, generator.g_middle_1]
    for block in blocks + generator._up_blocks():
        entries += _spade(block.norm_0, f"{block.name}.norm_0")
        entries += _conv(block.conv_0, f"{block.name}.conv_0")
        entries += _spade(block.norm_1, f"{block.name}.norm_1")
        entries += _conv(block.conv_1, f"{block.name}.conv_1")
        if block.learned_shortcut:
            entries += _spade(block.norm_s, f"{block.name}.norm_s")
            entries += _conv(block.conv_s, f"{block.name}.conv_s")
    return entries + _conv(generator.conv_img, "conv_img")


def encoder_mapping(encoder):
    """[(variable, NVlabs name, its shape, layout)] of a built VAEEncoder."""
    entries = []
    for i, conv in enumerate(encoder.convs):
        entries += _conv(conv, f"layer{i + 1}.0")
    channels = encoder.convs[-1].filters
    for dense, name in ((encoder.fc_mu, "fc_mu"), (encoder.fc_var, "fc_var")):
        units_in, z_dim = dense.kernel.shape
        layout = ("linear_chw_in", (channels, 4, 4))
        entries.append((dense.kernel, f"{name}.weight", (z_dim, units_in), layout))
        entries.append((dense.bias, f"{name}.bias", (z_dim,), "vector"))
    return entries


def discriminator_mapping(discriminator):
    """[(variable, NVlabs name, its shape, layout)] of a built MultiscaleDiscriminator."""
    entries = []
    for d, scale in enumerate(discriminator.discriminators):
        p = f"discriminator_{d}"
        entries += _conv(scale.conv_in, f"{p}.model0.0", "onehot_conv")
        for k, conv in enumerate(scale.convs, start=1):
            entries += _conv(conv, f"{p}.model{k}.0.0")
        entries += _conv(scale.conv_out, f"{p}.model{scale.n_layers}.0")
    return entries


def from_torch_layout(tensor, layout, order=None):
    """Our value of one NVlabs tensor.

    `order[c]` is the NVlabs input channel of our class c (None: the same channel); it
    re-orders the first len(order) input channels of "onehot_conv" kernels.
    """
    kind, dims = layout if isinstance(layout, tuple) else (layout, None)
    if kind in ("conv", "onehot_conv"):  # [out, in, kh, kw] -> [kh, kw, in, out]
        value = tensor.transpose(2, 3, 1, 0)
        if kind == "onehot_conv" and order is not None:
            value = value.copy()
            value[:, :, : len(order)] = value[:, :, order]
        return value
    if kind == "sn_u":  # [out] -> [1, out]
        return tensor.reshape(1, -1)
    if kind == "sn_v":  # [in*kh*kw] in (in, kh, kw) order -> [1, kh*kw*in]
        return tensor.reshape(dims).transpose(1, 2, 0).reshape(1, -1)
    if kind == "linear":  # [out, in] -> [in, out]
        return tensor.T
    if kind == "linear_chw_out":  # [C*H*W out, in] -> [in, H*W*C out]
        c, h, w = dims
        return tensor.reshape(c, h, w, -1).transpose(1, 2, 0, 3).reshape(h * w * c, -1).T
    if kind == "bias_chw":  # [C*H*W] -> [H*W*C]
        c, h, w = dims
        return tensor.reshape(c, h, w).transpose(1, 2, 0).reshape(-1)
    if kind == "linear_chw_in":  # [out, C*H*W in] -> [H*W*C in, out]
        c, h, w = dims
        return tensor.reshape(-1, c, h, w).transpose(2, 3, 1, 0).reshape(h * w * c, -1)
    return tensor


def to_torch_layout(value, layout, order=None):
    """The NVlabs tensor of our `value` (the inverse of from_torch_layout)."""
    kind, dims = layout if isinstance(layout, tuple) else (layout, None)
    if kind in ("conv", "onehot_conv"):
        if kind == "onehot_conv" and order is not None:
            reordered = value.copy()
            reordered[:, :, order] = value[:, :, : len(order)]
            value = reordered
        return value.transpose(3, 2, 0, 1)
    if kind == "sn_u":
        return value.reshape(-1)
    if kind == "sn_v":
        cin, kh, kw = dims
        return value.reshape(kh, kw, cin).transpose(2, 0, 1).reshape(-1)
    if kind == "linear":
        return value.T
    if kind == "linear_chw_out":
        c, h, w = dims
        return value.T.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(c * h * w, -1)
    if kind == "bias_chw":
        c, h, w = dims
        return value.reshape(h, w, c).transpose(2, 0, 1).reshape(-1)
    if kind == "linear_chw_in":
        c, h, w = dims
        return value.reshape(h, w, c, -1).transpose(3, 2, 0, 1).reshape(value.shape[1], -1)
    return value


def export_state_dict(entries, order=None):
    """{NVlabs name: float32 array} of a mapping (tests; export to NVlabs' format)."""
    return {
        name: np.ascontiguousarray(to_torch_layout(np.asarray(var.numpy()), layout, order))
        for var, name, _, layout in entries
    }


def check_state_dict(tensors, expected, where):
    """Raises SPADEImportError naming every missing, extra and mis-shaped tensor."""
    try:
        tensor_files.check_names_and_shapes(tensors, expected, where, ignore=IGNORED)
    except tensor_files.TensorFileError as error:
        raise SPADEImportError(str(error)) from None


def assign_state_dict(entries, tensors, where, order=None):
    """Checks every name and shape, then copies the tensors into the mapped variables."""
    check_state_dict(tensors, {name: shape for _, name, shape, _ in entries}, where)
    for variable, name, _, layout in entries:
        value = from_torch_layout(np.asarray(tensors[name], np.float32), layout, order)
        variable.assign(value.astype(variable.dtype))


def ade20k_order(semantic_nc=ADE20K_SEMANTIC_NC):
    """order[c] = NVlabs channel of our ADE20K class c: class 0 ("other") is NVlabs' last
    channel, class c >= 1 its channel c - 1."""
    return (np.arange(semantic_nc) - 1) % semantic_nc


# ==============================================================================================
# Reading an NVlabs checkpoint folder
# ==============================================================================================


def find_network_files(checkpoint):
    """{"G": path, "E": path or None, "D": path or None} of a checkpoint folder (its
    latest_net_*.pth) or of an <epoch>_net_G.pth file (E and D beside it, same prefix)."""
    if os.path.isdir(checkpoint):
        generator = os.path.join(checkpoint, GENERATOR_FILE)
        if not os.path.isfile(generator):
            raise SPADEImportError(
                f"--checkpoint={checkpoint} holds no {GENERATOR_FILE} (an NVlabs/SPADE "
                "checkpoints/<name> folder, e.g. ade20k_pretrained of checkpoints.tar.gz)"
            )
    elif os.path.isfile(checkpoint):
        generator = checkpoint
        if not generator.endswith("_net_G.pth"):
            raise SPADEImportError(
                f"--checkpoint={checkpoint}: expected an NVlabs generator file *_net_G.pth "
                "(or the folder holding latest_net_G.pth)"
            )
    else:
        raise SPADEImportError(f"--checkpoint={checkpoint}: no such file or folder")
    stem = generator[: -len("G.pth")]
    others = {key: stem + f"{key}.pth" for key in ("E", "D")}
    return {"G": generator, **{k: (p if os.path.isfile(p) else None) for k, p in others.items()}}


def read_state_dict(path):
    """{name: array} of a torch.save'd state dict."""
    try:
        state = tensor_files.read_torch_checkpoint(path)
    except tensor_files.TensorFileError as error:
        raise SPADEImportError(str(error)) from None
    if not isinstance(state, dict):
        raise SPADEImportError(f"{path} holds a {type(state).__name__}, not a state dict")
    return tensor_files.flatten_state_dict(state)


def _opt_value(text):
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_opt_txt(text):
    """{option: value} of an NVlabs opt.txt ("  crop_size: 256   \\t[default: 256]" lines
    between the "---- Options ----" and "---- End ----" rules); ints, floats and booleans
    are converted, other values stay strings."""
    options = {}
    for line in text.splitlines():
        line = line.split("\t[default:", 1)[0].strip()
        name, sep, value = line.partition(":")
        if not sep or line.startswith("-") or not name.strip().isidentifier():
            continue
        options[name.strip()] = _opt_value(value.strip())
    return options


def read_opt(folder):
    """(options dict, its file) of opt.txt (else opt.pkl) in `folder`; ({}, None) if none."""
    txt, pkl = (os.path.join(folder, name) for name in OPT_FILES)
    if os.path.isfile(txt):
        with open(txt, encoding="utf-8", errors="replace") as f:
            return parse_opt_txt(f.read()), txt
    if os.path.isfile(pkl):
        try:
            with open(pkl, "rb") as f:  # a pickled argparse.Namespace; nothing else resolves
                opt = tensor_files._RestrictedUnpickler(f, load_storage=None).load()
        except (pickle.UnpicklingError, EOFError, AttributeError, ValueError) as error:
            raise SPADEImportError(f"{pkl} cannot be read: {error}") from None
        if not hasattr(opt, "__dict__"):
            raise SPADEImportError(f"{pkl} holds a {type(opt).__name__}, not the options")
        return dict(vars(opt)), pkl
    return {}, None


def _require(tensors, name, where):
    if name not in tensors:
        raise SPADEImportError(f"{where} is not an NVlabs SPADE generator: no {name}")
    return tensors[name]


def infer_generator(g, where):
    """{semantic_nc, ngf, use_vae, z_dim, units, most, norm_G, spade_hidden} of a G state
    dict (what its names and shapes tell)."""
    if "head_0.conv_0.weight" in g:
        raise SPADEImportError(
            f"{where} was trained without spectral norm (norm_G without 'spectral'); our SPADE "
            "generator uses it: not importable"
        )
    ngf = int(_require(g, "head_0.conv_0.weight_orig", where).shape[0]) // 16
    shared = _require(g, "head_0.norm_0.mlp_shared.0.weight", where)
    fc = _require(g, "fc.weight", where)
    arch = {
        "semantic_nc": int(shared.shape[1]),
        "spade_hidden": int(shared.shape[0]),
        "ngf": ngf,
        "use_vae": fc.ndim == 2,
        "most": any(name.startswith("up_4.") for name in g),
        "norm_G": (
            "syncbatch" if "head_0.norm_0.param_free_norm.running_mean" in g else "instance"
        ),
    }
    if arch["use_vae"]:
        arch["z_dim"] = int(fc.shape[1])
        arch["start_units"] = int(fc.shape[0]) // (16 * ngf)  # sh * sw
    return arch


def infer_encoder(e, where):
    """(num_layers, ndf, z_dim) of a ConvEncoder state dict."""
    layers = sorted(
        int(n[len("layer") :].split(".")[0]) for n in e if n.startswith("layer") and "." in n
    )
    first = _require(e, "layer1.0.weight_orig", where)
    z_dim = int(_require(e, "fc_mu.weight", where).shape[0])
    return max(layers), int(first.shape[0]), z_dim


def infer_discriminator(d, where):
    """(num_D, n_layers, ndf) of a MultiscaleDiscriminator state dict."""
    scales = {n.split(".")[0] for n in d if n.startswith("discriminator_")}
    first = _require(d, "discriminator_0.model0.0.weight", where)
    models = {n.split(".")[1] for n in d if n.startswith("discriminator_0.model")}
    return len(scales), len(models) - 1, int(first.shape[0])


def _resolve(name, flags, opt, opt_path):
    """One setting from the flag, opt.txt / opt.pkl, or the released models' default; a flag
    that contradicts the run's options file is an error."""
    flag = flags.get(name)
    if name in opt and flag is not None and _opt_value(str(flag)) != opt[name]:
        raise SPADEImportError(
            f"--{name}={flag} contradicts {opt_path} ({name}: {opt[name]}); leave the flag out"
        )
    if flag is not None:
        return flag
    return opt.get(name, RELEASE_DEFAULTS[name])


def resolve_size(arch, flags, opt, opt_path, where):
    """(num_upsampling_layers, our crop_size = height, aspect_ratio, sh, sw) of the run."""
    num_up = _resolve("num_upsampling_layers", flags, opt, opt_path)
    if num_up not in UPSAMPLINGS:
        raise SPADEImportError(f"num_upsampling_layers={num_up!r}: expected {list(UPSAMPLINGS)}")
    if arch["most"] != (num_up == "most"):
        has = "has" if arch["most"] else "has no"
        raise SPADEImportError(
            f"{where} {has} up_4 but num_upsampling_layers={num_up} "
            f"({opt_path or 'the flag / the released models default'})"
        )
    nv_crop = int(_resolve("crop_size", flags, opt, opt_path))  # NVlabs: the width
    aspect = float(_resolve("aspect_ratio", flags, opt, opt_path))
    factor = 2 ** UPSAMPLINGS[num_up]
    sw = nv_crop // factor
    sh = int(round(sw / aspect))
    if sw < 1 or sh < 1:
        raise SPADEImportError(f"crop_size={nv_crop} is too small for {num_up} ({factor}x)")
    if arch["use_vae"] and sh * sw != arch["start_units"]:
        raise SPADEImportError(
            f"{where}: fc maps z to a {arch['start_units']}-pixel start map, but crop_size="
            f"{nv_crop}, aspect_ratio={aspect}, num_upsampling_layers={num_up} give {sh}x{sw}; "
            "give the run's --crop_size / --aspect_ratio / --num_upsampling_layers"
        )
    if int(round(sh * factor * aspect)) != sw * factor:
        raise SPADEImportError(
            f"crop_size={nv_crop}, aspect_ratio={aspect}: a {sh * factor}x{sw * factor} image "
            "our configs cannot describe (height * aspect_ratio must round to the width)"
        )
    return num_up, sh * factor, aspect, sh, sw


def check_instance_edges(semantic_nc, opt, opt_path, where):
    """Refuses checkpoints whose input has NVlabs' instance-edge channel."""
    uses_edges = opt.get("no_instance") is False
    if opt_path and "label_nc" in opt:
        expected = int(opt["label_nc"]) + bool(opt.get("contain_dontcare_label")) + uses_edges
        if expected != semantic_nc:
            raise SPADEImportError(
                f"{where} takes {semantic_nc} input channels, but {opt_path} gives "
                f"{expected} (label_nc {opt['label_nc']}, contain_dontcare_label "
                f"{opt.get('contain_dontcare_label')}, no_instance {opt.get('no_instance')})"
            )
    release = EDGE_RELEASES.get(semantic_nc) if not opt_path else None
    if uses_edges or release:
        why = f"{opt_path} has no_instance: False" if uses_edges else f"like {release}"
        raise SPADEImportError(
            f"{where} was trained with instance maps ({why}): its last input channel of "
            f"{semantic_nc} is NVlabs' instance-edge map, which our SPADE does not take. Only "
            "checkpoints trained with --no_instance (e.g. ade20k_pretrained) can be imported"
        )


# ==============================================================================================
# A run directory of an imported checkpoint
# ==============================================================================================


def import_nvlabs_run(
    checkpoint,
    output_dir,
    *,
    num_upsampling_layers=None,
    crop_size=None,
    aspect_ratio=None,
    settings=None,
    overwrite=False,
    log=print,
):
    """Writes a SPADE run directory (config.json, checkpoints/ckpt-0 at step 0) holding an
    NVlabs/SPADE checkpoint: G -> generator, E (if present) -> encoder, D (if present) ->
    discriminator; a missing D (or E of a VAE generator) starts fresh, as do the Adam states.

    The run is what test_one.py / synthesize.py --checkpoint_dir read, and what train.py
    resumes, i.e. fine-tunes, when given the same --checkpoint_dir and the run's settings.

    Args:
        checkpoint: an NVlabs checkpoints/<name> folder (latest_net_G.pth, optional
            latest_net_E.pth / latest_net_D.pth, opt.txt / opt.pkl) or its *_net_G.pth file.
        output_dir: the run directory to create.
        num_upsampling_layers, crop_size, aspect_ratio: NVlabs' options of the same names
            (crop_size is NVlabs' image width) where the folder has no opt.txt / opt.pkl;
            default the released models' normal, 256, 1.0.
        settings: other SPADEConfig fields of the run, {name: value or its string}, e.g.
            dataset, data_root, batch_size (default: the ade20k_256 preset's; the dataset
            ade20k for 151 input channels).
        overwrite: replace an existing output_dir.

    Returns:
        output_dir (absolute).
    """
    import tensorflow as tf

    from core import io as core_io
    from models.spade import labels as spade_labels
    from models.spade.config import PRESETS
    from models.spade.trainer import SPADEGAN
    from training import run_dir as run_dir_lib

    if os.path.exists(output_dir) and os.listdir(output_dir) and not overwrite:
        raise SPADEImportError(
            f"--output_dir={output_dir} exists and is not empty; give --overwrite to replace it"
        )
    files = find_network_files(checkpoint)
    opt, opt_path = read_opt(os.path.dirname(os.path.abspath(files["G"])))
    states = {key: read_state_dict(path) for key, path in files.items() if path}
    where = {
        key: f"--checkpoint={checkpoint} [{os.path.basename(p)}]" for key, p in files.items() if p
    }

    # --- The architecture: names and shapes, then options; all checked before writing ---
    arch = infer_generator(states["G"], where["G"])
    semantic_nc = arch["semantic_nc"]
    check_instance_edges(semantic_nc, opt, opt_path, where["G"])
    flags = {
        "num_upsampling_layers": num_upsampling_layers,
        "crop_size": crop_size,
        "aspect_ratio": aspect_ratio,
    }
    num_up, height, aspect, sh, sw = resolve_size(arch, flags, opt, opt_path, where["G"])
    arch.update(num_upsampling_layers=num_up, sh=sh, sw=sw)
    check_state_dict(states["G"], generator_shapes(arch), where["G"])
    inferred = {
        "crop_size": height,
        "aspect_ratio": aspect,
        "ngf": arch["ngf"],
        "use_vae": arch["use_vae"],
        "num_upsampling_layers": num_up,
        "norm_G": arch["norm_G"],
        "spade_hidden": arch["spade_hidden"],
    }
    if arch["norm_G"] != "instance" and "spadebatch" in str(opt.get("norm_G", "")):
        inferred["norm_G"] = "batch"  # plain BatchNorm2d: the same running statistics
    if arch["use_vae"]:
        inferred["z_dim"] = arch["z_dim"]
    if "E" in states:
        if not arch["use_vae"]:
            raise SPADEImportError(
                f"{where['E']}: an encoder beside a generator without the VAE (its fc is a conv)"
            )
        num_layers, e_ndf, _ = infer_encoder(states["E"], where["E"])
        check_state_dict(states["E"], encoder_shapes(num_layers, e_ndf, arch["z_dim"]), where["E"])
        inferred.update(ndf=e_ndf, encoder_input_size=4 * 2**num_layers)
    if "D" in states:
        num_D, n_layers, d_ndf = infer_discriminator(states["D"], where["D"])
        if inferred.get("ndf", d_ndf) != d_ndf:
            raise SPADEImportError(
                f"{where['D']}: width {d_ndf}, but the encoder's is {inferred['ndf']}; our SPADE "
                "has one width (ndf) for both"
            )
        shapes = discriminator_shapes(num_D, n_layers, d_ndf, semantic_nc + 3)
        check_state_dict(states["D"], shapes, where["D"])
        inferred.update(ndf=d_ndf, num_discriminators=num_D, n_layers_D=n_layers)

    # --- The run's config ---
    preset = PRESETS["ade20k_256"]
    final_dir = os.path.abspath(output_dir)
    fixed = ("checkpoint_dir", "model", *inferred, *flags)
    typed = parse_settings(type(preset), settings or {}, fixed=fixed)
    if "dataset" not in typed and semantic_nc == ADE20K_SEMANTIC_NC:
        typed["dataset"] = "ade20k"
    if "load_size" not in typed:  # the preset's 286 for 256 (NVlabs' ADE20K recipe), scaled
        typed["load_size"] = max(height, round(preset.load_size * height / preset.crop_size))
    config = preset.replace(checkpoint_dir=final_dir, **inferred, **typed)
    nv_ade20k = opt.get("dataset_mode", "ade20k" if semantic_nc == ADE20K_SEMANTIC_NC else None)
    order = None
    if nv_ade20k == "ade20k":
        if config.semantic_label_path != "ade20k":
            raise SPADEImportError(
                f"{where['G']} was trained on NVlabs' ADE20K classes; the run needs "
                f"semantic_label_path=ade20k, not {config.semantic_label_path}"
            )
        order = ade20k_order(semantic_nc)

    with core_io.atomic_directory(final_dir) as tmp:
        uses_values = spade_labels.uses_label_values(config)
        label_paths = spade_labels.data_label_paths(config) if uses_values else None
        label_set, _, classes = spade_labels.resolve_spade_labels(
            config, label_paths=label_paths, run_dir=tmp, log=log
        )
        if classes != semantic_nc:
            raise SPADEImportError(
                f"{where['G']} takes {semantic_nc} label channels but the run's classes "
                f"(dataset={config.dataset}, semantic_label_path={config.semantic_label_path}) "
                f"give {classes}; give the checkpoint's with --set"
            )
        spade_labels.save_run_label_values(config, label_set, run_dir=tmp)
        # A training GAN (fresh Adam states, as train.py's restore of a run expects); VGG is
        # not part of the checkpoint, so it is not loaded here.
        gan = SPADEGAN.from_run_config(config.replace(vgg_weights="none"), classes)
        assign_state_dict(generator_mapping(gan.generator), states["G"], where["G"], order)
        if "E" in states:
            assign_state_dict(encoder_mapping(gan.encoder), states["E"], where["E"])
        if "D" in states:
            entries = discriminator_mapping(gan.discriminator)
            assign_state_dict(entries, states["D"], where["D"], order)
        fresh = [] if "D" in states else ["discriminator"]
        if arch["use_vae"] and "E" not in states:
            fresh.append("encoder")
        if fresh:
            log(f"Note: {checkpoint} has no {' / '.join(fresh)}: it starts fresh (fine-tuning)")
        run_dir_lib.write_json_atomic(os.path.join(tmp, run_dir_lib.CONFIG_FILE), config.to_dict())
        run_dir_lib.write_json_atomic(
            os.path.join(tmp, "imported_from.json"),
            {
                "source": "NVlabs/SPADE",
                "files": {k: os.path.abspath(p) for k, p in files.items() if p},
                "options_file": opt_path and os.path.abspath(opt_path),
                "semantic_nc": semantic_nc,
                "nvlabs_crop_size": sw * 2 ** UPSAMPLINGS[num_up],
                "class_order": "ade20k (NVlabs channel 150 = our class 0)"
                if order is not None
                else "identity",
                "fresh": fresh,
            },
        )
        manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(**gan.checkpoint_objects()),
            os.path.join(tmp, "checkpoints"),
            max_to_keep=1,
        )
        manager.save(checkpoint_number=0)
    log(f"Imported {files['G']} ({config.crop_size}x{config.crop_width}) into {final_dir}")
    return final_dir
