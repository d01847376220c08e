"""models/spade/importer.py and tools/import_spade.py: NVlabs/SPADE's latest_net_{G,E,D}.pth
-> our generator / encoder / discriminator, name by name, and into a run directory that the
inference path and the trainer read."""

import argparse
import json
import pickle

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from core import tensor_files
from models.spade import importer, inference
from models.spade import networks as spade
from models.spade.config import SPADEConfig
from models.spade.trainer import SPADEGAN
from tools import import_spade
from training import run_dir as run_dir_lib

S = importer.ADE20K_SEMANTIC_NC  # ADE20K's channels: the class re-ordering is exercised
TINY = dict(ngf=4, ndf=4, z_dim=8, num_hidden=8, num_D=2, n_layers_D=4, encoder_ndf=4)
# opt.txt as NVlabs writes it: "{:>25}: {:<30}{}" lines, "\t[default: x]" where it differs.
OPTIONS = [
    ("aspect_ratio", 1.0, None),
    ("crop_size", 64, 256),
    ("dataset_mode", "ade20k", "coco"),
    ("contain_dontcare_label", True, False),
    ("label_nc", 150, 182),
    ("no_instance", True, False),
    ("norm_G", "spectralspadesyncbatch3x3", None),
    ("num_upsampling_layers", "normal", None),
    ("name", "ade20k_tiny", "label2coco"),
]
OPT_TXT = (
    "----------------- Options ---------------\n"
    + "".join(
        "{:>25}: {:<30}{}\n".format(k, str(v), "" if d is None else f"\t[default: {d}]")
        for k, v, d in OPTIONS
    )
    + "----------------- End -------------------\n"
)


def _randomise(network, rng):
    for variable in network.weights:
        value = 0.3 * rng.standard_normal(variable.shape)
        if "moving_variance" in variable.path:
            value = rng.uniform(0.5, 1.5, variable.shape)
        variable.assign(value.astype(variable.dtype))
    return network


def _nets(use_vae, num_upsampling_layers="normal", norm_G="syncbatch", seed=0, crop_size=64):
    nets = spade.build_spade_networks(
        S,
        crop_size=crop_size,
        use_vae=use_vae,
        num_upsampling_layers=num_upsampling_layers,
        norm_G=norm_G,
        encoder_input_size=32,
        **TINY,
    )
    rng = np.random.default_rng(seed)
    for network in nets.values():
        if network is not None:
            _randomise(network, rng)
    return nets


@pytest.fixture(scope="module")
def vae_nets():
    return _nets(use_vae=True)


def _state(nets, order=None):
    state = {
        "G": importer.export_state_dict(importer.generator_mapping(nets["generator"]), order),
        "D": importer.export_state_dict(
            importer.discriminator_mapping(nets["discriminator"]), order
        ),
    }
    if nets["encoder"] is not None:
        state["E"] = importer.export_state_dict(importer.encoder_mapping(nets["encoder"]))
    return state


def _arch(generator):
    return {
        "semantic_nc": S,
        "ngf": generator.ngf,
        "use_vae": generator.use_vae,
        "z_dim": generator.z_dim,
        "sh": generator.sh,
        "sw": generator.sw,
        "num_upsampling_layers": generator.num_upsampling_layers,
        "norm_G": generator.norm_type,
        "spade_hidden": generator.num_hidden,
    }


def _table(entries):
    return {name: shape for _, name, shape, _ in entries}


