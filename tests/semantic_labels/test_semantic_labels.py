import json

import numpy as np
import pytest

from semantic_labels import (
    LabelSet,
    LabelSetError,
    available_label_sets,
    load_label_set,
)


@pytest.fixture(scope="module")
def ade20k():
    return load_label_set("ade20k")


def write_json(path, content):
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def tiny_set(**overrides):
    spec = {
        "name": "tiny",
        "dontcare_id": 0,
        "classes": [
            {"id": 0, "name": "void", "color": [0, 0, 0]},
            {"id": 1, "name": "cat", "color": [255, 0, 0]},
            {"id": 2, "name": "dog", "color": [0, 255, 0]},
        ],
    }
    spec.update(overrides)
    return spec


def test_builtin_sets_are_listed():
    assert {"ade20k", "scenes"} <= set(available_label_sets())


def test_ade20k_has_other_plus_150_distinct_classes(ade20k):
    assert ade20k.num_classes == 151
    assert len(ade20k.names) == 151 and ade20k.colors.shape == (151, 3)
    assert ade20k.colors.dtype == np.uint8
    assert ade20k.names[0] == "other" and ade20k.dontcare_id == 0
    assert len(set(ade20k.names[1:])) == 150
    assert ade20k.names[1:8] == ("wall", "building", "sky", "floor", "tree", "ceiling", "road")
    assert ade20k.names[-2:] == ("clock", "flag")
    assert ade20k.used_ids == tuple(range(151))


@pytest.mark.parametrize(
    "name, class_id",
    [
        ("building", 2),
        ("sky", 3),
        ("tree", 5),
        ("road", 7),
        ("grass", 10),
        ("mountain", 17),
        ("water", 22),
        ("field", 30),
        ("rock", 35),
        ("sand", 47),
        ("hill", 69),
        ("flag", 150),
    ],
)
def test_ade20k_ids(ade20k, name, class_id):
    assert ade20k.id_of(name) == class_id
    assert ade20k.names[class_id] == name


@pytest.mark.parametrize(
    "name, color",
    [
        ("other", [0, 0, 0]),
        ("wall", [120, 120, 120]),
        ("building", [180, 120, 120]),
        ("sky", [6, 230, 230]),
        ("floor", [80, 50, 50]),
        ("tree", [4, 200, 3]),
        ("grass", [4, 250, 7]),
        ("flag", [92, 0, 255]),
    ],
)
def test_ade20k_standard_palette(ade20k, name, color):
    assert ade20k.colors[ade20k.id_of(name)].tolist() == color


def test_scenes_subset_keeps_ade20k_indexing(ade20k):
    scenes = load_label_set("scenes")
    assert scenes.num_classes == 151
    assert scenes.names == ade20k.names
    np.testing.assert_array_equal(scenes.colors, ade20k.colors)
    for name in ("sky", "tree", "grass", "mountain", "water", "building", "road", "sand"):
        assert ade20k.id_of(name) in scenes.used_ids
    assert set(scenes.used_ids) < set(range(151))


def test_colorize(ade20k):
    label = np.array([[0, 3], [5, 10]], dtype=np.int64)
    rgb = ade20k.colorize(label)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert rgb[0, 1].tolist() == [6, 230, 230]
    assert rgb[1, 0].tolist() == [4, 200, 3]
    assert rgb[0, 0].tolist() == [0, 0, 0]


@pytest.mark.parametrize("bad", [np.array([[151]]), np.array([[-1]])])
def test_colorize_rejects_values_outside_range(ade20k, bad):
    with pytest.raises(ValueError, match=r"\[0, 150\]"):
        ade20k.colorize(bad)


def test_colorize_rejects_float_labels(ade20k):
    with pytest.raises(ValueError, match="integers"):
        ade20k.colorize(np.zeros((2, 2), np.float32))


def test_id_of_unknown_name_suggests(ade20k):
    with pytest.raises(ValueError, match="'skye'.*'sky'"):
        ade20k.id_of("skye")


def test_label_set_is_immutable_and_hashable(ade20k):
    with pytest.raises(ValueError):
        ade20k.colors[0, 0] = 1  # read-only array
    again = load_label_set("ade20k")
    assert again == ade20k and hash(again) == hash(ade20k)
    assert again != load_label_set("scenes")


