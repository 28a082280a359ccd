"""`dvc repro` of one region in a fresh copy of the repository, on a small simulated fleet."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from builders import REPO


def _fresh_copy(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    for lock in ("dvc.lock",):
        (root / lock).unlink(missing_ok=True)
    shutil.rmtree(root / "metrics", ignore_errors=True)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["simulate"].update(vehicles=2, events=2, seconds=2, width=640, height=360)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


@pytest.mark.slow
def test_dvc_repro_label_builds_one_region_through_redaction_and_is_a_no_op_the_second_time(tmp_path):
    root = _fresh_copy(tmp_path)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PYTHONPATH": str(root)}
    dvc = [str(Path(sys.executable).parent / "dvc")]
    first = subprocess.run([*dvc, "repro", "label@cn"], cwd=root, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    summary = json.loads((root / "metrics" / "cn" / "ingest.json").read_text())
    totals = summary["totals"]
    assert totals["arrived"] == totals["cataloged"] + totals["quarantined"] + totals["duplicates"] > 0
    assert not (root / "data" / "eu").exists()  # one region only
    assert (root / "data" / "cn" / "catalog" / "clips.lance").is_dir()
    labels = json.loads((root / "metrics" / "cn" / "label.json").read_text())
    redaction = json.loads((root / "metrics" / "cn" / "redaction.json").read_text())
    assert labels["clips"] == redaction["clips"]["verified"] > 0  # every verified clip, nothing else
    assert labels["sampled_frames"] > 0 and sum(labels["detections"].values()) > 0 and labels["lane_lines"] > 0
    assert labels["quality"]["lanes"]["truth_lines"] > 0
    second = subprocess.run([*dvc, "repro", "label@cn"], cwd=root, env=env, capture_output=True, text=True)
    assert second.returncode == 0 and "Running stage" not in second.stdout
    status = subprocess.run([sys.executable, "-m", "curation.cli", "status", "--region", "cn", "--json"], cwd=root, env=env,
                            capture_output=True, text=True)
    reported = json.loads(status.stdout)[0]["totals"]
    assert {k: reported[k] for k in totals} == totals and reported["redaction"]["verified"] == labels["clips"]
