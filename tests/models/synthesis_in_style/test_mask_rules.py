"""The mask-rule registry of models/synthesis_in_style/labels.py (the paper's "adapt the
algorithm" step): the fine_only alternative, custom rules, and --mask_rule through
synthesize_dataset and synthesize.py."""

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT
from PIL import Image
from test_dataset_writer import (  # noqa: F401  (annotated_run, palette: fixtures)
    CLASS_IDS,
    HAND_CENTERS,
    HAND_MAPPING,
    R,
    annotated_run,
    hand_made_features,
    one_hot,
    palette,
    synthesize,
)

from models.synthesis_in_style import labels
from models.synthesis_in_style.labels import (
    MASK_RULES,
    LabelMappingError,
    MaskRule,
    UnlabelledClustersError,
    register_mask_rule,
    segment_from_features,
)


def segment(features, mapping=HAND_MAPPING, **kwargs):
    options = dict(
        coarse_layers=["coarse_a", "coarse_b"],
        fine_layers=["fine_a", "fine_b"],
        class_ids=CLASS_IDS,
        output_size=R,
        min_area=30,
        dilation=3,
    )
    return segment_from_features(features, mapping, HAND_CENTERS, **{**options, **kwargs})


def test_registry_holds_the_papers_rule_and_the_alternative():
    assert list(MASK_RULES)[:2] == ["coarse_fine", "fine_only"]
    features = hand_made_features()
    # The default is the paper's rule, unchanged.
    np.testing.assert_array_equal(segment(features), segment(features, mask_rule="coarse_fine"))
    with pytest.raises(LabelMappingError, match=r"--mask_rule=nope .*coarse_fine .*fine_only"):
        segment(features, mask_rule="nope")


def test_fine_only_known_answer():
    mask = segment(hand_made_features(), mask_rule="fine_only")
    expected = np.zeros((R, R), np.uint8)
    expected[6, 5:15] = 1  # A: printed in both fine layers
    expected[6:11, 22] = 2  # B: handwritten
    expected[17:19, 6:11] = 1  # C: printed (no coarse region needed)
    expected[29:31, 29:31] = 1  # D: kept (coarse_fine drops it: its region is under min_area)
    expected[12, 14:26] = 2  # E: the fine layers call it handwritten
    # F (ink in one fine layer only) stays background, as with coarse_fine.
    np.testing.assert_array_equal(mask, expected)
    assert segment(hand_made_features())[29, 29] == 0  # the paper's rule differs at D


def test_fine_only_takes_the_majority_class_of_a_component():
    features = hand_made_features()
    stroke = np.zeros((R, R), int)
    stroke[25, 2:12] = 2
    stroke[25, 2:5] = 1  # one component: 3 px printed, 7 px handwritten
    features["fine_a"][stroke > 0] = one_hot(stroke[stroke > 0])
    features["fine_b"][stroke > 0] = one_hot(stroke[stroke > 0])
    mask = segment(features, mask_rule="fine_only")
    assert (mask[25, 2:12] == 2).all()


def test_fine_only_needs_no_coarse_labels_or_layers():
    mapping = {
        **HAND_MAPPING,
        "layers": {k: HAND_MAPPING["layers"][k] for k in ("fine_a", "fine_b")},
    }
    mask = segment(hand_made_features(), mapping, mask_rule="fine_only", coarse_layers=[])
    assert mask[6, 5] == 1
    with pytest.raises(ValueError, match="coarse and fine layers"):
        segment(hand_made_features(), mapping, coarse_layers=[])
    with pytest.raises(UnlabelledClustersError, match="coarse_a"):
        segment(hand_made_features(), mapping)  # coarse_fine reads the coarse layers


def test_a_registered_rule_is_selectable_by_name():
    @register_mask_rule
    class EverythingPrinted(MaskRule):
        name = "test_everything_printed"
        description = "fine ink is printed text"

        def mask(self, class_maps, *, coarse_layers, fine_layers, settings):
            ink = np.logical_and.reduce(
                [class_maps(layer) != settings.background_id for layer in fine_layers]
            )
            return np.where(ink, 1, settings.background_id).astype(np.uint8)

    try:
        mask = segment(hand_made_features(), mask_rule="test_everything_printed")
        assert set(np.unique(mask)) == {0, 1} and mask[6, 22] == 1
        with pytest.raises(ValueError, match="unique name"):
            register_mask_rule(EverythingPrinted)
    finally:
        MASK_RULES.pop("test_everything_printed")
    assert labels.get_mask_rule(EverythingPrinted()).name == "test_everything_printed"


def test_synthesize_dataset_with_fine_only(annotated_run, palette, tmp_path):  # noqa: F811
    run, _, mapping = annotated_run
    manifest = synthesize(run, mapping, tmp_path / "pairs", palette, mask_rule="fine_only")
    assert manifest["settings"]["mask_rule"] == "fine_only"
    masks = [
        np.asarray(Image.open(tmp_path / "pairs" / "masks" / f"{i:06d}.png")) for i in range(20)
    ]
    assert set(np.unique(masks)) <= {0, 1, 2} and any((m > 0).any() for m in masks)
    # A resume with the other rule is refused: it would mix two rules' masks.
    with pytest.raises(ValueError, match="mask_rule"):
        synthesize(run, mapping, tmp_path / "pairs", palette, mask_rule="coarse_fine")


def test_synthesize_py_mask_rule_flag(tmp_path):
    """The seed user's way: synthesize.py --mode=dataset --mask_rule=... (a wrong name exits 2
    naming the flag and the rules, before any generator is loaded)."""
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "synthesize.py"),
            "--model=stylegan2",
            "--mode=dataset",
            f"--checkpoint_dir={tmp_path}",
            "--k=3",
            "--mask_rule=coarse_only",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert "--mask_rule=coarse_only" in result.stderr and "fine_only" in result.stderr
