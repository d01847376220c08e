"""Cluster annotation app (annotator/): palette loader, JSON API, images, mapping file, security.

The page itself, in a real browser, is tested in test_browser.py.

The cluster run directory is built by hand (numpy + PIL) following the shared layout: 3 samples
of 32 px, k = 3, layers at 4, 8 and 16 px with known cluster maps.
"""

import io
import json
import os
import shutil

import numpy as np
import pytest
from conftest import ROOT
from PIL import Image

from annotator.__main__ import main
from annotator.app import (
    MAPPING_FORMAT,
    AnnotationError,
    AnnotationFileNotFoundError,
    cluster_colors,
    create_app,
    upscale_nearest,
)
from models.synthesis_in_style.palette import (
    PaletteError,
    PaletteFileNotFoundError,
    color_to_hex,
    load_palette,
)

K = 3
NUM_SAMPLES = 3
RESOLUTION = 32
DISPLAY = 64
FINGERPRINT = "gen-abc123"
LAYERS = [
    {"name": "conv00_4px", "resolution": 4, "channels": 16},
    {"name": "conv01_8px", "resolution": 8, "channels": 8},
    {"name": "conv02_16px", "resolution": 16, "channels": 4},
]
PALETTE_SIMPLE = {"background": "#000000", "printed_text": "#0000FF", "handwritten_text": "#FF0000"}
BLUE, RED = [0, 0, 255], [255, 0, 0]


def stripe_map(resolution: int, sample: int) -> np.ndarray:
    """[r, r] cluster ids: vertical stripes 0, 1, 2 shifted right by `sample` columns."""
    cols = (np.arange(resolution) + sample) % resolution
    ids = (cols * K // resolution).astype(np.uint8)  # [r]
    return np.tile(ids, (resolution, 1))  # [r, r]


def make_run(root, *, fingerprint=FINGERPRINT, k_values=(3, 4)):
    """Writes a tiny cluster run directory; returns its path."""
    root = str(root)
    os.makedirs(os.path.join(root, "samples"))
    meta = {
        "format": "semsynth-clusters/1",
        "generator": {"fingerprint": fingerprint, "resolution": RESOLUTION, "checkpoint": "x"},
        "num_samples": NUM_SAMPLES,
        "k_values": list(k_values),
        "seed": 0,
        "z_dim": 8,
        "layers": LAYERS,
    }
    with open(os.path.join(root, "clusters.json"), "w") as file:
        json.dump(meta, file)
    rng = np.random.default_rng(0)
    for sample in range(NUM_SAMPLES):
        rgb = rng.integers(0, 256, (RESOLUTION, RESOLUTION, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(os.path.join(root, "samples", f"{sample:06d}.png"))
        for layer in LAYERS:
            ids = stripe_map(layer["resolution"], sample)
            for folder, image in (
                ("maps", Image.fromarray(ids, mode="L")),
                ("colour", Image.fromarray(cluster_colors(K)[ids])),
            ):
                directory = os.path.join(root, f"k{K:02d}", folder, layer["name"])
                os.makedirs(directory, exist_ok=True)
                image.save(os.path.join(directory, f"{sample:06d}.png"))
    return root


@pytest.fixture
def run_dir(tmp_path):
    return make_run(tmp_path / "run")


@pytest.fixture
def palette_path(tmp_path):
    path = tmp_path / "palette.json"
    path.write_text(json.dumps(PALETTE_SIMPLE))
    return str(path)


@pytest.fixture
def client(run_dir, palette_path):
    app = create_app(run_dir, k=K, palette=palette_path, display_size=DISPLAY)
    return app.test_client()


def mapping_file(run_dir):
    with open(os.path.join(run_dir, f"annotations_k{K:02d}.json")) as file:
        return json.load(file)


def get_png(client, url):
    response = client.get(url)
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "image/png"
    return np.array(Image.open(io.BytesIO(response.data)).convert("RGB"))


def assign(client, **body):
    return client.post("/api/assign", json=body)


# --- palette ---------------------------------------------------------------------------------


def test_palette_simple_form_keeps_file_order(palette_path):
    labels = load_palette(palette_path)
    assert labels.names == ("background", "printed_text", "handwritten_text")
    np.testing.assert_array_equal(labels.colors, [[0, 0, 0], BLUE, RED])
    assert labels.dontcare_id is None and labels.name == "palette"


def test_palette_label_set_file_and_builtin_name(tmp_path):
    spec = {
        "name": "two",
        "dontcare_id": None,
        "classes": [
            {"id": 0, "name": "paper", "color": [1, 2, 3]},
            {"id": 1, "name": "ink", "color": [4, 5, 6]},
        ],
    }
    path = tmp_path / "two.json"
    path.write_text(json.dumps(spec))
    labels = load_palette(str(path))
    assert labels.names == ("paper", "ink")
    np.testing.assert_array_equal(labels.colors, [[1, 2, 3], [4, 5, 6]])
    assert load_palette("cityscapes").names[0] == "road"
    # Short hex colours are accepted as in CSS.
    short = tmp_path / "short.json"
    short.write_text('{"a": "#0f0", "b": "#123456"}')
    np.testing.assert_array_equal(load_palette(str(short)).colors, [[0, 255, 0], [18, 52, 86]])


def test_palette_documents_builtin():
    from semantic_labels import available_label_sets

    if "documents" not in available_label_sets():
        pytest.skip("semantic_labels/documents.json is not written yet")
    labels = load_palette("documents")
    assert labels.names == ("background", "printed_text", "handwritten_text")
    np.testing.assert_array_equal(labels.colors, [[0, 0, 0], BLUE, RED])


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"background": "#000000", "text": "blue"}', "'text'"),
        ('{"background": "#00000"}', "#RRGGBB"),
        ('{"background": [0, 0, 0]}', "#RRGGBB"),
        ('{"a": "#000000", "a": "#0000FF"}', "duplicate class name 'a'"),
        ("{}", "no classes"),
        ("[]", "top level must be a JSON object"),
        ('{"background": "#000000",', "not valid JSON"),
        ('{"name": "x", "classes": [{"id": 0, "name": "a", "color": [0, 0, 300]}]}', "'color'"),
        (
            '{"name": "x", "classes": [{"id": 0, "name": "a", "color": [0, 0, 0]},'
            ' {"id": 1, "name": "a", "color": [0, 0, 0]}]}',
            "duplicate class names",
        ),
    ],
)
def test_palette_errors_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad_palette.json"
    path.write_text(content)
    with pytest.raises(PaletteError, match="bad_palette.json") as error:
        load_palette(str(path))
    assert message in str(error.value)


