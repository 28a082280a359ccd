"""Lane lines from a small learned segmentation network, for cameras nobody calibrated.

``models/lanes.onnx`` (about 1 MB; ``scripts/train_lanes.py`` trains it on simulated scenes with
randomized appearance, curation/perception/lane_data.py, and on real dashcam video frames labeled by
hand at keyframes) maps a frame scaled to 320x176 to the chance that each pixel of a 160x88 grid
lies on a painted lane line, dashes and dots joined into lines as TuSimple draws them. The lines are
then traced from the bottom of the picture up, row by row (each row's peaks joined to the line
whose course they continue), and each is fitted with x = polynomial(y) in the picture: no camera
model is needed. Type (solid or dashed) and colour come from the paint under the fitted line.
At most two lines are kept on each side of the camera (the ego lane's and the next lane's, what
TuSimple and CULane label); farther ones are flat slivers, mostly road edges and barriers.

Runs through ONNX Runtime on the CPU (a few ms a frame). The network is defined here too
(:func:`build_network`, torch) so that training and inference share one definition.

Example:
    >>> lanes = LearnedLanes()(frame_rgb)                       # doctest: +SKIP
    >>> lanes[0].xs[:3], lanes[0].type, lanes[0].color           # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np

from curation.perception.lanes import Lane, LaneDetector
from curation.perception.runtime import onnx_session, resolve_weights

__all__ = ["LearnedLanes", "build_network", "lane_detector", "INPUT", "OUTPUT", "trace_lines", "vanishing_point", "MODEL"]

INPUT = (320, 176)  # width, height the network sees
OUTPUT = (160, 88)  # its probability grid
MODEL = "models/lanes.onnx"
THRESHOLD = 0.5  # probability of line a pixel needs
MIN_ROWS = 8  # grid rows a line must span (9 % of the height)
REACH = 0.04  # lines are drawn on up to this share of the height below their vanishing point
PER_SIDE = 2  # lines kept left and right of the camera, nearest first
SNAP = 0.04  # share of the width a line may move to the paint beside it (at the bottom row; 0 = off)
PAINT_CONTRAST = 20  # grey levels paint stands above the road on both sides of it


def build_network():
    """The torch module (training and export): an encoder to 1/16 with dilated depthwise residual
    blocks (the context of the whole road), a decoder back to 1/2 adding the skips; one output
    channel (logits). About 70 MFLOP a frame."""
    import torch
    from torch import nn

    def conv(c_in, c_out, stride=1, dilation=1):
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, dilation, dilation, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))

    class Residual(nn.Module):
        def __init__(self, c, dilation):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(c, c, 3, 1, dilation, dilation, groups=c, bias=False), nn.BatchNorm2d(c),
                                      nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c))

        def forward(self, x):
            return torch.relu(x + self.body(x))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.s1 = nn.Sequential(conv(3, 16, 2), Residual(16, 1))
            self.s2 = nn.Sequential(conv(16, 32, 2), Residual(32, 1), Residual(32, 1))
            self.s3 = nn.Sequential(conv(32, 64, 2), Residual(64, 1), Residual(64, 2), Residual(64, 4))
            self.s4 = nn.Sequential(conv(64, 96, 2), Residual(96, 1), Residual(96, 2), Residual(96, 4), Residual(96, 8))
            # Decoder: project, upsample, add the skip, refine (cheap at the fine scales).
            self.p3, self.p2, self.p1 = nn.Conv2d(96, 64, 1), nn.Conv2d(64, 32, 1), nn.Conv2d(32, 16, 1)
            self.r3, self.r2, self.r1 = Residual(64, 1), Residual(32, 1), Residual(16, 1)
            self.head = nn.Conv2d(16, 1, 1)

        def forward(self, x):
            up = lambda a, b: nn.functional.interpolate(a, size=b.shape[2:], mode="bilinear", align_corners=False) + b  # noqa: E731
            f1 = self.s1(x)
            f2 = self.s2(f1)
            f3 = self.s3(f2)
            f4 = self.s4(f3)
            y = self.r3(up(self.p3(f4), f3))
            y = self.r2(up(self.p2(y), f2))
            y = self.r1(up(self.p1(y), f1))
            return self.head(y)

    return Net()


def lane_detector(lanes) -> "LearnedLanes | LaneDetector":
    """The lane method params' ``label.lanes`` (LaneParams) names: the learned model, else the calibrated camera."""
    return LearnedLanes(lanes.model) if lanes.model else LaneDetector.from_params(lanes)


