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

from curation.engine import Task, commit, run
from curation.labeling.clip import LabelClip
from curation.labeling.quality import BoxScorer, combine_lanes, lane_scores
from curation.labeling.sampling import sample_frames, telemetry_triggers
from curation.labeling.stream import label_stream
from curation.perception.boxes import Detections
from curation.perception.labeler import Labeler
from curation.perception.lane_net import LearnedLanes, lane_detector
from curation.perception.lanes import LaneDetector
from curation.perception.tracks import VERSION as TRACKER_VERSION
from curation.perception.tracks import TrackConfig
from curation.policy.deps import code_hash
from curation.redaction.masks import mask_of
from curation.redaction.quality import VISIBLE
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


def label_region(store: RegionStore, params, progress: bool = True, engine=None) -> dict:
    """Label, record and score every verified clip of the region's catalog; returns the metrics document.

    Plan (here): which clips need labels, by redacted bytes and fingerprint, and which of their
    frames are sampled. Work (the engine's workers, :class:`~curation.labeling.clip.LabelClip`):
    label the sampled frames of the redacted output. Commit (here, as each result arrives): the
    clip's rows, its labeled_clips row last, and the audit record. A crash loses at most the clips
    in flight; a rerun redoes only those."""
    config = params.label
    catalog = Catalog(store)
    labeler = Labeler(config)
    lanes = lane_detector(config.lanes)
    code = code_hash(LABELING_CODE, within=LABELING_PACKAGES)
    fingerprint = hashlib.sha256(f"{labeler.name}|{lanes.name}|{code}|{config.model_dump_json(exclude={'model'})}".encode()).hexdigest()[:16]
    verified = {r["clip_id"]: r for r in catalog.read("redacted_clips", where="status = 'verified'").to_pylist()}
    previous = {r["clip_id"]: r for r in catalog.read("labeled_clips").to_pylist()}
    clips = {c["clip_id"]: c for c in catalog.read("clips").to_pylist()}
    tasks = []
    for clip_id in sorted(verified):
        redacted, old = verified[clip_id], previous.get(clip_id)
        if old and old["fingerprint"] == fingerprint and old["redacted_sha256"] == redacted["output_sha256"]:
            continue
        tasks.append(Task(clip_id, {"source": redacted["output_uri"], **_sampled(catalog, clip_id, config)}))
    failed = 0
    for result in run(LabelClip(), tasks, store, engine, progress=progress):
        failed += not _commit(store, catalog, verified[result.task_id], result, fingerprint, labeler.name)
    for stale in sorted(set(previous) - set(verified)):
        _delete_labels(catalog, stale)  # no longer verified: its labels must not reach a dataset
    _index_embeddings(catalog)
    return {**_metrics(store, catalog, config, labeler, clips, lanes.name), "failed": failed}


def _sampled(catalog: Catalog, clip_id: str, config) -> dict:
    """The frames to label (by PTS every ``every_s``, denser near telemetry triggers), never a blanked one."""
    telemetry = catalog.read("frames", ["index", "time", "speed_mps", "brake", "autopilot"], f"clip_id = '{clip_id}'").sort_by("index").to_pydict()
    blanked = catalog.read("redactions", ["index", "blanked"], f"clip_id = '{clip_id}'").sort_by("index").column("blanked").to_pylist()
    times = telemetry["time"]
    seconds = np.array([(t - times[0]).total_seconds() for t in times]) if times else np.zeros(0)
    triggers = telemetry_triggers(seconds, telemetry["speed_mps"], telemetry["brake"], telemetry["autopilot"], config.hard_brake_mps2)
    sampled, near = sample_frames(seconds, config.every_s, triggers, config.trigger_window_s)
    black = np.zeros(len(sampled), bool)
    black[: len(blanked)] = blanked[: len(sampled)]
    sampled &= ~black  # blanked (restricted-zone) frames carry nothing
    return {"sampled": np.flatnonzero(sampled).tolist(), "near": np.flatnonzero(sampled & near).tolist()}


def _commit(store: RegionStore, catalog: Catalog, redacted: dict, result, fingerprint: str, model: str) -> bool:
    """One worker result into the catalog: the clip's rows, then its labeled_clips row (the completion
    mark), then the audit record. A failed clip keeps no labels (old ones would describe other bytes)."""
    clip_id = redacted["clip_id"]
    commit(store, result)  # the worker's own audit records, if any
    if not result.ok:
        _delete_labels(catalog, clip_id)
        store.audit.append(store.actor, "label", redacted["output_uri"], clip_id, status="label_failed", error=result.error, model=model)
        return False
    rows, indices = result.record, result.record["indices"]
    row = LabeledClip(clip_id, redacted["output_sha256"], fingerprint, len(indices), json.dumps(indices), rows["trigger_frames"],
                      len(rows["detections"]), len(rows["tracks"]), len(rows["lane_lines"]), model, datetime.now(timezone.utc))
    for table, record in (("detections", Detection), ("tracks", Track), ("lane_lines", LaneLine), ("frame_embeddings", FrameEmbedding)):
        catalog.table(table).delete(f"clip_id = '{clip_id}'")
        if rows[table]:
            catalog.table(table).add(to_table(record, rows[table]))
    catalog.table("labeled_clips").delete(f"clip_id = '{clip_id}'")  # last: the row marks the clip complete
    catalog.table("labeled_clips").add(to_table(LabeledClip, [row]))
    store.audit.append(store.actor, "label", redacted["output_uri"], clip_id, detections=len(rows["detections"]), tracks=len(rows["tracks"]),
                       lane_lines=len(rows["lane_lines"]), model=model)
    return True


def _delete_labels(catalog: Catalog, clip_id: str) -> None:
    for table in (*TABLES, "labeled_clips"):
        catalog.table(table).delete(f"clip_id = '{clip_id}'")


def _index_embeddings(catalog: Catalog, rows_per_partition: int = 256) -> None:
    """An IVF vector index once exact search stops being cheap; curate's near-duplicate search uses it."""
    from lancedb.index import IvfFlat

    table = catalog.table("frame_embeddings")
    rows = table.count_rows()
    if rows >= 4 * rows_per_partition:
        table.create_index(vector_column_name="vector", replace=True,
                           config=IvfFlat(distance_type="cosine", num_partitions=max(2, rows // rows_per_partition)))


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
    blurred by a plate false positive cannot be labeled, which is redaction's cost, not the labeler's.
    ``hidden`` counts only objects that were readable before (at least half visible)."""
    if not boxes_json:
        return objects
    mask = mask_of(Detections.from_items(json.loads(boxes_json)), shape)
    out = []
    for obj in objects:
        x1, y1, x2, y2 = (int(round(v)) for v in obj["box"])
        if x2 > x1 and y2 > y1 and obj["class"] not in ("face", "plate") and mask[y1:y2, x1:x2].mean() >= 0.5:
            if obj["visible"] >= VISIBLE:
                hidden[obj["class"]] += 1
            obj = {**obj, "visible": 0.0}
        out.append(obj)
    return out

