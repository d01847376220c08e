"""Procedural street scenes with Cityscapes labels: the built-in data of the Palette commands.

`render_street(seed, height, width)` paints a street seen from a car, in one-point perspective,
together with its label map of Cityscapes labelIds (road 7, sidewalk 8, building 11, wall 12,
fence 13, pole 17, traffic light 19, traffic sign 20, vegetation 21, terrain 22, sky 23,
person 24, car 26): the road and its lane markings, sidewalks with paving, terrain verges,
façades with floors of windows, walls, fences, hedges, a tree line or a second row of houses
behind them, poles with signs and traffic lights, street trees, parked and driving cars, and
people on the sidewalks, all scaled by their depth. The label map is exact: each pixel's class
and colour come from the same ray.

The geometry is a pinhole camera at height cam_h (metres) looking along the street (+z): a
world point (X, Y, z) lands at x = vp_x + X t, y = horizon + (cam_h - Y) t with t = f / z, in
image-height units. The ground (Y = 0), the two façade planes (X = -left_plane, X = right_plane),
the planes behind them and every object are hit analytically per pixel, so rendering is a
handful of vectorised numpy passes (well under a second for 300 images of 128x256).

Scene kinds give the class proportions their spread: "downtown" (tall façades on the sidewalk,
mostly building), "residential" (low houses, gaps with hedges and gardens, street trees),
"open" (a road through terrain and vegetation, much sky) and "industrial" (walls, fences, low
halls). Every random choice is drawn first from a fixed number of draws and the geometry lives
in continuous coordinates, so a seed gives the same street at every resolution (only the film
grain depends on the pixel count).

`generate_streets(root, ...)` writes such streets in the Cityscapes layout, so the Cityscapes
code path reads them unchanged (labels hold labelIds; map them with
`datasets.segmentation.label_map_from_label_set(load_label_set("cityscapes"))`):

    python -m tools.streets --out=data/streets_128x256 --num_train=300 --num_val=30 \
        --height=128 --width=256
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np

from core.io import save_image_atomic

from .pairs import GenerationProgress, existing_generation, write_manifest
from .scenes import _mix, _smoothstep, _ValueNoise

# Cityscapes labelIds of the classes drawn here (semantic_labels/cityscapes.json, source_ids).
ROAD, SIDEWALK, BUILDING, WALL, FENCE = 7, 8, 11, 12, 13
POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN, VEGETATION, TERRAIN = 17, 19, 20, 21, 22
SKY, PERSON, CAR = 23, 24, 26
STREET_IDS = (
    ROAD,
    SIDEWALK,
    BUILDING,
    WALL,
    FENCE,
    POLE,
    TRAFFIC_LIGHT,
    TRAFFIC_SIGN,
    VEGETATION,
    TERRAIN,
    SKY,
    PERSON,
    CAR,
)

# Bump when the drawing changes: generate_streets() then refuses folders made by another version.
GENERATOR_VERSION = 1
MIN_SIZE = 16  # below this cars and people are a pixel or two
CITY = "synthstadt"  # the one "city" folder of the generated Cityscapes layout

_MANIFEST = "streets_manifest.json"
# Written first: a generation killed half-way finds its own parameters there and resumes.
_IN_PROGRESS = "streets_manifest.inprogress.json"

# Scene kinds: weight, façade segment type weights (building, wall, fence, hedge, open),
# building heights (m), verge width range (m), what stands behind the façades
# (P(tree line), P(back buildings), else sky), and (cars, people, poles, street trees) maxima.
_SEG_BUILDING, _SEG_WALL, _SEG_FENCE, _SEG_HEDGE, _SEG_OPEN = range(5)
_SEG_CLASSES = (BUILDING, WALL, FENCE, VEGETATION, TERRAIN)
_KINDS = (
    # downtown
    dict(
        w=0.3,
        seg=(0.9, 0.04, 0.02, 0.02, 0.02),
        height=(12, 40),
        verge=(0, 0),
        back=(0.1, 0.8),
        counts=(9, 10, 6, 1),
    ),
    # residential
    dict(
        w=0.3,
        seg=(0.5, 0.08, 0.12, 0.15, 0.15),
        height=(6, 13),
        verge=(0, 3),
        back=(0.7, 0.2),
        counts=(6, 5, 5, 5),
    ),
    # open road
    dict(
        w=0.25,
        seg=(0.08, 0.02, 0.15, 0.3, 0.45),
        height=(5, 9),
        verge=(1, 7),
        back=(0.75, 0.05),
        counts=(4, 1, 5, 2),
    ),
    # industrial
    dict(
        w=0.15,
        seg=(0.45, 0.25, 0.2, 0.05, 0.05),
        height=(6, 12),
        verge=(0, 2),
        back=(0.3, 0.5),
        counts=(5, 2, 5, 0),
    ),
)
_NUM_SEGMENTS = 14  # façade segments drawn per side (the last one runs to the horizon)
_NUM_CARS, _NUM_PEOPLE, _NUM_POLES, _NUM_TREES = 10, 10, 8, 6

# (zenith, horizon) sky colours and the light tint they cast: Cityscapes is mostly overcast.
_SKY_STYLES = (
    ((0.32, 0.52, 0.80), (0.75, 0.85, 0.94), (1.00, 0.99, 0.95)),  # clear
    ((0.55, 0.65, 0.78), (0.86, 0.88, 0.90), (0.97, 0.97, 0.97)),  # hazy
    ((0.62, 0.65, 0.69), (0.83, 0.84, 0.85), (0.86, 0.87, 0.89)),  # overcast
)
_SKY_WEIGHTS = (0.35, 0.25, 0.4)
_FACADE_COLORS = (
    (0.78, 0.72, 0.62),
    (0.68, 0.40, 0.32),
    (0.60, 0.60, 0.62),
    (0.86, 0.84, 0.78),
    (0.52, 0.47, 0.42),
    (0.74, 0.66, 0.50),
)
_CAR_COLORS = (
    (0.08, 0.08, 0.09),
    (0.85, 0.85, 0.86),
    (0.55, 0.56, 0.58),
    (0.55, 0.08, 0.07),
    (0.10, 0.18, 0.40),
    (0.30, 0.32, 0.30),
    (0.75, 0.70, 0.55),
)
_CLOTHES = (
    (0.1, 0.1, 0.12),
    (0.2, 0.25, 0.45),
    (0.5, 0.12, 0.1),
    (0.35, 0.35, 0.33),
    (0.6, 0.55, 0.4),
)


def _check_size(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < MIN_SIZE:
        raise ValueError(f"{name} must be an integer >= {MIN_SIZE}, got {value!r}")
    return int(value)


# ------------------------------------------------------------------------------------------
# Layout: every random choice of a street, in metres and image-height units.
# ------------------------------------------------------------------------------------------


def _sample_side(rng, kind, sign):
    """One side of the street: sidewalk, verge, façade segments along z, what is behind."""
    side = SimpleNamespace(sign=sign)
    d = rng.random(8)
    side.has_sidewalk = d[0] < (0.55 if kind["verge"][0] >= 1 else 0.97)
    side.sidewalk = (1.8 + 3.2 * d[1]) if side.has_sidewalk else 0.0
    low, high = kind["verge"]
    side.verge = low + (high - low) * d[2]
    # Segment boundaries along z (m): the first starts behind the camera.
    lengths = 6.0 + 34.0 * rng.random(_NUM_SEGMENTS)
    side.bounds = np.cumsum(np.concatenate([[-20.0 * d[3]], lengths]))[:-1].astype(np.float32)
    cumulative = np.cumsum(kind["seg"]) / np.sum(kind["seg"])
    side.types = np.minimum(np.searchsorted(cumulative, rng.random(_NUM_SEGMENTS)), 4)
    h_low, h_high = kind["height"]
    seg_draws = rng.random((_NUM_SEGMENTS, 4))
    side.heights = np.select(
        [side.types == _SEG_BUILDING, side.types == _SEG_HEDGE],
        [h_low + (h_high - h_low) * seg_draws[:, 0], 1.2 + 5.0 * seg_draws[:, 0]],
        1.0 + 1.6 * seg_draws[:, 0],  # walls and fences; "open" segments draw nothing
    ).astype(np.float32)
    side.colors = seg_draws[:, 1]  # façade colour pick
    side.window_kind = seg_draws[:, 2]
    side.floor_height = (2.8 + 0.8 * seg_draws[:, 3]).astype(np.float32)
    back_tree, back_building = kind["back"]
    side.back = (
        "trees" if d[4] < back_tree else "buildings" if d[4] < back_tree + back_building else None
    )
    side.back_offset = 6.0 + 30.0 * d[5]
    side.back_height = (8.0 + 10.0 * d[6]) if side.back == "trees" else (10.0 + 25.0 * d[6])
    side.back_phase = 100.0 * d[7]
    return side


def _sample_street(rng, aspect):
    """Draws all random choices of a street; the number of draws never depends on the inputs."""
    s = SimpleNamespace(aspect=aspect)
    s.noise = _ValueNoise(rng)
    kind_index = int(rng.choice(len(_KINDS), p=[k["w"] for k in _KINDS]))
    s.kind = kind = _KINDS[kind_index]
    s.kind_index = kind_index
    style = int(rng.choice(len(_SKY_STYLES), p=_SKY_WEIGHTS))
    zenith, horizon, tint = (np.array(c, np.float32) for c in _SKY_STYLES[style])
    s.sky_jitter = rng.uniform(-0.03, 0.03, size=(2, 3)).astype(np.float32)
    s.zenith = np.clip(zenith + s.sky_jitter[0], 0, 1)
    s.horizon_color = np.clip(horizon + s.sky_jitter[1], 0, 1)
    s.tint = tint
    s.overcast = style == 2
    d = rng.random(12)
    s.horizon = 0.34 + 0.16 * d[0]
    s.vp_x = aspect * (0.4 + 0.2 * d[1])
    s.cam_h = 1.2 + 0.5 * d[2]  # m
    s.focal = 1.7 + 0.7 * d[3]  # image heights
    lanes_left = 1 + int(d[4] * (3 if kind_index == 0 else 2))
    lanes_right = int(d[5] * (3 if kind_index == 0 else 2))
    s.lane = 3.2 + 0.5 * d[6]
    s.ego_offset = (d[7] - 0.5) * 0.8
    s.road_left = (lanes_left - 0.5) * s.lane + s.ego_offset  # m to the road edge, camera at 0
    s.road_right = (lanes_right + 0.5) * s.lane - s.ego_offset
    s.asphalt = 0.30 + 0.12 * d[8]
    s.light_sign = 1.0 if d[9] < 0.5 else -1.0  # which façade is lit
    s.cloud_threshold = 0.45 + 0.3 * d[10]
    s.fog = 120.0 + 300.0 * d[11]  # m: depth at which colours have faded most to the horizon
    s.sides = [_sample_side(rng, kind, -1.0), _sample_side(rng, kind, 1.0)]
    for side, edge in zip(s.sides, (s.road_left, s.road_right)):
        side.road_edge = edge
        side.plane = edge + side.sidewalk + side.verge  # |X| of the façade plane
    # Objects: fixed-size uniform draws, accepted up to the kind's counts.
    s.cars = rng.random((_NUM_CARS, 8))
    s.people = rng.random((_NUM_PEOPLE, 8))
    s.poles = rng.random((_NUM_POLES, 8))
    s.trees = rng.random((_NUM_TREES, 8))
    s.counts = rng.random(4)
    return s


# ------------------------------------------------------------------------------------------
# Painting: sky, ground, the planes behind and along the street, then the objects.
# ------------------------------------------------------------------------------------------


def _haze(s, color, depth):
    """Fades colours ([..., 3]) towards the horizon colour with depth (m, [...])."""
    amount = 0.75 * (1.0 - np.exp(-np.asarray(depth, np.float32) / s.fog))
    return _mix(color, s.horizon_color, amount)


def _paint_sky(s, image, label, x, y):
    t = np.clip(y / s.horizon, 0.0, 1.0) ** 0.8
    color = _mix(s.zenith, s.horizon_color, t)  # [H, W, 3]
    u, v = x * 2.2 + 13.0, y * 6.0 + 5.0
    density = s.noise.fbm(u, v, 5)
    cover = s.cloud_threshold - (0.2 if s.overcast else 0.0)
    alpha = _smoothstep(cover, cover + 0.2, density) * (0.9 - 0.5 * t)
    cloud = np.float32([0.96, 0.96, 0.97]) * (0.75 + 0.25 * s.noise.fbm(u * 2, v * 2, 3))[..., None]
    image[...] = _mix(color, cloud, alpha)
    label[...] = SKY


def _ground_texture(s, cls, X, z, fade):
    """Colour of road / sidewalk / terrain pixels at ground coordinates X, z (m)."""
    noise = s.noise
    if cls == ROAD:
        base = np.float32([s.asphalt, s.asphalt, s.asphalt * 1.04])
        grain = noise.fbm(X * 2.0, z * 2.0, 3)
        patches = noise.fbm(X * 0.15 + 40.0, z * 0.08, 3)
        color = base * (0.8 + 0.25 * patches + 0.15 * fade * (grain - 0.5))[..., None]
        # Lane markings: dashed lines between lanes, solid at the road edges.
        lane_pos = (X + s.ego_offset + 0.5 * s.lane) / s.lane
        near_line = np.abs(lane_pos - np.round(lane_pos)) * s.lane < 0.07
        dashed = (z / 9.0) % 1.0 < 0.35
        edge = np.minimum(np.abs(X + s.road_left), np.abs(X - s.road_right)) < 0.3
        edge &= np.minimum(np.abs(X + s.road_left), np.abs(X - s.road_right)) > 0.15
        paint = (near_line & dashed) | edge
        color = np.where(paint[..., None], np.float32([0.82, 0.82, 0.78]), color)
        return color
    if cls == SIDEWALK:
        base = np.float32([0.62, 0.60, 0.57])
        tile_x, tile_z = (np.abs(X) / 0.5) % 1.0, (z / 0.5) % 1.0
        joints = ((tile_x < 0.06) | (tile_z < 0.06)) & (fade > 0.3)
        color = base * (0.85 + 0.25 * noise.fbm(X * 0.8, z * 0.8 + 9.0, 3))[..., None]
        color = np.where(joints[..., None], color * 0.82, color)
        curb = np.minimum(np.abs(np.abs(X) - s.road_left), np.abs(np.abs(X) - s.road_right))
        return np.where((curb < 0.15)[..., None], color * 1.12, color)
    # Terrain: grass with dry patches.
    patches = noise.fbm(X * 0.3 + 70.0, z * 0.3, 3)
    blades = noise.fbm(X * 6.0, z * 6.0 + 3.0, 2)
    color = (
        np.float32([0.36, 0.50, 0.22])
        * (0.75 + 0.35 * patches + 0.2 * fade * (blades - 0.5))[..., None]
    )
    color[..., 0] += 0.12 * (patches - 0.4)
    return color


def _paint_ground(s, image, label, x, y):
    below = y > s.horizon + 1e-4
    t = np.where(below, (y - s.horizon) / s.cam_h, 1.0)  # [H, W] image heights per metre
    X = (x - s.vp_x) / t  # [H, W] lateral position of the ground point (m)
    z = s.focal / t  # [H, W] depth (m)
    classes = np.full(x.shape, TERRAIN, np.uint8)
    classes[(X > -s.road_left) & (X < s.road_right)] = ROAD
    left, right = s.sides
    classes[(X <= -s.road_left) & (X > -s.road_left - left.sidewalk)] = SIDEWALK
    classes[(X >= s.road_right) & (X < s.road_right + right.sidewalk)] = SIDEWALK
    fade = np.clip(t * 6.0, 0.0, 1.0)  # fine texture fades where it would alias
    for cls in (ROAD, SIDEWALK, TERRAIN):
        mask = below & (classes == cls)
        if mask.any():
            color = _ground_texture(s, cls, X[mask], z[mask], fade[mask])
            image[mask] = _haze(s, color, z[mask])
            label[mask] = cls


def _segment_at(side, z):
    return np.clip(np.searchsorted(side.bounds, z, side="right") - 1, 0, _NUM_SEGMENTS - 1)


def _facade_texture(s, side, seg, z, Y, depth, lit):
    """Colour of building pixels on a façade plane at (z along, Y up) in metres."""
    noise = s.noise
    base = np.float32(_FACADE_COLORS)[(side.colors[seg] * len(_FACADE_COLORS)).astype(int)]
    grain = noise.fbm(z * 1.5 + 31.0 * seg, Y * 1.5, 2)
    color = base * (0.85 + 0.25 * grain)[..., None]
    floor = side.floor_height[seg]
    fy = (Y / floor) % 1.0
    fz = ((z - side.bounds[seg]) / 2.6) % 1.0
    storey = np.floor(Y / floor)
    windows = (fy > 0.3) & (fy < 0.8) & (fz > 0.22) & (fz < 0.78) & (storey >= 1)
    windows &= Y < side.heights[seg] - 0.8
    shop = (storey == 0) & (fy > 0.15) & (fy < 0.8) & (fz > 0.08) & (fz < 0.92)
    shop &= side.window_kind[seg] < 0.5  # half of the buildings have shop windows
    reflection = noise.fbm(z * 0.3, Y * 0.6 + 17.0, 2)
    glass = _mix(np.float32([0.18, 0.22, 0.28]), np.float32([0.55, 0.62, 0.70]), reflection)
    color = np.where((windows | shop)[..., None], glass, color)
    # Cornice and storey lines.
    color = np.where(((fy < 0.05) & (storey >= 1))[..., None], color * 0.85, color)
    shade = np.where(lit, 1.0, 0.72).astype(np.float32)
    return _haze(s, color * shade[..., None], depth)


def _plane_texture(s, side, cls, seg, z, Y, depth, lit):
    noise = s.noise
    if cls == BUILDING:
        return _facade_texture(s, side, seg, z, Y, depth, lit)
    if cls == VEGETATION:
        leaves = noise.fbm(z * 1.2 + 5.0, Y * 1.2, 4)
        color = np.float32([0.22, 0.36, 0.14]) * (0.6 + 0.7 * leaves)[..., None]
    elif cls == WALL:
        color = (
            np.float32([0.66, 0.64, 0.60])
            * (0.85 + 0.3 * noise.fbm(z * 2.0 + 11.0, Y * 2.0, 3))[..., None]
        )
        color = np.where(((Y % 0.9) < 0.05)[..., None], color * 0.85, color)  # panel joints
    elif cls == FENCE:
        slats = (z / 0.15) % 1.0 < 0.55
        rails = np.abs(Y % 0.8 - 0.4) < 0.05
        color = np.where(
            (slats | rails)[..., None],
            np.float32([0.45, 0.40, 0.34]),
            0.6 * np.float32([0.45, 0.40, 0.34]),
        )
    else:
        raise ValueError(cls)
    shade = np.where(lit, 1.0, 0.8).astype(np.float32)
    return _haze(s, color * shade[..., None], depth)


def _paint_plane(s, side, image, label, x, y, *, distance, back):
    """Paints what stands on the plane X = sign * distance, where a pixel's ray meets it."""
    on_side = (x - s.vp_x) * side.sign > 0
    if not on_side.any():
        return
    px, py = x[on_side], y[on_side]
    t = np.abs(px - s.vp_x) / distance  # image heights per metre at the plane
    Y = s.cam_h - (py - s.horizon) / t  # height of the hit (m); < 0: the ground is hit first
    z = s.focal / t
    lit = np.full(z.shape, side.sign * s.light_sign > 0)
    if back:
        # A tree line or a row of houses: a noisy top line along z.
        top_noise = s.noise.fbm(z * 0.08 + side.back_phase, np.full_like(z, 3.0), 4)
        if side.back == "trees":
            top = side.back_height * (0.6 + 0.8 * top_noise)
            cls = np.full(z.shape, VEGETATION, np.uint8)
        else:
            blocks = s.noise(np.floor(z / 18.0) * 3.7 + side.back_phase, np.full_like(z, 1.5))
            top = side.back_height * (0.4 + 0.9 * blocks)
            cls = np.full(z.shape, BUILDING, np.uint8)
        seg = np.zeros(z.shape, np.intp)
    else:
        seg = _segment_at(side, z)
        types = side.types[seg]
        cls = np.array(_SEG_CLASSES, np.uint8)[types]
        top = side.heights[seg]
        hedge = types == _SEG_HEDGE
        # Hedges and trees have ragged tops.
        ragged = s.noise.fbm(z * 0.7 + side.back_phase, np.full_like(z, 8.0), 3)
        top = np.where(hedge, top * (0.75 + 0.5 * ragged), top)
        top = np.where(types == _SEG_OPEN, -1.0, top)
    hit = (Y >= 0.0) & (Y <= top)
    if not hit.any():
        return
    colors = np.zeros(z.shape + (3,), np.float32)
    for cls_id in np.unique(cls[hit]):
        mask = hit & (cls == cls_id)
        if cls_id == BUILDING and back:
            grey = (
                np.float32([0.62, 0.60, 0.58])
                * (0.85 + 0.2 * s.noise.fbm(z[mask] * 0.5, Y[mask] * 0.5, 2))[..., None]
            )
            windows = ((Y[mask] % 3.0) > 1.2) & ((z[mask] % 3.0) > 1.5)
            grey = np.where(windows[..., None], grey * 0.7, grey)
            colors[mask] = _haze(s, grey, z[mask] + 25.0)
        else:
            colors[mask] = _plane_texture(
                s, side, cls_id, seg[mask], z[mask], Y[mask], z[mask], lit[mask]
            )
    region_image, region_label = image[on_side], label[on_side]
    region_image[hit] = colors[hit]
    region_label[hit] = cls[hit]
    image[on_side], label[on_side] = region_image, region_label


