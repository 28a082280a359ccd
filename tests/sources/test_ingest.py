import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from builders import REPO, make_fleet, make_params, make_store
from curation.media.mp4 import needs_rebuild, scan
from curation.media.video import probe
from curation.policy.params import load_params
from curation.policy.zones import coarsen
from curation.sources.ingest import ingest, pseudonym_key, truncated_original
from curation.storage.catalog import Catalog
from curation.storage.keys import pseudonym

ALL_FAULTS = {"no_consent": 0.5, "zone_crossing": 0.5, "wrong_region": 0.25, "truncated": 0.25, "corrupt": 0.125,
              "missing_event_json": 0.25, "malformed_event_json": 0.25, "duplicate": 0.5, "sentry": 0.25, "recent": 0.25}


def _ingest(tmp_path, region="cn"):
    store = make_store(tmp_path, region)
    return store, ingest(store, "landing", store.params.ingest, progress=False)


def _outcomes(store, manifest):
    """Arrivals by landing path as the simulator wrote it (the catalog holds pseudonymous paths)."""
    secret = pseudonym_key(store)
    real = {pseudonym(secret, vin): vin for vin in manifest["vehicles"]}
    arrivals = Catalog(store).read("arrivals").to_pylist()
    unmask = lambda uri: "/".join(real.get(part, part) for part in uri.removeprefix("landing/").split("/"))  # noqa: E731
    return {unmask(a["source_uri"]): {**a, "duplicate_of": a["duplicate_of"] and "landing/" + unmask(a["duplicate_of"])} for a in arrivals}


def _shas(folder: Path) -> dict[Path, str]:
    """sha256 of every file an upload holds, taken before ingest empties the landing zone."""
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def _store_shas(store) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in Path(store.root).rglob("*") if p.is_file()}


def _reference_exists(manifest, event, camera) -> bool:
    """Whether a pulled car file has a whole earlier minute of the same camera and vehicle to rebuild from."""
    return event["layout"] != "sidecar" and any(
        e["vehicle"] == event["vehicle"] and e["stamp"] < event["stamp"] and e["layout"] != "sidecar" and e["cameras"][camera]["damage"] is None
        for e in manifest["events"])


def test_every_arrival_is_accounted_for_and_each_fault_lands_where_it_should(tmp_path):
    make_params(tmp_path)
    out, manifest = make_fleet(tmp_path, "cn", vehicles=4, events=2, rates=ALL_FAULTS)
    (out / manifest["events"][0]["folder"] / "notes.txt").write_text("left by a technician")
    files = [p for p in out.rglob("*.mp4")]
    store, summary = _ingest(tmp_path)
    run, totals = summary["run"], summary["totals"]
    assert run["seen"] == len(files) + 1 == run["cataloged"] + run["quarantined"] + run["duplicates"]
    assert totals["arrived"] == totals["cataloged"] + totals["quarantined"] + totals["duplicates"]
    outcomes = _outcomes(store, manifest)
    assert outcomes[f"{manifest['events'][0]['folder']}/notes.txt"]["reason"] == "unrecognized_file"
    consent = manifest["vehicles"]
    for event in manifest["events"]:
        for name, camera in event["cameras"].items():
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
            elif camera["damage"] == "truncated" and not _reference_exists(manifest, event, name):
                expected = "truncated" if event["layout"] != "sidecar" else arrival["reason"]  # a cut fragmented file: its prefix
                assert expected in (None, "truncated", "undecodable", "wrong_region")
            elif camera["damage"] == "truncated" and event["pulled_at_s"] < 1.5 and arrival["reason"] == "truncated":
                expected = "truncated"  # rebuilt, but under min_truncated_seconds; otherwise checked like any clip below
            elif event["wrong_region"]:
                expected = "wrong_region"
            else:
                expected = None
            assert arrival["reason"] == expected, (event, camera, arrival)
        if "duplicate" in event:
            pair = {outcomes[event["duplicate"]]["outcome"], outcomes[event["duplicate_of"]]["outcome"]}
            assert "duplicate" in pair and len(pair) == 2
    # Quarantine keeps the original bytes with a machine-readable reason, for the reasons a person can fix;
    # footage without consent or from the wrong region is not kept: its arrival and its erasure are recorded.
    held = set(_store_shas(store).values())
    erased = {r["sha256"]: r for r in store.audit.records() if r["action"] == "erase"}
    deletions = {d["sha256"]: d for d in Catalog(store).read("deletions").to_pylist()}
    kinds = set()
    for arrival in outcomes.values():
        if arrival["outcome"] != "quarantined":
            continue
        kinds.add(arrival["reason"])
        folder = f"quarantine/{arrival['reason']}/{arrival['sha256']}"
        if arrival["reason"] in ("no_consent", "wrong_region"):
            assert not store.exists(folder) and arrival["sha256"] not in held
            assert erased[arrival["sha256"]]["detail"]["kind"] == "landing" and deletions[arrival["sha256"]]["audit_seq"] == erased[arrival["sha256"]]["seq"]
            continue
        assert store.sha256(f"{folder}/{arrival['source_uri'].rsplit('/', 1)[1]}") == arrival["sha256"]
        assert json.loads(store.read_text(f"{folder}/reason.json"))["reason"] == arrival["reason"]
        if arrival["reason"] == "malformed_metadata" and arrival["source_uri"].endswith(".mp4"):
            assert store.exists(f"{folder}/event.json")  # what a person fixes travels with the footage
    assert {"no_consent", "wrong_region", "unrecognized_file"} <= kinds
    # landing/ is emptied: every camera file, event file and stray left once recorded; each vehicle's consent stays.
    left = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert left == sorted(["simulation.json", *(f"{vin}/consent.json" for vin in manifest["vehicles"])])
    log = (Path(store.root) / "audit" / "log.jsonl").read_text()
    assert not any(vin in log for vin in manifest["vehicles"])  # every landing name is recorded by its pseudonym
    assert store.audit.verify() > len(outcomes)


