"""The detectors a region's policy asks for: one set to redact with, a stricter one to verify with.

Kept apart from the stage so that `curation redact` starts without the catalog's imports.

Example:
    >>> detectors = Detectors(params, "cn")        # doctest: +SKIP
    >>> [d.name for d in detectors.redact]
    ['centerface', 'yolo-plates']
"""

from __future__ import annotations

from curation.perception.faces import FaceDetector
from curation.perception.plates import PlateDetector
from curation.redaction.video import min_heights

__all__ = ["Detectors"]


class Detectors:
    """The region's detectors for redaction and the stricter-threshold ones for verification."""

    def __init__(self, params, region: str):
        policy, stage = params.region(region).redact, params.redaction
        self.redact, self.verify = [], []
        if policy.faces:
            # CenterFace finds every face from 24 px up (SIMULATOR.md): run at the resolution that puts
            # the policy's smallest face there, plus a quarter-resolution pass for frame-filling faces.
            scales = (min(1.0, 24 / policy.min_face_px), 0.25)
            self.redact.append(FaceDetector(stage.face_threshold, stage.device, scales))
            self.verify.append(FaceDetector(stage.verify_face_threshold, stage.device, scales))
        if policy.plates:
            self.redact.append(PlateDetector(stage.plate_model, stage.plate_imgsz, stage.plate_threshold, stage.device))
            self.verify.append(PlateDetector(stage.plate_model, stage.plate_imgsz, stage.verify_plate_threshold, stage.device))
        self.min_height = min_heights(policy)
        self.names = ",".join(f"{d.name}:{d.model_sha256[:16]}" for d in self.redact)
        self.verifier_names = ",".join(f"{d.name}:{d.model_sha256[:16]}@{d.threshold}" for d in self.verify)