def _box(s, X0, X1, Y0, Y1, t, xs, ys):
    """Pixel rows / columns of the metre box [X0, X1] x [Y0, Y1] at depth scale t, or None."""
    height, width = ys.size, xs.size
    x0, x1 = s.vp_x + X0 * t, s.vp_x + X1 * t
    y0, y1 = s.horizon + (s.cam_h - Y1) * t, s.horizon + (s.cam_h - Y0) * t
    # xs = (j + 0.5) / H: pixel j covers [j / H, (j + 1) / H).
    c0, c1 = max(int(np.floor(x0 * height)), 0), min(int(np.ceil(x1 * height)) + 1, width)
    r0, r1 = max(int(np.floor(y0 * height)), 0), min(int(np.ceil(y1 * height)) + 1, height)
    if c0 >= c1 or r0 >= r1:
        return None
    return slice(r0, r1), slice(c0, c1)


def _sprite(s, image, label, xs, ys, X, z, size, draw):
    """Draws one object standing at (X, z): `draw(u, v, t)` gives its [R, C] masks and colours.

    u, v are the metre coordinates of each pixel of the box in the object's frame (u lateral
    from its centre, v height above the ground); t is the depth scale.
    """
    t = s.focal / z
    half_w, height = size
    box = _box(s, X - half_w, X + half_w, 0.0, height, t, xs, ys)
    if box is None:
        return
    u = (xs[box[1]][None, :] - s.vp_x) / t - X  # [1, C]
    v = s.cam_h - (ys[box[0]][:, None] - s.horizon) / t  # [R, 1]
    # Thin parts stay at least a pixel wide: a metre at this depth is H * t pixels.
    min_half = 0.5 / (ys.size * t)
    region_image, region_label = image[box], label[box]
    for mask, cls, color in draw(u, v, min_half):
        mask = np.broadcast_to(mask, region_label.shape)
        region_label[mask] = cls
        color = np.broadcast_to(np.asarray(color, np.float32), region_image.shape)
        region_image[mask] = _haze(s, color[mask], z)


