"""Training scenes for the lane model: simulated roads whose appearance is randomized hard.

A real camera's lane lines are found among things a simulator rarely draws: cracks and tar seams
along the road, concrete joints, tyre tracks, shadows of trees and bridges, guard rails and barriers
converging on the same vanishing point, worn paint, Botts' dots, cars, haze, blur and JPEG. Each
scene draws a random camera (field of view, height, horizon, yaw, roll), a road (lanes, widths,
curvature, a crest) and all of the above, each at random, so that only the painted lines are what
stays the same. Ground is rendered per pixel in road coordinates (lateral offset, distance) at
twice the output size and averaged down, objects are projected polygons drawn far to near.

Truth per scene: every lane line of the carriageway as image points (x per row, -1 where not in
view) and a mask of the pixels objects hide (line pixels there teach neither way).

Example:
    >>> image, lines, hidden = render_scene(np.random.default_rng(0))       # doctest: +SKIP
    >>> image.shape, hidden.shape                                            # doctest: +SKIP
    ((360, 640, 3), (360, 640))
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["render_scene", "WIDTH", "HEIGHT"]

WIDTH, HEIGHT = 640, 360
SS = 1  # supersampling of the ground (paint coverage is anti-aliased analytically)
Z_MAX = 250.0


def _noise(rng, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Smooth noise in [-1, 1] with features about ``scale`` pixels across."""
    small = rng.normal(0, 1, (max(2, int(shape[0] / scale)) + 2, max(2, int(shape[1] / scale)) + 2)).astype(np.float32)
    big = cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    return big / max(float(np.abs(big).max()), 1e-6)


def _colour(rng, base, spread) -> np.ndarray:
    return np.clip(np.asarray(base, np.float32) + rng.uniform(-spread, spread, 3), 0, 255)


class _Camera:
    def __init__(self, rng):
        self.f = WIDTH * SS / (2 * np.tan(np.radians(rng.uniform(42, 78)) / 2))
        self.h = rng.uniform(1.1, 2.4)
        self.u0 = WIDTH * SS * rng.uniform(0.36, 0.64)
        self.v0 = HEIGHT * SS * rng.uniform(0.28, 0.6)
        self.hill = rng.choice([0.0, rng.uniform(-4e-4, 4e-4)])  # ground height k*z^2: a crest (<0) or a dip

    def row_of(self, z: np.ndarray) -> np.ndarray:
        return self.v0 + self.f * (self.h - self.hill * z * z) / z


def _road(rng) -> dict:
    lanes = int(rng.integers(2, 6))
    width = rng.uniform(3.0, 3.9)
    ego = int(rng.integers(0, lanes))
    offset = -(ego + rng.uniform(0.3, 0.7)) * width  # the camera stands inside lane `ego`
    lines = []
    for k in range(lanes + 1):
        outer = k in (0, lanes)
        kind = rng.choice(["solid", "solid", "double"] if k == 0 and rng.random() < 0.5 else ["solid"]) if outer else \
            rng.choice(["dashed", "dashed", "dashed", "dots", "dashdots", "solid"], p=[0.35, 0.15, 0.1, 0.2, 0.1, 0.1])
        yellow = (k == 0 and rng.random() < 0.45) or (not outer and rng.random() < 0.05)
        painted = not (outer and rng.random() < 0.15)  # an unpainted road edge: no line, no label
        lines.append({"x": offset + k * width, "kind": str(kind), "yellow": bool(yellow), "painted": painted,
                      "width": rng.uniform(0.1, 0.22), "dash": rng.uniform(2.0, 4.5), "period": rng.uniform(7.5, 15.0),
                      "phase": rng.uniform(0, 15), "wear": rng.uniform(0, 0.6) if rng.random() < 0.4 else 0.0,
                      "bright": rng.uniform(0.55, 1.0)})
    return {"lines": lines, "left": lines[0]["x"], "right": lines[-1]["x"], "c1": rng.uniform(-0.03, 0.03),
            "c2": rng.choice([0.0, rng.uniform(-1.5e-3, 1.5e-3)], p=[0.35, 0.65]),
            "shoulders": (rng.uniform(0.3, 3.5), rng.uniform(0.3, 3.5))}


