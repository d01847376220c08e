"""The FaceSynthetics SegFormer seed's data: its prepared folder layout and its albumentations
(elastic / grid / optical distortion, CLAHE, brightness-contrast, gamma) as tf.data ops, each
run eagerly and inside tf.data."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import datasets
from datasets import DatasetError
from datasets import augmentations as aug
from datasets.pairs import facesynthetics_pairs
from datasets.segmentation import make_seg_train_dataset

SEED = (3, 4)


def seed_layout(root, split, ids, size=32):
    """The seed's input/<split>/{images,annotations}/ with {id}.png and {id}_seg.png."""
    rng = np.random.default_rng(len(ids))
    for k in ids:
        label = np.zeros((size, size), np.uint8)
        label[size // 4 : 3 * size // 4, size // 4 : size // 2] = 3  # a right eye
        label[size // 4 : 3 * size // 4, size // 2 : 3 * size // 4] = 4  # a left eye
        label[3 * size // 4 :] = k % 19
        image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        for folder, name, array in (
            ("images", f"{k:06d}.png", image),
            ("annotations", f"{k:06d}_seg.png", label),
        ):
            os.makedirs(root / split / folder, exist_ok=True)
            Image.fromarray(array).save(root / split / folder / name)


def blocks(height=48, width=40):
    """A label of large blocks and an image whose grey value is 30 * label (constant per block)."""
    label = np.zeros((height, width), np.int32)
    label[8:30, 4:22] = 3
    label[12:40, 22:36] = 4
    label[40:] = 7
    image = np.repeat((30.0 * label)[..., None], 3, -1).astype(np.float32)
    return image, label


def in_tf_data(fn, *arrays):
    """fn on `arrays` inside tf.data, their height and width unknown to the graph."""
    specs = tuple(tf.TensorSpec((None, None) + a.shape[2:], tf.as_dtype(a.dtype)) for a in arrays)
    dataset = tf.data.Dataset.from_generator(lambda: iter([arrays]), output_signature=specs)
    return next(iter(dataset.map(fn)))


# ------------------------------------------------------------------------------------------
# The prepared layout input/{train,val}/{images,annotations}/
# ------------------------------------------------------------------------------------------


def test_the_seed_prepared_layout_is_read(tmp_path):
    root = tmp_path / "input"
    seed_layout(root, "train", range(3))
    seed_layout(root, "val", range(3, 5))
    train = facesynthetics_pairs(str(root), "training")
    assert [(os.path.basename(i), os.path.basename(lab)) for i, lab in train] == [
        (f"{k:06d}.png", f"{k:06d}_seg.png") for k in range(3)
    ]
    assert all("/images/" in i and "/annotations/" in lab for i, lab in train)
    # The one resolver every command uses reads it too (--dataset=facesynthetics).
    val = datasets.resolve_pairs("facesynthetics", "validation", data_root=str(root))
    assert [os.path.basename(i) for i, _ in val] == ["000003.png", "000004.png"]
    # A single prepared folder is split 90/10 like a flat one.
    single = facesynthetics_pairs(str(root / "train"), "validation")
    assert len(single) == 1 and single[0] in train


def test_the_prepared_layout_errors_name_the_folder_or_file(tmp_path):
    root = tmp_path / "input"
    seed_layout(root, "train", range(3))
    seed_layout(root, "val", range(3, 4))
    os.remove(root / "train" / "annotations" / "000001_seg.png")
    with pytest.raises(DatasetError, match="no label map in .*train/annotations: 000001"):
        facesynthetics_pairs(str(root), "training")
    os.rename(root / "val" / "annotations", root / "val" / "labels")
    with pytest.raises(FileNotFoundError, match="val/annotations does not exist.*images"):
        facesynthetics_pairs(str(root), "validation")
    for name in os.listdir(root / "train" / "annotations"):  # labels without the _seg suffix
        os.rename(root / "train" / "annotations" / name, root / "train" / "annotations" / "x.png")
    with pytest.raises(DatasetError, match=r"no \{id\}_seg.png annotations"):
        facesynthetics_pairs(str(root), "training")


# ------------------------------------------------------------------------------------------
# The ops
# ------------------------------------------------------------------------------------------


def test_reflect_101_folds_indices_as_opencv():
    index = tf.range(-3, 8)
    assert aug.reflect_101(index, 4).numpy().tolist() == [3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1]
    assert aug.reflect_101(index, 1).numpy().tolist() == [0] * 11


DISTORTIONS = {
    "elastic": aug.elastic_transform,
    "grid": aug.grid_distortion,
    "optical": aug.optical_distortion,
}


def test_distortions_at_zero_strength_keep_image_and_label():
    image, label = blocks()
    for distorted in (
        aug.elastic_transform(image, label, SEED, alpha=0.0, alpha_affine=0.0),
        aug.grid_distortion(image, label, SEED, distort_limit=0.0),
        aug.optical_distortion(image, label, SEED, distort_limit=0.0, shift_limit=0.0),
    ):
        np.testing.assert_allclose(distorted[0].numpy(), image, atol=0.01)
        np.testing.assert_array_equal(distorted[1].numpy(), label)


@pytest.mark.parametrize("name", sorted(DISTORTIONS))
def test_a_distortion_moves_image_and_label_together(name):
    image, label = blocks()
    out_image, out_label = DISTORTIONS[name](image, label, SEED)
    out_image, out_label = out_image.numpy(), out_label.numpy()
    assert out_image.shape == image.shape and out_label.dtype == np.int32
    moved = np.mean(out_label != label)
    assert moved > 0.02, f"{name} left {1 - moved:.0%} of the label in place"
    # Nearest for the label: only the input's classes, never a blend.
    assert set(np.unique(out_label)) <= set(np.unique(label))
    # The image's grey value is 30 * label: wherever the bilinear image is not a blend of two
    # classes (a multiple of 30), it names the label's class there.
    classes = out_image[..., 0] / 30.0
    pure = np.abs(classes - np.round(classes)) < 0.02
    assert pure.mean() > 0.8
    agree = np.round(classes[pure]) == out_label[pure]
    assert agree.mean() > 0.99, f"{name}: image and label moved apart"


def test_lens_distortion_follows_the_radial_formula():
    # A centred square class: k > 0 reads farther out (the square shrinks), k < 0 nearer in.
    label = np.zeros((41, 45), np.int32)
    label[10:31, 12:33] = 1
    image = np.repeat((30.0 * label)[..., None], 3, -1).astype(np.float32)
    y, x = np.mgrid[0:41, 0:45].astype(np.float64)
    areas = []
    for k in (0.6, -0.6):
        _, out = aug.lens_distortion(image, label, k, shift=(1.0, -2.0))
        cy, cx = 20.5 + 1.0, 22.5 - 2.0
        r2 = ((y - cy) / 41) ** 2 + ((x - cx) / 45) ** 2
        factor = 1 + k * r2 + k * r2**2
        src_y = np.floor((y - cy) * factor + cy + 0.5).astype(int)
        src_x = np.floor((x - cx) * factor + cx + 0.5).astype(int)
        inside = (src_y >= 0) & (src_y < 41) & (src_x >= 0) & (src_x < 45)
        expected = label[np.clip(src_y, 0, 40), np.clip(src_x, 0, 44)]
        assert np.mean(out.numpy()[inside] == expected[inside]) > 0.99
        areas.append(out.numpy().sum())
    assert areas[0] < label.sum() < areas[1]


def test_clahe_of_one_unclipped_tile_is_histogram_equalisation():
    grey = np.random.default_rng(0).integers(60, 120, (24, 20)).astype(np.float32)
    image = np.repeat(grey[..., None], 3, -1)
    out = aug.clahe(image, SEED, clip_range=(1000.0, 1000.0), tiles=(1, 1)).numpy()
    values = grey.astype(int)
    lut = np.round(np.cumsum(np.bincount(values.ravel(), minlength=256)) * 255 / values.size)
    np.testing.assert_allclose(out[..., 0], lut[values], atol=0.01)
    np.testing.assert_allclose(out[..., 1], out[..., 0], atol=0.01)  # grey stays grey


def test_clahe_clip_limit_bounds_the_contrast_gain():
    grey = np.random.default_rng(1).integers(100, 116, (64, 64)).astype(np.float32)
    image = np.repeat(grey[..., None], 3, -1)
    spreads = [
        np.ptp(aug.clahe(image, SEED, (clip, clip), (4, 4)).numpy()[..., 0])
        for clip in (1.0, 2.0, 40.0)
    ]
    assert np.ptp(grey) < spreads[0] < spreads[1] < spreads[2]


def test_gamma_and_brightness_contrast_formulas():
    image = np.linspace(0, 255, 3 * 16, dtype=np.float32).reshape(4, 4, 3)
    out = aug.random_gamma(image, SEED, gamma_range=(2.0, 2.0)).numpy()
    np.testing.assert_allclose(out, 255 * (image / 255) ** 2, rtol=1e-5, atol=1e-3)
    out = aug.brightness_contrast(image, SEED, (0.1, 0.1), (0.5, 0.5)).numpy()
    np.testing.assert_allclose(out, np.clip(image * 1.5 + 25.5, 0, 255), atol=1e-3)


OPS = {
    "elastic": lambda i, lab: aug.elastic_transform(i, lab, SEED),
    "grid": lambda i, lab: aug.grid_distortion(i, lab, SEED),
    "optical": lambda i, lab: aug.optical_distortion(i, lab, SEED),
    "clahe": lambda i, lab: (aug.clahe(i, SEED), lab),
    "brightness_contrast": lambda i, lab: (aug.brightness_contrast(i, SEED), lab),
    "gamma": lambda i, lab: (aug.random_gamma(i, SEED), lab),
}
OPS_SLOW = {
    "seed_recipe": lambda i, lab: aug.apply_extra_augmentations(
        i, lab, SEED, aug.ExtraAugmentations.seed_recipe()
    ),
}


@pytest.mark.parametrize(
    "name", [*sorted(OPS), *(pytest.param(n, marks=pytest.mark.slow) for n in OPS_SLOW)]
)
def test_each_op_agrees_eagerly_and_inside_tf_data(name):
    image = np.random.default_rng(2).uniform(0, 255, (30, 26, 3)).astype(np.float32)
    _, label = blocks(30, 26)
    op = {**OPS, **OPS_SLOW}[name]
    eager_image, eager_label = op(image, label)
    graph_image, graph_label = in_tf_data(op, image, label)
    np.testing.assert_allclose(graph_image.numpy(), eager_image.numpy(), atol=1e-3)
    np.testing.assert_array_equal(graph_label.numpy(), np.asarray(eager_label))
    assert graph_image.numpy().min() >= 0 and graph_image.numpy().max() <= 255


def test_the_distortions_are_exclusive_draws_with_their_probabilities():
    image, label = blocks(24, 24)
    only_elastic = aug.ExtraAugmentations(elastic=1.0)
    nothing = aug.ExtraAugmentations()
    assert not nothing.any and only_elastic.any
    out_image, out_label = aug.apply_extra_augmentations(image, label, SEED, nothing)
    np.testing.assert_array_equal(out_label.numpy(), label)
    np.testing.assert_array_equal(out_image.numpy(), image)
    for s in range(5):  # probability 1: always distorted
        assert np.any(aug.apply_extra_augmentations(image, label, (s, 1), only_elastic)[1] != label)
    # elastic 0.5 (and nothing else): about half of the samples are distorted.
    half = aug.ExtraAugmentations(elastic=0.5)
    moved = [
        bool(np.any(aug.apply_extra_augmentations(image, label, (s, 1), half)[1] != label))
        for s in range(40)
    ]
    assert 10 <= sum(moved) <= 30
    with pytest.raises(ValueError, match="at most 1"):
        aug.ExtraAugmentations(elastic=0.6, optical_distortion=0.6)
    with pytest.raises(ValueError, match="gamma must be a probability"):
        aug.ExtraAugmentations(gamma=1.5)


def test_the_training_stream_distorts_image_and_label(tmp_path):
    root = tmp_path / "input"
    seed_layout(root, "train", range(2))
    pairs = facesynthetics_pairs(str(root), "training")
    dataset = make_seg_train_dataset(
        pairs,
        num_classes=19,
        crop_size=32,
        global_batch_size=4,
        scale_range=(1.0, 1.0),
        photometric=False,
        flip_pairs=((3, 4),),
        extra_augmentations=aug.ExtraAugmentations(grid_distortion=1.0),
    )
    batch = next(iter(dataset))
    assert batch["image"].shape == (4, 32, 32, 3) and batch["label"].shape == (4, 32, 32)
    files = [np.asarray(Image.open(label)) for _, label in pairs]
    swap = np.arange(256)
    swap[[3, 4]] = [4, 3]
    unwarped = files + [swap[f[:, ::-1]] for f in files]  # as read, or flipped
    for label in batch["label"].numpy():
        assert set(np.unique(label)) <= {0, 1, 3, 4}
        assert not any(np.array_equal(label, f) for f in unwarped)  # always distorted
