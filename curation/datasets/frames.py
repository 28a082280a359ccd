"""The curate frame table: one row per labeled frame of a verified clip, after human review.

Columns scenario queries can use (params.yaml ``curate.scenarios``):
    clip_id, index, pts, event_id, source_vehicle (pseudonym), camera, layout, time, hour (local), night (hour < 6 or
    >= 20), speed_mps, brake, autopilot, trigger (near hard braking or autopilot disengaging),
    lat, lon (already coarsened), one count column per taxonomy class (vehicle, pedestrian, ...),
    red_lights, yellow_lights, green_lights, solid_lines, dashed_lines, yellow_lines, dashed_yellow.

Reviews apply here, once, for curate and export alike: a rejected detection is gone, a fixed one
has the reviewer's class and box, a rejected clip is out, and a clip with a manual redaction that
redact@R has not applied yet is hidden.

Example:
    >>> table = frame_table(catalog, params, "cn")    # doctest: +SKIP
    >>> table.query("red_lights > 0 and speed_mps > 10")                  # doctest: +SKIP
"""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from curation.labeling.sampling import sample_frames, telemetry_triggers
from curation.storage.catalog import Catalog

__all__ = ["frame_table", "reviewed_detections", "hidden_clips"]


def _latest(reviews: pd.DataFrame) -> pd.DataFrame:
    """The newest decision on each target."""
    return reviews.sort_values("at").groupby(["target", "target_id", "clip_id"], dropna=False).tail(1) if len(reviews) else reviews


def hidden_clips(catalog: Catalog) -> set[str]:
    """Clips a reviewer rejected, or with a manual redaction still waiting for redact@R."""
    reviews = catalog.read("reviews").to_pandas()
    if not len(reviews):
        return set()
    pending = reviews[reviews.decision.isin(["missed_face", "missed_plate"]) & ~reviews.applied]
    latest = _latest(reviews)
    rejected = latest[(latest.target == "clip") & (latest.decision == "reject")]
    return set(pending.clip_id) | set(rejected.clip_id)


def reviewed_detections(catalog: Catalog) -> pd.DataFrame:
    """Detections with the latest review of each applied: rejected ones dropped, fixes taken."""
    detections = catalog.read("detections").to_pandas()
    latest = _latest(catalog.read("reviews").to_pandas())
    if not len(latest) or not len(detections):
        return detections
    decisions = latest[latest.target == "detection"].set_index("target_id")
    rejected = decisions.index[decisions.decision == "reject"]
    detections = detections[~detections.detection_id.isin(rejected)].copy()
    for detection_id, review in decisions[decisions.decision == "fix"].iterrows():
        after = json.loads(review["after"])
        row = detections.detection_id == detection_id
        for key in ("label", "x1", "y1", "x2", "y2"):
            if key in after:
                detections.loc[row, key] = after[key]
        if "attrs" in after:
            detections.loc[row, "attrs"] = json.dumps(after["attrs"], sort_keys=True)
        detections.loc[row, "confidence"] = 1.0  # a person checked it
    return detections


def frame_table(catalog: Catalog, params, region: str) -> pd.DataFrame:
    policy, label = params.region(region), params.label
    labeled = catalog.read("labeled_clips", ["clip_id", "sampled_indices"]).to_pylist()
    verified = set(catalog.read("redacted_clips", ["clip_id"], "status = 'verified'").column("clip_id").to_pylist())
    hidden = hidden_clips(catalog)
    keep = {r["clip_id"]: json.loads(r["sampled_indices"]) for r in labeled if r["clip_id"] in verified - hidden}
    columns = list(label.taxonomy) + ["red_lights", "yellow_lights", "green_lights", "solid_lines", "dashed_lines", "yellow_lines",
                                      "dashed_yellow"]
    if not keep:
        return pd.DataFrame(columns=["clip_id", "index", "pts", "event_id", "source_vehicle", "camera", "layout", "time", "hour", "night",
                                     "speed_mps", "brake", "autopilot", "trigger", "lat", "lon", *columns])
    clips = catalog.read("clips", ["clip_id", "event_id", "vehicle", "camera", "layout"]).to_pandas().set_index("clip_id")
    clips = clips.rename(columns={"vehicle": "source_vehicle"})  # "vehicle" is the taxonomy class count
    frames = catalog.read("frames", ["clip_id", "index", "pts", "time", "lat", "lon", "speed_mps", "brake", "autopilot"]).to_pandas()
    frames = frames[frames.clip_id.isin(keep)].sort_values(["clip_id", "index"])
    parts = []
    for clip_id, group in frames.groupby("clip_id", sort=True):
        seconds = (group.time - group.time.iloc[0]).dt.total_seconds().to_numpy()
        triggers = telemetry_triggers(seconds, _none(group.speed_mps), _none(group.brake), _none(group.autopilot), label.hard_brake_mps2)
        _, near = sample_frames(seconds, label.every_s, triggers, label.trigger_window_s)
        group = group.assign(trigger=near)
        parts.append(group[group["index"].isin(keep[clip_id])])
    table = pd.concat(parts).join(clips, on="clip_id")
    local = table.time.dt.tz_convert(ZoneInfo(policy.locale.timezone))
    table["hour"] = local.dt.hour
    table["night"] = (table.hour < 6) | (table.hour >= 20)
    counts = _label_counts(reviewed_detections(catalog), catalog.read("lane_lines", ["clip_id", "index", "type", "color"]).to_pandas(),
                           list(label.taxonomy))
    table = table.merge(counts, on=["clip_id", "index"], how="left")
    table[columns] = table[columns].fillna(0).astype(int)
    return table.reset_index(drop=True)


def _none(series: pd.Series) -> list:
    return [None if v is None or (isinstance(v, float) and np.isnan(v)) else v for v in series]


def _label_counts(detections: pd.DataFrame, lanes: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    keys = ["clip_id", "index"]
    frames = pd.concat([detections[keys], lanes[keys]]).drop_duplicates()
    if len(detections):
        state = detections["attrs"].map(lambda a: json.loads(a).get("state"))
        per_class = pd.crosstab([detections.clip_id, detections["index"]], detections.label).reindex(columns=classes, fill_value=0)
        lights = pd.crosstab([detections.clip_id, detections["index"]], state.fillna("none"))
        per_class[["red_lights", "yellow_lights", "green_lights"]] = lights.reindex(columns=["red", "yellow", "green"], fill_value=0).values
        frames = frames.merge(per_class.reset_index(), on=keys, how="left")
    if len(lanes):
        lane_counts = lanes.assign(solid_lines=lanes.type == "solid", dashed_lines=lanes.type == "dashed",
                                   yellow_lines=lanes.color == "yellow", dashed_yellow=(lanes.type == "dashed") & (lanes.color == "yellow"))
        frames = frames.merge(lane_counts.groupby(keys)[["solid_lines", "dashed_lines", "yellow_lines", "dashed_yellow"]].sum().reset_index(),
                              on=keys, how="left")
    return frames
