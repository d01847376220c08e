import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from datasets.class_weights import (
    class_weights_from_frequencies,
    count_pixels,
    frequencies_from_counts,
)
from datasets.pairs import DatasetError
from losses.segmentation import (
    cross_entropy,
    power_jaccard_loss,
    segmentation_loss,
    upsample_logits,
)

# Pixel frequencies (%) of FaceSynthetics reported by the reference, classes 0..18.
FACE_FREQUENCIES = [
    62.48,
    8.61,
    0.75,
    0.053,
    0.053,
    0.110,
    0.111,
    0.189,
    0.194,
    0.109,
    0.183,
    0.210,
    1.66,
    8.46,
    0.670,
    14.72,
    0.164,
    1.28,
    0.0,
]


def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def numpy_ce(logits, labels, weights=None, ignore=255):
    """Per-pixel CE in numpy, then (weighted) mean over labelled pixels."""
    valid = labels != ignore
    safe = np.where(valid, labels, 0)
    ce = -np.take_along_axis(log_softmax(logits), safe[..., None], -1)[..., 0]
    w = valid * (1.0 if weights is None else np.asarray(weights)[safe])
    return (w * ce).sum() / w.sum()


def numpy_jaccard(logits, labels, q=2.0, eps=1e-7, ignore=255):
    valid = (labels != ignore)[..., None]
    p = np.exp(log_softmax(logits)) * valid
    y = np.eye(logits.shape[-1])[np.where(valid[..., 0], labels, 0)] * valid
    inter = (p * y).sum()
    return 1.0 - (inter + eps) / ((p**q + y**q).sum() - inter + eps)


@pytest.fixture
def example():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 4, 5, 3)).astype(np.float32) * 2.0
    labels = rng.integers(0, 3, (2, 4, 5)).astype(np.int32)
    labels[0, 0, :3] = 255
    labels[1, 3, 4] = 255
    return logits, labels


# ------------------------------------------------------------------------------------------
# Cross-entropy
# ------------------------------------------------------------------------------------------


def test_cross_entropy_hand_computed():
    # Two labelled pixels and one ignored: CE = mean(-log softmax(l)[y]).
    logits = np.array([[[[2.0, 0.0], [0.0, 0.0], [9.0, -9.0]]]], np.float32)  # [1, 1, 3, 2]
    labels = np.array([[[0, 1, 255]]])
    expected = (np.log(1.0 + np.exp(-2.0)) + np.log(2.0)) / 2.0
    assert float(cross_entropy(logits, labels)) == pytest.approx(expected, rel=1e-6)


def test_cross_entropy_matches_numpy_and_ignores_ignored_pixels(example):
    logits, labels = example
    loss = cross_entropy(logits, labels)
    assert loss.dtype == tf.float32 and loss.shape == ()
    assert float(loss) == pytest.approx(numpy_ce(logits, labels), rel=1e-5)
    changed = logits.copy()
    changed[labels == 255] = 50.0 * np.array([1.0, -1.0, 3.0])
    assert float(cross_entropy(changed, labels)) == pytest.approx(float(loss), rel=1e-6)


def test_cross_entropy_class_weights_are_a_weighted_mean(example):
    logits, labels = example
    weights = [0.2, 1.5, 0.7]
    loss = float(cross_entropy(logits, labels, class_weights=weights))
    assert loss == pytest.approx(numpy_ce(logits, labels, weights), rel=1e-5)
    # Uniform weights of any scale give the unweighted mean.
    assert float(cross_entropy(logits, labels, class_weights=[3.0] * 3)) == pytest.approx(
        float(cross_entropy(logits, labels)), rel=1e-6
    )
    with pytest.raises(ValueError, match="len\\(class_weights\\)=2"):
        cross_entropy(logits, labels, class_weights=[1.0, 1.0])


def test_all_ignored_batch_gives_zero_not_nan(example):
    logits, labels = example
    ignored = np.full_like(labels, 255)
    assert float(cross_entropy(logits, ignored)) == 0.0
    assert float(cross_entropy(logits, ignored, class_weights=[1.0, 2.0, 3.0])) == 0.0
    assert float(power_jaccard_loss(logits, ignored, 3)) == pytest.approx(0.0, abs=1e-6)


