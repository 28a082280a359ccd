"""`curation label` on your own pictures and videos, and `curation label eval` on the result."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from curation.cli import app
from curation.labeling.files import expand_inputs
from curation.media.video import VideoWriter
from curation.sources.faces import face_bank
from curation.sources.scene import Camera, Conditions, Scene

runner = CliRunner()


def _scene(seed=5):
    bank = face_bank()
    rng = np.random.default_rng([31, seed])
    return Scene.random(rng, Camera(640, 360), "us", (bank.crops, bank.boxes), conditions=Conditions("day", "clear"), vehicles=5)


@pytest.fixture
def footage(tmp_path):
    """A folder with a 3 s 10 fps simulated video in a subfolder, a picture, and a file that is no picture."""
    folder = tmp_path / "footage"
    (folder / "drive").mkdir(parents=True)
    scene = _scene()
    with VideoWriter(str(folder / "drive" / "front.mp4"), 640, 360, fps=10) as writer:
        for k in range(30):
            writer.write(scene.render(k / 10, 8 * k / 10)[0])
    cv2.imwrite(str(folder / "still.png"), np.ascontiguousarray(scene.render(1.0, 8.0)[0][..., ::-1]))
    return folder


def _label(*args):
    return runner.invoke(app, ["label", *args, "--params", "params.yaml"])


def test_a_folder_gives_coco_and_tusimple_named_relative_to_it_with_video_frames_sampled_by_time(footage, tmp_path):
    out = tmp_path / "out"
    result = _label(str(footage), "-o", str(out), "--model", "models/labeler.pt", "--no-lamps", "--draw")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert (summary["images"], summary["videos"], summary["failed"]) == (1, 1, [])
    coco = json.loads((out / "labels.coco.json").read_text())
    names = [image["file_name"] for image in coco["images"]]
    # every 0.5 s of a 3 s clip at 10 fps: frames 0, 5, ..., 25
    assert names == [f"drive/front.mp4#{k}" for k in range(0, 30, 5)] + ["still.png"]
    assert [c["name"] for c in coco["categories"]] == ["vehicle", "pedestrian", "traffic_light", "traffic_sign"]
    classes = {a["category_id"] for a in coco["annotations"]}
    assert 1 in classes  # the simulated cars are found by the simulated-scene model
    lights = [a for a in coco["annotations"] if a["category_id"] == 3]
    assert all(a["attributes"]["state"] in ("red", "yellow", "green", "off") for a in lights)
    lanes = [json.loads(line) for line in (out / "lanes.tusimple.json").read_text().splitlines()]
    assert [entry["raw_file"] for entry in lanes] == names and any(entry["lanes"] for entry in lanes)
    assert all(len(lane) == len(entry["h_samples"]) for entry in lanes for lane in entry["lanes"])
    assert (out / "draw" / "drive" / "front.mp4.jpg").is_file() and (out / "draw" / "still.png.jpg").is_file()

    # Scoring the labels against themselves is perfect; against a moved copy it is not.
    result = _label("eval", "--truth", str(out), "--pred", str(out))
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["boxes"]["classes"]["vehicle"]["mAP50"] == 1.0 and report["lanes"]["f1"] == 1.0
    for annotation in coco["annotations"]:
        annotation["bbox"][0] += annotation["bbox"][2]  # each box moved by its own width: no overlap left
    (tmp_path / "moved.json").write_text(json.dumps(coco))
    result = _label("eval", "--truth", str(out), "--pred", str(tmp_path / "moved.json"))
    assert result.exit_code == 0, (result.output, result.exception)
    report = json.loads(result.output)
    assert report["boxes"]["classes"]["vehicle"]["mAP50"] == 0.0


def test_unreadable_inputs_are_listed_and_the_rest_is_labeled(footage, tmp_path):
    (footage / "broken.jpg").write_bytes(b"not a jpeg")
    (footage / "cut.mp4").write_bytes((footage / "drive" / "front.mp4").read_bytes()[:300])
    result = _label(str(footage / "still.png"), str(footage / "broken.jpg"), str(footage / "cut.mp4"), "-o", str(tmp_path / "o"),
                    "--model", "models/labeler.pt")
    assert result.exit_code == 1, (result.output, result.exception)
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert {f["input"].rsplit("/", 1)[-1]: f["error"] for f in summary["failed"]} == {
        "broken.jpg": "not a readable image", "cut.mp4": "no decodable video frame"}
    assert summary["images"] == 1 and json.loads((tmp_path / "o" / "labels.coco.json").read_text())["images"]


def test_globs_are_named_relative_to_the_part_before_the_wildcard(footage):
    found = expand_inputs([str(footage / "**" / "*.mp4"), str(footage / "still.png")])
    assert [name for _, name in found] == ["drive/front.mp4", "still.png"]


@pytest.mark.parametrize("args, message", [
    (["eval", "--truth", "x"], "label eval needs --truth and --pred"),
    (["nothing-here-*.jpg"], "no video or image matches"),
])
def test_user_mistakes_are_one_line(args, message):
    result = _label(*args)
    assert result.exit_code != 0 and message in result.output


REAL = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "real"


@pytest.mark.skipif(not REAL.exists(), reason="shared/testdata is not beside the repository")
def test_the_defaults_label_real_footage_cars_lane_lines_and_lit_lights(tmp_path):
    """yolov8n-coco, lit lamps and the learned lanes on a Udacity dashcam frame, a TuSimple frame and an
    intersection photo (one of the 13 the lamp finder was not tuned on)."""
    photo = sorted((REAL / "traffic_lights" / "images").iterdir())[12]
    inputs = [REAL / "dashcam" / "udacity_vd_test1.jpg", REAL / "lanes_unlabeled" / "0.jpg", photo]
    result = _label(*map(str, inputs), "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    coco = json.loads((tmp_path / "out" / "labels.coco.json").read_text())
    ids = {image["file_name"]: image["id"] for image in coco["images"]}
    by_image = {name: [a for a in coco["annotations"] if a["image_id"] == k] for name, k in ids.items()}
    assert sum(a["category_id"] == 1 for a in by_image["udacity_vd_test1.jpg"]) >= 2  # the black and the white car
    lights = [a for a in by_image[photo.name] if a["category_id"] == 3]
    assert lights and all(a["attributes"]["state"] in ("red", "yellow", "green", "off") for a in lights)
    assert any(a["attributes"]["state"] != "off" for a in lights)
    lanes = {json.loads(line)["raw_file"]: json.loads(line) for line in (tmp_path / "out" / "lanes.tusimple.json").read_text().splitlines()}
    assert len(lanes["0.jpg"]["lanes"]) >= 3 and len(lanes["udacity_vd_test1.jpg"]["lanes"]) >= 2
    assert coco["info"]["model"].startswith("yolov8n-coco:") and coco["info"]["lanes"].startswith("learned-lanes:")