def _ground_layers(rng, road: dict) -> dict:
    """Canvases in road coordinates: lateral -40..40 m at 2.5 cm, distance 0..Z_MAX at 10 cm."""
    shape = (int(Z_MAX / 0.1), int(80 / 0.025))
    dark = np.zeros(shape, np.uint8)  # cracks, seams, joints: darker
    light = np.zeros(shape, np.uint8)  # shiny sealant, bleached patches: lighter
    col = lambda x: int((x + 40) / 0.025)  # noqa: E731
    row = lambda z: int(z / 0.1)  # noqa: E731
    for _ in range(int(rng.integers(0, 25))):  # cracks: random walks, mostly along the road
        x, z = rng.uniform(road["left"] - 2, road["right"] + 2), rng.uniform(2, 120)
        points = [(col(x), row(z))]
        along = rng.random() < 0.7
        for _ in range(int(rng.integers(5, 40))):
            if along:
                x, z = x + rng.normal(0, 0.08), z + rng.uniform(0.3, 1.5)
            else:
                x, z = x + rng.normal(0, 0.4), z + rng.normal(0, 0.4)
            points.append((col(x), row(z)))
        cv2.polylines(dark, [np.array(points, np.int32)], False, int(rng.integers(60, 255)), int(rng.integers(1, 4)))
    if rng.random() < 0.4:  # concrete slabs: joints across and along the lanes
        step = rng.uniform(4, 7)
        for z in np.arange(rng.uniform(0, step), Z_MAX, step):
            cv2.line(dark, (col(road["left"] - 0.5), row(z)), (col(road["right"] + 0.5), row(z)), int(rng.integers(60, 200)), 1)
        for line in road["lines"]:
            shift = rng.choice([0.0, rng.uniform(-0.4, 0.4)])
            cv2.line(dark, (col(line["x"] + shift), 0), (col(line["x"] + shift), shape[0] - 1), int(rng.integers(80, 220)), 2)
    for _ in range(int(rng.integers(0, 6))):  # tar seams and sealant lines along the road
        x0, z0 = rng.uniform(road["left"] - 1, road["right"] + 1), rng.uniform(0, 60)
        zs = np.arange(z0, z0 + rng.uniform(10, 150), 0.5)
        xs = x0 + np.cumsum(rng.normal(0, 0.03, len(zs)))
        canvas = light if rng.random() < 0.3 else dark
        cv2.polylines(canvas, [np.stack([(xs + 40) / 0.025, zs / 0.1], 1).astype(np.int32)], False,
                      int(rng.integers(80, 255)), int(rng.integers(2, 10)))
    for _ in range(int(rng.integers(0, 8))):  # patches
        x, z = rng.uniform(road["left"], road["right"]), rng.uniform(2, 80)
        w, length = rng.uniform(0.5, 4), rng.uniform(1, 12)
        canvas = light if rng.random() < 0.5 else dark
        cv2.rectangle(canvas, (col(x), row(z)), (col(x + w), row(z + length)), int(rng.integers(30, 110)), -1)
    return {"dark": dark, "light": light}


def _shadow_layer(rng, road: dict) -> np.ndarray:
    """Shadow strength (0-1) in road coordinates at 10 cm: trees, a bridge, poles."""
    shape = (int(Z_MAX / 0.1), int(80 / 0.1))
    shadow = np.zeros(shape, np.float32)
    if rng.random() < 0.5:  # trees beside the road: blobs reaching across
        side = rng.choice([-1, 1])
        blobs = (_noise(rng, shape, rng.uniform(8, 40)) > rng.uniform(0.0, 0.5)).astype(np.float32)
        xs = (np.arange(shape[1]) * 0.1 - 40)
        edge = road["left"] if side < 0 else road["right"]
        reach = rng.uniform(1, 12)
        within = (xs - edge) * side > -reach
        shadow = np.maximum(shadow, blobs * within[None, :])
    if rng.random() < 0.2:  # a bridge across the road
        z = rng.uniform(8, 80)
        shadow[int(z / 0.1) : int((z + rng.uniform(6, 25)) / 0.1)] = 1.0
    if rng.random() < 0.3:  # poles and signs: thin shadows across
        for _ in range(int(rng.integers(1, 5))):
            z = rng.uniform(3, 60)
            angle = rng.uniform(-0.6, 0.6)
            x0 = rng.uniform(road["left"] - 3, road["right"] + 3)
            a = (int((x0 + 40) / 0.1), int(z / 0.1))
            b = (int((x0 + 40 + 15 * np.cos(angle) * rng.choice([-1, 1])) / 0.1), int((z + 15 * np.sin(angle)) / 0.1))
            cv2.line(shadow, a, b, 1.0, int(rng.integers(2, 6)))
    return cv2.GaussianBlur(shadow, (0, 0), rng.uniform(0.5, 2.5)) * rng.uniform(0.35, 0.75)


