"""The per-clip unit of label@R, run by the engine in worker processes (or Ray actors).

A worker loads the labeler and the lane model once, then per task: streams the verified redacted
output, labels the sampled frames a window at a time and returns the clip's rows. It writes no
file, no catalog row and no audit record: the stage's commit step does (curation.labeling.stage).

Example:
    >>> for result in run(LabelClip(), tasks, store): ...      # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np

from curation.engine import Resources, Result, Stage, Task
from curation.labeling.stream import decode_sampled, label_stream
from curation.perception.labeler import Labeler
from curation.perception.lane_net import lane_detector
from curation.perception.tracks import TrackConfig
from curation.storage.records import Detection, FrameEmbedding, LaneLine, Track

__all__ = ["LabelClip", "tracks_of"]


class LabelClip(Stage):
    """Task payload: ``{"source": key of the verified output, "sampled": [frame index], "near": [frame index]}``
    (near: sampled because of a telemetry trigger)."""

    name, resources = "label", Resources(cpus=1.0)

    def setup(self, store) -> None:
        super().setup(store)
        config = store.params.label
        self.labeler = Labeler(config)
        self.lanes = lane_detector(config.lanes)
        self.track_config = TrackConfig(**config.track.model_dump())

    def process(self, task: Task) -> Result:
        payload, clip_id, labeler = task.payload, task.id, self.labeler
        sampled, near = set(payload["sampled"]), set(payload["near"])
        # Stream the redacted file: frames are decoded, labeled a window at a time and dropped.
        with self.store.open(payload["source"]) as source:
            chosen = decode_sampled(source, lambda index, _: index in sampled)
            labeled = label_stream(chosen, labeler, self.lanes, self.track_config, embed=True)
        detections, lane_rows = [], []
        for f in labeled:
            boxes = f.boxes
            for n, (box, confidence, cls, track, attr, name) in enumerate(zip(boxes.xyxy, boxes.confidence, boxes.class_id, boxes.track_id,
                                                                             f.attributes, f.names)):
                detections.append(Detection(f"{clip_id}:{f.index}:{n}", clip_id, f.index, f.pts, labeler.classes[int(cls)],
                                            json.dumps(attr, sort_keys=True), *(round(float(v), 1) for v in box), round(float(confidence), 4),
                                            int(track), name, labeler.name, f.index in near))
            for k, lane in enumerate(f.lanes):
                lane_rows.append(LaneLine(clip_id, f.index, f.pts, k, lane.type, lane.color, json.dumps(lane.xs), json.dumps(lane.ys),
                                          lane.confidence, self.lanes.name))
        # The clip's rows by catalog table, and which frames were labeled.
        record = {"detections": detections, "tracks": tracks_of(clip_id, detections), "lane_lines": lane_rows,
                  "frame_embeddings": [FrameEmbedding(clip_id, f.index, tuple(f.embedding)) for f in labeled],
                  "indices": [f.index for f in labeled], "trigger_frames": sum(f.index in near for f in labeled)}
        return Result(task.id, record=record)


def tracks_of(clip_id: str, detections: list[Detection]) -> list[Track]:
    """One row per track: its most common attribute values, first and last PTS, confidence."""
    by_track: dict[int, list[Detection]] = {}
    for d in detections:
        if d.track >= 0:
            by_track.setdefault(d.track, []).append(d)
    tracks = []
    for track_id, members in sorted(by_track.items()):
        values: dict[str, Counter] = {}
        for d in members:
            for key, value in json.loads(d.attrs).items():
                values.setdefault(key, Counter())[value] += 1
        attrs = {key: counter.most_common(1)[0][0] for key, counter in sorted(values.items())}
        confidence = [d.confidence for d in members]
        tracks.append(Track(clip_id, track_id, members[0].label, json.dumps(attrs), members[0].pts, members[-1].pts, len(members),
                            round(float(np.mean(confidence)), 4), round(float(min(confidence)), 4)))
    return tracks
