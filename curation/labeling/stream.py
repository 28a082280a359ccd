"""Label a stream of sampled frames with memory bounded by a window, not by the clip's length.

Frames arrive one at a time (from a decoder); every ``window`` of them is labeled in one batch
(objects, attributes, lane lines, embeddings) and dropped: only the labels stay. Tracks are linked
at the end from the boxes alone. label@R and `curation label` both run clips through here.

Example:
    >>> labeled = label_stream(((i, pts, rgb) for i, pts, rgb in sampled), labeler, lanes, TrackConfig())  # doctest: +SKIP
    >>> labeled[0].boxes.track_id                                                                     # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterable, Iterator

import av
import numpy as np

from curation.media.display import Display
from curation.perception.boxes import Detections
from curation.perception.labeler import Labeler
from curation.perception.lanes import Lane, LaneDetector
from curation.perception.tracks import TrackConfig, link

__all__ = ["LabeledFrame", "label_stream", "decode_sampled", "every"]


@dataclass
class LabeledFrame:
    index: int  # frame number in the clip (display order)
    pts: int
    width: int
    height: int
    boxes: Detections  # taxonomy class ids, track ids
    attributes: list[dict]
    names: list[str]  # the model's class name per box
    lanes: list[Lane]
    embedding: np.ndarray | None = field(default=None, repr=False)


def label_stream(frames: Iterable[tuple[int, int, np.ndarray]], labeler: Labeler, lanes: LaneDetector, track_config: TrackConfig,
                 window: int | None = None, embed: bool = False, progress=None) -> list[LabeledFrame]:
    """(index, pts, RGB frame) in -> LabeledFrame per frame, in order, with tracks linked.

    At most ``window`` frames (default: the labeler's batch) are held at once.
    """
    window = window or labeler.config.batch
    out: list[LabeledFrame] = []
    held: list[tuple[int, int, np.ndarray]] = []
    seen: list[tuple[float, float]] = []

    def steady(frame):
        """One camera per clip: the median of the clip's estimates so far steadies the horizon."""
        seen.append(lanes.vanishing(frame))
        return tuple(np.median(np.array(seen), 0)) if lanes.auto else seen[-1]

    def flush():
        pictures = [frame for _, _, frame in held]
        vanishing = [steady(frame) for frame in pictures]
        # A horizon found in the picture itself tells the lamp finder where lights can be.
        found = labeler(pictures, None)
        vectors = labeler.embed(pictures) if embed else [None] * len(pictures)
        people_and_cars = [c for c in (labeler.vehicles, labeler.classes.index("pedestrian") if "pedestrian" in labeler.classes else None)
                           if c is not None]
        for (index, pts, frame), (boxes, attrs, names), point, vector in zip(held, found, vanishing, vectors):
            occluders = boxes.xyxy[np.isin(boxes.class_id, people_and_cars)]
            out.append(LabeledFrame(index, pts, frame.shape[1], frame.shape[0], boxes, attrs, names,
                                    lanes(frame, occluders, point), vector))
        if progress is not None:
            progress.update(len(held))
        held.clear()

    for item in frames:
        held.append(item)
        if len(held) >= window:
            flush()
    if held:
        flush()
    _link(out, track_config)
    return out


def _link(frames: list[LabeledFrame], config: TrackConfig) -> None:
    """Track ids across the labeled frames, from the boxes (greedy IoU of motion-enlarged boxes)."""
    keyframes = {k: f.boxes for k, f in enumerate(frames)}
    ids = [np.full(len(f.boxes), -1, np.int64) for f in frames]
    for track_id, track in enumerate(link(keyframes, config)):
        for k, box, _, _ in track:
            same = np.flatnonzero((keyframes[k].xyxy == box).all(1) & (ids[k] < 0))
            ids[k][same[0]] = track_id
    for frame, track in zip(frames, ids):
        frame.boxes = Detections(frame.boxes.xyxy, frame.boxes.confidence, frame.boxes.class_id, track)


def decode_sampled(source: str | BinaryIO, choose: Callable[[int, float], bool]) -> Iterator[tuple[int, int, np.ndarray]]:
    """(index, pts, RGB) of the frames ``choose(index, seconds since the first frame)`` wants, in display
    order, until the end or the first undecodable packet; the others are decoded but never converted
    to RGB (a 1280x960 RGB frame costs 2 ms and 3.7 MB)."""
    try:
        container = av.open(source, "r")
    except av.error.FFmpegError:
        return  # not a video at all: nothing decodes
    try:
        if not container.streams.video:
            return
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        base, first, display = float(stream.time_base or 0), None, None
        for index, frame in enumerate(container.decode(stream)):
            pts = frame.pts if frame.pts is not None else index
            first = pts if first is None else first
            display = display or Display.of(frame)  # turned as shown (curation.media.display)
            if choose(index, (pts - first) * base):
                yield index, int(pts), display.apply(frame.to_ndarray(format="rgb24"))
    except av.error.FFmpegError:
        return
    finally:
        container.close()


def every(seconds: float) -> Callable[[int, float], bool]:
    """A ``choose`` for :func:`decode_sampled`: the first frame of each ``seconds`` of presentation time
    (what :func:`curation.labeling.sampling.sample_frames` picks without triggers)."""
    last = [None]

    def choose(index: int, t: float) -> bool:
        bucket = int(np.floor(t / seconds + 1e-9))
        if bucket != last[0]:
            last[0] = bucket
            return True
        return False

    return choose