def _paint(line: dict, x: np.ndarray, z: np.ndarray, pixel_m: np.ndarray, rng_wear: np.ndarray) -> np.ndarray:
    """Coverage (0-1) of one line's paint at road coordinates; ``pixel_m``: a pixel's width in metres."""
    half = line["width"] / 2
    offsets = [0.0] if line["kind"] != "double" else [-0.15 - half, 0.15 + half]
    cover = np.zeros_like(x)
    for shift in offsets:
        d = np.abs(x - line["x"] - shift)
        cover = np.maximum(cover, np.clip((half + pixel_m / 2 - d) / np.maximum(pixel_m, 1e-3), 0, 1))
    phase = (z + line["phase"]) % line["period"]
    if line["kind"] == "dashed" or line["kind"] == "dashdots":
        dash = (phase < line["dash"]).astype(np.float32)
        if line["kind"] == "dashdots":
            dash = np.maximum(dash, _dots(x - line["x"], phase, pixel_m))
        cover = cover * dash
    elif line["kind"] == "dots":
        cover = _dots(x - line["x"], z % 1.2, pixel_m)
    if line["wear"]:
        cover = cover * np.clip(1 - line["wear"] * (rng_wear + 1), 0, 1)
    return cover * line["bright"]


def _dots(dx: np.ndarray, phase: np.ndarray, pixel_m: np.ndarray) -> np.ndarray:
    """Botts' dots: 10 cm discs every 1.2 m."""
    d = np.sqrt(dx ** 2 + (phase - 0.6) ** 2)
    return np.clip((0.06 + pixel_m / 2 - d) / np.maximum(pixel_m, 1e-3), 0, 1)