def test_logits_are_upsampled_bilinearly_to_the_label_size():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(1, 2, 2, 3)).astype(np.float32)
    labels = rng.integers(0, 3, (1, 4, 4)).astype(np.int32)
    # Half-pixel bilinear 2 -> 4 (PyTorch align_corners=False): output rows/columns sample
    # the input at -0.25, 0.25, 0.75, 1.25, clamped at the borders.
    m = np.array([[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])
    upsampled = np.einsum("hi,wj,nijc->nhwc", m, m, logits)
    np.testing.assert_allclose(upsample_logits(logits, (4, 4)), upsampled, rtol=1e-5)
    assert float(cross_entropy(logits, labels)) == pytest.approx(
        numpy_ce(upsampled, labels), rel=1e-5
    )
    assert float(power_jaccard_loss(logits, labels, 3)) == pytest.approx(
        numpy_jaccard(upsampled, labels), rel=1e-5
    )


def test_half_precision_logits_give_float32_losses(example):
    logits, labels = example
    loss = segmentation_loss(tf.constant(logits, tf.float16), labels, 3, jaccard_weight=1.0)
    assert loss.dtype == tf.float32 and np.isfinite(float(loss))


def test_shape_errors_name_the_argument(example):
    logits, labels = example
    with pytest.raises(ValueError, match="logits must be"):
        cross_entropy(logits[0], labels)
    with pytest.raises(ValueError, match="labels must be"):
        cross_entropy(logits, labels[..., None])
    with pytest.raises(ValueError, match="num_classes=4"):
        power_jaccard_loss(logits, labels, 4)


# ------------------------------------------------------------------------------------------
# Power Jaccard and the combination
# ------------------------------------------------------------------------------------------


def test_power_jaccard_hand_computed():
    # p = softmax([log 3, 0]) = (0.75, 0.25) on one pixel of class 0, q = 2:
    # sum(p*y) = 0.75, sum(p^2 + y^2) = 0.5625 + 0.0625 + 1 = 1.625.
    logits = np.array([[[[np.log(3.0), 0.0]]]], np.float32)
    labels = np.array([[[0]]])
    expected = 1.0 - 0.75 / (1.625 - 0.75)
    loss = float(power_jaccard_loss(logits, labels, 2, eps=0.0))
    assert loss == pytest.approx(expected, rel=1e-6)
    # q = 1: the soft Jaccard 1 - 0.75 / (1 + 1 - 0.75).
    assert float(power_jaccard_loss(logits, labels, 2, q=1.0, eps=0.0)) == pytest.approx(
        1.0 - 0.75 / 1.25, rel=1e-6
    )


def test_power_jaccard_matches_numpy_and_ignores_ignored_pixels(example):
    logits, labels = example
    loss = float(power_jaccard_loss(logits, labels, 3))
    assert loss == pytest.approx(numpy_jaccard(logits, labels), rel=1e-5)
    assert 0.0 < loss < 1.0
    changed = logits.copy()
    changed[labels == 255] = -20.0
    assert float(power_jaccard_loss(changed, labels, 3)) == pytest.approx(loss, rel=1e-6)
    perfect = 30.0 * np.eye(3, dtype=np.float32)[np.where(labels == 255, 0, labels)]
    assert float(power_jaccard_loss(perfect, labels, 3)) == pytest.approx(0.0, abs=1e-5)


def test_segmentation_loss_combines_the_terms(example):
    logits, labels = example
    ce = float(cross_entropy(logits, labels, class_weights=[1.0, 2.0, 3.0]))
    jaccard = float(power_jaccard_loss(logits, labels, 3))
    assert float(segmentation_loss(logits, labels, 3)) == pytest.approx(
        float(cross_entropy(logits, labels)), rel=1e-6
    )  # default: CE only
    combined = segmentation_loss(
        logits, labels, 3, class_weights=[1.0, 2.0, 3.0], ce_weight=1.0, jaccard_weight=1.0
    )
    assert float(combined) == pytest.approx(ce + jaccard, rel=1e-5)
    assert float(
        segmentation_loss(logits, labels, 3, ce_weight=0.0, jaccard_weight=2.0)
    ) == pytest.approx(2.0 * jaccard, rel=1e-5)


def test_gradients_are_finite_and_zero_for_ignored_pixels():
    rng = np.random.default_rng(2)
    logits = tf.Variable(rng.normal(size=(2, 4, 4, 5)).astype(np.float32))  # 1/4 of 16 x 16
    labels = rng.integers(0, 5, (2, 16, 16)).astype(np.int32)
    labels[1] = 255  # the second image is entirely ignored
    with tf.GradientTape() as tape:
        loss = segmentation_loss(
            logits, labels, 5, class_weights=[0.1, 0.2, 0.3, 0.2, 0.2], jaccard_weight=1.0
        )
    gradient = tape.gradient(loss, logits).numpy()
    assert np.isfinite(gradient).all()
    assert np.abs(gradient[0]).sum() > 0 and np.abs(gradient[1]).max() == 0.0


# ------------------------------------------------------------------------------------------
# Class weights
# ------------------------------------------------------------------------------------------


def test_class_weights_of_the_facesynthetics_frequencies():
    weights = class_weights_from_frequencies(FACE_FREQUENCIES)
    assert weights.shape == (19,) and weights[18] == 0.0
    assert weights.sum() == pytest.approx(1.0)
    inverse = 1.0 / np.array(FACE_FREQUENCIES[:18])
    np.testing.assert_allclose(weights[:18], inverse / inverse.sum())
    # Rarer classes weigh more: ordering inverse to frequency (eyes 3 and 4 tie).
    order = np.argsort(FACE_FREQUENCIES[:18], kind="stable")
    assert np.all(np.diff(weights[order]) <= 0)
    assert weights[3] == weights[4] == weights.max()
    assert weights[0] == weights[:18].min()


def test_class_weights_errors():
    with pytest.raises(ValueError, match="all zero"):
        class_weights_from_frequencies([0.0, 0.0])
    with pytest.raises(ValueError, match="non-negative"):
        class_weights_from_frequencies([1.0, -1.0])


def write_labels(folder, labels):
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    os.makedirs(os.path.join(folder, "labels"), exist_ok=True)
    pairs = []
    for k, label in enumerate(labels):
        image = os.path.join(folder, "images", f"{k}.png")
        label_path = os.path.join(folder, "labels", f"{k}.png")
        Image.fromarray(np.zeros(label.shape + (3,), np.uint8)).save(image)
        Image.fromarray(label.astype(np.uint8)).save(label_path)
        pairs.append((image, label_path))
    return pairs


def test_count_pixels_maps_labels_and_skips_ignore(tmp_path):
    labels = [np.array([[0, 1], [1, 255]]), np.array([[2, 2, 2], [1, 0, 255]])]
    pairs = write_labels(str(tmp_path), labels)
    counts = count_pixels(pairs, num_classes=3)
    assert counts.tolist() == [2, 3, 3]
    np.testing.assert_allclose(frequencies_from_counts(counts), [25.0, 37.5, 37.5])
    with pytest.raises(DatasetError, match=r"(?s)1\.png.*\b2\b"):
        count_pixels(pairs, num_classes=2)


def test_class_weights_command_line(tmp_path, capsys):
    from tools.class_weights import main

    pairs = write_labels(str(tmp_path / "data"), [np.array([[0, 0, 0], [1, 255, 0]])])
    output = str(tmp_path / "weights.json")
    args = [
        "--dataset=folders",
        f"--image_dir={tmp_path / 'data' / 'images'}",
        f"--label_dir={tmp_path / 'data' / 'labels'}",
        "--num_classes=3",
        f"--output={output}",
        "--no-progress",
    ]
    main(args)
    with open(output) as file:
        written = json.load(file)
    np.testing.assert_allclose(written["frequencies"], [80.0, 20.0, 0.0])
    np.testing.assert_allclose(written["weights"], [0.2, 0.8, 0.0])
    assert written["pixel_counts"] == [4, 1, 0] and len(pairs) == written["num_files"]

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert "weights.json already exists" in message and "--overwrite" in message
    main(args + ["--overwrite"])

    with pytest.raises(SystemExit):
        main(["--dataset=folders", f"--output={tmp_path / 'other.json'}"])
    assert "--num_classes" in capsys.readouterr().err
