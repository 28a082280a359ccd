"""redact@R over a simulated region: statuses, proof tables, zones, retention, audit, reruns."""

import json

import numpy as np
import pytest
import yaml

from builders import make_fleet, make_params, make_store, params_document
from curation.media.video import decode_frames, probe
from curation.policy.params import load_params
from curation.redaction.stage import redact_region
from curation.sources.ingest import ingest
from curation.storage.catalog import Catalog


def _region(tmp_path, region, edit=None, **fleet):
    document = params_document(tmp_path)
    if edit:
        edit(document)
    make_params(tmp_path, document)
    make_fleet(tmp_path, region, **fleet)
    store = make_store(tmp_path, region)
    ingest(store, "landing", store.params.ingest, progress=False)
    return store


@pytest.mark.slow
def test_cn_redacts_verifies_records_proof_and_deletes_raw_at_once(tmp_path):
    store = _region(tmp_path, "cn", vehicles=2, events=2, width=640, height=360, rates={"zone_crossing": 0.25})
    metrics = redact_region(store, store.params, progress=False)
    catalog = Catalog(store)
    rows = {r["clip_id"]: r for r in catalog.read("redacted_clips").to_pylist()}
    clips = catalog.read("clips").to_pylist()
    assert set(rows) == {c["clip_id"] for c in clips}
    crossing = [c for c in clips if c["zone_frames"]]
    assert crossing and all(rows[c["clip_id"]]["status"] == "dropped_zone" for c in crossing)  # cn: over 20 % inside
    verified = [r for r in rows.values() if r["status"] == "verified"]
    assert verified and metrics["clips"]["verified"] == len(verified)
    for row in verified:
        output = store.read_bytes(row["output_uri"])
        info = probe(output)
        clip = next(c for c in clips if c["clip_id"] == row["clip_id"])
        assert info.frames == clip["frames"] and row["raw_deleted"] and not store.exists(clip["source_uri"])
        frames = catalog.read("redactions", where=f"clip_id = '{row['clip_id']}'").to_pylist()
        assert len(frames) == clip["frames"] and {f["policy_version"] for f in frames} == {metrics["policy_version"]}
        assert all("centerface:" in f["detectors"] and "yolo-plates-fastanpr:" in f["detectors"] for f in frames)
    assert json.loads(store.read_text("redacted/manifest.json")) == {r["clip_id"]: r["output_sha256"] for r in verified}
    actions = [r["action"] for r in store.audit.records()]
    assert actions.count("redact") == len(verified) and "drop_clip_restricted_zone" in actions and "delete" in actions
    assert metrics["quality"]["frames"] == sum(c["frames"] for c in clips if rows[c["clip_id"]]["status"] != "dropped_zone")
    assert all(row["verifiers"].startswith("retinaface-mnet025:") and "yolo-plates-safelicensing:" in row["verifiers"] for row in verified)
    again = redact_region(store, store.params, progress=False)  # raw is gone: results stand, nothing lost
    assert again["clips"] == metrics["clips"]
    assert {r["clip_id"]: r["output_sha256"] for r in Catalog(store).read("redacted_clips").to_pylist()} == \
        {k: v["output_sha256"] for k, v in rows.items()}

    # A rule changes (a verifier threshold) once raw media is gone: the stored outputs are verified again.
    document = yaml.safe_load((tmp_path / "params.yaml").read_text())
    document.setdefault("redaction", {})["verify_face_threshold"] = 0.25
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(document))
    changed = make_store(tmp_path, "cn")
    third = redact_region(changed, changed.params, progress=False)
    records = [r for r in changed.audit.records() if r["action"] == "reverify"]
    assert len(records) == len(verified) and third["clips"] == metrics["clips"]
    assert {r["fingerprint"] for r in Catalog(changed).read("redacted_clips", where="status = 'verified'").to_pylist()} != \
        {r["fingerprint"] for r in verified}


@pytest.mark.slow
def test_eu_blanks_restricted_frames_and_keeps_raw_until_its_deadline(tmp_path):
    store = _region(tmp_path, "eu", vehicles=1, events=2, width=320, height=192, rates={"zone_crossing": 0.5})
    redact_region(store, store.params, progress=False)
    catalog = Catalog(store)
    clip = next(c for c in catalog.read("clips").to_pylist() if c["zone_frames"])
    row = catalog.read("redacted_clips", where=f"clip_id = '{clip['clip_id']}'").to_pylist()[0]
    assert row["status"] == "verified" and row["blanked_frames"] == clip["zone_frames"]
    assert not row["raw_deleted"] and store.exists(clip["source_uri"]) and row["retention_deadline"] is not None
    zones = [f["zone"] is not None for f in catalog.read("frames", where=f"clip_id = '{clip['clip_id']}'").sort_by("index").to_pylist()]
    frames = [f for _, f in decode_frames(store.open(row["output_uri"]))]
    assert [f.max() <= 16 for f in frames] == zones


