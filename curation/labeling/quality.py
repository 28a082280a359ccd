"""Label quality: COCO box metrics (pycocotools), attribute accuracy, TuSimple lane matching.

Boxes: pycocotools' COCOeval, per taxonomy class: AP at IoU 0.5 and averaged over IoU 0.5:0.95
(101-point interpolation). Ground truth smaller than ``min_box_px`` or less than half visible is an
ignore region (COCO ``iscrowd``): a prediction on one is neither right nor wrong. Attributes (light
state, sign type) are scored on the predictions COCOeval matched at IoU 0.5.

Lanes, the TuSimple way: a predicted line matches a true one when at least 85 % of the true
line's points lie within 20 px (at 720p; scaled with the frame height; divided by the cosine of the
line's angle, as TuSimple's evaluator does); accuracy is the mean share
of matched points over true lines, F1 from matched, extra and missed lines.
"""

from __future__ import annotations

import contextlib
import io
from collections import Counter

import numpy as np

from curation.labeling.formats import FrameLabels, to_coco

__all__ = ["BoxScorer", "coco_scores", "lane_scores", "combine_lanes", "ATTRIBUTES"]

LANE_PIXELS_720P, LANE_MATCH = 20.0, 0.85
MIN_LANE_POINTS = 10  # a true line needs this many rows in view to be scored
ATTRIBUTES = ("state", "sign")


class BoxScorer:
    """Accumulates (prediction, truth) per frame; ``result()`` gives AP per class and attribute accuracy."""

    def __init__(self, classes: list[str], min_box_px: float, min_visible: float = 0.5):
        self.classes, self.min_box_px, self.min_visible = classes, min_box_px, min_visible
        self.truth: list[FrameLabels] = []
        self.predictions: list[FrameLabels] = []

    def add(self, predictions: list[dict], truth: list[dict]) -> None:
        """predictions: {class, box, confidence, attrs}; truth: simulator objects {class, box, visible, attrs}."""
        name = f"{len(self.truth)}"
        known = [t for t in truth if t["class"] in self.classes]
        self.truth.append(FrameLabels(name, 0, 0, [t["class"] for t in known], [list(map(float, t["box"])) for t in known], [1.0] * len(known),
                                      [dict(t.get("attrs", {})) for t in known],
                                      ignore=[t.get("visible", 1.0) < self.min_visible or t["box"][3] - t["box"][1] < self.min_box_px for t in known]))
        mine = [p for p in predictions if p["class"] in self.classes]
        self.predictions.append(FrameLabels(name, 0, 0, [p["class"] for p in mine], [list(map(float, p["box"])) for p in mine],
                                            [float(p["confidence"]) for p in mine], [dict(p.get("attrs", {})) for p in mine]))

    def result(self) -> dict:
        return coco_scores(self.truth, self.predictions, self.classes)


def _same(name: str, predicted: str, true: str) -> bool:
    # A detector that reads "speed_limit" has the type right even without the number.
    return predicted == true or (name == "sign" and str(true).startswith(str(predicted) + "_"))


def _round(value):
    return None if value is None or value < 0 else round(float(value), 4)