@pytest.mark.parametrize(
    "use_vae, upsampling, norm", [(True, "normal", "syncbatch"), (False, "most", "instance")]
)
def test_every_variable_is_mapped_once_under_its_nvlabs_name(vae_nets, use_vae, upsampling, norm):
    nets = vae_nets if use_vae else _nets(False, upsampling, norm, crop_size=128)
    generator, encoder, discriminator = (nets[k] for k in ("generator", "encoder", "discriminator"))
    mappings = [(generator, importer.generator_mapping(generator))]
    mappings.append((discriminator, importer.discriminator_mapping(discriminator)))
    if encoder is not None:
        mappings.append((encoder, importer.encoder_mapping(encoder)))
    for network, mapping in mappings:  # trainable and state (u, v, moving statistics) alike
        assert sorted(id(v) for v, *_ in mapping) == sorted(id(v) for v in network.weights)
        assert len({name for _, name, _, _ in mapping}) == len(mapping)
    # The names and shapes equal the table the importer checks files against.
    g = _table(importer.generator_mapping(generator))
    assert g == importer.generator_shapes(_arch(generator))
    d = _table(importer.discriminator_mapping(discriminator))
    assert d == importer.discriminator_shapes(2, 4, 4, S + 3)
    assert d["discriminator_1.model2.0.0.weight_v"] == (8 * 16,)
    assert d["discriminator_0.model4.0.weight"] == (1, 32, 4, 4)
    assert g["head_0.conv_0.weight_orig"] == (64, 64, 3, 3)
    assert g["up_0.conv_s.weight_v"] == (64,) and "up_0.conv_s.bias" not in g
    assert g["G_middle_1.norm_1.mlp_shared.0.weight"] == (8, S, 3, 3)
    assert g["up_3.norm_1.mlp_gamma.weight"] == (4, 8, 3, 3)
    if use_vae:
        assert g["fc.weight"] == (64 * 2 * 2, 8)
        assert g["up_1.norm_s.param_free_norm.running_var"] == (32,)
        assert "up_4.conv_0.weight_orig" not in g
        assert _table(importer.encoder_mapping(encoder)) == importer.encoder_shapes(3, 4, 8)
    else:
        assert g["fc.weight"] == (64, S, 3, 3)
        assert g["up_4.conv_s.weight_orig"] == (2, 4, 1, 1) and g["conv_img.weight"] == (3, 2, 3, 3)
        assert not any("param_free_norm" in name for name in g)  # instance norm: no tensors


def test_reference_parameter_counts_of_the_ade20k_tables():
    arch = dict(semantic_nc=151, ngf=64, use_vae=False, z_dim=256, sh=8, sw=8)
    arch.update(num_upsampling_layers="normal", norm_G="syncbatch", spade_hidden=128)
    assert importer.parameter_count(importer.generator_shapes(arch)) == 96_492_483
    vae = dict(arch, use_vae=True)
    assert importer.parameter_count(importer.generator_shapes(vae)) == 111_942_595
    more = dict(vae, num_upsampling_layers="more", sh=4, sw=4)
    assert importer.parameter_count(importer.generator_shapes(more)) == 99_310_531
    assert importer.parameter_count(importer.encoder_shapes(6, 64, 256)) == 10_463_424
    assert importer.parameter_count(importer.discriminator_shapes(2, 4, 64, 154)) == 5_836_930
    # A full-size ade20k_pretrained name table (arrays without memory): what the importer
    # infers from it and accepts, before any network is built.
    table = importer.generator_shapes(arch)
    table["head_0.norm_0.param_free_norm.num_batches_tracked"] = ()
    g = {name: np.broadcast_to(np.float32(0), shape) for name, shape in table.items()}
    inferred = importer.infer_generator(g, "ade20k")
    assert inferred == {
        "semantic_nc": 151,
        "spade_hidden": 128,
        "ngf": 64,
        "use_vae": False,
        "most": False,
        "norm_G": "syncbatch",
    }
    opt = importer.parse_opt_txt(OPT_TXT.replace("crop_size: 64 ", "crop_size: 256"))
    flags = dict.fromkeys(("num_upsampling_layers", "crop_size", "aspect_ratio"))
    assert importer.resolve_size(inferred, flags, opt, "opt.txt", "ade20k") == (
        "normal",
        256,
        1.0,
        8,
        8,
    )
    importer.check_instance_edges(151, opt, "opt.txt", "ade20k")
    importer.check_state_dict(g, importer.generator_shapes(arch), "ade20k")


