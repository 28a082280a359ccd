"""The audit log against tampering: every change to the log, its head in the store or its anchor outside
is found, each as one AuditError line; appends refuse to continue a broken chain; keys rotate."""

import hashlib
import hmac
import json
import multiprocessing
import os
import random
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from builders import REPO, make_store
from curation.errors import AuditError, ResidencyViolation
from curation.storage.keys import key_id
from curation.storage.store import RegionStore


def _log_with(tmp_path, n=5):
    """A log of n records after the audit key's creation (n + 1 lines)."""
    store = make_store(tmp_path, "cn")
    for i in range(n):
        store.audit.append("tester", "ingest", f"clip-{i}.mp4", sha256=f"{i:064x}", size=i)
    return store


def _lines(store) -> list[str]:
    return Path(store.audit.path).read_text().splitlines()


def _write_lines(store, lines):
    Path(store.audit.path).write_text("".join(line + "\n" for line in lines))


def _canonical(record) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


def _signed(record, key: bytes) -> str:
    """What a forger holding ``key`` would write (the log's own format)."""
    record = {**record, "key": key_id(key)}
    body = _canonical({k: v for k, v in record.items() if k != "mac"}).encode()
    record["mac"] = hmac.new(key, b"curation audit record v2\n" + body, hashlib.sha256).hexdigest()
    return _canonical(record)


def _key(store) -> bytes:
    return bytes.fromhex(Path(store.params.regions["cn"].keys.audit.file).read_text().split()[0])


def _edit(index, **changes):
    def change(store):
        lines = _lines(store)
        record = json.loads(lines[index])
        record.update(changes)
        lines[index] = _canonical(record)
        _write_lines(store, lines)
    return change


def _on_lines(transform):
    def change(store):
        _write_lines(store, transform(_lines(store)))
    return change


def _raw(transform):
    def change(store):
        path = Path(store.audit.path)
        path.write_bytes(transform(path.read_bytes()))
    return change


def _head(which, content):
    def change(store):
        path = Path(store.audit.head_path if which == "store" else store.audit.anchor_path)
        if content is None:
            path.unlink()
        else:
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return change


def _both(*changes):
    def change(store):
        for one in changes:
            one(store)
    return change


def _forge_tail(store):
    lines = _lines(store)
    last = json.loads(lines[-1])
    forged = {**last, "seq": last["seq"] + 1, "prev": last["mac"], "object": "forged.mp4"}
    _write_lines(store, lines + [_signed(forged, b"attacker key of 32 bytes........")])


def _forge_tail_same_key_id(store):
    lines = _lines(store)
    last = json.loads(lines[-1])
    forged = {**last, "seq": last["seq"] + 1, "prev": last["mac"], "object": "forged.mp4", "mac": "0" * 64}
    _write_lines(store, lines + [_canonical(forged)])
    head = _canonical({"mac": forged["mac"], "region": "cn", "seq": forged["seq"]}).ljust(191) + "\n"
    Path(store.audit.head_path).write_text(head)  # the head in the store is writable by whoever writes the store


def _duplicate_key_forged_first(store):
    lines = _lines(store)
    lines[2] = '{"object":"forged.mp4",' + lines[2][1:]
    _write_lines(store, lines)


def _older_copy(store):
    older = Path(store.audit.path).read_bytes()
    store.audit.append("tester", "ingest", "newer.mp4")
    Path(store.audit.path).write_bytes(older)


def _another_regions_line(store):
    eu = make_store(Path(store.root).parents[1], "eu")
    eu.audit.append("tester", "ingest", "eu.mp4")
    lines = _lines(store)
    _write_lines(store, lines[:3] + [_lines(eu)[1]] + lines[4:])


def _lagging_heads(store):
    lines = _lines(store)
    behind = json.loads(lines[-3])
    head = _canonical({"mac": behind["mac"], "region": "cn", "seq": behind["seq"]}).ljust(191) + "\n"
    for path in (store.audit.head_path, store.audit.anchor_path):
        Path(path).write_text(head)