def test_palette_missing_file_and_unknown_name(tmp_path):
    with pytest.raises(PaletteFileNotFoundError, match="nowhere.json"):
        load_palette(str(tmp_path / "nowhere.json"))
    with pytest.raises(FileNotFoundError):
        load_palette(str(tmp_path / "nowhere.json"))
    with pytest.raises(PaletteError, match="unknown palette 'no_such_set'"):
        load_palette("no_such_set")
    with pytest.raises(PaletteError):
        load_palette(3)


# --- state, assignment, mapping file ---------------------------------------------------------


def test_state_lists_layers_classes_and_counts(client):
    state = client.get("/api/state").get_json()
    assert state["k"] == K and state["num_samples"] == NUM_SAMPLES
    assert state["display_size"] == DISPLAY and state["generator"] == FINGERPRINT
    assert [layer["name"] for layer in state["layers"]] == [layer["name"] for layer in LAYERS]
    assert [layer["resolution"] for layer in state["layers"]] == [4, 8, 16]
    assert state["classes"] == [
        {"id": 0, "name": "background", "color": "#000000"},
        {"id": 1, "name": "printed_text", "color": "#0000ff"},
        {"id": 2, "name": "handwritten_text", "color": "#ff0000"},
    ]
    assert state["mapping"] == {layer["name"]: {} for layer in LAYERS}
    assert all(layer["unlabelled"] == K for layer in state["layers"])
    per_sample = client.get("/api/state?sample=1").get_json()
    assert all(layer["unlabelled_in_sample"] == K for layer in per_sample["layers"])


def test_page_and_static_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and b"annotator.js" in page.data
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert client.get("/static/annotator.js").status_code == 200
    assert client.get("/static/annotator.css").status_code == 200


