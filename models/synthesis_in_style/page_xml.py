"""PAGE XML (PRImA, 2019-07-15 schema) of segmented pages, and back to label maps.

segment.py --page_xml writes one <stem>.xml per page for PAGE-XML pipelines (Transkribus,
OCR-D, Kraken, ...) from the text lines of models.synthesis_in_style.text_lines:

    PcGts (xmlns = PAGE_NAMESPACE)
      Metadata: Creator, Created, LastChange (UTC)
      Page imageFilename, imageWidth, imageHeight (the original image's size)
        TextRegion id="r1" custom="structure {type:printed_text;}" production="printed"
          Coords points="x,y x,y ..."          convex hull of the region's lines
          TextLine id="r1l1" index="0" custom="readingOrder {index:0;}"
            Coords points="x,y x,y ..."        the line's polygon
          ...
        TextRegion id="r2" ... one per text class present on the page

The class of a region is in its `custom` attribute (Transkribus' "structure {type:...;}"), and
where PAGE has a word for it also in `production` (printed, handwritten-cursive, typewritten).
Lines are in reading order top to bottom, then left to right (`index`).

`read_page` parses any PAGE version (2013-07-15 ... 2019-07-15, the reference's files
included) and `page_to_label_image` draws a page's text lines (filled polygons, inclusive of
their outline, as OpenCV's fillPoly) into a class-id map: the round trip of segment.py's output.

Example:
    xml = page_xml(lines, class_names=label_set.names, image_filename="p1.png",
                   width=2000, height=3000)
    labels = page_to_label_image(read_page(xml), label_set)   # [3000, 2000] uint8
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from core.errors import UserError
from models.synthesis_in_style.text_lines import TextLine, convex_hull

PAGE_NAMESPACE = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"
PAGE_SCHEMA_LOCATION = f"{PAGE_NAMESPACE} {PAGE_NAMESPACE}/pagecontent.xsd"
XSI_NAMESPACE = "http://www.w3.org/2001/XMLSchema-instance"
# Every PAGE version's namespace (the reference wrote 2013-07-15).
_ANY_PAGE_NAMESPACE = re.compile(r"^https?://schema\.primaresearch\.org/PAGE/gts/pagecontent/")
_STRUCTURE_TYPE = re.compile(r"structure\s*\{[^}]*?type\s*:\s*([^;}]+)")
# PAGE's ProductionSimpleType for the class names that say how the text was made.
_PRODUCTION = (
    ("handwrit", "handwritten-cursive"),
    ("typewrit", "typewritten"),
    ("print", "printed"),
)


class PageXMLError(UserError):
    """A PAGE XML file that cannot be read; the message names it."""


@dataclasses.dataclass
class PageRegion:
    """A TextRegion: its class (None when the file names none), polygon and lines' polygons."""

    class_name: str | None
    points: np.ndarray  # [n, 2] (x, y)
    lines: list[np.ndarray]  # each [m, 2] (x, y)


@dataclasses.dataclass
class PageContent:
    """What read_page returns: the page's image name and size and its text regions."""

    image_filename: str
    width: int
    height: int
    regions: list[PageRegion]


def production_of(class_name: str) -> str | None:
    """PAGE's production value for a class name (printed_text -> "printed"), or None."""
    lowered = class_name.lower()
    for part, production in _PRODUCTION:
        if part in lowered:
            return production
    return None


def _points_text(points: np.ndarray) -> str:
    return " ".join(f"{int(x)},{int(y)}" for x, y in np.asarray(points).reshape(-1, 2))


