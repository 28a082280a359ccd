"""Training images for the bootstrap labeler: simulated road scenes, redacted like the real input.

The label stage sees redacted frames, so faces and plates are blurred here exactly as redaction
does. Frames are rendered at 1280x720, scaled to 640x360 (what the detector sees at imgsz 640) and
cut into 320x320 tiles: training at 320 on tiles keeps the objects at inference scale and costs a
quarter of a 640 mosaic. Scenes come from seeds far from the simulator's (held-out evaluation).

Example:
    >>> write_dataset(Path("build/labeler"), frames=1500, seed=0)   # doctest: +SKIP
"""

from __future__ import annotations

from multiprocessing import Pool
from pathlib import Path

import cv2
import numpy as np

from curation.perception.boxes import Detections
from curation.redaction.masks import FACE, PLATE, redact
from curation.sources.faces import face_bank
from curation.sources.scene import Camera, Conditions, Scene

__all__ = ["NAMES", "bootstrap_name", "write_dataset", "MIN_BOX_PX", "MIN_VISIBLE"]

# The bootstrap detector's classes; params.yaml `label.class_map` maps them to the taxonomy.
# Lights are one class: their state is read from the lamp pixels (curation/perception/light_state.py),
# which works for any detector's lights and beats a detector guessing three tiny look-alike classes.
NAMES = ("vehicle", "pedestrian", "traffic_light", "sign_stop", "sign_yield", "sign_speed_limit")
MIN_BOX_PX = 20  # at 720p: smaller objects are neither taught nor scored (label.min_box_px)
MIN_VISIBLE = 0.5
SEED_BASE = 1_000_003  # training scenes never share a seed with the fleet simulator's
TILE, SCALE = 320, 0.5


def bootstrap_name(obj: dict) -> str | None:
    """Ground-truth object (simulator) -> bootstrap class name, None for classes it does not learn."""
    kind, attrs = obj["class"], obj.get("attrs", {})
    if kind in ("vehicle", "pedestrian", "traffic_light"):
        return kind
    if kind == "traffic_sign":
        sign = attrs["sign"]
        return "sign_speed_limit" if sign.startswith("speed_limit") else f"sign_{sign}"
    return None


def _frame(seed: int) -> tuple[np.ndarray, list[tuple[int, list[float]]]]:
    rng = np.random.default_rng([SEED_BASE, seed])
    bank = face_bank()
    scene = Scene.random(rng, Camera(1280, 720), str(rng.choice(["cn", "eu", "us"])), (bank.crops, bank.boxes),
                         direction=int(rng.choice([-1, 1])), curvature=float(rng.uniform(-1e-3, 1e-3)),
                         pedestrians=int(rng.integers(2, 9)), vehicles=int(rng.integers(2, 8)),
                         max_face_px=float(rng.choice([48.0, 160.0])))
    frame, objects, _ = scene.render(float(rng.uniform(0, 12)), float(rng.uniform(0, 60)))
    private = [o for o in objects if o["class"] in ("face", "plate")]
    if private:  # what redact@R leaves: blurred faces and plates
        frame = redact(frame, Detections(np.array([o["box"] for o in private]), np.ones(len(private)),
                                         np.array([FACE if o["class"] == "face" else PLATE for o in private])))
    labels = [(NAMES.index(name), o["box"]) for o in objects
              if (name := bootstrap_name(o)) and o["visible"] >= MIN_VISIBLE and o["box"][3] - o["box"][1] >= MIN_BOX_PX]
    return frame, labels


def _tiles(seed: int) -> list[tuple[np.ndarray, list[str]]]:
    frame, labels = _frame(seed)
    rng = np.random.default_rng([SEED_BASE, seed, 1])
    small = cv2.resize(frame, None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_LINEAR)
    _, encoded = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 95))])
    small = cv2.imdecode(encoded, cv2.IMREAD_COLOR)  # BGR from here on, as written
    h, w = small.shape[:2]
    out = []
    for x0 in (int(rng.integers(0, (w - TILE) // 2 + 1)), int(rng.integers((w - TILE) // 2, w - TILE + 1))):
        y0 = int(rng.integers(0, h - TILE + 1))
        rows = []
        for cls, (x1, y1, x2, y2) in labels:
            box = np.array([x1, y1, x2, y2]) * SCALE - [x0, y0, x0, y0]
            clipped = np.clip(box, 0, TILE)
            inside = np.prod(clipped[2:] - clipped[:2]) / max(np.prod(box[2:] - box[:2]), 1e-6)
            if inside >= 0.6:
                cx, cy, bw, bh = (clipped[0] + clipped[2]) / 2, (clipped[1] + clipped[3]) / 2, clipped[2] - clipped[0], clipped[3] - clipped[1]
                rows.append(f"{cls} {cx / TILE:.6f} {cy / TILE:.6f} {bw / TILE:.6f} {bh / TILE:.6f}\n")
        out.append((small[y0 : y0 + TILE, x0 : x0 + TILE].copy(), rows))
    return out


def write_dataset(root: Path, frames: int, seed: int, val_share: float = 0.1, workers: int = 2) -> Path:
    """YOLO layout under root (images/{train,val}, labels/{train,val}, data.yaml); returns data.yaml."""
    seeds = [seed * 1_000_000 + n for n in range(frames)]
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    with Pool(workers) as pool:
        for n, tiles in enumerate(pool.imap(_tiles, seeds, chunksize=8)):
            split = "val" if n < frames * val_share else "train"
            for t, (image, rows) in enumerate(tiles):
                cv2.imwrite(str(root / "images" / split / f"{n:05d}_{t}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
                (root / "labels" / split / f"{n:05d}_{t}.txt").write_text("".join(rows))
    data = root / "data.yaml"
    data.write_text(f"path: {root.resolve()}\ntrain: images/train\nval: images/val\nnames:\n"
                    + "".join(f"  {i}: {name}\n" for i, name in enumerate(NAMES)))
    return data
