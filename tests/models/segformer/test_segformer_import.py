"""models/segformer/importer.py and tools/import_segformer.py: Hugging Face SegFormer / MiT
state dicts -> our SegFormer, name by name, layout by layout, and into a run directory that
segment.py's loader reads with identical logits."""

import json

import numpy as np
import pytest
import tensorflow as tf

from core import tensor_files
from models.segformer import importer
from models.segformer import networks as segformer
from models.segformer.config import SegFormerConfig
from models.segformer.export import load_segmenter
from models.segformer.trainer import SegFormerTrainer
from tools import import_segformer
from training import run_dir as run_dir_lib


def _random_segformer(num_classes=5, seed=0):
    model = segformer.SegFormer("tiny", num_classes=num_classes)
    model.build((None, None, None, 3))
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        value = 0.2 * rng.standard_normal(variable.shape)
        if "variance" in variable.path:  # BatchNorm moving variance must be positive
            value = 0.5 + np.abs(value)
        variable.assign(value.astype("float32"))
    return model


@pytest.fixture(scope="module")
def tiny():
    return _random_segformer()


def _images(seed=1):
    return np.random.default_rng(seed).standard_normal((2, 64, 96, 3)).astype("float32")


def test_mapping_covers_every_variable_once_with_hf_names(tiny):
    mapping = importer.weight_mapping(tiny)
    variables = [id(v) for v, _, _ in mapping]
    assert sorted(variables) == sorted(id(v) for v in tiny.weights)  # all, each once
    names = {n: s for _, ns, _ in mapping for n, s in ns.items()}
    block = "segformer.encoder.block.0.0"
    for name, shape in {
        "segformer.encoder.patch_embeddings.0.proj.weight": (8, 3, 7, 7),
        "segformer.encoder.patch_embeddings.0.layer_norm.bias": (8,),
        f"{block}.layer_norm_1.weight": (8,),
        f"{block}.attention.self.query.weight": (8, 8),
        f"{block}.attention.self.key.weight": (8, 8),
        f"{block}.attention.self.value.bias": (8,),
        f"{block}.attention.self.sr.weight": (8, 8, 8, 8),
        f"{block}.attention.self.layer_norm.weight": (8,),
        f"{block}.attention.output.dense.weight": (8, 8),
        f"{block}.mlp.dense1.weight": (32, 8),
        f"{block}.mlp.dwconv.dwconv.weight": (32, 1, 3, 3),
        f"{block}.mlp.dense2.weight": (8, 32),
        "segformer.encoder.layer_norm.3.weight": (64,),
        "decode_head.linear_c.3.proj.weight": (32, 64),
        "decode_head.linear_fuse.weight": (32, 128, 1, 1),
        "decode_head.batch_norm.running_var": (32,),
        "decode_head.classifier.weight": (5, 32, 1, 1),
    }.items():
        assert names[name] == shape, name
    # The last stage has sr_ratio 1: no reduction conv / norm there, as in transformers.
    assert "segformer.encoder.block.3.0.attention.self.sr.weight" not in names
    assert "decode_head.linear_fuse.bias" not in names
    assert len(names) == 123


