"""`dvc repro` of a region end to end in a fresh copy of the repository, then `dvc push` per region.

One small simulated fleet: cn runs simulate -> ingest -> redact -> label -> curate -> export -> train,
eu runs up to ingest, each through `curation dvc --region R` (its DVC cache in its store); a second
repro does nothing; every object in a region's DVC remote belongs to that region's outputs, and
naming the other region's remote moves nothing across.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import lancedb
import nbclient
import nbformat
import pytest
import yaml

from builders import REPO, fresh_checkout, run_in

BIN = Path(sys.executable).parent


def _fresh_copy(tmp_path: Path) -> Path:
    root = fresh_checkout(tmp_path / "repo", simulate=dict(vehicles=4, events=1, seconds=2, width=640, height=360), train=dict(epochs=1, imgsz=320))
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["simulate"]["rates"].update(no_consent=0.0, zone_crossing=0.0, wrong_region=0.0, corrupt=0.0, truncated=0.0)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def _run(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run_in(root, *args, check=check)


def _dvc(root: Path, region: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """A DVC command of one region: its cache and DVC state inside its store."""
    return run_in(root, str(BIN / "curation"), "dvc", "--region", region, *args, check=check)


def _md5s(folder: Path) -> set[str]:
    return {hashlib.md5(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def _remote_objects(remote: Path) -> set[str]:
    return {p.parent.name + p.name.removesuffix(".dir") for p in (remote / "files" / "md5").rglob("*") if p.is_file()}


@pytest.mark.slow
def test_one_region_end_to_end_then_push_keeps_each_region_in_its_own_remote(tmp_path, monkeypatch):
    root = _fresh_copy(tmp_path)
    _dvc(root, "cn", "repro", "train@cn")
    _dvc(root, "eu", "repro", "ingest@eu")
    assert not (root / "data" / "us").exists()
    metrics = {stage: json.loads((root / "metrics" / "cn" / f"{stage}.json").read_text())
               for stage in ("ingest", "redaction", "label", "curate", "export", "train")}
    assert metrics["label"]["clips"] == metrics["redaction"]["clips"]["verified"] > 0  # every verified clip, nothing else
    assert metrics["label"]["sampled_frames"] > 0 and sum(metrics["label"]["detections"].values()) > 0
    assert metrics["label"]["quality"]["lanes"]["truth_lines"] > 0
    assert metrics["export"]["images"] == metrics["curate"]["selected"] > 0
    assert metrics["train"]["mAP50"] >= 0 and (root / "data" / "cn" / "models" / "fleet" / "best.pt").is_file()
    assert json.loads((root / "metrics" / "cn" / "plots" / "pr.json").read_text())

    # Splits never share a vehicle: join the curated frames with the clips they came from.
    catalog = lancedb.connect(str(root / "data" / "cn" / "catalog"))
    curated = catalog.open_table("curated").to_pandas()
    clips = catalog.open_table("clips").to_pandas()[["clip_id", "vehicle", "event_id"]]
    joined = curated.merge(clips, on="clip_id")
    assert (joined.groupby("vehicle").split.nunique() == 1).all() and (joined.groupby("event_id").split.nunique() == 1).all()

    # The dataset verifies; a changed label file is caught.
    dataset = root / "data" / "cn" / "datasets" / "fleet"
    _run(root, str(BIN / "curation"), "dataset", "verify", str(dataset))
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert not any("vehicle" in image or "event" in image for image in manifest["images"])
    assert _dvc(root, "cn", "repro", "train@cn").stdout.count("Running stage") == 0
    label = next(dataset.glob("labels/train/*.txt"))
    label.write_text(label.read_text() + "0 0.5 0.5 0.1 0.1\n")
    tampered = _run(root, str(BIN / "curation"), "dataset", "verify", str(dataset), check=False)
    assert tampered.returncode == 1 and "sha256 differs" in tampered.stdout
    _dvc(root, "cn", "checkout", "-f", "export@cn")

    # Push: each remote holds only objects of its own region's outputs.
    _dvc(root, "cn", "push")
    _dvc(root, "eu", "push")
    remotes = root / "remotes"
    cn_objects, eu_objects = _remote_objects(remotes / "cn"), _remote_objects(remotes / "eu")
    cn_files, eu_files = _md5s(root / "data" / "cn"), _md5s(root / "data" / "eu")
    assert cn_objects and eu_objects
    assert not (eu_objects & (cn_files - eu_files)) and not (cn_objects & (eu_files - cn_files))
    # Naming the wrong remote moves nothing across: outputs keep their region's remote.
    _dvc(root, "cn", "push", "-r", "eu", "train@cn")
    assert _remote_objects(remotes / "eu") == eu_objects
    assert not (root / ".dvc" / "cache").exists()  # each region's cache is in its store
    shutil.rmtree(root / "data" / "cn" / "dvc" / "cache")
    shutil.rmtree(root / "data" / "cn" / "datasets")
    _dvc(root, "cn", "pull", "-r", "eu", "export@cn", check=False)  # cn's data is not in eu's remote
    assert _remote_objects(remotes / "eu") == eu_objects
    _dvc(root, "cn", "pull", "export@cn")  # from cn's own remote
    _run(root, str(BIN / "curation"), "dataset", "verify", str(dataset))

    # The exploration notebook runs on the region just built.
    monkeypatch.setenv("CURATION_ROOT", str(root))
    monkeypatch.setenv("CURATION_REGION", "cn")
    notebook = nbformat.read(REPO / "notebooks" / "01-explore-region.ipynb", as_version=4)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3").execute()
    printed = "".join(o.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs)
    assert f"{min(6, metrics['export']['images'])} samples shown" in printed
    images = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 3  # class balance, scenarios, samples
