"""Cluster annotation web app (Synthesis in Style, step 4): map each layer's clusters to classes.

For one k of a cluster run directory (layout: semsynth's shared contract, see README.md here) the
page shows, per generator layer, the cluster colouring and the labelled view of one sample. The
user picks a class from the palette and clicks a cluster; the class then holds for that cluster
id of that layer in every sample. Every change is written to the mapping JSON at once (atomic
replace) and the file is reloaded at start.

Run:
    python -m annotator --clusters_dir runs/clusters --k 20 --palette documents

JSON API (used by static/annotator.js and the tests):
    GET  /api/state[?sample=i]   layers (with the sample: legend), k, num_samples, display_size,
                                 classes, mapping
    POST /api/assign             {"layer", "cluster" | ("sample", "x", "y"), "class"}
    GET  /image/<kind>/<layer>/<sample>.png   kind in {sample, clusters, labelled}

Pixel coordinates x (column), y (row) are those of the served images, which are square,
display_size pixels wide, upscaled nearest from the layer's native resolution.

Only plain files inside the run directory are served (no symbolic link anywhere below it), and
state-changing requests from another origin are refused (see README.md, Security).
"""

from __future__ import annotations

import errno
import functools
import io
import ipaddress
import json
import os
import re
import stat
import threading

import flask
import numpy as np
from PIL import Image
from werkzeug.exceptions import HTTPException

from core import io as core_io
from core.errors import UserError
from models.synthesis_in_style.palette import color_to_hex, load_palette
from semantic_labels import LabelSet

CLUSTERS_FORMAT = "semsynth-clusters/1"
MAPPING_FORMAT = "semsynth-cluster-labels/1"
IMAGE_KINDS = ("sample", "clusters", "labelled")
# Assign requests are a few short fields; anything bigger is not ours.
MAX_REQUEST_BYTES = 4096
# Host header names accepted when bound to loopback (DNS-rebinding guard); IPv6 literals in
# brackets, as browsers send them. Checked by the app itself: Werkzeug's TRUSTED_HOSTS cannot
# match an IPv6 literal (it cuts every entry at its first ':').
LOOPBACK_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
# Methods that change nothing; every other one must come from the page's own origin.
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# A Host header: a name, an IPv4 address or a bracketed IPv6 literal, and an optional port.
_HOST_HEADER = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9.\-]+)(?::[0-9]{1,5})?")
# /api/state?sample= : more digits than any sample count (and than int() accepts for 5000).
_SAMPLE_PARAM = re.compile(r"[0-9]{1,9}")
# Unlabelled clusters in the labelled view: diagonal stripes of two greys, so they cannot be
# mistaken for a class, even a grey one.
_HATCH_LIGHT, _HATCH_DARK, _HATCH_PERIOD = 150, 100, 8
# Layer names become path components; anything beyond this set is refused when the run loads.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


class AnnotationError(UserError):
    """The cluster run or the mapping file is invalid; the message names the file."""


class AnnotationFileNotFoundError(AnnotationError, FileNotFoundError):
    """A file of the cluster run does not exist (catchable as ValueError or FileNotFoundError)."""


class AnnotationLinkError(AnnotationError):
    """A file of the run is a symbolic link, or lies outside the run directory: never served."""


def _is_int(value) -> bool:
    # JSON true/false arrive as Python bools, which are ints; they are not valid ids.
    return isinstance(value, int) and not isinstance(value, bool)


def cluster_colors(k: int) -> np.ndarray:
    """A fixed table of k distinct colours, [k, 3] uint8 (golden-ratio hue steps)."""
    hues = (np.arange(k) * 0.618033988749895) % 1.0  # [k]
    saturation = np.where(np.arange(k) % 2 == 0, 0.85, 0.55)  # [k]
    value = np.where(np.arange(k) % 3 == 2, 0.7, 0.95)  # [k]
    sector = np.floor(hues * 6).astype(int) % 6
    f = hues * 6 - np.floor(hues * 6)
    p = value * (1 - saturation)
    q = value * (1 - f * saturation)
    t = value * (1 - (1 - f) * saturation)
    rgb = np.select(
        [sector[:, None] == i for i in range(6)],
        [
            np.stack(c, axis=1)
            for c in (
                (value, t, p),
                (q, value, p),
                (p, value, t),
                (p, q, value),
                (t, p, value),
                (value, p, q),
            )
        ],
    )  # [k, 3]
    return np.round(rgb * 255).astype(np.uint8)