def _car(s, draws):
    body = np.float32(_CAR_COLORS[int(draws[3] * len(_CAR_COLORS))])
    width = 1.7 + 0.3 * draws[4]
    height = 1.35 + 0.5 * draws[5]  # vans are taller
    cabin = 0.55 + 0.1 * draws[6]

    def draw(u, v, _):
        shape = np.broadcast_shapes(u.shape, v.shape)
        inside = (np.abs(u) < width / 2) & (v >= 0.12) & (v < height * 0.58)
        roof = (
            (np.abs(u) < width / 2 * (0.92 - 0.25 * (v - height * 0.58) / height))
            & (v >= height * 0.58)
            & (v < height)
        )
        wheels = (np.abs(np.abs(u) - width * 0.36) < 0.2) & (v < 0.45)
        window = (
            roof & (v > height * 0.63) & (v < height * 0.93) & (np.abs(u) < width / 2 * cabin * 1.3)
        )
        lights = (
            inside & (np.abs(np.abs(u) - width * 0.4) < 0.1) & (np.abs(v - height * 0.45) < 0.06)
        )
        shade = 0.8 + 0.3 * (v / height)
        color = body * np.broadcast_to(shade, shape)[..., None]
        color = np.where(window[..., None], np.float32([0.12, 0.14, 0.17]), color)
        color = np.where(lights[..., None], np.float32([0.75, 0.1, 0.08]), color)
        color = np.where(
            (wheels & ~inside | wheels & (v < 0.3))[..., None],
            np.float32([0.05, 0.05, 0.05]),
            color,
        )
        yield inside | roof | wheels, CAR, color

    return (width / 2 + 0.1, height), draw