def test_assign_by_cluster_id_writes_mapping_file(client, run_dir):
    response = assign(client, layer="conv01_8px", cluster=2, **{"class": "printed_text"})
    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    assert answer["cluster"] == 2 and answer["class"] == "printed_text"
    assert answer["mapping"] == {"2": "printed_text"} and answer["unlabelled"] == K - 1
    saved = mapping_file(run_dir)
    assert saved == {
        "format": MAPPING_FORMAT,
        "k": K,
        "generator": FINGERPRINT,
        "palette": saved["palette"],
        "layers": {"conv01_8px": {"2": "printed_text"}},
    }
    assert saved["palette"].endswith("palette.json")
    # No temp files left beside it (atomic write via os.replace).
    assert [name for name in os.listdir(run_dir) if name.endswith(".tmp")] == []


def test_assign_by_pixel_applies_to_every_sample(client, run_dir):
    layer = "conv01_8px"
    # Sample 0, 8 px map: stripes 0 | 1 | 2 at columns 0-2 | 3-5 | 6-7; display pixel x = 4 * 8
    # (64 px display) lies on column 4, i.e. cluster 1.
    response = assign(client, layer=layer, sample=0, x=4 * 8, y=10, **{"class": "handwritten_text"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["cluster"] == 1
    assert mapping_file(run_dir)["layers"] == {layer: {"1": "handwritten_text"}}
    # Another sample: its own map (shifted stripes) decides where cluster 1 is.
    labelled = get_png(client, f"/image/labelled/{layer}/2.png")  # [64, 64, 3]
    ids = upscale_nearest(stripe_map(8, 2), DISPLAY)  # [64, 64]
    assert (ids == 1).any() and (ids != 1).any()
    assert (labelled[ids == 1] == RED).all()
    # Unlabelled clusters are hatched grey, never a class colour.
    others = labelled[ids != 1]
    assert (others[:, 0] == others[:, 1]).all() and (others[:, 1] == others[:, 2]).all()
    assert set(np.unique(others)) == {100, 150}
    # Another layer is untouched.
    other_layer = get_png(client, "/image/labelled/conv02_16px/2.png")
    assert set(np.unique(other_layer)) == {100, 150}
    per_sample = client.get("/api/state?sample=2").get_json()["layers"][1]
    assert per_sample["unlabelled"] == K - 1 and per_sample["unlabelled_in_sample"] == K - 1


def test_assign_same_class_again_resets(client, run_dir):
    body = {"layer": "conv00_4px", "cluster": 0, "class": "background"}
    assert assign(client, **body).get_json()["class"] == "background"
    assert assign(client, **{**body, "class": "printed_text"}).get_json()["class"] == "printed_text"
    answer = assign(client, **{**body, "class": "printed_text"}).get_json()
    assert answer["class"] is None and answer["mapping"] == {}
    assert mapping_file(run_dir)["layers"] == {}
    assert assign(client, **{**body, "class": None}).get_json()["class"] is None


def test_mapping_is_reloaded_at_start(run_dir, palette_path):
    first = create_app(run_dir, k=K, palette=palette_path).test_client()
    assign(first, layer="conv02_16px", cluster=1, **{"class": "printed_text"})
    assign(first, layer="conv00_4px", cluster=0, **{"class": "background"})
    second = create_app(run_dir, k=K, palette=palette_path).test_client()
    mapping = second.get("/api/state").get_json()["mapping"]
    assert mapping["conv02_16px"] == {"1": "printed_text"}
    assert mapping["conv00_4px"] == {"0": "background"}
    # Clicking the reloaded assignment with its class resets it.
    assert (
        assign(second, layer="conv02_16px", cluster=1, **{"class": "printed_text"}).get_json()[
            "class"
        ]
        is None
    )


def test_custom_mapping_path_and_label_set_palette(run_dir, tmp_path):
    from semantic_labels import LabelSet

    labels = LabelSet(
        name="mine",
        names=("paper", "ink"),
        colors=[[9, 9, 9], [0, 200, 0]],
        used_ids=(0, 1),
        dontcare_id=None,
    )
    path = tmp_path / "sub" / "labels.json"
    client = create_app(run_dir, k=K, palette=labels, mapping_path=str(path)).test_client()
    assign(client, layer="conv00_4px", cluster=2, **{"class": "ink"})
    saved = json.loads(path.read_text())
    assert saved["palette"] == "mine" and saved["layers"] == {"conv00_4px": {"2": "ink"}}
    assert not os.path.exists(os.path.join(run_dir, f"annotations_k{K:02d}.json"))


# --- images -----------------------------------------------------------------------------------


def test_images_are_upscaled_nearest(client, run_dir):
    sample = get_png(client, "/image/sample/conv00_4px/1.png")
    original = np.array(Image.open(os.path.join(run_dir, "samples", "000001.png")))
    assert sample.shape == (DISPLAY, DISPLAY, 3)
    np.testing.assert_array_equal(sample[::2, ::2], original)
    clusters = get_png(client, "/image/clusters/conv00_4px/1.png")
    expected = cluster_colors(K)[upscale_nearest(stripe_map(4, 1), DISPLAY)]
    np.testing.assert_array_equal(clusters, expected)


def test_clusters_image_without_colour_pngs_uses_own_table(run_dir, palette_path):
    shutil.rmtree(os.path.join(run_dir, f"k{K:02d}", "colour"))
    client = create_app(run_dir, k=K, palette=palette_path, display_size=DISPLAY).test_client()
    clusters = get_png(client, "/image/clusters/conv01_8px/0.png")
    np.testing.assert_array_equal(
        clusters, cluster_colors(K)[upscale_nearest(stripe_map(8, 0), DISPLAY)]
    )
    assert len({tuple(c) for c in cluster_colors(20)}) == 20


# --- errors -----------------------------------------------------------------------------------


def write_mapping(run_dir, **overrides):
    spec = {
        "format": MAPPING_FORMAT,
        "k": K,
        "generator": FINGERPRINT,
        "palette": "p",
        "layers": {"conv00_4px": {"0": "background"}},
    }
    spec.update(overrides)
    path = os.path.join(run_dir, f"annotations_k{K:02d}.json")
    with open(path, "w") as file:
        json.dump(spec, file)
    return path


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"k": 5}, "is for k = 5"),
        ({"generator": "other-gen"}, "other-gen"),
        ({"format": "something/2"}, "'format'"),
        ({"layers": {"conv00_4px": {"0": "sky"}}}, "class 'sky' is not in the palette"),
        ({"layers": {"conv99_4px": {}}}, "layer 'conv99_4px'"),
        ({"layers": {"conv00_4px": {"7": "background"}}}, "cluster id '7'"),
        ({"layers": {"conv00_4px": {"x": "background"}}}, "cluster id 'x'"),
        ({"layers": []}, "'layers' must be an object"),
    ],
)
def test_bad_mapping_file_is_refused_at_start(run_dir, palette_path, overrides, message):
    write_mapping(run_dir, **overrides)
    with pytest.raises(AnnotationError, match="annotations_k03.json") as error:
        create_app(run_dir, k=K, palette=palette_path)
    assert message in str(error.value)