def to_input(rgb: np.ndarray) -> np.ndarray:
    """RGB frame -> (3, 176, 320) float32 in [-0.5, 0.5]."""
    small = cv2.resize(rgb, INPUT, interpolation=cv2.INTER_AREA)
    return (small.astype(np.float32) / 255 - 0.5).transpose(2, 0, 1)


def trace_lines(prob: np.ndarray, threshold: float = THRESHOLD, min_rows: int = MIN_ROWS) -> list[np.ndarray]:
    """Lines in a probability grid: per line an array of (row, x, weight) points, bottom up.

    Each row's runs above ``threshold`` are the line's crossings of that row (a far line lying
    nearly flat crosses a row in a long run); a run continues the line whose course, extrapolated
    straight, lands on it (or within a cell or two), a line ends after a gap of a few rows, and
    where lines meet near the horizon a run may serve both.
    """
    rows, _ = prob.shape
    lines: list[dict] = []
    for r in range(rows - 1, -1, -1):
        row = prob[r]
        above = row > threshold
        runs = []
        if above.any():
            edges = np.flatnonzero(np.diff(np.r_[0, above.astype(np.int8), 0]))
            for a, b in zip(edges[::2], edges[1::2]):
                w = row[a:b]
                runs.append((a, b - 1, float((np.arange(a, b) * w).sum() / w.sum()), float(w.max())))
        taken = set()
        for line in sorted(lines, key=lambda item: -len(item["points"])):
            if line["gap"] > 4:
                continue
            guess = _extrapolate(line["points"], r)
            gate = 1.5 + 0.5 * line["gap"]
            near = [k for k, (a, b, _, _) in enumerate(runs) if a - gate <= guess <= b + gate]
            if near:
                k = min(near, key=lambda k: abs(runs[k][2] - guess))
                line["points"].append((r, runs[k][2], runs[k][3]))
                line["gap"] = 0
                taken.add(k)
            else:
                line["gap"] += 1
        for k, (_, _, x, w) in enumerate(runs):
            if k not in taken:
                lines.append({"points": [(r, x, w)], "gap": 0})
    out = [np.array(line["points"], np.float32) for line in lines if len(line["points"]) >= min_rows]
    return _dedupe(out)


def _extrapolate(points: list[tuple[float, float, float]], row: int) -> float:
    """x at ``row`` on the straight line through a line's last six points (least squares, closed form)."""
    recent = points[-6:]
    if len(recent) < 3:
        return recent[-1][1]
    rows = [p[0] for p in recent]
    xs = [p[1] for p in recent]
    mean_r, mean_x = sum(rows) / len(rows), sum(xs) / len(xs)
    spread = sum((r - mean_r) ** 2 for r in rows)
    if spread < 1.0:
        return recent[-1][1]
    slope = sum((r - mean_r) * (x - mean_x) for r, x in zip(rows, xs)) / spread
    return mean_x + slope * (row - mean_r)


def _dedupe(lines: list[np.ndarray]) -> list[np.ndarray]:
    """Drop a line whose points are mostly another, longer line's (two starts merging into one)."""
    lines = sorted(lines, key=len, reverse=True)
    kept: list[np.ndarray] = []
    for line in lines:
        mine = {(int(r), round(float(x))) for r, x, _ in line}
        if not any(len(mine & {(int(r), round(float(x))) for r, x, _ in other}) > 0.6 * len(mine) for other in kept):
            kept.append(line)
    return kept


