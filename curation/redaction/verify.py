"""Proof: run the detectors again on the redacted output; anything they still find fails the clip.

Example:
    >>> findings = verify_video(open("redacted.mp4", "rb").read(), verifiers, {0: 32, 1: 16})   # doctest: +SKIP
    >>> findings == []     # nothing at or above the policy's minimum sizes was found
    True
"""

from __future__ import annotations

import io

import numpy as np

from curation.media.video import decode_frames
from curation.perception.boxes import CLASSES
from curation.redaction.masks import mask_of

__all__ = ["verify_video", "verify_frames"]


def _masks(masked: list | None, chunk: dict) -> dict | None:
    return None if masked is None else {i: masked[i] for i in chunk if i < len(masked)}


def verify_frames(frames: dict[int, np.ndarray], verifiers: list, min_height: dict[int, float], masked: dict | None = None) -> list[dict]:
    """Findings (frame, class, box, confidence) of detections at or above the minimum height.

    With ``masked`` (frame -> Detections that were masked), a detection at least half inside the
    masked area is a detection of the mask itself (a blurred blob can still look like a head), and
    is not a finding: by GB/T 44464's own measure such an object counts as anonymized.
    """
    findings = []
    indices = sorted(frames)
    for verifier in verifiers:
        for index, detections in zip(indices, verifier([frames[i] for i in indices])):
            covered = mask_of(masked[index], frames[index].shape) if masked is not None and index in masked else None
            for box, confidence, cls in zip(detections.xyxy, detections.confidence, detections.class_id):
                if covered is not None:
                    x1, y1, x2, y2 = (max(int(round(v)), 0) for v in box)
                    if covered[y1:y2, x1:x2].size and covered[y1:y2, x1:x2].mean() >= 0.5:
                        continue
                if box[3] - box[1] >= min_height.get(int(cls), 0):
                    findings.append({"frame": int(index), "class": CLASSES[int(cls)], "box": [round(float(v), 1) for v in box],
                                     "confidence": round(float(confidence), 3)})
    return findings


def verify_video(data: bytes, verifiers: list, min_height: dict[int, float], stride: int = 1, batch: int = 8,
                 masked: list | None = None) -> list[dict]:
    """Decode the output and verify every ``stride``-th frame (``masked``: per-frame masked boxes)."""
    findings, chunk = [], {}
    for index, (_, frame) in enumerate(decode_frames(io.BytesIO(data))):
        if index % stride == 0:
            chunk[index] = frame
        if len(chunk) >= batch:
            findings += verify_frames(chunk, verifiers, min_height, _masks(masked, chunk))
            chunk = {}
    if chunk:
        findings += verify_frames(chunk, verifiers, min_height, _masks(masked, chunk))
    return findings
