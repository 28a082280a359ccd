"""The engines map a per-clip stage the same way in process, in a local pool and on Ray; the commit
step in the calling process gets every worker's audit records; a crash loses only clips in flight."""

import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest

from builders import REPO, make_fleet, make_params, make_store, params_document
from curation.engine import commit, run
from curation.engine.cluster import actors_that_fit, loopback_only
from curation.errors import EngineError, PolicyError
from curation.policy.params import EngineParams, load_params
from stages import Digest, digest_tasks, dump

HERE = Path(__file__).resolve().parent
LOCAL_1, LOCAL_2 = EngineParams(workers=1), EngineParams(workers=2)


@pytest.fixture
def store(tmp_path):
    make_params(tmp_path)
    make_fleet(tmp_path, "cn", vehicles=2, events=2, seconds=1.0, cameras=("front", "back"))
    return make_store(tmp_path, "cn")


def _meeting(workers=2):
    return multiprocessing.get_context("spawn").Barrier(workers)


def _commit_all(store, results) -> list:
    done = []
    for result in results:
        commit(store, result, f"digests/{result.task_id}.jsonl")
        done.append(result)
    return done


def _workers(entries) -> set[str]:
    return {e.detail["worker"] for e in entries if e.action == "setup"}


def test_in_process_and_a_two_worker_pool_give_the_same_results(store):
    tasks = digest_tasks(store)
    alone = list(run(Digest(), tasks, store, LOCAL_1, progress=False))
    pooled = list(run(Digest(_meeting()), tasks, store, LOCAL_2, progress=False))
    assert len(tasks) == 8 and all(r.ok for r in alone + pooled) and all(r.record["frames"] == 10 for r in alone)
    assert dump(alone) == dump(pooled)
    setups = [[e for r in results for e in r.audit if e.action == "setup"] for results in (alone, pooled)]
    # Setup once per worker: one in process, two in the pool.
    assert [len(s) for s in setups] == [1, 2] and len(_workers(setups[1])) == 2 and os.getpid() not in {
        int(w.split(":")[1]) for w in _workers(setups[1])}


def test_a_task_that_raises_is_a_failed_result_and_the_others_complete(store):
    store.write_bytes("landing/broken/front.mp4", b"\x00not a video" * 100)
    tasks = digest_tasks(store)
    results = _commit_all(store, run(Digest(_meeting()), tasks, store, LOCAL_2, progress=False))
    failed = [r for r in results if not r.ok]
    assert len(results) == 9 and len(failed) == 1 and failed[0].record is None
    assert failed[0].error.startswith("InvalidDataError: ") and "\n" not in failed[0].error
    # Its partial output was deleted by the commit step; the others are in place.
    assert not store.exists(f"tmp/digest/{failed[0].task_id}.jsonl") and not store.exists(f"digests/{failed[0].task_id}.jsonl")
    assert all(store.sha256(f"digests/{r.task_id}.jsonl") == r.record["sha256"] for r in results if r.ok)
    # Every worker's records reached the region's log through the commit step, and the chain holds.
    records = store.audit.records()
    assert store.audit.verify() == len(records)
    assert len({r["detail"]["worker"] for r in records if r["action"] == "setup"}) == 2
    assert sum(r["action"] == "digest" for r in records) == 8
    assert [r["detail"]["reason"] for r in records if r["action"] == "delete"] == [failed[0].error]


def test_a_killed_pool_loses_only_clips_in_flight_and_a_rerun_redoes_only_those(store):
    tasks = digest_tasks(store)
    clean = {r.task_id: r.record for r in run(Digest(), tasks, store, LOCAL_1, progress=False)}
    committed = []
    with pytest.raises(EngineError, match="a worker process died .* a rerun redoes them"):
        for result in run(Digest(), tasks, store, LOCAL_2, progress=False):
            commit(store, result, f"digests/{result.task_id}.jsonl")
            committed.append(result.task_id)
            if len(committed) == 2:  # 8 tasks, at most 2 per worker in flight: some are never started
                for child in psutil.Process().children(recursive=True):
                    if "spawn_main" in " ".join(child.cmdline()):
                        os.kill(child.pid, signal.SIGKILL)
    assert 2 <= len(committed) < len(tasks)
    assert {k.removeprefix("digests/").removesuffix(".jsonl") for k in store.walk("digests")} == set(committed)
    todo = [t for t in tasks if not store.exists(f"digests/{t.id}.jsonl")]
    redone = _commit_all(store, run(Digest(), todo, store, LOCAL_2, progress=False))
    assert {r.task_id for r in redone} == {t.id for t in tasks} - set(committed)
    assert {t.id: store.sha256(f"digests/{t.id}.jsonl") for t in tasks} == {k: v["sha256"] for k, v in clean.items()}
    assert store.audit.verify() > 0


