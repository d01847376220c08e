"""Cluster-label mappings and the coarse / fine segmentation rule (Synthesis in Style, step 5).

A label mapping (written by the annotation app, next to the cluster run it annotates, e.g.
<clusters_dir>/annotations_k20.json) names the class of each cluster of some layers for one k;
cluster ids are decimal strings and a cluster missing from its layer is unlabelled:

    {"format": "semsynth-cluster-labels/1", "k": 20, "generator": "<fingerprint>",
     "palette": "documents", "layers": {"conv09_64px": {"0": "printed_text", ...}, ...}}

`segment_from_features` turns ONE sample's activations into a class-id mask with the rule
"coarse layers decide the class, fine layers decide the shape":

1. coarse layers (64 px at R = 256): every pixel's cluster -> class; per non-background class a
   region mask, upsampled (nearest) to R, dilated, OR-ed over the coarse layers; its connected
   components ("contours" in the reference, which used OpenCV contours: here a contour is a
   connected component, 8-connected) smaller than min_area pixels at R x R are dropped;
2. fine layers (R px): a pixel is *ink* when its cluster's class is not background, and stays
   ink only where every fine layer agrees;
3. every connected ink component takes the class of the coarse region it overlaps most
   (overlap_policy="most"; ties go to the lower class id) or of the lowest class id whose
   region it touches at all ("any-first"); a component touching no region becomes background;
4. if an ink component's bounding box spans more than discard_full_page of both the width and
   the height, the sample is discarded (None): such "ink" is a page edge or a texture, not text.

That rule is the default of a small registry, the paper's "adapt the algorithm" step made an
extension point: MaskRule subclasses registered by name in MASK_RULES (@register_mask_rule),
chosen with synthesize.py --mask_rule. Registered: "coarse_fine" (the rule above, CoarseFineRule)
and "fine_only" (FineOnlyRule: no coarse layers; ink as in step 2, and each ink component takes
the class most of its pixels have in the fine layers). See MaskRule for how to add one.

Only numpy and PIL are used (PIL's MaxFilter dilates); `connected_components` is a vectorised
union-find.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping

import numpy as np
from PIL import Image, ImageFilter

from core.errors import UserError
from core.masks import component_stats, connected_components
from models.synthesis_in_style.clusters import ClusterRun, assign, upsample_nearest
from semantic_labels import LabelSet

MAPPING_FORMAT = "semsynth-cluster-labels/1"
OVERLAP_POLICIES = ("most", "any-first")


class LabelMappingError(UserError):
    """A label mapping file or its content is invalid; the message names the file."""


class LabelMappingFileNotFoundError(LabelMappingError, FileNotFoundError):
    """A label mapping file does not exist (catchable as ValueError or FileNotFoundError)."""


class UnlabelledClustersError(LabelMappingError):
    """Clusters of the used layers have no class.

    Attributes:
        missing: {layer: [cluster ids without a class]} of the used layers.
    """

    def __init__(self, message: str, missing: dict[str, list[int]]):
        super().__init__(message)
        self.missing = missing


# === Label mappings ===


def _load_palette(palette) -> tuple[LabelSet, str]:
    """(LabelSet, how to name it in errors) from a LabelSet or a palette name / path."""
    if isinstance(palette, LabelSet):
        return palette, f"palette {palette.name!r}"
    from models.synthesis_in_style.palette import load_palette

    return load_palette(palette), f"palette file {os.fspath(palette)}"


def validate_label_mapping(
    spec, *, clusters: ClusterRun, k: int | None = None, palette, source: str = "label mapping"
) -> dict:
    """Checks a parsed mapping against its cluster run and palette (see load_label_mapping)."""
    if not isinstance(spec, dict):
        raise LabelMappingError(f"{source}: the top level must be a JSON object")
    if spec.get("format") != MAPPING_FORMAT:
        raise LabelMappingError(
            f"{source}: 'format' must be {MAPPING_FORMAT!r}, got {spec.get('format')!r}"
        )
    mapping_k = spec.get("k")
    if not isinstance(mapping_k, int) or isinstance(mapping_k, bool):
        raise LabelMappingError(f"{source}: 'k' must be an integer, got {mapping_k!r}")
    if k is not None and mapping_k != k:
        raise LabelMappingError(f"{source} was made for k={mapping_k}, but k={k} was requested")
    if mapping_k not in clusters.k_values:
        raise LabelMappingError(
            f"{source}: k={mapping_k} is not in cluster run {clusters.directory} (available k: "
            f"{list(clusters.k_values)})"
        )
    if spec.get("generator") != clusters.fingerprint:
        raise LabelMappingError(
            f"{source}: mapping made for another generator (fingerprint "
            f"{spec.get('generator')!r}; cluster run {clusters.directory} has "
            f"{clusters.fingerprint!r})"
        )
    labels, palette_name = _load_palette(palette)
    layers = spec.get("layers")
    if not isinstance(layers, dict):
        raise LabelMappingError(
            f"{source}: 'layers' must be an object {{layer: {{cluster_id: class}}}}"
        )
    unknown_layers = sorted(set(layers) - set(clusters.layer_names))
    if unknown_layers:
        raise LabelMappingError(
            f"{source}: layers {unknown_layers} are not in cluster run {clusters.directory} "
            f"(its layers: {list(clusters.layer_names)})"
        )
    parsed: dict[str, dict[int, str]] = {}
    unknown_classes, bad_ids = set(), []
    for layer, entries in layers.items():
        if not isinstance(entries, dict):
            raise LabelMappingError(
                f"{source}: layers[{layer!r}] must be an object {{cluster_id: class}}"
            )
        parsed[layer] = {}
        for cluster_id, class_name in entries.items():
            if not (
                isinstance(cluster_id, str) and cluster_id.isdigit() and int(cluster_id) < mapping_k
            ):
                bad_ids.append(f"{layer}:{cluster_id}")
                continue
            if not isinstance(class_name, str) or class_name not in labels.names:
                unknown_classes.add(repr(class_name))
                continue
            parsed[layer][int(cluster_id)] = class_name
    if bad_ids:
        raise LabelMappingError(
            f"{source}: cluster ids must be decimal strings in [0, {mapping_k - 1}] "
            f"(k={mapping_k}); bad: {bad_ids[:20]}"
        )
    if unknown_classes:
        raise LabelMappingError(
            f"{source}: classes {', '.join(sorted(unknown_classes))} are not in the "
            f"{palette_name} (its classes: {list(labels.names)})"
        )
    return {
        "format": MAPPING_FORMAT,
        "k": mapping_k,
        "generator": spec["generator"],
        "palette": spec.get("palette"),
        "layers": parsed,
        "source": source,
    }


def load_label_mapping(path: str, *, clusters: ClusterRun, k: int | None = None, palette) -> dict:
    """Loads and validates a cluster-label mapping JSON.

    Args:
        path: the mapping file (e.g. <clusters_dir>/annotations_k20.json).
        clusters: the cluster run it annotates.
        k: the k it must be for (None: the file's k, which must be in the run).
        palette: LabelSet, or a palette name / path (see palette.load_palette).

    Returns:
        {"format", "k", "generator", "palette", "source": path,
         "layers": {layer: {int cluster_id: class name}}}.

    Raises LabelMappingError (a ValueError) naming the file: wrong format, k mismatch (naming
    both), "mapping made for another generator", classes missing from the palette (naming them
    and the palette), unknown layers or cluster ids out of range.
    """
    path = os.path.abspath(os.fspath(path))
    if not os.path.isfile(path):
        raise LabelMappingFileNotFoundError(f"label mapping {path} does not exist")
    try:
        with open(path, encoding="utf-8") as file:
            spec = json.load(file)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise LabelMappingError(f"label mapping {path}: not valid JSON ({error})") from None
    return validate_label_mapping(
        spec, clusters=clusters, k=k, palette=palette, source=f"label mapping {path}"
    )


def check_complete(mapping: dict, layers) -> None:
    """Raises UnlabelledClustersError naming every (layer, cluster id) of `layers` with no class."""
    k = mapping["k"]
    missing = {}
    for layer in layers:
        labelled = mapping["layers"].get(layer, {})
        unlabelled = [i for i in range(k) if i not in labelled]
        if unlabelled:
            missing[layer] = unlabelled
    if missing:
        details = "; ".join(
            f"{layer}: {'all ' + str(k) + ' (layer not annotated)' if len(ids) == k else ids}"
            for layer, ids in missing.items()
        )
        raise UnlabelledClustersError(
            f"{mapping.get('source', 'label mapping')} (k={k}) leaves clusters unlabelled: "
            f"{details}. Label them in the annotation app first.",
            missing,
        )


def default_layers(clusters: ClusterRun) -> tuple[list[str], list[str]]:
    """(coarse, fine) layers of the reference rule: those at R / 4 and those at R."""
    layers = clusters.layers
    coarse = [layer["name"] for layer in layers if layer["resolution"] == clusters.resolution // 4]
    fine = [layer["name"] for layer in layers if layer["resolution"] == clusters.resolution]
    if not coarse or not fine:
        raise LabelMappingError(
            f"cluster run {clusters.directory} has no layers at {clusters.resolution // 4} px "
            f"and {clusters.resolution} px for the default coarse / fine layers; name them"
        )
    return coarse, fine


def auto_label_clusters(
    clusters: ClusterRun,
    k: int,
    *,
    layers=None,
    paper_luminance=None,
    colour_threshold: float = 40.0,
    max_samples: int = 32,
) -> dict:
    """A heuristic cluster-label mapping for document generators, from colour statistics.

    A stand-in for the human annotator in tests and benchmarks, and a starting point to correct
    in the annotation app: each cluster gets the mean colour of the generated pixels it covers
    (its map upsampled to the image size, over up to `max_samples` samples); a cluster as light
    as the paper is background, a dark one is handwritten_text when coloured (ink of blue / red /
    brown pens: max - min channel >= colour_threshold) and printed_text when grey. "As light as
    the paper": mean luminance above paper_luminance (default: the midpoint between the darkest
    and the lightest cluster of the layer).

    Returns a mapping dict in the annotator's file format (every cluster of `layers` labelled,
    classes background / printed_text / handwritten_text).
    """
    clusters.check_k(k)
    layers = list(layers or clusters.layer_names)
    count = min(clusters.num_samples, max_samples)
    images = [
        np.asarray(Image.open(clusters.sample_path(i)).convert("RGB"), np.float64)
        for i in range(count)
    ]  # each [R, R, 3]
    size = images[0].shape[0]
    result = {}
    for layer in layers:
        sums = np.zeros((k, 3))
        pixels = np.zeros(k)
        for index, image in enumerate(images):
            ids = np.asarray(Image.open(clusters.map_path(k, layer, index)))  # [r, r]
            ids = upsample_nearest(ids, size)  # [R, R]
            pixels += np.bincount(ids.ravel(), minlength=k)[:k]
            for channel in range(3):
                sums[:, channel] += np.bincount(
                    ids.ravel(), weights=image[..., channel].ravel(), minlength=k
                )[:k]
        used = pixels > 0
        means = sums / np.maximum(pixels, 1)[:, None]  # [k, 3] mean RGB per cluster
        luminance = means @ np.array([0.299, 0.587, 0.114])
        threshold = paper_luminance
        if threshold is None:
            threshold = (luminance[used].min() + luminance[used].max()) / 2 if used.any() else 0
        chroma = means.max(axis=1) - means.min(axis=1)
        labels = {}
        for cluster in range(k):
            if not used[cluster] or luminance[cluster] > threshold:
                labels[str(cluster)] = "background"
            elif chroma[cluster] >= colour_threshold:
                labels[str(cluster)] = "handwritten_text"
            else:
                labels[str(cluster)] = "printed_text"
        result[layer] = labels
    return {
        "format": MAPPING_FORMAT,
        "k": int(k),
        "generator": clusters.fingerprint,
        "palette": "documents",
        "layers": result,
    }


def class_lookup(mapping: dict, layer: str, class_ids: Mapping[str, int]) -> np.ndarray:
    """[k] int64 class id of each cluster of `layer` (raises if any is unlabelled)."""
    check_complete(mapping, [layer])
    table = mapping["layers"][layer]
    return np.array([class_ids[table[i]] for i in range(mapping["k"])], dtype=np.int64)


# === Connected components ===


def dilate(mask: np.ndarray, size: int) -> np.ndarray:
    """Binary dilation of [H, W] bool by a size x size square (size odd; 0 or 1: unchanged)."""
    if size <= 1:
        return mask
    image = Image.fromarray(mask.astype(np.uint8) * 255)
    return np.asarray(image.filter(ImageFilter.MaxFilter(size))) > 0


# === The mask rules: the paper's "adapt the algorithm" step ===


def _class_ids(class_ids) -> dict[str, int]:
    if isinstance(class_ids, LabelSet):
        return {name: i for i, name in enumerate(class_ids.names)}
    return dict(class_ids)


@dataclasses.dataclass(frozen=True)
class RuleSettings:
    """The knobs every mask rule receives (see segment_from_features for their meaning)."""

    output_size: int
    min_area: int = 50
    dilation: int = 5
    overlap_policy: str = "most"
    discard_full_page: float | None = 0.95
    background_id: int = 0
    min_ink_area: int = 0


class ClassMaps:
    """Per-layer class maps of one sample, computed on first use and cached.

    `class_maps(layer)` -> [R, R] int64: each pixel's cluster (nearest centre of the layer's
    activations) mapped to its class id through the label mapping, upsampled (nearest) to the
    output size R.
    """

    def __init__(self, features, mapping, centers, class_ids, output_size: int):
        self.features = features
        self.mapping = mapping
        self.centers = centers
        self.class_ids = class_ids
        self.output_size = output_size
        self._cache: dict[str, np.ndarray] = {}

    def __call__(self, layer: str) -> np.ndarray:
        if layer not in self._cache:
            lookup = class_lookup(self.mapping, layer, self.class_ids)  # [k]
            ids = assign(self.features[layer], self.centers[layer])  # [h, w]
            self._cache[layer] = upsample_nearest(lookup[ids], self.output_size)  # [R, R]
        return self._cache[layer]


class MaskRule:
    """Base class of the rules that turn one sample's cluster classes into a class-id mask.

    The paper's step "adapt the segmentation algorithm" (the reference's gan_segmenter.py base
    class) is this extension point: which layers decide what differs between generators and
    documents. A rule is selected by name (synthesize.py --mode=dataset --mask_rule=NAME,
    build_dataset(mask_rule=...), synthesize_dataset(mask_rule=...)). To add one, subclass,
    give it a unique `name` and a one-line `description`, implement `mask` (and `used_layers`
    if it reads other layers than coarse + fine), decorate it with @register_mask_rule, and
    define it in this module or a module imported by models/synthesis_in_style/__init__.py.

    Example:
        @register_mask_rule
        class InkOnly(MaskRule):
            name = "ink_only"
            description = "every fine-layer ink pixel is text of class 1"

            def mask(self, class_maps, *, coarse_layers, fine_layers, settings):
                ink = np.logical_and.reduce([class_maps(l) != settings.background_id
                                             for l in fine_layers])
                return np.where(ink, 1, settings.background_id).astype(np.uint8)
    """

    name = ""
    description = ""

    def used_layers(self, coarse_layers, fine_layers) -> list[str]:
        """The layers whose clusters the rule reads: they must be labelled completely."""
        return list(dict.fromkeys([*coarse_layers, *fine_layers]))

    def check_layers(self, coarse_layers, fine_layers) -> None:
        """Raises ValueError when the rule cannot work with these layers."""
        if not fine_layers:
            raise ValueError(f"mask rule {self.name!r} needs fine layers (--fine_layers)")

    def mask(
        self,
        class_maps: ClassMaps,
        *,
        coarse_layers: list[str],
        fine_layers: list[str],
        settings: RuleSettings,
    ) -> np.ndarray | None:
        """[R, R] uint8 class ids of one sample, or None to discard the sample."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


