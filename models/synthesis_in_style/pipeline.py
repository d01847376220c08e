"""Synthesis in Style end to end from a trained StyleGAN2 run: the steps a user runs.

    cluster_generator()      step 3: cluster every synthesis layer's features for each k
    label_clusters()         a heuristic mapping of one k's clusters (instead of, or before,
                             the annotation app of step 4)
    build_dataset()          step 6: image / mask pairs from the annotated clusters

Each takes explicit arguments (synthesize.py and tools/ translate flags into them) and raises
UserError subclasses naming the flag or file at fault.
"""

import os

from core import io as core_io
from models.synthesis_in_style.clusters import ClusterError


def parse_k_range(text: str) -> list[int]:
    """'3-23' -> [3, ..., 23]; '5,10,20' -> [5, 10, 20] (flag --k_range)."""
    try:
        if "-" in text:
            low, high = (int(part) for part in text.split("-"))
            values = list(range(low, high + 1))
        else:
            values = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ClusterError(f"--k_range={text!r}: expected 'lo-hi' or 'a,b,c'") from None
    if not values or min(values) < 2 or max(values) > 255:
        raise ClusterError(f"--k_range={text!r}: k must lie in 2..255")
    return values


def _runner(checkpoint_dir, truncation_psi, seed):
    from models.stylegan2.export import GeneratorRunner

    return GeneratorRunner(checkpoint_dir, truncation_psi=truncation_psi, seed=seed)


def cluster_generator(
    checkpoint_dir: str,
    output_dir: str | None = None,
    *,
    k_range: str = "3-23",
    num_samples: int = 100,
    batch_size: int = 8,
    max_pixels: int = 20000,
    truncation_psi: float = 1.0,
    seed: int = 0,
    overwrite: bool = False,
    palette: str = "documents",
) -> str:
    """Clusters the generator's features of num_samples samples for every k of k_range.

    Args:
        checkpoint_dir: a StyleGAN2 run directory.
        output_dir: the cluster run directory (default <checkpoint_dir>/clusters).
        k_range: the k values, 'lo-hi' or 'a,b,c'.
        num_samples: generated samples clustered.
        batch_size: latents per generator call.
        max_pixels: pixels per layer and batch fed to the k-means fit.
        truncation_psi: truncation towards the mean w (1 = off).
        seed: seed of the latents.
        overwrite: replace an earlier cluster run in output_dir.
        palette: the class palette named in the printed annotator command.

    Returns:
        The cluster run directory.
    """
    from models.synthesis_in_style import clusters as feature_clusters

    k_values = parse_k_range(k_range)
    output_dir = output_dir or os.path.join(checkpoint_dir, "clusters")
    runner = _runner(checkpoint_dir, truncation_psi, seed)
    feature_clusters.cluster_features(
        runner.feature_fn,
        num_samples=num_samples,
        batch_size=batch_size,
        k_values=k_values,
        out_dir=output_dir,
        z_dim=runner.z_dim,
        seed=seed,
        generator_meta=runner.meta(),
        layers=runner.layers,
        max_pixels_per_layer_batch=max_pixels,
        overwrite=overwrite,
    )
    print(
        f"Wrote the clusters of k = {k_range} to {output_dir}; annotate them with:\n"
        f"  python -m annotator --clusters_dir={output_dir} --k=<k> --palette={palette}"
    )
    return output_dir


def label_clusters(
    clusters_dir: str, k: int, output: str | None = None, *, overwrite: bool = False
) -> str:
    """Writes the heuristic mapping of labels.auto_label_clusters (colour statistics).

    The mapping is the annotator's JSON: a starting point to correct in the annotation app, or
    a stand-in for it on the built-in documents.

    Args:
        clusters_dir: a cluster run (cluster_generator).
        k: the clustering to label.
        output: the mapping JSON (default <clusters_dir>/annotations_k<k>.json).
        overwrite: replace an existing mapping (it may hold the user's annotations).

    Returns:
        The path written.
    """
    from models.synthesis_in_style.clusters import load_clusters
    from models.synthesis_in_style.labels import auto_label_clusters

    output = output or os.path.join(clusters_dir, f"annotations_k{k:02d}.json")
    core_io.check_overwrite(
        output, overwrite, note=" (it may hold your annotations)", remedy="another --output"
    )
    mapping = auto_label_clusters(load_clusters(clusters_dir), k)
    core_io.write_json_atomic(output, mapping, indent=2, newline=False)
    print(f"Wrote heuristic cluster labels for k={k} to {output}")
    return output


