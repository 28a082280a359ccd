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

__all__ = ["LaneCamera", "Lane", "LaneDetector", "VERSION", "tusimple_rows", "vanishing_point"]

VERSION = "bev-ridge-parabola/3"
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


def vanishing_point(rgb: np.ndarray, prior: float = 0.42, tolerance: float = 0.2) -> tuple[float, float]:
    """(x, y) where the painted lines meet, voted by their straight segments (Hough on bright
    ridges): the row where segments leaning left and leaning right cross at one place. The prior
    (image centre, ``prior`` of the height) when either side has no segment.

    For footage from unknown cameras: a TuSimple camera sees the horizon at a third of the height,
    a Udacity dashcam at 57 %, and the top-down warp is right only with the horizon right.
    """
    h, w = rgb.shape[:2]
    fallback = (w / 2, h * prior)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    ridge = cv2.morphologyEx(grey, cv2.MORPH_TOPHAT, np.ones((1, max(3, int(w * 0.02)) | 1), np.uint8))
    ridge[: int(h * max(prior - tolerance, 0.05))] = 0  # above the highest horizon allowed: no road
    segments = cv2.HoughLinesP((ridge > 25).astype(np.uint8), 1, np.pi / 180, threshold=int(h * 0.03),
                               minLineLength=int(h * 0.04), maxLineGap=int(h * 0.01))
    if segments is None:
        return fallback
    s = segments[:, 0].astype(np.float64)
    dx, dy = s[:, 2] - s[:, 0], s[:, 3] - s[:, 1]
    length = np.hypot(dx, dy)
    angle = np.degrees(np.arctan2(np.abs(dy), np.abs(dx)))
    keep = (angle > 15) & (angle < 80)  # lane lines in perspective: neither flat nor upright
    s, dx, dy, length = s[keep], dx[keep], dy[keep], length[keep]
    lean = np.sign(dx * dy)
    if min((lean > 0).sum(), (lean < 0).sum()) < 1:
        return fallback
    rows = np.arange(int(h * max(prior - tolerance, 0.05)), int(h * min(prior + tolerance, 0.95)), 2)
    cross = s[None, :, 0] + (rows[:, None] - s[None, :, 1]) * (dx / dy)[None]  # where each segment's line meets each row
    width_bin = w * 0.01
    bins = int(3 * w / width_bin) + 1
    index = np.clip((cross + w) / width_bin, 0, bins - 1).astype(np.int64)
    best, where = -1.0, fallback
    top, middle = np.minimum(s[:, 1], s[:, 3]), (s[:, 1] + s[:, 3]) / 2
    for row, at in zip(rows, index):
        # Paint lies below the horizon, and the nearer (lower) a segment the surer it is paint.
        weight = np.where(top > row + 0.02 * h, length * (middle - row) / (h - row), 0.0)
        votes = [np.convolve(np.bincount(at[side], weight[side], bins), np.ones(3), "same") for side in (lean > 0, lean < 0)]
        score = votes[0] * votes[1]  # both sides must pass there
        k = int(score.argmax())
        if score[k] > best:
            best, where = float(score[k]), ((k + 0.5) * width_bin - w, float(row))
    return where if 0 <= where[0] < w else fallback


