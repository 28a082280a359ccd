"""Object auto-labels from any ultralytics detector, mapped to the region's taxonomy by name.

The class map is the only coupling between a model and the platform: the bootstrap weights name
their classes ``traffic_light`` or ``sign_stop``, COCO weights ``traffic light`` or ``car``; both end
up as taxonomy classes with attributes. Classes the map does not name are dropped. A traffic light
whose state the map does not give gets it from its lamp pixels (curation/perception/light_state.py).

Example:
    >>> labeler = Labeler(params.label)                         # doctest: +SKIP
    >>> boxes, attrs = labeler([frame_rgb])[0]                  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from curation._env import PROJECT_ROOT
from curation.errors import PolicyError
from curation.perception.boxes import Detections
from curation.perception.light_state import light_state
from curation.perception.runtime import load_yolo, resolve_device
from curation.storage.records import EMBEDDING_DIM

__all__ = ["Labeler"]


class Labeler:
    """Callable: RGB frames -> per frame (Detections with taxonomy class ids, model class names)."""

    def __init__(self, config):
        path = Path(config.model) if Path(config.model).is_absolute() else PROJECT_ROOT / config.model
        if not path.exists():
            raise PolicyError(f"label model not found: {path} (train with scripts/train_detector.py labeler or set label.model)")
        self.config, self.path = config, path
        self.device = resolve_device(config.device)
        self.model = load_yolo(str(path))
        self.model_sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        self.name = f"{path.stem}:{self.model_sha256[:16]}"
        self.classes = list(config.taxonomy)
        names = self.model.names  # {index: name}
        unknown = sorted(set(config.class_map) - set(names.values()))
        if unknown:
            raise PolicyError(f"label.class_map names classes the model {path.name} does not have: {unknown} "
                              f"(it has: {sorted(names.values())})")
        # model class index -> (taxonomy index, attributes, model class name)
        self.mapping = {i: (self.classes.index(config.class_map[n]["class"]), {k: v for k, v in config.class_map[n].items() if k != "class"}, n)
                        for i, n in names.items() if n in config.class_map}
        self.lights = self.classes.index("traffic_light") if "state" in config.taxonomy.get("traffic_light", {}) else None

    def __call__(self, frames: list[np.ndarray]) -> list[tuple[Detections, list[dict], list[str]]]:
        out = []
        precision = 16 if self.device != "cpu" else 32  # CUDA: half precision; the same code path otherwise
        for start in range(0, len(frames), self.config.batch):
            chunk = [np.ascontiguousarray(f[..., ::-1]) for f in frames[start : start + self.config.batch]]  # ultralytics wants BGR
            results = self.model.predict(chunk, imgsz=self.config.imgsz, conf=self.config.threshold, device=self.device, quantize=precision,
                                         verbose=False, batch=len(chunk), project=str(PROJECT_ROOT / "runs"))
            for frame, result in zip(frames[start : start + self.config.batch], results):
                found = Detections.from_ultralytics(result)
                found = found[np.array([c in self.mapping for c in found.class_id], bool)]
                mapped = [self.mapping[int(c)] for c in found.class_id]
                attrs = [self._attributes(frame, box, cls, given) for box, (cls, given, _) in zip(found.xyxy, mapped)]
                out.append((Detections(found.xyxy, found.confidence, [m[0] for m in mapped]), attrs, [m[2] for m in mapped]))
        return out

    def _attributes(self, frame: np.ndarray, box: np.ndarray, cls: int, given: dict) -> dict:
        if cls != self.lights or "state" in given:
            return dict(given)
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        return {**given, "state": light_state(frame[max(y1, 0) : y2, max(x1, 0) : x2])}

    def embed(self, frames: list[np.ndarray]) -> np.ndarray:
        """(N, EMBEDDING_DIM) unit vectors: the detector's pooled deepest features (ultralytics ``embed``),
        resampled to the catalog's fixed width so any weights fit the same table."""
        vectors = []
        for start in range(0, len(frames), self.config.batch):
            chunk = [np.ascontiguousarray(f[..., ::-1]) for f in frames[start : start + self.config.batch]]
            vectors += [v.float().cpu().numpy() for v in self.model.embed(chunk, imgsz=self.config.imgsz, device=self.device, verbose=False)]
        if not vectors:
            return np.zeros((0, EMBEDDING_DIM), np.float32)
        stacked = np.stack(vectors)
        if stacked.shape[1] != EMBEDDING_DIM:
            grid = np.linspace(0, stacked.shape[1] - 1, EMBEDDING_DIM)
            stacked = np.stack([np.interp(grid, np.arange(stacked.shape[1]), v) for v in stacked])
        return (stacked / np.maximum(np.linalg.norm(stacked, axis=1, keepdims=True), 1e-9)).astype(np.float32)
