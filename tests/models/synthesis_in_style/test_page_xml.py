"""PAGE XML of segmented pages (segment.py --page_xml): the text-line geometry
(models/synthesis_in_style/text_lines.py), the XML against the PAGE 2019 schema's rules for the
elements we write, the round trip page_to_label_image, and segment.py's --max_image_size and JSON
lists, run with the flags as a Synthesis-in-Style user gives them (a fake segmenter, no network).

No XSD validator is installed (lxml / xmlschema are not dependencies), so `validate_page` below
checks the subset of pagecontent.xsd (2019-07-15) that PcGts / Metadata / Page / TextRegion /
TextLine / Coords documents use: element order and counts, required and allowed attributes and
their types (ID, int, dateTime, the PointsType pattern, the enumerations), unique ids.
"""

import json
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import tensorflow as tf
from absl import flags as absl_flags
from PIL import Image

import flags as cli
from core.masks import connected_components
from datasets.pairs import DatasetNotFoundError
from models.segformer.inference import SegmentError, segment_images
from models.synthesis_in_style.page_xml import (
    PAGE_NAMESPACE,
    PageXMLError,
    page_to_label_image,
    page_xml,
    read_page,
)
from models.synthesis_in_style.text_lines import (
    TextLine,
    convex_hull,
    group_into_lines,
    min_area_rectangle,
    text_line_polygons,
    trace_outline,
)
from semantic_labels import load_label_set

# === A validator for the PAGE 2019 schema subset we write ===

PC = f"{{{PAGE_NAMESPACE}}}"
XSI = "{http://www.w3.org/2001/XMLSchema-instance}"
NCNAME = re.compile(r"^[A-Za-z_][\w.\-]*$")
POINTS = re.compile(r"^([0-9]+,[0-9]+ )+([0-9]+,[0-9]+)$")  # pagecontent.xsd PointsType
DATETIME = re.compile(r"^-?\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?$")
PRODUCTION = {
    "printed",
    "typewritten",
    "handwritten-cursive",
    "handwritten-printscript",
    "medieval-manuscript",
    "other",
}
REGIONS = {
    "TextRegion",
    "ImageRegion",
    "LineDrawingRegion",
    "GraphicRegion",
    "TableRegion",
    "ChartRegion",
    "MapRegion",
    "SeparatorRegion",
    "MathsRegion",
    "ChemRegion",
    "MusicRegion",
    "AdvertRegion",
    "NoiseRegion",
    "UnknownRegion",
    "CustomRegion",
}


def _int(value):
    return re.fullmatch(r"[+-]?\d+", value) is not None


def _float(value):
    try:
        float(value)
        return True
    except ValueError:
        return False


def _string(value):
    return True


def _bool(value):
    return value in ("true", "false", "1", "0")


