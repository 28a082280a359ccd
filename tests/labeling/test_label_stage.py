"""label@R with a COCO-named model (through label.class_map), and frames streamed a window at a time."""

import json

import numpy as np
import pytest
import yaml

from builders import coco_named_weights, make_fleet, params_document
from curation.labeling.stage import label_region
from curation.labeling.stream import label_stream
from curation.perception.labeler import COCO_CLASS_MAP, Labeler
from curation.perception.lanes import LaneDetector
from curation.perception.tracks import TrackConfig
from curation.policy.params import LabelParams, load_params
from curation.redaction.stage import redact_region
from curation.sources.ingest import ingest
from curation.storage.catalog import Catalog
from curation.storage.store import RegionStore

# The bootstrap model with COCO's names for the classes COCO has: a small model whose classes carry COCO names.

@pytest.fixture(scope="module")
def region(tmp_path_factory):
    root = tmp_path_factory.mktemp("label-region")
    document = params_document(root, ("cn",))
    (root / "params.yaml").write_text(yaml.safe_dump(document))
    params = load_params(root / "params.yaml")
    make_fleet(root, "cn", vehicles=1, events=1, seconds=2.0, width=640, height=360, cameras=("front",), vehicles_in_scene=5)
    store = RegionStore(params, "cn", actor="test")
    ingest(store, "landing", params.ingest, progress=False)
    redact_region(store, params, progress=False)
    return root, document


def _label(root, document, **label):
    document = {**document, "label": {**document.get("label", {}), **label}}
    (root / "params.yaml").write_text(yaml.safe_dump(document))
    params = load_params(root / "params.yaml")
    store = RegionStore(params, "cn", actor="test")
    metrics = label_region(store, params, progress=False)
    return metrics, Catalog(store).read("detections").to_pylist()


def test_a_coco_named_model_labels_the_region_through_the_class_map(region, tmp_path):
    root, document = region
    bootstrap, reference = _label(root, document)
    coco_map = {name: COCO_CLASS_MAP[name] for name in ("car", "person", "traffic light", "stop sign")}
    metrics, detections = _label(root, document, model=str(coco_named_weights(tmp_path)), class_map=coco_map)
    assert metrics["clips"] == bootstrap["clips"] == 1 and metrics["model"].startswith("coco_named:")
    assert detections and {d["model_class"] for d in detections} <= set(coco_map)
    assert {d["label"] for d in detections} <= {"vehicle", "pedestrian", "traffic_light", "traffic_sign"}
    # Same weights, other names: the cars and people the bootstrap found, now named by COCO.
    for taxonomy in ("vehicle", "pedestrian"):
        assert sum(d["label"] == taxonomy for d in detections) == sum(d["label"] == taxonomy for d in reference) > 0
    assert all(json.loads(d["attrs"]) == {"sign": "stop"} for d in detections if d["model_class"] == "stop sign")
    assert all(json.loads(d["attrs"])["state"] in ("red", "yellow", "green", "off") for d in detections if d["label"] == "traffic_light")


@pytest.mark.parametrize("model", ["yolov8n-coco", "coco-ssd"])
def test_the_real_trained_coco_detectors_and_the_learned_lanes_run_through_label_at_r(region, model):
    root, document = region
    lanes = {**document.get("label", {}).get("lanes", {}), "model": "models/lanes.onnx"}
    metrics, detections = _label(root, document, model=model, class_map=COCO_CLASS_MAP, threshold=0.3, lamps=True, lanes=lanes)
    assert metrics["clips"] == 1 and metrics["model"].startswith(f"{model}:") and metrics["sampled_frames"] > 0
    print(metrics["lane_lines"], metrics["quality"]["lanes"])
    assert metrics["lanes"].startswith("learned-lanes:") and metrics["quality"]["lanes"]["predicted_lines"] > 0
    assert {d["model_class"] for d in detections} <= set(COCO_CLASS_MAP) | {"lit lamp"}


def test_frames_stream_through_a_window_and_are_never_all_held():
    config = LabelParams(batch=3)
    labeler = Labeler(config)
    calls, produced = [], []
    real = labeler.__call__

    class Counting(Labeler):
        def __call__(self, frames, horizons=None):
            calls.append((len(frames), len(produced)))
            return real(frames, horizons)

    labeler.__class__ = Counting
    rng = np.random.default_rng(0)

    def frames():
        for k in range(10):
            produced.append(k)
            yield k, k, rng.integers(0, 255, (96, 160, 3), dtype=np.uint8)

    labeled = label_stream(frames(), labeler, LaneDetector(), TrackConfig(**config.track.model_dump()))
    assert [f.index for f in labeled] == list(range(10))
    # Windows of 3: labeled as soon as 3 arrived, while the decoder had produced only those.
    assert calls == [(3, 3), (3, 6), (3, 9), (1, 10)]


def _label_records(log) -> int:
    return sum('"action":"label"' in line for line in log.read_text().splitlines()) if log.exists() else 0


@pytest.mark.slow
def test_killed_labeling_loses_only_the_clips_in_flight_and_a_rerun_redoes_only_those(tmp_path):
    import os
    import subprocess
    import sys
    import time

    from builders import REPO, make_params, make_store

    make_params(tmp_path, params_document(tmp_path))
    make_fleet(tmp_path, "eu", vehicles=4, events=1, seconds=2.0, width=320, height=192, seed=5)
    store = make_store(tmp_path, "eu")
    ingest(store, "landing", store.params.ingest, progress=False)
    redact_region(store, store.params, progress=False)
    label_region(store, store.params, progress=False)
    catalog = Catalog(store)
    clips = catalog.count("labeled_clips")
    tables = ("labeled_clips", "detections", "tracks", "lane_lines", "frame_embeddings")
    clean = {table: sorted(map(str, _without_time(catalog.read(table).to_pylist()))) for table in tables}
    for table in tables:  # the same region, not labeled yet
        catalog.table(table).delete("true")
    log = tmp_path / "data" / "eu" / "audit" / "log.jsonl"
    before = _label_records(log)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "pipelines.label", "eu", str(tmp_path / "metrics.json"), "--workers", "1"]
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200_000):  # kill once two clips are committed (bounded by iterations, not by the clock)
        if process.poll() is not None or _label_records(log) - before >= 2:
            break
        time.sleep(0.005)
    process.kill()
    process.wait()
    records = _label_records(log) - before
    committed = catalog.count("labeled_clips")  # the labeled_clips row is the commit's completion mark
    assert 0 < committed < clips, "the kill must interrupt the run"
    assert subprocess.run(command, cwd=tmp_path, env=env, capture_output=True).returncode == 0
    # The rerun labeled only the clips without a row (one killed between its row and its audit record is not redone).
    assert _label_records(log) - before - records == clips - committed
    assert {table: sorted(map(str, _without_time(catalog.read(table).to_pylist()))) for table in tables} == clean
    store.audit.verify()


def _without_time(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "labeled_at"} for row in rows]