def test_bad_run_directory_or_k(tmp_path, run_dir, palette_path):
    with pytest.raises(AnnotationFileNotFoundError, match="clusters.json"):
        create_app(str(tmp_path), k=K, palette=palette_path)
    with pytest.raises(AnnotationError, match="k_values"):
        create_app(run_dir, k=7, palette=palette_path)
    with pytest.raises(AnnotationFileNotFoundError, match="k04"):
        create_app(run_dir, k=4, palette=palette_path)
    with pytest.raises(PaletteError, match="unknown palette"):
        create_app(run_dir, k=K, palette="nope")
    meta_path = os.path.join(run_dir, "clusters.json")
    meta = json.load(open(meta_path))
    meta["layers"][0]["name"] = "../escape"
    json.dump(meta, open(meta_path, "w"))
    with pytest.raises(AnnotationError, match="plain file name"):
        create_app(run_dir, k=K, palette=palette_path)


@pytest.mark.parametrize(
    "body, message",
    [
        ({"layer": "conv00_4px", "cluster": 0, "class": "sky"}, "'class' must be one of"),
        ({"layer": "conv00_4px", "cluster": 0}, "missing field 'class'"),
        ({"layer": "conv00_4px", "cluster": 3, "class": "background"}, "'cluster' must be"),
        ({"layer": "conv00_4px", "cluster": -1, "class": "background"}, "'cluster' must be"),
        ({"layer": "conv00_4px", "cluster": "1", "class": "background"}, "'cluster' must be"),
        ({"layer": "conv00_4px", "cluster": True, "class": "background"}, "'cluster' must be"),
        ({"layer": "conv00_4px", "cluster": 1.0, "class": "background"}, "'cluster' must be"),
        ({"layer": "conv99_4px", "cluster": 0, "class": "background"}, "unknown layer"),
        ({"layer": 3, "cluster": 0, "class": "background"}, "'layer' must be a string"),
        ({"cluster": 0, "class": "background"}, "'layer' must be a string"),
        ({"layer": "conv00_4px", "sample": 0, "x": 1, "class": "background"}, "missing fields"),
        ({"layer": "conv00_4px", "sample": 3, "x": 1, "y": 1, "class": "background"}, "'sample'"),
        ({"layer": "conv00_4px", "sample": 0, "x": DISPLAY, "y": 1, "class": "background"}, "'x'"),
        ({"layer": "conv00_4px", "sample": 0, "x": -1, "y": 1, "class": "background"}, "'x'"),
        (
            {
                "layer": "conv00_4px",
                "sample": 0,
                "x": 1,
                "y": 1,
                "cluster": 0,
                "class": "background",
            },
            "either",
        ),
        (
            {"layer": "conv00_4px", "cluster": 0, "class": "background", "extra": 1},
            "unknown fields",
        ),
    ],
)
def test_assign_rejects_bad_requests(client, run_dir, body, message):
    response = assign(client, **body)
    assert response.status_code == 400
    assert message in response.get_json()["error"]
    assert not os.path.exists(os.path.join(run_dir, f"annotations_k{K:02d}.json"))