def _good_head(store, **changes) -> str:
    last = json.loads(_lines(store)[-1])
    return _canonical({"mac": last["mac"], "region": "cn", "seq": last["seq"], **changes}).ljust(191) + "\n"


def _head_with(which, **changes):
    def change(store):
        _head(which, _good_head(store, **changes))(store)
    return change


TAMPERING = {
    "edited": (_edit(3, object="other.mp4"), "line 4: MAC mismatch"),
    "edited last": (_edit(5, object="other.mp4"), "line 6: MAC mismatch"),
    "deleted": (_on_lines(lambda lines: lines[:1] + lines[2:]), "line 2:"),
    "reordered": (_on_lines(lambda lines: [lines[0], lines[2], lines[1], *lines[3:]]), "line 2:"),
    "inserted": (_on_lines(lambda lines: lines[:3] + [lines[2]] + lines[3:]), "line 4:"),
    "truncated": (_on_lines(lambda lines: lines[:4]), "records missing at the end"),
    "truncated to nothing": (_raw(lambda data: b""), "the log is missing or empty"),
    "log deleted": (lambda store: Path(store.audit.path).unlink(), "the log is missing or empty"),
    "garbage line": (_on_lines(lambda lines: lines[:1] + ["not json"] + lines[2:]), "line 2: not a JSON record"),
    "head.json deleted": (_head("store", None), "head.json is missing"),
    "anchor deleted": (_head("anchor", None), "audit.head is missing"),
    "both heads deleted": (_both(_head("store", None), _head("anchor", None)), "is missing"),
    "cut and head.json deleted": (_both(_on_lines(lambda lines: lines[:3]), _head("store", None)), "records missing at the end"),
    "cut and both heads deleted": (_both(_on_lines(lambda lines: lines[:3]), _head("store", None), _head("anchor", None)), "is missing"),
    "forged tail, other key": (_forge_tail, "line 7: signed by key"),
    "forged tail, same key id, head.json moved on": (_forge_tail_same_key_id, "line 7: MAC mismatch"),
    "heads lag two records": (_lagging_heads, "does not continue its head"),
    "extra field": (_edit(2, note="not covered"), "line 3: fields outside the MAC: note"),
    "missing field": (_on_lines(lambda lines: lines[:2] + [_canonical({k: v for k, v in json.loads(lines[2]).items() if k != "actor"})] + lines[3:]),
                      "line 3: record lacks actor"),
    "duplicate key, forged first": (_duplicate_key_forged_first, "line 3: duplicate key 'object'"),
    "older copy put back": (_older_copy, "records missing at the end"),
    "another region's line": (_another_regions_line, "line 4:"),
    "seq as text": (_edit(2, seq="2"), "line 3: seq must be a non-negative integer"),
    "seq as float": (_edit(2, seq=2.0), "line 3: seq must be a non-negative integer"),
    "seq as bool": (_edit(1, seq=True), "line 2: seq must be a non-negative integer"),
    "negative seq": (_edit(0, seq=-1), "line 1: seq must be a non-negative integer"),
    "huge seq": (_raw(lambda data: data.replace(b'"seq":2,', b'"seq":' + b"9" * 5000 + b",", 1)), "line 3: not a JSON record"),
    "time not a time": (_edit(2, time="yesterday"), "line 3: time is not an ISO 8601 timestamp"),
    "detail a list": (_edit(2, detail=[]), "line 3: detail must be an object"),
    "sha256 a number": (_edit(2, sha256=5), "line 3: sha256 must be a string or null"),
    "mac upper case": (lambda store: _edit(2, mac=json.loads(_lines(store)[2])["mac"].upper())(store), "line 3: prev, mac or key"),
    "record an array": (_on_lines(lambda lines: lines[:2] + ["[1, 2]"] + lines[3:]), "line 3: not a JSON object"),
    "spaces added": (_on_lines(lambda lines: lines[:2] + [lines[2].replace(",", ", ")] + lines[3:]), "line 3: not in canonical form"),
    "escaped slash": (_raw(lambda data: data.replace(b"clip-1.mp4", b"clip-1\\u002emp4", 1)), "line 3: not in canonical form"),
    "CRLF": (_raw(lambda data: data.replace(b"\n", b"\r\n")), "line 1:"),
    "blank line": (_on_lines(lambda lines: lines[:2] + [""] + lines[2:]), "line 3: not a JSON record"),
    "no final newline": (_raw(lambda data: data[:-1]), "the last line is incomplete"),
    "byte order mark": (_raw(lambda data: b"\xef\xbb\xbf" + data), "line 1: not ASCII"),
    "invalid UTF-8": (_raw(lambda data: data.replace(b"clip-1", b"clip-\xff", 1)), "line 3: not ASCII"),
    "NUL byte": (_raw(lambda data: data.replace(b"clip-1", b"clip-\x00", 1)), "line 3: not a JSON record"),
    "deep nesting": (_on_lines(lambda lines: lines[:2] + ["[" * 100000 + "]" * 100000] + lines[3:]), "line 3: not a JSON record"),
    "NaN": (_raw(lambda data: data.replace(b'"size":1', b'"size":NaN', 1)), "line 3: not a JSON record"),
    "old unkeyed format": (_on_lines(lambda lines: [_canonical({k: v for k, v in json.loads(line).items() if k not in ("mac", "key")} | {"hash": "0" * 64})
                                                   for line in lines]), "old unkeyed format"),
    "head negative seq": (_head_with("store", seq=-1), "head.json: seq must be a non-negative integer"),
    "anchor negative seq": (_head_with("anchor", seq=-1), "audit.head: seq must be a non-negative integer"),
    "anchor seq as text": (_head_with("anchor", seq="5"), "audit.head: seq must be a non-negative integer"),
    "anchor other region": (_head_with("anchor", region="eu"), "audit.head: not a head of region 'cn'"),
    "anchor extra field": (_head_with("anchor", note=1), "audit.head: fields outside the MAC: note"),
    "head not JSON": (_head("store", "{seq: 3"), "head.json: not a JSON record"),
    "head empty": (_head("store", ""), "head.json: not a JSON record"),
    "head a list": (_head("store", "[5]"), "head.json: not a JSON object"),
    "anchor binary": (_head("anchor", b"\x00\xff\x00"), "audit.head: not ASCII"),
    "anchor duplicate seq": (_head("anchor", '{"mac":"' + "0" * 64 + '","region":"cn","seq":9,"seq":5}'), "duplicate key 'seq'"),
    "head ahead": (_head_with("store", seq=99), "records missing at the end"),
    "audit key replaced": (lambda store: Path(store.params.regions["cn"].keys.audit.file).write_text(os.urandom(32).hex() + "\n"),
                           "line 1: signed by key"),
    "audit key deleted": (lambda store: Path(store.params.regions["cn"].keys.audit.file).unlink(), "the audit key"),
}