class LaneDetector:
    """Callable: RGB frame -> list of Lane, left to right."""

    name = VERSION

    def __init__(self, camera: LaneCamera = LaneCamera(), x_range_m: float = 12.0, z_range_m: tuple[float, float] = (4.0, 60.0),
                 min_support_m: float = 4.0, auto: bool = False):
        self.camera, self.x_range, self.z_range, self.min_support_m, self.auto = camera, x_range_m, z_range_m, min_support_m, auto
        self._maps: dict[tuple[int, int], tuple] = {}
        self.xs_m = np.arange(-x_range_m, x_range_m, 0.05, dtype=np.float32)
        self.zs_m = np.arange(*z_range_m, 0.2, dtype=np.float32)
        self.curvatures = np.linspace(-2e-3, 2e-3, 41)
        self.slopes = np.linspace(-0.15, 0.15, 31)

    @classmethod
    def from_params(cls, lanes) -> "LaneDetector":
        """From params.yaml's ``label.lanes`` (LaneParams)."""
        return cls(LaneCamera(lanes.hfov_deg, lanes.mount_m, lanes.horizon), auto=lanes.auto_horizon)

    def _geometry(self, width: int, height: int, centre: float, horizon: float):
        key = (width, height, round(centre), round(horizon))
        if key not in self._maps:
            if len(self._maps) > 64:
                self._maps.clear()
            focal = width / (2 * np.tan(np.radians(self.camera.hfov_deg) / 2))
            x, z = np.meshgrid(self.xs_m, self.zs_m)
            map_x = (round(centre) + focal * x / z).astype(np.float32)
            map_y = (round(horizon) + focal * self.camera.mount_m / z).astype(np.float32)
            self._maps[key] = (map_x, map_y, focal)
        return self._maps[key]

    def vanishing(self, frame: np.ndarray) -> tuple[float, float]:
        """Where the lines meet: estimated (``auto``) or the calibrated camera's centre and horizon."""
        height, width = frame.shape[:2]
        return vanishing_point(frame, self.camera.horizon) if self.auto else (width / 2, height * self.camera.horizon)

    def __call__(self, frame: np.ndarray, occluders: np.ndarray | None = None, vanishing: tuple[float, float] | None = None) -> list[Lane]:
        """Lanes of one RGB frame. ``occluders``: (N, 4) boxes of vehicles and people, whose edges are no paint;
        ``vanishing``: from :meth:`vanishing` when the caller has it already."""
        height, width = frame.shape[:2]
        u0, v0 = vanishing or self.vanishing(frame)
        u0, v0 = float(round(u0)), float(round(v0))
        map_x, map_y, focal = self._geometry(width, height, u0, v0)
        bev = cv2.remap(frame, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        visible = np.ones((height, width), np.uint8)
        for x1, y1, x2, y2 in ([] if occluders is None else np.asarray(occluders, np.float64).reshape(-1, 4)):
            visible[max(int(y1), 0) : max(int(np.ceil(y2)), 0), max(int(x1), 0) : max(int(np.ceil(x2)), 0)] = 0
        inside = cv2.remap(visible, map_x, map_y, cv2.INTER_NEAREST) > 0
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
        centres, slopes, curvature = self._refine(z, x, weight, members)
        if self.auto:
            # With an estimated horizon each line keeps its own slope: gather its pixels again along
            # that slope (the shared shape cut a fanned-out line short) and fit once more.
            regathered = [np.abs(x - (c + b * z + curvature * z * z)) < 0.15 + 0.004 * z for c, b in zip(centres, slopes)]
            if all(m.sum() >= 20 for m in regathered):
                members = regathered
                centres, slopes, curvature = self._refine(z, x, weight, members)
        lanes = []
        for centre, slope, near in zip(centres, slopes, members):
            zs = z[near]
            # Seen to the end of the grid: it goes on to where paint is too thin to see (about 90 m).
            z_far = 90.0 if zs.max() > self.z_range[1] - 10 else float(zs.max() + 10)
            lane = self._lane(centre, slope, curvature, zs, bev[zi[near], xi[near]], z_far, focal, u0, v0, width, height)
            if self.auto:  # an estimated horizon is a few pixels off: fit the line where it was seen, in the image
                lane = self._image_fit(lane, map_x[zi[near], xi[near]], map_y[zi[near], xi[near]], weight[near], width, height,
                                       curved=abs(curvature) > 3e-4)
            lanes.append(lane)
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
    def _refine(z, x, weight, members, stiffness: float = 0.2) -> tuple[np.ndarray, np.ndarray, float]:
        """Weighted least squares for x = x_k + b_k*z + c*z^2 over every line's pixels at once: one
        curvature, and a slope per line held toward the shared one (a vanishing point a little off
        fans the lines out; a short dash alone would tilt freely)."""
        k = len(members)
        rows = np.concatenate([np.flatnonzero(m) for m in members])
        which = np.concatenate([np.full(int(m.sum()), n) for n, m in enumerate(members)])
        design = np.zeros((len(rows), 2 * k + 2))
        design[np.arange(len(rows)), which] = 1.0
        design[np.arange(len(rows)), k + which] = z[rows]
        design[:, -2], design[:, -1] = z[rows], z[rows] ** 2
        root = np.sqrt(weight[rows])
        # Each line's slope deviation costs as much as a share of the average line's slope evidence.
        evidence = np.bincount(which, weight[rows] * z[rows] ** 2, k)
        penalty = np.zeros((k, 2 * k + 2))
        penalty[np.arange(k), k + np.arange(k)] = np.sqrt(stiffness * evidence.mean())
        solution, *_ = np.linalg.lstsq(np.vstack([design * root[:, None], penalty]), np.r_[x[rows] * root, np.zeros(k)], rcond=None)
        return solution[:k], solution[k : 2 * k] + solution[-2], float(solution[-1])

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

    @staticmethod
    def _image_fit(lane: Lane, u: np.ndarray, v: np.ndarray, weight: np.ndarray, width: int, height: int, curved: bool) -> Lane:
        """The lane's points from a weighted polynomial u(v) through its own pixels (straight lines
        are straight in the image whatever the horizon), over the rows the top-down fit covers."""
        degree = 2 if curved and np.ptp(v) > 0.3 * height else 1  # a parabola through a short stretch swings wide beyond it
        if np.ptp(v) < 0.02 * height:
            return lane
        fit = np.polyfit(v, u, degree, w=np.sqrt(weight))
        rows = np.array(lane.ys, np.float64)
        seen = np.array([x != -2 for x in lane.xs])
        xs = np.polyval(fit, rows)
        top = min(rows[seen].min() if seen.any() else v.min(), v.min())
        valid = (rows >= top) & (xs >= 0) & (xs < width)
        return Lane([round(float(x), 1) if ok else -2 for x, ok in zip(xs, valid)], lane.ys, lane.type, lane.color, lane.confidence)

    def _lane(self, centre, slope, curvature, zs, paint_rgb, z_far, focal, u0, v0, width, height) -> Lane:
        rows = tusimple_rows(height, v0 / height)
        z_rows = focal * self.camera.mount_m / np.maximum(rows - v0, 1e-3)
        x_world = centre + slope * z_rows + curvature * z_rows ** 2
        xs = u0 + focal * x_world / z_rows
        valid = (z_rows <= z_far) & (xs >= 0) & (xs < width)
        near = np.round(zs[zs < 40] * 2) / 2  # half-metre steps; far away, dashes blur together: judge nearby
        span = np.arange(max(near.min(), self.z_range[0]), near.max() + 0.5, 0.5) if near.size else np.array([])
        painted = np.isin(span, near).mean() if span.size > 8 else 1.0
        rgb = paint_rgb.astype(np.float32).mean(0)
        yellow = rgb[2] < 0.7 * (rgb[0] + rgb[1]) / 2
        return Lane([round(float(x), 1) if ok else -2 for x, ok in zip(xs, valid)], [int(r) for r in rows],
                    "solid" if painted >= SOLID else "dashed", "yellow" if yellow else "white", round(float(painted), 3))
