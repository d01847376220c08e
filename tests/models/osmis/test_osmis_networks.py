"""OSMIS networks: every layer through the shared `run_layer_test`, the architecture's widths and
parameter counts against an independent count, and the feature augmentations."""

import numpy as np
import pytest
import tensorflow as tf
from layer_testing import run_layer_test

from losses import osmis as osmis_losses
from models.osmis import networks as osmis


def _normal(*shape):
    return np.random.RandomState(sum(shape)).randn(*shape).astype("float32")


def _one_hot_masks(n, h, w, k):
    classes = np.random.RandomState(h).randint(0, k, (n, h, w))
    return np.eye(k, dtype="float32")[classes]


LAYER_CASES = [
    (
        osmis.OSMISGeneratorBlock,
        dict(in_channels=8, out_channels=4, upsample=True),
        _normal(2, 3, 5, 8),
        (2, 6, 10, 4),
    ),
    (
        osmis.OSMISGeneratorBlock,
        dict(in_channels=4, out_channels=8, upsample=False),
        _normal(2, 3, 5, 4),
        (2, 3, 5, 8),
    ),
    (
        osmis.OSMISGenerator,
        dict(noise_shape=(3, 4), num_blocks=3, num_classes=3, z_dim=8, ch_g=2),
        _normal(2, 8),
        [(2, 3, 4, 3), (2, 6, 8, 3), (2, 12, 16, 3), (2, 12, 16, 3)],
    ),
    (
        osmis.OSMISDiscriminatorBlock,
        dict(in_channels=4, out_channels=8, preactivate=False),
        _normal(2, 8, 6, 4),
        (2, 4, 3, 8),
    ),
    (
        osmis.OSMISDiscriminatorBlock,
        dict(in_channels=8, out_channels=8, kernel_size=1, downsample=False),
        _normal(6, 1, 1, 8),
        (6, 1, 1, 8),
    ),
    (osmis.OSMISLayoutDecision, {}, _normal(2, 3, 4, 1), (2, 3, 4, 1)),
    (
        osmis.OSMISDiscriminator,
        dict(num_blocks=4, num_blocks_ll=2, ch_d=2),
        [_normal(2, 16, 24, 3), _normal(2, 8, 12, 3)],
        [(2, 8, 12, 1), (2, 4, 6, 1), (2, 1, 1, 1), (2, 1, 1, 1), (2, 2, 3, 1), (2, 1, 1, 1)],
    ),
    (
        osmis.OSMISDiscriminator,
        # One low-level block reads one image (a tensor, not a list: the helper maps dict
        # inputs to `<name>_shape` tuples).
        dict(num_blocks=3, num_blocks_ll=1, num_classes=3, ch_d=2),
        {"images": _normal(2, 16, 16, 3), "masks": _one_hot_masks(2, 16, 16, 3)},
        [(2, 8, 8, 1), (6, 1, 1, 4), (6, 1, 1, 4), (2, 4, 4, 1), (2, 2, 2, 1)],
    ),
]


@pytest.mark.parametrize(
    "layer_cls, init_kwargs, input_data, expected_shape",
    LAYER_CASES,
    ids=[f"{case[0].__name__}-{i}" for i, case in enumerate(LAYER_CASES)],
)
def test_layer(layer_cls, init_kwargs, input_data, expected_shape):
    run_layer_test(
        layer_cls,
        init_kwargs,
        input_data,
        expected_output_shape=expected_shape,
    )


def _conv(k, cin, cout, bias=True):
    return k * k * cin * cout + (cout if bias else 0)


def _generator_count(noise, blocks, k, z, ch):
    c = osmis.generator_channels(blocks, ch)
    total = noise[0] * noise[1] * z * c[0] + c[0]  # transposed conv z -> noise map
    for i in range(blocks):
        middle = min(c[i], c[i + 1])
        total += _conv(3, c[i], middle) + _conv(3, middle, c[i + 1]) + _conv(1, c[i], c[i + 1], 0)
        total += _conv(3, c[i + 1], 3)  # RGB head
    return total + (_conv(3, c[-1], k) if k else 0)


