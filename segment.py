"""Segment images: python segment.py --input=IMG|DIR|GLOB --output_dir=OUT --checkpoint_dir=RUN

The model comes from --checkpoint_dir (a training run) or --saved_model (an export). Every
input image gives, under --output_dir:
    <stem>.png          class ids, 8-bit grey (the format of the label maps)
    <stem>_color.png    the classes in the label set's colours
    <stem>_overlay.png  50% blend of the image and the colours
Images of any size are segmented by sliding windows (--mode=slide, --tile_size, --overlap) or
in one pass padded to a multiple of 32 (--mode=whole).

With --gt_dir (label maps matched by stem: <stem>.png, or <stem>_seg.png as in FaceSynthetics)
the script also prints per-class IoU, Dice, precision, recall, mIoU and pixel accuracy over all
images, and writes OUT/metrics.csv and OUT/confusion.png. Label value 255 is ignored, and with
--ignore_dontcare (default) so is the label set's "other" class (ADE20K's 0), as in the
ADE20K benchmark.

In Python (tests, notebooks): `segment.run(["--input=...", "--checkpoint_dir=..."])`.
"""

import glob
import os

from absl import app
from absl import flags as absl_flags

import flags as cli

FLAGS = absl_flags.FLAGS

# Tests inject a fake here: a callable (checkpoint_dir=None, saved_model=None) -> segmenter with
# .num_classes, .label_set_name, .preprocess(uint8 [B, H, W, 3]) -> float32 and
# .predict_logits(float32 [B, h, w, 3]) -> logits [B, h/4, w/4, C]. None: the real loader.
_LOAD_SEGMENTER = None

_NAMED = 5  # how many files an error message lists
_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
_OUTPUT_SUFFIXES = ("", "_color", "_overlay")
_SIZE_DIVISOR = 32  # total stride of the MiT encoder


def main(argv):
    with cli.user_errors(os.path.basename(__file__)):
        if len(argv) > 1:
            raise cli.ConfigError(f"unexpected arguments: {' '.join(argv[1:])}")
        segment_from_flags(FLAGS)


def run(args):
    """Runs segment.py in-process with command-line style `args`; returns the metrics or None.

    Errors are raised (not turned into an exit status), e.g. run(["--input=a.png", ...]).
    """
    flag_values = absl_flags.FlagValues()
    cli.define_segment_flags(flag_values)
    flag_values(["segment.py", *args])
    return segment_from_flags(flag_values)


def _listing(items) -> str:
    items = list(items)
    more = f" and {len(items) - _NAMED} more" if len(items) > _NAMED else ""
    return ", ".join(map(str, items[:_NAMED])) + more


def _check_flags(flag_values):
    from models.segformer.inference import check_tiling

    if not flag_values.input:
        raise cli.ConfigError("--input is required (an image, a folder or a glob pattern)")
    if bool(flag_values.checkpoint_dir) == bool(flag_values.saved_model):
        raise cli.ConfigError("pass exactly one of --checkpoint_dir and --saved_model")
    if flag_values.batch_size < 1:
        raise cli.ConfigError(f"--batch_size must be >= 1, got {flag_values.batch_size}")
    if flag_values.mode == "slide":
        try:
            check_tiling(flag_values.tile_size, _SIZE_DIVISOR, overlap=flag_values.overlap)
        except ValueError as error:
            raise cli.ConfigError(str(error)) from None
    if flag_values.gt_dir and not os.path.isdir(flag_values.gt_dir):
        raise cli.ConfigError(f"--gt_dir={flag_values.gt_dir} is not a directory")


def _is_image(path: str) -> bool:
    return os.path.isfile(path) and path.lower().endswith(_IMAGE_EXTENSIONS)