def _cut(path: Path, how: str) -> None:
    """Cut a car-layout file as a pulled drive does: moov never written, mdat's size the writer's placeholder."""
    data = path.read_bytes()
    boxes = {b.kind: b for b in scan(io.BytesIO(data))}
    mdat = boxes["mdat"]
    if how == "moov_missing":  # the minute's samples all reached the drive, the sample tables did not
        path.write_bytes(data[: boxes["moov"].offset])
    else:  # mdat cut mid-way, or after its first few frames
        with av.open(str(path)) as container:
            ends = [p.pos + p.size for p in container.demux(video=0) if p.size]
        cut = bytearray(data[: ends[int(len(ends) * 0.7)] if how == "mdat_cut" else ends[4] + 10])
        cut[mdat.offset : mdat.offset + 4] = bytes(4)
        path.write_bytes(bytes(cut))


def _clips_by_file(store, shas):
    """Clip of a landing file, by the sha256 it had before ingest took it."""
    clips = {c["clip_id"]: c for c in Catalog(store).read("clips").to_pylist()}
    return lambda path: clips.get(shas[path])


def test_a_cut_minute_is_rebuilt_with_parameter_sets_from_an_earlier_minute(tmp_path):
    make_params(tmp_path)
    cameras = ("front", "back", "left_repeater")
    out, manifest = make_fleet(tmp_path, "eu", vehicles=1, events=2, seconds=3.0, cameras=cameras)
    earlier, later = sorted(manifest["events"], key=lambda e: e["stamp"])
    files = {c: out / later["cameras"][c]["file"] for c in cameras}
    complete = {c: probe(files[c].read_bytes()) for c in cameras}
    for camera, how in zip(cameras, ("moov_missing", "mdat_cut", "first_frames")):
        _cut(files[camera], how)
    shas = _shas(out)
    store, summary = _ingest(tmp_path, "eu")
    clip_of = _clips_by_file(store, shas)
    assert all(clip_of(out / c["file"]) and not clip_of(out / c["file"])["truncated"] for c in earlier["cameras"].values())
    for camera, frames in (("front", 30), ("back", None)):
        clip = clip_of(files[camera])
        assert clip["truncated"] and clip["source_uri"] == f"raw/{clip['clip_id'][:2]}/{clip['clip_id']}.mp4"
        rebuilt = probe(store.uri(clip["source_uri"]))
        assert rebuilt.complete and rebuilt.decodable == rebuilt.frames == clip["frames"] == Catalog(store).count("frames", f"clip_id = '{clip['clip_id']}'")
        assert frames is None or clip["frames"] == frames
        assert 1.0 <= clip["duration_s"] <= 3.0 and clip["has_sei"]
        assert rebuilt.telemetry == complete[camera].telemetry[: clip["frames"]]  # every kept frame in its place
        # The uploaded bytes stay, under one name in the raw zone.
        assert store.sha256(truncated_original(clip["clip_id"])) == clip["clip_id"] == clip["sha256"]
        record = next(r["detail"] for r in store.audit.records() if r["sha256"] == clip["clip_id"] and r["action"] == "ingest")
        assert record["rebuilt"] and record["parameter_sets"].endswith(f"{earlier['stamp']}-{camera}.mp4")
        assert record["original"] == truncated_original(clip["clip_id"]) and earlier["vehicle"] not in record["parameter_sets"]
    short = _outcomes(store, manifest)[str(files["left_repeater"].relative_to(out))]
    assert short["reason"] == "truncated" and "< 1.0 s" in short["detail"]
    assert summary["totals"]["truncated_kept"] == 2


def test_a_cut_first_minute_has_no_reference_and_is_quarantined_as_truncated(tmp_path):
    make_params(tmp_path)
    out, manifest = make_fleet(tmp_path, "eu", vehicles=1, events=2, seconds=3.0, cameras=("front",))
    earlier, later = sorted(manifest["events"], key=lambda e: e["stamp"])
    _cut(out / earlier["cameras"]["front"]["file"], "mdat_cut")
    _cut(out / later["cameras"]["front"]["file"], "moov_missing")  # a later minute is no reference, nor a cut one
    store, summary = _ingest(tmp_path, "eu")
    for event in (earlier, later):
        arrival = _outcomes(store, manifest)[event["cameras"]["front"]["file"]]
        assert arrival["outcome"] == "quarantined" and arrival["reason"] == "truncated" and "no SPS/PPS" in arrival["detail"]
        folder = f"quarantine/truncated/{arrival['sha256']}"
        assert store.sha256(f"{folder}/{arrival['source_uri'].rsplit('/', 1)[1]}") == arrival["sha256"]


