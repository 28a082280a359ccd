"""Redaction quality against ground truth: what counts as a covered plate and a masked sign."""

import numpy as np

from curation.perception.boxes import Detections
from curation.redaction.quality import combine, score_clip


def _line(frame, *objects):
    return {"frame": frame, "objects": [{"class": c, "box": b, "visible": v, "track": t} for t, (c, b, v) in enumerate(objects)]}


def test_only_readable_signs_count_and_a_covered_plate_needs_most_of_its_box_masked():
    truth = [_line(0, ("traffic_sign", [0, 0, 20, 20], 1.0),      # visible, half under the mask
                   ("traffic_sign", [40, 0, 60, 20], 0.1),         # behind something: not readable anyway
                   ("plate", [40, 0, 60, 20], 1.0),                # covered
                   ("plate", [70, 30, 90, 50], 1.0),               # masked at 50 %: not covered
                   ("plate", [0, 80, 20, 90], 0.3))]               # mostly hidden: not scored
    masked = Detections(np.array([[10, 0, 60, 20], [70, 30, 80, 50]], np.float32), [0.9, 0.9], [1, 1])  # plate masks: rectangles
    report = combine([score_clip(truth, [masked], np.zeros(1, bool), (100, 100), {"plate": 10})])
    assert report["signs_and_lights_masked_share"] == 0.5
    assert report["classes"]["plate"]["covered"] == 1 and report["classes"]["plate"]["boxes"] == 2