def test_assign_rejects_malformed_and_oversized_bodies(client):
    for data, content_type in [
        ("{not json", "application/json"),
        ("[1, 2]", "application/json"),
        ('{"layer": "conv00_4px", "cluster": 0, "class": "background"}', "text/plain"),
    ]:
        response = client.post("/api/assign", data=data, content_type=content_type)
        assert response.status_code == 400, data
        assert "error" in response.get_json()
    huge = json.dumps({"layer": "x" * 10000, "cluster": 0, "class": "background"})
    response = client.post("/api/assign", data=huge, content_type="application/json")
    assert response.status_code == 413
    assert client.get("/api/assign").status_code == 405
    assert client.get("/api/state?sample=9").status_code == 400
    assert client.get("/api/state?sample=-1").status_code == 400


@pytest.mark.parametrize(
    "url",
    [
        "/image/labelled/conv99_4px/0.png",  # unknown layer
        "/image/labelled/conv00_4px/3.png",  # sample out of range
        "/image/labelled/conv00_4px/-1.png",
        "/image/maps/conv00_4px/0.png",  # unknown kind
        "/image/labelled/conv00_4px/x.png",
        "/image/sample/../../etc/passwd/0.png",
        "/image/sample/..%2F..%2Fetc%2Fpasswd/0.png",
        "/image/sample/%2E%2E/0.png",
        "/image/sample/..%252F..%252Fclusters.json/0.png",
        "/image/labelled/conv00_4px/../../clusters.json",
        "/static/../clusters.json",
        "/static/..%2F..%2Fapp.py",
    ],
)
def test_traversal_and_unknown_images_are_404(client, url):
    response = client.get(url)
    assert response.status_code in (400, 404), url
    assert b"semsynth-clusters" not in response.data and b"import" not in response.data


def test_missing_map_file_is_a_clear_404(run_dir, palette_path):
    os.remove(os.path.join(run_dir, f"k{K:02d}", "maps", "conv01_8px", "000001.png"))
    client = create_app(run_dir, k=K, palette=palette_path).test_client()
    response = client.get("/image/labelled/conv01_8px/1.png")
    assert response.status_code == 404 and "000001.png" in response.get_json()["error"]


