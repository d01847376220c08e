"""COCO instance-segmentation scores of a segmenter: pycocotools segm AP / AR (evaluate.py
--mode=coco).

The synthetic datasets (synthesize.py --mode=dataset, datasets.synthetic_pairs) write the COCO
ground truth of their validation split, coco_gt_val.json: one annotation per 8-connected
component of each non-background class, category id = class id. The Synthesis-in-Style
reference scored its segmenters against that file; so do we:

1. every image of the ground truth (file_name relative to image_root, by default the file's
   folder) is segmented: in one pass padded to a multiple of 32 (tile_size 0) or by
   overlapping tiles (models.segformer.inference.predict_probs);
2. each 8-connected component of the pixels predicted as a category is one detection: its
   mask (compressed RLE) and as score the mean predicted probability of that class over it
   (the reference's score);
3. pycocotools' COCOeval(ground truth, detections, "segm"): the 12 standard numbers (AP at IoU
   0.50:0.95, 0.50, 0.75, by area; AR at 1 / 10 / max_detections detections, by area) and the
   AP of every category (area all, max_detections).

Writes output_dir/results.json (the numbers), results.md (a table and COCOeval's summary) and
detections.json (the detections in COCO's results format, for other tools).

Example:
    results = evaluate_coco("runs/sg_dataset/coco_gt_val.json", "runs/sg_segformer",
                            "outputs/coco")
    print(results["stats"]["AP"], results["per_category"]["printed_text"])
"""

from __future__ import annotations

import contextlib
import io
import json
import os

import numpy as np

from core import io as core_io
from core.errors import UserError
from core.masks import connected_components

STAT_NAMES = (
    "AP",
    "AP50",
    "AP75",
    "AP_small",
    "AP_medium",
    "AP_large",
    "AR_1",
    "AR_10",
    "AR_max",
    "AR_small",
    "AR_medium",
    "AR_large",
)
OUTPUT_FILES = ("results.json", "results.md", "detections.json")


class CocoEvaluationError(UserError):
    """A COCO ground truth, its images or the settings cannot be used; names the culprit."""


def _pycocotools():
    try:
        from pycocotools import mask as mask_utils
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:  # pinned in requirements.txt; a hand-made environment may lack it
        raise CocoEvaluationError(
            "--mode=coco needs pycocotools: pip install -r requirements.txt"
        ) from None
    return mask_utils, COCO, COCOeval


def load_ground_truth(path: str) -> dict:
    """The parsed COCO ground truth, its structure checked (images, annotations, categories)."""
    where = f"--coco_gt={path}"
    data = core_io.read_json_list(path, where)
    if not isinstance(data, dict):
        raise CocoEvaluationError(f"{where}: the top level must be a COCO object")
    missing = [key for key in ("images", "annotations", "categories") if key not in data]
    if missing:
        raise CocoEvaluationError(f"{where}: not COCO instances, missing {missing}")
    if not data["images"]:
        raise CocoEvaluationError(f"{where} lists no images")
    for image in data["images"]:
        if not {"id", "file_name", "height", "width"} <= set(image):
            raise CocoEvaluationError(
                f"{where}: image entries need id, file_name, height and width; got {image}"
            )
    for category in data["categories"]:
        if not {"id", "name"} <= set(category):
            raise CocoEvaluationError(f"{where}: categories need id and name; got {category}")
    return data


def detections_from_prediction(
    prediction: np.ndarray, probs: np.ndarray, image_id: int, category_ids
) -> list[dict]:
    """COCO detections of one image: a component of each category's predicted pixels each.

    Args:
        prediction: [H, W] class ids (argmax).
        probs: [H, W, C] class probabilities.
        image_id: the ground truth's id of the image.
        category_ids: the classes to detect (the ground truth's categories).

    Returns:
        [{"image_id", "category_id", "segmentation": compressed RLE (counts a str), "score",
          "bbox", "area"}], in category then raster order.
    """
    mask_utils, _, _ = _pycocotools()
    detections = []
    for category_id in category_ids:
        components, count = connected_components(prediction == category_id)
        if count == 0:
            continue
        sizes = np.bincount(components.ravel(), minlength=count + 1)  # [count + 1]
        sums = np.bincount(
            components.ravel(), weights=probs[..., category_id].ravel(), minlength=count + 1
        )  # [count + 1] summed probability of the class over each component
        for index in range(1, count + 1):
            mask = np.asfortranarray((components == index).astype(np.uint8))  # [H, W]
            rle = mask_utils.encode(mask)
            rle["counts"] = rle["counts"].decode("ascii")
            detections.append(
                {
                    "image_id": int(image_id),
                    "category_id": int(category_id),
                    "segmentation": rle,
                    "score": float(sums[index] / sizes[index]),
                    "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                    "area": float(sizes[index]),
                }
            )
    return detections


