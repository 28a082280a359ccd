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