@pytest.mark.parametrize("name", list(TAMPERING))
def test_every_tampering_is_found_as_one_line(tmp_path, name):
    change, expected = TAMPERING[name]
    store = _log_with(tmp_path)
    assert store.audit.verify() == 6
    change(store)
    fresh = RegionStore(store.params, "cn", actor="test")  # a new process's view: no cached key
    with pytest.raises(AuditError) as error:
        fresh.audit.verify()
    message = str(error.value)
    assert expected in message and "\n" not in message, message
    # Later appends do not launder it: an append checks the tail against both heads and refuses a
    # broken one (an edit further up is verify's to find), and no new key replaces a deleted one.
    key_file = Path(store.params.regions["cn"].keys.audit.file)
    had_key = key_file.exists()
    for _ in range(2):
        try:
            fresh.audit.append("tester", "ingest", "after.mp4")
        except AuditError:
            pass
        with pytest.raises(ResidencyViolation):  # a refusal still refuses (an UnrecordedRefusal when it cannot be recorded)
            fresh.read_bytes("../eu/x")
    assert key_file.exists() == had_key
    with pytest.raises(AuditError):
        RegionStore(store.params, "cn").audit.verify()


def test_random_byte_damage_is_always_one_audit_error(tmp_path):
    store = _log_with(tmp_path, n=8)
    pristine = {p: Path(p).read_bytes() for p in (store.audit.path, store.audit.head_path, store.audit.anchor_path)}
    generator = random.Random(0)
    for trial in range(250):
        path = generator.choice(list(pristine))
        data = bytearray(pristine[path])
        operation = generator.randrange(4)
        at = generator.randrange(len(data))
        if operation == 0:
            data[at] ^= 1 << generator.randrange(8)
        elif operation == 1:
            del data[at : at + generator.randrange(1, 200)]
        elif operation == 2:
            data[at:at] = data[generator.randrange(len(data)) :][: generator.randrange(1, 200)]
        else:
            data[at:at] = bytes([generator.randrange(256)])
        if bytes(data) == pristine[path]:
            continue
        Path(path).write_bytes(bytes(data))
        with pytest.raises(AuditError) as error:
            store.audit.verify()
        assert "\n" not in str(error.value), (trial, path)
        Path(path).write_bytes(pristine[path])
    assert store.audit.verify() == 9


