"""Label mappings, the coarse / fine rule (models/synthesis_in_style/labels.py) and synthetic pairs
(models/synthesis_in_style/dataset_writer.py), on hand-made features and on the fake generator of
test_clusters.py."""

import json
import os

import numpy as np
import pytest
from PIL import Image
from test_clusters import (
    FAKE_LAYERS,
    FRAME_THRESHOLD,
    FakeDocumentGenerator,
    make_cluster_run,
)

from models.synthesis_in_style.dataset_writer import (
    SyntheticDatasetError,
    mask_to_rle,
    rle_to_mask,
    synthesize_dataset,
)
from models.synthesis_in_style.labels import (
    LabelMappingError,
    UnlabelledClustersError,
    check_complete,
    connected_components,
    load_label_mapping,
    segment_from_features,
)
from models.synthesis_in_style.palette import load_palette

NAMES = ("background", "printed_text", "handwritten_text")


@pytest.fixture(scope="module")
def palette():
    return load_palette("documents")


@pytest.fixture(scope="module")
def annotated_run(tmp_path_factory):
    """A fake cluster run (k = 3) and its mapping: each cluster -> its majority planted class."""
    run, generator = make_cluster_run(
        tmp_path_factory.mktemp("clusters") / "run", num_samples=16, batch_size=8, k_values=(3,)
    )
    latents = run.latents()
    layers = {}
    for layer in FAKE_LAYERS:
        ids = np.stack(
            [
                np.asarray(Image.open(run.map_path(3, layer["name"], i)))
                for i in range(run.num_samples)
            ]
        )
        truth = np.stack([generator.planted(layer, z) for z in latents])
        layers[layer["name"]] = {
            str(c): NAMES[np.bincount(truth[ids == c], minlength=3).argmax()] for c in range(3)
        }
    mapping = {
        "format": "semsynth-cluster-labels/1",
        "k": 3,
        "generator": run.fingerprint,
        "palette": "documents",
        "layers": layers,
    }
    path = os.path.join(run.directory, "annotations_k03.json")
    write_json(path, mapping)
    return run, mapping, path


def write_json(path, value):
    with open(path, "w") as file:
        json.dump(value, file)
    return str(path)


# === Label mappings ===


def test_load_label_mapping(annotated_run, palette):
    run, _, path = annotated_run
    mapping = load_label_mapping(path, clusters=run, k=3, palette=palette)
    assert mapping["k"] == 3 and mapping["generator"] == "fake-generator-v1"
    # Cluster ids become ints; every planted class got a cluster in the ink layers.
    assert sorted(mapping["layers"]["conv05_32px"]) == [0, 1, 2]
    assert sorted(mapping["layers"]["conv05_32px"].values()) == sorted(NAMES)
    check_complete(mapping, ["conv01_8px", "conv05_32px"])
    # The palette may also be given by name (models.synthesis_in_style.palette.load_palette).
    assert load_label_mapping(path, clusters=run, palette="documents")["k"] == 3


def test_label_mapping_errors(annotated_run, palette, tmp_path):
    run, good, path = annotated_run

    def variant(**changes):
        return write_json(tmp_path / "mapping.json", {**good, **changes})

    with pytest.raises(LabelMappingError, match="made for k=3, but k=4"):
        load_label_mapping(path, clusters=run, k=4, palette=palette)
    with pytest.raises(LabelMappingError, match=r"k=5 is not in cluster run.*\[3\]"):
        load_label_mapping(variant(k=5), clusters=run, palette=palette)
    with pytest.raises(LabelMappingError, match="mapping made for another generator"):
        load_label_mapping(variant(generator="other"), clusters=run, palette=palette)
    layers = {**good["layers"], "conv05_32px": {"0": "typewriter", "1": "stamp", "2": "background"}}
    with pytest.raises(LabelMappingError, match="'stamp', 'typewriter' are not in the palette"):
        load_label_mapping(variant(layers=layers), clusters=run, palette=palette)
    palette_file = write_json(
        tmp_path / "simple_palette.json", {"background": "#000000", "printed_text": "#0000FF"}
    )
    with pytest.raises(LabelMappingError, match="'handwritten_text'.*simple_palette.json"):
        load_label_mapping(path, clusters=run, palette=palette_file)
    layers = {**good["layers"], "conv05_32px": {"0": "background", "3": "background"}}
    with pytest.raises(LabelMappingError, match=r"\[0, 2\].*conv05_32px:3"):
        load_label_mapping(variant(layers=layers), clusters=run, palette=palette)
    with pytest.raises(LabelMappingError, match="'conv99_1px'.*not in cluster run"):
        load_label_mapping(variant(layers={"conv99_1px": {}}), clusters=run, palette=palette)
    with pytest.raises(LabelMappingError, match="'format' must be"):
        load_label_mapping(variant(format="x"), clusters=run, palette=palette)
    with pytest.raises(FileNotFoundError, match="missing.json does not exist"):
        load_label_mapping(tmp_path / "missing.json", clusters=run, palette=palette)


