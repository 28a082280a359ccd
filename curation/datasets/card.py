"""The dataset card: README.md with counts, a class histogram and a grid of labeled thumbnails."""

from __future__ import annotations

import io
import json

import cv2
import numpy as np
from matplotlib.figure import Figure  # no pyplot: the card never touches a user's plotting backend

__all__ = ["dataset_card", "draw_labels"]

COLOURS = [(255, 99, 71), (65, 105, 225), (255, 215, 0), (50, 205, 50), (238, 130, 238), (0, 206, 209)]
LANE_COLOURS = {"white": (255, 255, 255), "yellow": (255, 200, 0)}


def draw_labels(frame: np.ndarray, boxes: list[tuple[int, tuple]], lanes: list[dict], names: list[str]) -> np.ndarray:
    """A copy of the RGB frame with class-coloured boxes and lane polylines drawn on it."""
    out = frame.copy()
    thickness = max(1, frame.shape[0] // 240)
    for lane in lanes:
        xs, ys = _as_list(lane["xs"]), _as_list(lane["ys"])
        points = np.array([(x, y) for x, y in zip(xs, ys) if x >= 0], np.int32)
        if len(points) > 1:
            cv2.polylines(out, [points], False, LANE_COLOURS.get(lane.get("color"), (255, 255, 255)), thickness,
                          cv2.LINE_AA if lane.get("type") == "solid" else cv2.LINE_4)
    for cls, (x1, y1, x2, y2) in boxes:
        colour = COLOURS[cls % len(COLOURS)]
        cv2.rectangle(out, (int(x1), int(y1)), (int(x2), int(y2)), colour, thickness)
        cv2.putText(out, names[cls], (int(x1), max(int(y1) - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thickness, colour, thickness)
    return out


def _as_list(value) -> list:
    """Lane points as stored in the catalog (JSON text) or as a list."""
    return json.loads(value) if isinstance(value, str) else value


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def _histogram(classes: list[str], per_split: dict) -> bytes:
    figure = Figure(figsize=(6, 3))
    axis = figure.subplots()
    x = np.arange(len(classes))
    width = 0.8 / max(len(per_split), 1)
    for k, (split, entry) in enumerate(per_split.items()):
        axis.bar(x + k * width, [entry["boxes"].get(c, 0) for c in classes], width, label=f"{split} ({entry['images']} images)")
    axis.set_xticks(x + width * (len(per_split) - 1) / 2, classes, rotation=15)
    axis.set_ylabel("boxes")
    axis.legend(fontsize=8)
    return _png(figure)


def _thumbnails(samples: list, classes: list[str], count: int) -> bytes:
    if not samples:
        canvas = np.full((90, 160, 3), 40, np.uint8)
    else:
        pick = np.linspace(0, len(samples) - 1, min(count, len(samples))).astype(int)
        tiles = [cv2.resize(draw_labels(samples[i][0], samples[i][1], samples[i][2], classes), (320, 180), interpolation=cv2.INTER_AREA)
                 for i in pick]
        columns = min(4, len(tiles))
        tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % columns)
        canvas = np.vstack([np.hstack(tiles[r : r + columns]) for r in range(0, len(tiles), columns)])
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    return encoded.tobytes()


def dataset_card(name: str, region: str, classes: list[str], per_split: dict, samples: list, thumbnails: int) -> dict[str, bytes]:
    rows = "".join(f"| {split} | {entry['images']} | " + " | ".join(str(entry["boxes"].get(c, 0)) for c in classes) + " |\n"
                   for split, entry in per_split.items())
    readme = f"""# Dataset `{name}` (region {region})

Redacted frames only (faces and plates masked and verified), labeled in region by the auto-labeler
and reviewed by people where they looked; positions coarsened per the region's policy; no vehicle
identifiers. Splits never share a vehicle or an event. `manifest.json` lists every file's sha256 and
each image's source clip (by content hash) and frame PTS; check with `curation dataset verify .`.

| split | images | {' | '.join(classes)} |
|---|---|{'---|' * len(classes)}
{rows}
![class histogram](class_histogram.png)

![labeled samples](thumbnails.png)

Layouts: ultralytics YOLO (`data.yaml`, `images/`, `labels/`), COCO (`annotations/<split>.json`, with
attributes such as light state and sign type), TuSimple lanes (`lanes/<split>.json`).
"""
    return {"README.md": readme.encode(), "class_histogram.png": _histogram(classes, per_split),
            "thumbnails.png": _thumbnails(samples, classes, thumbnails)}
