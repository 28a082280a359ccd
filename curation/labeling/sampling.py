"""Which frames to label: a steady rate by presentation time, and everything around telemetry triggers.

Sampling by PTS (not by frame number) keeps the rate the same for 10, 30 or 36 fps cameras and
for clips with dropped frames. Triggers come from the SEI telemetry ingest stored per frame: hard
braking (brake on and deceleration at least ``hard_brake_mps2``) and autopilot disengaging.

Example:
    >>> sampled, near = sample_frames(np.arange(20) / 10, 0.5, np.zeros(20, bool), 1.0)
    >>> np.flatnonzero(sampled).tolist()
    [0, 5, 10, 15]
"""

from __future__ import annotations

import numpy as np

__all__ = ["sample_frames", "telemetry_triggers"]


def sample_frames(seconds: np.ndarray, every_s: float, triggers: np.ndarray, window_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(sampled, near_trigger) masks: the first frame of each ``every_s`` interval, plus every frame within
    ``window_s`` of a trigger."""
    seconds = np.asarray(seconds, np.float64)
    if not len(seconds):
        return np.zeros(0, bool), np.zeros(0, bool)
    bucket = np.floor((seconds - seconds[0]) / every_s + 1e-9)
    first = np.r_[True, bucket[1:] != bucket[:-1]]
    moments = seconds[np.asarray(triggers, bool)]
    near = (np.abs(seconds[:, None] - moments[None]) <= window_s + 1e-9).any(1) if len(moments) else np.zeros(len(seconds), bool)
    return first | near, near


def telemetry_triggers(seconds: np.ndarray, speed: list, brake: list, autopilot: list, hard_brake_mps2: float) -> np.ndarray:
    """Frames where hard braking is going on or the autopilot just disengaged (None = no telemetry)."""
    seconds = np.asarray(seconds, np.float64)
    n = len(seconds)
    speed_v = np.array([np.nan if v is None else v for v in speed], np.float64)
    braking = np.array([bool(b) for b in brake], bool)
    hard = np.zeros(n, bool)
    if n > 1 and np.isfinite(speed_v).sum() > 1:
        ok = np.isfinite(speed_v)
        deceleration = -np.gradient(np.interp(seconds, seconds[ok], speed_v[ok]), seconds)
        hard = braking & (deceleration >= hard_brake_mps2)
    engaged = np.array([a not in (None, "NONE") for a in autopilot], bool)
    disengaged = np.r_[False, engaged[:-1] & ~engaged[1:]] if n else np.zeros(0, bool)
    known = np.array([a is not None for a in autopilot], bool)
    return hard | (disengaged & known)
