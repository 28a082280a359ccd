"""`curation report`: a cross-region summary from metrics files, and nothing else."""

import json
import os

import pytest

from builders import make_params
from curation.errors import ResidencyViolation
from curation.policy.params import load_params
from curation.report import build_report


def _metrics(root, region, stage, document):
    path = root / region / f"{stage}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))


def test_summary_has_a_row_per_region_from_its_metrics(tmp_path):
    params = load_params(make_params(tmp_path))
    root = tmp_path / "metrics"
    _metrics(root, "cn", "ingest", {"totals": {"cataloged": 5, "arrived": 12}})
    _metrics(root, "cn", "label", {"quality": {"boxes": {"classes": {"vehicle": {"mAP50": 0.93}}}, "lanes": {"f1": 0.91}}})
    _metrics(root, "eu", "train", {"mAP50": 0.5})
    markdown, data = build_report(root, params)
    assert set(data) == {"cn", "eu"}
    assert "| cn | 5 / 12 |" in markdown and "0.930, –, –" in markdown and "0.910" in markdown
    assert "| eu |" in markdown and "0.500 |" in markdown


def test_anything_but_aggregates_is_refused(tmp_path):
    params = load_params(make_params(tmp_path))
    store = tmp_path / "data" / "cn"
    store.mkdir(parents=True)
    with pytest.raises(ResidencyViolation):
        build_report(store, params)  # a region's store is not a metrics folder
    root = tmp_path / "metrics"
    _metrics(root, "cn", "redaction", {"clips": {"verified": 3}, "redaction_failed_clips": ["abc"]})
    with pytest.raises(ResidencyViolation, match="redaction_failed_clips"):
        build_report(root, params)
    (root / "cn" / "redaction.json").unlink()
    secret = store / "catalog.json"
    secret.write_text("{}")
    os.symlink(secret, root / "cn" / "label.json")
    with pytest.raises(ResidencyViolation, match="link"):
        build_report(root, params)