@pytest.mark.slow
def test_a_clip_the_detector_cannot_clear_fails_verification_and_is_never_stored(tmp_path):
    def blind(document):
        document["redaction"] = {"face_threshold": 0.999, "verify_face_threshold": 0.5, "repair": False}
        document["regions"]["us"]["redact"]["min_face_px"] = 20
    store = _region(tmp_path, "us", blind, vehicles=2, events=1, width=640, height=360, pedestrians=14, seed=2)
    metrics = redact_region(store, store.params, progress=False)
    failed = Catalog(store).read("redacted_clips", where="status = 'redaction_failed'").to_pylist()
    assert failed and metrics["clips"]["redaction_failed"] == len(failed)
    assert all(r["output_uri"] is None and json.loads(r["findings"])[0]["class"] == "face" for r in failed)
    assert not any(store.exists(f"redacted/{r['clip_id']}.mp4") for r in failed)
    from curation.redaction.stage import redaction_status

    assert redaction_status(Catalog(store))["redaction_failed_clips"] == sorted(r["clip_id"] for r in failed)

    # With repair on (the default), what the verifiers find is masked too and verified again: the same clips pass.
    document = yaml.safe_load((tmp_path / "params.yaml").read_text())
    document["redaction"]["repair"] = True
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    store = make_store(tmp_path, "us")
    redact_region(store, store.params, progress=False)
    rows = {r["clip_id"]: r for r in Catalog(store).read("redacted_clips").to_pylist()}
    assert all(rows[r["clip_id"]]["status"] == "verified" and store.exists(f"redacted/{r['clip_id']}.mp4") for r in failed)
    repaired = [f for r in failed for f in json.loads(rows[r["clip_id"]]["findings"])]
    assert repaired and all(f["repaired"] and f["class"] == "face" and f["round"] >= 1 for f in repaired)  # what was repaired, and when, is on record


@pytest.mark.slow
def test_redactions_of_clips_gone_from_the_catalog_are_pruned(tmp_path):
    store = _region(tmp_path, "us", vehicles=1, events=1, width=320, height=192)
    redact_region(store, store.params, progress=False)
    catalog = Catalog(store)
    gone = catalog.read("clips").to_pylist()[0]
    catalog.table("clips").delete(f"clip_id = '{gone['clip_id']}'")
    output = f"redacted/{gone['clip_id']}.mp4"
    assert store.exists(output)
    redact_region(store, store.params, progress=False)
    assert Catalog(store).count("redacted_clips", f"clip_id = '{gone['clip_id']}'") == 0 and not store.exists(output)
    assert Catalog(store).count("redactions", f"clip_id = '{gone['clip_id']}'") == 0


def _redact_records(log) -> int:
    return sum('"action":"redact"' in line for line in log.read_text().splitlines()) if log.exists() else 0


@pytest.mark.slow
def test_killed_redaction_loses_only_the_clips_in_flight_and_a_rerun_redoes_only_those(tmp_path):
    import os
    import subprocess
    import sys
    import time

    from builders import REPO

    roots = {name: tmp_path / name for name in ("clean", "crash")}
    for root in roots.values():
        root.mkdir()
        _region(root, "eu", vehicles=3, events=1, width=320, height=192, seed=4)
    clean = make_store(roots["clean"], "eu")
    redact_region(clean, clean.params, progress=False)
    clips = Catalog(clean).count("clips")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "pipelines.redact", "eu", str(tmp_path / "metrics.json")]
    log = roots["crash"] / "data" / "eu" / "audit" / "log.jsonl"
    process = subprocess.Popen(command, cwd=roots["crash"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200_000):  # kill once two clips are committed (bounded by iterations, not by the clock)
        if process.poll() is not None or _redact_records(log) >= 2:
            break
        time.sleep(0.005)
    process.kill()
    process.wait()
    records = _redact_records(log)
    committed = Catalog(make_store(roots["crash"], "eu")).count("redacted_clips")  # rows written: the commit's last step
    assert 0 < records and committed < clips, "the kill must interrupt the run"
    assert subprocess.run(command, cwd=roots["crash"], env=env, capture_output=True).returncode == 0
    # The rerun redid only the clips without a row (one killed between its audit record and its row is done again).
    assert _redact_records(log) - records == clips - committed
    crash = make_store(roots["crash"], "eu")
    outputs = {s: {r["clip_id"]: (r["status"], r["output_sha256"]) for r in Catalog(s).read("redacted_clips").to_pylist()} for s in (clean, crash)}
    assert outputs[crash] == outputs[clean]
    assert not list(crash.walk("tmp"))  # no temporary output left behind
    crash.audit.verify()
