"""Label scoring: COCO-style AP with ignore regions, attribute accuracy, TuSimple lane matching."""

import pytest

from curation.labeling.quality import BoxScorer, combine_lanes, lane_scores

CAR = {"class": "vehicle", "box": [100, 100, 200, 180], "visible": 1.0, "attrs": {}}
LIGHT = {"class": "traffic_light", "box": [300, 50, 320, 110], "visible": 1.0, "attrs": {"state": "red"}}
TINY = {"class": "vehicle", "box": [500, 300, 510, 308], "visible": 1.0, "attrs": {}}


def _pred(truth, confidence=0.9, **attrs):
    return {"class": truth["class"], "box": list(truth["box"]), "confidence": confidence, "attrs": attrs}


def test_perfect_labels_score_one_and_tiny_objects_are_ignored():
    scorer = BoxScorer(["vehicle", "traffic_light"], min_box_px=20)
    scorer.add([_pred(CAR), _pred(LIGHT, state="red"), _pred(TINY, 0.99)], [CAR, LIGHT, TINY])
    result = scorer.result()
    assert result["classes"]["vehicle"] == {"truth_boxes": 1, "mAP50": 1.0, "mAP50_95": 1.0}
    assert result["classes"]["traffic_light"]["mAP50"] == 1.0
    assert result["state_accuracy"] == 1.0


def test_false_positives_misses_and_wrong_states_count():
    scorer = BoxScorer(["vehicle", "traffic_light"], min_box_px=20)
    ghost = {"class": "vehicle", "box": [600, 100, 700, 180], "confidence": 0.95, "attrs": {}}
    scorer.add([ghost, _pred(CAR, 0.5), _pred(LIGHT, state="green")], [CAR, LIGHT])
    scorer.add([], [CAR])  # missed on the next frame
    result = scorer.result()
    assert result["classes"]["vehicle"]["truth_boxes"] == 2
    # Ranked: ghost (wrong), car (right): precision 0.5 up to recall 0.5, nothing beyond.
    assert result["classes"]["vehicle"]["mAP50"] == pytest.approx(0.5 * 51 / 101, abs=1e-3)
    assert result["state_accuracy"] == 0.0


def test_a_loose_box_counts_at_iou_half_but_not_at_stricter_thresholds():
    scorer = BoxScorer(["vehicle"], min_box_px=20)
    loose = {"class": "vehicle", "box": [100, 100, 230, 190], "confidence": 0.9, "attrs": {}}  # IoU 0.68
    scorer.add([loose], [CAR])
    classes = scorer.result()["classes"]["vehicle"]
    assert classes["mAP50"] == 1.0 and 0.2 < classes["mAP50_95"] < 0.5


def _line(x0, slope, rows=range(320, 720, 10)):
    return [x0 + slope * (r - 320) for r in rows], list(rows)


def test_tusimple_lanes_match_within_twenty_pixels():
    xs, ys = _line(600, -0.5)
    truth = [{"x": xs, "y": ys}, {"x": _line(700, 0.5)[0], "y": ys}]
    exact = lane_scores([{"xs": xs, "ys": ys}, {"xs": _line(700, 0.5)[0], "ys": ys}], truth, 720)
    assert combine_lanes([exact])["f1"] == 1.0 and combine_lanes([exact])["accuracy"] == 1.0
    shifted = lane_scores([{"xs": [x + 40 for x in xs], "ys": ys}], truth, 720)
    assert shifted["matched"] == 0 and combine_lanes([shifted])["f1"] == 0.0
    close = lane_scores([{"xs": [x + 12 for x in xs], "ys": ys}], truth, 720)
    total = combine_lanes([close])
    assert (close["matched"], total["fn_rate"], total["fp_rate"]) == (1, 0.5, 0.0)


def test_a_found_line_that_is_mostly_out_of_view_is_neither_hit_nor_false():
    ys = list(range(320, 720, 10))
    edge = {"x": [-2] * 35 + [5, 15, 25, 35, 45], "y": ys}  # five points in view: not scored
    xs, _ = _line(600, -0.5)
    result = lane_scores([{"xs": edge["x"], "ys": ys}, {"xs": xs, "ys": ys}], [edge, {"x": xs, "y": ys}], 720)
    assert (result["truth"], result["predicted"], result["matched"]) == (1, 1, 1)