def _ground(rng, cam: _Camera, road: dict, far: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(RGB float image at SS times the size, z per pixel, road lateral offset per pixel)."""
    h, w = HEIGHT * SS, WIDTH * SS
    zs = np.geomspace(0.5, Z_MAX, 4000)
    rows_of_z = cam.row_of(zs)
    monotone = np.concatenate([[True], np.diff(rows_of_z) < 0])
    end = int(np.argmin(monotone)) if not monotone.all() else len(zs)
    zs, rows_of_z = zs[:end], rows_of_z[:end]
    v = np.arange(h, dtype=np.float32)
    z_row = np.interp(v, rows_of_z[::-1], zs[::-1], left=np.inf, right=np.nan)  # beyond the crest: sky
    ground = np.isfinite(z_row) & (v > rows_of_z.min())
    z = (np.where(ground, z_row, Z_MAX)[:, None] * np.ones((1, w))).astype(np.float32)
    u = np.arange(w, dtype=np.float32)[None, :]
    x_world = (u - cam.u0) * z / cam.f
    x = (x_world - (road["c1"] * z + road["c2"] * z * z)).astype(np.float32)  # road coordinates: offset from the road's axis
    pixel_m = z / cam.f * SS
    asphalt = _colour(rng, [rng.uniform(45, 175)] * 3, 12)
    shoulder = np.clip(asphalt * rng.uniform(0.8, 1.35) + rng.uniform(-10, 10, 3), 0, 255)
    verge = _colour(rng, rng.choice([[95, 110, 70], [150, 135, 100], [120, 120, 115], [70, 85, 55]]), 25)
    left, right = road["left"], road["right"]
    inside = (x > left - 0.3) & (x < right + 0.3)
    on_shoulder = ~inside & (x > left - road["shoulders"][0]) & (x < right + road["shoulders"][1])
    image = np.where(inside[..., None], asphalt, np.where(on_shoulder[..., None], shoulder, verge)).astype(np.float32)
    # Texture: noise in road coordinates (perspective-correct), strong near, averaged far.
    layers = _ground_layers(rng, road)
    col = np.clip((x + 40) / 0.025, 0, layers["dark"].shape[1] - 1).astype(np.float32)
    row = np.clip(z / 0.1, 0, layers["dark"].shape[0] - 1).astype(np.float32)
    dark = cv2.remap(layers["dark"], col, row, cv2.INTER_LINEAR).astype(np.float32) / 255
    light = cv2.remap(layers["light"], col, row, cv2.INTER_LINEAR).astype(np.float32) / 255
    grain = cv2.remap(_noise(rng, (500, 400), rng.uniform(1.5, 6)), (x + 40) / 0.2, z / 0.5 % 500, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    blotch = cv2.remap(_noise(rng, (250, 160), rng.uniform(3, 15)), (x + 40) / 0.5, z / 1.0, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    near = np.clip(3.0 / np.maximum(pixel_m / 0.02, 1), 0.2, 1)[..., None]
    image *= (1 + rng.uniform(0.02, 0.12) * grain[..., None] * near + rng.uniform(0.02, 0.15) * blotch[..., None])
    image *= 1 - rng.uniform(0.2, 0.6) * dark[..., None] * inside[..., None]
    image += rng.uniform(15, 60) * light[..., None] * inside[..., None]
    if rng.random() < 0.6:  # tyre tracks: darker (or polished lighter) bands in each lane
        tone = rng.uniform(-0.18, 0.12)
        for a, b in zip(road["lines"][:-1], road["lines"][1:]):
            centre, spread = (a["x"] + b["x"]) / 2, rng.uniform(0.35, 0.6)
            for side in (-0.85, 0.85):
                image *= 1 + tone * np.exp(-((x - centre - side) ** 2) / (2 * spread ** 2))[..., None]
    wear = cv2.remap(_noise(rng, (800, 100), 3), (x + 40) / 0.8, z / 0.3 % 800, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    white = _colour(rng, [235, 235, 230], 20)
    yellow = _colour(rng, [225, 180, 50], 25)
    for line in road["lines"]:
        if line["painted"]:
            cover = (_paint(line, x, z, pixel_m, wear) * np.clip((far - z) / 10 + 1, 0, 1))[..., None]
            image = image * (1 - cover) + cover * (yellow if line["yellow"] else white)
    shadow = _shadow_layer(rng, road)
    s = cv2.remap(shadow, np.clip((x + 40) / 0.1, 0, shadow.shape[1] - 1).astype(np.float32),
                  np.clip(z / 0.1, 0, shadow.shape[0] - 1).astype(np.float32), cv2.INTER_LINEAR)
    image *= (1 - s[..., None] * np.array([1.0, 0.97, 0.9], np.float32))
    image[~ground] = 0
    return image, np.where(ground[:, None], z, np.inf), x


def _sky_and_background(rng, image: np.ndarray, ground: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    top, bottom = _colour(rng, rng.choice([[110, 160, 230], [170, 180, 195], [215, 220, 225], [200, 160, 120]]), 25), \
        _colour(rng, [215, 220, 230], 25)
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    sky = top * (1 - t) + bottom * t
    sky = sky * (1 + rng.uniform(0, 0.15) * _noise(rng, (h, w), rng.uniform(20, 120))[..., None])
    out = np.where(ground[..., None], image, sky)
    horizon = int(np.argmax(ground.any(1))) if ground.any() else h // 2
    # Hills, trees and buildings on the horizon: a jagged silhouette, textured.
    for _ in range(int(rng.integers(1, 4))):
        height = rng.uniform(0.02, 0.35) * h
        profile = horizon - height * (0.5 + 0.5 * _noise(rng, (1, w), rng.uniform(20, 300))[0])
        if rng.random() < 0.3:  # buildings: blocky
            steps = rng.integers(10, 80)
            profile = np.repeat(profile[::steps], steps)[:w]
        colour = _colour(rng, rng.choice([[60, 80, 50], [40, 55, 35], [120, 110, 90], [100, 100, 105], [150, 140, 110]]), 25)
        texture = 1 + rng.uniform(0.1, 0.5) * _noise(rng, (h, w), rng.uniform(2, 10))[..., None]
        rows = np.arange(h)[:, None]
        mask = (rows >= profile[None, :]) & ~ground
        out = np.where(mask[..., None], colour * texture, out)
    return out


def _side_wall(rng, image, hidden, cam, road, side: int, x_off: float, height_m: float, colour, kind: str):
    """A barrier or guard rail along the road edge: drawn per distance slice, far to near."""
    zs = np.geomspace(0.8, 200, 240)[::-1]
    for z0, z1 in zip(zs[:-1], zs[1:]):
        xs = [x_off + road["c1"] * z + road["c2"] * z * z for z in (z0, z1)]
        base = [cam.hill * z * z for z in (z0, z1)]
        u = [cam.u0 + cam.f * xv / z for xv, z in zip(xs, (z0, z1))]
        vb = [cam.v0 + cam.f * (cam.h - b) / z for b, z in zip(base, (z0, z1))]
        if kind == "rail":
            lo, hi = 0.5, height_m
        else:
            lo, hi = 0.0, height_m
        vt = [cam.v0 + cam.f * (cam.h - b - hi) / z for b, z in zip(base, (z0, z1))]
        vl = [cam.v0 + cam.f * (cam.h - b - lo) / z for b, z in zip(base, (z0, z1))]
        poly = np.array([[u[0], vt[0]], [u[1], vt[1]], [u[1], vl[1]], [u[0], vl[0]]], np.float32)
        shade = colour * (1 + 0.15 * np.sin(z0 * 3.1)) if kind == "rail" else colour
        cv2.fillPoly(image, [np.round(poly * 4).astype(np.int32)], shade.tolist(), cv2.LINE_AA, shift=2)
        cv2.fillPoly(hidden, [np.round(poly * 4).astype(np.int32)], 1, shift=2)
        if kind == "rail" and int(z0 / 2.0) != int(z1 / 2.0):  # a post every 2 m
            post = np.array([[u[1] - 0.05 * cam.f / z1, vt[1]], [u[1] + 0.05 * cam.f / z1, vt[1]],
                             [u[1] + 0.05 * cam.f / z1, vb[1]], [u[1] - 0.05 * cam.f / z1, vb[1]]], np.float32)
            cv2.fillPoly(image, [np.round(post * 4).astype(np.int32)], (colour * 0.6).tolist(), cv2.LINE_AA, shift=2)
            cv2.fillPoly(hidden, [np.round(post * 4).astype(np.int32)], 1, shift=2)
        if kind == "wall":  # a lit top edge
            cv2.line(image, (int(u[0] * 4), int(vt[0] * 4)), (int(u[1] * 4), int(vt[1] * 4)), (colour * 1.3).clip(0, 255).tolist(),
                     max(1, int(0.04 * cam.f / z1)), cv2.LINE_AA, shift=2)


def _vehicle(rng, image, hidden, cam, road, x_centre: float, z: float):
    """A car or truck seen from behind (or its side, in the next lanes): body, windows, lights, wheels, shadow."""
    truck = rng.random() < 0.2
    w_m, h_m = (2.5, rng.uniform(2.8, 3.8)) if truck else (rng.uniform(1.6, 1.95), rng.uniform(1.3, 1.8))
    x = x_centre + road["c1"] * z + road["c2"] * z * z
    base = cam.hill * z * z
    u1, u2 = cam.u0 + cam.f * (x - w_m / 2) / z, cam.u0 + cam.f * (x + w_m / 2) / z
    vb, vt = cam.v0 + cam.f * (cam.h - base) / z, cam.v0 + cam.f * (cam.h - base - h_m) / z
    if u2 < 0 or u1 >= image.shape[1] or vb < 0:
        return
    # Shadow beneath, on the road
    cv2.ellipse(image, (int((u1 + u2) / 2), int(vb)), (int((u2 - u1) * 0.6), max(1, int((vb - vt) * 0.08))), 0, 0, 360,
                (image[min(int(vb), image.shape[0] - 1), int(np.clip((u1 + u2) / 2, 0, image.shape[1] - 1))] * 0.35).tolist(), -1)
    body = _colour(rng, rng.choice([[30, 30, 30], [200, 200, 200], [240, 240, 240], [120, 20, 20], [40, 60, 120],
                                    [110, 110, 115], [rng.uniform(0, 255)] * 3]), 30)
    width, height = u2 - u1, vb - vt
    roof = vt + (0.0 if truck else 0.05 * height)
    top = np.array([[u1 + 0.12 * width * (not truck), roof], [u2 - 0.12 * width * (not truck), roof],
                    [u2, vt + 0.45 * height], [u2, vb - 0.08 * height], [u1, vb - 0.08 * height], [u1, vt + 0.45 * height]])
    cv2.fillPoly(image, [np.round(top * 4).astype(np.int32)], body.tolist(), cv2.LINE_AA, shift=2)
    cv2.fillPoly(hidden, [np.round(top * 4).astype(np.int32)], 1, shift=2)
    if not truck:
        glass = np.array([[u1 + 0.18 * width, roof + 0.06 * height], [u2 - 0.18 * width, roof + 0.06 * height],
                          [u2 - 0.1 * width, vt + 0.42 * height], [u1 + 0.1 * width, vt + 0.42 * height]])
        cv2.fillPoly(image, [np.round(glass * 4).astype(np.int32)], _colour(rng, [45, 55, 65], 20).tolist(), cv2.LINE_AA, shift=2)
    lamp = _colour(rng, [190, 30, 30], 40).tolist()
    for a in (u1 + 0.03 * width, u2 - 0.2 * width):
        cv2.rectangle(image, (int(a), int(vt + 0.5 * height)), (int(a + 0.17 * width), int(vt + 0.62 * height)), lamp, -1)
    for a in (u1 + 0.05 * width, u2 - 0.23 * width):  # wheels
        cv2.rectangle(image, (int(a), int(vb - 0.12 * height)), (int(a + 0.18 * width), int(vb)), (18, 18, 18), -1)
        cv2.rectangle(hidden, (int(a), int(vb - 0.12 * height)), (int(a + 0.18 * width), int(vb)), 1, -1)
    cv2.rectangle(image, (int(u1 + 0.38 * width), int(vt + 0.68 * height)), (int(u2 - 0.38 * width), int(vt + 0.78 * height)),
                  (220, 220, 210), -1)  # plate


def render_scene(rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """(RGB uint8 WIDTHxHEIGHT, per lane line an (HEIGHT,) array of x per row (-1: not there), hidden mask uint8)."""
    cam, road = _Camera(rng), _road(rng)
    far = rng.uniform(50, 140)  # paint fades into the asphalt beyond this (worn, hazy, too thin)
    image, z, x = _ground(rng, cam, road, far)
    ground = np.isfinite(z)
    image = _sky_and_background(rng, image, ground)
    hidden = np.zeros(image.shape[:2], np.uint8)
    # Things along the road edges: barriers, guard rails, kerbs (none is a lane line).
    for side, edge in ((-1, road["left"] - road["shoulders"][0]), (1, road["right"] + road["shoulders"][1])):
        if rng.random() < 0.6:
            kind = rng.choice(["wall", "rail"])
            colour = _colour(rng, [150, 150, 145] if kind == "wall" else [175, 180, 185], 35)
            _side_wall(rng, image, hidden, cam, road, side, edge + side * rng.uniform(0, 0.5), rng.uniform(0.7, 1.1), colour, kind)
    cars = []
    for _ in range(int(rng.integers(0, 9))):
        lane = int(rng.integers(0, len(road["lines"]) - 1))
        a, b = road["lines"][lane]["x"], road["lines"][lane + 1]["x"]
        cars.append(((a + b) / 2 + rng.normal(0, 0.3), float(rng.uniform(4, 90))))
    for xc, zc in sorted(cars, key=lambda c: -c[1]):
        _vehicle(rng, image, hidden, cam, road, xc, zc)
    # Truth: x of every painted line per output row.
    rows = np.arange(HEIGHT) * SS + SS / 2
    zs = np.geomspace(0.5, Z_MAX, 4000)
    rz = cam.row_of(zs)
    monotone = np.concatenate([[True], np.diff(rz) < 0])
    end = int(np.argmin(monotone)) if not monotone.all() else len(zs)
    z_rows = np.interp(rows, rz[:end][::-1], zs[:end][::-1], left=np.inf, right=np.inf)
    z_rows[rows <= rz[:end].min()] = np.inf
    lines = []
    for line in road["lines"]:
        if not line["painted"]:
            continue
        zr = np.where(np.isfinite(z_rows), z_rows, 1.0)
        u = np.where(np.isfinite(z_rows), (cam.u0 + cam.f * (line["x"] + road["c1"] * zr + road["c2"] * zr ** 2) / zr) / SS, np.nan)
        ok = np.isfinite(u) & (z_rows <= far) & (u >= 0) & (u < WIDTH)
        lines.append(np.where(ok, u, -1.0).astype(np.float32))
    small = cv2.resize(np.clip(image, 0, 255).astype(np.uint8), (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
    hidden = cv2.resize(hidden, (WIDTH, HEIGHT), interpolation=cv2.INTER_NEAREST)
    small = _photometric(rng, small, cam)
    if rng.random() < 0.5:  # roll
        angle = rng.uniform(-3, 3)
        matrix = cv2.getRotationMatrix2D((WIDTH / 2, HEIGHT / 2), angle, 1.0)
        small = cv2.warpAffine(small, matrix, (WIDTH, HEIGHT), borderMode=cv2.BORDER_REFLECT)
        hidden = cv2.warpAffine(hidden, matrix, (WIDTH, HEIGHT), flags=cv2.INTER_NEAREST)
        lines = [_rotated(xs, matrix) for xs in lines]
    return small, lines, hidden


def _rotated(xs: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """A line's x per row after an image rotation (resampled per row)."""
    ok = xs >= 0
    if ok.sum() < 2:
        return np.full(HEIGHT, -1.0, np.float32)
    y = np.arange(HEIGHT, dtype=np.float32)[ok] + 0.5
    points = np.stack([xs[ok], y, np.ones_like(y)], 1) @ matrix.T
    order = np.argsort(points[:, 1])
    px, py = points[order, 0], points[order, 1]
    rows = np.arange(HEIGHT) + 0.5
    out = np.interp(rows, py, px, left=-1, right=-1)
    out[(rows < py.min()) | (rows > py.max()) | (out < 0) | (out >= WIDTH)] = -1
    return out.astype(np.float32)


def _photometric(rng, image: np.ndarray, cam: _Camera) -> np.ndarray:
    out = image.astype(np.float32)
    if rng.random() < 0.5:  # haze toward the horizon
        v0 = cam.v0 / SS
        rows = np.arange(HEIGHT, dtype=np.float32)[:, None, None]
        fog = np.exp(-np.clip(rows - v0, 0, None) / rng.uniform(10, 60)) * rng.uniform(0.2, 0.7)
        out = out * (1 - fog) + fog * _colour(rng, [200, 205, 210], 25)
    gamma = rng.uniform(0.6, 1.6)
    out = 255 * (np.clip(out, 0, 255) / 255) ** gamma
    out = out * rng.uniform(0.55, 1.35) + rng.uniform(-25, 25)
    out = out * rng.uniform(0.85, 1.15, 3)  # white balance
    grey = out.mean(2, keepdims=True)
    out = grey + (out - grey) * rng.uniform(0.3, 1.4)
    if rng.random() < 0.4:  # vignetting
        yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
        r = ((xx - WIDTH / 2) / WIDTH) ** 2 + ((yy - HEIGHT / 2) / HEIGHT) ** 2
        out *= (1 - rng.uniform(0.2, 0.8) * r)[..., None]
    if rng.random() < 0.25:  # the car's own hood at the bottom
        top = int(HEIGHT * rng.uniform(0.88, 0.97))
        out[top:] = _colour(rng, [60, 50, 45], 40) * (1 + 0.2 * _noise(rng, (HEIGHT - top, WIDTH), 20)[..., None])
    out = np.clip(out, 0, 255).astype(np.uint8)
    if rng.random() < 0.6:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, 1.4))
    if rng.random() < 0.2:  # motion blur, along the rows
        k = int(rng.integers(3, 8))
        out = cv2.filter2D(out, -1, np.ones((k, 1), np.float32) / k)
    out = np.clip(out.astype(np.float32) + rng.normal(0, rng.uniform(0, 8), out.shape), 0, 255).astype(np.uint8)
    _, encoded = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(35, 95))])
    return cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
