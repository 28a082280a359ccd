"""Redact a video: sparse detection, dense coverage, masking, re-encoding with proof data.

Pipeline per clip (decoding overlaps keyframe detection in a thread; ONNX Runtime, torch and x264
release the GIL; overlapping encoding too gained 0.1 s in 1.7 on two cores, so it runs after):

1. decode every frame; run the detectors every ``detect_every_s`` seconds of video (every frame
   below 20 fps) and on the last frame;
2. link detections into tracks, follow each face and plate from frame to frame with detection on
   small crops around it (curation.redaction.refine; on keyframes too, where the enlarged crop
   finds small objects the full-frame pass missed), and give every frame its boxes
   (curation.perception.tracks);
3. mask every frame (or blank it when it lies in a restricted zone), encode H.264 with the
   source's own timestamps, no audio, no container metadata, and the SEI telemetry rewritten
   with coarsened positions (dropped on blanked frames).

Example:
    >>> result = redact_video(data, "out.mp4", detectors, RedactionConfig.from_params(params, "cn"))   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import io
import queue
import threading
import time
from dataclasses import dataclass, field

import av
import numpy as np

from curation.media.video import VideoWriter, probe
from curation.perception.boxes import CLASSES, Detections
from curation.policy.zones import coarsen
from curation.perception.tracks import TrackConfig, cover, dense_boxes, link
from curation.redaction.masks import blank, redact
from curation.redaction.refine import refine_tracks
from curation.sources.sei import Telemetry, sei_nal

__all__ = ["RedactionConfig", "RedactionResult", "redact_video", "detect_keyframes", "min_heights"]

WALK_MIN_FPS = 20.0


def min_heights(rules) -> dict[int, int]:
    """Class id -> the policy's minimum height (px) of a face or plate that must be masked."""
    return {CLASSES.index("face"): rules.min_face_px, CLASSES.index("plate"): rules.min_plate_px}


@dataclass(frozen=True)
class RedactionConfig:
    """Everything the per-frame work needs, from the region's policy and the stage's params."""

    method: str = "blur"
    faces: bool = True
    plates: bool = True
    detect_every_s: float = 0.2
    track: TrackConfig = TrackConfig()
    crf: int = 20
    preset: str = "ultrafast"
    gps_precision_m: float | None = 1000.0  # coarsen SEI positions; None drops SEI entirely
    min_height: dict = field(default_factory=dict)  # class id -> policy minimum (px); walks follow objects from half of it

    @classmethod
    def from_params(cls, params, region: str) -> "RedactionConfig":
        policy, stage = params.region(region), params.redaction
        return cls(method=policy.redact.method, faces=policy.redact.faces, plates=policy.redact.plates,
                   detect_every_s=stage.detect_every_s,
                   track=TrackConfig(**stage.track.model_dump()), crf=stage.crf, preset=stage.preset, gps_precision_m=policy.gps_precision_m,
                   min_height=min_heights(policy.redact))


@dataclass
class RedactionResult:
    frames: int
    boxes: list[Detections]  # what was masked on each frame
    blanked: np.ndarray
    pts: np.ndarray
    keyframes: list[int]
    seconds: dict = field(default_factory=dict)


def detect_keyframes(frames: dict[int, np.ndarray], detectors: list) -> dict[int, Detections]:
    """Run every detector on the given frames; merged Detections per frame index."""
    indices = sorted(frames)
    found = [detector([frames[i] for i in indices]) for detector in detectors]
    return {i: Detections.merge([per[n] for per in found]) for n, i in enumerate(indices)}


def _coarse_sei(telemetry: Telemetry | None, precision_m: float | None) -> bytes | None:
    if telemetry is None or precision_m is None:
        return None
    if (telemetry.latitude_deg, telemetry.longitude_deg) == (0.0, 0.0):
        return sei_nal(telemetry)
    lat, lon = coarsen(np.array([telemetry.latitude_deg]), np.array([telemetry.longitude_deg]), precision_m)
    return sei_nal(dataclasses.replace(telemetry, latitude_deg=float(lat[0]), longitude_deg=float(lon[0])))


def redact_video(data: bytes, target, detectors: list, config: RedactionConfig, blank_frames: np.ndarray | None = None,
                 max_frames: int | None = None, manual: dict[int, Detections] | None = None) -> RedactionResult:
    """Redact an in-memory MP4 into ``target`` (path or binary file); returns what was masked.

    ``manual`` holds boxes people drew in the review app (frame index -> Detections): they are
    tracked on their own, extended and grown like any detection, and masked on top."""
    timings = {}
    start = time.perf_counter()
    info = probe(data, decode=False)
    container = av.open(io.BytesIO(data))
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    rate, time_base = stream.average_rate or stream.guessed_rate or 10, stream.time_base  # read before close()
    # Walks follow an object from frame to frame; below WALK_MIN_FPS a face passing close to the car
    # moves too far between frames for a crop to hold it (measured at 10 fps), so every frame is a keyframe.
    stride = max(1, int(round(float(rate) * config.detect_every_s))) if float(rate) >= WALK_MIN_FPS else 1
    frames, pts = [], []
    keyframes: dict[int, Detections] = {}
    pending: queue.Queue = queue.Queue(maxsize=8)

    def detect_worker():
        while (item := pending.get()) is not None:
            keyframes.update(detect_keyframes(dict([item]), detectors))

    worker = threading.Thread(target=detect_worker, daemon=True)
    worker.start()
    try:
        for frame in container.decode(stream):
            index = len(frames)
            if max_frames is not None and index >= max_frames:
                break
            image = frame.to_ndarray(format="rgb24")
            frames.append(image)
            pts.append(frame.pts)
            if index % stride == 0:
                pending.put((index, image))
    except av.error.FFmpegError:
        pass  # a damaged tail: ingest kept only the decodable prefix, redact the same frames
    finally:
        container.close()
    n = len(frames)
    if n and (n - 1) % stride:
        pending.put((n - 1, frames[-1]))  # the last frame anchors the backward extension
    pending.put(None)
    worker.join()
    timings["decode_detect_s"] = time.perf_counter() - start
    start = time.perf_counter()
    tracks = link(keyframes, config.track)
    for detector in detectors:
        if hasattr(detector, "detect_crops"):
            tracks = refine_tracks(tracks, frames, detector, config.min_height.get(detector.class_id, 0) / 2)
    timings["refine_s"] = time.perf_counter() - start
    height, width = frames[0].shape[:2] if frames else (0, 0)
    boxes = cover(tracks, n, config.track, size=(width, height))
    if manual:
        drawn = dense_boxes({i: d for i, d in manual.items() if i < n}, n, config.track, size=(width, height))
        boxes = [Detections.merge([auto, Detections(m.xyxy, m.confidence, m.class_id, m.track_id + 100_000)]) for auto, m in zip(boxes, drawn)]
    blanked = np.zeros(n, bool) if blank_frames is None else np.asarray(blank_frames[:n], bool)
    start = time.perf_counter()
    with VideoWriter(target, width, height, float(rate), crf=config.crf, preset=config.preset, time_base=time_base) as writer:
        for index, image in enumerate(frames):
            telemetry = info.telemetry[index] if index < len(info.telemetry) else None
            if blanked[index]:
                writer.write(blank(image), pts=pts[index])
            else:
                writer.write(redact(image, boxes[index], config.method), sei=_coarse_sei(telemetry, config.gps_precision_m), pts=pts[index])
    timings["mask_encode_s"] = time.perf_counter() - start
    return RedactionResult(n, boxes, blanked, np.array(pts, np.int64), sorted(keyframes), timings)