def upscale_nearest(image: np.ndarray, size: int) -> np.ndarray:
    """[h, w, ...] -> [size, size, ...], nearest; display pixel x shows source column x*w//size.

    Done with index arithmetic rather than PIL so that a click at display pixel (x, y) maps back
    to exactly the source pixel (y * h // size, x * w // size) that was drawn there.
    """
    h, w = image.shape[:2]
    rows = np.arange(size) * h // size  # [size]
    cols = np.arange(size) * w // size  # [size]
    return image[rows][:, cols]  # [size, size, ...]


class ClusterRun:
    """Read-only view of one k of a cluster run directory.

    Args:
        clusters_dir: the run directory holding clusters.json, samples/ and k??/ folders.
        k: number of clusters per layer; its folder f"k{k:02d}" must exist.
    """

    def __init__(self, clusters_dir: str, k: int):
        self.clusters_dir = os.path.abspath(clusters_dir)
        # The run directory itself may be reached through a link (the user's choice); nothing
        # below it may (see run_file).
        self.real_dir = os.path.realpath(self.clusters_dir)
        meta_path = os.path.join(self.clusters_dir, "clusters.json")
        if not os.path.isdir(self.clusters_dir):
            raise AnnotationFileNotFoundError(
                f"--clusters_dir {self.clusters_dir} is not a directory"
            )
        if not os.path.isfile(meta_path):
            raise AnnotationFileNotFoundError(
                f"{meta_path} does not exist (is --clusters_dir a cluster run directory?)"
            )
        try:
            with open(meta_path, encoding="utf-8") as file:
                meta = json.load(file)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise AnnotationError(f"{meta_path}: not valid JSON ({error})") from None
        if not isinstance(meta, dict) or meta.get("format") != CLUSTERS_FORMAT:
            raise AnnotationError(
                f"{meta_path}: 'format' must be {CLUSTERS_FORMAT!r}, got "
                f"{meta.get('format') if isinstance(meta, dict) else type(meta).__name__!r}"
            )
        generator = meta.get("generator")
        if not isinstance(generator, dict) or not isinstance(generator.get("fingerprint"), str):
            raise AnnotationError(f"{meta_path}: 'generator.fingerprint' must be a string")
        self.fingerprint: str = generator["fingerprint"]
        self.num_samples = meta.get("num_samples")
        if not _is_int(self.num_samples) or self.num_samples < 1:
            raise AnnotationError(f"{meta_path}: 'num_samples' must be a positive integer")
        k_values = meta.get("k_values")
        if not _is_int(k) or k < 1:
            raise AnnotationError(f"--k must be a positive integer, got {k!r}")
        if isinstance(k_values, list) and k not in k_values:
            raise AnnotationError(f"--k {k}: {meta_path} lists only k_values {k_values}")
        self.k = k
        self.k_dir = os.path.join(self.clusters_dir, f"k{k:02d}")
        if not os.path.isdir(self.k_dir):
            raise AnnotationFileNotFoundError(f"--k {k}: folder {self.k_dir} does not exist")
        layers = meta.get("layers")
        if not isinstance(layers, list) or not layers:
            raise AnnotationError(f"{meta_path}: 'layers' must be a non-empty list")
        self.layers: list[dict] = []
        for position, layer in enumerate(layers):
            name = layer.get("name") if isinstance(layer, dict) else None
            if not isinstance(name, str) or not _SAFE_NAME.match(name):
                raise AnnotationError(
                    f"{meta_path}: layers[{position}].name must be a plain file name "
                    f"(letters, digits, '_', '-', '.'), got {name!r}"
                )
            self.layers.append(
                {
                    "name": name,
                    "resolution": layer.get("resolution"),
                    "channels": layer.get("channels"),
                }
            )
        self.layer_names = [layer["name"] for layer in self.layers]
        if len(set(self.layer_names)) != len(self.layer_names):
            raise AnnotationError(f"{meta_path}: layer names repeat")
        self.meta_path = meta_path
        self._present: dict[str, list[int]] = {}
        self._present_lock = threading.Lock()
        # Per run, not functools on the method: that cache would be shared by every instance.
        self.cluster_map = functools.lru_cache(maxsize=4096)(self._read_cluster_map)

    def has_layer(self, layer) -> bool:
        return isinstance(layer, str) and layer in self.layer_names

    def has_sample(self, sample) -> bool:
        return _is_int(sample) and 0 <= sample < self.num_samples

    # Paths are only ever built from names found in clusters.json and from integers: callers
    # check has_layer / has_sample first, so no request string reaches the file system.
    def run_file(self, *parts: str) -> str:
        """The path of a file below the run directory, refused when it is not plainly inside it.

        Raises AnnotationLinkError when any component below the run directory is a symbolic
        link (a link planted in samples/ must not expose a file elsewhere, nor one inside the run
        under another name), or when the real path lies outside the run directory.
        """
        path = self.clusters_dir
        for part in parts:
            path = os.path.join(path, part)
            if os.path.islink(path):
                raise AnnotationLinkError(
                    f"{path} is a symbolic link: the annotator serves only plain files inside "
                    f"{self.clusters_dir}"
                )
        real = os.path.realpath(path)
        if os.path.commonpath([real, self.real_dir]) != self.real_dir:
            raise AnnotationLinkError(f"{path} lies outside the run directory {self.real_dir}")
        return path

    def read_png(self, path: str, what: str, *, rgb: bool) -> np.ndarray:
        """One image of the run: [h, w, 3] uint8 RGB when rgb, else the 8-bit ids [h, w].

        Opened without following a link (O_NOFOLLOW), so a link swapped in after run_file's
        check is refused too. A missing file is AnnotationFileNotFoundError; one that cannot be
        read or decoded is AnnotationError naming it.
        """
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            raise AnnotationFileNotFoundError(f"{what} {path} does not exist") from None
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise AnnotationLinkError(f"{path} is a symbolic link: refused") from None
            raise AnnotationError(f"{what} {path} cannot be read ({error.strerror})") from None
        with os.fdopen(fd, "rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                raise AnnotationFileNotFoundError(f"{what} {path} is not a file")
            try:
                with Image.open(file) as image:
                    if not rgb and image.mode not in ("L", "P"):
                        mode_error = f"{path}: expected an 8-bit 'L' PNG, got mode {image.mode}"
                    else:
                        return np.array(image.convert("RGB") if rgb else image)
            except (OSError, ValueError, Image.DecompressionBombError) as error:
                # UnidentifiedImageError (not an image) and truncated files are OSErrors.
                raise AnnotationError(
                    f"{what} {path} cannot be read as an image ({type(error).__name__}: {error})"
                ) from None
        raise AnnotationError(mode_error)

    def _read_cluster_map(self, layer: str, sample: int) -> np.ndarray:
        """[r, r] uint8 cluster ids of one layer and sample (read-only; cached as cluster_map)."""
        path = self.run_file(os.path.basename(self.k_dir), "maps", layer, f"{sample:06d}.png")
        ids = self.read_png(path, "cluster map", rgb=False)  # [r, r]
        if ids.size and int(ids.max()) >= self.k:
            raise AnnotationError(f"{path}: holds cluster id {int(ids.max())} >= k = {self.k}")
        ids.setflags(write=False)
        return ids

    def sample_image(self, sample: int) -> np.ndarray:
        """[R, R, 3] uint8 RGB sample."""
        path = self.run_file("samples", f"{sample:06d}.png")
        return self.read_png(path, "sample image", rgb=True)

    def cluster_colouring(self, layer: str, sample: int) -> np.ndarray:
        """[r, r, 3] uint8: the run's own colour PNG when present, else our k-colour table."""
        ids = self.cluster_map(layer, sample)
        path = self.run_file(os.path.basename(self.k_dir), "colour", layer, f"{sample:06d}.png")
        try:
            rgb = self.read_png(path, "cluster colouring", rgb=True)
        except AnnotationFileNotFoundError:
            rgb = None
        if rgb is not None and rgb.shape[:2] == ids.shape:
            return rgb
        return cluster_colors(self.k)[ids]

    def cluster_legend(self, layer: str, sample: int) -> list[tuple[int, np.ndarray]]:
        """(cluster id, [3] uint8 colour as drawn) for each cluster visible in the sample."""
        ids = self.cluster_map(layer, sample)  # [r, r]
        colouring = self.cluster_colouring(layer, sample).reshape(-1, 3)  # [r * r, 3]
        visible, first = np.unique(ids.reshape(-1), return_index=True)
        return [(int(c), colouring[i]) for c, i in zip(visible, first)]

    def present_clusters(self, layer: str) -> list[int]:
        """Cluster ids of a layer that occur in at least one sample (scanned once, cached)."""
        with self._present_lock:
            if layer not in self._present:
                seen = np.zeros(self.k, dtype=bool)
                for sample in range(self.num_samples):
                    try:
                        seen[np.unique(self.cluster_map(layer, sample))] = True
                    except AnnotationFileNotFoundError:
                        continue
                self._present[layer] = [int(c) for c in np.flatnonzero(seen)]
            return self._present[layer]


class Mapping:
    """The {layer: {cluster_id: class_name}} mapping and its JSON file.

    Args:
        path: the mapping JSON; read when it exists, rewritten after every change.
        run: the cluster run it annotates (k, layer names, generator fingerprint).
        labels: the palette; every class in the file must be one of its names.
        palette_ref: the palette's name or path, recorded in the file for dataset synthesis.
    """

    def __init__(self, path: str, run: ClusterRun, labels: LabelSet, palette_ref: str):
        self.path = os.path.abspath(path)
        self.run, self.labels, self.palette_ref = run, labels, palette_ref
        self.layers: dict[str, dict[int, str]] = {name: {} for name in run.layer_names}
        # Re-entrant: toggle() holds it while save() serialises through layer_json().
        self.lock = threading.RLock()
        if os.path.exists(self.path):
            self._load()

    def _load(self) -> None:
        path = self.path
        try:
            with open(path, encoding="utf-8") as file:
                spec = json.load(file)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise AnnotationError(f"mapping file {path}: not valid JSON ({error})") from None
        if not isinstance(spec, dict) or spec.get("format") != MAPPING_FORMAT:
            raise AnnotationError(f"mapping file {path}: 'format' must be {MAPPING_FORMAT!r}")
        if spec.get("k") != self.run.k:
            raise AnnotationError(
                f"mapping file {path} is for k = {spec.get('k')!r}, not --k {self.run.k}; "
                "pass --k to match it or another --mapping path"
            )
        if spec.get("generator") != self.run.fingerprint:
            raise AnnotationError(
                f"mapping file {path} was made for generator {spec.get('generator')!r}, but "
                f"{self.run.meta_path} has generator {self.run.fingerprint!r}"
            )
        layers = spec.get("layers")
        if not isinstance(layers, dict):
            raise AnnotationError(f"mapping file {path}: 'layers' must be an object")
        for layer, clusters in layers.items():
            if not self.run.has_layer(layer):
                raise AnnotationError(
                    f"mapping file {path}: layer {layer!r} is not a layer of {self.run.meta_path}"
                )
            if not isinstance(clusters, dict):
                raise AnnotationError(f"mapping file {path}: layers[{layer!r}] must be an object")
            for key, class_name in clusters.items():
                if not (key.isdecimal() and int(key) < self.run.k):
                    raise AnnotationError(
                        f"mapping file {path}: layer {layer!r}: cluster id {key!r} is not a "
                        f"decimal string in 0..{self.run.k - 1}"
                    )
                if class_name not in self.labels.names:
                    raise AnnotationError(
                        f"mapping file {path}: layer {layer!r}, cluster {key}: class "
                        f"{class_name!r} is not in the palette {list(self.labels.names)}"
                    )
                self.layers[layer][int(key)] = class_name

    def layer_json(self, layer: str) -> dict[str, str]:
        with self.lock:
            return {str(c): name for c, name in sorted(self.layers[layer].items())}

    def to_json(self) -> dict:
        return {
            "format": MAPPING_FORMAT,
            "k": self.run.k,
            "generator": self.run.fingerprint,
            "palette": self.palette_ref,
            # Layers without any labelled cluster are left out (the contract: "not annotated").
            "layers": {
                layer: self.layer_json(layer)
                for layer in self.run.layer_names
                if self.layers[layer]
            },
        }

    def toggle(self, layer: str, cluster: int, class_name: str | None) -> str | None:
        """Assigns class_name, or unlabels when it already has it (or class_name is None)."""
        with self.lock:
            clusters = self.layers[layer]
            if class_name is None or clusters.get(cluster) == class_name:
                clusters.pop(cluster, None)
            else:
                clusters[cluster] = class_name
            self.save()
            return clusters.get(cluster)

    def save(self) -> None:
        """Writes the file atomically: a reader never sees half a file, a crash keeps the old."""
        core_io.write_json_atomic(self.path, self.to_json(), indent=2)


def render_labelled(
    ids: np.ndarray, layer_mapping: dict[int, str], labels: LabelSet, size: int
) -> np.ndarray:
    """[r, r] cluster ids -> [size, size, 3] uint8: class colours, unlabelled clusters hatched."""
    k_table = np.full((256, 3), -1, dtype=np.int16)  # cluster id -> class colour, -1 unlabelled
    for cluster, class_name in layer_mapping.items():
        k_table[cluster] = labels.colors[labels.id_of(class_name)]
    rgb = k_table[upscale_nearest(ids, size)]  # [size, size, 3]
    rows, cols = np.indices((size, size))
    hatch = np.where((rows + cols) % _HATCH_PERIOD < _HATCH_PERIOD // 2, _HATCH_LIGHT, _HATCH_DARK)
    rgb = np.where(rgb < 0, hatch[..., None], rgb)  # [size, size, 3]
    return rgb.astype(np.uint8)


def _png_response(rgb: np.ndarray, cacheable: bool) -> flask.Response:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    response = flask.Response(buffer.getvalue(), mimetype="image/png")
    response.headers["Cache-Control"] = "private, max-age=3600" if cacheable else "no-store"
    return response


def create_app(
    clusters_dir: str,
    *,
    k: int,
    palette: str | LabelSet,
    mapping_path: str | None = None,
    display_size: int = 256,
    trusted_hosts: list[str] | None = None,
) -> flask.Flask:
    """Builds the annotation app for one k of a cluster run.

    Args:
        clusters_dir: cluster run directory (clusters.json, samples/, k??/maps, k??/colour).
        k: clusters per layer; selects the folder f"k{k:02d}" and the default mapping file.
        palette: class palette, a built-in label set name, a JSON path (see
            models.synthesis_in_style.palette) or a LabelSet.
        mapping_path: mapping JSON to read and write; default
            `<clusters_dir>/annotations_k{k:02d}.json`.
        display_size: width and height in pixels of every served image.
        trusted_hosts: Host header names accepted (port ignored; IPv6 literals in brackets,
            e.g. "[::1]"); None accepts any. main() sets loopback_trusted_hosts(host) when
            binding to loopback (DNS-rebinding guard). Kept in app.config["TRUSTED_HOSTS_CHECKED"]
            and checked by the app, not by Flask's TRUSTED_HOSTS (which cannot match "[::1]").

    Raises AnnotationError / PaletteError (ValueErrors naming the file) for a bad run, palette
    or mapping file.
    """
    if isinstance(palette, LabelSet):
        labels, palette_ref = palette, palette.name
    else:
        labels, palette_ref = load_palette(palette), os.fspath(palette)
    if not _is_int(display_size) or not 8 <= display_size <= 4096:
        raise AnnotationError(
            f"--display_size must be an integer in [8, 4096], got {display_size!r}"
        )
    run = ClusterRun(clusters_dir, k)
    if mapping_path is None:
        mapping_path = os.path.join(run.clusters_dir, f"annotations_k{k:02d}.json")
    mapping = Mapping(mapping_path, run, labels, palette_ref)

    app = flask.Flask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
        TRUSTED_HOSTS_CHECKED=None if trusted_hosts is None else list(trusted_hosts),
    )
    app.extensions["annotator"] = {"run": run, "mapping": mapping, "labels": labels}
    trusted = None if trusted_hosts is None else {name.lower() for name in trusted_hosts}

    def fail(status: int, message: str):
        flask.abort(flask.make_response(flask.jsonify(error=message), status))

    def layer_state(layer: str, sample: int | None) -> dict:
        labelled = mapping.layers[layer]
        present = set(run.present_clusters(layer))
        state = {
            **next(item for item in run.layers if item["name"] == layer),
            "mapping": mapping.layer_json(layer),
            # Clusters that never occur cannot be clicked, so they are not counted as to-do.
            "unlabelled": sum(1 for c in present if c not in labelled),
            "empty_clusters": [c for c in range(run.k) if c not in present],
        }
        if sample is not None:
            legend = run.cluster_legend(layer, sample)
            state["unlabelled_in_sample"] = sum(1 for c, _ in legend if c not in labelled)
            # The colours of the clusters image -> ids, for the clusters in this sample.
            state["legend"] = [{"cluster": c, "color": color_to_hex(rgb)} for c, rgb in legend]
        return state

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        return flask.jsonify(error=error.description or error.name), error.code

    @app.errorhandler(AnnotationFileNotFoundError)
    def missing_file(error: AnnotationFileNotFoundError):
        return flask.jsonify(error=str(error)), 404

    @app.errorhandler(AnnotationLinkError)
    def refused_file(error: AnnotationLinkError):
        return flask.jsonify(error=str(error)), 403

    @app.errorhandler(AnnotationError)
    def broken_run(error: AnnotationError):
        # A file of the run that exists but cannot be used (not an image, truncated, wrong
        # mode, ids >= k): the request cannot be answered; the message names the file.
        return flask.jsonify(error=str(error)), 422

    @app.before_request
    def check_host_and_origin():
        host_header = flask.request.headers.get("Host", "")
        if trusted is not None and _host_name(host_header) not in trusted:
            fail(400, f"Host {host_header[:100]!r} is not trusted")
        if flask.request.method in _SAFE_METHODS:
            return
        # A page of another site can still send a request (a form, or fetch in no-cors mode);
        # browsers name its origin. Local tools (curl, scripts) send neither header.
        fetch_site = flask.request.headers.get("Sec-Fetch-Site")
        if fetch_site is not None and fetch_site not in ("same-origin", "none"):
            fail(403, f"cross-origin request refused (Sec-Fetch-Site: {fetch_site[:40]})")
        origin = flask.request.headers.get("Origin")
        own_origin = f"{flask.request.scheme}://{host_header}".lower()
        if origin is not None and origin.lower() != own_origin:
            fail(403, f"cross-origin request refused (Origin {origin[:100]!r} is not {own_origin})")

    @app.after_request
    def security_headers(response: flask.Response):
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self'; script-src 'self'; style-src 'self'; "
            "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        )
        return response

    @app.get("/")
    def index():
        return flask.render_template(
            "index.html", run_name=os.path.basename(run.clusters_dir), k=run.k
        )

    @app.get("/api/state")
    def state():
        sample = flask.request.args.get("sample")
        if sample is not None:
            if not _SAMPLE_PARAM.fullmatch(sample) or not run.has_sample(int(sample)):
                fail(400, f"'sample' must be an integer in [0, {run.num_samples - 1}]")
            sample = int(sample)
        return flask.jsonify(
            k=run.k,
            num_samples=run.num_samples,
            display_size=display_size,
            generator=run.fingerprint,
            palette=palette_ref,
            mapping_file=os.path.basename(mapping.path),
            classes=[
                {"id": i, "name": name, "color": color_to_hex(labels.colors[i])}
                for i, name in enumerate(labels.names)
            ],
            layers=[layer_state(name, sample) for name in run.layer_names],
            mapping={name: mapping.layer_json(name) for name in run.layer_names},
        )

    @app.post("/api/assign")
    def assign():
        if not flask.request.is_json:
            # Also what keeps other web sites out: a cross-site form cannot send JSON, and a
            # cross-site fetch with this content type needs a CORS pre-flight we never grant.
            fail(400, "the request body must be JSON (Content-Type: application/json)")
        try:
            body = flask.request.get_json(silent=True)
        except RecursionError:
            fail(400, "the request body is nested too deeply")
        if body is None:
            fail(400, "the request body is not valid JSON")
        if not isinstance(body, dict):
            fail(400, "the request body must be a JSON object")
        unknown = sorted(set(body) - {"layer", "cluster", "sample", "x", "y", "class"})
        if unknown:
            fail(400, f"unknown fields {unknown}")
        layer = body.get("layer")
        if not isinstance(layer, str):
            fail(400, "'layer' must be a string (a layer name from /api/state)")
        if not run.has_layer(layer):
            fail(400, f"unknown layer {layer[:100]!r}")
        if "class" not in body:
            fail(400, "missing field 'class' (a class name, or null to unlabel)")
        class_name = body["class"]
        if class_name is not None and (
            not isinstance(class_name, str) or class_name not in labels.names
        ):
            fail(
                400,
                f"'class' must be one of {list(labels.names)} or null, "
                f"got {str(class_name)[:100]!r}",
            )
        if "cluster" in body:
            if any(key in body for key in ("x", "y", "sample")):
                fail(400, "give either 'cluster' or 'sample', 'x', 'y', not both")
            cluster = body["cluster"]
            if not _is_int(cluster) or not 0 <= cluster < run.k:
                fail(400, f"'cluster' must be an integer in [0, {run.k - 1}]")
        else:
            missing = [key for key in ("sample", "x", "y") if key not in body]
            if missing:
                fail(400, f"missing fields {missing} (or give 'cluster')")
            if not run.has_sample(body["sample"]):
                fail(400, f"'sample' must be an integer in [0, {run.num_samples - 1}]")
            x, y = body["x"], body["y"]
            if not all(_is_int(v) and 0 <= v < display_size for v in (x, y)):
                fail(
                    400,
                    f"'x' and 'y' must be integers in [0, {display_size - 1}] "
                    "(pixels of the served image)",
                )
            ids = run.cluster_map(layer, body["sample"])  # [r, r]
            height, width = ids.shape
            cluster = int(ids[y * height // display_size, x * width // display_size])
        new_class = mapping.toggle(layer, cluster, class_name)
        return flask.jsonify(
            layer=layer,
            cluster=cluster,
            **{"class": new_class},
            mapping=mapping.layer_json(layer),
            unlabelled=layer_state(layer, None)["unlabelled"],
        )

    @app.get("/image/<kind>/<layer>/<int:sample>.png")
    def image(kind: str, layer: str, sample: int):
        if kind not in IMAGE_KINDS or not run.has_layer(layer) or not run.has_sample(sample):
            fail(404, "no such image")
        if kind == "sample":
            rgb = upscale_nearest(run.sample_image(sample), display_size)
        elif kind == "clusters":
            rgb = upscale_nearest(run.cluster_colouring(layer, sample), display_size)
        else:
            with mapping.lock:
                layer_mapping = dict(mapping.layers[layer])
            rgb = render_labelled(
                run.cluster_map(layer, sample), layer_mapping, labels, display_size
            )
        return _png_response(rgb, cacheable=kind != "labelled")

    return app


def _host_name(host_header: str) -> str:
    """'localhost:5000' -> 'localhost', '[::1]:5000' -> '[::1]'; '' when malformed."""
    match = _HOST_HEADER.fullmatch(host_header.lower())
    return match.group(1) if match else ""


def loopback_trusted_hosts(host: str) -> list[str]:
    """Host header names accepted when bound to the loopback address `host`."""
    literal = f"[{host.lower()}]" if ":" in host else host.lower()
    return LOOPBACK_HOSTS + ([literal] if literal not in LOOPBACK_HOSTS else [])


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
