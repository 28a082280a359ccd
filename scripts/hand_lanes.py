"""Hand lane labels: anchor points read off a picture by eye -> TuSimple lines snapped to the paint.

  python scripts/hand_lanes.py ANCHORS.json MEDIA_FOLDER OUT.json [--draw DIR] [--grid DIR NAME...]

ANCHORS.json maps a picture's name to its lines, each ``{"anchors": [[x, y], ...], "rows": [top, bottom]}``
(a few points along the line, the rows it is seen on), and a video's name to
``{"keyframes": {"0": [line, ...], "40": [...]}}``: the same lines in the same order at each
keyframe (``null`` where a line is not there). Between keyframes each line's curve and rows are
interpolated frame by frame. On every second row of a line the brightest pixel within ``--search``
px of the curve is taken when it stands 15 grey levels above the row's local median (paint,
dashes, Botts' dots); a line (a parabola over 200 rows or more) is fitted through those points,
points more than 6 px off are dropped and it is fitted again, then sampled at rows every 10 px.
``--grid`` writes the named pictures (``clip.mp4#12`` for a video frame) with a 40 px grid, zoomed
1.5x, to read anchors from; ``--draw`` writes every labeled picture with its lines to check them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from train_lanes import read_media  # noqa: E402


def curve(anchors: list[list[float]]) -> np.ndarray:
    a = np.array(sorted(anchors, key=lambda p: p[1]), float)
    return np.polyfit(a[:, 1], a[:, 0], 2 if len(a) > 3 else 1)


def snap(grey: np.ndarray, fit: np.ndarray, rows: tuple[float, float], search: int) -> np.ndarray:
    """Polynomial x(y) through the paint near the curve ``fit`` over ``rows``."""
    height, width = grey.shape
    ys = np.arange(int(rows[0]), int(rows[1]) + 1, 2)
    points = []
    for y in ys[(ys >= 0) & (ys < height)]:
        guess = np.polyval(fit, y)
        lo, hi = int(guess - search), int(guess + search)
        if lo < 0 or hi >= width:
            continue
        segment = grey[y, lo:hi]
        base = np.median(grey[y, max(lo - 30, 0) : min(hi + 30, width)])
        k = int(np.argmax(segment))
        if segment[k] - base > 15:
            points.append((y, lo + k))
    pts = np.array(points, float)
    if len(pts) < 6:
        return fit
    degree = 2 if np.ptp(pts[:, 0]) >= 200 else 1
    first = np.polyfit(pts[:, 0], pts[:, 1], degree)
    keep = np.abs(np.polyval(first, pts[:, 0]) - pts[:, 1]) < 6
    return np.polyfit(pts[keep, 0], pts[keep, 1], degree) if keep.sum() >= 4 else first


def label(rgb: np.ndarray, lines: list[dict], search: int) -> tuple[dict, list[np.ndarray]]:
    """(TuSimple item, the fitted curve per line)."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    height, width = grey.shape
    top = min(int(line["rows"][0]) for line in lines) // 10 * 10
    h_samples = list(range(top, height, 10))
    lanes, fits = [], []
    for line in lines:
        fit = snap(grey, line["fit"] if "fit" in line else curve(line["anchors"]), line["rows"], search)
        xs = np.polyval(fit, h_samples)
        ok = (np.array(h_samples) >= line["rows"][0]) & (np.array(h_samples) <= line["rows"][1]) & (xs >= 0) & (xs < width)
        lanes.append([round(float(x), 1) if k else -2 for x, k in zip(xs, ok)])
        fits.append(fit)
    return {"h_samples": h_samples, "lanes": lanes}, fits


def tracked(keyframes: dict[str, list], index: int, previous: list[dict] | None) -> list[dict]:
    """The lines at frame ``index``: a keyframe's own, else the previous frame's fitted lines (the
    paint is followed frame by frame, snapping within ``--search`` px), rows interpolated."""
    if str(index) in keyframes:
        return [line for line in keyframes[str(index)] if line is not None]
    reference = interpolated(keyframes, index)
    if previous is None or len(previous) != len(reference):
        return reference
    return [{"fit": p["fit"], "rows": r["rows"]} for p, r in zip(previous, reference)]


