"""Synthesize with a trained model.

SPADE (--mode=labels, the default): python synthesize.py --label_dir=D --checkpoint_dir=RUN
    Every label map PNG under --label_dir (recursively) becomes an image with the same relative
    path and stem under --output_dir, in batches, with a progress bar. Label maps of another
    size are resized (nearest) to the model's size.

StyleGAN2 (--model=stylegan2 --checkpoint_dir=RUN):
    --mode=samples    --num_samples random images (optionally --truncation_psi) as PNGs.
    --mode=clusters   Synthesis in Style, step 3: sample --num_samples images, cluster every
                      synthesis layer's features with spherical k-means for every k in
                      --k_range; writes <checkpoint_dir>/clusters (centres, cluster maps,
                      overviews) for the annotator (python -m annotator.app).
    --mode=dataset    step 6: with the cluster labels of --k (annotator JSON), synthesize
                      --num_images image / mask pairs, train/val JSON lists and a COCO ground
                      truth; refuses while a cluster of the used layers is unlabelled.
"""

import contextlib
import os

from absl import app
from absl import flags as absl_flags

import flags as cli

cli.define_synthesize_flags()
FLAGS = absl_flags.FLAGS


def main(argv):
    with cli.user_errors(os.path.basename(__file__)), _pipeline_errors():
        _main(argv)


@contextlib.contextmanager
def _pipeline_errors():
    """The Synthesis-in-Style modules' input errors (cluster runs, label mappings, palettes,
    dataset outputs) as one-line user errors; any other ValueError keeps its traceback."""
    try:
        yield
    except ValueError as e:
        from models.synthesis_in_style.palette import PaletteError
        from models.synthesis_in_style.labels import LabelMappingError
        from models.synthesis_in_style.dataset_writer import SyntheticDatasetError
        from models.synthesis_in_style.clusters import ClusterError

        if isinstance(e, (PaletteError, LabelMappingError, SyntheticDatasetError, ClusterError)):
            raise cli.ConfigError(str(e)) from None
        raise

def _main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.batch_size < 1:
        raise app.UsageError("--batch_size must be >= 1")
    mode = FLAGS.mode or ("labels" if FLAGS.model == "spade" else "samples")
    if (FLAGS.model == "spade") != (mode == "labels"):
        raise app.UsageError(
            f"--mode={mode} is not a mode of --model={FLAGS.model} (spade: labels; stylegan2: "
            "samples, clusters, dataset)"
        )
    if mode == "labels":
        _synthesize_from_labels()
        return
    if not FLAGS.checkpoint_dir:
        raise app.UsageError(f"--mode={mode} needs --checkpoint_dir (a StyleGAN2 run)")
    {"samples": _samples, "clusters": _clusters, "dataset": _dataset}[mode]()


def _runner():
    from models.stylegan2.export import GeneratorRunner

    return GeneratorRunner(FLAGS.checkpoint_dir, truncation_psi=FLAGS.truncation_psi,
                           seed=FLAGS.seed)


def _samples():
    import keras
    import numpy as np
    from PIL import Image

    from models.spade.export import check_writable

    if FLAGS.num_samples < 1:
        raise app.UsageError("--num_samples must be >= 1")
    output_dir = FLAGS.output_dir or "outputs/synthesized"
    outputs = [os.path.join(output_dir, f"{i:06d}.png") for i in range(FLAGS.num_samples)]
    check_writable(outputs, FLAGS.overwrite)
    runner = _runner()
    rng = np.random.default_rng(FLAGS.seed)
    os.makedirs(output_dir, exist_ok=True)
    progbar = keras.utils.Progbar(len(outputs), unit_name="image")
    for start in range(0, len(outputs), FLAGS.batch_size):
        chunk = outputs[start : start + FLAGS.batch_size]
        z = rng.standard_normal((len(chunk), runner.z_dim)).astype(np.float32)
        for path, image in zip(chunk, runner.images(z)):
            Image.fromarray(image).save(path)
        progbar.add(len(chunk))
    print(f"Wrote {len(outputs)} images to {output_dir}")


def parse_k_range(text):
    """'3-23' -> [3, ..., 23]; '5,10,20' -> [5, 10, 20] (flag --k_range)."""
    try:
        if "-" in text:
            low, high = (int(part) for part in text.split("-"))
            values = list(range(low, high + 1))
        else:
            values = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise app.UsageError(f"--k_range={text!r}: expected 'lo-hi' or 'a,b,c'") from None
    if not values or min(values) < 2 or max(values) > 255:
        raise app.UsageError(f"--k_range={text!r}: k must lie in 2..255")
    return values


def _clusters():
    from models.synthesis_in_style import clusters as feature_clusters

    if FLAGS.num_samples < 1:
        raise app.UsageError("--num_samples must be >= 1")
    k_values = parse_k_range(FLAGS.k_range)
    output_dir = FLAGS.output_dir or os.path.join(FLAGS.checkpoint_dir, "clusters")
    runner = _runner()
    feature_clusters.cluster_features(
        runner.feature_fn,
        num_samples=FLAGS.num_samples,
        batch_size=FLAGS.batch_size,
        k_values=k_values,
        out_dir=output_dir,
        z_dim=runner.z_dim,
        seed=FLAGS.seed,
        generator_meta=runner.meta(),
        layers=runner.layers,
        max_pixels_per_layer_batch=FLAGS.max_pixels,
        overwrite=FLAGS.overwrite,
    )
    print(f"Wrote the clusters of k = {FLAGS.k_range} to {output_dir}; annotate them with:\n"
          f"  python -m annotator.app --clusters_dir={output_dir} --k=<k> "
          f"--palette={FLAGS.palette}")


