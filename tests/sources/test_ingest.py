import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from builders import REPO, make_fleet, make_params, make_store
from curation.policy.params import load_params
from curation.policy.zones import coarsen
from curation.sources.ingest import _hmac, ingest, pseudonym_key
from curation.storage.catalog import Catalog

ALL_FAULTS = {"no_consent": 0.5, "zone_crossing": 0.5, "wrong_region": 0.25, "truncated": 0.25, "corrupt": 0.125,
              "missing_event_json": 0.25, "malformed_event_json": 0.25, "duplicate": 0.5, "sentry": 0.25, "recent": 0.25}


def _ingest(tmp_path, region="cn"):
    store = make_store(tmp_path, region)
    return store, ingest(store, "landing", store.params.ingest, progress=False)


def _outcomes(store):
    """Arrivals by landing path as the simulator wrote it (the catalog holds pseudonymous paths)."""
    secret = pseudonym_key(store)
    vins = {p.name for p in (Path(store.root) / "landing").iterdir() if p.is_dir()}
    real = {_hmac(secret, vin): vin for vin in vins}
    arrivals = Catalog(store).read("arrivals").to_pylist()
    unmask = lambda uri: "/".join(real.get(part, part) for part in uri.removeprefix("landing/").split("/"))  # noqa: E731
    return {unmask(a["source_uri"]): {**a, "duplicate_of": a["duplicate_of"] and "landing/" + unmask(a["duplicate_of"])} for a in arrivals}


def test_every_arrival_is_accounted_for_and_each_fault_lands_where_it_should(tmp_path):
    make_params(tmp_path)
    out, manifest = make_fleet(tmp_path, "cn", vehicles=4, events=2, rates=ALL_FAULTS)
    (out / manifest["events"][0]["folder"] / "notes.txt").write_text("left by a technician")
    store, summary = _ingest(tmp_path)
    run, totals = summary["run"], summary["totals"]
    files = [p for p in out.rglob("*.mp4")]
    assert run["seen"] == len(files) + 1 == run["cataloged"] + run["quarantined"] + run["duplicates"]
    assert totals["arrived"] == totals["cataloged"] + totals["quarantined"] + totals["duplicates"]
    outcomes = _outcomes(store)
    assert outcomes[f"{manifest['events'][0]['folder']}/notes.txt"]["reason"] == "unrecognized_file"
    consent = manifest["vehicles"]
    for event in manifest["events"]:
        for camera in event["cameras"].values():
            arrival = outcomes[camera["file"]]
            if arrival["outcome"] == "duplicate":  # its copy under RecentClips sorted first and won
                assert outcomes[arrival["duplicate_of"].removeprefix("landing/")]["sha256"] == arrival["sha256"]
                continue
            if event["event_json"] == "missing":
                expected = "missing_metadata"
            elif event["event_json"] == "malformed":
                expected = "malformed_metadata"
            elif not consent[event["vehicle"]]["consent"]:
                expected = "no_consent"
            elif camera["damage"] == "corrupt":
                expected = "undecodable"
            elif camera["damage"] == "truncated":
                expected = arrival["reason"] if arrival["outcome"] == "quarantined" else None
                assert expected in (None, "truncated", "undecodable")
            elif event["wrong_region"]:
                expected = "wrong_region"
            else:
                expected = None
            assert arrival["reason"] == expected, (event, camera, arrival)
        if "duplicate" in event:
            pair = {outcomes[event["duplicate"]]["outcome"], outcomes[event["duplicate_of"]]["outcome"]}
            assert "duplicate" in pair and len(pair) == 2
    # Quarantine keeps the original bytes with a machine-readable reason.
    for arrival in outcomes.values():
        if arrival["outcome"] == "quarantined":
            folder = f"quarantine/{arrival['reason']}/{arrival['sha256']}"
            assert store.sha256(f"{folder}/{arrival['source_uri'].rsplit('/', 1)[1]}") == arrival["sha256"]
            assert json.loads(store.read_text(f"{folder}/reason.json"))["reason"] == arrival["reason"]
    assert store.audit.verify() > len(outcomes)