def _conv_nchw(x, weight, bias, stride, pad, groups=1):
    """PyTorch's Conv2d in NumPy: x [Cin, H, W], weight [Cout, Cin/groups, kh, kw]."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    cout, cin_g, kh, kw = weight.shape
    h = (x.shape[1] - kh) // stride + 1
    w = (x.shape[2] - kw) // stride + 1
    out = np.zeros((cout, h, w), np.float64)
    for o in range(cout):
        g = o // (cout // groups)
        for y in range(h):
            for xx in range(w):
                patch = x[g * cin_g : (g + 1) * cin_g, y * stride : y * stride + kh]
                out[o, y, xx] = np.sum(patch[:, :, xx * stride : xx * stride + kw] * weight[o])
    return out + bias[:, None, None]


def test_torch_layouts_give_pytorch_results(tiny):
    # Each layout against PyTorch's definition of its module, computed from the HF tensors.
    state = importer.export_hf_state_dict(tiny)
    rng = np.random.default_rng(2)
    p = "segformer.encoder"
    x = rng.standard_normal((1, 12, 12, 3)).astype("float32")
    embed = tiny.encoder.patch_embeds[0]
    ours = embed.proj(np.pad(x, ((0, 0), (3, 3), (3, 3), (0, 0)))).numpy()[0]
    theirs = _conv_nchw(
        x[0].transpose(2, 0, 1),
        state[f"{p}.patch_embeddings.0.proj.weight"],
        state[f"{p}.patch_embeddings.0.proj.bias"],
        stride=4,
        pad=3,
    )
    np.testing.assert_allclose(ours, theirs.transpose(1, 2, 0), atol=1e-4)

    block = tiny.encoder.blocks[0]
    b = f"{p}.block.0.0"
    tokens = rng.standard_normal((1, 4, 4, 8)).astype("float32")
    kv = block.attn.kv(tokens).numpy()
    for half, name in ((kv[..., :8], "key"), (kv[..., 8:], "value")):  # keys first
        linear = tokens @ state[f"{b}.attention.self.{name}.weight"].T
        np.testing.assert_allclose(
            half, linear + state[f"{b}.attention.self.{name}.bias"], atol=1e-5
        )
    hidden = rng.standard_normal((1, 5, 5, 32)).astype("float32")
    ours = block.mlp.dwconv(hidden).numpy()[0]
    theirs = _conv_nchw(
        hidden[0].transpose(2, 0, 1),
        state[f"{b}.mlp.dwconv.dwconv.weight"],
        state[f"{b}.mlp.dwconv.dwconv.bias"],
        stride=1,
        pad=1,
        groups=32,
    )
    np.testing.assert_allclose(ours, theirs.transpose(1, 2, 0), atol=1e-4)


@pytest.mark.parametrize("file_name", ["model.safetensors", "pytorch_model.bin"])
def test_round_trip_into_a_run_directory_is_exact(tiny, tmp_path, file_name):
    hf = tmp_path / "hf"
    hf.mkdir()
    state = importer.export_hf_state_dict(tiny)
    state["decode_head.batch_norm.num_batches_tracked"] = np.array(7, np.int64)
    if file_name.endswith(".safetensors"):
        tensor_files.write_safetensors(str(hf / file_name), state)
    else:
        tensor_files.write_torch_checkpoint(str(hf / file_name), state)
    id2label = {str(i): name for i, name in enumerate(["sky", "road", "car", "tree", "person"])}
    (hf / "config.json").write_text(json.dumps({"model_type": "segformer", "id2label": id2label}))
    run = tmp_path / "run"
    assert import_segformer.main([f"--checkpoint={hf}", f"--output_dir={run}"]) == str(run)
    config = json.loads((run / "config.json").read_text())
    assert config["variant"] == "tiny" and config["architecture"] == "original"
    assert config["dataset"] == "folders" and config["num_classes"] == 5
    labels = json.loads((run / "label_set.json").read_text())
    assert [c["name"] for c in labels["classes"]] == ["sky", "road", "car", "tree", "person"]
    images = _images()
    segmenter = load_segmenter(checkpoint_dir=str(run), log=lambda *a: None)
    assert segmenter.num_classes == 5
    # Same weights; tf.function vs eager kernels may differ in the last float bit.
    np.testing.assert_allclose(segmenter.predict_logits(images), tiny(images), atol=1e-6)
    reloaded, info = importer.load_hf_segformer(str(hf))
    assert info["id2label"] == id2label and not info["encoder_only"]
    back = importer.export_hf_state_dict(reloaded)
    assert back.keys() == state.keys() - {"decode_head.batch_norm.num_batches_tracked"}
    for name, value in back.items():  # HF -> ours -> HF is exact, tensor by tensor
        np.testing.assert_array_equal(value, state[name], err_msg=name)
    if file_name == "model.safetensors":  # train.py resumes (fine-tunes) the run: its
        # restore matches every variable of a training trainer, AdamW states included.
        config = run_dir_lib.load_run_config(str(run), SegFormerConfig)
        trainer = SegFormerTrainer.from_run_config(config, 5, total_steps=1)
        checkpoint = tf.train.Checkpoint(**trainer.checkpoint_objects())
        checkpoint.restore(str(run / "checkpoints" / "ckpt-0")).assert_existing_objects_matched()
        assert int(trainer.step.numpy()) == 0
    with pytest.raises(SystemExit):  # an existing run is not replaced without --overwrite
        import_segformer.main([f"--checkpoint={hf}", f"--output_dir={run}"])
    import_segformer.main(
        [f"--checkpoint={hf}", f"--output_dir={run}", "--overwrite", "--set=crop_size=96"]
    )
    assert json.loads((run / "config.json").read_text())["crop_size"] == 96
    with pytest.raises(SystemExit):  # a setting that is no field of the config
        import_segformer.main([f"--checkpoint={hf}", f"--output_dir={run}", "--set=nope=1"])


def test_encoder_only_mit_gets_a_fresh_head(tiny, tmp_path):
    state = importer.export_hf_state_dict(tiny, include_head=False)
    assert not any(n.startswith("decode_head") for n in state)
    state["classifier.weight"] = np.zeros((1000, 64), np.float32)  # mit-b*'s ImageNet head
    state["classifier.bias"] = np.zeros((1000,), np.float32)
    path = str(tmp_path / "pytorch_model.bin")
    tensor_files.write_torch_checkpoint(path, state, legacy=True)
    with pytest.raises(importer.SegFormerImportError, match="encoder only.*--num_classes"):
        importer.load_hf_segformer(path)
    model, info = importer.load_hf_segformer(path, num_classes=3)
    assert info["encoder_only"] and info["num_classes"] == 3
    for variable, original in zip(model.encoder.weights, tiny.encoder.weights, strict=True):
        np.testing.assert_array_equal(variable.numpy(), original.numpy())
    features = model.encoder(_images())
    for a, b in zip(features, tiny.encoder(_images())):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_missing_extra_and_mis_shaped_names_are_listed(tiny, tmp_path):
    state = importer.export_hf_state_dict(tiny)
    del state["segformer.encoder.block.1.0.mlp.dense1.bias"]
    state["segformer.encoder.block.1.0.mlp.extra.weight"] = np.zeros(3, np.float32)
    state["decode_head.linear_c.0.proj.weight"] = np.zeros((32, 9), np.float32)
    path = str(tmp_path / "model.safetensors")
    tensor_files.write_safetensors(path, state)
    with pytest.raises(importer.SegFormerImportError) as error:
        importer.load_hf_segformer(path)
    message = str(error.value)
    assert f"--checkpoint={path} does not fit" in message
    assert "missing: segformer.encoder.block.1.0.mlp.dense1.bias" in message
    assert "extra: segformer.encoder.block.1.0.mlp.extra.weight" in message
    assert "decode_head.linear_c.0.proj.weight: (32, 9) in the file, (32, 8) expected" in message
    (tmp_path / "run").mkdir()
    with pytest.raises(importer.SegFormerImportError, match="holds none of model.safetensors"):
        importer.load_hf_segformer(str(tmp_path / "run"))