def coco_scores(truth: list[FrameLabels], predictions: list[FrameLabels], classes: list[str]) -> dict:
    """COCOeval per class (mAP50, mAP50_95, scored truth boxes) and attribute accuracy on the
    predictions matched at IoU 0.5. Frames pair up by ``file_name``; a prediction for a frame with
    no ground truth is not scored."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    by_name = {p.file_name: p for p in predictions}
    gt_doc = to_coco(truth, classes)
    for image, frame in zip(gt_doc["images"], truth):  # pycocotools needs a size only for segmentations
        image["width"], image["height"] = frame.width or 1, frame.height or 1
    detections = []
    for image, frame in zip(gt_doc["images"], truth):
        found = by_name.get(frame.file_name)
        for cls, (x1, y1, x2, y2), score, attrs in zip(*(() if found is None else (found.classes, found.boxes, found.scores, found.attributes))):
            if cls in classes:
                detections.append({"id": len(detections) + 1, "image_id": image["id"], "category_id": classes.index(cls) + 1,
                                   "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "score": score,
                                   "attributes": attrs, "iscrowd": 0})
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt = COCO()
        gt.dataset = gt_doc
        gt.createIndex()
        dt = COCO()
        dt.dataset = {"images": gt_doc["images"], "categories": gt_doc["categories"], "annotations": detections}
        dt.createIndex()
        evaluation = COCOeval(gt, dt, "bbox")
        evaluation.params.maxDets = [1, 10, 1000]  # busy streets hold more than COCO's 100 objects
        evaluation.evaluate()
        evaluation.accumulate()
    precision = evaluation.eval["precision"]  # [IoU, recall, class, area, maxDets]
    per_class = {}
    for k, cls in enumerate(classes):
        scored = sum(1 for a in gt_doc["annotations"] if a["category_id"] == k + 1 and not a["iscrowd"])
        curve = precision[:, :, k, 0, -1]
        aps = [np.mean(c[c > -1]) if (c > -1).any() else -1 for c in curve]
        per_class[cls] = {"truth_boxes": scored, "mAP50": _round(aps[0]) if scored else None,
                          "mAP50_95": _round(np.mean(aps)) if scored and min(aps) > -1 else None}
    right, total = Counter(), Counter()
    truth_by_id = {a["id"]: a for a in gt_doc["annotations"]}
    detection_by_id = {d["id"]: d for d in detections}
    for entry in evaluation.evalImgs:
        if entry is None or entry["aRng"] != evaluation.params.areaRng[0]:
            continue
        for d, matched, ignored in zip(entry["dtIds"], entry["dtMatches"][0], entry["dtIgnore"][0]):
            if not matched or ignored:
                continue
            true, predicted = truth_by_id[int(matched)]["attributes"], detection_by_id[d]["attributes"]
            for name in ATTRIBUTES:
                if name in true and name in predicted:
                    total[name] += 1
                    right[name] += int(_same(name, predicted[name], true[name]))
    return {"classes": per_class, **{f"{name}_accuracy": round(right[name] / total[name], 4) if total[name] else None for name in sorted(total)},
            "attribute_counts": dict(sorted(total.items()))}


def lane_scores(predicted: list[dict], truth: list[dict], height: int) -> dict:
    """Counters for one frame: lanes are {xs, ys} (-2 = no point), truth as the simulator writes it."""
    pixels = LANE_PIXELS_720P * height / 720
    scored = np.array([sum(x >= 0 for x in t["x"]) >= MIN_LANE_POINTS for t in truth], bool)
    accuracy = np.zeros((len(predicted), len(truth)))
    for j, t in enumerate(truth):
        tx, ty = np.array(t["x"], float), np.array(t["y"], float)
        valid = tx >= 0
        if not valid.any():  # a lane out of sight on this frame: nothing to match (and it is not scored)
            continue
        # TuSimple widens the tolerance for slanted lines: 20 px / cos(the line's angle to the vertical).
        tolerance = pixels / np.cos(np.arctan(np.polyfit(ty[valid], tx[valid], 1)[0])) if valid.sum() > 1 else pixels
        for i, p in enumerate(predicted):
            px, py = np.array(p["xs"], float), np.array(p["ys"], float)
            seen = px >= 0
            if seen.sum() < 2:
                continue
            order = np.argsort(py[seen])
            at = np.interp(ty[valid], py[seen][order], px[seen][order], left=np.nan, right=np.nan)
            accuracy[i, j] = np.mean(np.abs(at - tx[valid]) < tolerance)  # nan (no prediction there) is a miss
    matched_true, matched_pred, attributes = set(), set(), Counter()
    for i, j in sorted(np.ndindex(accuracy.shape), key=lambda ij: -accuracy[ij]):
        if accuracy[i, j] >= LANE_MATCH and i not in matched_pred and j not in matched_true:
            matched_pred.add(i)
            matched_true.add(j)
            for name in ("type", "color"):
                if name in predicted[i] and name in truth[j]:
                    attributes[name] += 1
                    attributes[f"{name}_right"] += int(predicted[i][name] == truth[j][name])
    # A line mostly out of view is not scored: finding it is neither a hit nor a false line.
    ignored = sum(1 for j in matched_true if not scored[j])
    best = accuracy.max(0)[scored] if len(predicted) else np.zeros(int(scored.sum()))
    return {"truth": int(scored.sum()), "predicted": len(predicted) - ignored, "matched": len(matched_true) - ignored,
            "accuracy_sum": float(best.sum()), "attributes": attributes}


def combine_lanes(frames: list[dict]) -> dict:
    truth = sum(f["truth"] for f in frames)
    predicted = sum(f["predicted"] for f in frames)
    attributes = sum((f["attributes"] for f in frames), Counter())
    matched = sum(f["matched"] for f in frames)
    fp, fn = predicted - matched, truth - matched
    return {"frames": len(frames), "truth_lines": truth, "predicted_lines": predicted,
            "accuracy": round(sum(f["accuracy_sum"] for f in frames) / truth, 4) if truth else None,
            "fp_rate": round(fp / predicted, 4) if predicted else None, "fn_rate": round(fn / truth, 4) if truth else None,
            "f1": round(2 * matched / (2 * matched + fp + fn), 4) if truth or predicted else None,
            **{f"{name}_accuracy": round(attributes[f"{name}_right"] / attributes[name], 4) if attributes[name] else None
               for name in ("type", "color")}}
