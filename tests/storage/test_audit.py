import json
import multiprocessing

import pytest

from builders import make_store
from curation.errors import AuditError


def _log_with(tmp_path, n=5):
    store = make_store(tmp_path, "cn")
    for i in range(n):
        store.audit.append("tester", "ingest", f"clip-{i}.mp4", sha256=f"{i:064x}", size=i)
    return store


def _rewrite(store, change):
    path = store.audit.path
    lines = open(path).read().splitlines()
    lines = change(lines)
    with open(path, "w") as handle:
        handle.write("".join(line + "\n" for line in lines))


def _edit_field(lines):
    record = json.loads(lines[2])
    record["object"] = "other.mp4"
    lines[2] = json.dumps(record, sort_keys=True)
    return lines


def _insert(lines):
    forged = json.loads(lines[1])
    return lines[:2] + [json.dumps(forged, sort_keys=True)] + lines[2:]


@pytest.mark.parametrize(
    "change, line, what",
    [
        (_edit_field, 3, "hash mismatch"),
        (lambda lines: lines[:1] + lines[2:], 2, "chain broken"),
        (lambda lines: [lines[0], lines[2], lines[1], *lines[3:]], 2, "chain broken"),
        (_insert, 3, "chain broken"),
        (lambda lines: lines[:3], 4, "records missing at the end"),
        (lambda lines: lines[:1] + ["not json"] + lines[2:], 2, "not a JSON record"),
    ],
    ids=["edited", "deleted", "reordered", "inserted", "truncated", "garbage"],
)
def test_tampering_is_found_at_the_first_bad_line(tmp_path, change, line, what):
    store = _log_with(tmp_path)
    assert store.audit.verify() == 5
    _rewrite(store, change)
    with pytest.raises(AuditError) as error:
        store.audit.verify()
    assert f"line {line}:" in str(error.value) and what in str(error.value)


def _append_many(root, worker, count):
    from pathlib import Path

    store = make_store(Path(root), "cn", actor=f"worker-{worker}")
    for i in range(count):
        store.audit.append(store.actor, "ingest", f"w{worker}-{i}")


def test_concurrent_processes_never_corrupt_the_log(tmp_path):
    make_store(tmp_path, "cn")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(str(tmp_path), w, 40)) for w in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    store = make_store(tmp_path, "cn")
    assert store.audit.verify() == 160
    assert len({r["object"] for r in store.audit.records()}) == 160