def test_other_fleets_fragmented_clip_cut_short_keeps_its_decodable_prefix(tmp_path):
    make_params(tmp_path)
    out, manifest = make_fleet(tmp_path, "eu", vehicles=1, events=1, seconds=3.0, cameras=("front", "back"), rates={"sidecar": 1.0})
    files = [out / c["file"] for c in manifest["events"][0]["cameras"].values()]
    files[0].write_bytes(files[0].read_bytes()[: int(files[0].stat().st_size * 0.8)])
    files[1].write_bytes(files[1].read_bytes()[:3000])  # a few frames at most
    shas = _shas(out)
    store, summary = _ingest(tmp_path, "eu")
    clip = _clips_by_file(store, shas)(files[0])
    assert clip["truncated"] and 1.0 <= clip["duration_s"] < 3.0 and store.sha256(clip["source_uri"]) == clip["clip_id"]
    assert not store.exists(truncated_original(clip["clip_id"]))  # nothing rebuilt: raw holds the upload itself
    assert _outcomes(store, manifest)[str(files[1].relative_to(out))]["reason"] in ("truncated", "undecodable")


def test_the_pulled_drive_fault_cuts_every_camera_of_a_minute_and_ingest_sorts_them_out(tmp_path):
    make_params(tmp_path)
    # Seed 5 pulls the drive in three minutes; one of them has a whole earlier minute to rebuild from.
    out, manifest = make_fleet(tmp_path, "us", vehicles=2, events=3, seconds=3.0, seed=5, rates={"truncated": 0.5})
    uploaded = {path: path.read_bytes() for path in out.rglob("*.mp4")}
    store, _ = _ingest(tmp_path, "us")
    outcomes = _outcomes(store, manifest)
    pulled = [e for e in manifest["events"] if "pulled_at_s" in e]
    assert len(pulled) == 3
    seen = set()
    for event in pulled:
        earlier = any(e["vehicle"] == event["vehicle"] and e["stamp"] < event["stamp"] and "pulled_at_s" not in e for e in manifest["events"])
        for camera in event["cameras"].values():
            assert camera["damage"] == "truncated"
            data = uploaded[out / camera["file"]]
            assert needs_rebuild(scan(io.BytesIO(data)))  # every camera of the minute: mdat, no moov
            arrival = outcomes[camera["file"]]
            if not earlier:
                assert arrival["reason"] == "truncated" and "no SPS/PPS" in arrival["detail"]
                seen.add("no reference")
            elif event["pulled_at_s"] >= 1.5:
                assert arrival["outcome"] == "cataloged"
                seen.add("rebuilt")
            else:
                assert arrival["outcome"] == "cataloged" or arrival["reason"] == "truncated"
    assert seen == {"no reference", "rebuilt"}


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
    source = next(out.rglob("*-front.mp4"))
    data = source.read_bytes()
    store, first = _ingest(tmp_path, "us")
    again = ingest(store, "landing", store.params.ingest, progress=False)  # landing/ was emptied: nothing to see
    assert again["run"]["seen"] == 0 and again["totals"] == first["totals"]
    make_fleet(tmp_path, "us")  # the same uploads again, at the same paths (an uploader retrying)
    third = ingest(store, "landing", store.params.ingest, progress=False)
    assert third["run"]["already_ingested"] == first["run"]["seen"] and third["totals"] == first["totals"]
    assert not list(out.rglob("*.mp4"))  # and they leave landing/ again, their bytes kept under raw/ once
    copy = out / source.parts[len(out.parts)] / "TeslaCam" / "RecentClips" / source.name
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_bytes(data)
    fourth = ingest(store, "landing", store.params.ingest, progress=False)
    assert fourth["run"]["duplicates"] == 1 and fourth["totals"]["cataloged"] == first["totals"]["cataloged"]
    assert not copy.exists() and list(_store_shas(store).values()).count(hashlib.sha256(data).hexdigest()) == 1


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
    outcomes = _outcomes(store, manifest)
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
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout's code, not whichever is installed
    result = subprocess.run([sys.executable, "-m", "curation.cli", "status", "--json"], cwd=tmp_path, env=env, capture_output=True, text=True)
    reports = {r["region"]: r["totals"] for r in json.loads(result.stdout)}
    assert reports["cn"]["quarantined_by_reason"] == {"wrong_region": 4} and reports["cn"]["cataloged"] == 4
    assert reports["eu"]["arrived"] == 0
    table = subprocess.run([sys.executable, "-m", "curation.cli", "status"], cwd=tmp_path, env=env, capture_output=True, text=True).stdout
    assert "wrong_region 4" in table
