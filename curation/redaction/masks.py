"""Irreversible masks over faces and plates.

Faces get an ellipse that circumscribes the (already enlarged) box, plates a rectangle: the mask
covers the whole box. ``blur`` destroys detail by resampling the region to at most 4 px across
before smoothing it back (a Gaussian alone can be partly inverted); ``pixelate`` keeps 4 blocks;
``fill`` paints it black.

Example:
    >>> out = redact(frame, detections, method="blur")     # doctest: +SKIP
"""

from __future__ import annotations

import cv2
import numpy as np

from curation.perception.boxes import CLASSES, Detections

__all__ = ["redact", "mask_of", "blank"]

FACE, PLATE = CLASSES.index("face"), CLASSES.index("plate")
DETAIL_PX = 4
BLOB_PX = 8


def _regions(detections: Detections, shape) -> list[tuple[int, int, int, int, np.ndarray]]:
    """(x1, y1, x2, y2, mask) per detection, clipped to the frame; the mask is True where covered."""
    h, w = shape[:2]
    out = []
    for (x1, y1, x2, y2), cls in zip(detections.xyxy, detections.class_id):
        if cls == FACE:  # an ellipse through the box corners: semi-axes sqrt(2) times half the box
            ax, ay = (x2 - x1) / 2 * np.sqrt(2), (y2 - y1) / 2 * np.sqrt(2)
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            x1, y1, x2, y2 = cx - ax, cy - ay, cx + ax, cy + ay
        bx1, by1 = max(int(np.floor(x1)), 0), max(int(np.floor(y1)), 0)
        bx2, by2 = min(int(np.ceil(x2)), w), min(int(np.ceil(y2)), h)
        if bx2 <= bx1 or by2 <= by1:
            continue
        if cls == FACE:
            mask = np.zeros((by2 - by1, bx2 - bx1), np.uint8)
            cv2.ellipse(mask, (int(round(cx - bx1)), int(round(cy - by1))), (int(np.ceil(ax)), int(np.ceil(ay))), 0, 0, 360, 1, -1)
            mask = mask.astype(bool)
        else:
            mask = np.ones((by2 - by1, bx2 - bx1), bool)
        out.append((bx1, by1, bx2, by2, mask))
    return out


def mask_of(detections: Detections, shape) -> np.ndarray:
    """Boolean image of every pixel a redaction with these detections covers."""
    covered = np.zeros(shape[:2], bool)
    for x1, y1, x2, y2, mask in _regions(detections, shape):
        covered[y1:y2, x1:x2] |= mask
    return covered


def redact(frame: np.ndarray, detections: Detections, method: str = "blur") -> np.ndarray:
    """A new frame with every detection masked; the input is not modified."""
    out = frame.copy()
    for x1, y1, x2, y2, shape in _regions(detections, frame.shape):
        region = out[y1:y2, x1:x2]
        h, w = region.shape[:2]
        if method == "fill":
            covered = np.zeros_like(region)
        else:
            small = cv2.resize(region, (max(1, min(w, DETAIL_PX)), max(1, min(h, DETAIL_PX))), interpolation=cv2.INTER_AREA)
            if method == "pixelate":
                covered = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
            else:  # smooth at a few pixels per detail cell, then stretch: a big box costs what a small one does
                blob = cv2.resize(small, (small.shape[1] * BLOB_PX, small.shape[0] * BLOB_PX), interpolation=cv2.INTER_LINEAR)
                covered = cv2.resize(cv2.GaussianBlur(blob, (0, 0), BLOB_PX / 2), (w, h), interpolation=cv2.INTER_LINEAR)
        cv2.copyTo(covered, shape.view(np.uint8), region)  # region[shape] = covered[shape], without numpy's fancy indexing
    return out


def blank(frame: np.ndarray) -> np.ndarray:
    """A restricted-zone frame: nothing of it is kept."""
    return np.zeros_like(frame)