def build_dataset(
    checkpoint_dir: str,
    *,
    k: int,
    output_dir: str | None = None,
    clusters_dir: str | None = None,
    mapping: str | None = None,
    palette: str = "documents",
    coarse_layers=None,
    fine_layers=None,
    min_area: int = 50,
    overlap_policy: str = "most",
    num_images: int = 1000,
    val_fraction: float = 0.1,
    batch_size: int = 8,
    truncation_psi: float = 1.0,
    seed: int = 0,
    overwrite: bool = False,
    mask_rule: str = "coarse_fine",
) -> dict:
    """Synthesizes image / mask pairs with the cluster labels of one k (step 6).

    Refuses while a cluster of the used layers is unlabelled, or when the clusters come from
    another generator than checkpoint_dir's.

    Args:
        checkpoint_dir: the StyleGAN2 run that was clustered.
        k: the number of clusters whose labels are used.
        output_dir: where the pairs, train/val JSON lists and COCO file go (default
            outputs/synthetic_dataset).
        clusters_dir: the cluster run (default <checkpoint_dir>/clusters).
        mapping: the cluster-label JSON (default <clusters_dir>/annotations_k<k>.json).
        palette: class palette: a label-set name or file.
        coarse_layers, fine_layers: layers deciding the class and the shape (default: those at
            a quarter of the resolution, and those at full resolution).
        min_area: coarse regions under this many px^2 are dropped.
        overlap_policy: "most" or "any-first" (labels.OVERLAP_POLICIES).
        num_images: pairs to write.
        val_fraction: share of pairs in the validation split.
        batch_size: latents per generator call.
        truncation_psi: truncation towards the mean w (1 = off).
        seed: seed of the latents.
        overwrite: start over, replacing an earlier dataset in output_dir. Without it a killed
            run of the same settings resumes where it stopped.
        mask_rule: the mask rule (labels.MASK_RULES): "coarse_fine" (the paper's) or
            "fine_only"; a rule of your own once registered (labels.MaskRule).

    Returns:
        The summary of dataset_writer.synthesize_dataset.
    """
    from models.synthesis_in_style import clusters as feature_clusters
    from models.synthesis_in_style import dataset_writer
    from models.synthesis_in_style import labels as cluster_labels
    from models.synthesis_in_style.palette import load_palette

    rule = cluster_labels.get_mask_rule(mask_rule)  # an unknown --mask_rule fails first
    clusters_dir = clusters_dir or os.path.join(checkpoint_dir, "clusters")
    mapping_path = mapping or os.path.join(clusters_dir, f"annotations_k{k:02d}.json")
    output_dir = output_dir or "outputs/synthetic_dataset"
    class_palette = load_palette(palette)
    clusters = feature_clusters.load_clusters(clusters_dir)
    runner = _runner(checkpoint_dir, truncation_psi, seed)
    label_mapping = cluster_labels.load_label_mapping(
        mapping_path, clusters=clusters, k=k, palette=class_palette
    )
    if clusters.fingerprint != runner.fingerprint:
        raise cluster_labels.LabelMappingError(
            f"{clusters_dir} was clustered from another generator (fingerprint "
            f"{clusters.fingerprint}) than --checkpoint_dir={checkpoint_dir} "
            f"({runner.fingerprint}); cluster this generator first (--mode=clusters)"
        )
    coarse, fine = cluster_labels.default_layers(clusters)
    summary = dataset_writer.synthesize_dataset(
        runner.feature_fn,
        mapping=label_mapping,
        clusters=clusters,
        palette=class_palette,
        num_images=num_images,
        out_dir=output_dir,
        batch_size=batch_size,
        z_dim=runner.z_dim,
        seed=seed,
        coarse_layers=coarse_layers or coarse,
        fine_layers=fine_layers or fine,
        min_area=min_area,
        overlap_policy=overlap_policy,
        val_fraction=val_fraction,
        overwrite=overwrite,
        feature_settings={"truncation_psi": float(truncation_psi)},
        mask_rule=rule,
    )
    counts = summary["counts"]
    print(
        f"Wrote the synthetic dataset to {output_dir}: {counts['train']} training and "
        f"{counts['val']} validation pairs ({counts['discarded']} samples discarded)"
    )
    print(
        f"Train a segmenter on it: python train.py --model=segformer --dataset=json "
        f"--train_list={output_dir}/train.json --val_list={output_dir}/val.json "
        f"--semantic_label_path={palette}"
    )
    return summary
