"""Redact a video as a stream: memory is bounded by a window of frames, never by the clip's length.

Two passes over the source (a path or a seekable binary file):

1. plan: decode frame by frame; run the detectors on every ``detect_every_s`` seconds of video
   (every frame below 20 fps) and on the last frame; walks on small crops follow each face and
   plate from frame to frame (curation.redaction.refine): forward on each new frame, backward
   through the last ``window_s`` seconds of frames, which is all that is held. Then detections are
   linked into tracks and every frame gets its boxes (curation.perception.tracks); boxes are small,
   so a whole clip's are kept.
2. encode: decode again, mask every frame (or blank it in a restricted zone), encode H.264 with the
   source's own timestamps and colours (curation.media.video.writer_rgb: outside the masks a
   pixel keeps its YUV values, up to x264's loss), no audio, no container metadata, and the SEI
   telemetry rewritten with coarsened positions (dropped on blanked frames).

A stream whose display matrix asks to turn or mirror it (a phone held upright) is decoded as shown
(curation.media.display), so detectors see faces upright; the output holds that picture and no matrix.

Verification (curation.redaction.verify) is a third pass, over the output.

Example:
    >>> result = redact_video("clip.mp4", "out.mp4", detectors, RedactionConfig.from_params(params, "cn"))   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import io
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import av
import numpy as np

from curation._env import trim_heap
from curation.errors import RedactionError
from curation.media.prefetch import prefetch
from curation.media.display import Display
from curation.media.video import Colour, VideoWriter, writer_rgb
from curation.perception.boxes import CLASSES, Detections
from curation.perception.tracks import TrackConfig, cover, dense_boxes, link
from curation.policy.zones import coarsen
from curation.redaction.masks import blank, redact
from curation.redaction.refine import Walker, attach
from curation.sources.sei import Telemetry, sei_nal, telemetry_in_packet

if TYPE_CHECKING:
    from tqdm import tqdm

__all__ = ["RedactionConfig", "RedactionResult", "redact_video", "encode", "add_boxes", "detect_keyframes", "min_heights", "stream_frames",
           "phase"]

WALK_MIN_FPS = 20.0
TRIM_EVERY = 8  # decoded frames between heap trims (curation._env.trim_heap)
PREFETCH_FRAMES = 4  # decoded ahead of the detectors, in a thread: memory grows by these few frames only


def phase(progress: "tqdm | None", name: str, total: int | None) -> None:
    """Start pass ``name`` (of ``total`` frames, None: unknown) on a file's progress bar, if it has one:
    one bar per file, counted again from zero by each pass (detect, mask, verify)."""
    if progress is not None:
        progress.set_postfix_str(name, refresh=False)
        progress.reset(total=total)


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
    window_s: float = 1.5  # frames held for backward walks: the memory bound
    track: TrackConfig = TrackConfig()
    crf: int = 20
    preset: str = "ultrafast"
    gps_precision_m: float | None = 1000.0  # coarsen SEI positions; None drops SEI entirely
    repair: bool = True  # mask what the verifiers still find, then verify again (curation.redaction.verify)
    min_height: dict = field(default_factory=dict)  # class id -> policy minimum (px); walks follow objects from half of it

    @classmethod
    def from_params(cls, params, region: str) -> "RedactionConfig":
        policy, stage = params.region(region), params.redaction
        return cls(method=policy.redact.method, faces=policy.redact.faces, plates=policy.redact.plates,
                   detect_every_s=stage.detect_every_s, window_s=stage.window_s,
                   track=TrackConfig(**stage.track.model_dump()), crf=stage.crf, preset=stage.preset, gps_precision_m=policy.gps_precision_m,
                   repair=stage.repair, min_height=min_heights(policy.redact))


@dataclass
class RedactionResult:
    frames: int
    boxes: list[Detections]  # what was masked on each frame
    blanked: np.ndarray
    pts: np.ndarray
    keyframes: list[int]
    seconds: dict  # time per phase
    size: tuple[int, int]  # width, height
    rate: float  # frames per second: how many frames extend_s is
    listed: int | None = None  # frames the source's container lists (up to max_frames; None: it does not say)
    display: Display = Display()  # how the source asked to be shown: how its frames, boxes and output are turned


def detect_keyframes(frames: dict[int, np.ndarray], detectors: list) -> dict[int, Detections]:
    """Run every detector on the given frames; merged Detections per frame index."""
    indices = sorted(frames)
    found = [detector([frames[i] for i in indices]) for detector in detectors]
    return {i: Detections.merge([per[n] for per in found]) for n, i in enumerate(indices)}


@dataclass(frozen=True)
class _Stream:
    width: int
    height: int
    rate: float
    time_base: object
    frames: int | None = None  # as the container says (None: it does not)
    display: Display = Display()  # how the source asks to be shown; frames come as shown
    colour: Colour = Colour()  # what the YUV values of frames decoded with ``exact`` mean (the first frame's, like the display)


def _name(source) -> str:
    """How an error names a source: its path, or its file object's name."""
    return str(source) if isinstance(source, (str, os.PathLike)) else str(getattr(source, "name", "input"))