def test_direct_construction_checks_color_shape():
    with pytest.raises(ValueError, match="colors"):
        LabelSet("x", ("a", "b"), np.zeros((3, 3), np.uint8), (0, 1), None)


def test_load_full_set_from_path(tmp_path):
    path = write_json(tmp_path / "tiny.json", tiny_set())
    labels = load_label_set(path)
    assert labels.names == ("void", "cat", "dog")
    assert labels.num_classes == 3 and labels.dontcare_id == 0
    assert labels.colors[2].tolist() == [0, 255, 0]


def test_classes_may_be_listed_out_of_order(tmp_path):
    spec = tiny_set()
    spec["classes"].reverse()
    labels = load_label_set(write_json(tmp_path / "tiny.json", spec))
    assert labels.names == ("void", "cat", "dog")


def test_load_subset_with_relative_base(tmp_path):
    write_json(tmp_path / "tiny.json", tiny_set())
    subset = write_json(
        tmp_path / "pets.json", {"name": "pets", "base": "tiny.json", "ids": [2, 1]}
    )
    labels = load_label_set(subset)
    assert labels.used_ids == (1, 2) and labels.num_classes == 3


def test_unknown_name_lists_choices():
    with pytest.raises(ValueError, match="unknown label set 'coco'.*ade20k"):
        load_label_set("coco")


def test_missing_file_is_value_and_file_not_found_error(tmp_path):
    path = str(tmp_path / "nope.json")
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_label_set(path)
    with pytest.raises(ValueError, match="nope.json"):
        load_label_set(path)


@pytest.mark.parametrize(
    "content, problem",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "top level"),
        (tiny_set(name=""), "'name'"),
        (tiny_set(classes=[]), "'classes'"),
        (
            tiny_set(
                classes=[
                    {"id": 0, "name": "a", "color": [0, 0, 0]},
                    {"id": 0, "name": "b", "color": [1, 1, 1]},
                ]
            ),
            "duplicate id 0",
        ),
        (
            tiny_set(
                classes=[
                    {"id": 0, "name": "a", "color": [0, 0, 0]},
                    {"id": 2, "name": "b", "color": [1, 1, 1]},
                ]
            ),
            "contiguous",
        ),
        (tiny_set(classes=[{"id": 0, "name": "a", "color": [0, 0, 300]}]), "'color'"),
        (tiny_set(classes=[{"id": 0, "name": "a", "color": [0, 0]}]), "'color'"),
        (tiny_set(classes=[{"id": True, "name": "a", "color": [0, 0, 0]}]), "'id'"),
        (
            tiny_set(
                classes=[
                    {"id": 0, "name": "a", "color": [0, 0, 0]},
                    {"id": 1, "name": "a", "color": [1, 1, 1]},
                ]
            ),
            "duplicate class names",
        ),
        (tiny_set(dontcare_id=7), "dontcare_id"),
    ],
)
def test_malformed_files_name_the_file_and_problem(tmp_path, content, problem):
    path = write_json(tmp_path / "broken.json", content)
    with pytest.raises(LabelSetError) as error:
        load_label_set(path)
    assert "broken.json" in str(error.value)
    assert problem in str(error.value)


@pytest.mark.parametrize(
    "subset, problem",
    [
        ({"name": "s", "base": "ade20k", "ids": [3, 151]}, "outside its base"),
        ({"name": "s", "base": "ade20k", "ids": [3, 3]}, "duplicate ids"),
        ({"name": "s", "base": "ade20k", "ids": []}, "'ids'"),
        ({"name": "s", "base": "missing.json", "ids": [1]}, "missing.json"),
    ],
)
def test_malformed_subsets(tmp_path, subset, problem):
    path = write_json(tmp_path / "subset.json", subset)
    with pytest.raises(ValueError) as error:
        load_label_set(path)
    assert "subset.json" in str(error.value) and problem in str(error.value)


def test_subset_cycle_is_reported(tmp_path):
    write_json(tmp_path / "a.json", {"name": "a", "base": "b.json", "ids": [0]})
    write_json(tmp_path / "b.json", {"name": "b", "base": "a.json", "ids": [0]})
    with pytest.raises(ValueError, match="cycle"):
        load_label_set(str(tmp_path / "a.json"))