def _resolve_inputs(pattern: str) -> list[str]:
    """The image files named by --input (a file, a folder or a glob), sorted."""
    from datasets.pairs import DatasetNotFoundError

    if os.path.isdir(pattern):
        paths = sorted(
            os.path.join(pattern, name) for name in os.listdir(pattern)
            if _is_image(os.path.join(pattern, name))
        )
        if not paths:
            raise cli.ConfigError(
                f"--input={pattern} is a folder without images ({', '.join(_IMAGE_EXTENSIONS)})"
            )
        return paths
    if os.path.isfile(pattern):
        return [pattern]
    if any(char in pattern for char in "*?["):
        paths = sorted(path for path in glob.glob(pattern, recursive=True) if _is_image(path))
        if not paths:
            raise cli.ConfigError(f"--input={pattern} matches no image files")
        return paths
    raise DatasetNotFoundError(f"--input={pattern} does not exist")


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _output_paths(inputs: list[str], output_dir: str) -> dict[str, list[str]]:
    """input path -> its three output paths; refuses clashing stems and outputs over inputs."""
    by_stem = {}
    for path in inputs:
        by_stem.setdefault(_stem(path), []).append(path)
    clashing = [paths for paths in by_stem.values() if len(paths) > 1]
    if clashing:
        raise cli.ConfigError(
            f"--input holds images with the same stem, whose outputs would clash: "
            f"{_listing(' / '.join(paths) for paths in clashing)}"
        )
    outputs = {
        path: [os.path.join(output_dir, f"{_stem(path)}{suffix}.png") for suffix in
               _OUTPUT_SUFFIXES]
        for path in inputs
    }
    owner = {}
    for path, paths in outputs.items():
        for out in paths:
            if out in owner:
                raise cli.ConfigError(
                    f"the outputs of {owner[out]} and {path} would both be {out}; rename one"
                )
            owner[out] = path
    real_inputs = {os.path.realpath(path): path for path in inputs}
    overwritten = [real_inputs[os.path.realpath(out)] for out in owner
                   if os.path.realpath(out) in real_inputs]
    if overwritten:
        raise cli.ConfigError(
            f"--output_dir={output_dir} would overwrite input images {_listing(overwritten)}; "
            "choose another output directory"
        )
    return outputs


def _check_writable(paths: list[str], overwrite: bool):
    existing = [path for path in paths if os.path.exists(path)]
    if existing and not overwrite:
        raise FileExistsError(
            f"{_listing(existing)} already exist; pass --overwrite or another --output_dir"
        )


