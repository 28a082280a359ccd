"""Label quality against the simulator's ground truth (metrics/<R>/label.json).

Boxes: COCO-style average precision per taxonomy class (101-point interpolation) at IoU 0.5 and
averaged over IoU 0.5:0.95. Ground-truth objects smaller than ``min_box_px`` or less than half
visible are "ignore" regions: a prediction on one is neither right nor wrong, and predictions
smaller than the minimum count only when they hit a scored object. Attributes (light state, sign
type) are scored on the predictions matched at IoU 0.5.

Lanes, the TuSimple way: a predicted line matches a true one when at least 85 % of the true
line's points lie within 20 px (at 720p; scaled with the frame height; divided by the cosine of the
line's angle, as TuSimple's evaluator does); accuracy is the mean share
of matched points over true lines, F1 from matched, extra and missed lines.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from curation.perception.boxes import iou_matrix

__all__ = ["BoxScorer", "lane_scores", "combine_lanes", "IOU_THRESHOLDS"]

IOU_THRESHOLDS = np.round(np.arange(0.5, 0.96, 0.05), 2)
LANE_PIXELS_720P, LANE_MATCH = 20.0, 0.85
MIN_LANE_POINTS = 10  # a true line needs this many rows in view to be scored


class BoxScorer:
    """Accumulates (prediction, truth) per frame; ``result()`` gives AP per class and attribute accuracy."""

    def __init__(self, classes: list[str], min_box_px: float, min_visible: float = 0.5):
        self.classes, self.min_box_px, self.min_visible = classes, min_box_px, min_visible
        # per class, per IoU threshold: list of (confidence, is_true_positive); and scored truth counts
        self.hits = {c: {t: [] for t in IOU_THRESHOLDS} for c in classes}
        self.truths = defaultdict(int)
        self.attributes = defaultdict(lambda: [0, 0])  # name -> [right, scored]

    def add(self, predictions: list[dict], truth: list[dict]) -> None:
        """predictions: {class, box, confidence, attrs}; truth: simulator objects {class, box, visible, attrs}."""
        for cls in self.classes:
            pred = [p for p in predictions if p["class"] == cls]
            true = [t for t in truth if t["class"] == cls]
            scored = np.array([t["visible"] >= self.min_visible and t["box"][3] - t["box"][1] >= self.min_box_px for t in true], bool)
            self.truths[cls] += int(scored.sum())
            order = np.argsort([-p["confidence"] for p in pred], kind="stable")
            pred = [pred[i] for i in order]
            iou = iou_matrix(np.array([p["box"] for p in pred], np.float32).reshape(-1, 4),
                             np.array([t["box"] for t in true], np.float32).reshape(-1, 4))
            small = np.array([p["box"][3] - p["box"][1] < self.min_box_px for p in pred], bool)
            for threshold in IOU_THRESHOLDS:
                taken = np.zeros(len(true), bool)
                for i, p in enumerate(pred):
                    candidates = np.where(~taken & (iou[i] >= threshold))[0] if len(true) else np.array([], int)
                    # Prefer a scored object, then the best overlap.
                    if candidates.size:
                        j = candidates[np.lexsort((-iou[i, candidates], ~scored[candidates]))[0]]
                        taken[j] = True
                        if scored[j]:
                            self.hits[cls][threshold].append((p["confidence"], True))
                            if threshold == 0.5:
                                self._attributes(p, true[j])
                        continue  # matched an ignored object: not counted
                    if not small[i]:
                        self.hits[cls][threshold].append((p["confidence"], False))

    def _attributes(self, prediction: dict, truth: dict) -> None:
        for name, value in truth.get("attrs", {}).items():
            if name in ("state", "sign") and name in prediction.get("attrs", {}):
                entry = self.attributes[name]
                entry[1] += 1
                entry[0] += int(_same(name, prediction["attrs"][name], value))

    def result(self) -> dict:
        per_class = {}
        for cls in self.classes:
            aps = [_average_precision(self.hits[cls][t], self.truths[cls]) for t in IOU_THRESHOLDS]
            per_class[cls] = {"truth_boxes": self.truths[cls], "mAP50": _round(aps[0]),
                              "mAP50_95": _round(np.mean(aps) if None not in aps else None)}
        attributes = {f"{name}_accuracy": round(right / total, 4) if total else None for name, (right, total) in self.attributes.items()}
        return {"classes": per_class, **attributes, "attribute_counts": {k: v[1] for k, v in self.attributes.items()}}


def _same(name: str, predicted: str, true: str) -> bool:
    # A detector that reads "speed_limit" has the type right even without the number.
    return predicted == true or (name == "sign" and true.startswith(predicted + "_"))


def _round(value):
    return None if value is None else round(float(value), 4)


def _average_precision(hits: list[tuple[float, bool]], truths: int) -> float | None:
    if truths == 0:
        return None
    if not hits:
        return 0.0
    hits = sorted(hits, key=lambda h: -h[0])
    tp = np.cumsum([h[1] for h in hits])
    precision = tp / np.arange(1, len(hits) + 1)
    recall = tp / truths
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    points = np.linspace(0, 1, 101)
    index = np.searchsorted(recall, points, side="left")
    return float(np.where(index < len(envelope), envelope[np.minimum(index, len(envelope) - 1)], 0.0).mean())


def lane_scores(predicted: list[dict], truth: list[dict], height: int) -> dict:
    """Counters for one frame: lanes are {xs, ys} (-2 = no point), truth as the simulator writes it."""
    pixels = LANE_PIXELS_720P * height / 720
    scored = np.array([sum(x >= 0 for x in t["x"]) >= MIN_LANE_POINTS for t in truth], bool)
    accuracy = np.zeros((len(predicted), len(truth)))
    for j, t in enumerate(truth):
        tx, ty = np.array(t["x"], float), np.array(t["y"], float)
        valid = tx >= 0
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
