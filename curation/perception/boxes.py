"""Detections: the one record type for boxes, from every detector through tracking and masking.

A dataclass of parallel arrays, like supervision's Detections: filtering is indexing and returns
a new object; nothing mutates its input.

Example:
    >>> d = Detections(np.array([[0, 0, 10, 10], [5, 5, 50, 50]], np.float32), np.array([0.9, 0.3], np.float32),
    ...                np.array([0, 1]))
    >>> len(d[d.confidence > 0.5])
    1
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Detections", "CLASSES", "iou_matrix"]

CLASSES = ("face", "plate")


@dataclass(frozen=True)
class Detections:
    xyxy: np.ndarray  # (N, 4) float32 pixels
    confidence: np.ndarray  # (N,) float32
    class_id: np.ndarray  # (N,) int; index into CLASSES unless a detector says otherwise
    track_id: np.ndarray = field(default=None)  # (N,) int, -1 = not tracked

    def __post_init__(self):
        n = len(self.xyxy)
        lengths = [np.size(self.confidence), np.size(self.class_id)] + ([] if self.track_id is None else [np.size(self.track_id)])
        if any(length != n for length in lengths) or np.size(self.xyxy) != 4 * n:
            raise ValueError(f"Detections arrays must all have length {n}: xyxy (N,4), confidence (N,), class_id (N,), track_id (N,)")
        object.__setattr__(self, "xyxy", np.asarray(self.xyxy, np.float32).reshape(n, 4))
        object.__setattr__(self, "confidence", np.asarray(self.confidence, np.float32).reshape(n))
        object.__setattr__(self, "class_id", np.asarray(self.class_id, np.int64).reshape(n))
        track = np.full(n, -1, np.int64) if self.track_id is None else np.asarray(self.track_id, np.int64).reshape(n)
        object.__setattr__(self, "track_id", track)

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    @classmethod
    def merge(cls, parts: list["Detections"]) -> "Detections":
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(np.concatenate([p.xyxy for p in parts]), np.concatenate([p.confidence for p in parts]),
                   np.concatenate([p.class_id for p in parts]), np.concatenate([p.track_id for p in parts]))

    @classmethod
    def from_ultralytics(cls, result, class_map: dict[int, int] | None = None) -> "Detections":
        """Read an ultralytics Results object (ultralytics is not imported here)."""
        boxes = result.boxes
        if boxes is None or len(boxes) == 0:
            return cls.empty()
        classes = boxes.cls.cpu().numpy().astype(np.int64)
        if class_map is not None:
            keep = np.array([c in class_map for c in classes], bool)
            return cls(boxes.xyxy.cpu().numpy()[keep], boxes.conf.cpu().numpy()[keep], np.array([class_map[c] for c in classes[keep]], np.int64))
        return cls(boxes.xyxy.cpu().numpy(), boxes.conf.cpu().numpy(), classes)

    def to_items(self) -> list[list]:
        """[[x1, y1, x2, y2, class name, track], ...] (0.1 px): how redactions and proofs store boxes."""
        return [[*(round(float(v), 1) for v in box), CLASSES[int(c)], int(t)] for box, c, t in zip(self.xyxy, self.class_id, self.track_id)]

    @classmethod
    def from_items(cls, items: list) -> "Detections":
        """Inverse of :meth:`to_items` (confidence 1: what was masked, not what was detected)."""
        return cls(np.array([i[:4] for i in items], np.float32).reshape(-1, 4), np.ones(len(items), np.float32),
                   [CLASSES.index(i[4]) for i in items], [i[5] for i in items])

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index) -> "Detections":
        if isinstance(index, (int, np.integer)):
            index = [index]
        return Detections(self.xyxy[index], self.confidence[index], self.class_id[index], self.track_id[index])

    @property
    def width(self) -> np.ndarray:
        return self.xyxy[:, 2] - self.xyxy[:, 0]

    @property
    def height(self) -> np.ndarray:
        return self.xyxy[:, 3] - self.xyxy[:, 1]

    def scaled(self, factor: float) -> "Detections":
        return Detections(self.xyxy * factor, self.confidence, self.class_id, self.track_id)

    def nms(self, iou: float = 0.4) -> "Detections":
        """Greedy non-maximum suppression per class, highest confidence first."""
        keep = []
        for cls in np.unique(self.class_id):
            index = np.nonzero(self.class_id == cls)[0]
            index = index[np.argsort(-self.confidence[index])]
            while len(index):
                keep.append(index[0])
                if len(index) == 1:
                    break
                overlap = iou_matrix(self.xyxy[index[:1]], self.xyxy[index[1:]])[0]
                index = index[1:][overlap < iou]
        return self[np.array(sorted(keep), np.int64)]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N,4) and (M,4) boxes."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-6)
