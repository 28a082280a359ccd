"""Walks on crops follow a face from keyframe to keyframe, even across a keyframe the detector missed."""

import io

import numpy as np

from curation.media.video import decode_frames
from curation.perception.boxes import Detections, iou_matrix
from curation.perception.faces import FaceDetector
from curation.perception.tracks import TrackConfig, link
from curation.redaction.refine import refine_tracks
from test_video import make_face_clip


def test_walks_find_the_face_on_every_frame_between_sparse_keyframes():
    data, truth = make_face_clip(13)
    frames = [f for _, f in decode_frames(io.BytesIO(data))]
    detector = FaceDetector(0.3, "cpu", (1.0, 0.25))
    keyframes = {i: detector([frames[i]])[0] for i in (0, 6, 12)}
    keyframes[6] = Detections.empty()  # the full-frame detector misses the middle keyframe
    tracks = link(keyframes, TrackConfig())
    assert sorted(t for track in tracks for t, _, _, _ in track) == [0, 12]
    refined = refine_tracks(tracks, frames, detector)
    found = {t: box for track in refined for t, box, _, _ in track}
    assert sorted(found) == list(range(13))  # a real detection on every frame, not an interpolation
    for t, faces in enumerate(truth):
        assert iou_matrix(found[t][None], np.array([faces[0]["box"]], np.float32))[0, 0] > 0.5


def test_walks_stop_where_they_meet_and_leave_small_objects_alone():
    data, _ = make_face_clip(7)
    frames = [f for _, f in decode_frames(io.BytesIO(data))]
    detector = FaceDetector(0.3, "cpu", (1.0, 0.25))
    keyframes = {i: detector([frames[i]])[0] for i in (0, 3, 6)}
    refined = refine_tracks(link(keyframes, TrackConfig()), frames, detector)
    times = [t for track in refined for t, _, _, _ in track]
    assert sorted(times) == list(range(7))  # each frame once: forward walks stop at the next keyframe's box
    unrefined = refine_tracks(link(keyframes, TrackConfig()), frames, detector, min_height=500)
    assert sorted(t for track in unrefined for t, _, _, _ in track) == [0, 3, 6]