class LearnedLanes:
    """Callable with LaneDetector's interface: RGB frame -> list of Lane, left to right."""

    auto = False

    def __init__(self, model: str | Path = MODEL, threshold: float = THRESHOLD, per_side: int = PER_SIDE, snap: float = SNAP):
        self.path = resolve_weights(model, "label.lanes.model")
        self.session = onnx_session(str(self.path), "cpu")
        self.threshold = threshold
        if per_side < 1:
            raise ValueError(f"per_side must be at least 1 (lines kept on each side of the camera), not {per_side}")
        self.per_side = per_side
        self.snap = snap
        self.name = f"learned-lanes:{hashlib.sha256(self.path.read_bytes()).hexdigest()[:16]}"

    def vanishing(self, frame: np.ndarray) -> tuple[float, float]:
        """Unused by this method (the lines are fitted in the picture); kept for the common interface."""
        return frame.shape[1] / 2, frame.shape[0] * 0.5

    def probabilities(self, frames: list[np.ndarray]) -> np.ndarray:
        """(N, 88, 160) chance of line per grid cell."""
        batch = np.stack([to_input(f) for f in frames])
        logits = self.session.run(None, {self.session.get_inputs()[0].name: batch})[0][:, 0]
        return 1 / (1 + np.exp(-logits))

    def __call__(self, frame: np.ndarray, occluders=None, vanishing=None) -> list[Lane]:
        """Lanes of one RGB frame; ``occluders``: (N, 4) boxes of vehicles and people (no paint on them)."""
        return self.lanes(frame, self.probabilities([frame])[0], occluders)

    def lanes(self, frame: np.ndarray, prob: np.ndarray, occluders=None) -> list[Lane]:
        height, width = frame.shape[:2]
        sx, sy = width / OUTPUT[0], height / OUTPUT[1]
        if occluders is not None and len(occluders):
            prob = prob.copy()
            for x1, y1, x2, y2 in np.asarray(occluders, np.float64).reshape(-1, 4):
                # Inside a car is no paint; its lowest tenth is road at its wheels.
                bottom = y1 + 0.9 * (y2 - y1)
                prob[max(int(y1 / sy), 0) : max(int(bottom / sy), 0), max(int(x1 / sx), 0) : max(int(np.ceil(x2 / sx)), 0)] = 0
        traced = trace_lines(prob, self.threshold)
        lines = [np.stack([(t[:, 0] + 0.5) * sy - 0.5, (t[:, 1] + 0.5) * sx - 0.5, t[:, 2]], 1) for t in traced]
        lines = [line for line in lines if np.ptp(line[:, 0]) >= 0.08 * height]
        vanishing = vanishing_point(lines, height)
        top = min((float(line[:, 0].min()) for line in lines), default=0.0)
        if vanishing is not None:  # the lines go on to where they meet, thinner than the grid sees
            top = min(top, vanishing[1] + REACH * height)
        rows = np.arange(int(np.ceil(max(top, 0) / 10) * 10), height, 10)
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if lines else None
        out = []
        for line in lines:
            y, x, w = line.T
            fit = _fit(y, x, w, vanishing, height, width)
            lowest = float(y.max())
            if self.snap:
                fit, lowest = _snap_to_paint(grey, fit, max(y.min() - 0.5 * sy, 0), lowest, vanishing, self.snap)
            low = y.max() + (0.1 * height if y.max() > 0.85 * height else 0.02 * height)  # reaching the bottom: on to it
            high = y.min() - 0.5 * sy if vanishing is None else min(y.min() - 0.5 * sy, vanishing[1] + REACH * height)
            xs = _straight_below(fit, rows, lowest)
            ok = (rows >= high) & (rows <= low) & (xs >= 0) & (xs < width)
            if ok.sum() < 2:
                continue
            lane_type, colour, painted = _paint_of(frame, grey, rows[ok], xs[ok])
            lane = Lane([round(float(v), 1) if k else -2 for v, k in zip(xs, ok)], [int(r) for r in rows], lane_type, colour, painted)
            out.append((lane, float(_straight_below(fit, np.array([height - 1.0]), min(lowest, height - 1))[0]) - width / 2))
        left = sorted((item for item in out if item[1] < 0), key=lambda item: -item[1])[: self.per_side]
        right = sorted((item for item in out if item[1] >= 0), key=lambda item: item[1])[: self.per_side]
        return sorted((lane for lane, _ in left + right), key=_bottom_x)