def stream_frames(source, limit: int | None = None, info: list | None = None,
                  exact: bool = False) -> Iterator[tuple[int, np.ndarray, Telemetry | None]]:
    """(pts, RGB frame as shown, SEI telemetry of that frame) of ``source`` (a path, a seekable binary
    file or bytes) in display order, one at a time, until ``limit`` frames, the end, or the first
    undecodable packet (a damaged tail). ``info`` (a list) receives the stream's size as shown, rate,
    time base, display and colour with the first frame. ``exact``: RGB the writer turns back into
    the same YUV values (to re-encode); otherwise swscale's, in the stream's own matrix (to look at).
    Frames are decoded in a thread, a few ahead of the caller (curation.media.prefetch)."""
    return prefetch(_decoded_frames(source, limit, info, exact), PREFETCH_FRAMES)


def _decoded_frames(source, limit: int | None, info: list | None, exact: bool) -> Iterator[tuple[int, np.ndarray, Telemetry | None]]:
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    if hasattr(source, "seek"):
        source.seek(0)
    try:
        container = av.open(source, "r")
    except (av.error.FFmpegError, UnicodeDecodeError, OSError) as error:  # OSError: an empty file cannot even be seeked in
        raise RedactionError(f"{_name(source)}: not a readable video ({error})") from None
    try:
        if not container.streams.video:
            raise RedactionError(f"{_name(source)}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        telemetry: dict[int, Telemetry | None] = {}
        count, display = 0, None
        try:
            for packet in container.demux(stream):
                if packet.size and packet.pts is not None:
                    telemetry[int(packet.pts)] = telemetry_in_packet(bytes(packet))
                for frame in packet.decode():
                    display = display or Display.of(frame)
                    image, colour = writer_rgb(frame) if exact else (frame.to_ndarray(format="rgb24"), Colour())
                    image = display.apply(image)
                    if info is not None and not info:  # the size as shown: a turned stream's sides swap
                        info.append(_Stream(image.shape[1], image.shape[0], float(stream.average_rate or stream.guessed_rate or 10),
                                            stream.time_base, stream.frames or None, display, colour))
                    yield frame.pts, image, telemetry.pop(frame.pts, None)
                    count += 1
                    if count % TRIM_EVERY == 0:
                        trim_heap()  # freed frames' heap pages back to the OS: memory flat in clip length
                    if limit is not None and count >= limit:
                        return
        except av.error.FFmpegError:
            return  # a damaged tail: ingest kept only the decodable prefix, the same frames come here
    finally:
        container.close()


def _coarse_sei(telemetry: Telemetry | None, precision_m: float | None) -> bytes | None:
    if telemetry is None or precision_m is None:
        return None
    if (telemetry.latitude_deg, telemetry.longitude_deg) == (0.0, 0.0):
        return sei_nal(telemetry)
    lat, lon = coarsen(np.array([telemetry.latitude_deg]), np.array([telemetry.longitude_deg]), precision_m)
    return sei_nal(dataclasses.replace(telemetry, latitude_deg=float(lat[0]), longitude_deg=float(lon[0])))


def _plan(source, detectors: list, config: RedactionConfig, max_frames: int | None, progress: "tqdm | None" = None):
    """Pass 1: keyframe detections and walks over a bounded window; returns tracks and the stream's facts."""
    info: list[_Stream] = []
    walkers = [Walker(d, config.min_height.get(d.class_id, 0) / 2) for d in detectors if hasattr(d, "detect_crops")]
    keyframes: dict[int, Detections] = {}
    window: dict[int, np.ndarray] = {}
    pts: list[int] = []
    stride = span = 1
    for index, (frame_pts, image, _) in enumerate(stream_frames(source, max_frames, info)):
        if index == 0:
            if max_frames is not None and info[0].frames is not None:
                info[0] = dataclasses.replace(info[0], frames=min(max_frames, info[0].frames))  # what this run will decode at most
            phase(progress, "detect", info[0].frames)
            rate = info[0].rate
            # Walks follow an object from frame to frame; below WALK_MIN_FPS a face passing close to the car
            # moves too far between frames for a crop to hold it (measured at 10 fps), so every frame is a keyframe.
            stride = max(1, int(round(rate * config.detect_every_s))) if rate >= WALK_MIN_FPS else 1
            span = max(stride + 1, int(round(rate * config.window_s)))
        window[index] = image
        window.pop(index - span, None)
        pts.append(frame_pts)
        found = detect_keyframes({index: image}, detectors)[index] if index % stride == 0 else None
        if found is not None:
            keyframes[index] = found
        for walker in walkers:
            walker.frame(index, image, found, window)
        if progress is not None:
            progress.update()
    n = len(pts)
    if not n:
        raise RedactionError("no frame decodes")
    if (n - 1) % stride:  # the last frame anchors the backward extension
        keyframes[n - 1] = detect_keyframes({n - 1: window[n - 1]}, detectors)[n - 1]
        for walker in walkers:
            walker.frame(n - 1, window[n - 1], keyframes[n - 1], window, step=False)
    tracks = attach(link(keyframes, config.track, stride), keyframes, [f for walker in walkers for f in walker.found])
    return tracks, keyframes, np.array(pts, np.int64), info[0]


def redact_video(source, target, detectors: list, config: RedactionConfig, blank_frames: np.ndarray | None = None,
                 max_frames: int | None = None, manual: dict[int, Detections] | None = None, progress: "tqdm | None" = None) -> RedactionResult:
    """Redact ``source`` (a path, seekable binary file or bytes) into ``target`` (a path or binary
    file); returns what was masked on each frame. ``progress``: a bar to count frames on, per pass.

    ``manual`` holds boxes people drew in the review app (frame index -> Detections): they are
    tracked on their own, extended and grown like any detection, and masked on top."""
    start = time.perf_counter()
    tracks, keyframes, pts, stream = _plan(source, detectors, config, max_frames, progress)
    n = len(pts)
    boxes = add_boxes(cover(tracks, n, config.track, stream.rate, size=(stream.width, stream.height)), manual or {}, config,
                      (stream.width, stream.height), stream.rate)
    blanked = np.zeros(n, bool) if blank_frames is None else np.asarray(blank_frames[:n], bool)
    result = RedactionResult(n, boxes, blanked, pts, sorted(keyframes), {"plan_s": time.perf_counter() - start}, (stream.width, stream.height),
                             stream.rate, stream.frames, stream.display)
    encode(source, target, result, config, progress)
    return result


def add_boxes(boxes: list[Detections], extra: dict[int, Detections], config: RedactionConfig, size: tuple[int, int], rate: float,
              track_offset: int = 100_000, extend: bool = True, every: int | None = None) -> list[Detections]:
    """Per-frame boxes with ``extra`` boxes (frame -> Detections) tracked on their own, grown like any
    detection (and with ``extend``, extended beyond the first and last), masked on top: people's drawn
    boxes, verifiers' findings (``every`` 1: they looked at every frame, see tracks.link)."""
    extra = {i: d for i, d in extra.items() if i < len(boxes) and len(d)}
    if not extra:
        return boxes
    track = config.track if extend else dataclasses.replace(config.track, extend_s=0.0)
    added = dense_boxes(extra, len(boxes), track, rate, size=size, every=every)
    return [Detections.merge([auto, Detections(m.xyxy, m.confidence, m.class_id, m.track_id + track_offset)]) for auto, m in zip(boxes, added)]


def encode(source, target, result: RedactionResult, config: RedactionConfig, progress: "tqdm | None" = None) -> None:
    """Pass 2: decode ``source`` again and write every frame masked with ``result.boxes`` (or blanked)
    to ``target``. Decoding, masking and encoding run in three threads, a few frames apart."""
    start = time.perf_counter()
    phase(progress, "mask", result.frames)
    info: list[_Stream] = []
    written = 0
    writer = None
    try:
        for frame_pts, image, sei in prefetch(_masked_frames(source, result, config, info), PREFETCH_FRAMES):
            if writer is None:
                stream = info[0]
                writer = VideoWriter(target, stream.width, stream.height, stream.rate, crf=config.crf, preset=config.preset,
                                     time_base=stream.time_base, colour=stream.colour)
            writer.write(image, sei=sei, pts=frame_pts)
            written += 1
            if progress is not None:
                progress.update()
    finally:
        if writer is not None:
            writer.close()
    if written != result.frames:
        raise RedactionError(f"the second decode stopped after {written} of {result.frames} frames")
    result.seconds["mask_encode_s"] = result.seconds.get("mask_encode_s", 0.0) + time.perf_counter() - start


def _masked_frames(source, result: RedactionResult, config: RedactionConfig, info: list) -> Iterator[tuple[int, np.ndarray, bytes | None]]:
    """(pts, masked or blanked frame, SEI to write with it) of ``source`` as ``result`` says."""
    for index, (frame_pts, image, telemetry) in enumerate(stream_frames(source, result.frames, info, exact=True)):
        if frame_pts != result.pts[index]:
            raise RedactionError(f"frame {index}: the second decode gave pts {frame_pts}, the first {result.pts[index]}")
        if result.blanked[index]:
            yield frame_pts, blank(image), None
        else:
            yield frame_pts, redact(image, result.boxes[index], config.method), _coarse_sei(telemetry, config.gps_precision_m)
