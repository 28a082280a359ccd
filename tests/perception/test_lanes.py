"""Lane lines on simulated scenes the method never saw tuned on, scored the TuSimple way."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from curation.labeling.formats import from_tusimple
from curation.labeling.quality import combine_lanes, lane_scores
from curation.perception.lanes import LaneCamera, LaneDetector, vanishing_point
from curation.sources.faces import face_bank
from curation.sources.scene import Camera, Conditions, Scene


def _scenes(n, conditions=None):
    bank = face_bank()
    for seed in range(n):
        rng = np.random.default_rng([2024, seed])
        scene = Scene.random(rng, Camera(), str(rng.choice(["cn", "eu", "us"])), (bank.crops, bank.boxes),
                             direction=int(rng.choice([-1, 1])), conditions=conditions)
        yield scene.render(float(rng.uniform(0, 3)), float(rng.uniform(0, 30)))


def test_lane_lines_on_held_out_scenes_reach_tusimple_f1():
    detector = LaneDetector(LaneCamera())
    frames = []
    for frame, _, truth in _scenes(24):
        found = detector(frame)
        frames.append(lane_scores([{"xs": l.xs, "ys": l.ys, "type": l.type, "color": l.color} for l in found], truth, 720))
    result = combine_lanes(frames)
    assert result["f1"] >= 0.85 and result["accuracy"] >= 0.9, result
    assert result["type_accuracy"] >= 0.8 and result["color_accuracy"] >= 0.9, result


def test_an_empty_road_gives_no_lines_and_points_follow_tusimple_rows():
    detector = LaneDetector(LaneCamera())
    assert detector(np.full((720, 1280, 3), 80, np.uint8)) == []
    frame, _, truth = next(_scenes(1, Conditions("day", "clear")))
    lanes = detector(frame)
    assert lanes and all(lane.ys == truth[0]["y"] for lane in lanes)
    assert all(x == -2 or 0 <= x < 1280 for lane in lanes for x in lane.xs)


REPO = Path(__file__).resolve().parents[2]
REAL = REPO.parent / "shared" / "testdata" / "real"


@pytest.mark.skipif(not REAL.exists(), reason="shared/testdata is not beside the repository")
@pytest.mark.parametrize("labels, folder, horizon, f1", [
    ("tusimple_lanes_unlabeled.json", "lanes_unlabeled", 240, 0.55),  # hand-labeled: tests/data/real_lanes/README.md
    ("udacity_dashcam.json", "dashcam", 308, 0.65),
])
def test_real_highway_frames_from_cameras_of_unknown_mounting(labels, folder, horizon, f1):
    """The horizon is found where the lines meet (TuSimple's camera: a third of the height; Udacity's:
    57 %), and lines are found; the 0.9 F1 target is not reached yet (README, Auto-labeling)."""
    detector = LaneDetector(LaneCamera(), auto=True)
    frames = []
    for entry in from_tusimple((REPO / "tests" / "data" / "real_lanes" / labels).read_text()).values():
        rgb = cv2.cvtColor(cv2.imread(str(REAL / folder / entry.file_name)), cv2.COLOR_BGR2RGB)
        assert abs(vanishing_point(rgb)[1] - horizon) <= 12
        found = detector(rgb)
        frames.append(lane_scores([{"xs": l.xs, "ys": l.ys} for l in found], [{"x": x, "y": entry.h_samples} for x in entry.lanes], rgb.shape[0]))
    assert combine_lanes(frames)["f1"] >= f1
