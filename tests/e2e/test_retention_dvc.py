"""cn's pipeline with raw retention 0, pushed: no verified raw clip and no footage without consent is left anywhere.

A fresh copy of the repository builds cn (simulate -> ... -> train) through `curation dvc --region cn`
and pushes it; then every file under the copy (the store, the region's DVC cache and state in it,
the keys, .dvc/) and under the DVC remote is hashed and its name read. Neither the bytes nor the
sha256 of a verified raw clip (the upload, a rebuilt file, the truncated original) or of an
arrival without consent may be found, and each has its erase record. A later sweep of
redacted outputs (a clock set for the test) takes their pushed objects out of cache and remote.
"""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import lancedb
import pytest
import yaml

from builders import fresh_checkout, run_in

BIN = Path(sys.executable).parent


def _curation(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run_in(root, str(BIN / "curation"), *args, check=check)


def _files(*folders: Path) -> list[Path]:
    return [p for folder in folders for p in folder.rglob("*") if p.is_file()]


def _found(files: list[Path], targets: set[str], allowed_names: set[Path] = frozenset()) -> list[str]:
    """Files whose bytes hash to a target, or whose path names one (a content and a name search)."""
    found = []
    for path in files:
        if hashlib.sha256(path.read_bytes()).hexdigest() in targets:
            found.append(f"{path}: holds the bytes")
        if path not in allowed_names and any(t in str(path) for t in targets):
            found.append(f"{path}: names them")
    return found


@pytest.mark.slow
def test_cn_with_raw_retention_0_keeps_no_raw_clip_and_no_footage_without_consent_anywhere(tmp_path):
    root = fresh_checkout(tmp_path / "repo", simulate=dict(vehicles=4, events=2, seconds=2, width=640, height=360),
                          train=dict(epochs=1, imgsz=320))
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["simulate"]["rates"].update(no_consent=0.3, truncated=0.3, wrong_region=0.15, duplicate=0.3, zone_crossing=0.15, corrupt=0.0)
    params["simulate"]["seed"] = 6  # no consent, wrong region and two rebuilt clips in this fleet
    params["regions"]["cn"]["retention"]["redacted"] = 1  # for the second part: a clock on the pushed redacted outputs
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert params["regions"]["cn"]["retention"]["raw"] == 0

    _curation(root, "dvc", "--region", "cn", "repro", "train@cn")
    assert "Running stage" not in _curation(root, "dvc", "--region", "cn", "repro", "train@cn").stdout  # nothing to redo
    _curation(root, "dvc", "--region", "cn", "push")
    _curation(root, "policy", "check")
    store, remote = root / "data" / "cn", root / "remotes" / "cn"
    assert (store / "dvc" / "cache" / "files").is_dir() and not (root / ".dvc" / "cache").exists()  # cached in the store only
    assert (store / "dvc" / "site").is_dir() and any((remote / "files" / "md5").rglob("*"))

    catalog = lancedb.connect(str(store / "catalog"))
    redacted = catalog.open_table("redacted_clips").to_pandas()
    arrivals = catalog.open_table("arrivals").to_pandas()
    verified = set(redacted[redacted.status == "verified"].clip_id)
    no_consent = set(arrivals[arrivals.reason == "no_consent"].sha256)
    clips = catalog.open_table("clips").to_pandas()
    assert verified and no_consent and (set(arrivals.reason.dropna()) >= {"no_consent", "wrong_region"})
    assert clips[clips.clip_id.isin(verified)].truncated.any()  # a rebuilt clip: its rebuilt file and its original
    records = [json.loads(line) for line in (store / "audit" / "log.jsonl").read_text().splitlines()]
    # Every file deleted from raw/ (the rebuilt ones hash differently from their upload), by its recorded sha256.
    raw_files = {r["sha256"] for r in records if r["action"] == "delete" and r["object"].startswith("raw/") and r["sha256"]}
    targets = verified | no_consent | raw_files
    assert len(raw_files) > len(verified)  # raw media and the truncated originals

    outputs = {store / "redacted" / f"{clip_id}.mp4" for clip_id in verified}  # named by clip id; their bytes are redacted
    assert not _found(_files(root), targets, allowed_names=outputs)  # the remote is under root: remotes/cn
    assert not [p for p in (store / "landing").rglob("*.mp4")]
    erased = {r["sha256"]: r for r in records if r["action"] == "erase"}
    assert verified | no_consent <= set(erased)
    deletions = catalog.open_table("deletions").to_pandas()
    assert verified | no_consent <= set(deletions.sha256) and set(deletions.audit_seq) <= {r["seq"] for r in erased.values()}
    _curation(root, "audit", "verify", "--region", "cn")

    # Later (a clock of 1 h on redacted outputs): the sweep takes them, and their pushed DVC objects, everywhere.
    manifest = json.loads((store / "redacted" / "manifest.json").read_text())
    pushed = {hashlib.md5((store / "redacted" / f"{c}.mp4").read_bytes()).hexdigest() for c in manifest}  # noqa: S324
    assert pushed <= {p.parent.name + p.name for p in (remote / "files" / "md5").rglob("*")}
    later = "from datetime import datetime, timedelta, timezone; from curation.policy.params import load_params; " \
            "from curation.retention import sweep; from curation.storage.store import RegionStore; " \
            "print(len(sweep(RegionStore(load_params('params.yaml'), 'cn'), datetime.now(timezone.utc) + timedelta(hours=2))))"
    assert int(run_in(root, sys.executable, "-c", later).stdout.split()[-1]) >= len(manifest)
    assert not _found(_files(store, remote), set(manifest.values()))
    assert not pushed & {p.parent.name + p.name for p in _files(remote / "files" / "md5", store / "dvc" / "cache" / "files" / "md5")}
    assert {r["sha256"] for r in map(json.loads, (store / "audit" / "log.jsonl").read_text().splitlines())
            if r["action"] == "erase" and r["detail"]["kind"] == "redacted"} == set(manifest.values())
    _curation(root, "audit", "verify", "--region", "cn")
