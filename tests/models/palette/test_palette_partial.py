"""Semantic Palette partial editing (stage=partial): bands, the trainer's steps, the merge that
keeps the input outside the band, the serve_partial SavedModel and its bad-band errors."""

import types

import numpy as np
import pytest
import tensorflow as tf

from models.palette import bands as bands_lib
from models.palette.export import PartialEditor, export_partial
from models.palette.trainer import PalettePartialGAN

C = 5
LABELS = types.SimpleNamespace(name="toy", names=tuple(f"c{i}" for i in range(C)))
TINY = dict(
    num_classes=C,
    z_dim=8,
    num_levels=2,  # 4x8, 8x16
    channel_base=16,
    max_channels=8,
    spade_hidden=4,
    fade_steps=1,
    stable_steps=1,
    band_min_width=0.25,
    band_max_width=0.5,
)


def _layouts(rng, n=4, size=(8, 16)):
    ids = rng.integers(0, C, size=(n, *size))
    ids[:, :, : size[1] // 2] = 0  # some structure: the left half one class
    return ids.astype(np.uint8), np.eye(C, dtype=np.float32)[ids]


def test_bands_are_drawn_inside_the_layout_and_checked():
    seed = tf.constant([3, 4], tf.int64)
    bands = bands_lib.draw_bands(seed, 200, 16, 4, 8).numpy()
    widths = bands[:, 1] - bands[:, 0]
    assert widths.min() == 4 and widths.max() == 8  # every width reached, none outside
    assert bands[:, 0].min() == 0 and bands[:, 1].max() == 16
    np.testing.assert_array_equal(bands, bands_lib.draw_bands(seed, 200, 16, 4, 8))  # stateless
    keep = bands_lib.keep_masks(np.array([[2, 5], [0, 16]]), 3, 16).numpy()
    assert keep.shape == (2, 3, 16, 1) and keep[1].sum() == 0
    np.testing.assert_array_equal(keep[0, 0, :, 0], [1, 1, 0, 0, 0] + [1] * 11)
    assert bands_lib.check_bands([[0, 16]], 8, 16).dtype == np.int32
    bad = {
        "[[4, 4]]": "band 1 .4, 4. must be a non-empty column range inside the 8x16 layout",
        "[[0, 4], [10, 17]]": r"band 2 \(10, 17\).*0 <= start < end <= 16",
        "[[-1, 3]]": "band 1",
        "[[0.5, 3]]": "integer",
    }
    for text, message in bad.items():
        with pytest.raises(bands_lib.BandError, match=message):
            bands_lib.check_bands(np.array(eval(text)), 8, 16)
    with pytest.raises(bands_lib.BandError, match="2 bands for 3 layouts"):
        bands_lib.check_bands([[0, 1], [0, 1]], 8, 16, count=3)


@pytest.fixture(scope="module")
def partial_gan():
    """A tiny partial GAN after 4 steps (level 0 twice, level 1 fading in, level 1), run
    eagerly: tracing both levels' graphs would take ~30 s (the engine's tf.function path is
    the slow tier's, test_palette_e2e.py)."""
    gan = PalettePartialGAN(**TINY)
    rng = np.random.default_rng(0)
    _, one_hot = _layouts(rng)
    batch = {"layout": one_hot, "proportions": one_hot.mean(axis=(1, 2))}
    before = [v.numpy().copy() for v in gan.generator.trainable_variables]
    losses = []
    for _ in range(4):
        losses.append({k: float(v) for k, v in gan.train_step(batch).items()})
        gan.step.assign_add(1)
    return {"gan": gan, "losses": losses, "before": before}


def test_partial_training_steps_are_finite_and_train_the_generator(partial_gan):
    gan, losses = partial_gan["gan"], partial_gan["losses"]
    assert [(x["level"], x["alpha"]) for x in losses] == [(0, 1), (0, 1), (1, 0), (1, 1)]
    assert all(np.isfinite(v) for x in losses for v in x.values())
    changed = [
        not np.allclose(a, b.numpy())
        for a, b in zip(partial_gan["before"], gan.generator.trainable_variables)
    ]
    assert sum(changed) > len(changed) // 2
    # The bands are keyed by the step: the same step draws the same bands, another step others.
    assert gan.band_widths() == (4, 8)
    np.testing.assert_array_equal(gan.draw_keep(4, 100), gan.draw_keep(4, 100))
    gan.step.assign_add(1)
    other = gan.draw_keep(4, 100)
    gan.step.assign_add(-1)
    assert not np.array_equal(gan.draw_keep(4, 100), other)


def test_partial_edit_keeps_the_input_outside_the_band_exactly(partial_gan):
    gan = partial_gan["gan"]
    rng = np.random.default_rng(1)
    _, one_hot = _layouts(rng, n=3)
    keep = bands_lib.keep_masks(np.array([[0, 4], [6, 14], [12, 16]]), 8, 16)
    delta = bands_lib.band_mass(one_hot, keep)
    z = rng.standard_normal((3, 8)).astype(np.float32)
    edited = gan.edit(z, one_hot, keep, delta).numpy()  # level 1, alpha 1: 8x16
    outside = keep.numpy()[..., 0] == 1
    np.testing.assert_array_equal(edited[outside], one_hot[outside])
    assert not np.allclose(edited[~outside], one_hot[~outside], atol=1e-3)
    np.testing.assert_allclose(edited.sum(-1), 1.0, rtol=1e-5)
    with pytest.raises(TypeError, match="edit"):
        gan.generate(z, delta)


def test_partial_export_equals_keras_and_refuses_bad_bands(partial_gan, tmp_path):
    gan = partial_gan["gan"]
    path = export_partial(gan, str(tmp_path / "partial"), LABELS)
    editor = PartialEditor(path)
    assert (editor.height, editor.width, editor.num_classes, editor.z_dim) == (8, 16, C, 8)
    rng = np.random.default_rng(2)
    ids, one_hot = _layouts(rng, n=2)
    bands = np.array([[3, 9], [0, 5]], np.int32)
    change = np.zeros((2, C), np.float32)
    change[:, 1], change[:, 0] = 0.1, -0.1  # more of class 1, less of class 0
    z = rng.standard_normal((2, 8)).astype(np.float32)
    out = editor(ids, bands, change, z)
    keep = bands_lib.keep_masks(bands, 8, 16)
    keras_soft = gan.edit(z, one_hot, keep, bands_lib.network_delta(one_hot, keep, change))
    np.testing.assert_allclose(out["layout_soft"], keras_soft, rtol=1e-5, atol=1e-6)
    outside = keep.numpy()[..., 0] == 1
    np.testing.assert_array_equal(out["layout"][outside], ids[outside])
    assert out["layout"].dtype == np.uint8 and out["layout"].shape == (2, 8, 16)
    # Bad requests: named before the model runs ...
    with pytest.raises(bands_lib.BandError, match=r"band 2 \(12, 20\).*<= 16"):
        editor(ids, [[0, 4], [12, 20]], change, z)
    with pytest.raises(bands_lib.BandError, match=r"deltas must be \[2, 5\]"):
        editor(ids, bands, change[:, :3], z)
    with pytest.raises(bands_lib.BandError, match="layout value 7"):
        editor(np.full_like(ids, 7), bands, change, z)
    # ... and refused by the SavedModel's own check.
    module = tf.saved_model.load(path)
    with pytest.raises(tf.errors.InvalidArgumentError, match="0 <= start < end <="):
        module.serve_partial(
            tf.constant(ids), tf.constant([[5, 5], [0, 3]], tf.int32), change, tf.constant(z)
        )