def test_an_append_after_a_cut_is_refused(tmp_path):
    store = _log_with(tmp_path)
    _on_lines(lambda lines: lines[:3])(store)
    with pytest.raises(AuditError, match="records missing at the end"):
        store.audit.append("tester", "ingest", "continues-from-the-cut.mp4")
    assert len(_lines(store)) == 3


def test_store_methods_cannot_touch_the_audit_folder(tmp_path):
    store = _log_with(tmp_path)
    before = {p.name: p.read_bytes() for p in Path(store.audit.path).parent.iterdir()}
    spellings = ["audit", "audit/", "./audit", "audit/.", "audit/log.jsonl", "audit/head.json", "audit/new", "data/../audit",
                 "x/../audit/log.jsonl", f"{store.root}/audit/log.jsonl", f"file://{store.root}/audit", "Audit/log.jsonl",
                 "AUDIT", "ａｕｄｉｔ/log.jsonl", "au\u200bdit/x", "audit./x", "audit /x", "", ".", "/", f"{store.root}", "data/.."]
    attempts = [lambda k: store.write_bytes(k, b"x"), lambda k: store.write_text(k, "x"), lambda k: store.delete(k),
                lambda k: store.open(k, "ab"), lambda k: store.open(k, "wb"), lambda k: store.open(k, "r+b"),
                lambda k: store.move(k, "elsewhere"), lambda k: store.copy("landing/x", k), lambda k: store.link("landing/x", k),
                lambda k: store.path(k, "write")]
    store.write_bytes("landing/x", b"x")
    refused = 0
    for key in spellings:
        for attempt in attempts:
            with pytest.raises(ResidencyViolation):
                attempt(key)
            refused += 1
    for key in spellings[:17]:  # the audit folder itself: no library is handed its path either
        with pytest.raises(ResidencyViolation):
            store.uri(key)
        refused += 1
    assert {p.name: p.read_bytes() for p in Path(store.audit.path).parent.iterdir() if p.name != "log.jsonl" and p.name != "head.json"} == \
        {k: v for k, v in before.items() if k not in ("log.jsonl", "head.json")}
    assert store.audit.verify() == 6 + refused
    assert store.read_text("audit/log.jsonl").count('"refused"') == refused  # reading it is fine


def test_a_crash_between_line_and_heads_is_accepted_once(tmp_path):
    store = _log_with(tmp_path)
    heads = {p: Path(p).read_bytes() for p in (store.audit.head_path, store.audit.anchor_path)}
    store.audit.append("tester", "ingest", "written-before-the-crash.mp4")
    for path, data in heads.items():  # as if the process died right after writing the line
        Path(path).write_bytes(data)
    assert store.audit.verify() == 7
    store.audit.append("tester", "ingest", "next.mp4")
    assert store.audit.verify() == 8


