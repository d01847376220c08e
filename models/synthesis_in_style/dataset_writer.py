"""Synthetic image / mask pairs from an annotated cluster run (Synthesis in Style, step 6).

`synthesize_dataset` samples z in batches, synthesizes images and activations with the caller's
feature function, turns each sample into a class mask with a mask rule of
`models.synthesis_in_style.labels` (mask_rule: "coarse_fine", the paper's coarse / fine rule,
by default; labels.MASK_RULES lists them), and keeps sampling until num_images samples were
accepted (discarded samples are counted). It writes:

    out_dir/
      images/000000.png        RGB, R x R
      masks/000000.png         8-bit class ids of the palette (e.g. 0 background, 1 printed_text)
      masks_colour/000000.png  the mask in the palette's colours
      train.json, val.json     {"pairs": [{"image": "images/000000.png", "label": "masks/..."}]}
                               (paths relative to the JSON; seeded 90 / 10 split)
      coco_gt_val.json         COCO-style ground truth of the validation split
      latents.npy              [num_images, z_dim] float32, the z of every accepted image
      dataset.json             manifest: settings, counts, discarded samples

Truncation (and noise) are the feature function's business: pass one that applies them, e.g.
a generator wrapper with truncation psi 0.7 and constant noise.

COCO ground truth: one category per non-background palette class (category id = class id); one
annotation per 8-connected component of each class in each validation mask, with bbox
[x, y, width, height] in pixels, area = its pixel count, iscrowd 0 and an uncompressed RLE
segmentation {"counts": [...], "size": [h, w]} (column-major runs, starting with background).
Image ids are the file index + 1 (COCO tools treat id 0 as missing).
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

from core.io import (
    OutputExistsError,
    OutputProgress,
    atomic_write,
    list_some,
    save_image_atomic,
    write_json_atomic,
)
from core.masks import mask_to_rle, rle_to_mask
from datasets.synthetic_pairs import (
    DATASET_FORMAT,
    OUTPUT_FOLDERS,
    SyntheticDatasetError,
    coco_ground_truth,
    num_val_pairs,
    pair_files,
    prepare_out_dir,
    write_split_files,
)
from models.synthesis_in_style.clusters import ClusterRun, FeatureFn, load_clusters
from models.synthesis_in_style.labels import (
    OVERLAP_POLICIES,
    check_complete,
    default_layers,
    get_mask_rule,
    load_label_mapping,
    segment_from_features,
)
from semantic_labels import LabelSet


def _log(progress: bool, message: str) -> None:
    if progress:
        print(f"[synthesize_dataset] {message}", flush=True)


def synthesize_dataset(
    feature_fn: FeatureFn,
    *,
    mapping,
    clusters,
    palette: LabelSet,
    num_images: int,
    out_dir: str,
    batch_size: int = 8,
    z_dim: int | None = None,
    seed: int = 0,
    coarse_layers: list[str] | None = None,
    fine_layers: list[str] | None = None,
    min_area: int = 50,
    overlap_policy: str = "most",
    dilation: int = 5,
    discard_full_page: float | None = 0.95,
    val_fraction: float = 0.1,
    max_attempts: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    feature_settings: dict | None = None,
    mask_rule="coarse_fine",
) -> dict:
    """Writes num_images image / mask pairs, the split JSONs and COCO ground truth.

    Args:
        feature_fn: z [n, z_dim] -> (images uint8 [n, R, R, 3], {layer: [n, r, r, C]}), the
            generator the cluster run was made with (same layers); applies truncation if wanted.
        mapping: a validated mapping (load_label_mapping) or the path of a mapping JSON.
        clusters: the ClusterRun (or its directory) the mapping annotates.
        palette: the LabelSet of the classes (mask values are its ids).
        num_images: accepted pairs to write.
        out_dir: output folder; must be empty or absent unless overwrite.
        batch_size: samples per feature_fn call.
        z_dim: length of z; None: the cluster run's.
        seed: seed of z and of the train / val split.
        coarse_layers, fine_layers: the rule's layers; None: the layers at R / 4 and at R.
        min_area, overlap_policy, dilation, discard_full_page: see segment_from_features.
        val_fraction: share of pairs in val.json (at least one when > 0).
        max_attempts: samples drawn at most before giving up; None: 10 * num_images.
        overwrite: start over, replacing an earlier run's outputs in out_dir. Without it a
            killed run of the same settings is resumed (core.io.OutputProgress: the pairs of
            the completed batches are kept and the random draws replayed, so the result equals
            an uninterrupted run); a finished one is returned as it is.
        progress: print one line per batch.
        feature_settings: what else decides feature_fn's output (e.g. {"truncation_psi":
            0.7}); recorded in the settings, so a resume with other values is refused.
        mask_rule: the rule that turns cluster classes into masks: a name of
            labels.MASK_RULES ("coarse_fine", "fine_only") or a labels.MaskRule. Only the
            layers it uses must be labelled (fine_only: the fine layers).

    Returns:
        The manifest written to dataset.json.
    """
    started = time.time()
    if not isinstance(clusters, ClusterRun):
        clusters = load_clusters(clusters)
    if not isinstance(palette, LabelSet):
        from models.synthesis_in_style.palette import load_palette

        palette = load_palette(palette)
    if not isinstance(mapping, dict):
        mapping = load_label_mapping(mapping, clusters=clusters, palette=palette)
    for name, value in (("num_images", num_images), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SyntheticDatasetError(f"{name} must be a positive integer, got {value!r}")
    num_val = num_val_pairs(num_images, val_fraction)
    if overlap_policy not in OVERLAP_POLICIES:
        raise SyntheticDatasetError(
            f"overlap_policy must be one of {OVERLAP_POLICIES}, got {overlap_policy!r}"
        )
    if "background" not in palette.names:
        raise SyntheticDatasetError(
            f"palette {palette.name!r} has no class named 'background' (classes "
            f"{list(palette.names)})"
        )
    background_id = palette.id_of("background")
    z_dim = clusters.z_dim if z_dim is None else z_dim
    max_attempts = 10 * num_images if max_attempts is None else max_attempts
    if coarse_layers is None or fine_layers is None:
        default_coarse, default_fine = default_layers(clusters)
        coarse_layers = default_coarse if coarse_layers is None else coarse_layers
        fine_layers = default_fine if fine_layers is None else fine_layers
    coarse_layers, fine_layers = list(coarse_layers), list(fine_layers)
    rule = get_mask_rule(mask_rule)
    try:
        rule.check_layers(coarse_layers, fine_layers)
    except ValueError as error:
        raise SyntheticDatasetError(str(error)) from None
    used_layers = rule.used_layers(coarse_layers, fine_layers)
    for layer in used_layers:
        clusters.layer(layer)  # raises naming the run's layers
    # Refuse before any sampling or writing: half-labelled layers make meaningless masks.
    check_complete(mapping, used_layers)
    k = mapping["k"]
    centers = clusters.centers_for(k, used_layers)
    resolution = clusters.resolution

    out_dir = os.path.abspath(os.fspath(out_dir))
    settings = {
        "num_images": num_images,
        "batch_size": batch_size,
        "z_dim": z_dim,
        "seed": seed,
        "clusters": clusters.directory,
        "generator": clusters.fingerprint,
        "mapping": mapping.get("source"),
        "k": k,
        "palette": palette.name,
        "classes": list(palette.names),
        "mask_rule": rule.name,
        "coarse_layers": coarse_layers,
        "fine_layers": fine_layers,
        "min_area": min_area,
        "overlap_policy": overlap_policy,
        "dilation": dilation,
        "discard_full_page": discard_full_page,
        "val_fraction": val_fraction,
        "max_attempts": max_attempts,
        "feature_fn": feature_settings,
    }
    try:
        ledger = OutputProgress.load(out_dir, settings, overwrite, flag="out_dir")
    except OutputExistsError as error:
        raise SyntheticDatasetError(str(error)) from None
    rng = np.random.default_rng(seed)
    accepted_z, attempts, discarded = [], 0, 0
    class_pixels = np.zeros(palette.num_classes, dtype=np.int64)
    if ledger.resuming:
        # A killed run of the same settings: take its state after the last completed batch
        # and replay the random draws up to there, so the rest equals an uninterrupted run.
        dataset_json = os.path.join(out_dir, "dataset.json")
        if ledger.finished and os.path.isfile(dataset_json):
            _log(progress, f"{out_dir} is complete already (dataset.json)")
            with open(dataset_json, encoding="utf-8") as file:
                return json.load(file)
        for record in ledger.records:
            accepted_z.extend(np.asarray(z, np.float32) for z in record["z"])
            attempts, discarded = record["attempts"], record["discarded"]
            class_pixels = np.asarray(record["class_pixels"], np.int64)
        missing = [
            name
            for index in range(len(accepted_z))
            for name in pair_files(out_dir, index)
            if not ledger.done(name)
        ]
        if missing:
            raise SyntheticDatasetError(
                f"out_dir {out_dir}: {len(missing)} file(s) of the run being resumed are "
                f"missing ({list_some(missing)}); pass overwrite=True (--overwrite) to start over"
            )
        replayed = 0
        while replayed < attempts:
            count = min(batch_size, max_attempts - replayed)
            rng.standard_normal((count, z_dim))
            replayed += count
        _log(progress, f"resuming {out_dir}: {len(accepted_z)} pairs done")
    else:
        prepare_out_dir(out_dir, overwrite)
    ledger.start()
    for folder in OUTPUT_FOLDERS:
        os.makedirs(os.path.join(out_dir, folder), exist_ok=True)
    while len(accepted_z) < num_images:
        if attempts >= max_attempts:
            raise SyntheticDatasetError(
                f"only {len(accepted_z)} of {num_images} samples were accepted after "
                f"{attempts} attempts ({discarded} discarded because an ink component spans "
                f"> {discard_full_page} of the page); check the label mapping "
                f"{mapping.get('source', '')} (is a background cluster labelled as text?), "
                f"or raise max_attempts / discard_full_page. {out_dir} holds the partial output"
            )
        count = min(batch_size, max_attempts - attempts)
        z = rng.standard_normal((count, z_dim)).astype(np.float32)  # [n, z_dim]
        attempts += count
        images, features = feature_fn(z)
        images = np.asarray(images)
        if images.shape != (count, resolution, resolution, 3) or images.dtype != np.uint8:
            raise SyntheticDatasetError(
                f"feature_fn returned images {images.dtype} {list(images.shape)}, expected uint8 "
                f"[{count}, {resolution}, {resolution}, 3] (cluster run {clusters.directory})"
            )
        for layer in used_layers:
            meta = clusters.layer(layer)
            shape = (count, meta["resolution"], meta["resolution"], meta["channels"])
            if layer not in features or np.shape(features[layer]) != shape:
                got = list(np.shape(features[layer])) if layer in features else "nothing"
                raise SyntheticDatasetError(
                    f"feature_fn layer {layer!r}: expected shape {list(shape)} as in cluster run "
                    f"{clusters.directory}, got {got}"
                )
        written, new_z = [], []
        for index in range(count):
            if len(accepted_z) == num_images:
                break
            mask = segment_from_features(
                {layer: np.asarray(features[layer][index]) for layer in used_layers},
                mapping,
                centers,
                coarse_layers=coarse_layers,
                fine_layers=fine_layers,
                class_ids=palette,
                output_size=resolution,
                min_area=min_area,
                dilation=dilation,
                overlap_policy=overlap_policy,
                discard_full_page=discard_full_page,
                background_id=background_id,
                mask_rule=rule,
            )
            if mask is None:
                discarded += 1
                continue
            image_path, mask_path, colour_path = pair_files(out_dir, len(accepted_z))
            save_image_atomic(images[index], image_path)
            save_image_atomic(mask, mask_path)
            save_image_atomic(palette.colorize(mask), colour_path)
            written += [image_path, mask_path, colour_path]
            class_pixels += np.bincount(mask.ravel(), minlength=palette.num_classes)
            accepted_z.append(z[index])
            new_z.append(z[index].tolist())
        del features
        # The batch is complete: what a rerun needs to go on from here.
        ledger.add(
            written,
            attempts=attempts,
            discarded=discarded,
            z=new_z,
            class_pixels=class_pixels.tolist(),
        )
        _log(
            progress,
            f"{len(accepted_z)}/{num_images} accepted, {discarded} discarded, "
            f"{attempts} sampled ({time.time() - started:.1f} s)",
        )

    with atomic_write(os.path.join(out_dir, "latents.npy"), "wb") as file:
        np.save(file, np.stack(accepted_z).astype(np.float32))
    train_indices, val_indices = write_split_files(
        out_dir,
        num_images=num_images,
        num_val=num_val,
        seed=seed,
        label_set=palette,
        background_id=background_id,
    )
    manifest = {
        "format": DATASET_FORMAT,
        "settings": settings,
        "counts": {
            "accepted": num_images,
            "train": len(train_indices),
            "val": len(val_indices),
            "attempts": attempts,
            "discarded": discarded,
            "class_pixels": {name: int(n) for name, n in zip(palette.names, class_pixels)},
        },
        "files": {
            "train": "train.json",
            "val": "val.json" if val_indices else None,
            "coco_gt_val": "coco_gt_val.json" if val_indices else None,
            "latents": "latents.npy",
        },
        "seconds": round(time.time() - started, 1),
    }
    write_json_atomic(os.path.join(out_dir, "dataset.json"), manifest, indent=1, newline=False)
    ledger.finish()
    _log(
        progress,
        f"wrote {out_dir}: {len(train_indices)} train, {len(val_indices)} val, "
        f"{discarded} discarded ({manifest['seconds']} s)",
    )
    return manifest


__all__ = [
    "DATASET_FORMAT",
    "SyntheticDatasetError",
    "coco_ground_truth",
    "mask_to_rle",
    "rle_to_mask",
    "synthesize_dataset",
]
