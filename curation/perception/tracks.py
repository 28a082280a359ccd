"""Dense coverage from sparse detections: link, interpolate, extend.

Detection runs on every ``stride``-th frame; redaction must hold on every frame. Detections are
linked into tracks across keyframes (IoU of boxes enlarged by the expected motion, gaps of up to
``max_gap`` missed keyframes bridged), then each track yields a box on every frame: linear
interpolation between its detections, extrapolation for ``extend_s`` seconds before its first and
after its last detection (forward and backward in time; a duration, so 10 fps and 36 fps cameras
get the same), and a margin that grows with the distance
to the nearest real detection and with the object's speed (faces accelerate across the image as
they come close). A face the detector misses for a few frames stays covered.

Example:
    >>> boxes = dense_boxes({0: dets0, 4: dets4}, n_frames=8, config=TrackConfig(), rate=30.0)   # doctest: +SKIP
    >>> len(boxes)   # one Detections per frame
    8
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from curation.perception.boxes import Detections, iou_matrix

__all__ = ["TrackConfig", "link", "path", "extend_frames", "cover", "dense_boxes", "VERSION"]

VERSION = "keyframe-iou-reach-interp-crop-walks/5"  # walks: curation.redaction.refine; /5: gaps count looks (repairs)


@dataclass(frozen=True)
class TrackConfig:
    max_gap: int = 2  # missed keyframes a track survives
    # Seconds covered before the first and after the last detection. Short: walks already follow each
    # object frame by frame, and every extended frame of a fast face near the camera masks a large,
    # growing box (on the simulator's 10 fps us clips 0.8 s masked 23 % of the sign and light area, one frame 5 %).
    extend_s: float = 0.1
    margin: float = 0.15  # box enlargement at a detection (share of size, each side)
    margin_growth: float = 0.06  # extra enlargement per frame away from a detection
    link_iou: float = 0.05  # enlarged boxes must overlap at least this much to link
    link_reach: float = 2.0  # or their centres lie within this many box sizes per keyframe gap
    max_margin: float = 0.6  # growth stops here: a stale box must not swallow the frame
    speed_margin: float = 0.5  # extra enlargement per frame away from a detection, in shares of the per-frame motion


def _enlarge(xyxy: np.ndarray, share) -> np.ndarray:
    w, h = xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]
    share = np.broadcast_to(np.asarray(share, np.float32), (len(xyxy),))
    return np.stack([xyxy[:, 0] - w * share, xyxy[:, 1] - h * share, xyxy[:, 2] + w * share, xyxy[:, 3] + h * share], 1)


def _proximity(a: np.ndarray, b: np.ndarray, gap: np.ndarray, reach: float) -> np.ndarray:
    """Link score for fast movers whose boxes no longer overlap: centre distance against size.

    A face passing close to a moving car crosses its own width in a frame or two; IoU alone
    would start a new, motionless track on every detection.
    """
    ca, cb = (a[:, :2] + a[:, 2:]) / 2, (b[:, :2] + b[:, 2:]) / 2
    size_a, size_b = (a[:, 2:] - a[:, :2]).max(1), (b[:, 2:] - b[:, :2]).max(1)
    distance = np.linalg.norm(ca[:, None] - cb[None], axis=2)
    similar = np.minimum(size_a[:, None], size_b[None]) / np.maximum(np.maximum(size_a[:, None], size_b[None]), 1e-6) > 0.5
    allowed = reach * np.maximum(size_a[:, None], size_b[None]) * gap[:, None]
    return np.where(similar & (distance < allowed), 0.5 * (1 - distance / allowed), 0.0).astype(np.float32)


def link(keyframes: dict[int, Detections], config: TrackConfig, every: int | None = None) -> list[list[tuple[int, np.ndarray, int, float]]]:
    """Tracks as lists of (frame, box, class, confidence), greedy by IoU of motion-enlarged boxes.

    Gaps count looks: with ``every``, detections were sought on every ``every``-th frame (1: on every
    frame, as the verifiers do), so two finds 87 frames apart are 87 looks apart and not one object;
    without it, each key is the next look (boxes drawn by people, on the frames they chose)."""
    tracks: list[list] = []
    open_tracks: list[int] = []
    frames = sorted(keyframes)
    # A frame off the grid (the clip's last, detected to anchor the end) counts as the next look.
    looks = [-(-frame // every) for frame in frames] if every else range(len(frames))
    for position, frame in zip(looks, frames):
        detections = keyframes[frame]
        candidates = [t for t in open_tracks if position - tracks[t][-1][4] <= config.max_gap + 1]
        used = set()
        if candidates and len(detections):
            last = np.stack([tracks[t][-1][1] for t in candidates])
            gap = np.array([position - tracks[t][-1][4] for t in candidates], np.float32)
            scores = np.maximum(iou_matrix(_enlarge(last, 0.5 * gap), _enlarge(detections.xyxy, 0.5)),
                                _proximity(last, detections.xyxy, gap, config.link_reach))
            same_class = np.array([[tracks[t][-1][2] == c for c in detections.class_id] for t in candidates])
            scores = np.where(same_class, scores, 0)
            for _ in range(min(scores.shape)):
                i, j = np.unravel_index(np.argmax(scores), scores.shape)
                if scores[i, j] < config.link_iou:
                    break
                tracks[candidates[i]].append((frame, detections.xyxy[j], int(detections.class_id[j]), float(detections.confidence[j]), position))
                used.add(j)
                scores[i, :], scores[:, j] = -1, -1
        for j in range(len(detections)):
            if j not in used:
                tracks.append([(frame, detections.xyxy[j], int(detections.class_id[j]), float(detections.confidence[j]), position)])
                open_tracks.append(len(tracks) - 1)
        open_tracks = [t for t in open_tracks if position - tracks[t][-1][4] <= config.max_gap]
    return [[entry[:4] for entry in track] for track in tracks]


def path(track: list, frames: np.ndarray) -> np.ndarray:
    """A track's box on the given frames: linear between its detections, and before the first and
    after the last one at the velocity of the nearest pair of detections (forward and backward)."""
    times = np.array([t for t, _, _, _ in track], np.float32)
    boxes = np.stack([b for _, b, _, _ in track]).astype(np.float32)
    frames = np.asarray(frames, np.float32)
    if len(track) == 1:
        return np.repeat(boxes[:1], len(frames), 0)
    out = np.stack([np.interp(frames, times, boxes[:, k]) for k in range(4)], 1)
    before, after = frames < times[0], frames > times[-1]
    v0 = (boxes[1] - boxes[0]) / max(times[1] - times[0], 1)
    v1 = (boxes[-1] - boxes[-2]) / max(times[-1] - times[-2], 1)
    out[before] = boxes[0] + v0 * (frames[before] - times[0])[:, None]
    out[after] = boxes[-1] + v1 * (frames[after] - times[-1])[:, None]
    return out


def extend_frames(config: TrackConfig, rate: float) -> int:
    """``config.extend_s`` in frames at ``rate`` fps: at least one frame when it is not zero."""
    return max(1, int(round(config.extend_s * rate))) if config.extend_s > 0 else 0


def cover(tracks: list, n_frames: int, config: TrackConfig, rate: float, size: tuple[int, int] | None = None) -> list[Detections]:
    """One Detections per frame (track ids set), covering every frame each track could be visible on
    (``rate``: frames per second): its path from ``extend_s`` before its first to ``extend_s`` after
    its last detection, with a margin that grows with the distance to the nearest detection."""
    per_frame: list[list] = [[] for _ in range(n_frames)]
    extend = extend_frames(config, rate)
    for track_id, track in enumerate(tracks):
        times = np.array([t for t, _, _, _ in track], np.float32)
        cls, confidence = track[0][2], max(c for _, _, _, c in track)
        start, end = max(0, int(times[0]) - extend), min(n_frames - 1, int(times[-1]) + extend)
        frames = np.arange(start, end + 1, dtype=np.float32)
        distance = np.min(np.abs(frames[:, None] - times[None, :]), 1)
        boxes = path(track, frames)
        enlarged = _enlarge(boxes, np.minimum(config.margin + config.margin_growth * distance, config.max_margin))
        if len(frames) > 1:  # a fast object's position is uncertain in proportion to its speed
            centres = (boxes[:, :2] + boxes[:, 2:]) / 2
            slack = config.speed_margin * np.abs(np.gradient(centres, axis=0)) * distance[:, None]
            # ...but a mask is never much larger than the object could be: at most max_margin more each side.
            slack = np.minimum(slack, config.max_margin * (boxes[:, 2:] - boxes[:, :2]))
            enlarged += np.concatenate([-slack, slack], 1)
        if size is not None:
            enlarged = np.clip(enlarged, 0, [size[0], size[1], size[0], size[1]])
        for frame, box in zip(frames.astype(int), enlarged):
            if box[2] > box[0] and box[3] > box[1]:
                per_frame[frame].append((box, cls, confidence, track_id))
    return [Detections(np.array([b for b, _, _, _ in items], np.float32).reshape(-1, 4), [c for _, _, c, _ in items],
                       [k for _, k, _, _ in items], [t for _, _, _, t in items]) for items in per_frame]


def dense_boxes(keyframes: dict[int, Detections], n_frames: int, config: TrackConfig, rate: float,
                size: tuple[int, int] | None = None, every: int | None = None) -> list[Detections]:
    """One Detections per frame from sparse detections: :func:`cover` of :func:`link`."""
    return cover(link(keyframes, config, every), n_frames, config, rate, size)
