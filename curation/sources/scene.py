"""Procedural road scenes in perspective, with exact ground truth per frame.

A pinhole camera 1.4 m above a road that curves (X = c * Z^2); lane lines, vehicles with plates,
pedestrians with real faces, signs and traffic lights live in world metres and are projected per
frame as the ego vehicle drives ``s`` metres. Sprites are pasted far to near; an id buffer gives
each object's visible share, so ground truth knows what is occluded or cut off by the frame edge.

Example:
    >>> scene = Scene.random(np.random.default_rng(0), Camera(640, 360), style="eu", face_crops=None)  # doctest: +SKIP
    >>> frame, objects, lanes = scene.render(t=0.0, s=0.0)                                              # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from curation.sources.textures import (LIGHT_STATES, PLATE_SIZE_M, SIGN_TYPES, light_sprite, pedestrian_sprite,
                                       plate_sprite, plate_text, sign_sprite, vehicle_sprite)

__all__ = ["Camera", "Conditions", "Scene"]

LANE_WIDTH = 3.5
FACE_HEIGHT_M = 0.21  # chin to brow of an adult face
Z_NEAR, Z_FAR = 1.2, 140.0
LIGHT_CYCLE = {"green": 6.0, "yellow": 1.5, "red": 5.0}


@dataclass(frozen=True)
class Camera:
    width: int = 1280
    height: int = 720
    hfov_deg: float = 60.0
    mount_m: float = 1.4
    horizon: float = 0.42  # share of the height where the horizon sits

    @property
    def focal(self) -> float:
        return self.width / (2 * np.tan(np.radians(self.hfov_deg) / 2))

    def to_pixels(self, x_m: np.ndarray, y_m: np.ndarray, z_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World (right, up, forward) metres to pixel coordinates."""
        f = self.focal
        return self.width / 2 + f * x_m / z_m, self.height * self.horizon + f * (self.mount_m - y_m) / z_m


@dataclass(frozen=True)
class Conditions:
    time_of_day: str = "day"  # day | dusk | night
    weather: str = "clear"  # clear | rain | fog

    @classmethod
    def random(cls, rng: np.random.Generator) -> "Conditions":
        return cls(str(rng.choice(["day", "day", "dusk", "night"])), str(rng.choice(["clear", "clear", "rain", "fog"])))


@dataclass
class Actor:
    kind: str
    track: int
    x_m: float  # lateral offset from the road centre line at the ego lane
    zw: float  # world position along the road
    base_m: float  # height of the sprite's bottom above ground
    size_m: tuple[float, float]
    sprite: np.ndarray
    attrs: dict = field(default_factory=dict)
    vx: float = 0.0
    vz: float = 0.0
    plate_box: tuple[int, int, int, int] | None = None  # in sprite pixels
    face: int | None = None  # index into the face crops
    face_track: int | None = None
    light_phase: float = 0.0


def _paste(frame: np.ndarray, sprite: np.ndarray, x1: float, y1: float, x2: float, y2: float) -> tuple[int, int, int, int] | None:
    """Alpha-blend sprite scaled to the box; returns the clipped integer box drawn, or None."""
    h, w = frame.shape[:2]
    bx1, by1, bx2, by2 = int(round(x1)), int(round(y1)), int(round(x2)), int(round(y2))
    bw, bh = bx2 - bx1, by2 - by1
    if bw < 1 or bh < 1 or bx2 <= 0 or by2 <= 0 or bx1 >= w or by1 >= h:
        return None
    cx1, cy1, cx2, cy2 = max(bx1, 0), max(by1, 0), min(bx2, w), min(by2, h)
    # Scale only the visible part of the sprite: near objects can be far larger than the frame.
    sx, sy = sprite.shape[1] / bw, sprite.shape[0] / bh
    src = sprite[int((cy1 - by1) * sy) : max(int(np.ceil((cy2 - by1) * sy)), int((cy1 - by1) * sy) + 1),
                 int((cx1 - bx1) * sx) : max(int(np.ceil((cx2 - bx1) * sx)), int((cx1 - bx1) * sx) + 1)]
    interpolation = cv2.INTER_AREA if sx > 1 else cv2.INTER_LINEAR
    patch = cv2.resize(src, (cx2 - cx1, cy2 - cy1), interpolation=interpolation)
    alpha = patch[..., 3:4].astype(np.float32) / 255.0
    region = frame[cy1:cy2, cx1:cx2]
    region[:] = (patch[..., :3] * alpha + region * (1.0 - alpha)).astype(np.uint8)
    return cx1, cy1, cx2, cy2