def _dataset():
    from models.synthesis_in_style.palette import load_palette
    from models.synthesis_in_style import labels as cluster_labels
    from models.synthesis_in_style import dataset_writer as synthetic_pairs
    from models.synthesis_in_style import clusters as feature_clusters

    if FLAGS.k is None:
        raise app.UsageError("--mode=dataset needs --k (the annotated number of clusters)")
    if FLAGS.num_images < 1:
        raise app.UsageError("--num_images must be >= 1")
    clusters_dir = FLAGS.clusters_dir or os.path.join(FLAGS.checkpoint_dir, "clusters")
    mapping_path = FLAGS.mapping or os.path.join(clusters_dir, f"annotations_k{FLAGS.k:02d}.json")
    output_dir = FLAGS.output_dir or "outputs/synthetic_dataset"
    palette = load_palette(FLAGS.palette)
    clusters = feature_clusters.load_clusters(clusters_dir)
    runner = _runner()
    mapping = cluster_labels.load_label_mapping(
        mapping_path, clusters=clusters, k=FLAGS.k, palette=palette
    )
    if clusters.fingerprint != runner.fingerprint:
        raise cluster_labels.LabelMappingError(
            f"{clusters_dir} was clustered from another generator (fingerprint "
            f"{clusters.fingerprint}) than --checkpoint_dir={FLAGS.checkpoint_dir} "
            f"({runner.fingerprint}); cluster this generator first (--mode=clusters)"
        )
    coarse, fine = cluster_labels.default_layers(clusters)
    coarse = FLAGS.coarse_layers or coarse
    fine = FLAGS.fine_layers or fine
    summary = synthetic_pairs.synthesize_dataset(
        runner.feature_fn,
        mapping=mapping,
        clusters=clusters,
        palette=palette,
        num_images=FLAGS.num_images,
        out_dir=output_dir,
        batch_size=FLAGS.batch_size,
        z_dim=runner.z_dim,
        seed=FLAGS.seed,
        coarse_layers=coarse,
        fine_layers=fine,
        min_area=FLAGS.min_area,
        overlap_policy=FLAGS.overlap_policy,
        val_fraction=FLAGS.val_fraction,
        overwrite=FLAGS.overwrite,
    )
    counts = summary["counts"]
    print(f"Wrote the synthetic dataset to {output_dir}: {counts['train']} training and "
          f"{counts['val']} validation pairs ({counts['discarded']} samples discarded)")
    print(f"Train a segmenter on it: python train.py --model=segformer --dataset=json "
          f"--train_list={output_dir}/train.json --val_list={output_dir}/val.json "
          f"--semantic_label_path={FLAGS.palette}")


def _synthesize_from_labels():
    if not FLAGS.label_dir:
        raise app.UsageError("--label_dir is required")
    if not os.path.isdir(FLAGS.label_dir):
        raise app.UsageError(f"--label_dir={FLAGS.label_dir} is not a directory")
    import keras
    import numpy as np
    from PIL import Image

    from datasets.pipeline import load_image, load_label_map
    from models.spade.export import Synthesizer, check_writable, resize_label_map

    rel_paths = sorted(
        os.path.relpath(os.path.join(root, name), FLAGS.label_dir)
        for root, _, names in os.walk(FLAGS.label_dir)
        for name in names
        if name.lower().endswith(".png")
    )
    if not rel_paths:
        raise app.UsageError(f"--label_dir={FLAGS.label_dir} has no .png label maps")
    output_dir = FLAGS.output_dir or "outputs/synthesized"
    outputs = [os.path.join(output_dir, p) for p in rel_paths]
    check_writable(outputs, FLAGS.overwrite)

    synth = Synthesizer(checkpoint_dir=FLAGS.checkpoint_dir, saved_model=FLAGS.saved_model)
    if FLAGS.style_filename and not synth.use_vae:
        raise app.UsageError("--style_filename needs a model trained with --use_vae")
    style_image = load_image(FLAGS.style_filename) if FLAGS.style_filename else None
    rng = np.random.default_rng(FLAGS.seed)
    progbar = keras.utils.Progbar(len(rel_paths), unit_name="image")
    for start in range(0, len(rel_paths), FLAGS.batch_size):
        chunk = rel_paths[start : start + FLAGS.batch_size]
        labels = np.stack(
            [
                resize_label_map(load_label_map(os.path.join(FLAGS.label_dir, p)), synth.crop_size)
                for p in chunk
            ]
        )
        z = style = None
        if style_image is not None:
            style = np.repeat(style_image[None], len(chunk), axis=0)
        elif synth.use_vae:
            z = rng.standard_normal((len(chunk), synth.z_dim)).astype(np.float32)
        images = synth(labels, z=z, style=style)
        for rel, image in zip(chunk, images):
            out = os.path.join(output_dir, rel)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            Image.fromarray(image).save(out)
        progbar.add(len(chunk))
    print(f"Wrote {len(rel_paths)} images to {output_dir}")


if __name__ == "__main__":
    app.run(main)
