"""models/stylegan2/importer.py and tools/import_stylegan2.py: rosinality's {g, d, g_ema}
checkpoints -> our generator / EMA / discriminator, name by name, and into a run directory."""

import types

import numpy as np
import pytest
import tensorflow as tf

from core import tensor_files
from models.stylegan2 import importer
from models.stylegan2 import networks as sg2
from models.stylegan2.config import StyleGAN2Config
from models.stylegan2.trainer import StyleGAN2GAN
from tools import import_stylegan2
from training import run_dir as run_dir_lib

TINY = dict(resolution=16, z_dim=8, w_dim=8, mapping_layers=2, width=1.0 / 64)


def _randomise(network, rng):
    for variable in network.weights:
        variable.assign((0.3 * rng.standard_normal(variable.shape)).astype("float32"))
    return network


@pytest.fixture(scope="module")
def nets():
    rng = np.random.default_rng(0)
    return types.SimpleNamespace(
        generator=_randomise(sg2.StyleGAN2Generator(**TINY), rng),
        generator_ema=_randomise(sg2.StyleGAN2Generator(**TINY), rng),
        discriminator=_randomise(sg2.StyleGAN2Discriminator(resolution=16, width=1.0 / 64), rng),
    )


def _state(nets):
    return {
        "g": importer.export_state_dict(importer.generator_mapping(nets.generator)),
        "g_ema": importer.export_state_dict(importer.generator_mapping(nets.generator_ema)),
        "d": importer.export_state_dict(importer.discriminator_mapping(nets.discriminator)),
        "g_optim": {"state": {}, "param_groups": [{"lr": 0.002}]},
        "args": {"size": 16, "channel_multiplier": 2},
    }


def test_mapping_covers_every_variable_with_rosinality_names(nets):
    for network, mapping in (
        (nets.generator, importer.generator_mapping(nets.generator)),
        (nets.discriminator, importer.discriminator_mapping(nets.discriminator)),
    ):
        assert sorted(id(v) for v, _, _, _ in mapping) == sorted(id(v) for v in network.weights)
    g = {name: shape for _, name, shape, _ in importer.generator_mapping(nets.generator)}
    c = 8  # 512 / 64 at every resolution up to 32 px
    assert g["style.1.weight"] == (8, 8) and g["style.2.bias"] == (8,)
    assert g["input.input"] == (1, c, 4, 4)
    assert g["conv1.conv.weight"] == (1, c, c, 3, 3)
    assert g["conv1.conv.modulation.weight"] == (c, 8)
    assert g["conv1.noise.weight"] == (1,) and g["conv1.activate.bias"] == (c,)
    assert g["to_rgb1.conv.weight"] == (1, 3, c, 1, 1) and g["to_rgb1.bias"] == (1, 3, 1, 1)
    assert g["convs.3.conv.weight"] == (1, c, c, 3, 3) and "convs.4.conv.weight" not in g
    assert g["to_rgbs.1.bias"] == (1, 3, 1, 1) and g["noises.noise_4"] == (1, 1, 16, 16)
    d = {name: shape for _, name, shape, _ in importer.discriminator_mapping(nets.discriminator)}
    assert d["convs.0.0.weight"] == (c, 3, 1, 1) and d["convs.2.skip.1.weight"] == (c, c, 1, 1)
    assert d["convs.1.conv2.1.weight"] == (c, c, 3, 3) and d["final_conv.0.weight"] == (
        c,
        c + 1,
        3,
        3,
    )
    assert d["final_linear.0.weight"] == (c, 16 * c) and d["final_linear.1.weight"] == (1, c)


