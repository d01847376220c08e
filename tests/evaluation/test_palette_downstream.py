"""The Palette source of evaluation/synthetic_to_real.py: synthetic pair folders (train-id masks)
relabelled to a raw-value dataset's labelIds, the online stream (a pure function of the step,
augmented as the real pairs), and (slow) a mixed real + online-Palette SegFormer run."""

import json
import os
import sys

import numpy as np
import pytest
from conftest import ROOT
from PIL import Image

sys.path.insert(0, os.path.join(ROOT, "tests", "models", "palette"))  # the palette test models

from datasets import segmentation as seg_data  # noqa: E402
from datasets.pairs import json_list_pairs  # noqa: E402
from datasets.synthetic_pairs import write_pairs  # noqa: E402
from evaluation import synthetic_to_real as s2r  # noqa: E402
from semantic_labels import load_label_set  # noqa: E402

CITYSCAPES = load_label_set("cityscapes")
TABLE = seg_data.label_map_from_label_set(CITYSCAPES)  # labelIds -> train ids


def _sample_fn(calls):
    def sample_fn(step, count):
        calls.append(step)
        rng = np.random.default_rng([7, step])
        masks = rng.integers(0, 19, (count, 32, 64)).astype(np.uint8)
        images = rng.integers(0, 255, (count, 32, 64, 3)).astype(np.uint8)
        return {"images": images, "masks": masks}

    return sample_fn


def test_pair_folder_masks_are_relabelled_to_label_ids(tmp_path):
    folder = tmp_path / "pairs"
    write_pairs(str(folder), _sample_fn([]), label_set=CITYSCAPES, num_images=3, progress=False)
    pair_list = str(folder / "train.json")
    assert s2r.pair_folder_label_set(pair_list).names == CITYSCAPES.names
    assert s2r.pair_folder_label_set(str(tmp_path / "other.json")) is None
    inverse = s2r.raw_values_of_ids(TABLE, 19)
    assert inverse[0] == 7 and inverse[10] == 23  # road, sky
    np.testing.assert_array_equal(TABLE[inverse[:19]], np.arange(19))
    assert TABLE[inverse[255]] == 255
    pairs, out = json_list_pairs(pair_list), str(tmp_path / "relabelled")
    relabelled = s2r.relabel_pair_folder(pair_list, pairs, TABLE, out)
    spec = json.loads(open(relabelled).read())
    assert spec["relabelled_from"] == os.path.abspath(pair_list)
    for (image, mask), entry in zip(pairs, spec["pairs"]):
        raw = np.asarray(Image.open(os.path.join(out, entry["label"])))
        np.testing.assert_array_equal(TABLE[raw], np.asarray(Image.open(mask)))
        assert os.path.abspath(os.path.join(out, entry["image"])) == os.path.abspath(image)
    # Data that stores train ids needs no copy.
    identity = seg_data.identity_label_map(19)
    assert s2r.relabel_pair_folder(pair_list, pairs, identity, out) == pair_list


def test_spade_source_maps_label_ids_to_spade_channels():
    class Synthesizer:
        num_classes = 20  # 19 train ids + "don't care"

    raw = np.array([[[7, 26, 0, 23]]], np.uint8)  # road, car, void (ego vehicle), sky
    channels = s2r._spade_channels(raw, TABLE, Synthesizer())
    np.testing.assert_array_equal(channels, [[[0, 13, 19, 10]]])
    assert s2r._spade_channels(raw, None, Synthesizer()) is raw  # files of channel ids


def test_online_stream_is_a_pure_function_of_the_step():
    calls = []
    kwargs = dict(image_size=(32, 64), global_batch_size=4, crop_size=32, seed=1)
    stream = s2r.make_online_pair_stream(_sample_fn(calls), **kwargs)
    first = [batch for _, batch in zip(range(2), stream)]
    assert first[0]["image"].shape == (4, 32, 32, 3) and first[0]["label"].shape == (4, 32, 32)
    labels = first[0]["label"].numpy()
    assert labels.min() >= 0 and (labels[labels != 255] < 19).all()
    assert calls[:2] == [0, 1]
    resumed = next(iter(s2r.make_online_pair_stream(_sample_fn([]), start_step=1, **kwargs)))
    np.testing.assert_array_equal(resumed["image"].numpy(), first[1]["image"].numpy())
    np.testing.assert_array_equal(resumed["label"].numpy(), first[1]["label"].numpy())


def test_two_sources_are_refused():
    with pytest.raises(Exception, match="exactly one source"):
        s2r.check_synthetic_source(
            synthetic_list="x.json", palette_online=s2r.PaletteOnlineSource("run")
        )


@pytest.mark.slow
def test_real_plus_online_palette_pairs_train_and_evaluate(tmp_path):
    from palette_models import make_models
    from palette_testdata import make_cityscapes_layouts

    import flags as cli

    data_root, layout, spade = make_models(str(tmp_path / "models"))
    make_cityscapes_layouts(data_root, count=2, split="val", seed=1)
    args = ["--preset=tiny", "--dataset=cityscapes", f"--data_root={data_root}"]
    args += ["--crop_size=32", "--batch_size=4", "--max_steps=2", "--progress=false"]
    args += ["--export=false"]
    source = s2r.PaletteOnlineSource(layout, spade_checkpoint_dir=spade)
    results = s2r.run_synthetic_to_real(
        cli.synthetic_to_real_config(args),
        args,
        str(tmp_path / "s2r"),
        palette_online=source,
        settings=("mixed",),
        log=lambda *_: None,
    )
    mixed = results["settings"]["mixed"]
    assert list(results["settings"]) == ["mixed"] and results["source"] == "palette_online"
    assert mixed["steps"] == 2 and mixed["num_train_pairs"] == 8 + 2 * 2  # real + online
    assert 0.0 <= mixed["miou"] <= 1.0
    assert os.path.isfile(tmp_path / "s2r" / "results.md")
