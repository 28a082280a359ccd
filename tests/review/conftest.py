"""One small region, built for real (simulate, ingest, redact, label), shared by the review tests."""

import shutil

import pytest
import yaml

from builders import make_fleet, params_document
from curation.labeling.stage import label_region
from curation.policy.params import load_params
from curation.redaction.stage import redact_region
from curation.review.auth import Tokens
from curation.sources.ingest import ingest
from curation.storage.store import RegionStore


@pytest.fixture(scope="session")
def built_region(tmp_path_factory):
    root = tmp_path_factory.mktemp("review-region")
    document = params_document(root, ("cn", "eu"))
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(document))
    params = load_params(path)
    make_fleet(root, "cn", vehicles=1, events=2, seconds=1.5, width=640, height=360, cameras=("front",), pedestrians=8)
    store = RegionStore(params, "cn", actor="test")
    ingest(store, "landing", params.ingest, progress=False)
    redact_region(store, params, progress=False)
    label_region(store, params, progress=False)
    RegionStore(params, "eu", actor="test")  # the other region exists, with its own tokens
    return root, params


@pytest.fixture
def region(built_region, tmp_path):
    """A private copy of the built region (tests write reviews), with one token per role and an eu token."""
    source, _ = built_region
    root = tmp_path / "region"
    shutil.copytree(source, root, symlinks=True)
    document = yaml.safe_load((source / "params.yaml").read_text())
    for name in ("cn", "eu"):
        document["regions"][name]["store"] = str(root / "data" / name)
    (root / "params.yaml").write_text(yaml.safe_dump(document))
    params = load_params(root / "params.yaml")
    cn = Tokens(RegionStore(params, "cn", actor="admin"))
    tokens = {role: cn.add(f"{role}-1", role) for role in ("labeler", "reviewer", "admin")}
    tokens["eu"] = Tokens(RegionStore(params, "eu", actor="admin")).add("eve", "admin")
    return root, params, tokens