MASK_RULES: dict[str, type[MaskRule]] = {}


def register_mask_rule(rule_class: type[MaskRule]) -> type[MaskRule]:
    """Class decorator: makes a MaskRule subclass selectable by its name."""
    if not rule_class.name or rule_class.name in MASK_RULES:
        raise ValueError(
            f"mask rule {rule_class.__name__} needs a unique name, got {rule_class.name!r}"
        )
    MASK_RULES[rule_class.name] = rule_class
    return rule_class


def get_mask_rule(rule) -> MaskRule:
    """A MaskRule instance from a name of MASK_RULES (or an instance, returned as it is).

    Raises LabelMappingError naming --mask_rule and the registered rules for an unknown name.
    """
    if isinstance(rule, MaskRule):
        return rule
    if rule not in MASK_RULES:
        raise LabelMappingError(
            f"--mask_rule={rule} is not a mask rule; registered: "
            + ", ".join(f"{name} ({cls.description})" for name, cls in MASK_RULES.items())
        )
    return MASK_RULES[rule]()


def _ink_components(ink: np.ndarray, settings: RuleSettings):
    """(components [R, R], count, areas), or None when an ink component spans more than
    discard_full_page of both the width and the height (the sample is discarded)."""
    components, count = connected_components(ink)
    if count == 0:
        return components, 0, np.zeros(0, dtype=np.int64)
    areas, boxes = component_stats(components, count)
    if settings.discard_full_page is not None:
        heights = boxes[:, 2] - boxes[:, 0] + 1
        widths = boxes[:, 3] - boxes[:, 1] + 1
        limit = settings.discard_full_page * settings.output_size
        if np.any((heights > limit) & (widths > limit)):
            return None
    return components, count, areas


