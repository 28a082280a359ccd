"""Lane lines as polylines, from a calibrated camera: bird's-eye view, paint ridges, one road model.

Painted lines are narrow, brighter than the asphalt around them, and parallel on the ground. So:
warp the frame to a top-down grid in metres (the camera's height, field of view and horizon are
known, as for any fleet camera), keep thin bright ridges (morphological top-hat across the road),
and find the road shape ``x = x_k + b*z + c*z^2`` (shared by all lines) that stacks the ridge
pixels into the sharpest peaks; each peak is a line. Type from how much of its length is painted
(solid or dashed), colour from the paint's blue against red and green (yellow or white). Output
points at TuSimple's rows: every 10 px from 20 px below the horizon, -2 where there is no line.

Example:
    >>> lanes = LaneDetector(LaneCamera())(frame_rgb)            # doctest: +SKIP
    >>> lanes[0].type, lanes[0].color, lanes[0].xs[:3]           # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["LaneCamera", "Lane", "LaneDetector", "VERSION", "tusimple_rows"]

VERSION = "bev-ridge-parabola/2"
BIN_M = 0.1
SOLID = 0.8  # share of half-metre steps painted; dashes (3 m of every 9, blurred by a metre) reach about 0.5


@dataclass(frozen=True)
class LaneCamera:
    hfov_deg: float = 60.0
    mount_m: float = 1.4
    horizon: float = 0.42  # share of the image height where the horizon lies


@dataclass(frozen=True)
class Lane:
    xs: list[float]  # pixel x per row of ``ys``; -2 where the line is not seen
    ys: list[int]
    type: str  # solid | dashed
    color: str  # white | yellow
    confidence: float  # share of the line's length with paint found (0-1)


def tusimple_rows(height: int, horizon: float) -> np.ndarray:
    return np.arange(int(height * horizon) + 20, height, 10)


class LaneDetector:
    """Callable: RGB frame -> list of Lane, left to right."""

    name = VERSION

    def __init__(self, camera: LaneCamera = LaneCamera(), x_range_m: float = 12.0, z_range_m: tuple[float, float] = (4.0, 60.0),
                 min_support_m: float = 4.0):
        self.camera, self.x_range, self.z_range, self.min_support_m = camera, x_range_m, z_range_m, min_support_m
        self._maps: dict[tuple[int, int], tuple] = {}
        self.xs_m = np.arange(-x_range_m, x_range_m, 0.05, dtype=np.float32)
        self.zs_m = np.arange(*z_range_m, 0.2, dtype=np.float32)
        self.curvatures = np.linspace(-2e-3, 2e-3, 41)
        self.slopes = np.linspace(-0.15, 0.15, 31)

    def _geometry(self, width: int, height: int):
        key = (width, height)
        if key not in self._maps:
            focal = width / (2 * np.tan(np.radians(self.camera.hfov_deg) / 2))
            horizon = height * self.camera.horizon
            x, z = np.meshgrid(self.xs_m, self.zs_m)
            map_x = (width / 2 + focal * x / z).astype(np.float32)
            map_y = (horizon + focal * self.camera.mount_m / z).astype(np.float32)
            self._maps[key] = (map_x, map_y, focal, horizon)
        return self._maps[key]

    def __call__(self, frame: np.ndarray) -> list[Lane]:
        height, width = frame.shape[:2]
        map_x, map_y, focal, horizon = self._geometry(width, height)
        bev = cv2.remap(frame, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        inside = cv2.remap(np.ones((height, width), np.uint8), map_x, map_y, cv2.INTER_NEAREST) > 0
        # A 3x3 median first: rain streaks and noise one pixel wide go, paint (wider) stays.
        grey = cv2.remap(cv2.medianBlur(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), 3), map_x, map_y, cv2.INTER_LINEAR)
        # Lines run along the road: averaging a metre along it keeps them and halves the noise.
        grey = cv2.blur(grey, (1, 5))
        # Ridges narrower than half a metre (paint is about 0.15 m); kerbs and cars are wider.
        ridge = cv2.morphologyEx(grey, cv2.MORPH_TOPHAT, np.ones((1, 9), np.uint8)).astype(np.float32)
        ridge[~inside] = 0
        values = ridge[inside]
        noise = 1.4826 * np.median(np.abs(values - np.median(values))) if values.size else 0.0
        zi, xi = np.nonzero(ridge > max(8.0, 5 * noise))
        if len(zi) < 20:
            return []
        z, x, weight = self.zs_m[zi], self.xs_m[xi], ridge[zi, xi]
        slope, curvature = self._road_shape(z, x, weight)
        offset = x - slope * z - curvature * z * z
        members = []
        for centre in self._peaks(offset):
            near = np.abs(offset - centre) < 0.15
            # Upright things (cars, people) smear along the camera's rays in a top-down view: x/z
            # stays constant along them, while a line on the ground sweeps across the rays.
            if np.unique(np.round(z[near])).size >= self.min_support_m and np.std(x[near] / z[near]) > 0.01:
                members.append(near)
        if not members:
            return []
        centres, slope, curvature = self._refine(z, x, weight, members)
        lanes = []
        for centre, near in zip(centres, members):
            zs = z[near]
            # Seen to the end of the grid: it goes on to where paint is too thin to see (about 90 m).
            z_far = 90.0 if zs.max() > self.z_range[1] - 10 else float(zs.max() + 10)
            lanes.append(self._lane(centre, slope, curvature, zs, bev[zi[near], xi[near]], z_far, focal, horizon, width, height))
        return sorted(lanes, key=lambda lane: lane.xs[-1] if lane.xs[-1] != -2 else max(lane.xs))

    def _road_shape(self, z: np.ndarray, x: np.ndarray, weight: np.ndarray) -> tuple[float, float]:
        """(slope, curvature) whose de-curved offsets form the sharpest histogram (Hough-like search)."""
        bins = int(2 * self.x_range / BIN_M) + 1
        best, best_score = (0.0, 0.0), -1.0
        zz = z * z
        for slope in self.slopes:
            offsets = x[None] - slope * z[None] - self.curvatures[:, None] * zz[None]  # (curvatures, points)
            index = ((offsets + self.x_range) / BIN_M).astype(np.int64)
            inside = (index >= 0) & (index < bins)  # pushed out of view: not stacked at the edge
            flat = np.clip(index, 0, bins - 1) + np.arange(len(self.curvatures))[:, None] * bins
            hist = np.bincount(flat.ravel(), (weight * inside).ravel(), len(self.curvatures) * bins)
            score = (hist.reshape(len(self.curvatures), bins) ** 2).sum(1)
            k = int(score.argmax())
            if score[k] > best_score:
                best, best_score = (float(slope), float(self.curvatures[k])), float(score[k])
        return best

    @staticmethod
    def _refine(z, x, weight, members) -> tuple[np.ndarray, float, float]:
        """Weighted least squares for x = x_k + b*z + c*z^2 over every line's pixels at once."""
        rows = np.concatenate([np.flatnonzero(m) for m in members])
        which = np.concatenate([np.full(int(m.sum()), k) for k, m in enumerate(members)])
        design = np.zeros((len(rows), len(members) + 2))
        design[np.arange(len(rows)), which] = 1.0
        design[:, -2], design[:, -1] = z[rows], z[rows] ** 2
        root = np.sqrt(weight[rows])
        solution, *_ = np.linalg.lstsq(design * root[:, None], x[rows] * root, rcond=None)
        return solution[:-2], float(solution[-2]), float(solution[-1])

    def _peaks(self, offset: np.ndarray) -> list[float]:
        bins = int(2 * self.x_range / BIN_M) + 1
        index = ((offset + self.x_range) / BIN_M).astype(np.int64)
        hist = np.bincount(index[(index >= 0) & (index < bins)], minlength=bins).astype(np.float32)
        hist = np.convolve(hist, [1, 2, 3, 2, 1], "same")
        peaks = []
        for i in np.argsort(-hist):
            if hist[i] < max(0.15 * hist.max(), 30):
                break
            if all(abs(i - j) * BIN_M >= 1.5 for j in peaks):  # lines are at least 1.5 m apart
                peaks.append(int(i))
        return [i * BIN_M - self.x_range + BIN_M / 2 for i in peaks]

    def _lane(self, centre, slope, curvature, zs, paint_rgb, z_far, focal, horizon, width, height) -> Lane:
        rows = tusimple_rows(height, self.camera.horizon)
        z_rows = focal * self.camera.mount_m / np.maximum(rows - horizon, 1e-3)
        x_world = centre + slope * z_rows + curvature * z_rows ** 2
        xs = width / 2 + focal * x_world / z_rows
        valid = (z_rows <= z_far) & (xs >= 0) & (xs < width)
        near = np.round(zs[zs < 40] * 2) / 2  # half-metre steps; far away, dashes blur together: judge nearby
        span = np.arange(max(near.min(), self.z_range[0]), near.max() + 0.5, 0.5) if near.size else np.array([])
        painted = np.isin(span, near).mean() if span.size > 8 else 1.0
        rgb = paint_rgb.astype(np.float32).mean(0)
        yellow = rgb[2] < 0.7 * (rgb[0] + rgb[1]) / 2
        return Lane([round(float(x), 1) if ok else -2 for x, ok in zip(xs, valid)], [int(r) for r in rows],
                    "solid" if painted >= SOLID else "dashed", "yellow" if yellow else "white", round(float(painted), 3))