def _oval_alpha(size: int) -> np.ndarray:
    mask = np.zeros((size, size), np.float32)
    cv2.ellipse(mask, (size // 2, size // 2), (int(size * 0.36), int(size * 0.46)), 0, 0, 360, 1.0, -1)
    return cv2.GaussianBlur(mask, (0, 0), size * 0.04)


class Scene:
    """One camera's view of one drive: road, lane lines and actors, rendered at any (t, s)."""

    def __init__(self, camera: Camera, conditions: Conditions, curvature: float, lanes: list[dict], ego_lane: int,
                 actors: list[Actor], faces: tuple[np.ndarray, np.ndarray] | None, direction: int = 1, seed: int = 0):
        self.camera, self.conditions, self.curvature = camera, conditions, curvature
        self.lanes, self.ego_lane, self.actors, self.direction = lanes, ego_lane, actors, direction
        self.faces = faces
        rng = np.random.default_rng(seed)
        self._base = self._background()
        self._noise = rng.normal(0, 9 if conditions.time_of_day == "night" else 3, (camera.height + 64, camera.width + 64, 1)).astype(np.int16)
        self._rain = self._rain_layer(rng) if conditions.weather == "rain" else None
        self._fog = self._fog_weights() if conditions.weather == "fog" else None

    # ---- construction -----------------------------------------------------------------------
    @classmethod
    def random(cls, rng: np.random.Generator, camera: Camera, style: str, faces, direction: int = 1,
               conditions: Conditions | None = None, route_m: float = 100.0, curvature: float | None = None,
               pedestrians: int = 5, vehicles: int = 4, max_face_px: float = 160.0) -> "Scene":
        conditions = conditions or Conditions.random(rng)
        curvature = float(rng.uniform(-1.2e-3, 1.2e-3)) if curvature is None else curvature
        n_lanes = int(rng.integers(2, 5))
        ego_lane = n_lanes - 1 if rng.random() < 0.5 else int(rng.integers(0, n_lanes))  # kerb lane is common
        lanes = []
        for k in range(n_lanes + 1):
            outer = k in (0, n_lanes)
            centre = k == 0 and style in ("cn", "us")
            colour = "yellow" if centre or (not outer and rng.random() < 0.12) else "white"
            kind = "solid" if outer and not (k == n_lanes and rng.random() < 0.2) else "dashed"
            lanes.append({"id": k, "x_m": (k - ego_lane) * LANE_WIDTH - LANE_WIDTH / 2, "type": kind, "color": colour})
        left_edge, right_edge = lanes[0]["x_m"], lanes[-1]["x_m"]
        span = route_m + 90.0
        actors: list[Actor] = []
        track = iter(range(1, 10_000))
        plate_m = PLATE_SIZE_M[style]
        for _ in range(vehicles):
            lane = int(rng.integers(0, n_lanes))
            text = plate_text(style, rng)
            colour = tuple(int(c) for c in rng.integers(20, 235, 3))
            truck = rng.random() < 0.2
            size = (2.4, 2.8) if truck else (1.8, float(rng.uniform(1.4, 1.6)))
            sprite, plate_box = vehicle_sprite(colour, plate_sprite(style, text), size, plate_m)
            actors.append(Actor("vehicle", next(track), left_edge + (lane + 0.5) * LANE_WIDTH, float(rng.uniform(7, span)), 0.0,
                                size, sprite, {"plate": text, "type": "truck" if truck else "car"},
                                vz=float(rng.uniform(-2, 4)) * direction, plate_box=plate_box))
        for _ in range(pedestrians):
            # Face heights log-uniform over 10-160 px at mid-drive (SIMULATOR.md): people stand
            # near the camera's axis, where a real camera sees large faces (crossings, kerbs).
            face_px = float(np.exp(rng.uniform(np.log(10), np.log(max(max_face_px, 11.0)))))
            z_mid = camera.focal * FACE_HEIGHT_M / face_px
            reach = 0.8 * z_mid * (camera.width / 2) / camera.focal
            x = float(rng.uniform(-reach, reach))
            skin = tuple(int(c) for c in rng.integers(90, 230, 3))
            sprite = pedestrian_sprite(tuple(int(c) for c in rng.integers(0, 255, 3)), tuple(int(c) for c in rng.integers(0, 120, 3)), skin)
            facing = faces is not None and rng.random() < 0.85
            meet = route_m * float(rng.uniform(0.1, 0.9))  # where along the drive that face size is reached
            actors.append(Actor("pedestrian", next(track), x, z_mid + direction * meet,
                                0.0, (0.55, 1.75), sprite, {"facing_camera": bool(facing)}, vx=float(rng.uniform(-0.8, 0.8)),
                                face=int(rng.integers(0, len(faces[0]))) if facing else None,
                                face_track=next(track) if facing else None))
        for zw in np.arange(rng.uniform(15, 40), span, rng.uniform(35, 60)):
            kind = str(rng.choice(SIGN_TYPES[style]))
            actors.append(Actor("traffic_sign", next(track), right_edge + 1.2, float(zw), 2.0, (0.75, 0.75),
                                sign_sprite(style, kind), {"sign": kind}))
        if direction > 0 or rng.random() < 0.5:
            for zw in np.arange(rng.uniform(25, 60), span, rng.uniform(60, 90)):
                actors.append(Actor("traffic_light", next(track), float(rng.uniform(-1, 3)), float(zw), 5.0, (0.35, 1.05),
                                    light_sprite("off"), {}, light_phase=float(rng.uniform(0, sum(LIGHT_CYCLE.values())))))
        return cls(camera, conditions, curvature, lanes, ego_lane, actors, faces, direction, seed=int(rng.integers(2**31)))

    # ---- static layers ----------------------------------------------------------------------
    def _road_x(self, z: np.ndarray) -> np.ndarray:
        return self.curvature * z * z

    def _background(self) -> np.ndarray:
        cam = self.camera
        h, w, horizon = cam.height, cam.width, int(cam.height * cam.horizon)
        frame = np.empty((h, w, 3), np.uint8)
        sky = np.linspace(0, 1, horizon)[:, None]
        frame[:horizon] = (np.array([120, 170, 235]) * (1 - sky) + np.array([200, 215, 230]) * sky)[:, None, :].astype(np.uint8)
        frame[horizon:] = (96, 120, 80)
        z = np.geomspace(Z_NEAR, 400, 80)
        for lo, hi, colour in ((self.lanes[0]["x_m"] - 4.5, self.lanes[-1]["x_m"] + 4.5, (150, 150, 145)),
                               (self.lanes[0]["x_m"] - 0.4, self.lanes[-1]["x_m"] + 0.4, (78, 78, 82))):
            xl, y = cam.to_pixels(self._road_x(z) + lo, 0.0, z)
            xr, _ = cam.to_pixels(self._road_x(z) + hi, 0.0, z)
            polygon = np.concatenate([np.stack([xl, y], 1), np.stack([xr, y], 1)[::-1]])
            cv2.fillPoly(frame, [np.round(polygon).astype(np.int32)], colour, cv2.LINE_AA)
        return frame

    def _rain_layer(self, rng) -> np.ndarray:
        layer = np.zeros((self.camera.height, self.camera.width), np.uint8)
        for _ in range(400):
            x, y = int(rng.integers(0, self.camera.width)), int(rng.integers(0, self.camera.height))
            cv2.line(layer, (x, y), (x + 4, y + 22), 90, 1, cv2.LINE_AA)
        return layer

    def _fog_weights(self) -> np.ndarray:
        """Distance of the ground (or sky) seen by each row; objects override it with their own."""
        h = self.camera.height
        horizon = h * self.camera.horizon
        rows = np.arange(h, dtype=np.float32)
        return np.where(rows > horizon, self.camera.focal * self.camera.mount_m / np.maximum(rows - horizon, 1), 400).astype(np.float32)

    # ---- per frame --------------------------------------------------------------------------
    def light_state(self, actor: Actor, t: float) -> str:
        phase = (t + actor.light_phase) % sum(LIGHT_CYCLE.values())
        for state, duration in LIGHT_CYCLE.items():
            if phase < duration:
                return state
            phase -= duration
        return "red"

    def _lane_lines(self, frame: np.ndarray, s: float) -> list[dict]:
        cam = self.camera
        polygons, truth = {}, []
        horizon = cam.height * cam.horizon
        rows = np.arange(int(horizon) + 20, cam.height, 10, dtype=np.float64)  # TuSimple-like h_samples
        z_rows = cam.focal * cam.mount_m / (rows - horizon)
        for lane in self.lanes:
            colour = (235, 235, 235) if lane["color"] == "white" else (230, 190, 40)
            if lane["type"] == "dashed":
                phase = (self.direction * s) % 9.0
                starts = np.arange(-phase, 90, 9.0)
                segments = [np.linspace(max(a, 2.0), a + 3.0, 4) for a in starts if a + 3.0 > 2.0]
            else:
                segments = [np.geomspace(2.0, 90, 40)]
            quads = []
            for z in segments:
                x = self._road_x(z) + lane["x_m"]
                xl, y = cam.to_pixels(x - 0.08, 0.0, z)
                xr, _ = cam.to_pixels(x + 0.08, 0.0, z)
                quads.append(np.round(np.concatenate([np.stack([xl, y], 1), np.stack([xr, y], 1)[::-1]]) * 4).astype(np.int32))
            polygons.setdefault(colour, []).extend(quads)
            visible = (z_rows >= 2.0) & (z_rows <= 90)
            xs, _ = cam.to_pixels(self._road_x(z_rows) + lane["x_m"], 0.0, z_rows)
            inside = visible & (xs >= 0) & (xs < cam.width)
            truth.append({"id": lane["id"], "type": lane["type"], "color": lane["color"],
                          "x": [round(float(x), 1) if ok else -2 for x, ok in zip(xs, inside)],
                          "y": [int(r) for r in rows]})
        for colour, quads in polygons.items():
            cv2.fillPoly(frame, quads, colour, cv2.LINE_AA, shift=2)
        return truth

    def render(self, t: float, s: float) -> tuple[np.ndarray, list[dict], list[dict]]:
        """Frame (RGB), objects [{class, box, track, visible, attrs}] and lane lines at time t, distance s."""
        cam = self.camera
        frame = self._base.copy()
        lanes = self._lane_lines(frame, s)
        ids = np.zeros((cam.height, cam.width), np.int16)
        placed = []
        depth = [(a.zw - self.direction * s + a.vz * t, a) for a in self.actors]
        for z, actor in sorted(depth, key=lambda item: -item[0]):
            if not Z_NEAR < z < Z_FAR:
                continue
            x_centre = self._road_x(z) + actor.x_m + actor.vx * t
            w_m, h_m = actor.size_m
            x1, y2 = cam.to_pixels(x_centre - w_m / 2, actor.base_m, z)
            x2, y1 = cam.to_pixels(x_centre + w_m / 2, actor.base_m + h_m, z)
            sprite, attrs = actor.sprite, dict(actor.attrs)
            if actor.kind == "traffic_light":
                attrs["state"] = self.light_state(actor, t)
                sprite = light_sprite(attrs["state"])
                px, _ = cam.to_pixels(x_centre, 0, z)
                _paste(frame, np.full((2, 2, 4), (40, 40, 40, 255), np.uint8), px - 1.5, y2, px + 1.5, y2 + (y2 - y1) * 0.4)
            if actor.kind == "traffic_sign":
                _, ground = cam.to_pixels(x_centre, 0.0, z)
                _paste(frame, np.full((2, 2, 4), (90, 90, 90, 255), np.uint8), (x1 + x2) / 2 - 1, y2, (x1 + x2) / 2 + 1, ground)
            drawn = _paste(frame, sprite, x1, y1, x2, y2)
            if drawn is None:
                continue
            index = len(placed) + 1
            ids[drawn[1] : drawn[3], drawn[0] : drawn[2]] = index
            placed.append((actor.kind, actor.track, (x1, y1, x2, y2), attrs, index, z))
            if actor.plate_box is not None:
                sx, sy = (x2 - x1) / sprite.shape[1], (y2 - y1) / sprite.shape[0]
                px1, py1, px2, py2 = actor.plate_box
                plate = (x1 + px1 * sx, y1 + py1 * sy, x1 + px2 * sx, y1 + py2 * sy)
                index = len(placed) + 1
                box = tuple(int(round(v)) for v in plate)
                ids[max(box[1], 0) : max(box[3], 0), max(box[0], 0) : max(box[2], 0)] = index
                placed.append(("plate", actor.track, plate, {"text": actor.attrs["plate"]}, index, z))
            if actor.face is not None:
                face = self._paste_face(frame, actor, x1, y1, x2, y2)
                if face is not None:
                    index = len(placed) + 1
                    box = tuple(int(round(v)) for v in face)
                    ids[max(box[1], 0) : max(box[3], 0), max(box[0], 0) : max(box[2], 0)] = index
                    placed.append(("face", actor.face_track, face, {"identity": int(actor.face)}, index, z))
        objects = []
        for kind, track, (x1, y1, x2, y2), attrs, index, _ in placed:
            area = max((x2 - x1) * (y2 - y1), 1e-6)
            cx1, cy1, cx2, cy2 = max(int(round(x1)), 0), max(int(round(y1)), 0), min(int(round(x2)), cam.width), min(int(round(y2)), cam.height)
            if cx2 <= cx1 or cy2 <= cy1:
                continue
            visible = float((ids[cy1:cy2, cx1:cx2] == index).sum()) / area
            objects.append({"class": kind, "track": track, "visible": round(min(visible, 1.0), 3),
                            "box": [round(max(x1, 0), 1), round(max(y1, 0), 1), round(min(x2, cam.width), 1), round(min(y2, cam.height), 1)],
                            "attrs": attrs})
        depth = None
        if self._fog is not None:
            by_index = np.array([0.0] + [entry[-1] for entry in placed], np.float32)
            depth = np.where(ids > 0, by_index[ids], self._fog[:, None])
        return self._weather(frame, depth), objects, lanes

    def _paste_face(self, frame, actor: Actor, x1, y1, x2, y2):
        crops, boxes = self.faces
        crop, (fx1, fy1, fx2, fy2) = crops[actor.face], boxes[actor.face]
        face_px = (y2 - y1) * FACE_HEIGHT_M / actor.size_m[1]
        scale = face_px / (fy2 - fy1)
        side = crop.shape[0] * scale
        head_cx, head_cy = (x1 + x2) / 2, y1 + (y2 - y1) * 0.075
        left = head_cx - ((fx1 + fx2) / 2) * scale
        top = head_cy - ((fy1 + fy2) / 2) * scale
        sprite = np.dstack([crop, (_oval_alpha(crop.shape[0]) * 255).astype(np.uint8)])
        if _paste(frame, sprite, left, top, left + side, top + side) is None:
            return None
        return (left + fx1 * scale, top + fy1 * scale, left + fx2 * scale, top + fy2 * scale)

    def _weather(self, frame: np.ndarray, depth: np.ndarray | None) -> np.ndarray:
        tod = self.conditions.time_of_day
        if tod == "dusk":
            frame = cv2.convertScaleAbs(frame, alpha=0.62, beta=0)
            frame[..., 2] = cv2.convertScaleAbs(frame[..., 2], alpha=0.8)
        elif tod == "night":
            frame = cv2.convertScaleAbs(frame, alpha=0.28, beta=4)
        if depth is not None:
            fog = ((1 - np.exp(-depth / 70.0)) * 0.85)[..., None]
            frame = (frame * (1 - fog) + 185 * fog).astype(np.uint8)
        if self._rain is not None:
            frame = cv2.add(frame, cv2.merge([self._rain] * 3))
        offset = np.random.default_rng(int(frame[::97, ::89].sum())).integers(0, 64, 2)
        noise = self._noise[offset[0] : offset[0] + frame.shape[0], offset[1] : offset[1] + frame.shape[1]]
        return np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)