def _fine_ink(class_maps: ClassMaps, fine_layers, background_id: int) -> np.ndarray:
    """[R, R] bool: pixels every fine layer calls non-background."""
    ink = np.ones((class_maps.output_size, class_maps.output_size), dtype=bool)
    for layer in fine_layers:
        ink &= class_maps(layer) != background_id
    return ink


def _paint(components, component_class, areas, settings: RuleSettings) -> np.ndarray:
    """The mask: each ink component in its class (tiny ones, min_ink_area, background)."""
    if settings.min_ink_area > 0:
        component_class[1:][areas < settings.min_ink_area] = settings.background_id
    return component_class[components].astype(np.uint8)


@register_mask_rule
class CoarseFineRule(MaskRule):
    """The paper's rule (module docstring, steps 1-4): coarse layers decide the class of each
    region, fine layers the shape of the ink; each ink component takes the class of the coarse
    region it overlaps (overlap_policy)."""

    name = "coarse_fine"
    description = "coarse layers decide the class, fine layers the shape (the paper's rule)"

    def check_layers(self, coarse_layers, fine_layers) -> None:
        if not coarse_layers or not fine_layers:
            raise ValueError(
                "mask rule 'coarse_fine' needs coarse and fine layers (--coarse_layers, "
                "--fine_layers)"
            )

    def mask(self, class_maps, *, coarse_layers, fine_layers, settings):
        background_id = settings.background_id
        regions: dict[int, np.ndarray] = {}
        for layer in coarse_layers:
            classes = class_maps(layer)
            for class_id in np.unique(classes):
                if class_id == background_id:
                    continue
                region = dilate(classes == class_id, settings.dilation)
                regions[int(class_id)] = regions.get(int(class_id), False) | region
        for class_id, region in regions.items():
            components, count = connected_components(region)
            areas, _ = component_stats(components, count)
            keep = np.concatenate([[False], areas >= settings.min_area])  # [count + 1]
            regions[class_id] = keep[components]

        found = _ink_components(_fine_ink(class_maps, fine_layers, background_id), settings)
        if found is None:
            return None
        components, count, areas = found
        component_class = np.full(count + 1, background_id, dtype=np.int64)  # 0 = not ink
        region_ids = sorted(regions)
        if count and region_ids:
            overlap = np.stack(
                [np.bincount(components[regions[c]], minlength=count + 1) for c in region_ids],
                axis=1,
            )  # [count + 1, num_regions] pixels of each component inside each class region
            overlap[0] = 0
            if settings.overlap_policy == "most":
                choice = np.argmax(overlap, axis=1)  # ties: the lower class id
            else:
                choice = np.argmax(overlap > 0, axis=1)  # the lowest class id touched
            touched = overlap.max(axis=1) > 0
            component_class[touched] = np.asarray(region_ids)[choice[touched]]
        return _paint(components, component_class, areas, settings)