# element -> ({attribute: (required, check)}, [(child or set of children, min, max)], text check)
SCHEMA = {
    "PcGts": ({"pcGtsId": (False, NCNAME.match)}, [("Metadata", 1, 1), ("Page", 1, 1)], None),
    "Metadata": (
        {"externalRef": (False, _string)},
        [
            ("Creator", 1, 1),
            ("Created", 1, 1),
            ("LastChange", 1, 1),
            ("Comments", 0, 1),
            ("UserDefined", 0, 1),
            ("MetadataItem", 0, None),
        ],
        None,
    ),
    "Creator": ({}, [], _string),
    "Comments": ({}, [], _string),
    "Created": ({}, [], DATETIME.match),
    "LastChange": ({}, [], DATETIME.match),
    "Page": (
        {
            "imageFilename": (True, _string),
            "imageWidth": (True, _int),
            "imageHeight": (True, _int),
            "imageXResolution": (False, _float),
            "imageYResolution": (False, _float),
            "custom": (False, _string),
            "orientation": (False, _float),
            "conf": (False, _float),
        },
        [
            ("AlternativeImage", 0, None),
            ("Border", 0, 1),
            ("PrintSpace", 0, 1),
            ("ReadingOrder", 0, 1),
            ("Layers", 0, 1),
            ("Relations", 0, 1),
            ("TextStyle", 0, 1),
            ("UserDefined", 0, 1),
            ("Labels", 0, None),
            (REGIONS, 0, None),
        ],
        None,
    ),
    "TextRegion": (
        {
            "id": (True, NCNAME.match),
            "custom": (False, _string),
            "comments": (False, _string),
            "continuation": (False, _bool),
            "orientation": (False, _float),
            "leading": (False, _int),
            "readingOrientation": (False, _float),
            "indented": (False, _bool),
            "production": (False, PRODUCTION.__contains__),
        },
        [
            ("AlternativeImage", 0, None),
            ("Coords", 1, 1),
            ("UserDefined", 0, 1),
            ("Labels", 0, None),
            ("Roles", 0, 1),
            (REGIONS, 0, None),
            ("TextLine", 0, None),
            ("TextEquiv", 0, None),
            ("TextStyle", 0, 1),
        ],
        None,
    ),
    "TextLine": (
        {
            "id": (True, NCNAME.match),
            "production": (False, PRODUCTION.__contains__),
            "custom": (False, _string),
            "comments": (False, _string),
            "index": (False, _int),
        },
        [
            ("AlternativeImage", 0, None),
            ("Coords", 1, 1),
            ("Baseline", 0, 1),
            ("Word", 0, None),
            ("TextEquiv", 0, None),
            ("TextStyle", 0, 1),
            ("UserDefined", 0, 1),
            ("Labels", 0, None),
        ],
        None,
    ),
    "Coords": ({"points": (True, POINTS.match), "conf": (False, _float)}, [], None),
}


def validate_page(document: str) -> ET.Element:
    """Raises AssertionError at the first deviation from the schema subset; returns the root."""
    root = ET.fromstring(document)
    assert root.tag == f"{PC}PcGts", f"root {root.tag}"
    ids = []

    def check(element):
        assert element.tag.startswith(PC), f"{element.tag} is not in the PAGE 2019 namespace"
        name = element.tag[len(PC) :]
        assert name in SCHEMA, f"<{name}> is outside the schema subset this validator knows"
        attributes, content, text_check = SCHEMA[name]
        for attribute, value in element.attrib.items():
            if attribute.startswith(XSI):
                continue
            assert attribute in attributes, f"<{name}> has no attribute {attribute}"
            assert attributes[attribute][1](value), f"<{name} {attribute}={value!r}> is invalid"
        for attribute, (required, _) in attributes.items():
            assert not required or attribute in element.attrib, f"<{name}> needs {attribute}"
        if "id" in element.attrib:
            ids.append(element.attrib["id"])
        if text_check is not None:
            assert text_check(element.text or ""), f"<{name}>{element.text!r} is invalid"
        children = [child.tag[len(PC) :] for child in element]
        position = 0
        for allowed, low, high in content:
            allowed = {allowed} if isinstance(allowed, str) else allowed
            count = 0
            while position < len(children) and children[position] in allowed:
                position, count = position + 1, count + 1
            assert count >= low, f"<{name}> needs {low} x {sorted(allowed)} at child {position}"
            assert high is None or count <= high, f"<{name}>: too many {sorted(allowed)}"
        assert position == len(children), f"<{name}>: <{children[position]}> out of place"
        for child in element:
            check(child)

    check(root)
    assert len(ids) == len(set(ids)), f"ids are not unique: {ids}"
    page = root.find(f"{PC}Page")
    width, height = int(page.get("imageWidth")), int(page.get("imageHeight"))
    for coords in root.iter(f"{PC}Coords"):
        points = np.array([p.split(",") for p in coords.get("points").split()], int)
        assert len(points) >= 3, "a polygon needs 3 points to span an area"
        assert (points[:, 0] < width).all() and (points[:, 1] < height).all()
    return root


def test_validator_rejects_what_the_schema_rejects():
    lines = [TextLine(1, np.array([[1, 1], [5, 1], [5, 3]]))]
    good = page_xml(
        lines, class_names=["bg", "printed_text"], image_filename="a.png", width=8, height=8
    )
    validate_page(good)
    broken = {
        "a region without Coords": re.sub(
            r"\n    <TextRegion([^>]*)>\n      <Coords[^>]*/>", r"\n    <TextRegion\1>", good
        ),
        "a missing imageWidth": good.replace('imageWidth="8" ', ""),
        "one point": good.replace('points="1,1 5,1 5,3"', 'points="1,1"', 1),
        "a duplicate id": good.replace('id="r1l1"', 'id="r1"'),
        "an unknown production": good.replace('production="printed"', 'production="inked"'),
    }
    for what, document in broken.items():
        assert document != good, what
        with pytest.raises(AssertionError):
            validate_page(document)