def vanishing_point(lines: list[np.ndarray], height: int) -> tuple[float, float] | None:
    """Where the lines' near (lower) parts, taken as straight, meet: (x, y) in least squares, or
    None without two lines of different lean or where they meet below the top of any line."""
    rows = []
    for line in lines:
        y, x, w = line.T
        near = y >= np.percentile(y, 40)
        if near.sum() < 3 or np.ptp(y[near]) < 0.04 * height:
            continue
        slope, intercept = np.polyfit(y[near], x[near], 1, w=w[near])
        rows.append((slope, intercept, float(w.sum())))
    if len(rows) < 2 or np.ptp([r[0] for r in rows]) < 0.3:
        return None
    slopes, intercepts, weights = (np.array(v) for v in zip(*rows))
    a = np.stack([np.ones_like(slopes), -slopes], 1) * np.sqrt(weights)[:, None]  # x_v - slope * y_v = intercept
    (xv, yv), *_ = np.linalg.lstsq(a, intercepts * np.sqrt(weights), rcond=None)
    if not -0.1 * height < yv < min(float(line[:, 0].min()) for line in lines) + 0.05 * height:
        return None
    return float(xv), float(yv)


def _fit(y: np.ndarray, x: np.ndarray, w: np.ndarray, vanishing, height: int, width: int, degree: int | None = None) -> np.ndarray:
    """x = polynomial(y) through a line's points and, as a prior, through the vanishing point: lines
    of one road meet there, which holds a far line's few flat rows (and points where two lines merge)
    to its true course. ``degree`` None: a parabola over lines spanning 30 % of the height."""
    span = np.ptp(y)
    degree = degree or (2 if span > 0.3 * height else 1)
    if vanishing is not None:
        y, x, w = np.r_[y, vanishing[1]], np.r_[x, vanishing[0]], np.r_[w, 0.5 * w.sum()]
    fit = np.polyfit(y, x, degree, w=np.sqrt(w))
    if degree == 2 and abs(fit[0]) * span ** 2 > 0.5 * width:  # a parabola gone wild: a straight line
        fit = np.polyfit(y, x, 1, w=np.sqrt(w))
    return fit