def test_main_reports_bad_arguments(run_dir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--clusters_dir", run_dir, "--k", "9", "--palette", "documents"])
    assert exit_info.value.code == 2
    assert "--k 9" in capsys.readouterr().err


def test_main_warns_off_loopback_and_never_debugs(run_dir, palette_path, monkeypatch, capsys):
    import flask

    calls = []
    monkeypatch.setattr(flask.Flask, "run", lambda app, **kwargs: calls.append((app, kwargs)))
    main(["--clusters_dir", run_dir, "--k", "3", "--palette", palette_path])
    app, kwargs = calls[-1]
    assert kwargs["host"] == "127.0.0.1" and kwargs["debug"] is False
    assert app.config["TRUSTED_HOSTS_CHECKED"] == ["localhost", "127.0.0.1", "[::1]"]
    assert "WARNING" not in capsys.readouterr().err
    main(["--clusters_dir", run_dir, "--k", "3", "--palette", palette_path, "--host", "0.0.0.0"])
    app, kwargs = calls[-1]
    assert kwargs["host"] == "0.0.0.0" and app.config["TRUSTED_HOSTS_CHECKED"] is None
    assert "WARNING: binding to 0.0.0.0" in capsys.readouterr().err


def test_trusted_hosts_refuse_other_host_headers(run_dir, palette_path):
    app = create_app(run_dir, k=K, palette=palette_path, trusted_hosts=["localhost"])
    client = app.test_client()
    assert client.get("/api/state").status_code == 200
    # A page on another site that re-points its DNS name at 127.0.0.1 sends its own Host.
    assert client.get("/api/state", headers={"Host": "evil.example"}).status_code == 400


def test_javascript_parses():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    import subprocess

    script = os.path.join(ROOT, "annotator", "static", "annotator.js")
    result = subprocess.run([node, "--check", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# --- files of the run: links, unreadable images (issue 15, items 9 and 10) -------------------

LINKED_FILES = [
    ("sample", os.path.join("samples", "000001.png")),
    ("labelled", os.path.join(f"k{K:02d}", "maps", "conv01_8px", "000001.png")),
    ("clusters", os.path.join(f"k{K:02d}", "colour", "conv01_8px", "000001.png")),
]


@pytest.mark.parametrize("kind, relative", LINKED_FILES)
@pytest.mark.parametrize("target", ["outside", "inside", "folder"])
def test_symlinks_in_the_run_are_never_served(
    tmp_path, run_dir, palette_path, kind, relative, target
):
    path = os.path.join(run_dir, relative)
    if target == "outside":  # a link to a file elsewhere (here a copy, so it would decode)
        outside = tmp_path / "outside.png"
        shutil.copy(path, outside)
        os.remove(path)
        os.symlink(outside, path)
    elif target == "inside":  # a link to another file of the run: refused as well
        os.rename(path, path + ".real")
        os.symlink(os.path.basename(path) + ".real", path)
    else:  # the folder holding it is a link to a folder elsewhere
        folder = os.path.dirname(path)
        shutil.move(folder, tmp_path / "elsewhere")
        os.symlink(tmp_path / "elsewhere", folder)
    client = create_app(run_dir, k=K, palette=palette_path, display_size=DISPLAY).test_client()
    response = client.get(f"/image/{kind}/conv01_8px/1.png")
    assert response.status_code == 403, response.data[:200]
    assert response.mimetype == "application/json"
    assert "symbolic link" in response.get_json()["error"]
    # The other samples are still served (unless the link is their folder).
    other = client.get(f"/image/{kind}/conv01_8px/0.png").status_code
    assert other == (403 if target == "folder" else 200)


def test_run_directory_reached_through_a_link_is_served(tmp_path, run_dir, palette_path):
    link = tmp_path / "run_link"
    os.symlink(run_dir, link)
    client = create_app(str(link), k=K, palette=palette_path, display_size=DISPLAY).test_client()
    assert client.get("/image/sample/conv01_8px/1.png").status_code == 200
    assert client.get("/image/labelled/conv01_8px/1.png").status_code == 200


def test_huge_sample_parameter_is_400(client):
    for value in ["1" * 5000, "9" * 10, "1e3", " 1", "\u0661"]:
        response = client.get("/api/state", query_string={"sample": value})
        assert response.status_code == 400, value
        assert "'sample' must be an integer" in response.get_json()["error"]
    assert client.get("/api/state?sample=0001").status_code == 200


@pytest.mark.parametrize(
    "data",
    [
        "[" * 2000 + "]" * 2000,
        '{"layer": "conv00_4px", "cluster": ' + "[" * 2000 + "]" * 2000 + "}",
        "[" * 1100 + "]" * 1100,
    ],
)
def test_deeply_nested_json_is_400(client, run_dir, data):
    assert len(data) < 4096  # under the size limit: it is the nesting that must be refused
    response = client.post("/api/assign", data=data, content_type="application/json")
    assert response.status_code == 400
    assert "nested too deeply" in response.get_json()["error"]
    assert not os.path.exists(os.path.join(run_dir, f"annotations_k{K:02d}.json"))


@pytest.mark.parametrize(
    "relative, urls",
    [
        (os.path.join("samples", "000001.png"), ["/image/sample/conv01_8px/1.png"]),
        (
            os.path.join(f"k{K:02d}", "maps", "conv01_8px", "000001.png"),
            [
                "/image/labelled/conv01_8px/1.png",
                "/image/clusters/conv01_8px/1.png",
                "/api/state?sample=1",
                "/api/state",
            ],
        ),
        (
            os.path.join(f"k{K:02d}", "colour", "conv01_8px", "000001.png"),
            ["/image/clusters/conv01_8px/1.png", "/api/state?sample=1"],
        ),
    ],
)
@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_unreadable_images_are_4xx_naming_the_file(run_dir, palette_path, relative, urls, damage):
    path = os.path.join(run_dir, relative)
    content = open(path, "rb").read()
    content = {"garbage": b"not a png at all" * 8, "truncated": content[:45], "empty": b""}[damage]
    with open(path, "wb") as file:
        file.write(content)
    client = create_app(run_dir, k=K, palette=palette_path, display_size=DISPLAY).test_client()
    for url in urls:
        response = client.get(url)
        assert 400 <= response.status_code < 500, (url, response.status_code)
        assert "000001.png" in response.get_json()["error"], url


def test_map_with_ids_beyond_k_is_4xx(run_dir, palette_path):
    path = os.path.join(run_dir, f"k{K:02d}", "maps", "conv00_4px", "000002.png")
    Image.fromarray(np.full((4, 4), 7, np.uint8), mode="L").save(path)
    client = create_app(run_dir, k=K, palette=palette_path).test_client()
    response = client.get("/image/labelled/conv00_4px/2.png")
    assert response.status_code == 422
    assert "cluster id 7 >= k = 3" in response.get_json()["error"]


def test_unreadable_image_is_4xx(run_dir, palette_path, monkeypatch):
    """A file the server may not read (as root, chmod cannot show it: os.open is patched)."""
    real_open = os.open
    sample_path = os.path.join(run_dir, "samples", "000002.png")

    def deny(path, *args, **kwargs):
        if os.fspath(path) == sample_path:
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *args, **kwargs)

    client = create_app(run_dir, k=K, palette=palette_path).test_client()
    monkeypatch.setattr(os, "open", deny)
    response = client.get("/image/sample/conv00_4px/2.png")
    assert response.status_code == 422
    assert "000002.png cannot be read (Permission denied)" in response.get_json()["error"]


# --- IPv6 loopback, cross-origin requests (items 11 and 12) ----------------------------------


def test_ipv6_loopback_host_is_usable(run_dir, palette_path, monkeypatch):
    import flask

    calls = []
    monkeypatch.setattr(flask.Flask, "run", lambda app, **kwargs: calls.append((app, kwargs)))
    main(["--clusters_dir", run_dir, "--k", "3", "--palette", palette_path, "--host", "::1"])
    app, kwargs = calls[-1]
    assert kwargs["host"] == "::1"
    client = app.test_client()
    for host in ["[::1]:5000", "[::1]", "localhost:5000", "127.0.0.1:5000"]:
        assert client.get("/api/state", headers={"Host": host}).status_code == 200, host
        assert client.get("/", headers={"Host": host}).status_code == 200, host
    response = client.post(
        "/api/assign",
        json={"layer": "conv00_4px", "cluster": 0, "class": "background"},
        headers={"Host": "[::1]:5000", "Origin": "http://[::1]:5000"},
    )
    assert response.status_code == 200, response.get_json()
    for host in ["evil.example", "evil.example:5000", "[::2]:5000", "[::1", "a b"]:
        response = client.get("/api/state", headers={"Host": host})
        assert response.status_code == 400, host
        assert "is not trusted" in response.get_json()["error"]


def test_other_loopback_address_is_trusted(run_dir, palette_path, monkeypatch):
    import flask

    calls = []
    monkeypatch.setattr(flask.Flask, "run", lambda app, **kwargs: calls.append((app, kwargs)))
    main(["--clusters_dir", run_dir, "--k", "3", "--palette", palette_path, "--host", "127.0.0.2"])
    client = calls[-1][0].test_client()
    assert client.get("/api/state", headers={"Host": "127.0.0.2:5000"}).status_code == 200


ASSIGN_BODY = {"layer": "conv00_4px", "cluster": 1, "class": "printed_text"}


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "http://localhost:8080"},  # another local app: same site, other origin
        {"Origin": "https://localhost"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "http://localhost", "Sec-Fetch-Site": "cross-site"},
    ],
)
def test_cross_origin_post_is_refused(client, run_dir, headers):
    response = client.post("/api/assign", json=ASSIGN_BODY, headers=headers)
    assert response.status_code == 403
    assert "cross-origin request refused" in response.get_json()["error"]
    assert not os.path.exists(os.path.join(run_dir, f"annotations_k{K:02d}.json"))


