"""Procedural outdoor scenes with ADE20K labels: the built-in dataset of every command.

`render_scene(seed, height, width)` paints a plausible landscape (sky with clouds and sun,
mountains and hills, bands of grass / field / sand / water, a road in perspective, trees,
buildings and rocks) together with its label map, whose values are the real ADE20K ids listed in
semantic_labels/scenes.json. Every class has its own texture (value noise at a few scales,
gradients, stripes, ripples) so that a generator has something real to learn, and the label
map is exact: it is painted in the same pass as the image.

All random choices are drawn first from a fixed number of draws, and the geometry lives in
continuous coordinates (image-height units), so one seed gives the same scene at any
resolution; only the final film grain depends on the pixel count.

`generate_scenes(root, ...)` writes such scenes in the layout of the official ADE20K release
(ADEChallengeData2016), so the ADE20K code path reads them unchanged:

    python -m tools.scenes --out data/scenes_256 --num_train 300 --num_val 30 --size 256
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np

from core.io import save_image_atomic

from .pairs import GenerationProgress, existing_generation, write_manifest

# ADE20K ids of the classes drawn here (ADE20K order, 0 = "other"); semantic_labels/scenes.json
# lists the same ids.
BUILDING, SKY, TREE, ROAD, GRASS = 2, 3, 5, 7, 10
MOUNTAIN, WATER, FIELD, ROCK, SAND, HILL = 17, 22, 30, 35, 47, 69
SCENE_IDS = (BUILDING, SKY, TREE, ROAD, GRASS, MOUNTAIN, WATER, FIELD, ROCK, SAND, HILL)

# Bump when the drawing changes: generate_scenes() then refuses folders made by another version.
GENERATOR_VERSION = 1
MIN_SIZE = 16  # below this the objects are a pixel or two and the scene means nothing

_DATASET_DIR = "ADEChallengeData2016"
_MANIFEST = "scenes_manifest.json"
_NOISE_PERIOD = 256  # lattice period of the value noise; a power of two so wrapping is a mask
_NUM_CANDIDATES = 16  # object candidates drawn per scene (fixed, so draws never vary)

# (zenith, horizon) sky colours and the light tint they cast on everything below the sky.
_SKY_STYLES = (
    ((0.20, 0.42, 0.78), (0.70, 0.84, 0.95), (1.00, 1.00, 0.97)),  # clear day
    ((0.45, 0.60, 0.80), (0.85, 0.88, 0.90), (0.97, 0.97, 0.97)),  # hazy
    ((0.18, 0.22, 0.45), (0.98, 0.66, 0.42), (0.95, 0.80, 0.68)),  # dusk
    ((0.55, 0.58, 0.62), (0.80, 0.81, 0.82), (0.82, 0.84, 0.86)),  # overcast
)
_SKY_STYLE_WEIGHTS = (0.5, 0.2, 0.15, 0.15)
_OVERCAST = 3
_DUSK = 2

# Ground biomes: weights of the band types (grass, field, sand, water) and of the object kinds
# (tree, building, rock) standing on them.
_BAND_TYPES = (GRASS, FIELD, SAND, WATER)
_BIOMES = (
    ((0.55, 0.20, 0.05, 0.20), (0.55, 0.30, 0.15)),  # meadow
    ((0.30, 0.50, 0.02, 0.18), (0.35, 0.45, 0.20)),  # farmland
    ((0.10, 0.02, 0.65, 0.23), (0.10, 0.20, 0.70)),  # desert / beach
)
_BIOME_WEIGHTS = (0.55, 0.2, 0.25)
_WALL_COLORS = (
    (0.80, 0.74, 0.62),
    (0.66, 0.35, 0.28),
    (0.62, 0.62, 0.64),
    (0.88, 0.88, 0.84),
    (0.55, 0.48, 0.40),
)
_ROOF_COLORS = ((0.55, 0.20, 0.15), (0.35, 0.30, 0.30), (0.45, 0.32, 0.20))


class _ValueNoise:
    """Smooth value noise on a periodic random lattice, sampled at arbitrary points."""

    def __init__(self, rng: np.random.Generator):
        # rng: the scene's generator; one fixed-size draw keeps later draws resolution-free.
        table = rng.random((_NOISE_PERIOD, _NOISE_PERIOD), dtype=np.float32)
        # The four lattice corners of a cell, pre-shifted so one index gathers all of them.
        self._corners = [
            np.roll(table, (-dv, -du), axis=(0, 1)).ravel() for dv in (0, 1) for du in (0, 1)
        ]

    def __call__(self, u, v):
        """Noise in [0, 1] at lattice coordinates u, v (broadcastable float arrays).

        Pass a row [1, W] and a column [R, 1] on axis-aligned grids: the per-coordinate work
        then stays 1-D and only the gathers and blends are [R, W].
        """
        u = np.asarray(u, dtype=np.float32)
        v = np.asarray(v, dtype=np.float32)
        u_floor, v_floor = np.floor(u), np.floor(v)
        fu, fv = u - u_floor, v - v_floor
        fu = fu * fu * (3.0 - 2.0 * fu)  # smoothstep: no creases along the lattice lines
        fv = fv * fv * (3.0 - 2.0 * fv)
        mask = _NOISE_PERIOD - 1
        index = (v_floor.astype(np.intp) & mask) * _NOISE_PERIOD + (u_floor.astype(np.intp) & mask)
        a, b, c, d = (corner[index] for corner in self._corners)
        top = a + (b - a) * fu
        bottom = c + (d - c) * fu
        return top + (bottom - top) * fv

    def fbm(self, u, v, octaves: int, gain: float = 0.5):
        """Fractal sum of `octaves` noise layers, each twice the frequency; in [0, 1]."""
        u = np.asarray(u, dtype=np.float32)
        v = np.asarray(v, dtype=np.float32)
        total, amplitude, norm = 0.0, 1.0, 0.0
        for octave in range(octaves):
            scale = np.float32(2.0**octave)
            # Offsets decorrelate the octaves, which share one lattice.
            total = total + amplitude * self(u * scale + 37.1 * octave, v * scale + 11.7 * octave)
            norm += amplitude
            amplitude *= gain
        return total / np.float32(norm)


def _smoothstep(edge0, edge1, x):
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _mix(a, b, t):
    """Linear blend of colours a and b ([..., 3]) by t ([...] or scalar)."""
    t = np.asarray(t, dtype=np.float32)
    if t.ndim:
        t = t[..., None]
    return a + (b - a) * t


def _check_size(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < MIN_SIZE:
        raise ValueError(f"{name} must be an integer >= {MIN_SIZE}, got {value!r}")
    return int(value)


# ------------------------------------------------------------------------------------------
# Layout: every random choice of a scene, in continuous coordinates.
# ------------------------------------------------------------------------------------------


def _sample_layout(rng: np.random.Generator, aspect: float) -> SimpleNamespace:
    """Draws all random choices of a scene; the number of draws never depends on the inputs."""
    scene = SimpleNamespace(aspect=aspect)
    scene.noise = _ValueNoise(rng)

    style = rng.choice(len(_SKY_STYLES), p=_SKY_STYLE_WEIGHTS)
    zenith, horizon, tint = (np.array(c, np.float32) for c in _SKY_STYLES[style])
    jitter = rng.uniform(-0.04, 0.04, size=(2, 3)).astype(np.float32)
    scene.zenith = np.clip(zenith + jitter[0], 0, 1)
    scene.horizon_color = np.clip(horizon + jitter[1], 0, 1)
    scene.light_tint = tint
    scene.dusk = style == _DUSK
    scene.horizon_y = rng.uniform(0.38, 0.62)
    cover = rng.uniform(0.3, 0.5) if style == _OVERCAST else rng.uniform(0.5, 0.8)
    scene.cloud_threshold = cover
    scene.cloud_scale = rng.uniform(0.7, 1.6)
    scene.cloud_offset = rng.uniform(0, 200, size=2)
    sun_draws = rng.random(4)
    scene.has_sun = sun_draws[0] < 0.35 and style != _OVERCAST
    scene.sun_x = sun_draws[1] * aspect
    scene.sun_y = (0.1 + 0.6 * sun_draws[2]) * scene.horizon_y
    scene.sun_radius = 0.025 + 0.03 * sun_draws[3]
    scene.light_sign = 1.0 if rng.random() < 0.5 else -1.0  # +1: light from the left

    mountain_draws = rng.random(8)
    scene.has_mountains = mountain_draws[0] < 0.8
    scene.mountain_height = scene.horizon_y * (0.25 + 0.45 * mountain_draws[1])
    scene.mountain_freq = 1.0 + 1.5 * mountain_draws[2]
    scene.mountain_offset = 500 * mountain_draws[3]
    scene.snow = mountain_draws[4] < 0.4
    scene.snow_level = 0.55 + 0.25 * mountain_draws[5]
    grey = 0.38 + 0.12 * mountain_draws[6]
    scene.mountain_color = np.array(
        [grey, grey + 0.03, grey + 0.10 + 0.08 * mountain_draws[7]], np.float32
    )
    hill_draws = rng.random(5)
    scene.has_hills = hill_draws[0] < 0.5
    scene.hill_height = 0.03 + 0.08 * hill_draws[1]
    scene.hill_freq = 0.8 + 1.2 * hill_draws[2]
    scene.hill_offset = 500 * hill_draws[3]
    scene.hill_color = np.array([0.26 + 0.1 * hill_draws[4], 0.40, 0.20], np.float32)

    biome = rng.choice(len(_BIOMES), p=_BIOME_WEIGHTS)
    band_weights, kind_weights = (np.array(w, np.float64) for w in _BIOMES[biome])
    road_draws = rng.random(5)
    scene.has_road = road_draws[0] < 0.35
    if scene.has_road:
        band_weights[_BAND_TYPES.index(WATER)] = 0.0  # a road running into a lake looks wrong
    scene.road_bottom_x = (0.2 + 0.6 * road_draws[1]) * aspect
    scene.road_vanish_x = (0.3 + 0.4 * road_draws[2]) * aspect
    scene.road_half_width = 0.12 + 0.2 * road_draws[3]
    scene.road_asphalt = 0.28 + 0.1 * road_draws[4]

    num_bands = int(rng.integers(1, 4))
    boundaries = np.sort(rng.uniform(0.08, 0.85, size=3))[: num_bands - 1]
    scene.band_boundaries = boundaries.tolist()  # fractions of the ground height, far to near
    scene.band_offsets = rng.uniform(0, 300, size=3)[: num_bands - 1].tolist()
    type_draws = rng.random(3)
    band_types, previous = [], None
    for draw in type_draws[:num_bands]:
        weights = band_weights.copy()
        if previous is not None:
            weights[_BAND_TYPES.index(previous)] = 0.0  # neighbouring bands differ
        cumulative = np.cumsum(weights / weights.sum())
        previous = _BAND_TYPES[min(int(np.searchsorted(cumulative, draw)), len(_BAND_TYPES) - 1)]
        band_types.append(previous)
    scene.band_types = tuple(band_types)
    scene.ground_colors = rng.uniform(-0.05, 0.05, size=(4, 3)).astype(np.float32)
    scene.field_green = rng.random() < 0.4
    scene.field_freq = rng.uniform(3.0, 6.0)  # crop rows per unit of lateral ground

    scene.kind_weights = kind_weights / kind_weights.sum()
    scene.num_objects = int(rng.integers(2, 13))
    scene.candidates = rng.random((_NUM_CANDIDATES, 12))
    return scene


def _band_boundary_y(scene, k: int, x):
    """Row position (image-height units) of ground band boundary k at x, wobbling with x."""
    ground = 1.0 - scene.horizon_y
    base = scene.horizon_y + ground * scene.band_boundaries[k]
    # x may be one row [1, W]: the boundary depends on x only and broadcasts over rows.
    wobble = scene.noise.fbm(x * 3.0 + scene.band_offsets[k], np.full_like(x, 7.5 * k), 3)
    # Perspective: boundaries far away wobble less on screen.
    return base + (base - scene.horizon_y) * 0.35 * (wobble - 0.5)


def _road_geometry(scene, y):
    """Road centre x and half width at rows y (perspective towards the vanishing point)."""
    t = np.clip((y - scene.horizon_y) / (1.0 - scene.horizon_y), 0.0, None)
    centre = scene.road_vanish_x + (scene.road_bottom_x - scene.road_vanish_x) * t
    return centre, scene.road_half_width * t


def _ground_type_at(scene, x, y):
    """Label of the bare ground at x, y (broadcastable arrays), road included."""
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.float32)
    band = np.zeros(np.broadcast_shapes(x.shape, y.shape), np.int64)
    for k in range(len(scene.band_boundaries)):
        band += y > _band_boundary_y(scene, k, x)
    ground = np.array(scene.band_types, np.uint8)[band]
    if scene.has_road:
        centre, half = _road_geometry(scene, y)
        ground = np.where(np.abs(x - centre) < half, np.uint8(ROAD), ground)
    return ground


# ------------------------------------------------------------------------------------------
# Painting, back to front.
# ------------------------------------------------------------------------------------------


def _sky_gradient(scene, y):
    t = np.clip(y / scene.horizon_y, 0.0, 1.0) ** 0.8
    return _mix(scene.zenith, scene.horizon_color, t)  # [..., 3]


def _paint_sky(scene, image, label, xs, ys):
    y, x = ys[:, None], xs[None, :]  # [R, 1], [1, W]: noise stays separable on the grid
    color = _sky_gradient(scene, y)  # [R, 1, 3]
    noise = scene.noise
    # Clouds: stretched horizontally, thinning towards the horizon.
    u = x * 2.5 * scene.cloud_scale + scene.cloud_offset[0]
    v = y * 7.0 * scene.cloud_scale + scene.cloud_offset[1]
    density = noise.fbm(u, v, 5)  # [R, W]
    alpha = _smoothstep(scene.cloud_threshold, scene.cloud_threshold + 0.18, density)
    alpha *= 0.95 - 0.57 * np.clip(y / scene.horizon_y, 0, 1)
    shade = 0.72 + 0.28 * noise.fbm(u * 2.0 + 50.0, v * 2.0, 3)
    cloud = np.array([0.98, 0.98, 0.99], np.float32)
    if scene.dusk:
        cloud = _mix(cloud, scene.horizon_color, 0.5)
    color = _mix(color, cloud * shade[..., None], alpha)  # [R, W, 3]
    if scene.has_sun:
        distance = np.sqrt((x - scene.sun_x) ** 2 + (y - scene.sun_y) ** 2)  # [R, W]
        glow = 0.35 * np.exp(-((distance / (4.0 * scene.sun_radius)) ** 2))
        disc = _smoothstep(scene.sun_radius, scene.sun_radius * 0.85, distance)
        sun = np.array([1.0, 0.96, 0.82], np.float32)
        color = _mix(color, sun, np.clip(glow + disc * (1.0 - alpha), 0.0, 1.0))
    image[...] = color
    label[...] = SKY


def _paint_ridge(scene, image, label, xs, ys, *, ridge, class_id, base_color, haze, snow_line):
    """Fills the rows between a ridge line (per column) and the horizon with a textured range."""
    first_row = int(np.searchsorted(ys, float(ridge.min())))
    if first_row >= ys.size:
        return
    y, x = ys[first_row:, None], xs[None, :]  # [R, 1], [1, W]
    mask = y >= ridge[None, :]  # [R, W]
    noise = scene.noise
    # Relief lighting: the horizontal derivative of a height field, lit from one side.
    height = noise.fbm(x * 9.0, y * 9.0, 3)  # [R, W]
    slope = noise.fbm(x * 9.0 + 0.02, y * 9.0, 3) - height
    shade = 0.8 + scene.light_sign * np.clip(slope * 25.0, -0.35, 0.35)
    shade *= 0.85 + 0.3 * noise.fbm(x * 30.0 + 90.0, y * 30.0, 2)
    color = base_color * shade[..., None]  # [R, W, 3]
    if snow_line is not None:
        snowy = y < snow_line + 0.04 * (noise.fbm(x * 12.0, y * 12.0 + 40.0, 3) - 0.5)
        snow = np.array([0.93, 0.94, 0.97], np.float32) * np.clip(shade, 0.6, 1.1)[..., None]
        color = np.where(snowy[..., None], snow, color)
    # Fog pools at the foot of the range.
    span = max(scene.horizon_y - float(ridge.min()), 1e-3)
    depth = np.clip((y - ridge[None, :]) / span, 0, 1)  # [R, W]
    color = _mix(color, scene.horizon_color, haze + (0.6 - haze) * depth**2)
    region_image, region_label = image[first_row:], label[first_row:]
    region_image[mask] = color[mask]
    region_label[mask] = class_id


def _paint_background(scene, image, label, xs, ys):
    noise = scene.noise
    if scene.has_mountains:
        n = noise.fbm(xs * scene.mountain_freq + scene.mountain_offset, np.zeros_like(xs), 5)
        peaks = 1.0 - np.abs(2.0 * n - 1.0)  # ridged noise: sharp crests
        ridge = scene.horizon_y - scene.mountain_height * (0.25 + 0.75 * peaks**1.5)
        snow_line = None
        if scene.snow:
            snow_line = scene.horizon_y - scene.mountain_height * scene.snow_level
        _paint_ridge(
            scene,
            image,
            label,
            xs,
            ys,
            ridge=ridge,
            class_id=MOUNTAIN,
            base_color=scene.mountain_color,
            haze=0.35,
            snow_line=snow_line,
        )
    if scene.has_hills:
        n = noise.fbm(xs * scene.hill_freq + scene.hill_offset, np.full_like(xs, 3.0), 3)
        ridge = scene.horizon_y - scene.hill_height * (0.2 + 0.8 * n)
        _paint_ridge(
            scene,
            image,
            label,
            xs,
            ys,
            ridge=ridge,
            class_id=HILL,
            base_color=scene.hill_color,
            haze=0.15,
            snow_line=None,
        )


def _paint_ground(scene, image, label, xs, ys):
    rows = ys.size
    y = np.broadcast_to(ys[:, None], (rows, xs.size))  # [R, W]
    x = np.broadcast_to(xs[None, :], (rows, xs.size))  # [R, W]
    kinds = _ground_type_at(scene, xs[None, :], ys[:, None])  # [R, W]
    near = np.maximum(y - scene.horizon_y, 1e-3)  # distance below the horizon
    # Ground-plane coordinates: lateral position and depth, so textures shrink with distance.
    plane_x = (x - 0.5 * scene.aspect) / near
    plane_z = 1.0 / near
    # Fine detail aliases near the horizon: fade it with distance.
    detail = np.clip(near * 12.0, 0.0, 1.0)
    noise = scene.noise
    for class_id in np.unique(kinds):
        mask = kinds == class_id
        px, pz, sx, sy = plane_x[mask], plane_z[mask], x[mask], y[mask]
        fade, dist = detail[mask], near[mask]
        if class_id == GRASS:
            base = np.array([0.28, 0.55, 0.20], np.float32) + scene.ground_colors[0]
            patches = noise.fbm(px * 0.6, pz * 0.6, 3)
            blades = noise(sx * 150.0, sy * 35.0)  # screen space: thin vertical streaks
            shade = (0.72 + 0.4 * patches) * (1.0 + fade * 0.3 * (blades - 0.5))
            color = base * shade[:, None]
            color[:, 0] += 0.08 * (patches - 0.5)  # dry patches turn yellow
        elif class_id == FIELD:
            if scene.field_green:
                tone_a, tone_b = (0.36, 0.56, 0.20), (0.27, 0.42, 0.15)
            else:
                tone_a, tone_b = (0.80, 0.70, 0.32), (0.62, 0.52, 0.22)
            tone_a = np.array(tone_a, np.float32) + scene.ground_colors[1]
            tone_b = np.array(tone_b, np.float32) + scene.ground_colors[1]
            # Crop rows converge on the road's vanishing point, like furrows do.
            lateral = (sx - scene.road_vanish_x) / dist
            rows_pattern = 0.5 + 0.5 * np.sin(lateral * scene.field_freq)
            color = _mix(tone_a, tone_b, rows_pattern * fade)
            color *= (0.85 + 0.3 * noise.fbm(px * 0.4 + 20.0, pz * 0.4, 3))[:, None]
        elif class_id == SAND:
            base = np.array([0.86, 0.76, 0.55], np.float32) + scene.ground_colors[2]
            warp = noise.fbm(px * 0.3, pz * 0.3, 3)
            dunes = np.sin(pz * 5.0 + px * 1.2 + warp * 8.0)
            grain = noise(sx * 200.0, sy * 200.0) - 0.5
            color = base * (0.92 + 0.08 * dunes * fade + 0.12 * grain * fade)[:, None]
        elif class_id == WATER:
            # Water mirrors the sky, more so at grazing angles near the horizon.
            mirrored = _sky_gradient(scene, scene.horizon_y - 0.8 * dist)
            deep = np.array([0.10, 0.25, 0.35], np.float32) + scene.ground_colors[3]
            reflect = np.clip(0.8 - dist * 1.2, 0.25, 0.8)
            color = _mix(deep, mirrored, reflect)
            warp = noise.fbm(px * 0.5, pz * 0.5, 3)
            ripples = np.sin(pz * 40.0 + 6.0 * warp)
            sparkle = np.clip(ripples - 0.7, 0.0, None) * 0.5 * fade
            color = color * (1.0 + 0.12 * ripples * fade)[:, None] + sparkle[:, None]
        else:  # ROAD
            asphalt = scene.road_asphalt * (0.9 + 0.2 * noise.fbm(sx * 80.0, sy * 80.0, 2))
            color = np.repeat(asphalt[:, None], 3, axis=1) * np.float32([1.0, 1.0, 1.04])
            centre, half = _road_geometry(scene, sy)
            across = (sx - centre) / np.maximum(half, 1e-4)  # -1 .. 1 across the road
            dashes = (np.abs(across) < 0.035) & (np.sin(pz * 6.0) > 0.0)
            edges = (np.abs(across) > 0.88) & (np.abs(across) < 0.93)
            paint = (dashes | edges) & (fade > 0.3)
            color[paint] = np.float32([0.92, 0.90, 0.80])
        # Aerial perspective: the far ground melts into the horizon colour.
        color = _mix(color, scene.horizon_color, 0.55 * np.exp(-dist * 14.0))
        image[mask] = color
    label[...] = kinds


def _object_box(y0, y1, x0, x1, height, width):
    """Pixel slices of a box given in image-height units, or None when off-canvas."""
    r0, r1 = max(int(np.floor(y0 * height)), 0), min(int(np.ceil(y1 * height)), height)
    c0, c1 = max(int(np.floor(x0 * height)), 0), min(int(np.ceil(x1 * height)), width)
    if r0 >= r1 or c0 >= c1:
        return None
    return slice(r0, r1), slice(c0, c1)


def _shade_ellipsoid(scene, dx, dy):
    """Lambert shading of an ellipsoid at normalised offsets dx, dy from its centre."""
    nz = np.sqrt(np.clip(1.0 - dx * dx - dy * dy, 0.0, 1.0))
    lambert = -0.5 * scene.light_sign * dx - 0.55 * dy + 0.67 * nz
    return 0.45 + 0.65 * np.clip(lambert, 0.0, 1.0)


def _paint_tree(scene, image, label, xs, ys, params, base_x, base_y, scale):
    height = scale * (0.9 + 0.9 * params[3])
    conifer = params[4] < 0.3
    crown_w = height * (0.22 if conifer else 0.32 + 0.1 * params[5])
    box = _object_box(
        base_y - height - 0.02,
        base_y + 0.002,
        base_x - crown_w * 1.4,
        base_x + crown_w * 1.4,
        image.shape[0],
        image.shape[1],
    )
    if box is None:
        return
    y, x = ys[box[0]][:, None], xs[box[1]][None, :]  # [R, 1], [1, C]
    noise = scene.noise
    offset = 100.0 * params[6]
    trunk_top = base_y - height * 0.45
    trunk_half = height * 0.035 * (1.0 + 0.5 * (y - trunk_top) / (base_y - trunk_top))
    trunk = (np.abs(x - base_x) < trunk_half) & (y > trunk_top) & (y <= base_y)  # [R, C]
    if conifer:
        apex = base_y - height
        along = (y - apex) / (height * 0.85)  # 0 at the apex, 1 at the lowest branches
        tiers = 0.7 + 0.3 * ((along * 6.0) % 1.0)  # saw-tooth: layered branches
        crown = (along > 0) & (along < 1) & (np.abs(x - base_x) < crown_w * along * tiers)
        centre_y, radius_y = apex + height * 0.5, height * 0.5
    else:
        centre_y = base_y - height * 0.62
        radius_y = height * 0.38
        dx, dy = (x - base_x) / crown_w, (y - centre_y) / radius_y
        ragged = noise.fbm(dx * 2.0 + offset, dy * 2.0, 3)
        crown = np.sqrt(dx * dx + dy * dy) < 0.75 + 0.45 * ragged
    dx, dy = (x - base_x) / crown_w, (y - centre_y) / radius_y
    shade = _shade_ellipsoid(scene, np.clip(dx, -1, 1), np.clip(dy, -1, 1))
    leaves = noise.fbm(dx * 4.0 + offset, dy * 4.0, 3)
    green = np.float32([0.12, 0.30, 0.14] if conifer else [0.20, 0.42, 0.13])
    green = green + np.float32([0.06, 0.08, 0.03]) * (params[7] - 0.5)
    crown_color = green * (shade * (0.65 + 0.6 * leaves))[..., None]  # [R, C, 3]
    bark = noise(x * 400.0 + offset, y * 30.0)  # vertical grain
    trunk_color = np.float32([0.34, 0.24, 0.15]) * (0.7 + 0.4 * bark)[..., None]
    region_image, region_label = image[box], label[box]
    region_image[trunk] = trunk_color[trunk]
    region_image[crown] = crown_color[crown]
    region_label[trunk | crown] = TREE
    return box, trunk | crown


def _paint_building(scene, image, label, xs, ys, params, base_x, base_y, scale):
    width = scale * (0.5 + 1.1 * params[3])
    wall_h = scale * (0.6 + 1.4 * params[4])
    gable = params[5] < 0.5
    roof_h = width * 0.3 if gable else scale * 0.03
    side = width * 0.22  # receding side wall, on the side away from the light
    left, right = base_x - width / 2, base_x + width / 2
    wall_top = base_y - wall_h
    box = _object_box(
        wall_top - roof_h - side * 0.4,
        base_y + 0.002,
        left - side,
        right + side,
        image.shape[0],
        image.shape[1],
    )
    if box is None:
        return
    y, x = ys[box[0]][:, None], xs[box[1]][None, :]  # [R, 1], [1, C]
    noise = scene.noise
    wall_index = int(params[6] * len(_WALL_COLORS))
    wall_color = np.float32(_WALL_COLORS[wall_index])
    roof_color = np.float32(_ROOF_COLORS[int(params[7] * len(_ROOF_COLORS))])
    front = (x >= left) & (x <= right) & (y >= wall_top) & (y <= base_y)
    if gable:
        roof = (y < wall_top) & (y >= wall_top - roof_h * (1.0 - np.abs(x - base_x) / (width / 2)))
    else:
        roof = (x >= left) & (x <= right) & (y < wall_top) & (y >= wall_top - roof_h)
    # The side wall is a parallelogram whose edges rise as it recedes.
    if scene.light_sign > 0:
        outward = x - right
    else:
        outward = left - x
    side_wall = (outward > 0) & (outward < side) & (y <= base_y - outward * 0.15)
    side_wall &= y >= wall_top - outward * 0.4
    grain = 0.9 + 0.2 * noise.fbm(x * 120.0, y * 120.0, 2)  # [R, C]
    color = wall_color * grain[..., None]  # [R, C, 3]
    if wall_index == 1:  # brick: mortar lines every course
        courses = ((y - wall_top) / (scale * 0.02)) % 1.0
        color = np.where((courses < 0.15)[..., None], color * 0.8, color)
    floors = max(1, int(round(wall_h / (scale * 0.28))))
    columns = max(1, int(round(width / (scale * 0.24))))
    fx = ((x - left) / width * columns) % 1.0
    fy = ((y - wall_top) / wall_h * floors) % 1.0
    windows = front & (fx > 0.25) & (fx < 0.75) & (fy > 0.22) & (fy < 0.68)
    door = front & (np.abs(x - base_x) < width * 0.07) & (y > base_y - wall_h / floors * 0.7)
    windows &= ~door
    glass = _mix(np.float32([0.55, 0.65, 0.75]), np.float32([0.20, 0.26, 0.34]), fy / 0.68)
    if scene.dusk:  # some rooms are lit at dusk, picked by a lattice value per window
        window_id = np.floor((x - left) / width * columns) * 7.0 + np.floor(
            (y - wall_top) / wall_h * floors
        )
        lit = noise(window_id * 3.0 + 0.5, np.full_like(window_id, 0.5)) > 0.55
        glass = np.where(lit[..., None], np.float32([0.98, 0.85, 0.50]), glass)
    color = np.where(windows[..., None], glass, color)
    color = np.where(door[..., None], np.float32([0.30, 0.20, 0.14]), color)
    color = np.where(side_wall[..., None], color * 0.62, color)
    roof_color = roof_color * (0.85 + 0.3 * noise(x * 90.0, y * 20.0))[..., None]
    color = np.where(roof[..., None], roof_color, color)
    mask = front | roof | side_wall
    region_image, region_label = image[box], label[box]
    region_image[mask] = color[mask]
    region_label[mask] = BUILDING
    return box, mask


def _paint_rock(scene, image, label, xs, ys, params, base_x, base_y, scale):
    radius_x = scale * (0.12 + 0.3 * params[3])
    radius_y = radius_x * (0.5 + 0.4 * params[4])
    centre_y = base_y - radius_y * 0.55
    box = _object_box(
        centre_y - radius_y * 1.3,
        base_y + 0.002,
        base_x - radius_x * 1.3,
        base_x + radius_x * 1.3,
        image.shape[0],
        image.shape[1],
    )
    if box is None:
        return
    y, x = ys[box[0]][:, None], xs[box[1]][None, :]  # [R, 1], [1, C]
    noise = scene.noise
    offset = 100.0 * params[6]
    dx, dy = (x - base_x) / radius_x, (y - centre_y) / radius_y
    lumps = noise.fbm(dx * 1.5 + offset, dy * 1.5, 3)
    mask = (np.sqrt(dx * dx + dy * dy) < 0.8 + 0.35 * lumps) & (y <= base_y)
    grey = 0.42 + 0.15 * params[5]
    base_color = np.float32([grey + 0.04, grey, grey - 0.04])
    texture = noise.fbm(dx * 5.0 + offset, dy * 5.0, 4)
    cracks = np.abs(texture - 0.5) < 0.02  # iso-lines of the texture read as cracks
    shade = _shade_ellipsoid(scene, np.clip(dx, -1, 1), np.clip(dy, -1, 1))
    shade = shade * (0.75 + 0.5 * texture) * np.where(cracks, 0.6, 1.0)
    color = base_color * shade[..., None]  # [R, C, 3]
    region_image, region_label = image[box], label[box]
    region_image[mask] = color[mask]
    region_label[mask] = ROCK
    return box, mask


_PAINTERS = (_paint_tree, _paint_building, _paint_rock)


def _paint_objects(scene, image, label, xs, ys):
    """Paints accepted object candidates back to front, each with its ground shadow."""
    params = scene.candidates  # [K, 12] uniform draws
    base_x = (params[:, 0] * 1.2 - 0.1) * scene.aspect
    depth = params[:, 1] ** 1.6  # more objects far away, as in a real view
    base_y = scene.horizon_y + (0.02 + 0.8 * depth) * (1.0 - scene.horizon_y)
    # Objects only stand on land (not on water or the road); decided in continuous
    # coordinates so the accepted set is the same at every resolution.
    ground = _ground_type_at(scene, base_x, base_y)
    on_land = np.isin(ground, (GRASS, FIELD, SAND))
    scales = base_y - scene.horizon_y  # perspective: nearer is bigger
    kinds = np.minimum(
        np.searchsorted(np.cumsum(scene.kind_weights), params[:, 2]), len(_PAINTERS) - 1
    )
    if scene.has_road:
        # Keep the whole footprint (half widths as drawn by the painters) off the road.
        size = params[:, 3]
        footprint = np.choose(
            kinds,
            [
                scales * (0.9 + 0.9 * size) * 0.42,  # tree crown
                scales * (0.5 + 1.1 * size) * 0.72,  # building front and side wall
                scales * (0.12 + 0.3 * size) * 1.15,  # rock
            ],
        )
        centre, half = _road_geometry(scene, base_y.astype(np.float32))
        on_land &= np.abs(base_x - centre) > half * 1.1 + footprint
    accepted = np.flatnonzero(on_land)[: scene.num_objects]
    height, width = label.shape
    for index in accepted[np.argsort(base_y[accepted], kind="stable")]:
        scale, kind = scales[index], int(kinds[index])
        # Contact shadow on the ground.
        shadow_w = scale * 0.35
        box = _object_box(
            base_y[index] - shadow_w * 0.2,
            base_y[index] + shadow_w * 0.2,
            base_x[index] - shadow_w * 1.2,
            base_x[index] + shadow_w * 1.2,
            height,
            width,
        )
        if box is not None:
            y, x = ys[box[0]][:, None], xs[box[1]][None, :]
            dx = (x - base_x[index] - 0.3 * scene.light_sign * shadow_w) / shadow_w
            dy = (y - base_y[index]) / (shadow_w * 0.18)
            on_ground = np.isin(label[box], (GRASS, FIELD, SAND, ROAD))
            darken = 1.0 - 0.35 * np.clip(1.0 - dx * dx - dy * dy, 0.0, 1.0) * on_ground
            image[box] *= darken[..., None]
        painted = _PAINTERS[kind](
            scene, image, label, xs, ys, params[index], base_x[index], base_y[index], scale
        )
        if painted is not None and scale < 0.15:
            # Far objects take on the haze of the air in between.
            box, mask = painted
            region = image[box]
            region[mask] = _mix(region[mask], scene.horizon_color, 0.45 * (1.0 - scale / 0.15))


def render_scene(seed: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Renders one procedural outdoor scene.

    Args:
        seed: non-negative integer; the same seed always gives the same scene.
        height: image rows (>= 16).
        width: image columns (>= 16); non-square is fine, the scene widens.

    Returns:
        image: [H, W, 3] uint8 RGB.
        label: [H, W] uint8 ADE20K ids, a subset of SCENE_IDS.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    height, width = _check_size(height, "height"), _check_size(width, "width")
    rng = np.random.default_rng(int(seed))
    scene = _sample_layout(rng, aspect=width / height)
    # Pixel centres in image-height units, so geometry does not depend on the resolution.
    ys = ((np.arange(height, dtype=np.float32) + 0.5) / height).astype(np.float32)  # [H]
    xs = ((np.arange(width, dtype=np.float32) + 0.5) / height).astype(np.float32)  # [W]
    image = np.zeros((height, width, 3), np.float32)
    label = np.zeros((height, width), np.uint8)
    horizon_row = int(np.searchsorted(ys, scene.horizon_y))
    upper = (slice(0, horizon_row), slice(None))
    lower = (slice(horizon_row, height), slice(None))
    _paint_sky(scene, image[upper], label[upper], xs, ys[:horizon_row])
    _paint_background(scene, image[upper], label[upper], xs, ys[:horizon_row])
    _paint_ground(scene, image[lower], label[lower], xs, ys[horizon_row:])
    _paint_objects(scene, image, label, xs, ys)
    image *= np.where((label == SKY)[..., None], np.float32(1.0), scene.light_tint)
    # Film grain (luminance only) keeps flat regions from looking synthetic.
    image += rng.standard_normal((height, width, 1), dtype=np.float32) * 0.012
    image = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return image, label


# ------------------------------------------------------------------------------------------
# Writing a dataset in the ADE20K layout.
# ------------------------------------------------------------------------------------------


def scene_seed(seed: int, split: str, index: int) -> int:
    """Render seed of scene `index` of a split; training and validation seeds never overlap."""
    split_bit = {"training": 0, "validation": 1}[split]
    return (int(seed) << 32) | (split_bit << 31) | int(index)


def _manifest(num_train: int, num_val: int, size: int, seed: int) -> dict:
    return {
        "generator": "semsynth datasets.scenes",
        "generator_version": GENERATOR_VERSION,
        "num_train": num_train,
        "num_val": num_val,
        "size": size,
        "seed": seed,
    }


def generate_scenes(
    root: str,
    num_train: int = 300,
    num_val: int = 30,
    size: int = 256,
    seed: int = 0,
    progress: bool = True,
) -> str:
    """Writes procedural scenes in the official ADE20K layout; returns the dataset folder.

    Writes root/ADEChallengeData2016/images/{training,validation}/ADE_{train,val}_%08d.jpg
    (JPEG quality 95), annotations/.../ADE_{train,val}_%08d.png (8-bit, ADE20K ids) and, last,
    scenes_manifest.json with the parameters. Idempotent: a folder whose manifest matches is
    returned at once. Never deletes or overwrites: a folder with other parameters, or without a
    manifest (an interrupted run or foreign data), raises ValueError naming it.

    Args:
        root: parent folder; ADEChallengeData2016 is created inside it.
        num_train: number of training scenes (>= 1).
        num_val: number of validation scenes (>= 0).
        size: side of the square scenes in pixels (>= 16).
        seed: dataset seed; scene seeds derive from it with scene_seed().
        progress: print a one-line counter on stderr.
    """
    for name, value, low in (
        ("num_train", num_train, 1),
        ("num_val", num_val, 0),
        ("seed", seed, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    size = _check_size(size, "size")
    if num_train >= 2**31 or num_val >= 2**31:
        raise ValueError("num_train and num_val must be < 2**31")
    wanted = _manifest(int(num_train), int(num_val), size, int(seed))
    dataset_dir = os.path.join(root, _DATASET_DIR)
    manifest_path = os.path.join(dataset_dir, _MANIFEST)
    if existing_generation(dataset_dir, manifest_path, wanted, "scene"):
        return dataset_dir

    progress_line = GenerationProgress(num_train + num_val, "scenes", dataset_dir, progress)
    for split, prefix, count in (("training", "train", num_train), ("validation", "val", num_val)):
        image_dir = os.path.join(dataset_dir, "images", split)
        label_dir = os.path.join(dataset_dir, "annotations", split)
        os.makedirs(image_dir, exist_ok=True)
        os.makedirs(label_dir, exist_ok=True)
        for index in range(count):
            image, label = render_scene(scene_seed(seed, split, index), size, size)
            stem = f"ADE_{prefix}_{index + 1:08d}"
            # Atomic: a killed generation never leaves half an image to be read as data.
            save_image_atomic(image, os.path.join(image_dir, stem + ".jpg"), quality=95)
            save_image_atomic(label, os.path.join(label_dir, stem + ".png"))
            progress_line.add()
    progress_line.close()
    write_manifest(manifest_path, wanted)
    return dataset_dir