@register_mask_rule
class FineOnlyRule(MaskRule):
    """The fine layers decide shape and class: ink where every fine layer says non-background;
    each ink component takes the class most of its pixels have, summed over the fine layers
    (ties: the lower class id). No coarse layers: for generators whose coarse clusters do not
    separate the classes, or documents with one text class."""

    name = "fine_only"
    description = "the fine layers decide shape and class (majority over each ink component)"

    def used_layers(self, coarse_layers, fine_layers) -> list[str]:
        return list(dict.fromkeys(fine_layers))

    def mask(self, class_maps, *, coarse_layers, fine_layers, settings):
        background_id = settings.background_id
        found = _ink_components(_fine_ink(class_maps, fine_layers, background_id), settings)
        if found is None:
            return None
        components, count, areas = found
        num_classes = 1 + max(int(class_maps(layer).max()) for layer in fine_layers)
        votes = np.zeros((count + 1, num_classes), dtype=np.int64)  # [component, class]
        for layer in fine_layers:
            pairs = components.ravel() * num_classes + class_maps(layer).ravel()  # [R * R]
            votes += np.bincount(pairs, minlength=(count + 1) * num_classes).reshape(votes.shape)
        votes[:, background_id] = 0
        votes[0] = 0
        component_class = np.where(votes.max(axis=1) > 0, np.argmax(votes, axis=1), background_id)
        return _paint(components, component_class, areas, settings)


