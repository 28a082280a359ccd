"""Residency inside workers on S3: a worker of eu holds eu's key only, so the S3 server itself refuses it cn's bucket."""

import pytest

from curation.deploy.seaweed import bucket_of
from curation.engine import Task, commit, run
from curation.policy.params import EngineParams
from curation.storage.store import RegionStore
from e2e.test_s3 import s3_params, seaweed  # noqa: F401  (the SeaweedFS fixtures, shared)
from stages import Probe


@pytest.mark.slow
def test_an_eu_worker_handed_cns_bucket_is_refused_by_the_server(tmp_path, seaweed, s3_params):  # noqa: F811
    cn, eu = RegionStore(s3_params, "cn", actor="test"), RegionStore(s3_params, "eu", actor="test")
    cn.write_bytes("raw/clip.mp4", b"cn only")
    cn_key = cn.path("raw/clip.mp4")  # curation-cn/<prefix>/raw/clip.mp4
    tasks = [Task("env", ("env", None)), Task("raw", ("raw", cn_key)), Task("guarded", ("read", f"s3://{cn_key}"))]
    results = {r.task_id: r for r in run(Probe(), tasks, eu, EngineParams(workers=2), progress=False)}
    for result in results.values():
        commit(eu, result)
    # Worker processes of eu see eu's key variables and not cn's (the test process holds both).
    assert results["env"].record == ["CURATION_S3_EU_KEY", "CURATION_S3_EU_SECRET"]
    # Around the store's guard, the server refuses eu's key on cn's bucket (403 AccessDenied).
    assert results["raw"].error.startswith("access denied to region 'eu''s credentials (PermissionError: Forbidden)")
    assert cn_key.startswith(bucket_of("cn"))
    # Through the guard the worker refuses first, and its refusal reaches eu's log via the commit step.
    assert results["guarded"].error.startswith("residency violation: read of 's3://curation-cn/")
    refused = [r for r in eu.audit.records() if r["action"] == "refused"]
    assert [r["object"] for r in refused] == [f"s3://{cn_key}"] and eu.audit.verify() == len(eu.audit.records())
