"""Label every verified redacted clip of a region: sampled frames, objects, tracks, lane lines.

Works on the redacted output only (``redacted/<clip>.mp4``, status verified): no unredacted pixel
is read, and the labels line up with what reviewers and datasets see, frame for frame by PTS.
Incremental like redaction: a clip whose redacted bytes and labeling fingerprint are unchanged is
kept; a clip no longer verified loses its labels.

Example:
    >>> metrics = label_region(RegionStore(params, "cn"), params)   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import datetime, timezone

import numpy as np
from tqdm import tqdm

from curation.labeling.quality import BoxScorer, combine_lanes, lane_scores
from curation.labeling.sampling import sample_frames, telemetry_triggers
from curation.labeling.stream import decode_sampled, label_stream
from curation.perception.boxes import Detections
from curation.perception.labeler import Labeler
from curation.perception.lane_net import LearnedLanes, lane_detector
from curation.perception.lanes import LaneDetector
from curation.perception.tracks import VERSION as TRACKER_VERSION
from curation.perception.tracks import TrackConfig
from curation.policy.deps import code_hash
from curation.redaction.masks import mask_of
from curation.sources.groundtruth import truth_lines
from curation.storage.catalog import Catalog
from curation.storage.records import Detection, FrameEmbedding, LabeledClip, LaneLine, Track, to_table
from curation.storage.store import RegionStore

__all__ = ["label_region", "label_frames", "LABELING_CODE", "LABELING_PACKAGES"]

# The code that decides the labels: its hash is part of every clip's labeling fingerprint.
LABELING_CODE = ["curation.labeling.stage"]
LABELING_PACKAGES = ("curation/perception", "curation/labeling", "curation/media")

TABLES = ("detections", "tracks", "lane_lines", "frame_embeddings")


def label_frames(frames: list[np.ndarray], labeler: Labeler, lanes: LaneDetector | LearnedLanes, track_config: TrackConfig):
    """Objects (Detections with track ids, attributes, model classes) and lane lines for a clip's sampled frames."""
    labeled = label_stream(((k, k, frame) for k, frame in enumerate(frames)), labeler, lanes, track_config)
    return [(f.boxes, f.attributes, f.names) for f in labeled], [f.lanes for f in labeled]


def label_region(store: RegionStore, params, progress: bool = True) -> dict:
    """Label, record and score every verified clip of the region's catalog; returns the metrics document."""
    config = params.label
    catalog = Catalog(store)
    labeler = Labeler(config)
    lanes = lane_detector(config.lanes)
    track_config = TrackConfig(**config.track.model_dump())
    code = code_hash(LABELING_CODE, within=LABELING_PACKAGES)
    fingerprint = hashlib.sha256(f"{labeler.name}|{lanes.name}|{code}|{config.model_dump_json(exclude={'model'})}".encode()).hexdigest()[:16]
    verified = {r["clip_id"]: r for r in catalog.read("redacted_clips", where="status = 'verified'").to_pylist()}
    previous = {r["clip_id"]: r for r in catalog.read("labeled_clips").to_pylist()}
    clips = {c["clip_id"]: c for c in catalog.read("clips").to_pylist()}
    for clip_id in tqdm(sorted(verified), desc=f"label {store.region}", unit="clip", disable=not progress):
        redacted = verified[clip_id]
        old = previous.get(clip_id)
        if old and old["fingerprint"] == fingerprint and old["redacted_sha256"] == redacted["output_sha256"]:
            continue
        _label_clip(store, catalog, clips[clip_id], redacted, labeler, lanes, track_config, fingerprint)
    for stale in sorted(set(previous) - set(verified)):
        for table in (*TABLES, "labeled_clips"):  # no longer verified: its labels must not reach a dataset
            catalog.table(table).delete(f"clip_id = '{stale}'")
    _index_embeddings(catalog)
    return _metrics(store, catalog, config, labeler, clips, lanes.name)


