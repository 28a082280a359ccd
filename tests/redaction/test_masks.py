import cv2
import numpy as np
import pytest

from curation.perception.boxes import Detections
from curation.redaction.masks import mask_of, redact


def _texture(h=240, w=320):
    rng = np.random.default_rng(0)
    return cv2.resize(rng.integers(0, 255, (h // 4, w // 4, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)


@pytest.mark.parametrize("method", ["blur", "pixelate", "fill"])
def test_mask_covers_the_whole_box_destroys_detail_and_nothing_else(method):
    frame = _texture()
    boxes = Detections(np.array([[40, 30, 120, 130], [200, 180, 300, 210]], np.float32), [0.9, 0.8], [0, 1])
    before = frame.copy()
    out = redact(frame, boxes, method)
    mask = mask_of(boxes, frame.shape)
    assert mask[30:130, 40:120].all() and mask[180:210, 200:300].all()  # whole boxes, corners included
    assert (out[~mask] == frame[~mask]).all() and (frame == before).all()  # nothing else changed, input untouched
    face = out[30:130, 40:120].astype(np.float32)
    assert cv2.Laplacian(face, cv2.CV_32F).var() < 0.05 * cv2.Laplacian(frame[30:130, 40:120].astype(np.float32), cv2.CV_32F).var()
    if method == "fill":
        assert (out[mask] == 0).all()


def test_boxes_at_the_frame_edge_are_clipped_not_lost():
    frame = _texture()
    boxes = Detections(np.array([[-20, -10, 30, 40], [300, 200, 360, 260]], np.float32), [0.9, 0.9], [0, 0])
    mask = mask_of(boxes, frame.shape)
    assert mask[0:40, 0:30].all() and mask[200:240, 300:320].all()
