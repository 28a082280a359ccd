"""`curation redact`: anyone's videos and pictures redacted by a region's policy, each with its proof.

For every input, beside the output (``NAME_redacted.EXT`` by default; a video whose suffix is not
.mp4, .m4v or .mov becomes ``NAME_redacted.mp4``, which is what it holds):

- the output is written under a temporary name and takes its final name only once the
  independent verifiers passed it; one that fails is deleted (or kept as
  ``NAME_redacted.FAILED.EXT`` with ``keep_failed``), so nothing that looks like a result can
  still show a face or plate;
- ``NAME_redacted.proof.json``: what was masked on every frame, by which detectors (names, weight
  hashes, thresholds), under which policy version, what verification found, and the sha256 of
  input and output: a user can audit their own footage.

Videos stream (two passes and a verification pass, memory bounded by a window); stills are
searched harder (more scales, rotated plates), as time is cheap for one picture.

Example:
    >>> summary = redact_file(Path("dashcam.mp4"), None, params, "eu")      # doctest: +SKIP
    >>> summary["verification"]
    'passed: 38 frames, nothing found'
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np

from curation.errors import CurationError
from curation.media.inputs import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from curation.perception.boxes import CLASSES, Detections
from curation.perception.faces import FaceDetector
from curation.perception.plates import PlateDetector
from curation.perception.tracks import dense_boxes
from curation.redaction.detectors import Detectors, Gated, Rotated, Wide
from curation.redaction.masks import redact
from curation.redaction.verify import Verification, needs_repair, redact_verified, repaired, verify_frames
from curation.redaction.video import RedactionConfig, detect_keyframes, redact_video

__all__ = ["redact_file", "outputs_for", "without_outputs", "proof_path"]

# A video is written as H.264 in MP4 whatever it came in: these names say so, an AVI, WebM or MPEG-TS
# input's output is NAME_redacted.mp4.
MP4_SUFFIXES = {".mp4", ".m4v", ".mov"}
STILL_PLATE_ANGLES = (-20.0, 20.0)  # a plate 30 degrees off is found turned by 20 (CCPD's tilted close-ups)
# A turned box mapped back is large: it needs what the verifiers ask of large objects
# (redaction.verify_large_threshold's default); below it turned views boxed asphalt (0.49).
STILL_TURNED_THRESHOLD = 0.5


def without_outputs(inputs: list[tuple[Path, str]]) -> tuple[list[tuple[Path, str]], list[Path]]:
    """The inputs that are not outputs of an earlier `curation redact` (a proof beside them), and
    those that are (kept failed ones too): run over a folder twice, it redacts the originals again,
    not its own outputs."""
    earlier = {path for path, _ in inputs if proof_path(path.with_name(path.stem.removesuffix(".FAILED") + path.suffix)).is_file()}
    return [entry for entry in inputs if entry[0] not in earlier], sorted(earlier)


def _is_still(path: Path) -> bool:
    """A picture (redacted as one frame, written in its own format), not a video."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def outputs_for(inputs: list[tuple[Path, str]], output: Path | None) -> list[Path]:
    """Where the redacted copy of each input (file, name relative to the folder it was found in;
    curation.media.inputs) goes: beside it by default; into ``output``, a folder (the inputs keep
    their relative folders there) unless it is one input and ``output`` names a picture or video
    file. Refuses, before any work, to write one output, proof or failed output twice or over an
    input: nothing the user has is lost."""
    folder = output is not None and (len(inputs) > 1 or output.is_dir() or output.suffix.lower() not in VIDEO_SUFFIXES | IMAGE_SUFFIXES)
    if folder and output.exists() and not output.is_dir():
        raise CurationError(f"{output}: a file, where a folder for the outputs is needed")
    if output is not None and not folder:  # one input into the file ``output`` names: its suffix must say what it holds
        source = inputs[0][0]
        if _is_still(source) and not _is_still(output):
            raise CurationError(f"{output}: a redacted picture is a picture; name it {output.stem}{source.suffix}")
        if not _is_still(source) and output.suffix.lower() not in MP4_SUFFIXES:
            raise CurationError(f"{output}: a redacted video is H.264 in MP4; name it {output.stem}.mp4")

    def target(source: Path, relative: str) -> Path:
        suffix = source.suffix if _is_still(source) or source.suffix.lower() in MP4_SUFFIXES else ".mp4"
        name = f"{source.stem}_redacted{suffix}"
        if output is None:
            return source.with_name(name)
        return output / Path(relative).with_name(name) if folder else output

    targets = [target(source, relative) for source, relative in inputs]
    claimed: dict[Path, Path] = {}
    sources = {source.resolve() for source, _ in inputs}
    for (source, _), path in zip(inputs, targets):
        for written in (path, proof_path(path), failed_path(path)):  # clip.mp4 and clip.mov: two outputs, one proof name
            if written.resolve() in sources:
                raise CurationError(f"{written}: the output would replace an input; choose another --output")
            if (first := claimed.setdefault(written.resolve(), source)) != source:
                raise CurationError(f"{first} and {source} would both write {written}; redact them into separate folders")
    return targets