def test_truncated_file_keeps_a_prefix_of_at_least_one_second_or_is_quarantined(tmp_path):
    make_params(tmp_path)
    out, manifest = make_fleet(tmp_path, "eu", vehicles=1, events=1, seconds=3.0, cameras=("front", "back", "left_repeater"))
    files = [out / c["file"] for c in manifest["events"][0]["cameras"].values()]
    data = files[0].read_bytes()
    files[0].write_bytes(data[: int(len(data) * 0.8)])  # well over 1 s survives
    files[1].write_bytes(files[1].read_bytes()[:3000])  # a few frames at most
    store, summary = _ingest(tmp_path, "eu")
    clips = {c["clip_id"]: c for c in Catalog(store).read("clips").to_pylist()}
    sha = lambda path: hashlib.sha256(path.read_bytes()).hexdigest()  # noqa: E731
    kept = clips[sha(files[0])]
    assert kept["source_uri"] == f"raw/{kept['clip_id'][:2]}/{kept['clip_id']}.mp4" and store.sha256(kept["source_uri"]) == kept["clip_id"]
    assert kept["truncated"] and 1.0 <= kept["duration_s"] < 3.0 and kept["frames"] == Catalog(store).count("frames", f"clip_id = '{kept['clip_id']}'")
    assert not clips[sha(files[2])]["truncated"] and clips[sha(files[2])]["frames"] == 30
    assert _outcomes(store)[str(files[1].relative_to(out))]["reason"] in ("truncated", "undecodable")


def test_catalog_rows_positions_coarsened_pseudonyms_and_zones(tmp_path):
    make_params(tmp_path)
    out, manifest = make_fleet(tmp_path, "cn", vehicles=2, events=2, rates={"zone_crossing": 0.5, "sentry": 0.25, "recent": 0.25})
    store, summary = _ingest(tmp_path)
    catalog = Catalog(store)
    clips, frames = catalog.read("clips").to_pylist(), catalog.read("frames").to_pylist()
    assert summary["totals"]["cataloged"] == len(clips) == 8 and len(frames) == 8 * 20
    assert {c["layout"] for c in clips} == {"saved", "sentry", "recent"}
    vins = set(manifest["vehicles"])
    text = json.dumps([clips, frames], default=str)
    assert not any(vin in text for vin in vins)  # the VIN never reaches the catalog
    assert len({c["vehicle"] for c in clips}) == 2
    precision = store.policy.gps_precision_m
    lat = np.array([f["lat"] for f in frames if f["lat"] is not None])
    lon = np.array([f["lon"] for f in frames if f["lon"] is not None])
    assert np.allclose(coarsen(lat, lon, precision)[0], lat) and np.allclose(coarsen(lat, lon, precision)[1], lon)
    crossing = [c for c in clips if c["zone_frames"]]
    assert crossing and all(0 < c["zone_frames"] < c["frames"] for c in crossing)
    zoned = [f for f in frames if f["zone"]]
    assert {f["zone"] for f in zoned} <= set(store.policy.zones.ids)
    sentry = [c for c in clips if c["layout"] == "sentry"]
    assert sentry and all(not c["has_sei"] and c["trigger"] == "sentry_aware_object_detection" for c in sentry)
    assert all(c["groundtruth_uri"] and store.exists(c["groundtruth_uri"]) for c in clips)


def test_rerun_adds_nothing_and_duplicates_add_nothing(tmp_path):
    make_params(tmp_path)
    out, _ = make_fleet(tmp_path, "us")
    store, first = _ingest(tmp_path, "us")
    again = ingest(store, "landing", store.params.ingest, progress=False)
    assert again["run"]["already_ingested"] == first["run"]["seen"] and again["totals"] == first["totals"]
    source = next(out.rglob("*-front.mp4"))
    copy = out / source.parts[len(out.parts)] / "TeslaCam" / "RecentClips" / source.name
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_bytes(source.read_bytes())
    third = ingest(store, "landing", store.params.ingest, progress=False)
    assert third["run"]["duplicates"] == 1 and third["totals"]["cataloged"] == first["totals"]["cataloged"]