def coco_segm_scores(ground_truth: dict, detections: list[dict], max_detections: int = 100):
    """COCOeval "segm" of detections against ground_truth.

    Returns:
        {"stats": {name: value} (STAT_NAMES; -1 where COCO has nothing to average, as
          pycocotools), "per_category": {category name: AP or None}, "summary": COCOeval's
          printed table}. Without detections every number is 0 (the reference's convention).
    """
    _, COCO, COCOeval = _pycocotools()
    names = {category["id"]: category["name"] for category in ground_truth["categories"]}
    if not detections:
        return {
            "stats": dict.fromkeys(STAT_NAMES, 0.0),
            "per_category": dict.fromkeys(names.values(), 0.0),
            "summary": "no detections: every AP and AR is 0",
        }
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco_gt = COCO()
        coco_gt.dataset = json.loads(json.dumps(ground_truth))
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(json.loads(json.dumps(detections)))
        evaluator = COCOeval(coco_gt, coco_dt, "segm")
        evaluator.params.maxDets = [1, 10, max_detections]
        evaluator.evaluate()
        evaluator.accumulate()
    summary = io.StringIO()
    with contextlib.redirect_stdout(summary):
        evaluator.summarize()
    precision = evaluator.eval["precision"]  # [IoU T, recall R, category K, area A, maxDets M]
    per_category = {}
    for index, category_id in enumerate(evaluator.params.catIds):
        values = precision[:, :, index, 0, -1]
        valid = values[values > -1]
        per_category[names[category_id]] = float(valid.mean()) if valid.size else None
    return {
        "stats": {name: float(value) for name, value in zip(STAT_NAMES, evaluator.stats)},
        "per_category": per_category,
        "summary": summary.getvalue().rstrip(),
    }


def _check_classes(ground_truth, segmenter, where):
    """The categories must be classes of the segmenter, with the same names where it has them."""
    from semantic_labels import LabelSetError, load_label_set

    num_classes = int(segmenter.num_classes)
    outside = [c["id"] for c in ground_truth["categories"] if not 0 <= c["id"] < num_classes]
    if outside:
        raise CocoEvaluationError(
            f"{where}: category ids {outside} are not classes of the segmenter "
            f"(0..{num_classes - 1}); COCO category id = class id"
        )
    try:
        names = load_label_set(segmenter.label_set_name).names
    except (LabelSetError, TypeError, ValueError, OSError):
        return
    wrong = [
        f"{c['id']}: {c['name']!r} vs {names[c['id']]!r}"
        for c in ground_truth["categories"]
        if len(names) == num_classes and names[c["id"]] != c["name"]
    ]
    if wrong:
        raise CocoEvaluationError(
            f"{where}: categories name other classes than the segmenter's label set "
            f"({', '.join(wrong)}): a segmenter of another dataset?"
        )


def format_markdown(results: dict) -> str:
    """The results as a Markdown table (and COCOeval's summary)."""
    lines = ["| metric | value |", "|---|---:|"]
    lines += [f"| {name} | {value:.4f} |" for name, value in results["stats"].items()]
    lines += ["", "| category | AP |", "|---|---:|"]
    lines += [
        f"| {name} | {'-' if value is None else f'{value:.4f}'} |"
        for name, value in results["per_category"].items()
    ]
    lines += ["", "```", results["summary"], "```"]
    return "\n".join(lines) + "\n"


