"""The retention sweep: every kind of object on its region's clock, every name and copy deleted, each deletion proved."""

import hashlib
import io
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from builders import REPO, make_fleet, make_params, make_store, params_document
from curation.errors import PolicyError
from curation.media.mp4 import scan
from curation.policy.caches import dvc_environment
from curation.policy.params import load_params
from curation.retention import raw_deadline, raw_key, schedule, sweep, truncated_original
from curation.sources.ingest import ingest
from curation.storage.catalog import Catalog
from curation.storage.records import RedactedClip, Review, to_table

NOW = datetime.now(timezone.utc)


def _region(tmp_path, region, retention=None, **fleet):
    document = params_document(tmp_path)
    document["regions"][region]["retention"].update(retention or {})
    make_params(tmp_path, document)
    out, manifest = make_fleet(tmp_path, region, **fleet)
    return out, manifest


def _held(root) -> dict[str, str]:
    """sha256 of every file under a folder, by path: a content search for footage."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in Path(root).rglob("*") if p.is_file()}


def _erasures(store) -> dict[str, dict]:
    return {r["object"]: r for r in store.audit.records() if r["action"] == "erase"}


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda r: r["quarantine"].update(no_consnet=0), "regions.cn.retention.quarantine.no_consnet"),
        (lambda r: r["quarantine"].pop("default"), "quarantine needs a default"),
        (lambda r: r.update(raw=-1), "regions.cn.retention.raw: Input should be greater than or equal to 0"),
        (lambda r: r.update(raw=None), "regions.cn.retention.raw"),
        (lambda r: r.pop("raw"), "regions.cn.retention.raw: required key is missing"),
        (lambda r: r.update(dataset=10), "regions.cn.retention.dataset: unknown key (did you mean 'datasets'?)"),
    ],
)
def test_retention_rules_are_validated_with_one_line(tmp_path, edit, expected):
    document = params_document(tmp_path)
    edit(document["regions"]["cn"]["retention"])
    path = make_params(tmp_path, document)
    with pytest.raises(PolicyError) as error:
        load_params(path)
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_repository_defaults_follow_the_regulations():
    retention = {name: region.retention for name, region in load_params(REPO / "params.yaml").regions.items()}
    assert (retention["cn"].raw, retention["eu"].raw, retention["us"].raw) == (0, 72, 720)
    for rules in retention.values():
        assert rules.landing == 0 and rules.quarantine_hours("no_consent") == 0 and rules.quarantine_hours("wrong_region") == 0
        assert rules.quarantine_hours("truncated") > 0 and rules.quarantine_hours("malformed_metadata") > 0


def test_quarantine_keeps_fixable_uploads_on_their_own_clock_then_deletes_every_file(tmp_path):
    _region(tmp_path, "cn", vehicles=3, events=2, rates={"missing_event_json": 0.3, "malformed_event_json": 0.3, "no_consent": 0.3})
    store = make_store(tmp_path, "cn")
    ingest(store, "landing", store.params.ingest, progress=False)
    items = [d for d in schedule(store, NOW) if d.kind == "quarantine"]
    assert items and {d.rule for d in items} <= {"quarantine missing_metadata 72 h", "quarantine malformed_metadata 72 h"}
    for item in items:  # the clock started when ingest set it aside
        set_aside = datetime.fromisoformat(json.loads(store.read_text(f"{item.subject}/reason.json"))["time"])
        assert item.deadline == set_aside + timedelta(hours=72) and set_aside >= NOW
    assert sweep(store, NOW) == [] and all(store.exists(d.subject) for d in items)
    later = NOW + timedelta(hours=73)
    assert {d.subject for d in sweep(store, later, dry_run=True)} == {d.subject for d in items}
    assert all(store.exists(d.subject) for d in items)  # a dry run deletes nothing
    before = {r["seq"] for r in store.audit.records()}
    assert {d.subject for d in sweep(store, later)} == {d.subject for d in items}
    assert not any(store.exists(d.subject) for d in items)
    held = set(_held(store.root).values())
    erased, deletions = _erasures(store), {d["subject"]: d for d in Catalog(store).read("deletions").to_pylist()}
    for item in items:
        record = erased[item.subject]
        assert record["seq"] not in before and record["sha256"] == item.sha256 and item.sha256 not in held
        files = {posixpath_name(n["key"]) for n in record["detail"]["names"]}
        assert "reason.json" in files and any(f.endswith(".mp4") for f in files)
        assert deletions[item.subject]["audit_seq"] == record["seq"] and deletions[item.subject]["kind"] == "quarantine"
    assert store.audit.verify() > 0


def posixpath_name(key: str) -> str:
    return key.rsplit("/", 1)[-1]


def _cut_moov(path: Path) -> None:
    """A car file whose drive was pulled before the sample tables were written."""
    data = path.read_bytes()
    path.write_bytes(data[: {b.kind: b for b in scan(io.BytesIO(data))}["moov"].offset])


def test_raw_goes_with_its_truncated_original_and_landing_names_on_the_raw_clock(tmp_path):
    out, manifest = _region(tmp_path, "eu", {"landing": 24}, vehicles=1, events=2, seconds=2.0, cameras=("front",))
    later_event = max(manifest["events"], key=lambda e: e["stamp"])
    _cut_moov(out / later_event["cameras"]["front"]["file"])  # rebuilt from the earlier minute
    uploads = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.rglob("*.mp4")}
    store = make_store(tmp_path, "eu")
    ingest(store, "landing", store.params.ingest, progress=False)
    catalog = Catalog(store)
    clips = catalog.read("clips").to_pylist()
    rebuilt = next(c for c in clips if c["truncated"])
    assert store.exists(truncated_original(rebuilt["clip_id"])) and all(p.exists() for p in uploads)  # landing: 24 h
    # The redaction of every clip is settled now (what redact@R writes), so their raw clock runs.
    deadline, at_once = raw_deadline(store.policy, NOW)
    rows = [RedactedClip(c["clip_id"], "verified", f"redacted/{c['clip_id']}.mp4", "0" * 64, c["frames"], 0, 0, 0, "[]", "f", "v", "x",
                         at_once, deadline, NOW) for c in clips]
    catalog.table("redacted_clips").add(to_table(RedactedClip, rows))
    assert not at_once and sweep(store, NOW + timedelta(hours=23)) == []
    kinds = [d.kind for d in sweep(store, NOW + timedelta(hours=25))]  # landing names go first, the bytes stay in raw/
    assert kinds == ["landing"] * len(uploads) and not any(p.exists() for p in uploads)
    assert all(store.exists(c["source_uri"]) for c in clips)
    gone = sweep(store, NOW + timedelta(hours=73))
    assert sorted(d.subject for d in gone) == sorted(c["clip_id"] for c in clips)
    assert not any(store.exists(c["source_uri"]) or store.exists(truncated_original(c["clip_id"])) for c in clips)
    record = _erasures(store)[rebuilt["clip_id"]]
    assert {n["key"] for n in record["detail"]["names"]} == {raw_key(rebuilt["clip_id"]), truncated_original(rebuilt["clip_id"])}
    assert record["detail"]["rule"] == "raw 72 h after verified"
    assert all(r["raw_deleted"] for r in Catalog(store).read("redacted_clips").to_pylist())
    held = set(_held(store.root).values())
    assert not held & set(uploads.values()) and not held & {n["sha256"] for n in record["detail"]["names"]}
    assert sweep(store, NOW + timedelta(hours=100)) == []  # done once


def test_redacted_datasets_models_and_reviews_on_their_clocks(tmp_path):
    document = params_document(tmp_path)
    document["regions"]["us"]["retention"].update(redacted=10, datasets=20, models=30, reviews=40)
    make_params(tmp_path, document)
    store = make_store(tmp_path, "us")
    catalog = Catalog(store)
    store.write_bytes("redacted/c1.mp4", b"redacted clip")
    catalog.table("redacted_clips").add(to_table(RedactedClip, [RedactedClip("c1", "verified", "redacted/c1.mp4", hashlib.sha256(b"redacted clip").hexdigest(),
                                                                            1, 0, 0, 0, "[]", "f", "v", "x", True, NOW, NOW)]))
    store.write_text("datasets/fleet/manifest.json", json.dumps({"created_at": NOW.isoformat(), "files": {}}))
    store.write_bytes("datasets/fleet/images/train/a.jpg", b"jpeg")
    store.write_bytes("models/fleet/best.pt", b"weights")
    catalog.table("reviews").add(to_table(Review, [Review("r1", "c1", 0, "clip", None, "accept", "{}", "{}", "alice", "labeler", NOW, False)]))
    due = {d.kind: d for d in schedule(store, NOW)}
    assert {k: round((d.deadline - NOW).total_seconds() / 3600) for k, d in due.items() if k != "models"} == {"redacted": 10, "datasets": 20, "reviews": 40}
    assert [d.kind for d in sweep(store, NOW + timedelta(hours=15))] == ["redacted"]
    row = Catalog(store).read("redacted_clips").to_pylist()[0]
    assert row["status"] == "expired" and row["output_uri"] is None and not store.exists("redacted/c1.mp4")
    assert sorted(d.kind for d in sweep(store, NOW + timedelta(hours=50))) == ["datasets", "models", "reviews"]
    assert not store.exists("datasets/fleet") and not store.exists("models/fleet") and Catalog(store).count("reviews") == 0
    assert sorted(d["kind"] for d in Catalog(store).read("deletions").to_pylist()) == ["datasets", "models", "redacted", "reviews"]


def _dvc(root, *args, env=None):
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True, text=True, env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _objects(folder: Path) -> set[str]:
    return {p.parent.name + p.name for p in (folder / "files" / "md5").rglob("*") if p.is_file()} if folder.exists() else set()


def test_a_deletion_takes_the_region_s_dvc_cache_and_remote_objects_but_not_bytes_that_stay(tmp_path):
    document = params_document(tmp_path)
    document["regions"]["cn"]["retention"].update(datasets=1)
    make_params(tmp_path, document)
    store = make_store(tmp_path, "cn")
    _dvc(tmp_path, "init", "--no-scm", "-q")
    _dvc(tmp_path, "remote", "add", "cn", str(tmp_path / "remotes" / "cn"))
    store.write_text("datasets/fleet/manifest.json", json.dumps({"created_at": NOW.isoformat()}))
    store.write_bytes("datasets/fleet/images/a.jpg", b"a frame only this dataset has")
    store.write_bytes("datasets/fleet/labels/a.txt", b"")  # an empty label file: the same bytes as the one below
    store.write_bytes("catalog/notes/empty.txt", b"")
    env = dvc_environment(store)
    _dvc(tmp_path, "add", "-q", "data/cn/datasets", env=env)
    _dvc(tmp_path, "push", "-q", "-r", "cn", env=env)
    cache, remote = Path(store.root) / "dvc" / "cache", tmp_path / "remotes" / "cn"
    md5 = {name: hashlib.md5(data).hexdigest() for name, data in (("frame", b"a frame only this dataset has"), ("empty", b""))}  # noqa: S324
    before_cache, before_remote = _objects(cache), _objects(remote)
    assert set(md5.values()) <= before_cache and set(md5.values()) <= before_remote and any(o.endswith(".dir") for o in before_remote)
    assert not (tmp_path / ".dvc" / "cache").exists()  # cached in the region's store, nowhere else
    (gone,) = sweep(store, NOW + timedelta(hours=2))
    after_cache, after_remote = _objects(cache), _objects(remote)
    assert md5["frame"] not in after_cache | after_remote and not any(o.endswith(".dir") for o in after_cache | after_remote)
    assert md5["empty"] in after_cache and md5["empty"] in after_remote  # catalog/notes/empty.txt still has these bytes
    record = _erasures(store)["datasets/fleet"]
    assert (record["detail"]["dvc_cache"], record["detail"]["dvc_remote"]) == (len(before_cache - after_cache), len(before_remote - after_remote)) == (3, 3)


def test_report_and_sweep_commands(tmp_path):
    _region(tmp_path, "cn", vehicles=2, events=1, rates={"missing_event_json": 1.0})
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = lambda *a: subprocess.run([sys.executable, "-m", "curation.cli", *a], cwd=tmp_path, env=env, capture_output=True, text=True)  # noqa: E731
    assert run("ingest", "--region", "cn").returncode == 0
    report = json.loads(run("retention", "report", "--region", "cn", "--json").stdout)
    assert report and {r["kind"] for r in report} == {"quarantine"} and not any(r["due"] for r in report)
    assert "quarantine missing_metadata 72 h" in run("retention", "report").stdout
    dry = run("retention", "sweep", "--region", "cn", "--dry-run")
    assert dry.returncode == 0 and dry.stdout.strip().endswith("0 object(s) due")
