"""`curation label eval`: score any model's labels against a team's own ground truth.

Truth and predictions are each a folder written by `curation label` (``labels.coco.json`` and
``lanes.tusimple.json``) or one file of either format. Boxes: COCO metrics through pycocotools
(AP50 and AP50-95 per class, ground truth marked ``iscrowd`` ignored), attribute accuracy on the
boxes matched at IoU 0.5; lanes: TuSimple accuracy, F1, false-positive and false-negative rates.
Pictures pair up by ``file_name`` / ``raw_file``; what only one side has (boxes, lanes) is not scored.

Example:
    >>> evaluate(Path("truth"), Path("pred"))["boxes"]["classes"]["vehicle"]["mAP50"]   # doctest: +SKIP
    0.91
"""

from __future__ import annotations

import json
from pathlib import Path

from curation.errors import LabelError
from curation.labeling.formats import FrameLabels, from_coco, from_tusimple
from curation.labeling.quality import coco_scores, combine_lanes, lane_scores

__all__ = ["evaluate", "read_labels"]

COCO_FILE, LANES_FILE = "labels.coco.json", "lanes.tusimple.json"


def read_labels(path: Path) -> tuple[dict | None, dict[str, FrameLabels] | None]:
    """(COCO document or None, TuSimple frames or None) from a `curation label` folder or one file."""
    path = Path(path)
    if path.is_dir():
        boxes, lanes = path / COCO_FILE, path / LANES_FILE
        if not boxes.exists() and not lanes.exists():
            raise LabelError(f"{path}: neither {COCO_FILE} nor {LANES_FILE} found")
        return (_json(boxes) if boxes.exists() else None), (from_tusimple(lanes.read_text()) if lanes.exists() else None)
    if not path.exists():
        raise LabelError(f"{path}: no such file or folder")
    text = path.read_text()
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        return None, from_tusimple(text)  # JSON lines
    if isinstance(document, dict) and "images" in document:
        return document, None
    if isinstance(document, dict) and "raw_file" in document:
        return None, from_tusimple(text)
    raise LabelError(f"{path}: neither a COCO document (with 'images') nor TuSimple lines (with 'raw_file')")


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise LabelError(f"{path}: not JSON ({error})") from None


def evaluate(truth: Path, predictions: Path) -> dict:
    """Box and lane scores of ``predictions`` against ``truth`` (see the module docstring)."""
    true_boxes, true_lanes = read_labels(truth)
    pred_boxes, pred_lanes = read_labels(predictions)
    report: dict = {"truth": str(truth), "predictions": str(predictions)}
    if (true_boxes is None or pred_boxes is None) and (true_lanes is None or pred_lanes is None):
        raise LabelError(f"{truth} and {predictions} share nothing to score (boxes in one, lane lines in the other)")
    if true_boxes is not None and pred_boxes is not None:
        classes = [c["name"] for c in sorted(true_boxes["categories"], key=lambda c: c["id"])]
        truth_frames, pred_frames = from_coco(true_boxes), from_coco(pred_boxes)
        unknown = sorted({c for f in pred_frames for c in f.classes} - set(classes))
        names = {f.file_name for f in truth_frames}
        report["boxes"] = {"images": len(truth_frames), "predicted_images_without_truth": sum(f.file_name not in names for f in pred_frames),
                           "classes_not_in_truth": unknown, **coco_scores(truth_frames, pred_frames, classes)}
    if true_lanes is not None and pred_lanes is not None:
        frames = []
        for name, frame in true_lanes.items():
            found = pred_lanes.get(name)
            height = _height(frame, true_boxes, name)
            predicted = [] if found is None else [{"xs": xs, "ys": found.h_samples, **_attributes(found, k)} for k, xs in enumerate(found.lanes)]
            frames.append(lane_scores(predicted, [{"x": xs, "y": frame.h_samples, **_attributes(frame, k)} for k, xs in enumerate(frame.lanes)],
                                      height))
        report["lanes"] = combine_lanes(frames)
    return report


def _attributes(frame: FrameLabels, k: int) -> dict:
    out = {}
    if k < len(frame.lane_types):
        out["type"] = frame.lane_types[k]
    if k < len(frame.lane_colors):
        out["color"] = frame.lane_colors[k]
    return out


def _height(frame: FrameLabels, boxes: dict | None, name: str) -> int:
    """The picture's height (the 20 px tolerance is for 720p): from the COCO images when present,
    else from the rows sampled (TuSimple samples to the last 10 px of the picture)."""
    if boxes is not None:
        for image in boxes["images"]:
            if image["file_name"] == name and image.get("height"):
                return int(image["height"])
    return (max(frame.h_samples) // 10 + 1) * 10 if frame.h_samples else 720