def test_sidecar_clips_valid_and_invalid(tmp_path):
    make_params(tmp_path)
    out, manifest = make_fleet(tmp_path, "eu", vehicles=1, events=2, rates={"sidecar": 1.0})
    sidecars = sorted(out.rglob("clips/*.json"))
    assert len(sidecars) == 4
    bad = json.loads(sidecars[0].read_text())
    bad["region"] = "cn"
    sidecars[0].write_text(json.dumps(bad))
    typo = json.loads(sidecars[1].read_text())
    typo["start_tme"] = typo.pop("start_time")
    sidecars[1].write_text(json.dumps(typo))
    store, summary = _ingest(tmp_path, "eu")
    outcomes = _outcomes(store)
    reasons = {p.name: outcomes[str(p.relative_to(out))[:-5] + ".mp4"]["reason"] for p in sidecars}
    assert reasons[sidecars[0].name] == "wrong_region"
    assert reasons[sidecars[1].name] == "malformed_metadata"
    assert "start_tme" in outcomes[str(sidecars[1].relative_to(out))[:-5] + ".mp4"]["detail"]
    assert [reasons[p.name] for p in sidecars[2:]] == [None, None]
    clip = Catalog(store).read("clips", where="layout = 'sidecar'").to_pylist()[0]
    assert clip["trigger"] == "manual" and not clip["has_sei"]


def _catalog_snapshot(store):
    catalog = Catalog(store)
    snapshot = {}
    for name, key in (("clips", "clip_id"), ("frames", "index"), ("arrivals", "source_uri")):
        rows = catalog.read(name).to_pylist()
        snapshot[name] = sorted(json.dumps(r, sort_keys=True, default=str) for r in rows)
    return snapshot


@pytest.mark.slow
def test_killed_ingest_converges_to_one_clean_run(tmp_path):
    clean_root, crash_root = tmp_path / "clean", tmp_path / "crash"
    for root in (clean_root, crash_root):
        root.mkdir()
        document = json.loads(json.dumps(__import__("yaml").safe_load(make_params(root).read_text())))
        document["ingest"] = {"commit_every": 1, "min_truncated_seconds": 1.0}
        make_params(root, document)
        make_fleet(root, "cn", vehicles=3, events=2, seed=5, rates={"truncated": 0.25, "duplicate": 0.5, "wrong_region": 0.2})
    # Same pseudonym secret in both (it lives outside the store, in keys/cn/), as for one region.
    key = make_store(clean_root, "cn")
    pseudonym_key(key)
    (crash_root / "keys" / "cn").mkdir(parents=True)
    shutil.copy2(clean_root / "keys" / "cn" / "pseudonym.key", crash_root / "keys" / "cn" / "pseudonym.key")
    ingest(key, "landing", key.params.ingest, progress=False)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "curation.cli", "ingest", "--region", "cn"]
    for delay in (1.5, 2.5, 3.5):
        process = subprocess.Popen(command, cwd=crash_root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert subprocess.run(command, cwd=crash_root, env=env, capture_output=True).returncode == 0
    assert _catalog_snapshot(make_store(crash_root, "cn")) == _catalog_snapshot(key)


def test_status_cli_reports_counts(tmp_path):
    make_params(tmp_path)
    make_fleet(tmp_path, "cn", rates={"wrong_region": 0.5})
    _ingest(tmp_path)
    result = subprocess.run([sys.executable, "-m", "curation.cli", "status", "--json"], cwd=tmp_path, capture_output=True, text=True)
    reports = {r["region"]: r["totals"] for r in json.loads(result.stdout)}
    assert reports["cn"]["quarantined_by_reason"] == {"wrong_region": 4} and reports["cn"]["cataloged"] == 4
    assert reports["eu"]["arrived"] == 0
    table = subprocess.run([sys.executable, "-m", "curation.cli", "status"], cwd=tmp_path, capture_output=True, text=True).stdout
    assert "wrong_region 4" in table
