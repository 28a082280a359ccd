"""Licence plates: the project's own YOLO detector (trained by scripts/train_plates.py) or user weights.

Example:
    >>> detector = PlateDetector("models/plates.pt", imgsz=640)     # doctest: +SKIP
    >>> detector([frame])[0].xyxy                                    # doctest: +SKIP
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np

from curation._env import PROJECT_ROOT
from curation.errors import PolicyError
from curation.perception.boxes import CLASSES, Detections

__all__ = ["PlateDetector", "resolve_device"]

PLATE = CLASSES.index("plate")


def resolve_device(device: str = "auto") -> str:
    """'auto' -> '0' (first GPU) when torch sees CUDA, else 'cpu'."""
    if device != "auto":
        return device
    import torch

    return "0" if torch.cuda.is_available() else "cpu"


@functools.cache
def _model(path: str):
    from ultralytics import YOLO

    return YOLO(path, task="detect")


class PlateDetector:
    """Callable: list of RGB frames -> list of Detections (class 1 = plate)."""

    name = "yolo-plates"

    def __init__(self, weights: str | Path = "models/plates.pt", imgsz: int = 640, threshold: float = 0.25, device: str = "auto",
                 batch: int = 4):
        path = Path(weights) if Path(weights).is_absolute() else PROJECT_ROOT / weights
        if not path.exists():
            raise PolicyError(f"plate detector weights not found: {path} (train with scripts/train_plates.py or set redact.plate_model)")
        self.path, self.imgsz, self.threshold, self.batch = path, imgsz, threshold, batch
        self.device = resolve_device(device)
        self.model = _model(str(path))
        self.model_sha256 = hashlib.sha256(path.read_bytes()).hexdigest()

    def __call__(self, frames: list[np.ndarray]) -> list[Detections]:
        out = []
        for start in range(0, len(frames), self.batch):
            chunk = [np.ascontiguousarray(f[..., ::-1]) for f in frames[start : start + self.batch]]  # ultralytics wants BGR arrays
            results = self.model.predict(chunk, imgsz=self.imgsz, conf=self.threshold, device=self.device, verbose=False,
                                         project=str(PROJECT_ROOT / "runs"))
            for result in results:
                found = Detections.from_ultralytics(result)
                out.append(Detections(found.xyxy, found.confidence, np.full(len(found), PLATE)))
        return out