def test_rotation_is_a_record_signed_by_the_old_key(tmp_path):
    store = _log_with(tmp_path, n=2)
    key_file = Path(store.params.regions["cn"].keys.audit.file)
    old = key_file.read_text().split()[0]
    new = os.urandom(32).hex()
    key_file.write_text(f"{new}\n{old}\n")
    rotated = make_store(tmp_path, "cn")
    rotated.audit.append("tester", "ingest", "after-rotation.mp4")
    records = rotated.audit.records()
    assert [r["action"] for r in records[-2:]] == ["rotate_key", "ingest"]
    assert records[-2]["key"] == key_id(bytes.fromhex(old)) and records[-2]["detail"]["to"] == key_id(bytes.fromhex(new))
    assert records[-1]["key"] == key_id(bytes.fromhex(new)) and rotated.audit.verify() == 5
    # A record signed with the old key after the rotation is refused even though the old key is known.
    lines = _lines(rotated)
    last = json.loads(lines[-1])
    _write_lines(rotated, lines + [_signed({**last, "seq": last["seq"] + 1, "prev": last["mac"]}, bytes.fromhex(old))])
    with pytest.raises(AuditError, match="line 6: signed by key .* expected"):
        make_store(tmp_path, "cn").audit.verify()
    _write_lines(rotated, lines)
    # Without the old key the records it signed cannot be checked.
    key_file.write_text(f"{new}\n")
    with pytest.raises(AuditError, match="line 1: signed by key .* not in the audit keyring"):
        make_store(tmp_path, "cn").audit.verify()


def test_the_key_from_the_environment_wins(tmp_path, monkeypatch):
    key = os.urandom(32).hex()
    monkeypatch.setenv("CURATION_CN_AUDIT_KEY", key)
    store = _log_with(tmp_path, n=2)
    assert not Path(store.params.regions["cn"].keys.audit.file).exists()
    assert {r["key"] for r in store.audit.records()} == {key_id(bytes.fromhex(key))} and store.audit.verify() == 2
    monkeypatch.setenv("CURATION_CN_AUDIT_KEY", os.urandom(32).hex())
    with pytest.raises(AuditError, match="not in the audit keyring"):
        make_store(tmp_path, "cn").audit.verify()


def test_records_hold_any_key_a_caller_passes(tmp_path):
    store = make_store(tmp_path, "cn")
    odd = ["landing/\udcff", "\ud800", "a\x00b", "x" * 100_000, b"\xff\xfe", Path("landing/p"), None, 12, float("nan"), {"nested": [1, b"x"]}]
    for value in odd:
        store.audit.append(value, value, value, None, detail=value, where=[value])
    assert store.audit.verify() == len(odd) + 1
    assert all(len(r["object"]) < 2000 for r in store.audit.records())


def _append_many(root, worker, count):
    store = make_store(Path(root), "cn", actor=f"worker-{worker}")
    for i in range(count):
        store.audit.append(store.actor, "ingest", f"w{worker}-{i}")


def test_concurrent_processes_never_corrupt_the_log(tmp_path):
    make_store(tmp_path, "cn").audit.append("setup", "setup", "setup")  # the key exists before the workers start
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(str(tmp_path), w, 40)) for w in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    store = make_store(tmp_path, "cn")
    assert store.audit.verify() == 122
    assert len({r["object"] for r in store.audit.records()}) == 122


def test_concurrent_threads_and_forked_processes_never_corrupt_the_log(tmp_path):
    store = make_store(tmp_path, "cn")
    store.audit.append("setup", "setup", "setup")
    threads = [threading.Thread(target=lambda w=w: [store.audit.append("t", "ingest", f"t{w}-{i}") for i in range(50)]) for w in range(4)]
    fork = multiprocessing.get_context("fork").Process(target=lambda: [store.audit.append("f", "ingest", f"f-{i}") for i in range(50)])
    fork.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    fork.join(60)
    assert fork.exitcode == 0 and store.audit.verify() == 2 + 4 * 50 + 50


def test_cli_prints_one_line_for_a_corrupt_head(tmp_path):
    store = _log_with(tmp_path, n=2)
    for change in (_head("store", '{"seq": "x"}'), _head("anchor", "[]"), _raw(lambda data: data + b"\x00garbage")):
        change(store)
        result = subprocess.run([sys.executable, "-m", "curation.cli", "audit", "verify", "--region", "cn"], cwd=tmp_path,
                                capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
        assert result.stderr.startswith("error: ")