@pytest.mark.parametrize(
    "headers",
    [
        {},  # curl, scripts
        {"Origin": "http://localhost"},  # the page itself (the test client's Host is localhost)
        {"Origin": "http://LOCALHOST"},
        {"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"},
        {"Sec-Fetch-Site": "none"},
    ],
)
def test_same_origin_and_local_tools_may_post(client, run_dir, headers):
    response = client.post("/api/assign", json=ASSIGN_BODY, headers=headers)
    assert response.status_code == 200, response.get_json()
    assert mapping_file(run_dir)["layers"] == {"conv00_4px": {"1": "printed_text"}}


def test_cross_origin_reads_stay_allowed(client):
    # Reads change nothing and a foreign page cannot read the answer (no CORS header).
    response = client.get("/api/state", headers={"Origin": "http://evil.example"})
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers


# --- the legend (item 13; the page itself: test_browser.py) ---------------------------------


def test_state_has_a_legend_of_the_sample_clusters(client, run_dir):
    assign(client, layer="conv01_8px", cluster=2, **{"class": "printed_text"})
    layers = client.get("/api/state?sample=1").get_json()["layers"]
    for layer in layers:
        colour_png = os.path.join(run_dir, f"k{K:02d}", "colour", layer["name"], "000001.png")
        colours = np.array(Image.open(colour_png).convert("RGB"))
        ids = stripe_map(layer["resolution"], 1)
        expected = [
            {"cluster": c, "color": color_to_hex(colours[ids == c][0])}
            for c in np.unique(ids).tolist()
        ]
        assert layer["legend"] == expected
    # Without a sample there is no legend (the colours are those of one sample).
    assert "legend" not in client.get("/api/state").get_json()["layers"][0]