def _person(s, draws):
    height = 1.55 + 0.35 * draws[3]
    shirt = np.float32(_CLOTHES[int(draws[4] * len(_CLOTHES))])
    trousers = np.float32(_CLOTHES[int(draws[5] * len(_CLOTHES))]) * 0.8
    skin = np.float32([0.85, 0.66, 0.52]) * (0.6 + 0.4 * draws[6])
    stride = 0.12 * draws[7]

    def draw(u, v, min_half):
        head_r = 0.12 * height / 1.75
        head = (u / head_r) ** 2 + ((v - height + head_r) / (head_r * 1.2)) ** 2 < 1.0
        torso = (
            (np.abs(u) < np.maximum(0.2, min_half))
            & (v > height * 0.47)
            & (v < height - 2 * head_r)
        )
        legs = (
            np.abs(np.abs(u) - 0.09 - stride * (1 - v / (height * 0.47)))
            < np.maximum(0.07, min_half)
        ) & (v <= height * 0.47)
        arms = (
            (np.abs(np.abs(u) - 0.24) < np.maximum(0.05, min_half))
            & (v > height * 0.45)
            & (v < height - 2.2 * head_r)
        )
        shape = np.broadcast_shapes(u.shape, v.shape)
        color = np.broadcast_to(shirt, shape + (3,))
        color = np.where(legs[..., None], trousers, color)
        color = np.where(head[..., None], skin, color)
        yield head | torso | legs | arms, PERSON, color

    return (0.35, height), draw


