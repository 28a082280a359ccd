"""The S3 deployment: two regions on one SeaweedFS, stores, LanceDB catalogs and DVC remotes in their buckets.

The store itself (not our code) refuses a cn credential on the eu bucket.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import lancedb
import pytest
import yaml

from builders import make_fleet, params_document
from curation.deploy.seaweed import SeaweedS3, bucket_of
from curation.policy.params import load_params
from curation.sources.ingest import ingest
from curation.storage.catalog import Catalog
from curation.storage.store import RegionStore

REGIONS = ("cn", "eu")


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory):
    with SeaweedS3.start(tmp_path_factory.mktemp("seaweed"), list(REGIONS)) as s3:
        yield s3


@pytest.fixture
def s3_params(tmp_path, seaweed, monkeypatch):
    for name, value in seaweed.env().items():
        monkeypatch.setenv(name, value)
    document = params_document(tmp_path, REGIONS)
    for region in REGIONS:
        document["regions"][region].update(seaweed.region_params(region, prefix=tmp_path.name))
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(document))
    return load_params(path)


@pytest.mark.slow
def test_two_regions_ingest_into_their_own_buckets_and_catalogs(tmp_path, seaweed, s3_params):
    for region in REGIONS:
        local, _ = make_fleet(tmp_path, region, out=tmp_path / f"upload-{region}", vehicles=2, events=1, seconds=1.0,
                              rates={"duplicate": 0.5})
        store = RegionStore(s3_params, region, actor="test")
        store.fs.put(str(local), store.path("landing"), recursive=True)
        summary = ingest(store, "landing", s3_params.ingest, progress=False)
        totals = summary["totals"]
        assert totals["arrived"] == totals["cataloged"] + totals["quarantined"] + totals["duplicates"] and totals["cataloged"] > 0
        catalog = Catalog(store)
        assert catalog.count("clips") == totals["cataloged"]
        assert store.audit.verify() > 0
        # Everything of the region is in its bucket, nothing in the other's.
        admin = seaweed.filesystem("admin")
        assert admin.ls(f"{bucket_of(region)}/{tmp_path.name}/catalog")
    other = seaweed.filesystem("admin").find(f"{bucket_of('eu')}/{tmp_path.name}")
    assert not any("cn" in Path(key).parts for key in other)


@pytest.mark.slow
def test_the_store_refuses_a_cn_credential_on_the_eu_bucket(tmp_path, seaweed, s3_params):
    eu = RegionStore(s3_params, "eu", actor="test")
    eu.write_text("catalog/readme.txt", "eu only")
    cn_key = seaweed.filesystem("cn")
    for attempt in (lambda: cn_key.cat(f"{bucket_of('eu')}/{tmp_path.name}/catalog/readme.txt"),
                    lambda: cn_key.pipe(f"{bucket_of('eu')}/{tmp_path.name}/x", b"leak"),
                    lambda: cn_key.ls(bucket_of("eu"))):
        with pytest.raises(PermissionError):
            attempt()
    # LanceDB with the cn keys cannot open the eu catalog either.
    cn_options = RegionStore(s3_params, "cn").storage_options()
    Catalog(eu).table("clips")
    with pytest.raises(Exception, match="(?i)denied|forbidden|403"):
        lancedb.connect(eu.uri("catalog"), storage_options=cn_options).open_table("clips").count_rows()


@pytest.mark.slow
def test_dvc_remotes_in_region_buckets_take_their_own_region_only(tmp_path, seaweed):
    repo = tmp_path / "repo"
    (repo / "data" / "cn").mkdir(parents=True)
    (repo / "data" / "cn" / "labels.json").write_text('{"cn": true}')
    dvc = [str(Path(sys.executable).parent / "dvc")]
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}

    def run(*args, check=True):
        result = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True)
        assert not check or result.returncode == 0, result.stdout + result.stderr
        return result

    run("git", "init", "-q")
    run(*dvc, "init", "-q")
    for name, bucket, identity in (("cn", bucket_of("cn"), "cn"), ("eu", bucket_of("eu"), "eu"), ("eu-with-cn-key", bucket_of("eu"), "cn")):
        key, secret = seaweed.credentials[identity]
        run(*dvc, "remote", "add", name, f"s3://{bucket}/dvc")
        run(*dvc, "remote", "modify", name, "endpointurl", seaweed.endpoint)
        run(*dvc, "remote", "modify", "--local", name, "access_key_id", key)
        run(*dvc, "remote", "modify", "--local", name, "secret_access_key", secret)
    run(*dvc, "add", "data/cn/labels.json")
    run(*dvc, "push", "-r", "cn")
    assert seaweed.filesystem("admin").find(f"{bucket_of('cn')}/dvc")
    refused = run(*dvc, "push", "-r", "eu-with-cn-key", check=False)
    assert refused.returncode != 0 and re.search("denied|forbidden|403", refused.stdout + refused.stderr, re.I)
    assert not seaweed.filesystem("admin").find(f"{bucket_of('eu')}/dvc")