def test_a_worker_that_cannot_set_up_stops_the_run_with_one_line(store):
    class Broken(Digest):
        def setup(self, store):
            raise FileNotFoundError("models/none.pt")

    with pytest.raises(EngineError, match=r"^digest: worker setup failed: FileNotFoundError: models/none.pt$"):
        list(run(Broken(), digest_tasks(store), store, LOCAL_1, progress=False))


@pytest.mark.parametrize(
    "engine, expected",
    [
        ({"kind": "dask"}, "engine.kind: Input should be 'local' or 'ray'"),
        ({"workers": 0}, "engine.workers"),
        ({"workers": "all"}, "engine.workers"),
        ({"kind": "local", "address": "auto"}, "engine: Value error, address is for kind ray, got kind 'local'"),
        ({"kind": "ray", "adress": "auto"}, "engine.adress: unknown key (did you mean 'address'?)"),
    ],
)
def test_bad_engine_params_give_one_line(tmp_path, engine, expected):
    document = params_document(tmp_path)
    document["engine"] = engine
    with pytest.raises(PolicyError) as error:
        load_params(make_params(tmp_path, document))
    assert expected in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    "nodes, cpus, gpus, expected",
    [
        ([{"CPU": 2.0}], 1, 0, 2),  # 2 cores, 1 CPU each: 2 actors, never more
        ([{"CPU": 2.0}], 2, 0, 1),
        ([{"CPU": 2.0}], 3, 0, 0),  # does not fit: the engine refuses instead of waiting forever
        ([{"CPU": 1.0}, {"CPU": 1.0}], 1.5, 0, 0),  # counted node by node, not over the summed CPUs
        ([{"CPU": 16.0}, {"CPU": 2.0, "GPU": 8.0}], 1, 1, 2),  # GPUs on a node with 2 CPUs hold 2 actors
        ([{"CPU": 1.0}], 0.1, 0, 10),
    ],
)
def test_ray_pools_are_sized_node_by_node_from_what_ray_reports(nodes, cpus, gpus, expected):
    assert actors_that_fit(nodes, cpus, gpus) == expected


def _loopback_namespace() -> str | None:
    """Why Ray cannot run in a namespace of its own here, or None when it can."""
    if not (shutil.which("unshare") and shutil.which("ip")):
        return "unshare or ip is not installed"
    probe = subprocess.run(loopback_only(["true"]), capture_output=True, text=True)
    return None if probe.returncode == 0 else f"unshare -rn is not permitted here: {probe.stderr.strip()}"


@pytest.mark.slow
def test_ray_gives_the_same_results_and_the_commit_step_gets_every_actors_records(tmp_path, store):
    reason = _loopback_namespace()
    if reason:
        pytest.skip(reason)
    store.write_bytes("landing/broken/front.mp4", b"\x00not a video" * 100)
    tasks = digest_tasks(store)
    alone = list(run(Digest(), tasks, store, LOCAL_1, progress=False))
    out = tmp_path / "ray.json"
    with tempfile.TemporaryDirectory(prefix="ray-") as sessions:  # short: Ray's socket paths must stay under 108 bytes
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE), str(REPO / "tests")]), "RAY_AUTH_MODE": "disabled",
               "RAY_TMPDIR": sessions}
        job = subprocess.run(loopback_only([sys.executable, str(HERE / "ray_job.py"), str(tmp_path / "params.yaml"), "cn", str(out)]),
                             capture_output=True, text=True, env=env, cwd=tmp_path)
    assert job.returncode == 0, job.stderr[-3000:]
    seen = json.loads(out.read_text())
    assert seen["results"] == json.loads(dump(alone))
    # Pool size from what Ray reports: this machine's cores over the stage's 1 CPU.
    assert seen["setups"] == min(len(os.sched_getaffinity(0)), len(tasks)) and seen["audit_verified"] == seen["audit_records"]
    assert seen["digest_records"] == len(tasks) - 1 and seen["deleted"] == 1