def _pole(s, draws):
    height = 4.0 + 4.0 * draws[3]
    kind = draws[4]  # < 0.45 sign, < 0.65 traffic light, else a bare lamp post
    sign_shape = int(draws[5] * 3)
    sign_color = np.float32([(0.75, 0.1, 0.1), (0.1, 0.25, 0.65), (0.95, 0.8, 0.1)][sign_shape])
    metal = np.float32([0.45, 0.46, 0.47])

    def draw(u, v, min_half):
        pole = (np.abs(u) < np.maximum(0.07, min_half)) & (v < height)
        yield pole, POLE, metal * (0.8 + 0.4 * (u > 0))[..., None]
        if kind < 0.45:
            centre = height * 0.55
            du, dv = u / 0.35, (v - centre) / 0.35
            if sign_shape == 0:
                face = du**2 + dv**2 < 1.0
            elif sign_shape == 1:
                face = (np.abs(du) < 1.0) & (np.abs(dv) < 1.0)
            else:
                face = (dv > -0.8) & (np.abs(du) < (1.0 - (dv + 0.8) / 1.8))
            rim = face & ~(
                (du / 0.8) ** 2 + (dv / 0.8) ** 2 < 1.0
                if sign_shape == 0
                else (np.abs(du) < 0.8) & (np.abs(dv) < 0.8)
            )
            color = np.where(rim[..., None], np.float32([0.92, 0.92, 0.92]), sign_color)
            yield face, TRAFFIC_SIGN, color
        elif kind < 0.65:
            housing = (np.abs(u) < np.maximum(0.18, min_half)) & (np.abs(v - height * 0.8) < 0.5)
            lamps = housing & (np.abs(u) < 0.1) & ((np.abs(v - height * 0.8) % 0.33) < 0.12)
            color = np.where(
                lamps[..., None], np.float32([0.9, 0.6, 0.1]), np.float32([0.12, 0.12, 0.12])
            )
            yield housing, TRAFFIC_LIGHT, color

    return (0.4, height), draw


