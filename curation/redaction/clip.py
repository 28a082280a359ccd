"""The per-clip unit of redact@R, run by the engine in worker processes (or Ray actors).

A worker sets up the region's detectors once, then per task: streams the source through
:func:`~curation.redaction.video.redact_video` into the task's temporary key in the region's store,
verifies the output with the independent detectors, and returns a record. It never writes the
catalog or the audit log and never moves its output into place: the stage's commit step does, and
only for a verified output (curation.redaction.stage).

Example:
    >>> stage = RedactClip()                                   # doctest: +SKIP
    >>> for result in run(stage, tasks, store): ...            # doctest: +SKIP
"""

from __future__ import annotations

import time

import numpy as np

from curation.engine import Resources, Result, Stage, Task
from curation.perception.boxes import CLASSES, Detections
from curation.redaction.detectors import Detectors
from curation.redaction.verify import redact_verified, repaired, verify_video
from curation.redaction.video import RedactionConfig

__all__ = ["RedactClip"]


class RedactClip(Stage):
    """Task payload: ``{"kind": "redact", "source": key, "frames": n, "blank": [bool]*n, "manual": {index: items}}``
    or ``{"kind": "verify", "source": key of a stored output, "frames": n, "masked": [items]*n}``."""

    name, suffix, resources = "redact", ".mp4", Resources(cpus=1.0)

    def setup(self, store) -> None:
        super().setup(store)
        self.detectors = Detectors(store.params, store.region)
        self.config = RedactionConfig.from_params(store.params, store.region)

    def process(self, task: Task) -> Result:
        payload = task.payload
        if payload["kind"] == "verify":
            masked = [Detections.from_items(items) for items in payload["masked"]]
            with self.store.open(payload["source"]) as handle:
                verification = verify_video(handle, self.detectors.verify, self.detectors.min_height, masked, payload["frames"])
            return Result(task.id, record={"kind": "verify", "verification": verification})
        start = time.perf_counter()
        scratch = self.scratch(task)
        blank = None if payload.get("blank") is None else np.asarray(payload["blank"], bool)
        manual = {int(i): Detections.from_items(items) for i, items in (payload.get("manual") or {}).items()}
        with self.store.open(payload["source"]) as source:
            result, rounds = redact_verified(source, lambda mode: self.store.open(scratch, mode), self.detectors, self.config,
                                             self.config.repair, blank, payload["frames"], manual)
        tracks = {cls: len({int(t) for d in result.boxes for t, c in zip(d.track_id, d.class_id) if CLASSES[int(c)] == cls}) for cls in CLASSES}
        record = {"kind": "redact", "verification": rounds[-1], "repaired": repaired(rounds),
                  "frames": result.frames, "pts": result.pts.tolist(), "boxes": [d.to_items() for d in result.boxes],
                  "blanked": result.blanked.tolist(), "tracks": tracks, "output_sha256": self.store.sha256(scratch),
                  "seconds": {**result.seconds, "total_s": time.perf_counter() - start}}
        return Result(task.id, record=record, output=scratch)