def test_check_complete_names_every_unlabelled_cluster(annotated_run, palette, tmp_path):
    run, good, _ = annotated_run
    layers = {**good["layers"], "conv02_8px": {"1": "background"}}
    del layers["conv06_32px"]
    path = write_json(tmp_path / "partial.json", {**good, "layers": layers})
    mapping = load_label_mapping(path, clusters=run, palette=palette)
    check_complete(mapping, ["conv01_8px"])  # complete layers pass
    with pytest.raises(UnlabelledClustersError) as error:
        check_complete(mapping, ["conv01_8px", "conv02_8px", "conv06_32px"])
    message = str(error.value)
    assert "partial.json" in message and "k=3" in message
    assert "conv02_8px: [0, 2]" in message and "conv06_32px: all 3" in message
    assert error.value.missing == {"conv02_8px": [0, 2], "conv06_32px": [0, 1, 2]}
    assert isinstance(error.value, ValueError)


# === Connected components and RLE ===


def test_connected_components_known_answer():
    mask = np.array(
        [
            [1, 1, 0, 0, 1],
            [0, 0, 0, 1, 0],
            [1, 0, 0, 0, 0],
            [1, 0, 1, 1, 1],
        ],
        bool,
    )
    labels, count = connected_components(mask)  # 8-connected: (0,4) touches (1,3)
    assert count == 4
    np.testing.assert_array_equal(
        labels,
        [
            [1, 1, 0, 0, 2],
            [0, 0, 0, 2, 0],
            [3, 0, 0, 0, 0],
            [3, 0, 4, 4, 4],
        ],
    )
    assert connected_components(mask, connectivity=4)[1] == 5
    assert connected_components(np.zeros((3, 3)))[1] == 0


def test_connected_components_spiral():
    # A single long snake needs many union rounds: one component, every pixel labelled.
    mask = np.zeros((41, 41), bool)
    mask[::2, :] = True
    mask[1::4, -1] = True
    mask[3::4, 0] = True
    labels, count = connected_components(mask, connectivity=4)
    assert count == 1 and (labels[mask] == 1).all() and (labels[~mask] == 0).all()


def test_rle_round_trip():
    mask = np.zeros((4, 5), bool)
    mask[0, 0] = mask[1:3, 2] = mask[3, 4] = True
    rle = mask_to_rle(mask)
    assert rle["size"] == [4, 5]
    # Column-major: column 0 is [1, 0, 0, 0], so the counts start with zero background pixels.
    assert rle["counts"][:3] == [0, 1, 8] and sum(rle["counts"]) == 20
    np.testing.assert_array_equal(rle_to_mask(rle), mask)


# === The coarse / fine rule on hand-made features ===

R = 32
CLASS_IDS = {name: i for i, name in enumerate(NAMES)}
HAND_MAPPING = {
    "k": 3,
    "source": "hand-made mapping",
    "layers": {
        name: {0: "background", 1: "printed_text", 2: "handwritten_text"}
        for name in ("coarse_a", "coarse_b", "fine_a", "fine_b")
    },
}
HAND_CENTERS = {name: np.eye(3, dtype=np.float32) for name in HAND_MAPPING["layers"]}


def one_hot(classes):
    return np.eye(3, dtype=np.float32)[classes] * 2.5  # scale is irrelevant to cosine