def interpolated(keyframes: dict[str, list], index: int) -> list[dict]:
    """The lines at frame ``index``: each line's curve sampled at rows, interpolated between keyframes."""
    keys = sorted(int(k) for k in keyframes)
    before = max([k for k in keys if k <= index], default=keys[0])
    after = min([k for k in keys if k >= index], default=keys[-1])
    t = 0.0 if after == before else (index - before) / (after - before)
    out = []
    for a, b in zip(keyframes[str(before)], keyframes[str(after)]):
        if a is None or b is None:
            continue
        rows = [(1 - t) * a["rows"][0] + t * b["rows"][0], (1 - t) * a["rows"][1] + t * b["rows"][1]]
        ys = np.linspace(rows[0], rows[1], 5)
        xs = (1 - t) * np.polyval(curve(a["anchors"]), ys) + t * np.polyval(curve(b["anchors"]), ys)
        out.append({"anchors": [[float(x), float(y)] for x, y in zip(xs, ys)], "rows": rows})
    return out


def draw(rgb: np.ndarray, item: dict) -> np.ndarray:
    out = np.ascontiguousarray(rgb[..., ::-1].copy())
    for xs in item["lanes"]:
        pts = np.array([(x, y) for x, y in zip(xs, item["h_samples"]) if x >= 0], np.int32)
        if len(pts) > 1:
            cv2.polylines(out, [pts], False, (0, 255, 0), 1)
            for p in pts:
                cv2.circle(out, tuple(int(v) for v in p), 2, (0, 0, 255), -1)
    return out


def grid(rgb: np.ndarray) -> np.ndarray:
    out = cv2.resize(np.ascontiguousarray(rgb[..., ::-1]), None, fx=1.5, fy=1.5)
    for v in range(0, rgb.shape[1], 40):
        cv2.line(out, (int(v * 1.5), 0), (int(v * 1.5), out.shape[0]), (0, 255, 255) if v % 200 == 0 else (0, 140, 140), 1)
        cv2.putText(out, str(v), (int(v * 1.5) + 2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 255, 255), 1)
    for v in range(0, rgb.shape[0], 40):
        cv2.line(out, (0, int(v * 1.5)), (out.shape[1], int(v * 1.5)), (0, 255, 255) if v % 200 == 0 else (0, 140, 140), 1)
        cv2.putText(out, str(v), (2, int(v * 1.5) - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 255, 255), 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("anchors", type=Path)
    parser.add_argument("media", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--search", type=int, default=14, help="px either side of the anchors' curve to look for paint (default 14; 10 at 540p)")
    parser.add_argument("--draw", type=Path, default=None)
    parser.add_argument("--grid", type=Path, default=None)
    parser.add_argument("names", nargs="*", help="with --grid: the pictures to draw a grid on")
    args = parser.parse_intermixed_args()
    cache: dict = {}
    if args.grid:
        args.grid.mkdir(parents=True, exist_ok=True)
        for name in args.names:
            cv2.imwrite(str(args.grid / f"{name.replace('#', '_')}.png"), grid(read_media(args.media, name, cache)))
        return
    anchors = json.loads(args.anchors.read_text())
    count = 0
    with open(args.out, "w") as out:

        def write(name, rgb, lines):
            item, fits = label(rgb, lines, args.search)
            out.write(json.dumps({"raw_file": name, **item}) + "\n")
            if args.draw:
                args.draw.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(args.draw / f"{name.replace('#', '_')}.jpg"), draw(rgb, {"raw_file": name, **item}))
            return [{"fit": f, "rows": line["rows"]} for f, line in zip(fits, lines)]

        for name, spec in anchors.items():
            if isinstance(spec, dict):  # a video: keyframes, followed frame by frame in between
                keys = sorted(int(k) for k in spec["keyframes"])
                previous = None
                for index in range(keys[0], keys[-1] + 1):
                    rgb = read_media(args.media, f"{name}#{index}", cache)
                    if rgb is None:
                        continue
                    previous = write(f"{name}#{index}", rgb, tracked(spec["keyframes"], index, previous))
                    count += 1
            else:
                write(name, read_media(args.media, name, cache), spec)
                count += 1
    print(f"{count} pictures labeled -> {args.out}")


if __name__ == "__main__":
    main()