def _conv_nchw(x, weight, bias, pad, stride=1):
    """PyTorch's Conv2d (cross-correlation) on one [C, H, W] image, in NumPy."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    cout, cin, kh, kw = weight.shape
    h = (x.shape[1] - kh) // stride + 1
    w = (x.shape[2] - kw) // stride + 1
    out = np.zeros((cout, h, w), np.float64)
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i : i + stride * h : stride, j : j + stride * w : stride]
            out += np.einsum("oc,chw->ohw", weight[:, :, i, j], patch)
    return out + (0 if bias is None else bias[:, None, None])


def test_layouts_give_pytorch_results(vae_nets):
    order = importer.ade20k_order()
    assert order[0] == 150 and order[1] == 0 and order[150] == 149
    plain = _nets(False, seed=1)["generator"]
    g = importer.export_state_dict(importer.generator_mapping(plain), order)
    rng = np.random.default_rng(4)
    labels = rng.integers(0, S, (1, 6, 6))  # our ids: 0 = other
    nv_labels = order[labels[0]]  # NVlabs' ADE20K loader: label - 1, "other" last
    nv_one_hot = np.eye(S)[nv_labels].transpose(2, 0, 1)  # [S, H, W]
    ours = plain.fc(tf.one_hot(labels, S)).numpy()[0]
    theirs = _conv_nchw(nv_one_hot, g["fc.weight"], g["fc.bias"], pad=1)
    np.testing.assert_allclose(ours, theirs.transpose(1, 2, 0), atol=1e-4)

    # Spectral norm: W_orig / sigma with sigma = u^T W v (W flattened to [out, in*kh*kw]).
    conv = plain.up_1.conv_0
    w, u, v = (g[f"up_1.conv_0.{n}"] for n in ("weight_orig", "weight_u", "weight_v"))
    sigma = u @ (w.reshape(w.shape[0], -1) @ v)
    x = rng.standard_normal((1, 5, 5, conv.kernel.shape[2])).astype("float32")
    theirs = _conv_nchw(x[0].transpose(2, 0, 1), w / sigma, g["up_1.conv_0.bias"], pad=1)
    np.testing.assert_allclose(conv(x).numpy()[0], theirs.transpose(1, 2, 0), atol=1e-4)

    # The VAE's fc: Linear(z -> 16nf*sh*sw) viewed [N, 16nf, sh, sw].
    generator = vae_nets["generator"]
    g = importer.export_state_dict(importer.generator_mapping(generator))
    z = rng.standard_normal((2, 8)).astype("float32")
    theirs = (z @ g["fc.weight"].T + g["fc.bias"]).reshape(2, 64, 2, 2).transpose(0, 2, 3, 1)
    ours = tf.reshape(generator.fc(z), (2, 2, 2, 64)).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5)

    # The encoder's fc_mu reads PyTorch's C, H, W flatten of [N, C, 4, 4].
    encoder = vae_nets["encoder"]
    e = importer.export_state_dict(importer.encoder_mapping(encoder))
    features = rng.standard_normal((2, 4, 4, 16)).astype("float32")
    theirs = features.transpose(0, 3, 1, 2).reshape(2, -1) @ e["fc_mu.weight"].T
    ours = encoder.fc_mu(features.reshape(2, -1)).numpy()
    np.testing.assert_allclose(ours, theirs + e["fc_mu.bias"], atol=1e-5)

    # D's first conv: the NVlabs one-hot channels first, then the image.
    d = importer.export_state_dict(importer.discriminator_mapping(vae_nets["discriminator"]), order)
    scale = vae_nets["discriminator"].discriminators[0]
    image = rng.standard_normal((1, 6, 6, 3)).astype("float32")
    ours = scale.conv_in(np.concatenate([tf.one_hot(labels, S).numpy(), image], -1)).numpy()
    nv_input = np.concatenate([nv_one_hot, image[0].transpose(2, 0, 1)])
    w, b = d["discriminator_0.model0.0.weight"], d["discriminator_0.model0.0.bias"]
    theirs = _conv_nchw(nv_input, w, b, pad=2, stride=2)
    np.testing.assert_allclose(ours[0], theirs.transpose(1, 2, 0), atol=1e-4)


def _write_folder(folder, state, legacy=False, opt_txt=OPT_TXT, keys=("G", "E", "D")):
    folder.mkdir(parents=True, exist_ok=True)
    for key in keys:
        if key in state:
            path = str(folder / f"latest_net_{key}.pth")
            tensor_files.write_torch_checkpoint(path, state[key], legacy=legacy)
    if opt_txt:
        (folder / "opt.txt").write_text(opt_txt)
    return folder


def test_round_trip_into_a_run_directory_is_exact(vae_nets, tmp_path):
    state = _state(vae_nets, importer.ade20k_order())
    state["G"]["head_0.norm_0.param_free_norm.num_batches_tracked"] = np.array(5, np.int64)
    folder = _write_folder(tmp_path / "ade20k_tiny", state)
    run = tmp_path / "run"
    assert import_spade.main([f"--checkpoint={folder}", f"--output_dir={run}"]) == str(run)
    config = run_dir_lib.load_run_config(str(run), SPADEConfig)
    assert (config.dataset, config.crop_size, config.ngf, config.ndf) == ("ade20k", 64, 4, 4)
    assert config.use_vae and config.z_dim == 8 and config.encoder_input_size == 32
    assert config.spade_hidden == 8 and config.norm_G == "syncbatch"
    imported = json.loads((run / "imported_from.json").read_text())
    assert imported["fresh"] == [] and imported["class_order"].startswith("ade20k")

    # The inference path (what test_one.py loads): same weights, the same images.
    synth = inference._load_synthesizer(str(run), None, None)
    for a, b in zip(synth._gan.generator.weights, vae_nets["generator"].weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    labels = np.random.default_rng(1).integers(0, S, (2, 64, 64)).astype(np.uint8)
    z = np.random.default_rng(2).standard_normal((2, 8)).astype(np.float32)
    ours = synth._gan.synthesize(tf.constant(labels), z=tf.constant(z))
    np.testing.assert_array_equal(ours, vae_nets["generator"](tf.constant(labels), z=z))
    Image.fromarray(labels[0], mode="L").save(tmp_path / "map.png")
    written = inference.synthesize_label_map(
        str(tmp_path / "map.png"), str(tmp_path / "out"), checkpoint_dir=str(run)
    )
    assert np.asarray(Image.open(written[0])).shape == (64, 64, 3)

    # The trainer resumes it (fine-tuning): every variable matched, at step 0.
    gan = SPADEGAN.from_run_config(config.replace(vgg_weights="none"), S)
    checkpoint = tf.train.Checkpoint(**gan.checkpoint_objects())
    checkpoint.restore(str(run / "checkpoints" / "ckpt-0")).assert_existing_objects_matched()
    assert int(gan.step.numpy()) == 0
    for name in ("encoder", "discriminator"):
        for a, b in zip(getattr(gan, name).weights, vae_nets[name].weights, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=f"{name} {a.path}")
    mu, _ = vae_nets["encoder"](tf.zeros((1, 32, 32, 3)))
    np.testing.assert_array_equal(gan.encoder(tf.zeros((1, 32, 32, 3)))[0], mu)

    with pytest.raises(SystemExit):  # an existing run is not replaced without --overwrite
        import_spade.main([f"--checkpoint={folder}", f"--output_dir={run}"])
    with pytest.raises(SystemExit):  # a flag that contradicts opt.txt
        import_spade.main(
            [f"--checkpoint={folder}", f"--output_dir={run}", "--overwrite", "--crop_size=128"]
        )
    with pytest.raises(SystemExit):  # the importer sets ngf itself
        import_spade.main([f"--checkpoint={folder}", f"--output_dir={run}", "--set=ngf=8"])


def test_generator_alone_in_legacy_format_with_flags(tmp_path):
    nets = _nets(False, seed=3)
    state = _state(nets, importer.ade20k_order())
    folder = _write_folder(tmp_path / "g_only", state, legacy=True, opt_txt=None, keys=("G",))
    run = tmp_path / "run"
    messages = []
    importer.import_nvlabs_run(
        str(folder / "latest_net_G.pth"),
        str(run),
        crop_size=64,
        settings={"ndf": "4", "batch_size": "2"},
        log=messages.append,
    )
    assert any("no discriminator" in m for m in messages)
    config = run_dir_lib.load_run_config(str(run), SPADEConfig)
    assert not config.use_vae and config.batch_size == 2 and config.crop_size == 64
    gan = SPADEGAN.from_run_config(config.replace(vgg_weights="none"), S)
    checkpoint = tf.train.Checkpoint(**gan.checkpoint_objects())
    checkpoint.restore(str(run / "checkpoints" / "ckpt-0")).assert_existing_objects_matched()
    labels = tf.constant(np.random.default_rng(5).integers(0, S, (1, 64, 64)), tf.int32)
    np.testing.assert_array_equal(gan.generator(labels), nets["generator"](labels))


def test_missing_extra_mis_shaped_and_refused_checkpoints(vae_nets, tmp_path):
    order = importer.ade20k_order()
    state = _state(vae_nets, order)
    del state["G"]["up_2.norm_1.mlp_beta.bias"]
    state["G"]["up_2.norm_1.extra.weight"] = np.zeros(3, np.float32)
    state["G"]["conv_img.weight"] = np.zeros((3, 4, 1, 1), np.float32)
    folder = _write_folder(tmp_path / "bad", state)
    with pytest.raises(importer.SPADEImportError) as error:
        importer.import_nvlabs_run(str(folder), str(tmp_path / "run"))
    message = str(error.value)
    assert "[latest_net_G.pth] does not fit" in message
    assert "missing: up_2.norm_1.mlp_beta.bias" in message
    assert "extra: up_2.norm_1.extra.weight" in message
    assert "conv_img.weight: (3, 4, 1, 1) in the file, (3, 4, 3, 3) expected" in message
    assert not (tmp_path / "run").exists()  # nothing written

    state = _state(vae_nets, order)
    del state["D"]["discriminator_1.model3.0.0.weight_u"]
    folder = _write_folder(tmp_path / "bad_d", state)
    with pytest.raises(importer.SPADEImportError, match=r"\[latest_net_D.pth\].*model3.0.0"):
        importer.import_nvlabs_run(str(folder), str(tmp_path / "run"))

    # Instance-edge checkpoints: from the options, or by the released models' channel counts.
    state = _state(vae_nets, order)
    edges = OPT_TXT.replace("no_instance: True", "no_instance: False")
    edges = edges.replace("label_nc: 150", "label_nc: 149")
    folder = _write_folder(tmp_path / "edges", state, opt_txt=edges)
    with pytest.raises(importer.SPADEImportError, match="no_instance: False.*instance-edge"):
        importer.import_nvlabs_run(str(folder), str(tmp_path / "run"))
    with pytest.raises(importer.SPADEImportError, match="like cityscapes_pretrained"):
        importer.check_instance_edges(36, {}, None, "x")
    # A size that contradicts the VAE's fc (2x2 start map at 64 px).
    folder = _write_folder(tmp_path / "no_opt", state, opt_txt=None)
    with pytest.raises(importer.SPADEImportError, match="4-pixel start map.*1x1"):
        importer.import_nvlabs_run(str(folder), str(tmp_path / "run"), crop_size=32)
    with pytest.raises(importer.SPADEImportError, match="has no up_4 but num_upsampling_layers"):
        importer.import_nvlabs_run(
            str(folder), str(tmp_path / "run"), num_upsampling_layers="most", crop_size=128
        )
    with pytest.raises(importer.SPADEImportError, match="needs semantic_label_path=ade20k"):
        importer.import_nvlabs_run(
            str(folder),
            str(tmp_path / "run"),
            crop_size=64,
            settings={"dataset": "cityscapes", "semantic_label_path": "cityscapes"},
        )
    with pytest.raises(importer.SPADEImportError, match="holds no latest_net_G.pth"):
        importer.find_network_files(str(tmp_path))


def test_options_files(tmp_path):
    opt = importer.parse_opt_txt(OPT_TXT)
    assert opt["crop_size"] == 64 and opt["aspect_ratio"] == 1.0
    assert opt["no_instance"] is True and opt["contain_dontcare_label"] is True
    assert opt["num_upsampling_layers"] == "normal" and opt["name"] == "ade20k_tiny"
    assert opt["norm_G"] == "spectralspadesyncbatch3x3" and "Options" not in "".join(opt)
    (tmp_path / "opt.pkl").write_bytes(
        pickle.dumps(argparse.Namespace(crop_size=512, aspect_ratio=2.0, no_instance=False))
    )
    opt, path = importer.read_opt(str(tmp_path))
    assert path.endswith("opt.pkl") and opt == {
        "crop_size": 512,
        "aspect_ratio": 2.0,
        "no_instance": False,
    }
    (tmp_path / "opt.txt").write_text(OPT_TXT)  # opt.txt first
    assert importer.read_opt(str(tmp_path))[0]["crop_size"] == 64
    arch = {"most": False, "use_vae": False}
    flags = {"num_upsampling_layers": None, "crop_size": None, "aspect_ratio": None}
    size = importer.resolve_size(arch, flags, {"crop_size": 512, "aspect_ratio": 2.0}, "o", "x")
    assert size == ("normal", 256, 2.0, 8, 16)  # NVlabs' Cityscapes: 512 wide, 256 high
