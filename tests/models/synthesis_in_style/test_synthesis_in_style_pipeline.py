"""The Synthesis-in-Style pipeline end to end on the built-in documents with tiny presets:
StyleGAN2 training (resume, export) -> feature clusters -> cluster labels -> synthetic dataset
-> SegFormer on the synthetic pairs -> segment.py on held-out real pages; and its bad inputs."""

import csv
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT

import flags as cli
from training import loop

PAGES = 3  # training pages (+1 held out) of the built-in documents


def _run(args, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env
    )


def _sg_args(root, *extra):
    return [
        "--model=stylegan2",
        "--preset=tiny",
        f"--data_root={root}/data",
        f"--num_pages={PAGES}",
        "--num_crops=60",
        f"--checkpoint_dir={root}/sg",
        "--save_img_freq=2",
        "--save_model_freq=2",
        "--progress=false",
        # The lazy R1 / path-length branches double the tracing time of the train step;
        # tests/test_stylegan2.py runs them (eagerly and under MirroredStrategy).
        "--r1_gamma=0",
        "--pl_weight=0",
        *extra,
    ]


@pytest.fixture(scope="module")
def sg_run(tmp_path_factory):
    """A tiny StyleGAN2 trained 2 steps, then resumed to 3 (checkpoints, samples, export)."""
    root = tmp_path_factory.mktemp("sis")
    first = loop.train(
        cli.config_from_args(_sg_args(root, "--max_steps=2", "--export=false")),
        log=lambda message: None,
    )
    messages = []
    second = loop.train(cli.config_from_args(_sg_args(root, "--max_steps=3")), log=messages.append)
    return {"root": root, "first": first, "second": second, "messages": messages}


def test_dry_run_prints_reference_parameter_counts():
    import io

    for multiplier, generator, discriminator in (
        (2, 30_034_338, 28_864_129),
        (1, 24_767_458, 24_001_089),
    ):
        config = cli.config_from_args(
            ["--model=stylegan2", "--preset=stylegan2_256", f"--channel_multiplier={multiplier}"]
        )
        out = io.StringIO()
        counts = loop.dry_run(config, out=out)
        assert counts["generator"] == generator
        assert counts["discriminator"] == discriminator
        assert f"{generator:,d}" in out.getvalue()
    assert counts["mapping"] == 2_101_248


@pytest.mark.slow
def test_training_resumes_and_export_equals_keras(sg_run):
    from models.stylegan2.export import GeneratorRunner

    first, second = sg_run["first"], sg_run["second"]
    assert first["step"] == 2 and second["step"] == 3
    assert any(m.startswith("Resumed") and "at step 2" in m for m in sg_run["messages"])
    assert all(math.isfinite(v) for v in second["losses"].values())
    run_dir = sg_run["root"] / "sg"
    assert sorted(os.listdir(run_dir / "samples")) == ["step_00000002.png", "step_00000003.png"]

    # The SavedModel's image equals the Keras EMA generator's (fixed noise, same mean w).
    runner = GeneratorRunner(str(run_dir), truncation_psi=0.7)
    assert runner.step == 3
    z = np.random.default_rng(1).standard_normal((3, runner.z_dim)).astype(np.float32)
    module = tf.saved_model.load(str(run_dir / "export"))
    served = module.serve(tf.constant(z), tf.constant(0.7))
    expected = runner.generator(
        tf.constant(z), truncation_psi=0.7, w_avg=runner.w_avg, noise_mode="const", training=False
    )
    np.testing.assert_allclose(served["image_float"].numpy(), expected.numpy(), atol=1e-5)
    np.testing.assert_array_equal(served["image"].numpy(), runner.images(z))


