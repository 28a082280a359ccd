"""`python ray_job.py PARAMS REGION OUT.json`: the Digest stage on Ray (started here, no dashboard,
100 MB object store), every result committed; what the test checks goes to OUT.json.

Run it in a network namespace of its own (curation.engine.cluster.loopback_only): Ray binds every address it finds.
"""

import json
import sys
from pathlib import Path

from curation.engine import commit, run
from curation.policy.params import EngineParams, load_params
from curation.storage.store import RegionStore
from stages import Digest, digest_tasks, dump

params_path, region, out = sys.argv[1:4]
store = RegionStore(load_params(params_path), region, actor="ray-test")
before = len(store.audit.records())
results = []
for result in run(Digest(), digest_tasks(store), store, EngineParams(kind="ray", object_store_mb=100), progress=False):
    commit(store, result, f"digests/{result.task_id}.jsonl")
    results.append(result)
records = store.audit.records()[before:]
Path(out).write_text(json.dumps({
    "results": json.loads(dump(results)),
    "setups": len({r["detail"]["worker"] for r in records if r["action"] == "setup"}),
    "digest_records": sum(r["action"] == "digest" for r in records),
    "deleted": sum(r["action"] == "delete" for r in records),
    "audit_records": len(store.audit.records()),
    "audit_verified": store.audit.verify(),
}))
