import numpy as np
import pytest

from curation.perception.boxes import Detections, iou_matrix
from curation.perception.tracks import TrackConfig, dense_boxes, link


def make_detections(*boxes, cls=0, confidence=0.9):
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), [confidence] * len(boxes), [cls] * len(boxes))


def _moving_face(frame):  # 40 px face moving 6 px right per frame
    return [100 + 6 * frame, 100, 140 + 6 * frame, 140]


def _covers(detections, box, share=0.9):
    if not len(detections):
        return False
    x1, y1, x2, y2 = box
    inner = np.clip(detections.xyxy, [x1, y1, x1, y1], [x2, y2, x2, y2])
    covered = (inner[:, 2] - inner[:, 0]) * (inner[:, 3] - inner[:, 1])
    return covered.max() / ((x2 - x1) * (y2 - y1)) >= share


@pytest.mark.parametrize("missed", [[], [3], [3, 4], [0], [9]])
def test_every_frame_covered_when_the_detector_misses_some(missed):
    keyframes = {f: (make_detections(_moving_face(f)) if f not in missed else Detections.empty()) for f in range(10)}
    boxes = dense_boxes(keyframes, 10, TrackConfig(max_gap=2, extend_s=0.3), rate=10)
    assert all(_covers(boxes[f], _moving_face(f)) for f in range(10))
    assert len({int(t) for d in boxes for t in d.track_id}) == 1  # one track despite the misses


def test_sparse_keyframes_are_interpolated_and_extended_both_ways():
    keyframes = {f: make_detections(_moving_face(f)) for f in (4, 8, 12)}
    boxes = dense_boxes(keyframes, 20, TrackConfig(extend_s=0.4), rate=10)
    assert all(_covers(boxes[f], _moving_face(f)) for f in range(0, 17))
    assert len(boxes[19]) == 0  # beyond the extension nothing is masked


@pytest.mark.parametrize("rate, frames", [(10, 1), (30, 3), (36, 4)])
def test_the_extension_is_a_duration_whatever_the_frame_rate(rate, frames):
    keyframes = {f: make_detections(_moving_face(f)) for f in range(10, 20)}
    boxes = dense_boxes(keyframes, 40, TrackConfig(extend_s=0.1), rate=rate)
    masked = [f for f in range(40) if len(boxes[f])]
    assert masked == list(range(10 - frames, 20 + frames))


def test_faces_and_plates_never_link_and_far_boxes_start_new_tracks():
    keyframes = {0: Detections.merge([make_detections([0, 0, 20, 20]), make_detections([0, 0, 20, 20], cls=1)]),
                 1: Detections.merge([make_detections([2, 0, 22, 20]), make_detections([500, 500, 540, 540])])}
    tracks = link(keyframes, TrackConfig())
    assert sorted(len(t) for t in tracks) == [1, 1, 2]
    assert {t[0][2] for t in tracks if len(t) == 2} == {0}


def test_gaps_count_the_frames_looked_at_not_the_finds_between():
    """Findings of detectors that looked at every frame (every=1): two finds of one face 87 frames
    apart are two objects, and nothing is masked between them; two frames apart, one object covered on
    the frame between. On a keyframe grid (every=5) a missed keyframe is still bridged."""
    far = {86: make_detections([240, 70, 335, 244]), 173: make_detections([120, 9, 206, 82])}
    assert len(link(far, TrackConfig())) == 1  # taken as consecutive looks, they were one track
    assert len(link(far, TrackConfig(), every=1)) == 2
    boxes = dense_boxes(far, 200, TrackConfig(extend_s=0.0), rate=25, every=1)
    assert [f for f in range(200) if len(boxes[f])] == [86, 173]
    near = {56: make_detections(_moving_face(0)), 58: make_detections(_moving_face(2))}
    boxes = dense_boxes(near, 100, TrackConfig(extend_s=0.0), rate=25, every=1)
    assert [f for f in range(100) if len(boxes[f])] == [56, 57, 58] and _covers(boxes[57], _moving_face(1))
    grid = {0: make_detections(_moving_face(0)), 10: make_detections(_moving_face(10)), 14: make_detections(_moving_face(14))}
    assert len(link(grid, TrackConfig(max_gap=1), every=5)) == 1  # keyframe 5 missed; 14, the clip's last, is the next look


def test_detections_validate_shapes_and_filter_by_index():
    with pytest.raises(ValueError, match="length"):
        Detections(np.zeros((2, 4)), [0.5], [0, 0])
    d = make_detections([0, 0, 10, 10], [50, 50, 60, 60])
    assert len(d[d.confidence > 0.5]) == 2 and len(d[np.array([False, True])]) == 1
    assert iou_matrix(d.xyxy, d.xyxy).diagonal().tolist() == [1.0, 1.0]
    merged = Detections.merge([d, Detections(np.array([[1, 1, 11, 11]]), [0.95], [0])]).nms(0.5)
    assert len(merged) == 2 and merged.confidence.max() == pytest.approx(0.95)


def test_the_margin_beyond_the_last_detection_grows_with_speed():
    # A face crossing close to the camera speeds up across the image: 30 px a frame, then 45.
    keyframes = {0: make_detections([100, 100, 140, 140]), 1: make_detections([130, 100, 170, 140])}
    nxt = [175, 100, 215, 140]
    with_speed = dense_boxes(keyframes, 3, TrackConfig(extend_s=0.2), rate=10)
    without = dense_boxes(keyframes, 3, TrackConfig(extend_s=0.2, speed_margin=0.0), rate=10)
    assert _covers(with_speed[2], nxt) and not _covers(without[2], nxt)