def hand_made_features():
    """Coarse 8 px maps (4 x 4 px cells at R = 32) and fine 32 px ink maps."""
    coarse_a = np.zeros((8, 8), int)
    coarse_a[1:4, 1:4] = 1  # printed region: pixels 4..15 x 4..15
    coarse_a[1:4, 5:7] = 2  # handwritten region: pixels 4..15 x 20..27
    coarse_b = coarse_a.copy()
    coarse_b[4, 1:4] = 1  # only this layer extends the printed region to rows 16..19
    coarse_b[7, 7] = 1  # a tiny printed region at pixels 28..31: under min_area
    fine_a = np.zeros((R, R), int)
    fine_a[6, 5:15] = 1  # A: a printed line
    fine_a[6:11, 22] = 2  # B: a handwritten stroke
    fine_a[17:19, 6:11] = 1  # C: ink in the extension only coarse_b has
    fine_a[29:31, 29:31] = 1  # D: ink in the tiny region
    fine_a[12, 14:26] = 2  # E: straddles both regions: 3 px printed, 7 px handwritten
    fine_b = fine_a.copy()
    fine_a[9, 9] = 1  # F: ink in one fine layer only
    return {
        "coarse_a": one_hot(coarse_a),
        "coarse_b": one_hot(coarse_b),
        "fine_a": one_hot(fine_a),
        "fine_b": one_hot(fine_b),
    }


def segment(features, **kwargs):
    options = dict(
        coarse_layers=["coarse_a", "coarse_b"],
        fine_layers=["fine_a", "fine_b"],
        class_ids=CLASS_IDS,
        output_size=R,
        min_area=30,
        dilation=3,
    )
    return segment_from_features(features, HAND_MAPPING, HAND_CENTERS, **{**options, **kwargs})


def test_segment_from_features_known_answer():
    mask = segment(hand_made_features())
    expected = np.zeros((R, R), np.uint8)
    expected[6, 5:15] = 1  # A: printed
    expected[6:11, 22] = 2  # B: handwritten
    expected[17:19, 6:11] = 1  # C: printed through the coarse layers' union
    # D: its region (5 x 5 px after dilation) is under min_area -> no region -> background.
    expected[12, 14:26] = 2  # E: overlaps the handwritten region most
    # F: only one fine layer calls it ink -> background.
    assert mask.dtype == np.uint8 and mask.shape == (R, R)
    np.testing.assert_array_equal(mask, expected)
    # With a smaller min_area the tiny region survives and D becomes printed.
    expected[29:31, 29:31] = 1
    np.testing.assert_array_equal(segment(hand_made_features(), min_area=20), expected)


def test_segment_overlap_policy_any_first():
    mask = segment(hand_made_features(), overlap_policy="any-first")
    # E touches the printed region too, and printed_text has the lower id.
    assert (mask[12, 14:26] == 1).all()
    assert (mask[6:11, 22] == 2).all()
    with pytest.raises(ValueError, match="overlap_policy"):
        segment(hand_made_features(), overlap_policy="largest")


def test_segment_discards_full_page_components():
    features = hand_made_features()
    frame = np.zeros((R, R), int)
    frame[[0, -1], :] = 1
    frame[:, [0, -1]] = 1  # a page frame: its box spans the whole page
    for name in ("fine_a", "fine_b"):
        features[name][frame == 1] = one_hot(1)
    assert segment(features) is None
    assert segment(features, discard_full_page=None) is not None
    # A line across the full width but not the height is kept.
    features = hand_made_features()
    line = np.zeros((R, R), int)
    line[25, :] = 1
    for name in ("fine_a", "fine_b"):
        features[name][line == 1] = one_hot(1)
    assert segment(features) is not None


def test_segment_refuses_unlabelled_clusters():
    mapping = {**HAND_MAPPING, "layers": {**HAND_MAPPING["layers"], "fine_b": {0: "background"}}}
    with pytest.raises(UnlabelledClustersError, match=r"fine_b: \[1, 2\]"):
        segment_from_features(
            hand_made_features(),
            mapping,
            HAND_CENTERS,
            coarse_layers=["coarse_a"],
            fine_layers=["fine_b"],
            class_ids=CLASS_IDS,
            output_size=R,
        )


# === synthesize_dataset on the fake generator ===


def synthesize(run, mapping, out_dir, palette, **kwargs):
    options = dict(
        mapping=mapping,
        clusters=run,
        palette=palette,
        num_images=20,
        out_dir=str(out_dir),
        batch_size=6,
        seed=3,
        min_area=20,
        dilation=3,
        overlap_policy="most",
        progress=False,
    )
    return synthesize_dataset(FakeDocumentGenerator(), **{**options, **kwargs})