def _snap_to_paint(grey: np.ndarray, fit: np.ndarray, high: float, low: float, vanishing, reach: float) -> tuple[np.ndarray, float]:
    """The line refitted through the paint within ``reach`` (a share of the width, at the bottom
    row) of it, and the lowest row with paint; ``fit`` and ``low`` where too little paint is found.

    The network's lines come from a grid of 8x8 pixels and drift to seams, slab edges and tyre
    tracks beside the paint. Paint is a narrow bright ridge: on each pixel row near the line, the
    point brighter than the road on both sides of it at about a paint width's distance (a step
    from dark asphalt to light concrete is bright on one side only). Rows without such a ridge
    (gaps between dashes, worn paint, cars) are left out, so a line moves only where paint shows.
    """
    height, width = grey.shape
    top = vanishing[1] if vanishing is not None else high - 0.05 * height
    ys, xs = [], []
    for r in range(int(np.ceil(high)), int(low) + 1, 2):
        scale = max(r - top, 1) / max(height - top, 1)  # how near: paint widens towards the camera
        near, paint = max(3, int(reach * width * scale)), max(1, int(0.016 * width * scale))
        x0 = int(np.polyval(fit, r))
        lo, hi = x0 - near, x0 + near + 1
        pad = 4 * paint  # the widest paint tried, 2 paint widths, sees road 2 to 4 widths away
        if lo - pad < 0 or hi + pad > width:
            continue
        row = cv2.blur(grey[r : r + 1, lo - pad : hi + pad], (3, 1))[0].astype(np.float32)
        sums, n = np.r_[0.0, np.cumsum(row)], hi - lo
        centre = row[pad : pad + n]
        ridge = np.full(n, -np.inf, np.float32)
        for d in (paint, 2 * paint):  # road at d to 2d left and right of the centre
            left = (sums[pad - d + 1 : pad - d + 1 + n] - sums[pad - 2 * d + 1 : pad - 2 * d + 1 + n]) / d
            right = (sums[pad + 2 * d : pad + 2 * d + n] - sums[pad + d : pad + d + n]) / d
            ridge = np.maximum(ridge, np.minimum(centre - left, centre - right))
        k = int(np.argmax(ridge))
        if ridge[k] < PAINT_CONTRAST:
            continue
        a = b = k  # the middle of the crest: wide paint is a plateau, its first pixel is its edge
        while a > 0 and ridge[a - 1] >= 0.8 * ridge[k]:
            a -= 1
        while b < n - 1 and ridge[b + 1] >= 0.8 * ridge[k]:
            b += 1
        ys.append(r)
        xs.append(lo + (a + b) / 2)
    ys, xs = np.array(ys, float), np.array(xs, float)
    if len(ys) < 8 or np.ptp(ys) < 0.1 * height:
        return fit, low
    keep = np.ones(len(ys), bool)
    for _ in range(3):  # drop what is off the line the rest agree on (a letter, a reflector, a car's chrome)
        snapped = _fit(ys[keep], xs[keep], np.ones(int(keep.sum())), None, height, width, 1)
        if np.sqrt(np.mean((np.polyval(snapped, ys[keep]) - xs[keep]) ** 2)) > 0.0015 * width:  # not straight: a bend
            snapped = _fit(ys[keep], xs[keep], np.ones(int(keep.sum())), None, height, width)
        keep = np.abs(np.polyval(snapped, ys) - xs) <= max(2.0, 0.004 * width)
        if keep.sum() < 8:
            return fit, low
    return snapped, float(ys[keep].max())


def _straight_below(fit: np.ndarray, rows: np.ndarray, lowest: float) -> np.ndarray:
    """x of a fitted line on ``rows``: the polynomial down to the lowest row it was fitted on, and
    straight on below it (near the camera a road's lines are straight; a parabola bends off there)."""
    tangent = np.polyval(fit, lowest) + np.polyval(np.polyder(fit), lowest) * (rows - lowest)
    return np.where(rows > lowest, tangent, np.polyval(fit, rows))


def _bottom_x(lane: Lane) -> float:
    seen = [(y, x) for x, y in zip(lane.xs, lane.ys) if x != -2]
    return max(seen)[1] if seen else 0.0


def _paint_of(frame: np.ndarray, grey: np.ndarray, rows: np.ndarray, xs: np.ndarray) -> tuple[str, str, float]:
    """(solid | dashed, white | yellow, share of the line's rows with paint) from the pixels under it."""
    height, width = frame.shape[:2]
    reach = max(3, int(width * 0.01))
    painted, colours = [], []
    for r, x in zip(rows.astype(int), xs.astype(int)):
        lo, hi = max(x - reach, 0), min(x + reach + 1, width)
        around = grey[r, max(x - 6 * reach, 0) : min(x + 6 * reach + 1, width)]
        if hi <= lo or around.size < 3:
            continue
        k = lo + int(np.argmax(grey[r, lo:hi]))
        lit = grey[r, k] > np.median(around) + 18
        painted.append(lit)
        if lit:
            colours.append(frame[r, k].astype(np.float32))
    share = float(np.mean(painted)) if painted else 0.0
    rgb = np.mean(colours, 0) if colours else np.array([200, 200, 200], np.float32)
    yellow = rgb[2] < 0.75 * (rgb[0] + rgb[1]) / 2
    return ("solid" if share >= 0.75 else "dashed"), ("yellow" if yellow else "white"), round(share, 3)
