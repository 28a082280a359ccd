"""COCO and TuSimple label files: what is written reads back the same; malformed files are one clear error."""

import json

import pytest

from curation.errors import LabelError
from curation.labeling.formats import FrameLabels, from_coco, from_tusimple, to_coco, to_tusimple

CLASSES = ["vehicle", "pedestrian", "traffic_light", "traffic_sign"]


def _frames():
    return [FrameLabels("clips/a.mp4#12", 1280, 720, ["vehicle", "traffic_light"], [[10.0, 20.0, 110.0, 90.0], [500.0, 40.0, 520.0, 100.0]],
                        [0.9, 0.6], [{}, {"state": "red"}], [[600.0, -2.0, 590.5]], [300, 310, 320], ["dashed"], ["white"]),
            FrameLabels("b.jpg", 640, 360)]


def test_coco_round_trip_keeps_boxes_scores_attributes_and_names():
    document = to_coco(_frames(), CLASSES)
    assert [c["name"] for c in document["categories"]] == CLASSES and document["categories"][0]["id"] == 1
    assert document["annotations"][1]["attributes"] == {"state": "red"} and document["annotations"][1]["bbox"] == [500.0, 40.0, 20.0, 60.0]
    back = from_coco(json.loads(json.dumps(document)))
    assert [(f.file_name, f.classes, f.boxes, f.scores, f.attributes) for f in back] == \
           [(f.file_name, f.classes, f.boxes, f.scores, f.attributes) for f in _frames()]


def test_tusimple_round_trip_one_json_object_per_line():
    text = to_tusimple(_frames())
    assert len(text.splitlines()) == 2 and json.loads(text.splitlines()[0])["raw_file"] == "clips/a.mp4#12"
    back = from_tusimple(text)["clips/a.mp4#12"]
    assert (back.lanes, back.h_samples, back.lane_types, back.lane_colors) == ([[600.0, -2.0, 590.5]], [300, 310, 320], ["dashed"], ["white"])


@pytest.mark.parametrize("document, message", [
    ({"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [{"image_id": 1, "category_id": 9, "bbox": [0, 0, 1, 1]}],
      "categories": [{"id": 1, "name": "vehicle"}]}, "not a COCO detection document"),
    ({"annotations": []}, "not a COCO detection document"),
])
def test_a_malformed_coco_document_is_one_error(document, message):
    with pytest.raises(LabelError, match=message):
        from_coco(document)


def test_a_tusimple_line_with_lanes_of_the_wrong_length_names_the_line():
    good = json.dumps({"raw_file": "a.jpg", "h_samples": [1, 2], "lanes": [[1, 2]]})
    bad = json.dumps({"raw_file": "b.jpg", "h_samples": [1, 2], "lanes": [[1]]})
    with pytest.raises(LabelError, match="TuSimple line 2: a lane has not one x per h_sample"):
        from_tusimple(good + "\n" + bad + "\n")
