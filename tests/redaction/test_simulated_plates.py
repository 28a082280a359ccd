"""The simulator's drawn plates are found by the region's plate detectors (the real-trained model
misses most of them; the simulated-plate model beside it does not), on a dark teal car as the
simulator draws one at night."""

import numpy as np

from builders import make_params
from curation.policy.params import load_params
from curation.perception.boxes import Detections
from curation.redaction.detectors import Detectors, Wide, wide_only
from curation.sources.textures import PLATE_SIZE_M, plate_sprite, plate_text, vehicle_sprite


def _scene(style: str, plate_px: int, seed: int = 1) -> tuple[np.ndarray, list[float]]:
    import cv2

    plate = plate_sprite(style, plate_text(style, np.random.default_rng(seed)))
    car, box = vehicle_sprite((20, 110, 120), plate, (1.8, 1.4), PLATE_SIZE_M[style])
    scale = plate_px / (box[2] - box[0])
    sprite = cv2.resize(car, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame = np.full((720, 1280, 3), 45, np.uint8)
    h, w = sprite.shape[:2]
    x0, y0 = 600, 720 - h - 20
    alpha = sprite[..., 3:4] / 255.0
    frame[y0 : y0 + h, x0 : x0 + w] = (alpha * sprite[..., :3] + (1 - alpha) * frame[y0 : y0 + h, x0 : x0 + w]).astype(np.uint8)
    return frame, [x0 + box[0] * scale, y0 + box[1] * scale, x0 + box[2] * scale, y0 + box[3] * scale]


def _found(detectors, frame, plate) -> bool:
    x1, y1, x2, y2 = plate
    boxes = np.concatenate([d([frame])[0].xyxy for d in detectors])
    overlap = (np.clip(np.minimum(boxes[:, 2], x2) - np.maximum(boxes[:, 0], x1), 0, None)
               * np.clip(np.minimum(boxes[:, 3], y2) - np.maximum(boxes[:, 1], y1), 0, None))
    return bool(len(boxes)) and overlap.max() >= 0.9 * (x2 - x1) * (y2 - y1)


def test_simulated_plates_are_found_by_the_regions_plate_detectors(tmp_path):
    params = load_params(make_params(tmp_path))
    found, alone, total = 0, 0, 0
    for style in ("cn", "eu", "us"):
        plates = [d for d in Detectors(params, style).redact if d.class_id == 1]
        assert [d.name for d in plates] == ["yolo-plates-fastanpr", "yolo-plates-plates-sim"] and isinstance(plates[1], Wide)
        for seed in range(3):
            for plate_px in (40, 60, 90):  # plates 8 to 45 px tall, on one frame each (tracks bridge single misses)
                frame, plate = _scene(style, plate_px, seed)
                total += 1
                found += _found(plates, frame, plate)
                alone += _found(plates[:1], frame, plate)
    assert found >= 0.85 * total and found > alone + total // 3, (found, alone, total)


def test_the_simulated_plate_model_keeps_only_plate_shaped_boxes(tmp_path):
    detectors = Detectors(load_params(make_params(tmp_path)), "us")
    wide = detectors.redact[-1]
    frame, _ = _scene("us", 60)
    found = wide.detector([frame])[0]
    assert len(found) and len(wide([frame])[0]) == len(found)  # a 2:1 plate passes
    # A 2:1 plate, a 1.3:1 one, a square speed-limit sign and a tall box: the last two go.
    boxes = Detections(np.array([[0, 0, 40, 20], [0, 0, 26, 20], [0, 0, 30, 30], [0, 0, 20, 40]], np.float32), [0.9] * 4, [1] * 4)
    kept = wide_only([boxes, Detections.empty()], 1.2)
    assert kept[0].xyxy[:, 2].tolist() == [40, 26] and len(kept[1]) == 0