def segment_from_features(
    features: Mapping[str, np.ndarray],
    mapping: dict,
    centers: Mapping[str, np.ndarray],
    *,
    coarse_layers: list[str],
    fine_layers: list[str],
    class_ids,
    output_size: int,
    min_area: int = 50,
    dilation: int = 5,
    overlap_policy: str = "most",
    discard_full_page: float | None = 0.95,
    background_id: int = 0,
    min_ink_area: int = 0,
    mask_rule="coarse_fine",
) -> np.ndarray | None:
    """Class-id mask of one sample from its activations, by a mask rule (default: the paper's
    coarse / fine rule of this module's docstring).

    Args:
        features: {layer: [h, w, C] activations} of ONE sample (at least the used layers).
        mapping: a validated label mapping (load_label_mapping) labelling every cluster of
            the used layers.
        centers: {layer: [k, C] centres} of the mapping's k.
        coarse_layers: layers that decide the class (reference: the two 64 px layers).
        fine_layers: layers that decide the ink shape (reference: the two 256 px layers).
        class_ids: {class name: id} or the palette LabelSet (id = position).
        output_size: R, the side of the returned mask.
        min_area: coarse region components under this many pixels (at R x R) are dropped.
        dilation: side of the square that dilates each coarse class region, in output pixels
            (odd; 0 or 1: none); it lets ink at a region's edge still overlap it.
        overlap_policy: "most" or "any-first" (see the module docstring).
        discard_full_page: fraction of width and height an ink component's box must exceed
            for the sample to be discarded; None never discards.
        background_id: class id of background (what non-ink pixels get).
        min_ink_area: ink components under this many pixels become background (0: keep all).
        mask_rule: a name of MASK_RULES ("coarse_fine", "fine_only") or a MaskRule.

    Returns:
        [R, R] uint8 class ids, or None when the sample is discarded.
    """
    rule = get_mask_rule(mask_rule)
    if overlap_policy not in OVERLAP_POLICIES:
        raise ValueError(
            f"overlap_policy must be one of {OVERLAP_POLICIES}, got {overlap_policy!r}"
        )
    rule.check_layers(list(coarse_layers), list(fine_layers))
    if dilation > 1 and dilation % 2 == 0:
        raise ValueError(f"dilation must be odd (a centred square), got {dilation}")
    for layer in rule.used_layers(list(coarse_layers), list(fine_layers)):
        if layer not in features or layer not in centers:
            raise ValueError(
                f"segment_from_features: layer {layer!r} is missing from the "
                f"{'features' if layer not in features else 'centers'} given "
                f"(have {sorted(features if layer not in features else centers)})"
            )
    class_maps = ClassMaps(features, mapping, centers, _class_ids(class_ids), output_size)
    settings = RuleSettings(
        output_size=output_size,
        min_area=min_area,
        dilation=dilation,
        overlap_policy=overlap_policy,
        discard_full_page=discard_full_page,
        background_id=background_id,
        min_ink_area=min_ink_area,
    )
    return rule.mask(
        class_maps,
        coarse_layers=list(coarse_layers),
        fine_layers=list(fine_layers),
        settings=settings,
    )


__all__ = [
    "MAPPING_FORMAT",
    "MASK_RULES",
    "OVERLAP_POLICIES",
    "ClassMaps",
    "CoarseFineRule",
    "FineOnlyRule",
    "MaskRule",
    "RuleSettings",
    "LabelMappingError",
    "LabelMappingFileNotFoundError",
    "UnlabelledClustersError",
    "auto_label_clusters",
    "check_complete",
    "class_lookup",
    "component_stats",
    "connected_components",
    "default_layers",
    "dilate",
    "get_mask_rule",
    "load_label_mapping",
    "register_mask_rule",
    "segment_from_features",
    "validate_label_mapping",
]