# === Geometry ===


def _fill(shape, polygons):
    from PIL import ImageDraw

    image = Image.new("L", (shape[1], shape[0]), 0)
    draw = ImageDraw.Draw(image)
    for polygon in polygons:
        draw.polygon([tuple(map(int, p)) for p in polygon], fill=1, outline=1)
    return np.asarray(image) > 0


def _without_holes(mask):
    """mask with its holes filled: background not 4-connected to the border."""
    outside, count = connected_components(~mask, connectivity=4)
    border = np.unique(np.concatenate([outside[0], outside[-1], outside[:, 0], outside[:, -1]]))
    return mask | ~np.isin(outside, border)


def test_traced_outline_fills_back_to_the_component():
    rng = np.random.default_rng(0)
    for _ in range(40):
        mask = rng.random((18, 22)) < 0.5
        components, count = connected_components(mask)
        for index in range(1, count + 1):
            component = components == index
            outline = trace_outline(component)
            if component.sum() == 1:
                assert len(outline) == 1
                continue
            np.testing.assert_array_equal(_fill(mask.shape, [outline]), _without_holes(component))
    # Straight runs keep only their ends: a 3 x 5 block is its 4 corners, clockwise on screen.
    block = np.zeros((6, 8), bool)
    block[1:4, 2:7] = True
    assert trace_outline(block).tolist() == [[2, 1], [6, 1], [6, 3], [2, 3]]


def test_hull_and_minimum_area_rectangle():
    square = np.array([[0, 0], [4, 0], [4, 4], [0, 4], [2, 2], [1, 3], [4, 2]])
    assert sorted(convex_hull(square).tolist()) == [[0, 0], [0, 4], [4, 0], [4, 4]]
    # A 10 x 2 rectangle rotated by 30 degrees: the calipers find it (area 20), where the
    # axis-aligned box of the same points is far larger.
    angle = np.deg2rad(30)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    corners = np.array([[0, 0], [10, 0], [10, 2], [0, 2]]) @ rotation.T * 10
    inside = np.random.default_rng(1).random((50, 2)) * [10, 2] @ rotation.T * 10
    rectangle = min_area_rectangle(np.concatenate([corners, inside]))
    sides = np.linalg.norm(np.roll(rectangle, -1, axis=0) - rectangle, axis=1)
    assert sides[0] * sides[1] == pytest.approx(2000, rel=1e-6)
    box = corners.max(0) - corners.min(0)
    assert box[0] * box[1] > 1.5 * 2000


def test_components_are_chained_into_lines():
    # (row0, col0, row1, col1): a line of three words, a word too far away, a lower line.
    boxes = np.array(
        [
            [10, 0, 20, 30],
            [12, 40, 22, 60],
            [11, 65, 19, 90],
            [10, 200, 20, 230],
            [40, 5, 50, 50],
        ]
    )
    assert group_into_lines(boxes, max_gap=20) == [[0, 1, 2], [4], [3]]
    assert group_into_lines(boxes, max_gap=5) == [[0], [4], [1, 2], [3]]


def _page_class_map():
    """A 'page': two printed words on one line, a handwritten word below, background around."""
    labels = np.zeros((60, 120), np.uint8)
    labels[10:18, 10:40] = 1
    labels[12:20, 48:80] = 1
    labels[35:50, 20:70] = 2
    labels[38:42, 30:40] = 0  # a hole in the handwritten word
    return labels