def _utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def page_xml(
    lines: Sequence[TextLine],
    *,
    class_names: Sequence[str],
    image_filename: str,
    width: int,
    height: int,
    creator: str = "semsynth segment.py",
    timestamp: str | None = None,
) -> str:
    """PAGE XML text of one page (layout in the module docstring).

    Args:
        lines: the page's text lines (text_lines.text_line_polygons), in reading order.
        class_names: name of each class id (e.g. the label set's names).
        image_filename: the page image's file name (PAGE's imageFilename).
        width, height: the image's size in pixels; every point must lie inside it.
        creator: Metadata/Creator.
        timestamp: Metadata Created and LastChange, xs:dateTime in UTC (default: now).

    Returns:
        The XML document, UTF-8 declared, indented.
    """
    for line in lines:
        points = np.asarray(line.points)
        if points.ndim != 2 or points.shape[1] != 2 or len(points) < 3:
            raise ValueError(f"a line polygon needs >= 3 (x, y) points, got {points.tolist()}")
        if points.min() < 0 or points[:, 0].max() >= width or points[:, 1].max() >= height:
            raise ValueError(f"line points {points.tolist()} lie outside the {width}x{height} page")
    ET.register_namespace("", PAGE_NAMESPACE)
    ET.register_namespace("xsi", XSI_NAMESPACE)
    root = ET.Element(
        f"{{{PAGE_NAMESPACE}}}PcGts", {f"{{{XSI_NAMESPACE}}}schemaLocation": PAGE_SCHEMA_LOCATION}
    )
    metadata = ET.SubElement(root, f"{{{PAGE_NAMESPACE}}}Metadata")
    timestamp = timestamp or _utc_now()
    for tag, text in (("Creator", creator), ("Created", timestamp), ("LastChange", timestamp)):
        ET.SubElement(metadata, f"{{{PAGE_NAMESPACE}}}{tag}").text = text
    page = ET.SubElement(
        root,
        f"{{{PAGE_NAMESPACE}}}Page",
        {"imageFilename": image_filename, "imageWidth": str(width), "imageHeight": str(height)},
    )
    class_order = list(dict.fromkeys(line.class_id for line in lines))  # first appearance
    for region_index, class_id in enumerate(sorted(class_order), start=1):
        region_lines = [line for line in lines if line.class_id == class_id]
        name = str(class_names[class_id])
        attributes = {"id": f"r{region_index}", "custom": f"structure {{type:{name};}}"}
        production = production_of(name)
        if production:
            attributes["production"] = production
        region = ET.SubElement(page, f"{{{PAGE_NAMESPACE}}}TextRegion", attributes)
        hull = convex_hull(np.concatenate([line.points for line in region_lines]))
        if len(hull) < 3:  # all on one row or column: the box (degenerate, still >= 3 points)
            (x0, y0), (x1, y1) = hull.min(axis=0), hull.max(axis=0)
            hull = np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
        ET.SubElement(region, f"{{{PAGE_NAMESPACE}}}Coords", {"points": _points_text(hull)})
        for line_index, line in enumerate(region_lines):
            text_line = ET.SubElement(
                region,
                f"{{{PAGE_NAMESPACE}}}TextLine",
                {
                    "id": f"r{region_index}l{line_index + 1}",
                    "index": str(line_index),
                    "custom": f"readingOrder {{index:{line_index};}}",
                },
            )
            ET.SubElement(
                text_line, f"{{{PAGE_NAMESPACE}}}Coords", {"points": _points_text(line.points)}
            )
    ET.indent(root, space="  ")
    declaration = '<?xml version="1.0" encoding="UTF-8"?>\n'
    return declaration + ET.tostring(root, encoding="unicode") + "\n"


# === Reading ===


def _parse_points(text: str, where: str) -> np.ndarray:
    try:
        points = [tuple(int(round(float(v))) for v in pair.split(",")) for pair in text.split()]
    except ValueError:
        raise PageXMLError(f"{where}: points {text!r} are not 'x,y x,y ...'") from None
    if not points or any(len(point) != 2 for point in points):
        raise PageXMLError(f"{where}: points {text!r} are not 'x,y x,y ...'")
    return np.array(points, dtype=np.int64)  # [n, 2]


def read_page(source) -> PageContent:
    """Parses a PAGE XML file (a path) or document (a str starting with '<').

    Regions without Coords (the reference's files) get an empty polygon. Raises PageXMLError
    naming the file for anything that is not PAGE XML.
    """
    is_text = isinstance(source, str) and source.lstrip().startswith("<")
    where = "PAGE XML" if is_text else f"PAGE XML file {os.fspath(source)}"
    try:
        root = ET.fromstring(source) if is_text else ET.parse(os.fspath(source)).getroot()
    except (ET.ParseError, OSError) as error:
        raise PageXMLError(f"{where}: cannot be parsed ({error})") from None
    namespace = root.tag[1:].split("}")[0] if root.tag.startswith("{") else ""
    if root.tag.rsplit("}", 1)[-1] != "PcGts" or not _ANY_PAGE_NAMESPACE.match(namespace):
        raise PageXMLError(f"{where}: the root is {root.tag}, not PAGE's PcGts")
    ns = {"pc": namespace}
    page = root.find("pc:Page", ns)
    if page is None:
        raise PageXMLError(f"{where}: no Page element")
    try:
        width, height = int(page.get("imageWidth")), int(page.get("imageHeight"))
    except (TypeError, ValueError):
        raise PageXMLError(f"{where}: Page needs integer imageWidth and imageHeight") from None
    regions = []
    for region in page.iter(f"{{{namespace}}}TextRegion"):
        match = _STRUCTURE_TYPE.search(region.get("custom", ""))
        coords = region.find("pc:Coords", ns)
        region_id = region.get("id", "?")
        lines = []
        for line in region.findall("pc:TextLine", ns):
            line_coords = line.find("pc:Coords", ns)
            if line_coords is None or not line_coords.get("points"):
                raise PageXMLError(f"{where}: TextLine {line.get('id', '?')} has no Coords points")
            lines.append(
                _parse_points(line_coords.get("points"), f"{where}, line {line.get('id', '?')}")
            )
        points = (
            _parse_points(coords.get("points"), f"{where}, region {region_id}")
            if coords is not None and coords.get("points")
            else np.zeros((0, 2), dtype=np.int64)
        )
        regions.append(PageRegion(match.group(1).strip() if match else None, points, lines))
    return PageContent(page.get("imageFilename", ""), width, height, regions)