def evaluate_coco(
    coco_gt: str,
    segmenter: str | None,
    output_dir: str = "outputs/coco",
    *,
    image_root: str | None = None,
    tile_size: int = 0,
    batch_size: int = 4,
    max_detections: int = 100,
    overwrite: bool = False,
    load_segmenter=None,
) -> dict:
    """Scores a segmenter by COCO segm AP / AR on the images of a COCO ground truth.

    Args:
        coco_gt: the ground truth JSON (e.g. <dataset>/coco_gt_val.json).
        segmenter: an exported SegFormer SavedModel or a SegFormer run directory.
        output_dir: where results.json, results.md and detections.json go.
        image_root: the folder the file_name paths start at (default: coco_gt's folder).
        tile_size: 0: each image in one pass; else overlapping tiles of this side (a multiple
            of 32, overlap 0.25).
        batch_size: tiles per forward pass.
        max_detections: detections per image COCOeval keeps (its maxDets[2]).
        overwrite: replace earlier results in output_dir.
        load_segmenter: (path) -> segmenter with num_classes, label_set_name, preprocess and
            predict_logits (models.segformer.export.Segmenter); tests pass a fake.

    Returns:
        {"coco_gt", "segmenter", "images", "detections", "max_detections", "stats",
         "per_category", "summary"}.
    """
    from models.segformer.inference import SIZE_DIVISOR, check_tiling, predict_probs

    if not coco_gt:
        raise CocoEvaluationError("--mode=coco needs --coco_gt (e.g. <dataset>/coco_gt_val.json)")
    if not segmenter:
        raise CocoEvaluationError("--mode=coco needs --segmenter (a SegFormer run or export)")
    if max_detections < 1:
        raise CocoEvaluationError(f"--max_detections must be >= 1, got {max_detections}")
    if batch_size < 1:
        raise CocoEvaluationError(f"--batch_size must be >= 1, got {batch_size}")
    if tile_size:
        try:
            check_tiling(tile_size, SIZE_DIVISOR)
        except ValueError as error:
            raise CocoEvaluationError(str(error)) from None
    _pycocotools()
    ground_truth = load_ground_truth(coco_gt)
    where = f"--coco_gt={coco_gt}"
    image_root = image_root or os.path.dirname(os.path.abspath(coco_gt))
    if not os.path.isdir(image_root):
        raise CocoEvaluationError(f"--image_root={image_root} is not a directory")
    images = [
        (entry, os.path.join(image_root, entry["file_name"])) for entry in ground_truth["images"]
    ]
    missing = [path for _, path in images if not os.path.isfile(path)]
    if missing:
        raise core_io.InputNotFoundError(
            f"{where}: {len(missing)} of {len(images)} images do not exist under "
            f"{image_root}: {core_io.list_some(missing)}"
        )
    outputs = [os.path.join(output_dir, name) for name in OUTPUT_FILES]
    core_io.check_overwrite(outputs, overwrite, remedy="another --output_dir")

    from datasets.pipeline import load_image

    if load_segmenter is None:
        from evaluation.report import segmenter_kind
        from models.segformer.export import load_segmenter as load_export

        def load_segmenter(path):
            return load_export(**{segmenter_kind(path): path})

    model = load_segmenter(segmenter)
    _check_classes(ground_truth, model, where)
    category_ids = [category["id"] for category in ground_truth["categories"]]
    detections = []
    print(f"Segmenting the {len(images)} images of {coco_gt}")
    for entry, path in images:
        image = load_image(path)  # [H, W, 3] uint8
        if image.shape[:2] != (entry["height"], entry["width"]):
            raise CocoEvaluationError(
                f"{path} is {image.shape[1]}x{image.shape[0]} but {where} says "
                f"{entry['width']}x{entry['height']} (width x height)"
            )
        normalised = np.asarray(model.preprocess(image[None]), dtype=np.float32)[0]
        probs = predict_probs(
            model.predict_logits,
            normalised,
            int(model.num_classes),
            mode="slide" if tile_size else "whole",
            tile=tile_size or 512,
            batch_size=batch_size,
            size_divisor=SIZE_DIVISOR,
        )  # [H, W, C]
        prediction = probs.argmax(axis=-1)  # [H, W]
        detections += detections_from_prediction(prediction, probs, entry["id"], category_ids)
    scores = coco_segm_scores(ground_truth, detections, max_detections)
    results = {
        "coco_gt": os.path.abspath(coco_gt),
        "segmenter": segmenter,
        "images": len(images),
        "detections": len(detections),
        "max_detections": max_detections,
        **scores,
    }
    os.makedirs(output_dir, exist_ok=True)
    core_io.write_json_atomic(outputs[0], results, indent=1)
    with core_io.atomic_write(outputs[1]) as file:
        file.write(format_markdown(results))
    core_io.write_json_atomic(outputs[2], detections, indent=None)
    print(format_markdown(results))
    print(f"Wrote {', '.join(outputs)}")
    return results


__all__ = [
    "STAT_NAMES",
    "CocoEvaluationError",
    "coco_segm_scores",
    "detections_from_prediction",
    "evaluate_coco",
    "format_markdown",
    "load_ground_truth",
]
