"""The same inputs give the same outputs wherever the repository is cloned.

Two fresh checkouts at different paths (and so with different store paths and, on their own, different
pseudonym keys) build region cn up to curate@cn; every version, fingerprint, redacted output and
metric must agree, and importing the package must not make DVC see a changed dependency.
"""

import json

import pytest
import yaml

from builders import fresh_checkout, run_in

SMALL = dict(vehicles=3, events=1, seconds=2, width=640, height=360)


def _lock_deps(root) -> dict:
    """stage -> {dep path: md5} of the code, model and policy deps of the cn stages in dvc.lock (LanceDB
    tables under data/ hold uuids and commit times, so their hashes differ from run to run by design)."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    return {name: {d["path"]: d.get("md5") for d in stage.get("deps", []) if not d["path"].startswith("data/")}
            for name, stage in lock.items() if name.endswith("@cn")}


@pytest.mark.slow
def test_two_clones_at_different_paths_build_the_same_region(tmp_path):
    roots = [fresh_checkout(tmp_path / "one", simulate=SMALL), fresh_checkout(tmp_path / "deeper" / "path" / "two", simulate=SMALL)]
    for root in roots:
        run_in(root, "curation", "dvc", "--region", "cn", "repro", "curate@cn")
    one, two = roots
    for stage in ("ingest", "redaction", "label", "curate"):
        a, b = (json.loads((root / "metrics" / "cn" / f"{stage}.json").read_text()) for root in roots)
        assert a == b, f"metrics/cn/{stage}.json differs between clones"
    redaction = json.loads((one / "metrics" / "cn" / "redaction.json").read_text())
    assert redaction["clips"].get("verified", 0) > 0 and redaction["policy_version"] and redaction["code"]
    assert (one / "data/cn/redacted/manifest.json").read_text() == (two / "data/cn/redacted/manifest.json").read_text()
    manifest = json.loads((one / "data/cn/redacted/manifest.json").read_text())
    for clip_id in manifest:  # the redacted bytes themselves
        assert (one / f"data/cn/redacted/{clip_id}.mp4").read_bytes() == (two / f"data/cn/redacted/{clip_id}.mp4").read_bytes()
    assert _lock_deps(one) == _lock_deps(two)

    # Importing the package (bytecode in __pycache__) changes no stage's dependencies.
    run_in(one, "python", "-c", "import curation.redaction.stage, curation.labeling.stage, curation.datasets.curate, pipelines.redact")
    status = run_in(one, "curation", "dvc", "--region", "cn", "status", "curate@cn")
    assert "changed" not in status.stdout and "modified" not in status.stdout, status.stdout
