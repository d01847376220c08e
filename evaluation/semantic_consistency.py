"""Semantic consistency of synthesized images: segment them, compare with their label maps.

SPADE's protocol: a segmenter trained on REAL images segments each synthesized image, and the
prediction is scored against the label map the image was synthesized from (mIoU and pixel
accuracy; the SPADE paper reports 38.5 mIoU / 79.9% on ADE20K with UperNet-ResNet101). High
scores mean the generator put recognisable classes where the map asked for them. The numbers
come from the project's one confusion matrix (evaluation/segmentation_metrics.py), so they mean
exactly what segment.py --gt_dir and training validation mean.

The label maps hold the raw values the generator saw; the segmenter's `label_map` table (saved
with an exported SegFormer) turns them into its train ids, as in training (e.g. ADE20K's
reduce-zero-label). A label map of another size than its image is resized (nearest) to the
image, as synthesize.py resized it before synthesis.

Example:
    from models.segformer.export import load_segmenter
    segmenter = load_segmenter(saved_model="runs/segformer_real/export")
    result = semantic_consistency(segmenter, [("synth/a.png", "labels/a.png"), ...])
    print(result["miou"], result["pixel_accuracy"])
"""

from __future__ import annotations

import numpy as np

from evaluation.segmentation_metrics import ConfusionMatrix, metrics_from_confusion

_SIZE_DIVISOR = 32  # total stride of the MiT encoder
_NAMED = 5  # values an error lists


def _label_to_train_ids(label, table, label_path):
    """Raw label values -> the segmenter's train ids (255 ignore); unknown values raise."""
    from datasets.pairs import DatasetError

    if table is None:
        return label
    table = np.asarray(table)
    unknown = np.unique(label[table[label] < 0])
    if unknown.size:
        raise DatasetError(
            f"label map {label_path} holds values {unknown[:_NAMED].tolist()} that belong to no "
            "class of the segmenter's dataset"
        )
    return table[label].astype(np.uint8)


def semantic_consistency(
    segmenter,
    pairs,
    *,
    mode: str = "whole",
    tile: int = 512,
    overlap: float = 0.25,
    batch_size: int = 4,
    exclude_classes=(),
    progress: bool = False,
) -> dict:
    """mIoU / pixel accuracy of a real-data segmenter on synthesized images vs their maps.

    Args:
        segmenter: from models.segformer.export.load_segmenter (or any object with num_classes,
            preprocess(uint8 [B, H, W, 3]) -> float32, predict_logits(float32 [B, h, w, 3]) ->
            logits [B, h/4, w/4, C], and optionally label_map, a [256] raw -> train-id table).
        pairs: (synthesized image path, label map path) pairs.
        mode, tile, overlap, batch_size: inference as in segment.py ("whole": one padded pass,
            right for synthesis-sized images; "slide": tiles of `tile` px).
        exclude_classes: train ids left out of the means (e.g. a dontcare class).
        progress: show a progress bar.

    Returns:
        metrics_from_confusion's dict plus "confusion" ([C, C] int64) and "num_images".
    """
    from PIL import Image

    from datasets.pairs import DatasetError
    from datasets.pipeline import load_image, load_label_map
    from models.segformer.inference import predict_probs

    if not pairs:
        raise ValueError("semantic_consistency: no (image, label map) pairs given")
    num_classes = int(segmenter.num_classes)
    table = getattr(segmenter, "label_map", None)
    confusion = ConfusionMatrix(num_classes)
    bar = None
    if progress:
        import keras

        bar = keras.utils.Progbar(len(pairs), unit_name="image")
    for image_path, label_path in pairs:
        image = load_image(image_path)  # [H, W, 3] uint8
        label = load_label_map(label_path)  # [h, w] uint8 raw values
        if label.shape != image.shape[:2]:
            label = np.asarray(
                Image.fromarray(label).resize((image.shape[1], image.shape[0]), Image.NEAREST)
            )  # [H, W]
        label = _label_to_train_ids(label, table, label_path)
        invalid = np.unique(label[(label >= num_classes) & (label != 255)])
        if invalid.size:
            raise DatasetError(
                f"label map {label_path} holds values {invalid[:_NAMED].tolist()} outside the "
                f"segmenter's classes [0, {num_classes - 1}] (255 = ignore)"
            )
        normalised = np.asarray(segmenter.preprocess(image[None]), np.float32)[0]  # [H, W, 3]
        probs = predict_probs(
            segmenter.predict_logits,
            normalised,
            num_classes,
            mode=mode,
            tile=tile,
            overlap=overlap,
            batch_size=batch_size,
            size_divisor=_SIZE_DIVISOR,
        )  # [H, W, C]
        confusion.update(label, probs.argmax(axis=-1))
        if bar is not None:
            bar.add(1)
    cm = confusion.result()
    metrics = metrics_from_confusion(cm, exclude_classes=exclude_classes)
    metrics.update(confusion=cm, num_images=len(pairs))
    return metrics