@pytest.fixture(scope="module")
def dataset(annotated_run, palette, tmp_path_factory):
    run, _, path = annotated_run
    out_dir = tmp_path_factory.mktemp("synthetic") / "pairs"
    manifest = synthesize(run, path, out_dir, palette)
    return str(out_dir), manifest


def test_synthesize_dataset_files_and_split(dataset, palette):
    from datasets.pairs import json_list_pairs

    out_dir, manifest = dataset
    names = [f"{i:06d}.png" for i in range(20)]
    for folder in ("images", "masks", "masks_colour"):
        assert sorted(os.listdir(os.path.join(out_dir, folder))) == names
    train = json_list_pairs(os.path.join(out_dir, "train.json"))
    val = json_list_pairs(os.path.join(out_dir, "val.json"))
    assert len(train) == 18 and len(val) == 2
    assert {p for pair in train + val for p in pair} == {
        os.path.join(out_dir, folder, name) for folder in ("images", "masks") for name in names
    }
    with open(os.path.join(out_dir, "train.json")) as file:
        assert json.load(file)["pairs"][0]["image"].startswith("images/")
    counts = manifest["counts"]
    assert counts["accepted"] == 20 and counts["train"] == 18 and counts["val"] == 2
    assert counts["discarded"] >= 1  # pages with a frame
    assert counts["attempts"] >= counts["accepted"] + counts["discarded"]
    with open(os.path.join(out_dir, "dataset.json")) as file:
        assert json.load(file) == manifest
    assert manifest["settings"]["coarse_layers"] == ["conv01_8px", "conv02_8px"]
    assert manifest["settings"]["fine_layers"] == ["conv05_32px", "conv06_32px"]
    image = Image.open(os.path.join(out_dir, "images", names[4]))
    mask = Image.open(os.path.join(out_dir, "masks", names[4]))
    colour = Image.open(os.path.join(out_dir, "masks_colour", names[4]))
    assert image.mode == "RGB" and mask.mode == "L" and colour.mode == "RGB"
    assert image.size == mask.size == colour.size == (32, 32)
    np.testing.assert_array_equal(np.asarray(colour), palette.colorize(np.asarray(mask)))


def test_synthesized_masks_match_the_planted_ink(dataset):
    out_dir, _ = dataset
    latents = np.load(os.path.join(out_dir, "latents.npy"))
    assert latents.shape == (20, 8)
    assert (latents[:, 4] <= FRAME_THRESHOLD).all()  # framed pages were discarded
    for index, z in enumerate(latents):
        _, ink = FakeDocumentGenerator.page(z)
        mask = np.asarray(Image.open(os.path.join(out_dir, "masks", f"{index:06d}.png")))
        np.testing.assert_array_equal(mask, ink)


def test_coco_ground_truth_is_consistent(dataset):
    out_dir, _ = dataset
    with open(os.path.join(out_dir, "coco_gt_val.json")) as file:
        coco = json.load(file)
    with open(os.path.join(out_dir, "val.json")) as file:
        val = [pair["image"] for pair in json.load(file)["pairs"]]
    assert [image["file_name"] for image in coco["images"]] == val
    assert [(c["id"], c["name"]) for c in coco["categories"]] == [
        (1, "printed_text"),
        (2, "handwritten_text"),
    ]
    assert len({a["id"] for a in coco["annotations"]}) == len(coco["annotations"]) > 0
    for image in coco["images"]:
        mask = np.asarray(
            Image.open(os.path.join(out_dir, image["file_name"].replace("images/", "masks/")))
        )
        assert image["id"] == int(os.path.basename(image["file_name"])[:6]) + 1
        assert (image["height"], image["width"]) == mask.shape
        for class_id in (1, 2):
            annotations = [
                a
                for a in coco["annotations"]
                if a["image_id"] == image["id"] and a["category_id"] == class_id
            ]
            union = np.zeros(mask.shape, bool)
            for annotation in annotations:
                region = rle_to_mask(annotation["segmentation"])
                assert region.sum() == annotation["area"] and annotation["iscrowd"] == 0
                x, y, width, height = annotation["bbox"]
                rows, cols = np.nonzero(region)
                assert (x, y, width, height) == (
                    cols.min(),
                    rows.min(),
                    cols.max() - x + 1,
                    rows.max() - y + 1,
                )
                union |= region
            assert sum(a["area"] for a in annotations) == (mask == class_id).sum()
            np.testing.assert_array_equal(union, mask == class_id)