def _label_clip(store, catalog, clip, redacted, labeler, lanes, track_config, fingerprint) -> None:
    clip_id = clip["clip_id"]
    telemetry = catalog.read("frames", ["index", "time", "speed_mps", "brake", "autopilot"], f"clip_id = '{clip_id}'").sort_by("index").to_pydict()
    blanked = catalog.read("redactions", ["index", "blanked"], f"clip_id = '{clip_id}'").sort_by("index").column("blanked").to_pylist()
    times = telemetry["time"]
    seconds = np.array([(t - times[0]).total_seconds() for t in times]) if times else np.zeros(0)
    config = labeler.config
    triggers = telemetry_triggers(seconds, telemetry["speed_mps"], telemetry["brake"], telemetry["autopilot"], config.hard_brake_mps2)
    sampled, near = sample_frames(seconds, config.every_s, triggers, config.trigger_window_s)
    black = np.zeros(len(sampled), bool)
    black[: len(blanked)] = blanked[: len(sampled)]
    sampled &= ~black  # blanked (restricted-zone) frames carry nothing
    # Stream the redacted file: frames are decoded, labeled a window at a time and dropped.
    with store.open(redacted["output_uri"]) as source:
        chosen = decode_sampled(source, lambda index, _: index < len(sampled) and bool(sampled[index]))
        labeled = label_stream(chosen, labeler, lanes, track_config, embed=True)
    indices = [f.index for f in labeled]
    embeddings = [FrameEmbedding(clip_id, f.index, tuple(f.embedding)) for f in labeled]
    detections, lane_rows = [], []
    for f in labeled:
        boxes = f.boxes
        for n, (box, confidence, cls, track, attr, name) in enumerate(zip(boxes.xyxy, boxes.confidence, boxes.class_id, boxes.track_id,
                                                                         f.attributes, f.names)):
            detections.append(Detection(f"{clip_id}:{f.index}:{n}", clip_id, f.index, f.pts, labeler.classes[int(cls)], json.dumps(attr, sort_keys=True),
                                        *(round(float(v), 1) for v in box), round(float(confidence), 4), int(track), name,
                                        labeler.name, bool(near[f.index])))
        for k, lane in enumerate(f.lanes):
            lane_rows.append(LaneLine(clip_id, f.index, f.pts, k, lane.type, lane.color, json.dumps(lane.xs), json.dumps(lane.ys),
                                      lane.confidence, lanes.name))
    tracks = _tracks(clip_id, detections)
    row = LabeledClip(clip_id, redacted["output_sha256"], fingerprint, len(indices), json.dumps(indices), int(near[indices].sum()) if indices else 0,
                      len(detections), len(tracks), len(lane_rows), labeler.name, datetime.now(timezone.utc))
    for table, record, rows in (("detections", Detection, detections), ("tracks", Track, tracks), ("lane_lines", LaneLine, lane_rows),
                                ("frame_embeddings", FrameEmbedding, embeddings)):
        catalog.table(table).delete(f"clip_id = '{clip_id}'")
        if rows:
            catalog.table(table).add(to_table(record, rows))
    catalog.table("labeled_clips").delete(f"clip_id = '{clip_id}'")  # last: the row marks the clip complete
    catalog.table("labeled_clips").add(to_table(LabeledClip, [row]))
    store.audit.append(store.actor, "label", redacted["output_uri"], clip_id, detections=len(detections), tracks=len(tracks),
                       lane_lines=len(lane_rows), model=labeler.name)