@pytest.mark.slow
def test_clusters_dataset_segmenter_and_segment_real_pages(sg_run, tmp_path):
    from datasets import documents
    from models.stylegan2.task import builtin_document_pages
    from models.synthesis_in_style.clusters import load_clusters
    from models.synthesis_in_style.labels import auto_label_clusters

    run_dir = sg_run["root"] / "sg"
    proc = _run(
        [
            "synthesize.py",
            "--model=stylegan2",
            "--mode=clusters",
            f"--checkpoint_dir={run_dir}",
            "--num_samples=8",
            "--batch_size=4",
            "--k_range=3-4",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    clusters = load_clusters(str(run_dir / "clusters"))
    assert clusters.k_values == (3, 4) and clusters.num_samples == 8

    # Dataset synthesis refuses while a cluster of the used layers has no class.
    mapping = auto_label_clusters(clusters, 4)
    fine = [layer["name"] for layer in clusters.layers if layer["resolution"] == 32]
    del mapping["layers"][fine[0]]["2"]
    mapping_path = run_dir / "clusters" / "annotations_k04.json"
    mapping_path.write_text(json.dumps(mapping))
    dataset_dir = tmp_path / "synthetic"
    args = [
        "synthesize.py",
        "--model=stylegan2",
        "--mode=dataset",
        f"--checkpoint_dir={run_dir}",
        "--k=4",
        "--num_images=12",
        f"--output_dir={dataset_dir}",
    ]
    proc = _run(args)
    assert proc.returncode == 2
    assert "unlabelled" in proc.stderr and fine[0] in proc.stderr
    assert "Traceback" not in proc.stderr and not dataset_dir.exists()

    # With every cluster labelled: the pairs, split lists and COCO ground truth.
    mapping_path.write_text(json.dumps(auto_label_clusters(clusters, 4)))
    proc = _run(args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("train.json", "val.json", "coco_gt_val.json", "dataset.json"):
        assert (dataset_dir / name).is_file()
    train_pairs = json.loads((dataset_dir / "train.json").read_text())["pairs"]
    assert len(train_pairs) + len(json.loads((dataset_dir / "val.json").read_text())["pairs"]) == 12

    # A tiny SegFormer on the synthetic pairs, then segment.py on held-out real pages.
    seg_dir = tmp_path / "segformer"
    config = cli.config_from_args(
        [
            "--model=segformer",
            "--preset=tiny",
            "--dataset=json",
            f"--train_list={dataset_dir}/train.json",
            f"--val_list={dataset_dir}/val.json",
            "--semantic_label_path=documents",
            "--crop_size=32",
            "--batch_size=4",
            f"--checkpoint_dir={seg_dir}",
            "--max_steps=3",
            "--eval_freq=3",
            "--progress=false",
        ]
    )
    summary = loop.train(config, log=lambda message: None)
    assert math.isfinite(summary["metrics"]["miou"])
    pages = builtin_document_pages(cli.config_from_args(_sg_args(sg_run["root"])))
    held_out = documents.document_pairs(pages, "validation")
    out_dir = tmp_path / "segmented"
    proc = _run(
        [
            "segment.py",
            f"--saved_model={seg_dir}/export",
            f"--input={os.path.dirname(held_out[0][0])}",
            "--tile_size=64",
            "--overlap=0.25",
            "--batch_size=16",
            f"--gt_dir={os.path.dirname(held_out[0][1])}",
            f"--output_dir={out_dir}",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    stem = os.path.splitext(os.path.basename(held_out[0][0]))[0]
    assert (out_dir / f"{stem}_color.png").is_file()
    with open(out_dir / "metrics.csv") as file:
        rows = {row["class_name"]: row for row in csv.DictReader(file)}
    for name in ("background", "printed_text", "handwritten_text"):
        assert math.isfinite(float(rows[name]["iou"]))


@pytest.mark.slow
def test_bad_inputs_name_the_problem(sg_run, tmp_path):
    from datasets.pairs import DatasetError
    from models.stylegan2.export import GeneratorRunner
    from models.synthesis_in_style.clusters import load_clusters
    from models.synthesis_in_style.labels import (
        LabelMappingError,
        auto_label_clusters,
        load_label_mapping,
    )

    run_dir = sg_run["root"] / "sg"
    # A checkpoint of another resolution.
    with pytest.raises(ValueError, match="32 px generator, not 64 px"):
        GeneratorRunner(str(run_dir), resolution=64)
    # An empty image list.
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match=str(empty)):
        loop.make_task(
            cli.config_from_args(
                [
                    "--model=stylegan2",
                    "--dataset=images",
                    f"--image_dir={empty}",
                    f"--checkpoint_dir={tmp_path / 'run'}",
                ]
            )
        )
    clusters_dir = run_dir / "clusters"
    if not clusters_dir.exists():  # the chain test made them; standalone: make a small run
        proc = _run(
            [
                "synthesize.py",
                "--model=stylegan2",
                "--mode=clusters",
                f"--checkpoint_dir={run_dir}",
                "--num_samples=4",
                "--batch_size=4",
                "--k_range=3-4",
            ]
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    clusters = load_clusters(str(clusters_dir))
    mapping = auto_label_clusters(clusters, 4)
    path = tmp_path / "mapping.json"
    # A mapping for another k, another generator, and a class the palette does not know.
    for change, message in (({"k": 3}, "k"), ({"generator": "0123456789abcdef"}, "generator")):
        path.write_text(json.dumps(dict(mapping, **change)))
        with pytest.raises(LabelMappingError, match=message):
            load_label_mapping(str(path), clusters=clusters, k=4, palette="documents")
    layer = clusters.layer_names[0]
    unknown = json.loads(json.dumps(mapping))
    unknown["layers"][layer]["0"] = "stamp"
    path.write_text(json.dumps(unknown))
    with pytest.raises(LabelMappingError, match="stamp"):
        load_label_mapping(str(path), clusters=clusters, k=4, palette="documents")