def _tree(s, draws):
    trunk_h = 2.0 + 1.5 * draws[3]
    crown_r = 1.3 + 1.5 * draws[4]
    phase = 50.0 * draws[5]

    def draw(u, v, min_half):
        trunk = (np.abs(u) < np.maximum(0.13, min_half)) & (v < trunk_h + crown_r)
        du, dv = u / crown_r, (v - trunk_h - crown_r) / (crown_r * 1.15)
        ragged = s.noise.fbm(du * 2.5 + phase, dv * 2.5, 3)
        crown = du**2 + dv**2 < (0.7 + 0.5 * ragged) ** 2
        leaves = s.noise.fbm(u * 3.0 + phase, v * 3.0, 3)
        crown_color = np.float32([0.20, 0.36, 0.12]) * (0.55 + 0.7 * leaves)[..., None]
        color = np.where(crown[..., None], crown_color, np.float32([0.30, 0.22, 0.15]))
        yield trunk | crown, VEGETATION, color

    return (crown_r * 1.3, trunk_h + 2.3 * crown_r * 1.15), draw


def _objects(s):
    """Accepted objects as (z, X, factory, draws), far to near."""
    left, right = s.sides
    cars, people, poles, trees = (int(round(c * m)) for c, m in zip(s.counts, s.kind["counts"]))
    found = []
    for draws in s.cars[:cars]:
        z = 7.0 + 70.0 * draws[0] ** 1.3
        lanes = np.arange(-6, 6) * s.lane - s.ego_offset  # lane centres (m)
        lanes = lanes[
            (lanes - s.lane / 2 > -s.road_left - 0.1) & (lanes + s.lane / 2 < s.road_right + 0.1)
        ]
        X = lanes[int(draws[1] * len(lanes))] + 0.3 * (draws[2] - 0.5)
        if draws[7] < 0.35:  # parked at the kerb
            X = -s.road_left + 1.1 if draws[2] < 0.5 else s.road_right - 1.1
        if abs(X) < 1.5 and z < 12.0:
            continue  # right in front of the camera's bonnet
        found.append((z, X, _car, draws))
    for draws in s.people[:people]:
        side = left if draws[0] < 0.5 else right
        if not side.has_sidewalk:
            continue
        z = 5.0 + 45.0 * draws[1]
        X = side.sign * (side.road_edge + 0.4 + (side.sidewalk - 0.8) * draws[2])
        found.append((z, X, _person, draws))
    for index, draws in enumerate(s.poles[:poles]):
        side = s.sides[index % 2]
        z = 6.0 + 80.0 * draws[1]
        found.append((z, side.sign * (side.road_edge + 0.35), _pole, draws))
    for draws in s.trees[:trees]:
        side = left if draws[0] < 0.5 else right
        if not side.has_sidewalk or side.sidewalk < 2.5:
            continue
        z = 6.0 + 60.0 * draws[1]
        found.append((z, side.sign * (side.road_edge + side.sidewalk * 0.65), _tree, draws))
    return sorted(found, key=lambda item: -item[0])


