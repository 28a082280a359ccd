"""Redaction quality against the simulator's ground truth (metrics/<R>/redaction.json).

Per class (face, plate), over ground-truth boxes at or above the policy's minimum height and at
least half visible: the share whose area is at least 90 % masked, frames with any uncovered box,
tracks uncovered on at least one frame, and the share of masked area outside every object (false
redaction), with the masked share of signs and traffic lights reported apart (they must stay
readable; like faces and plates, only those at least half visible count: a mask over a sign a
pedestrian stands in front of hides nothing readable).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from curation.perception.boxes import Detections
from curation.redaction.masks import mask_of

__all__ = ["score_clip", "combine"]

COVERED = 0.9
VISIBLE = 0.5  # objects less visible than this (occluded, cut off by the frame edge) are not scored


def score_clip(truth: list[dict], boxes: list[Detections], blanked: np.ndarray, shape, min_height: dict[str, float]) -> dict:
    """Counters for one clip; ``truth`` holds the clip's ground-truth lines in frame order."""
    counts = {cls: {"boxes": 0, "covered": 0, "frames_uncovered": set(), "tracks": set(), "tracks_leaking": set()} for cls in min_height}
    masked_pixels = outside_pixels = readable_pixels = readable_masked = 0
    for line in truth:
        index = line["frame"]
        if index >= len(boxes):
            break
        mask = np.ones(shape[:2], bool) if blanked[index] else mask_of(boxes[index], shape)
        objects = np.zeros(shape[:2], bool)
        for obj in line["objects"]:
            x1, y1, x2, y2 = (int(round(v)) for v in obj["box"])
            if obj["class"] in ("traffic_sign", "traffic_light"):
                if obj["visible"] < VISIBLE:
                    continue
                readable_pixels += (x2 - x1) * (y2 - y1)
                readable_masked += int(mask[y1:y2, x1:x2].sum()) if not blanked[index] else 0
                continue
            objects[y1:y2, x1:x2] = True
            cls = obj["class"]
            if cls not in min_height or obj["visible"] < VISIBLE or (y2 - y1) < min_height[cls] or x2 <= x1:
                continue
            entry = counts[cls]
            entry["boxes"] += 1
            entry["tracks"].add(obj["track"])
            if mask[y1:y2, x1:x2].mean() >= COVERED:
                entry["covered"] += 1
            else:
                entry["frames_uncovered"].add(index)
                entry["tracks_leaking"].add(obj["track"])
        if not blanked[index]:
            masked_pixels += int(mask.sum())
            outside_pixels += int((mask & ~objects).sum())
    return {"classes": counts, "masked_pixels": masked_pixels, "outside_pixels": outside_pixels,
            "readable_pixels": readable_pixels, "readable_masked": readable_masked, "frames": len(truth)}


def combine(scores: list[dict]) -> dict:
    """Aggregate clip counters into the metrics document."""
    per_class = defaultdict(lambda: {"boxes": 0, "covered": 0, "frames_uncovered": 0, "tracks": 0, "tracks_leaking": 0})
    frames = masked = outside = readable = readable_masked = 0
    for clip in scores:
        for cls, entry in clip["classes"].items():
            total = per_class[cls]
            total["boxes"] += entry["boxes"]
            total["covered"] += entry["covered"]
            total["frames_uncovered"] += len(entry["frames_uncovered"])
            total["tracks"] += len(entry["tracks"])
            total["tracks_leaking"] += len(entry["tracks_leaking"])
        frames += clip["frames"]
        masked, outside = masked + clip["masked_pixels"], outside + clip["outside_pixels"]
        readable, readable_masked = readable + clip["readable_pixels"], readable_masked + clip["readable_masked"]
    classes = {cls: {**v, "covered_share": round(v["covered"] / v["boxes"], 4) if v["boxes"] else None} for cls, v in per_class.items()}
    return {"frames": frames, "classes": classes,
            "frames_with_uncovered": sum(v["frames_uncovered"] for v in per_class.values()),
            "false_redaction_share": round(outside / masked, 4) if masked else 0.0,
            "signs_and_lights_masked_share": round(readable_masked / readable, 4) if readable else 0.0}