def _class_ids(classes) -> dict[str, int]:
    names = getattr(classes, "names", None)
    if names is not None:
        return {name: index for index, name in enumerate(names)}
    return dict(classes)


def page_to_label_image(
    page,
    classes,
    *,
    default_class: str | None = None,
    background_id: int = 0,
) -> np.ndarray:
    """A page's text lines as a class-id map (the inverse of segment.py --page_xml).

    Args:
        page: a PageContent, or what read_page takes (a path or an XML string).
        classes: the label set (class id = position of the name) or {class name: id}.
        default_class: class of regions that name none (the reference's files: its
            page_to_label_image drew every line as handwritten_text); None: such a region
            raises PageXMLError.
        background_id: the value of pixels outside every line.

    Returns:
        [imageHeight, imageWidth] uint8. Each line polygon is filled including its outline;
        a region without lines is filled by its own polygon.
    """
    if not isinstance(page, PageContent):
        page = read_page(page)
    class_ids = _class_ids(classes)
    image = Image.new("L", (page.width, page.height), background_id)
    draw = ImageDraw.Draw(image)
    for region in page.regions:
        name = region.class_name or default_class
        if name is None:
            raise PageXMLError(
                f"a TextRegion of {page.image_filename} names no class (custom 'structure "
                "{type:...;}'); pass default_class"
            )
        if name not in class_ids:
            raise PageXMLError(
                f"class {name!r} of a TextRegion of {page.image_filename} is not one of "
                f"{sorted(class_ids)}"
            )
        polygons = region.lines or ([region.points] if len(region.points) else [])
        for polygon in polygons:
            points = [(int(x), int(y)) for x, y in polygon]
            if len(points) == 1:
                draw.point(points, fill=class_ids[name])
            else:
                draw.polygon(points, fill=class_ids[name], outline=class_ids[name])
    return np.asarray(image, dtype=np.uint8)


def draw_lines(image: np.ndarray, lines: Sequence[TextLine], colour=(255, 255, 255), width=2):
    """[H, W, 3] uint8 copy of image with the line polygons' outlines drawn (the reference's
    _contours preview: white, 2 px)."""
    canvas = Image.fromarray(np.asarray(image, dtype=np.uint8))
    draw = ImageDraw.Draw(canvas)
    for line in lines:
        points = [(int(x), int(y)) for x, y in line.points]
        draw.line(points + points[:1], fill=tuple(colour), width=width)
    return np.asarray(canvas)


def text_class_ids(names: Sequence[str], text_classes=None, background_id: int | None = 0):
    """Ids of the classes traced into text lines.

    Args:
        names: the label set's class names.
        text_classes: names to use; None: every class whose name contains "text" (the
            documents label set: printed_text, handwritten_text), else every class but
            background.
        background_id: never a text class.

    Raises ValueError naming --text_classes for names that are not classes.
    """
    if text_classes:
        unknown = [name for name in text_classes if name not in names]
        if unknown:
            raise ValueError(
                f"--text_classes: {unknown} are not classes of the label set ({list(names)})"
            )
        return [names.index(name) for name in text_classes]
    text = [i for i, name in enumerate(names) if "text" in name.lower() and i != background_id]
    return text or [i for i in range(len(names)) if i != background_id]


__all__ = [
    "PAGE_NAMESPACE",
    "PageContent",
    "PageRegion",
    "PageXMLError",
    "draw_lines",
    "page_to_label_image",
    "page_xml",
    "production_of",
    "read_page",
    "text_class_ids",
]
