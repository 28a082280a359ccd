"""The plate detector on CPU runs through our own ONNX Runtime path: it must agree with ultralytics."""

import numpy as np

from curation._env import PROJECT_ROOT
from curation.perception.boxes import iou_matrix
from curation.perception.plate_data import _scene_background
from curation.perception.plates import PlateDetector
from curation.perception.runtime import load_yolo


def test_onnx_runtime_plates_match_ultralytics_torch_and_crops_work():
    rng = np.random.default_rng(11)
    images = [_scene_background(rng)[0] for _ in range(3)]  # simulated 1280x720 street scenes with cars' plates
    detector = PlateDetector("models/plates.pt", imgsz=640, threshold=0.3, device="cpu")
    ours = detector(images)
    torch_model = load_yolo(str(PROJECT_ROOT / "models" / "plates.pt"))
    theirs = [r.boxes for r in torch_model.predict([np.ascontiguousarray(i[..., ::-1]) for i in images], imgsz=640, conf=0.3,
                                                   device="cpu", verbose=False, project=str(PROJECT_ROOT / "runs"))]
    assert sum(len(d) for d in ours) >= 3
    for found, reference in zip(ours, theirs):
        assert len(found) == len(reference)
        if len(found):
            best = iou_matrix(found.xyxy, reference.xyxy.numpy()).max(1)
            # Same boxes; in a cluster of overlapping boxes NMS may keep a neighbour (0.82 seen).
            assert np.median(best) > 0.95 and best.min() > 0.75
            assert np.allclose(np.sort(found.confidence), np.sort(reference.conf.numpy()), atol=0.05)
    # A crop around a found plate, at its own size, finds it again (what redaction walks rely on).
    box = ours[0].xyxy[int(np.argmax(ours[0].confidence))] if len(ours[0]) else ours[1].xyxy[0]
    image = images[0] if len(ours[0]) else images[1]
    cx, cy = int((box[0] + box[2]) / 2), int((box[1] + box[3]) / 2)
    crop = np.ascontiguousarray(np.pad(image, ((48, 48), (48, 48), (0, 0)))[cy : cy + 96, cx : cx + 96])
    again = detector.detect_crops([crop])[0]
    assert len(again) and iou_matrix(again.xyxy + [cx - 48, cy - 48] * 2, box[None]).max() > 0.5


class _Recording:
    """The real session, noting the batch shape of every run."""

    def __init__(self, session):
        self.session, self.shapes = session, []

    def run(self, names, feed):
        self.shapes += [value.shape for value in feed.values()]
        return self.session.run(names, feed)


def test_large_frames_run_a_few_at_a_time_with_the_same_boxes():
    """ONNX Runtime keeps its largest run's tensors: four HW4 frames at imgsz 2176 in one run held 1.2 GB
    per plate model. Runs hold at most BATCH_PIXELS input pixels; 720p frames still go four at a time."""
    import cv2

    from curation.perception.yolo_onnx import BATCH_PIXELS

    rng = np.random.default_rng(5)
    small = [_scene_background(rng)[0] for _ in range(4)]
    detector = PlateDetector("models/plates.pt", imgsz=960, threshold=0.3, device="cpu", min_scale=0.75)  # HW4 frames at 2176
    recording = detector.model.session = _Recording(detector.model.session)
    one_by_one = [detector([image])[0] for image in small]
    recording.shapes.clear()
    together = detector(small)
    assert [s[0] for s in recording.shapes] == [4]
    large = [np.ascontiguousarray(cv2.resize(image, (2896, 1876))) for image in small[:2]]
    recording.shapes.clear()
    found = detector(large)
    assert recording.shapes == [(1, 3, 1440, 2176)] * 2 and 2 * 1440 * 2176 > BATCH_PIXELS
    for a, b in zip(together + found, one_by_one + [detector([image])[0] for image in large]):
        assert np.array_equal(a.xyxy, b.xyxy) and np.array_equal(a.confidence, b.confidence)