def test_synthesize_refuses_non_empty_out_dir(dataset, annotated_run, palette):
    out_dir, _ = dataset
    run, _, path = annotated_run
    with pytest.raises(SyntheticDatasetError, match=f"{out_dir} is not empty"):
        synthesize(run, path, out_dir, palette, num_images=2)


def test_synthesize_overwrite_replaces_outputs(annotated_run, palette, tmp_path):
    run, _, path = annotated_run
    synthesize(run, path, tmp_path, palette, num_images=6, val_fraction=0.0)
    (tmp_path / "notes.txt").write_text("mine")
    manifest = synthesize(
        run, path, tmp_path, palette, num_images=3, val_fraction=0.34, overwrite=True
    )
    assert manifest["counts"]["train"] == 2 and manifest["counts"]["val"] == 1
    assert sorted(os.listdir(tmp_path / "images")) == ["000000.png", "000001.png", "000002.png"]
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_synthesize_refuses_unlabelled_clusters(annotated_run, palette, tmp_path):
    run, good, _ = annotated_run
    layers = {**good["layers"], "conv06_32px": {"0": good["layers"]["conv06_32px"]["0"]}}
    path = write_json(tmp_path / "partial.json", {**good, "layers": layers})
    with pytest.raises(UnlabelledClustersError, match=r"conv06_32px: \[1, 2\]"):
        synthesize(run, path, tmp_path / "out", palette)
    assert not os.path.exists(tmp_path / "out")  # refused before writing anything


def test_synthesize_gives_up_after_max_attempts(annotated_run, palette, tmp_path):
    run, good, _ = annotated_run
    # Every fine cluster called text: every page is one full-page ink component.
    everything_ink = {str(c): "printed_text" for c in range(3)}
    layers = {**good["layers"], "conv05_32px": everything_ink, "conv06_32px": everything_ink}
    path = write_json(tmp_path / "bad.json", {**good, "layers": layers})
    with pytest.raises(SyntheticDatasetError, match="only 0 of 4 .* 8 attempts.*bad.json"):
        synthesize(run, path, tmp_path / "out", palette, num_images=4, max_attempts=8)


def test_killed_synthesis_resumes_to_the_uninterrupted_dataset(
    dataset, annotated_run, palette, tmp_path, monkeypatch
):
    from models.synthesis_in_style import dataset_writer

    straight, manifest = dataset
    run, _, path = annotated_run
    save, calls = dataset_writer.save_image_atomic, []

    def killed_mid_batch(image, file, **kwargs):
        if len(calls) == 3 * 8 + 1:  # in the second batch of 6 samples
            raise KeyboardInterrupt
        calls.append(file)
        return save(image, file, **kwargs)

    monkeypatch.setattr(dataset_writer, "save_image_atomic", killed_mid_batch)
    with pytest.raises(KeyboardInterrupt):
        synthesize(run, path, tmp_path, palette)
    monkeypatch.setattr(dataset_writer, "save_image_atomic", save)
    assert not (tmp_path / "dataset.json").exists()
    resumed = synthesize(run, path, tmp_path, palette)
    assert resumed["counts"] == manifest["counts"]
    assert resumed["settings"] == manifest["settings"]
    for folder in ("images", "masks", "masks_colour"):
        for name in sorted(os.listdir(os.path.join(straight, folder))):
            assert (tmp_path / folder / name).read_bytes() == open(
                os.path.join(straight, folder, name), "rb"
            ).read(), (folder, name)
    for name in ("train.json", "val.json", "coco_gt_val.json", "latents.npy"):
        assert (tmp_path / name).read_bytes() == open(os.path.join(straight, name), "rb").read()
    # Finished: a rerun returns the manifest and writes nothing.
    before = (tmp_path / "dataset.json").stat().st_mtime_ns
    assert synthesize(run, path, tmp_path, palette)["counts"] == manifest["counts"]
    assert (tmp_path / "dataset.json").stat().st_mtime_ns == before