def _discriminator_count(blocks, low, k, ch):
    c = osmis.discriminator_channels(blocks, ch)
    total = 0
    for i in range(low):
        msg = c[0] if i == 0 else max(1, c[i] // 8)
        cin = c[0] if i == 0 else c[i] + msg
        middle = min(cin, c[i + 1])
        total += _conv(3, 3, msg) + _conv(3, cin, middle) + _conv(3, middle, c[i + 1])
        total += _conv(1, cin, c[i + 1], 0) + _conv(1, c[i + 1], 1)
    for j, i in enumerate(range(low, blocks)):
        middle = min(c[i], c[i + 1])  # content: 1x1 convs, shortcut when the width changes
        total += _conv(1, c[i], middle) + _conv(1, middle, c[i + 1])
        total += _conv(1, c[i], c[i + 1], 0) if c[i] != c[i + 1] else 0
        total += _conv(1, c[i + 1], k + 1 if k else 1)
        cin = c[i] if j == 0 else 1  # layout: squeezed to one channel; 1 -> 1: identity shortcut
        total += _conv(3, cin, 1) + _conv(3, 1, 1) + (_conv(1, cin, 1, 0) if cin > 1 else 0)
        total += 1  # the decision: the block's map plus a bias
    return total


def test_paper_widths_and_parameter_counts():
    # 192 x 320 output, 7 blocks (the reference's example), 7 mask classes.
    assert osmis.generator_channels(7, 32) == [256, 256, 256, 256, 256, 128, 64, 32]
    assert osmis.discriminator_channels(7, 32) == [32, 64, 128, 256, 256, 256, 256, 256]
    generator = osmis.OSMISGenerator(noise_shape=(3, 5), num_blocks=7, num_classes=7, z_dim=64)
    generator.build((None, 64))
    discriminator = osmis.OSMISDiscriminator(num_blocks=7, num_blocks_ll=3, num_classes=7)
    discriminator.build([(None, 192 // 2**i, 320 // 2**i, 3) for i in range(3)])
    assert osmis.count_parameters(generator) == _generator_count((3, 5), 7, 7, 64, 32)
    assert osmis.count_parameters(discriminator) == _discriminator_count(7, 3, 7, 32)
    assert generator.output_size == (192, 320)
    # Spectral-norm vectors are state, not parameters.
    assert all("sn_" in w.name for w in generator.non_trainable_weights)


def _branch(variable):
    name = variable.path.split("/")[1]  # discriminator/<layer>/...
    if name.startswith(("rgb", "ll")):
        return "low_level"
    return "content" if name.startswith("content") else "layout"


def test_every_discriminator_variable_learns_from_its_branch():
    # Regression: the layout decisions and the 1 -> 1 shortcuts of the later layout blocks were
    # spectral-norm 1 x 1 convs of one channel, i.e. sign(W) frozen at initialisation (zero
    # gradient), and consecutive layout decisions could disagree in sign (that branch then
    # stayed near chance). Every variable must now get a gradient from its own branch's loss.
    d = osmis.OSMISDiscriminator(num_blocks=5, num_blocks_ll=2, num_classes=3, ch_d=4)
    real = [tf.constant(_normal(2, 32 // 2**i, 48 // 2**i, 3)) for i in range(2)]
    fake = [tf.tanh(2 * tf.constant(_normal(3, 32 // 2**i, 48 // 2**i, 3))) for i in range(2)]
    real_masks = tf.constant(_one_hot_masks(2, 32, 48, 3))
    fake_masks = tf.constant(_one_hot_masks(3, 32, 48, 3)[..., ::-1].copy())
    d.build([tuple(x.shape) for x in real])
    variables = d.trainable_variables
    with tf.GradientTape(persistent=True) as tape:
        r = d.split(d(real, masks=real_masks, training=True))
        f = d.split(d(fake, masks=fake_masks, training=True))
        losses = {
            "content": tf.add_n(
                [osmis_losses.content_segmentation_loss(x, real_masks, True) for x in r["content"]]
                + [
                    osmis_losses.content_segmentation_loss(x, fake_masks, False)
                    for x in f["content"]
                ]
            )
        }
        for branch in ("low_level", "layout"):
            losses[branch] = tf.add_n(
                [osmis_losses.adversarial_loss(x, True, True) for x in r[branch]]
                + [osmis_losses.adversarial_loss(x, False, True) for x in f[branch]]
            )
    assert {_branch(v) for v in variables} == set(losses)
    for branch, loss in losses.items():
        own = [v for v in variables if _branch(v) == branch]
        for v, g in zip(own, tape.gradient(loss, own)):
            assert g is not None and float(tf.reduce_max(tf.abs(g))) > 0, (branch, v.path)
    # The layout decision is the block's one-channel map plus a bias: d decision / d map = 1.
    decision = d.final_layout[1]
    x = tf.constant(_normal(2, 3, 4, 1))
    np.testing.assert_allclose(decision(x) - x, np.broadcast_to(decision.bias.numpy(), x.shape))


def test_content_feature_augmentation():
    y = tf.constant(_normal(4, 1, 1, 20))
    seed = tf.constant([1, 2], tf.int64)
    np.testing.assert_array_equal(osmis.content_feature_augmentation(y, seed, 0.0), y)
    # Mixing swaps channels inside pairs (0, 1) and (2, 3): the pair's multiset is kept, unless
    # dropped (zeroed for every sample alike).
    out = osmis.content_feature_augmentation(y, seed, 1.0).numpy()
    dropped = np.all(out == 0, axis=(0, 1, 2))
    assert 2 <= dropped.sum() <= 6
    x = y.numpy()
    for a, b in ((0, 1), (2, 3)):
        kept = ~dropped
        pair_in = np.sort(np.stack([x[a], x[b]])[..., kept], axis=0)
        pair_out = np.sort(np.stack([out[a], out[b]])[..., kept], axis=0)
        np.testing.assert_allclose(pair_in, pair_out)
        swapped = (out[a] == x[b]) & kept
        assert 1 <= swapped.sum() <= 6


def test_layout_feature_augmentation_never_cuts_objects():
    y = tf.constant(_normal(4, 8, 8, 3))
    seed = tf.constant([3, 4], tf.int64)
    # Without masks: pairs swap one rectangle.
    out = osmis.layout_feature_augmentation(y, None, seed, 1.0).numpy()
    x = y.numpy()
    changed = np.any(out != x, axis=-1)  # [N, 8, 8]
    assert changed[0].any()
    np.testing.assert_array_equal(out[0][changed[0]], x[1][changed[0]])
    np.testing.assert_array_equal(changed[0], changed[1])
    # Masks whose objects cover everything: nothing may move.
    full = np.zeros((4, 8, 8, 3), "float32")
    full[..., 1] = 1
    np.testing.assert_array_equal(osmis.layout_feature_augmentation(y, full, seed, 1.0), x)
    # Background only: rectangles swap as without masks.
    background = np.zeros((4, 8, 8, 3), "float32")
    background[..., 0] = 1
    np.testing.assert_array_equal(
        osmis.layout_feature_augmentation(y, background, seed, 1.0).numpy(), out
    )
    # One small object on background: where it moves, its features come along.
    masks = background.copy()
    masks[:, 1:3, 1:3] = [0, 0, 1]
    moved = osmis.layout_feature_augmentation(y, masks, seed, 1.0).numpy()
    assert np.isfinite(moved).all() and moved.shape == x.shape