def test_legend_follows_the_run_colours_not_our_table(run_dir, palette_path):
    # The clustering step's own colours differ from the fallback table: the legend shows them.
    path = os.path.join(run_dir, f"k{K:02d}", "colour", "conv00_4px", "000000.png")
    own = np.array([[10, 20, 30], [40, 50, 60], [70, 80, 90]], np.uint8)
    Image.fromarray(own[stripe_map(4, 0)]).save(path)
    client = create_app(run_dir, k=K, palette=palette_path).test_client()
    legend = client.get("/api/state?sample=0").get_json()["layers"][0]["legend"]
    assert legend == [
        {"cluster": 0, "color": "#0a141e"},
        {"cluster": 1, "color": "#28323c"},
        {"cluster": 2, "color": "#46505a"},
    ]
    os.remove(path)
    client = create_app(run_dir, k=K, palette=palette_path).test_client()
    legend = client.get("/api/state?sample=0").get_json()["layers"][0]["legend"]
    table = cluster_colors(K)
    assert [entry["color"] for entry in legend] == [color_to_hex(c) for c in table]


def test_page_shows_the_sample_beside_every_layer():
    # The rows are built by the script; the browser test checks the rendered page.
    script = open(os.path.join(ROOT, "annotator", "static", "annotator.js")).read()
    assert "sample-image" in script and "updateLegend" in script