def test_final_linear_flattens_like_pytorch(nets):
    # rosinality flattens the final [N, C, 4, 4] map channel-major; we flatten [N, 4, 4, C].
    dense = nets.discriminator.final_dense
    torch_weight = importer.to_torch_layout(dense.kernel.numpy(), "nchw_linear", None)
    x = np.random.default_rng(3).standard_normal((2, 4, 4, 8)).astype("float32")
    theirs = x.transpose(0, 3, 1, 2).reshape(2, -1) @ torch_weight.T
    ours = x.reshape(2, -1) @ dense.kernel.numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def test_round_trip_through_a_torch_checkpoint_is_exact(nets, tmp_path):
    state = _state(nets)
    path = str(tmp_path / "010000.pt")
    tensor_files.write_torch_checkpoint(path, state)
    rng = np.random.default_rng(9)
    fresh = types.SimpleNamespace(
        generator=_randomise(sg2.StyleGAN2Generator(**TINY), rng),
        generator_ema=_randomise(sg2.StyleGAN2Generator(**TINY), rng),
        discriminator=_randomise(sg2.StyleGAN2Discriminator(resolution=16, width=1.0 / 64), rng),
    )
    assert importer.load_into(fresh, path) == []
    for name in ("generator", "generator_ema", "discriminator"):
        for a, b in zip(getattr(fresh, name).weights, getattr(nets, name).weights, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=f"{name} {a.path}")
    z = tf.random.stateless_normal((2, 8), seed=[1, 2])
    np.testing.assert_array_equal(
        fresh.generator_ema(z, noise_mode="const"), nets.generator_ema(z, noise_mode="const")
    )
    images = tf.random.stateless_normal((2, 16, 16, 3), seed=[3, 4])
    np.testing.assert_array_equal(fresh.discriminator(images), nets.discriminator(images))
    arch = importer.infer_architecture(state["g_ema"], "x")
    assert arch == {
        "resolution": 16,
        "z_dim": 8,
        "w_dim": 8,
        "mapping_layers": 2,
        "channel_multiplier": 2,
        "width": 1.0 / 64,
    }


def test_run_directory_and_name_errors(nets, tmp_path):
    # One channel per layer (width 1/512): the run's trainer builds the same networks whether
    # it reads `width` as a scale or truncates it to an int (StyleGAN2GAN does, at present).
    rng = np.random.default_rng(5)
    one = dict(TINY, width=1.0 / 512)
    narrow = types.SimpleNamespace(
        generator=_randomise(sg2.StyleGAN2Generator(**one), rng),
        generator_ema=_randomise(sg2.StyleGAN2Generator(**one), rng),
        discriminator=_randomise(sg2.StyleGAN2Discriminator(resolution=16, width=1 / 512), rng),
    )
    state = _state(narrow)
    path = str(tmp_path / "ckpt.pt")
    tensor_files.write_torch_checkpoint(path, state, legacy=True)
    run = tmp_path / "run"
    import_stylegan2.main([f"--checkpoint={path}", f"--output_dir={run}", "--set=batch_size=2"])
    config = run_dir_lib.load_run_config(str(run), StyleGAN2Config)
    assert (config.resolution, config.z_dim, config.batch_size) == (16, 8, 2)
    gan = StyleGAN2GAN.from_run_config(config)
    checkpoint = tf.train.Checkpoint(**gan.checkpoint_objects())
    checkpoint.restore(str(run / "checkpoints" / "ckpt-0")).assert_existing_objects_matched()
    for name in ("generator", "generator_ema", "discriminator"):
        for a, b in zip(getattr(gan, name).weights, getattr(narrow, name).weights, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=f"{name} {a.path}")

    state = _state(nets)
    with pytest.raises(SystemExit):  # no overwrite without --overwrite
        import_stylegan2.main([f"--checkpoint={path}", f"--output_dir={run}"])

    del state["d"]["final_conv.1.bias"]
    state["g_ema"]["convs.0.conv.weight"] = np.zeros((1, 8, 8, 1, 1), np.float32)
    state["g_ema"]["latent_extra"] = np.zeros(3, np.float32)
    bad = str(tmp_path / "bad.pt")
    tensor_files.write_torch_checkpoint(bad, state)
    with pytest.raises(importer.StyleGAN2ImportError) as error:
        importer.load_into(nets, bad)
    message = str(error.value)
    assert f"--checkpoint={bad} [g_ema] does not fit" in message
    assert "extra: latent_extra" in message
    assert "convs.0.conv.weight: (1, 8, 8, 1, 1) in the file, (1, 8, 8, 3, 3) expected" in message
    tensor_files.write_torch_checkpoint(bad, {"g": state["g"]})
    with pytest.raises(importer.StyleGAN2ImportError, match="has no 'g_ema' state dict"):
        importer.read_rosinality(bad)
