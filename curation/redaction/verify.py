"""Proof: run the detectors again on the redacted output; anything they still find fails the clip.

Example:
    >>> findings = verify_video(open("redacted.mp4", "rb").read(), verifiers, {0: 32, 1: 16})   # doctest: +SKIP
    >>> findings == []     # nothing at or above the policy's minimum sizes was found
    True
"""

from __future__ import annotations

import io

from curation.media.video import decode_frames
from curation.perception.boxes import CLASSES

__all__ = ["verify_video", "verify_frames"]


def verify_frames(frames: dict[int, "np.ndarray"], verifiers: list, min_height: dict[int, float]) -> list[dict]:  # noqa: F821
    """Findings (frame, class, box, confidence) of detections at or above the minimum height."""
    findings = []
    indices = sorted(frames)
    for verifier in verifiers:
        for index, detections in zip(indices, verifier([frames[i] for i in indices])):
            for box, confidence, cls in zip(detections.xyxy, detections.confidence, detections.class_id):
                if box[3] - box[1] >= min_height.get(int(cls), 0):
                    findings.append({"frame": int(index), "class": CLASSES[int(cls)], "box": [round(float(v), 1) for v in box],
                                     "confidence": round(float(confidence), 3)})
    return findings


def verify_video(data: bytes, verifiers: list, min_height: dict[int, float], stride: int = 1, batch: int = 8) -> list[dict]:
    """Decode the output and verify every ``stride``-th frame."""
    findings, chunk = [], {}
    for index, (_, frame) in enumerate(decode_frames(io.BytesIO(data))):
        if index % stride == 0:
            chunk[index] = frame
        if len(chunk) >= batch:
            findings += verify_frames(chunk, verifiers, min_height)
            chunk = {}
    if chunk:
        findings += verify_frames(chunk, verifiers, min_height)
    return findings