@pytest.mark.parametrize("merge_mode", ["none", "convex_hull", "min_area_bbox"])
def test_page_xml_validates_and_round_trips(merge_mode):
    labels = _page_class_map()
    documents = load_label_set("documents")
    lines = text_line_polygons(
        labels, [1, 2], merge_mode=merge_mode, max_gap=10, closing_size=1, min_area=10
    )
    assert len(lines) == {"none": 3, "convex_hull": 2, "min_area_bbox": 2}[merge_mode]
    document = page_xml(
        lines, class_names=documents.names, image_filename="p.png", width=120, height=60
    )
    root = validate_page(document)
    regions = root.findall(f"{PC}Page/{PC}TextRegion")
    assert [r.get("production") for r in regions] == ["printed", "handwritten-cursive"]
    back = page_to_label_image(document, documents)
    expected = labels.copy()
    expected[38:42, 30:40] = 2  # outer outlines: the hole is filled
    if merge_mode == "none":
        np.testing.assert_array_equal(back, expected)
        return
    # One printed line: its polygon covers both words and the gap between them, and stays
    # within (about) the words' common box.
    np.testing.assert_array_equal(back[labels == 1], 1)
    np.testing.assert_array_equal(back[expected == 2], 2)
    assert (back[18:20, 10:48] == 1).any() and (back[10:12, 40:80] == 1).any()
    assert (back == 1).sum() <= 1.1 * 10 * 70
    assert not (back[:8] == 1).any() and not (back[22:34] == 1).any()


def test_reads_the_reference_2013_files():
    """The reference wrote 2013-07-15 PAGE with one region without Coords and no class."""
    document = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<PcGts xmlns="http://schema.primaresearch.org/PAGE/gts/pagecontent/2013-07-15">'
        '<Page imageFilename="a.png" imageWidth="20" imageHeight="10">'
        '<TextRegion id="region_1" custom="readingOrder {index:0;}">'
        '<TextLine id="line_0"><Coords points="2,2 8,2 8,4 2,4"/></TextLine>'
        "</TextRegion></Page></PcGts>"
    )
    page = read_page(document)
    assert (page.width, page.height, page.regions[0].class_name) == (20, 10, None)
    labels = page_to_label_image(
        page, load_label_set("documents"), default_class="handwritten_text"
    )
    assert labels[2:5, 2:9].min() == 2 and labels.sum() == 2 * 21
    with pytest.raises(PageXMLError, match="names no class"):
        page_to_label_image(page, load_label_set("documents"))
    with pytest.raises(PageXMLError, match="not PAGE"):
        read_page("<html/>")


# === segment.py, as a Synthesis-in-Style user runs it ===


class FakeDocumentSegmenter:
    """The documents label set: dark red pixels printed, dark blue handwritten, else
    background; logits at 1/4 resolution like SegFormer's."""

    num_classes = 3
    label_set_name = "documents"

    def __init__(self):
        self.batch_shapes = []

    def preprocess(self, images):
        return np.asarray(images, np.float32) / 127.5 - 1.0

    def predict_logits(self, batch):
        self.batch_shapes.append(tuple(batch.shape))
        pooled = tf.nn.avg_pool2d(batch, 4, 4, "VALID")  # [B, h/4, w/4, 3]
        printed, handwritten = pooled[..., 0], pooled[..., 2]
        background = -0.5 - tf.maximum(printed, handwritten)
        return 30.0 * tf.stack([background, printed, handwritten], axis=-1)


def _segment(args, segmenter):
    flag_values = absl_flags.FlagValues()
    cli.define_segment_flags(flag_values)
    flag_values(["segment.py", *args])
    return segment_images(
        flag_values.input,
        flag_values.output_dir,
        checkpoint_dir=flag_values.checkpoint_dir,
        saved_model=flag_values.saved_model,
        mode=flag_values.mode,
        tile_size=flag_values.tile_size,
        overlap=flag_values.overlap,
        batch_size=flag_values.batch_size,
        overwrite=flag_values.overwrite,
        load_segmenter=lambda **_: segmenter,
        max_image_size=flag_values.max_image_size,
        page_xml=flag_values.page_xml,
        merge_mode=flag_values.merge_mode,
        max_diff_percentage=flag_values.max_diff_percentage,
        min_confidence=flag_values.min_confidence,
        text_classes=flag_values.text_classes,
    )