def _index_embeddings(catalog: Catalog, rows_per_partition: int = 256) -> None:
    """An IVF vector index once exact search stops being cheap; curate's near-duplicate search uses it."""
    from lancedb.index import IvfFlat

    table = catalog.table("frame_embeddings")
    rows = table.count_rows()
    if rows >= 4 * rows_per_partition:
        table.create_index(vector_column_name="vector", replace=True,
                           config=IvfFlat(distance_type="cosine", num_partitions=max(2, rows // rows_per_partition)))


def _tracks(clip_id: str, detections: list[Detection]) -> list[Track]:
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


def _metrics(store, catalog, config, labeler, clips, lanes_name: str) -> dict:
    """Counts from the catalog (so incremental runs report every clip) and quality against ground truth."""
    labeled = catalog.read("labeled_clips").to_pylist()
    detections = catalog.read("detections", ["clip_id", "index", "label", "attrs", "x1", "y1", "x2", "y2", "confidence"]).to_pylist()
    lane_rows = catalog.read("lane_lines", ["clip_id", "index", "xs", "ys", "type", "color"]).to_pylist()
    tracks = catalog.read("tracks", ["label"]).column("label").to_pylist()
    boxes_by_clip: dict[str, dict[int, list]] = {}
    for d in detections:
        boxes_by_clip.setdefault(d["clip_id"], {}).setdefault(d["index"], []).append(
            {"class": d["label"], "box": [d["x1"], d["y1"], d["x2"], d["y2"]], "confidence": d["confidence"], "attrs": json.loads(d["attrs"])})
    lanes_by_clip: dict[str, dict[int, list]] = {}
    for lane in lane_rows:
        lanes_by_clip.setdefault(lane["clip_id"], {}).setdefault(lane["index"], []).append(
            {"xs": json.loads(lane["xs"]), "ys": json.loads(lane["ys"]), "type": lane["type"], "color": lane["color"]})
    scorer, lane_frames, hidden = BoxScorer(labeler.classes, config.min_box_px), [], Counter()
    for row in labeled:
        clip = clips.get(row["clip_id"])
        truth = truth_lines(store, clip) if clip else None
        if truth is None:
            continue
        frame_boxes, frame_lanes = boxes_by_clip.get(row["clip_id"], {}), lanes_by_clip.get(row["clip_id"], {})
        masks = {r["index"]: r["boxes"] for r in catalog.read("redactions", ["index", "boxes"], f"clip_id = '{row['clip_id']}'").to_pylist()}
        for index in json.loads(row["sampled_indices"]):
            if index in truth:
                objects = _readable(truth[index]["objects"], masks.get(index), (clip["height"], clip["width"]), hidden)
                scorer.add(frame_boxes.get(index, []), objects)
                lane_frames.append(lane_scores(frame_lanes.get(index, []), truth[index]["lanes"], clip["height"]))
    return {"region": store.region, "model": labeler.name, "lanes": lanes_name, "tracker": TRACKER_VERSION,
            "clips": len(labeled), "sampled_frames": sum(r["sampled_frames"] for r in labeled),
            "trigger_frames": sum(r["trigger_frames"] for r in labeled),
            "detections": dict(sorted(Counter(d["label"] for d in detections).items())), "tracks": dict(sorted(Counter(tracks).items())),
            "lane_lines": len(lane_rows),
            "quality": {"boxes": scorer.result(), "lanes": combine_lanes(lane_frames),
                        "hidden_by_redaction": dict(sorted(hidden.items()))} if lane_frames else None}


def _readable(objects: list[dict], boxes_json: str | None, shape, hidden: Counter) -> list[dict]:
    """Ground truth with objects at least half under a redaction mask made unscored (visible 0): a sign
    blurred by a plate false positive cannot be labeled, which is redaction's cost, not the labeler's."""
    if not boxes_json:
        return objects
    mask = mask_of(Detections.from_items(json.loads(boxes_json)), shape)
    out = []
    for obj in objects:
        x1, y1, x2, y2 = (int(round(v)) for v in obj["box"])
        if x2 > x1 and y2 > y1 and obj["class"] not in ("face", "plate") and mask[y1:y2, x1:x2].mean() >= 0.5:
            hidden[obj["class"]] += 1
            obj = {**obj, "visible": 0.0}
        out.append(obj)
    return out