def render_street(seed: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Renders one procedural street scene.

    Args:
        seed: non-negative integer; the same seed always gives the same street.
        height: image rows (>= 16).
        width: image columns (>= 16); Cityscapes is 1:2 (e.g. 128 x 256).

    Returns:
        image: [H, W, 3] uint8 RGB.
        label_ids: [H, W] uint8 Cityscapes labelIds, a subset of STREET_IDS.

    Example:
        >>> image, label_ids = render_street(0, 128, 256)
        >>> image.shape, label_ids.shape
        ((128, 256, 3), (128, 256))
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    height, width = _check_size(height, "height"), _check_size(width, "width")
    rng = np.random.default_rng(int(seed))
    s = _sample_street(rng, aspect=width / height)
    # Pixel centres in image-height units, so geometry does not depend on the resolution.
    ys = ((np.arange(height, dtype=np.float32) + 0.5) / height).astype(np.float32)  # [H]
    xs = ((np.arange(width, dtype=np.float32) + 0.5) / height).astype(np.float32)  # [W]
    x = np.broadcast_to(xs[None, :], (height, width))  # [H, W]
    y = np.broadcast_to(ys[:, None], (height, width))  # [H, W]
    image = np.zeros((height, width, 3), np.float32)
    label = np.zeros((height, width), np.uint8)
    # Every pixel below the horizon sees the ground (or something standing on it).
    sky_rows = slice(0, int(np.searchsorted(ys, s.horizon)) + 1)
    _paint_sky(s, image[sky_rows], label[sky_rows], x[sky_rows], y[sky_rows])
    _paint_ground(s, image, label, x, y)
    for side in s.sides:  # far to near: the planes behind, then the façades
        if side.back is not None:
            _paint_plane(
                s, side, image, label, x, y, distance=side.plane + side.back_offset, back=True
            )
    for side in s.sides:
        _paint_plane(s, side, image, label, x, y, distance=side.plane, back=False)
    for z, X, factory, draws in _objects(s):
        size, draw = factory(s, draws)
        _sprite(s, image, label, xs, ys, X, z, size, draw)
    image *= np.where((label == SKY)[..., None], np.float32(1.0), s.tint)
    # Film grain (luminance only) keeps flat regions from looking synthetic.
    image += rng.standard_normal((height, width, 1), dtype=np.float32) * 0.012
    image = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return image, label


# ------------------------------------------------------------------------------------------
# Writing a dataset in the Cityscapes layout.
# ------------------------------------------------------------------------------------------

_SPLIT_FOLDERS = {"training": "train", "validation": "val"}


def street_seed(seed: int, split: str, index: int) -> int:
    """Render seed of street `index` of a split; training and validation seeds never overlap."""
    split_bit = {"training": 0, "validation": 1}[split]
    return (int(seed) << 32) | (split_bit << 31) | int(index)


def street_stem(index: int) -> str:
    """Cityscapes-style stem <city>_<sequence>_<frame> of street `index` (frame 19 is the one
    Cityscapes annotates in each 30-frame snippet)."""
    return f"{CITY}_{index:06d}_000019"


def _color_label(label_ids: np.ndarray) -> np.ndarray:
    """The _gtFine_color.png view of a labelIds map: the Cityscapes colour of each class."""
    from semantic_labels import load_label_set

    labels = load_label_set("cityscapes")
    table = np.zeros((256, 3), np.uint8)
    table[list(labels.source_ids)] = labels.colors
    return table[label_ids]  # [H, W, 3]


def _manifest(num_train: int, num_val: int, height: int, width: int, seed: int) -> dict:
    return {
        "generator": "semsynth datasets.streets",
        "generator_version": GENERATOR_VERSION,
        "num_train": num_train,
        "num_val": num_val,
        "height": height,
        "width": width,
        "seed": seed,
    }


def generate_streets(
    root: str,
    *,
    num_train: int = 300,
    num_val: int = 30,
    height: int = 128,
    width: int = 256,
    seed: int = 0,
    progress: bool = True,
) -> str:
    """Writes procedural streets in the Cityscapes layout under root; returns root.

    Writes root/leftImg8bit/{train,val}/synthstadt/synthstadt_<index>_000019_leftImg8bit.png,
    root/gtFine/{train,val}/synthstadt/..._gtFine_labelIds.png (8-bit Cityscapes labelIds) and
    ..._gtFine_color.png (the official colours), then, last, streets_manifest.json.

    Idempotent: a folder whose manifest matches is returned at once. Resumable: the parameters
    are written first (streets_manifest.inprogress.json) and every file atomically, so a killed
    generation, run again with the same parameters, writes only the missing files. Never deletes
    or overwrites: a folder with other parameters, or other data without either manifest,
    raises ValueError naming it.

    Args:
        root: dataset folder (created).
        num_train: training streets (>= 1).
        num_val: validation streets (>= 0).
        height, width: image size in pixels (>= 16 each).
        seed: dataset seed; street seeds derive from it with street_seed().
        progress: print a one-line counter on stderr.
    """
    for name, value, low in (
        ("num_train", num_train, 1),
        ("num_val", num_val, 0),
        ("seed", seed, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    height, width = _check_size(height, "height"), _check_size(width, "width")
    if num_train >= 10**6 or num_val >= 10**6:
        raise ValueError("num_train and num_val must be < 1000000 (six-digit sequence numbers)")
    wanted = _manifest(int(num_train), int(num_val), height, width, int(seed))
    manifest_path = os.path.join(root, _MANIFEST)
    in_progress = os.path.join(root, _IN_PROGRESS)
    if os.path.isfile(manifest_path) or not os.path.isfile(in_progress):
        if existing_generation(root, manifest_path, wanted, "street"):
            return root
        os.makedirs(root, exist_ok=True)
        write_manifest(in_progress, wanted)
    else:
        # An interrupted generation: resume it if it was asked for the same streets.
        existing_generation(root, in_progress, wanted, "street")

    progress_line = GenerationProgress(num_train + num_val, "streets", root, progress)
    for split, count in (("training", num_train), ("validation", num_val)):
        folder = _SPLIT_FOLDERS[split]
        image_dir = os.path.join(root, "leftImg8bit", folder, CITY)
        label_dir = os.path.join(root, "gtFine", folder, CITY)
        os.makedirs(image_dir, exist_ok=True)
        os.makedirs(label_dir, exist_ok=True)
        for index in range(count):
            stem = street_stem(index)
            image_path = os.path.join(image_dir, stem + "_leftImg8bit.png")
            label_path = os.path.join(label_dir, stem + "_gtFine_labelIds.png")
            color_path = os.path.join(label_dir, stem + "_gtFine_color.png")
            # Atomic writes: an existing file is complete, so a resumed run keeps it.
            if not all(os.path.isfile(p) for p in (image_path, label_path, color_path)):
                image, label_ids = render_street(street_seed(seed, split, index), height, width)
                save_image_atomic(image, image_path)
                save_image_atomic(label_ids, label_path)
                save_image_atomic(_color_label(label_ids), color_path)
            progress_line.add()
    progress_line.close()
    write_manifest(manifest_path, wanted)
    os.remove(in_progress)
    return root


def class_proportions(label_ids: np.ndarray) -> dict[int, float]:
    """{labelId: share of the pixels} of a street's label map (for checks and docs)."""
    values, counts = np.unique(np.asarray(label_ids), return_counts=True)
    return {int(v): float(c) / label_ids.size for v, c in zip(values, counts)}


__all__ = [
    "STREET_IDS",
    "class_proportions",
    "generate_streets",
    "render_street",
    "street_seed",
    "street_stem",
]