def proof_path(target: Path) -> Path:
    return target.with_name(f"{target.stem}.proof.json")


def failed_path(target: Path) -> Path:
    """Where ``--keep-failed`` keeps an output that failed verification."""
    return target.with_name(f"{target.stem}.FAILED{target.suffix}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _redact_still(source: Path, partial: Path, detectors: Detectors, config: RedactionConfig, verify: bool):
    image = cv2.imread(str(source), cv2.IMREAD_COLOR)
    if image is None:
        raise CurationError(f"{source}: not a readable image")
    rgb = np.ascontiguousarray(image[..., ::-1])
    scales = (1.5, 1.0, 0.5, 0.25) if rgb.shape[0] * rgb.shape[1] < 2e6 else (1.0, 0.5, 0.25)  # small photos upscaled for small faces
    # Plates at the picture's own resolution, and turned both ways for plates photographed at a slant.
    imgsz = min(1920, int(np.ceil(max(rgb.shape[:2]) / 32) * 32))

    def harder(d):
        if isinstance(d, Wide):
            return Wide(harder(d.detector), d.min_aspect)
        if isinstance(d, PlateDetector):
            return Rotated(PlateDetector(d.weights, imgsz, d.threshold, d.device, min_scale=d.min_scale, runtime=d.cpu_runtime,
                                         coarse_imgsz=d.coarse_imgsz), STILL_PLATE_ANGLES, STILL_TURNED_THRESHOLD)
        return Gated(FaceDetector(d.threshold, d.device, scales, d.cpu_runtime), d.steps)

    redactors = [harder(d) for d in detectors.redact]
    found = detect_keyframes({0: rgb}, redactors)[0]
    boxes = dense_boxes({0: found}, 1, config.track, 1.0, size=(rgb.shape[1], rgb.shape[0]))[0]  # one frame: no rate

    def write(boxes: Detections) -> Verification | None:
        if not cv2.imwrite(str(partial), np.ascontiguousarray(redact(rgb, boxes, config.method)[..., ::-1])):
            raise CurationError(f"{partial}: cannot write")
        if not verify:
            return None
        written = np.ascontiguousarray(cv2.imread(str(partial), cv2.IMREAD_COLOR)[..., ::-1])  # verify what was stored (JPEG and all)
        return Verification(1, 1, verify_frames({0: written}, detectors.verify, detectors.min_height, {0: boxes}))

    rounds = [r for r in [write(boxes)] if r is not None]
    while rounds and config.repair and needs_repair(rounds):  # mask what the second opinion found, and look again
        boxes = Detections.merge([boxes, Detections.from_items([[*f["box"], f["class"], -1] for f in rounds[-1].findings])])
        rounds.append(write(boxes))
    return [boxes], [0], rounds, redactors, {"input_frames_listed": 1}  # OpenCV showed the photo as its EXIF orientation says


def _redact_video(source: Path, partial: Path, detectors: Detectors, config: RedactionConfig, verify: bool, progress: bool = False):
    from tqdm import tqdm

    # One bar per file on stderr (stdout is the commands' JSON), counted per pass; gone once the file is done.
    with open(source, "rb") as handle, tqdm(desc=source.name, unit="frame", leave=False, disable=not progress, dynamic_ncols=True) as bar:
        if not verify:
            with open(partial, "wb") as target:
                result = redact_video(handle, target, detectors.redact, config, progress=bar)
            return result.boxes, result.pts.tolist(), [], detectors.redact, _facts(result)
        result, rounds = redact_verified(handle, lambda mode: open(partial, mode), detectors, config, config.repair, progress=bar)
    return result.boxes, result.pts.tolist(), rounds, detectors.redact, _facts(result)


def _facts(result) -> dict:
    """What the proof says of a video input: frames its container lists; how it asked to be shown (its
    display matrix: the output holds the picture so turned, and the masked boxes are in its coordinates)."""
    return {"input_frames_listed": result.listed, "input_display": result.display.describe()}


def redact_file(source: Path, target: Path, detectors: Detectors, config: RedactionConfig, policy_version: str, verify: bool = True,
                keep_failed: bool = False, progress: bool = False) -> dict:
    """Redact one file into ``target`` (only once verified), write its proof; returns a one-line summary.
    ``progress``: a video's frames counted on a bar on stderr, pass by pass (detect, mask, verify)."""
    if verify and not detectors.verifiers_loaded:  # an empty list of verifiers would pass every frame
        raise ValueError("verification asked of Detectors made with verify=False")
    if source.stat().st_size == 0:  # before anything is made for it
        raise CurationError(f"{source}: empty file")
    start = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.stem}.partial-{os.getpid()}{target.suffix}")
    still = _is_still(source)
    try:
        if still:
            boxes, pts, rounds, redactors, facts = _redact_still(source, partial, detectors, config, verify)
        else:
            boxes, pts, rounds, redactors, facts = _redact_video(source, partial, detectors, config, verify, progress)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    seconds = time.perf_counter() - start
    verification = rounds[-1] if rounds else None
    passed = verification is None or verification.passed
    kept = target if passed else failed_path(target) if keep_failed else None
    output_sha256 = _sha256(partial)
    if kept is None:
        partial.unlink()
    else:
        os.replace(partial, kept)
    proof = {
        "input": str(source), "input_sha256": _sha256(source), **facts, "output": str(kept) if kept else None,
        "output_sha256": output_sha256 if kept else None, "policy_version": policy_version, "method": config.method,
        "detectors": detectors.describe(redactors), "min_height_px": {CLASSES[c]: px for c, px in detectors.min_height.items()},
        "verification": "off" if verification is None else {
            "passed": verification.passed, "summary": verification.summary(), "frames": verification.frames, "expected": verification.expected,
            "findings": verification.findings,
            # What the second opinion found on the first output and was masked too (redaction.repair): kept as evidence.
            "repaired": repaired(rounds), "reused_frames": verification.reused},
        "frames": [{"index": i, "pts": int(p), "masked": d.to_items()} for i, (p, d) in enumerate(zip(pts, boxes))],
    }
    proof_path(target).write_text(json.dumps(proof, indent=1))
    summary = {"input": str(source), "output": str(kept) if kept else None, "proof": str(proof_path(target)), "frames": len(boxes),
               "fps": round(len(boxes) / seconds, 2),
               "face_tracks": _tracks(boxes, "face"), "plate_tracks": _tracks(boxes, "plate"),
               "verification": "off" if verification is None else ("passed" if passed else verification.summary()),
               "repaired": len(repaired(rounds))}
    listed = facts["input_frames_listed"]
    if listed and len(boxes) < listed:  # a cut file: what decodes is redacted, and the user is told the rest is not there
        summary["truncated"] = f"{len(boxes)} of the {listed} frames its container lists decode"
    if verification is not None and verification.findings:
        summary["findings"] = verification.findings[:5]
    return summary


def _tracks(boxes: list[Detections], cls: str) -> int:
    return len({int(t) for d in boxes for t, c in zip(d.track_id, d.class_id) if CLASSES[int(c)] == cls})