def _scan(folder, name, height=160, width=240):
    """A page: two printed words (red) on a line, a handwritten word (blue) below."""
    image = np.full((height, width, 3), 0, np.uint8)
    image[24:48, 24:96, 0] = 255
    image[28:52, 112:184, 0] = 255
    image[96:128, 40:160, 2] = 255
    (folder / "pages").mkdir(exist_ok=True)
    Image.fromarray(image).save(folder / "pages" / name)
    return image


def test_segment_py_json_list_page_xml_and_max_image_size(tmp_path):
    _scan(tmp_path, "p1.png")
    _scan(tmp_path, "p2.png")
    # The reference's list format: paths relative to the list (and {"file_name": ...} entries).
    (tmp_path / "val.json").write_text(json.dumps(["pages/p1.png", {"file_name": "pages/p2.png"}]))
    segmenter = FakeDocumentSegmenter()
    out = tmp_path / "out"
    args = [
        f"--input={tmp_path / 'val.json'}",
        f"--output_dir={out}",
        "--checkpoint_dir=RUN",
        "--tile_size=64",
        "--max_image_size=120",
        "--page_xml",
        "--merge_mode=convex_hull",
        "--max_diff_percentage=0.1",
        "--min_confidence=0.5",
    ]
    _segment(args, segmenter)
    # Shrunk to 120 x 80 before tiling: no tile came from the 240 x 160 original.
    assert all(shape[1:3] == (64, 64) for shape in segmenter.batch_shapes)
    # The shrunk 80 x 120 page is 2 x 3 tiles: two batches of at most 4 per page.
    assert len(segmenter.batch_shapes) == 2 * 2
    for stem in ("p1", "p2"):
        prediction = np.asarray(Image.open(out / f"{stem}.png"))
        assert prediction.shape == (160, 240)  # enlarged back to the original size
        document = (out / f"{stem}.xml").read_text()
        root = validate_page(document)
        page = root.find(f"{PC}Page")
        assert (page.get("imageFilename"), page.get("imageWidth")) == (f"{stem}.png", "240")
        regions = page.findall(f"{PC}TextRegion")
        assert [len(r.findall(f"{PC}TextLine")) for r in regions] == [1, 1]
        back = page_to_label_image(document, load_label_set("documents"))
        for class_id in (1, 2):
            predicted, drawn = prediction == class_id, back == class_id
            # The hull spans the gap between the two printed words; the rest agrees.
            assert (predicted & drawn).sum() / predicted.sum() > 0.95
        contours = np.asarray(Image.open(out / f"{stem}_contours.png"))
        assert contours.shape == (160, 240, 3) and (contours == 255).all(-1).any()
    # Rerunning with another merge mode without --overwrite is refused, naming it.
    with pytest.raises(ValueError, match="merge_mode"):
        _segment([*args[:-2], "--merge_mode=min_area_bbox"], segmenter)


def test_segment_py_bad_lists_and_flags(tmp_path):
    _scan(tmp_path, "p1.png")
    segmenter = FakeDocumentSegmenter()
    (tmp_path / "list.json").write_text(json.dumps(["pages/p1.png", "pages/missing.png"]))
    with pytest.raises(DatasetNotFoundError, match="missing.png"):
        _segment([f"--input={tmp_path / 'list.json'}", "--checkpoint_dir=RUN"], segmenter)
    (tmp_path / "bad.json").write_text(json.dumps({"pages": 1}))
    with pytest.raises(SegmentError, match="JSON list"):
        _segment([f"--input={tmp_path / 'bad.json'}", "--checkpoint_dir=RUN"], segmenter)
    with pytest.raises(SegmentError, match="--max_image_size"):
        _segment(
            [f"--input={tmp_path}/pages", "--checkpoint_dir=RUN", "--max_image_size=8"], segmenter
        )
    with pytest.raises(SegmentError, match="--text_classes"):
        _segment(
            [
                f"--input={tmp_path}/pages",
                f"--output_dir={tmp_path}/out",
                "--checkpoint_dir=RUN",
                "--page_xml",
                "--text_classes=typed_text",
            ],
            segmenter,
        )
    with pytest.raises(absl_flags.IllegalFlagValueError):
        _segment([f"--input={tmp_path}/pages", "--merge_mode=ConvexHulls"], segmenter)