def _image_size(path: str, what: str) -> tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels."""
    from PIL import Image

    from datasets.pairs import DatasetError

    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DatasetError(f"cannot read {what} {path}: {error}") from None


def _match_ground_truth(inputs: list[str], gt_dir: str) -> dict[str, str]:
    """input path -> its label map in --gt_dir (<stem>_seg.png, else <stem>.png), same size."""
    from datasets.pairs import DatasetError

    matched, unmatched = {}, []
    for path in inputs:
        stem = _stem(path)
        candidates = [os.path.join(gt_dir, f"{stem}_seg.png"), os.path.join(gt_dir, f"{stem}.png")]
        found = [c for c in candidates if os.path.isfile(c)]
        if found:
            matched[path] = found[0]
        else:
            unmatched.append(stem)
    if unmatched:
        raise DatasetError(
            f"--gt_dir={gt_dir} has no label map (<stem>.png or <stem>_seg.png) for "
            f"{len(unmatched)} of {len(inputs)} images: {_listing(unmatched)}"
        )
    for path, label_path in matched.items():
        image_size = _image_size(path, "image")
        label_size = _image_size(label_path, "label map")
        if image_size != label_size:
            raise DatasetError(
                f"label map {label_path} is {label_size[0]}x{label_size[1]} but image {path} is "
                f"{image_size[0]}x{image_size[1]} (width x height)"
            )
    return matched


def _load_label_set(flag_values, segmenter):
    from semantic_labels import load_label_set

    name = flag_values.semantic_label_path or segmenter.label_set_name
    if not name:
        raise cli.ConfigError("the model names no label set; pass --semantic_label_path")
    label_set = load_label_set(name)
    if label_set.num_classes != segmenter.num_classes:
        flag = ("--semantic_label_path=" + name) if flag_values.semantic_label_path else (
            f"the model's label set {name!r}"
        )
        raise cli.ConfigError(
            f"{flag} has {label_set.num_classes} classes but the model predicts "
            f"{segmenter.num_classes}"
        )
    return label_set


def segment_from_flags(flag_values):
    """Segments the --input images with the model of --checkpoint_dir / --saved_model.

    Returns the metrics dict of metrics_from_confusion with --gt_dir, else None.
    """
    _check_flags(flag_values)
    inputs = _resolve_inputs(flag_values.input)
    output_dir = flag_values.output_dir
    outputs = _output_paths(inputs, output_dir)
    ground_truth = _match_ground_truth(inputs, flag_values.gt_dir) if flag_values.gt_dir else {}
    report_paths = [os.path.join(output_dir, name) for name in ("metrics.csv", "confusion.png")]
    _check_writable(
        [p for paths in outputs.values() for p in paths] + (report_paths if ground_truth else []),
        flag_values.overwrite,
    )

    # TensorFlow loads only now: flag and file errors above come without its start-up time.
    import keras
    import numpy as np
    from PIL import Image

    from datasets.pairs import DatasetError
    from datasets.pipeline import load_image, load_label_map
    from evaluation import segmentation_metrics as seg_metrics
    from models.segformer.inference import predict_probs

    loader = _LOAD_SEGMENTER
    if loader is None:
        from models.segformer.export import load_segmenter as loader
    segmenter = loader(checkpoint_dir=flag_values.checkpoint_dir,
                       saved_model=flag_values.saved_model)
    num_classes = int(segmenter.num_classes)
    if num_classes > 256:
        raise cli.ConfigError(f"the model predicts {num_classes} classes; the class-id PNGs are "
                              "8-bit (at most 256 classes)")
    label_set = _load_label_set(flag_values, segmenter)
    dontcare_id = label_set.dontcare_id if flag_values.ignore_dontcare else None
    confusion = seg_metrics.ConfusionMatrix(num_classes) if ground_truth else None

    os.makedirs(output_dir, exist_ok=True)
    progbar = keras.utils.Progbar(len(inputs), unit_name="image")
    for path in inputs:
        image = load_image(path)  # [H, W, 3] uint8
        normalised = np.asarray(segmenter.preprocess(image[None]), dtype=np.float32)[0]
        probs = predict_probs(
            segmenter.predict_logits, normalised, num_classes, mode=flag_values.mode,
            tile=flag_values.tile_size, overlap=flag_values.overlap,
            batch_size=flag_values.batch_size, size_divisor=_SIZE_DIVISOR,
        )  # [H, W, C]
        prediction = probs.argmax(axis=-1).astype(np.uint8)  # [H, W]
        colors = label_set.colorize(prediction)  # [H, W, 3]
        overlay = ((image.astype(np.uint16) + colors + 1) // 2).astype(np.uint8)  # [H, W, 3]
        ids_path, color_path, overlay_path = outputs[path]
        Image.fromarray(prediction).save(ids_path)
        Image.fromarray(colors).save(color_path)
        Image.fromarray(overlay).save(overlay_path)
        if confusion is not None:
            label_path = ground_truth[path]
            label = load_label_map(label_path)  # [H, W] uint8
            table = getattr(segmenter, "label_map", None)
            if table is not None:
                # Raw file values -> the run's train ids (e.g. Cityscapes labelIds, ADE20K's
                # reduce-zero-label), as in training; -1 marks values of no class.
                table = np.asarray(table)
                unknown = np.unique(label[table[label] < 0])
                if unknown.size:
                    raise DatasetError(
                        f"label map {label_path} holds values {_listing(unknown.tolist())} that "
                        "belong to no class of the model's dataset"
                    )
                label = table[label].astype(np.uint8)
            if label.shape != prediction.shape:
                raise DatasetError(f"label map {label_path} has shape {list(label.shape)} but "
                                   f"image {path} {list(prediction.shape)}")
            invalid = np.unique(label[(label >= num_classes) & (label != 255)])
            if invalid.size:
                raise DatasetError(
                    f"label map {label_path} holds values {_listing(invalid.tolist())} outside "
                    f"the model's classes [0, {num_classes - 1}] (255 = ignore)"
                )
            if dontcare_id is not None:
                label = np.where(label == dontcare_id, 255, label).astype(np.uint8)
            confusion.update(label, prediction)
        progbar.add(1)
    print(f"Wrote {len(inputs)} segmentations to {output_dir}")
    if confusion is None:
        return None

    cm = confusion.result()
    metrics = seg_metrics.metrics_from_confusion(
        cm, exclude_classes=() if dontcare_id is None else (dontcare_id,)
    )
    print(seg_metrics.format_table(metrics, label_set.names))
    seg_metrics.write_csv(metrics, label_set.names, report_paths[0])
    seg_metrics.plot_confusion(cm, label_set.names, report_paths[1])
    print(f"Wrote {report_paths[0]} and {report_paths[1]}")
    return metrics


if __name__ == "__main__":
    cli.define_segment_flags()
    app.run(main)
