"""The residency guard against an adversary: generated key spellings against every RegionStore method,
links planted in the store, and a folder swapped for a link while other threads read, write and copy.

Invariants after every call: nothing of eu or us was read (their bytes are unique markers), changed or
added to; nothing outside cn's root changed; every ResidencyViolation left one ``refused`` record; the
audit log verifies.
"""

import errno
import hashlib
import multiprocessing
import os
import random
import shutil
import sys
import threading
import time
from pathlib import Path, PurePosixPath

import pytest

from builders import make_store
from curation.errors import ResidencyViolation
from curation.storage.audit import describe

SECRET = b"EU-ONLY-SECRET-BYTES"
CN_BYTES = b"cn bytes"


def _snapshot(root: Path, skip: tuple[Path, ...] = ()) -> dict:
    """Every entry under root: kind, link target or content hash (never following links)."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            if any(path == s or s in path.parents for s in skip):
                continue
            if path.is_symlink():
                found[str(path)] = ("link", os.readlink(path))
            elif path.is_dir():
                found[str(path)] = ("dir",)
            elif path.is_fifo():
                found[str(path)] = ("fifo",)
            else:
                found[str(path)] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
    return found


@pytest.fixture
def world(tmp_path):
    """cn, eu and us stores; links into eu planted inside cn the way an uploader could."""
    cn, eu, us = (make_store(tmp_path, r) for r in ("cn", "eu", "us"))
    eu.write_bytes("landing/eu-only-secret.bin", SECRET)
    eu.write_bytes("landing/dir/eu-only-secret.bin", SECRET + b"-dir")
    eu.write_bytes("landing/eu-only-target.bin", SECRET + b"-hard")
    us.write_bytes("landing/us-only.bin", b"US-ONLY")
    eu.audit.append("test", "setup", "eu")  # eu's own log exists too: cn must never write it
    cn.write_bytes("landing/x.bin", CN_BYTES)
    cn.write_bytes("landing/dir/secret.bin", CN_BYTES)
    cn.write_bytes("bundle/ok.bin", CN_BYTES)
    cn.write_bytes("deep/a/ok.bin", CN_BYTES)
    root, eu_root = Path(cn.root), Path(eu.root)
    os.symlink(eu_root / "landing", root / "landing" / "evil")
    os.symlink(eu_root / "landing" / "eu-only-secret.bin", root / "landing" / "evilfile")
    os.symlink("../../eu/landing", root / "landing" / "up")
    os.symlink(eu_root / "landing" / "eu-only-secret.bin", root / "bundle" / "evil")
    os.symlink(eu_root / "landing" / "eu-only-new.bin", root / "dangling")
    os.symlink("../../../eu", root / "deep" / "a" / "b")
    os.link(eu_root / "landing" / "eu-only-target.bin", root / "hard.bin")
    os.mkfifo(root / "fifo")
    return tmp_path, cn, eu


SPOTS = ["landing/x.bin", "landing", "landing/dir", "landing/dir/secret.bin", "landing/evil", "landing/evil/eu-only-secret.bin",
         "landing/evilfile", "landing/up", "landing/up/eu-only-secret.bin", "bundle", "bundle/evil", "bundle/ok.bin", "dangling",
         "deep", "deep/a/b", "deep/a/b/landing/eu-only-secret.bin", "hard.bin", "fifo", "audit", "audit/log.jsonl", "audit/head.json",
         "secrets/pseudonym.key", "catalog", "sink", ".tmp-0"]
ESCAPES = ["..", "../eu", "../eu/landing/eu-only-secret.bin", "../../data/eu/landing", "landing/../..", "landing/./../../eu",
           "landing/..//../eu/landing", "x/../../us/landing/us-only.bin", "%2e%2e/eu", "..\\eu", "....//eu", "./.././eu"]
ODD = ["", ".", "./", "/", "Audit/x", "AUDIT", "ａｕｄｉｔ/x", "./audit", "data/../audit", "landing/..//audit/log.jsonl", "landing/\x00x",
       "\x00", "landing/\udcff.bin", "landing/\ud800", "é/ü.bin", "x" * 300, "y/" * 2100, "landing/x.bin/", "landing/x.bin/.",
       "landing/x.bin/..", " landing", "landing\n", "~/x", "$HOME/x", "landing/*", "landing/?"]
TAILS = ["", "/", "/.", "/..", "/x", "/../..", "/../eu", "/../audit"]


def _heads(cn, eu) -> list[str]:
    real = os.path.realpath(cn.root)
    return ["", "./", "/", "//", "file://", "file:///", "s3://", "s3://curation-eu/", "FILE://", "http://", "simplecache::file://",
            "memory://", "~/", "\\", f"{cn.root}/", f"{real}/", f"file://{cn.root}/", f"{eu.root}/", f"file://{eu.root}/",
            f"{cn.root}/../eu/", f"{cn.root}//", "landing/../"]


class EvilStr(str):
    """A str whose methods lie to whoever asks."""

    def startswith(self, *args):
        return False

    def __contains__(self, item):
        return False

    def __str__(self):
        return "landing/x.bin"


class Spelled:
    def __init__(self, value):
        self.value = value

    def __fspath__(self):
        if isinstance(self.value, Exception):
            raise self.value
        return self.value


def generated_keys(cn, eu, count: int, seed: int = 0) -> list:
    """Deterministic: every spot and escape plainly, then a sample of head x body x tail in four types."""
    bodies = SPOTS + ESCAPES + ODD
    combos = [h + b + t for h in _heads(cn, eu) for b in bodies for t in TAILS]
    picked = random.Random(seed).sample(combos, count)
    keys = list(bodies)
    for i, key in enumerate(picked):
        kind = i % 5
        if kind == 1:
            try:
                keys.append(os.fsencode(key))
                continue
            except UnicodeError:
                pass
        if kind == 2:
            keys.append(PurePosixPath(key) if key else key)
        elif kind == 3:
            keys.append(EvilStr(key))
        elif kind == 4:
            keys.append(Spelled(key))
        else:
            keys.append(key)
    keys += [None, 12, 3.5, ["landing"], {"a": 1}, object(), b"\xff\xfe/\x00", bytearray(b"../eu"), memoryview(b"landing"),
             Spelled(RuntimeError("no")), Spelled(12), Spelled(b"../eu/landing"), Spelled(EvilStr("../eu")), Path("../eu"),
             Path("/") / "etc" / "passwd", EvilStr("../eu/landing/eu-only-secret.bin")]
    return keys


def _methods():
    counter = iter(range(10**9))

    def fresh(store):
        name = f"scratch/{next(counter)}.bin"
        store.write_bytes(name, CN_BYTES)
        return name

    def opened(mode):
        def call(store, key):
            with store.open(key, mode) as handle:
                return handle.read() if "r" in mode and "+" not in mode else handle.write(CN_BYTES if "b" in mode else "cn")
        return call

    return {
        "read_bytes": lambda s, k: s.read_bytes(k),
        "read_text": lambda s, k: s.read_text(k),
        "open_rb": opened("rb"), "open_wb": opened("wb"), "open_ab": opened("ab"), "open_r+b": opened("r+b"), "open_xb": opened("xb"),
        "open_w": opened("w"),
        "exists": lambda s, k: s.exists(k), "isdir": lambda s, k: s.isdir(k), "size": lambda s, k: s.size(k),
        "sha256": lambda s, k: s.sha256(k), "walk": lambda s, k: list(s.walk(k)), "ls": lambda s, k: s.ls(k),
        "write_bytes": lambda s, k: s.write_bytes(k, CN_BYTES), "write_text": lambda s, k: s.write_text(k, "cn text"),
        "copy_from": lambda s, k: s.copy(k, f"sink/c{next(counter)}"), "copy_to": lambda s, k: s.copy(fresh(s), k),
        "move_from": lambda s, k: s.move(k, f"sink/m{next(counter)}"), "move_to": lambda s, k: s.move(fresh(s), k),
        "link_from": lambda s, k: s.link(k, f"sink/l{next(counter)}"), "link_to": lambda s, k: s.link(fresh(s), k),
        "delete": lambda s, k: s.delete(k, reason="test"), "makedirs": lambda s, k: s.makedirs(k), "path": lambda s, k: s.path(k), "uri": lambda s, k: s.uri(k),
    }


def _no_secret(value) -> bool:
    """No byte of eu or us (their contents are upper-case markers) and no name of theirs in a listing."""
    if isinstance(value, (bytes, bytearray)):
        return b"EU-ONLY" not in value and b"US-ONLY" not in value
    if isinstance(value, str):
        return "EU-ONLY" not in value and "US-ONLY" not in value
    if isinstance(value, (list, tuple)):
        return all("eu-only" not in v and "us-only" not in v for v in value)
    return True


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root + "/")


def _call_everything(tmp_path, cn, eu, calls):
    """Run (method, key) pairs; check each result; return how many refusals were raised."""
    methods = _methods()
    real = os.path.realpath(cn.root)
    refusals = 0
    for name, key in calls:
        try:
            result = methods[name](cn, key)
        except ResidencyViolation as error:
            refusals += 1
            assert "region 'cn'" in str(error) and "\n" not in str(error), (name, key)
        except UnicodeError as error:  # a ValueError, but a crash of the guard, not a refusal
            pytest.fail(f"{name}({describe(key)!r}) raised {error!r}")
        except (OSError, ValueError):
            pass  # no such file, a folder, exists already...: ordinary answers inside cn
        else:
            assert _no_secret(result), (name, key, result)
            if name in ("path", "uri"):
                assert _inside(result, real) and _inside(os.path.realpath(result), real), (name, key, result)
    return refusals


def test_generated_keys_never_leave_cn_and_every_refusal_is_recorded(world):
    tmp_path, cn, eu = world
    outside = _snapshot(tmp_path, skip=(tmp_path / "data" / "cn", tmp_path / "keys" / "cn"))
    secrets_before = [r for r in _snapshot(Path(cn.root)).items() if r[1][0] == "link"]
    keys = generated_keys(cn, eu, count=1500)
    names = list(_methods())
    calls = [(m, key) for key in SPOTS + ESCAPES + ODD for m in names]  # every plain spelling against every method
    calls += [(names[(3 * i + j) % len(names)], key) for i, key in enumerate(keys) for j in range(3)]
    records_before = len(cn.audit.records())
    refusals = _call_everything(tmp_path, cn, eu, calls)
    records = cn.audit.records()[records_before:]
    assert len(calls) > 5000 and refusals > 2000
    assert sum(r["action"] == "refused" for r in records) == refusals
    assert _snapshot(tmp_path, skip=(tmp_path / "data" / "cn", tmp_path / "keys" / "cn")) == outside
    assert [r for r in _snapshot(Path(cn.root)).items() if r[1][0] == "link"] == secrets_before  # no link moved or deleted
    assert cn.audit.verify() == records_before + len(records)
    assert eu.audit.verify() == 2  # its key's creation and the setup record: nothing of cn's
    assert eu.read_bytes("landing/eu-only-secret.bin") == SECRET


@pytest.mark.parametrize("method", sorted(_methods()))
def test_planted_links_are_refused_by_every_method(world, method):
    tmp_path, cn, eu = world
    outside = _snapshot(tmp_path, skip=(tmp_path / "data" / "cn", tmp_path / "keys" / "cn"))
    planted = ["landing/evil", "landing/evil/eu-only-secret.bin", "landing/evilfile", "landing/up/eu-only-secret.bin", "bundle/evil",
               "dangling", "deep/a/b/landing", "hard.bin", "fifo"]
    containing = ["landing", "bundle", "deep"]  # folders holding a link: recursive methods check every member
    recursive = method in ("walk", "copy_from", "move_from", "delete", "path", "uri")
    keys = planted + (containing if recursive else ["landing", "bundle"] if method == "ls" else [])
    before = len(cn.audit.records())
    refused = _call_everything(tmp_path, cn, eu, [(method, key) for key in keys])
    assert refused == len(keys)
    assert sum(r["action"] == "refused" for r in cn.audit.records()[before:]) == refused
    assert _snapshot(tmp_path, skip=(tmp_path / "data" / "cn", tmp_path / "keys" / "cn")) == outside


def test_recursive_copy_with_a_link_inside_copies_nothing(world):
    _, cn, _ = world
    with pytest.raises(ResidencyViolation, match="symbolic link .*bundle/evil"):
        cn.copy("bundle", "b2")
    assert not cn.exists("b2") and not any(name.startswith(".tmp-") for name in os.listdir(cn.root))
    os.unlink(Path(cn.root) / "bundle" / "evil")
    cn.copy("bundle", "b2")
    assert cn.walk("b2") and list(cn.walk("b2")) == ["b2/ok.bin"] and cn.read_bytes("b2/ok.bin") == CN_BYTES


def test_a_relative_link_cannot_be_moved_to_retarget_it(world):
    _, cn, _ = world
    os.symlink("../x.bin", Path(cn.root) / "landing" / "dir" / "near")  # points inside cn from here...
    for src in ("landing/dir/near", "landing/dir"):
        with pytest.raises(ResidencyViolation, match="symbolic link"):
            cn.move(src, "near")  # ...and at ../x.bin outside cn once moved to the root
    assert os.readlink(Path(cn.root) / "landing" / "dir" / "near") == "../x.bin" and not cn.exists("near")


def test_delete_of_a_folder_with_a_link_inside_puts_it_back(world):
    _, cn, eu = world
    with pytest.raises(ResidencyViolation):
        cn.delete("bundle")
    assert cn.read_bytes("bundle/ok.bin") == CN_BYTES and os.path.islink(Path(cn.root) / "bundle" / "evil")
    assert eu.read_bytes("landing/eu-only-secret.bin") == SECRET


def test_copy_move_delete_take_effect_only_with_their_record(world, monkeypatch):
    _, cn, _ = world
    from curation.errors import AuditError

    def broken(*args, **kwargs):
        raise AuditError("log unavailable")

    monkeypatch.setattr(cn.audit, "append", broken)
    for operation in (lambda: cn.copy("landing/dir", "copied"), lambda: cn.copy("landing/x.bin", "x2.bin"),
                      lambda: cn.move("landing/x.bin", "moved.bin"), lambda: cn.delete("landing/dir"), lambda: cn.delete("landing/x.bin")):
        with pytest.raises(AuditError):
            operation()
    assert not cn.exists("copied") and not cn.exists("x2.bin") and not cn.exists("moved.bin")
    assert cn.read_bytes("landing/x.bin") == CN_BYTES and cn.read_bytes("landing/dir/secret.bin") == CN_BYTES
    assert not any(name.startswith(".tmp-") for _, dirs, files in os.walk(cn.root) for name in dirs + files)


def test_store_made_links_are_gone_link_copies(world):
    _, cn, _ = world
    cn.link("landing/x.bin", "raw/x.bin")
    assert os.stat(Path(cn.root) / "raw" / "x.bin").st_nlink == 1 and cn.read_bytes("raw/x.bin") == CN_BYTES
    cn.write_bytes("raw/x.bin", b"changed")  # the copy is its own file
    assert cn.read_bytes("landing/x.bin") == CN_BYTES


def _swap(root: Path, eu_folder: Path, rounds: int, done: threading.Event, count: list) -> None:
    real, parked = root / "landing" / "dir", root / "landing" / "dir.parked"
    def replace(make):
        while True:  # a writer may have made the folder again while it was parked
            try:
                return make()
            except OSError as error:
                if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                if real.is_symlink():
                    real.unlink()
                else:
                    shutil.rmtree(real, ignore_errors=True)

    try:
        for _ in range(rounds):
            os.rename(real, parked)
            replace(lambda: os.symlink(eu_folder, real))
            real.unlink()
            replace(lambda: os.rename(parked, real))
            count[0] += 1
    finally:
        done.set()


def test_swapping_a_folder_for_a_link_during_reads_writes_and_copies_never_reaches_eu(world):
    tmp_path, cn, eu = world
    outside = _snapshot(tmp_path, skip=(tmp_path / "data" / "cn", tmp_path / "keys" / "cn"))
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # interleave the threads as finely as the interpreter allows
    done, swaps = threading.Event(), [0]
    seen = {"cn": 0, "refused": 0, "missing": 0}
    try:
        swapper = threading.Thread(target=_swap, args=(Path(cn.root), Path(eu.root) / "landing" / "dir", 1000, done, swaps))
        swapper.start()
        for i in range(20000):
            if done.is_set():
                break
            try:
                data = [cn.read_bytes, lambda k: cn.write_bytes(k.replace("secret.bin", f"w{i}.bin"), CN_BYTES),
                        lambda k: cn.copy("landing/dir", f"copies/{i}"), lambda k: list(cn.walk("landing/dir")),
                        lambda k: cn.sha256(k)][i % 5]("landing/dir/secret.bin")
            except ResidencyViolation:
                seen["refused"] += 1
            except (FileNotFoundError, NotADirectoryError):
                seen["missing"] += 1
            else:
                assert _no_secret(data)
                seen["cn"] += 1
        swapper.join()
    finally:
        sys.setswitchinterval(interval)
    assert swaps[0] == 1000 and seen["cn"] > 0 and seen["refused"] + seen["missing"] > 0, (swaps, seen)
    assert _snapshot(tmp_path, skip=(tmp_path / "data" / "cn", tmp_path / "keys" / "cn")) == outside  # no file left in eu
    assert sorted(os.listdir(Path(eu.root) / "landing" / "dir")) == ["eu-only-secret.bin"]
    assert all(cn.read_bytes(k) == CN_BYTES for k in cn.walk("copies"))
    assert cn.audit.verify() > seen["refused"]


def test_a_library_path_is_refused_once_the_root_is_replaced(tmp_path):
    cn, eu = make_store(tmp_path, "cn"), make_store(tmp_path, "eu")
    cn.write_bytes("catalog/x", b"1")
    root = Path(cn.root)
    os.rename(root, root.with_name("cn-moved"))
    os.symlink(eu.root, root)
    assert cn.read_bytes("catalog/x") == b"1"  # descriptors follow the folder, not its old name
    with pytest.raises(ResidencyViolation, match="moved or replaced"):
        cn.uri("catalog")


def test_folders_nested_past_any_store_layout_are_refused_not_recursed(world):
    _, cn, _ = world
    deep = Path(cn.root, "landing", *["d"] * 300)
    deep.mkdir(parents=True)
    (deep / "x.bin").write_bytes(CN_BYTES)
    for operation in (lambda: list(cn.walk("landing")), lambda: cn.copy("landing/d", "copy"), lambda: cn.delete("landing/d"),
                      lambda: cn.uri("landing")):
        with pytest.raises(ResidencyViolation, match="nested deeper than 256 levels"):
            operation()
    assert (deep / "x.bin").read_bytes() == CN_BYTES and not cn.exists("copy")


def _swap_in_eu(root: Path, target: Path, stop) -> None:
    """Put a hard link or a symbolic link to eu's file under cn's name x.bin and cn's own file back, until ``stop``."""
    i = 0
    while not stop.is_set():
        (os.link if i % 2 else os.symlink)(target, root / "planted")
        os.replace(root / "planted", root / "x.bin")  # the name now leads to eu's file
        (root / "own").write_bytes(CN_BYTES)
        os.replace(root / "own", root / "x.bin")
        i += 1


def test_swapping_a_file_for_a_hard_link_or_a_link_into_eu_during_reads_never_reaches_eu(world):
    """The swapper is a process, on the other core: a thread under the GIL rarely hits the instant a
    rename has dropped the replaced file's count while its name still leads there (the check before
    the folder is waited on read eu's bytes about 30 times a second against a process)."""
    _, cn, eu = world
    root, target = Path(cn.root) / "landing", Path(eu.root) / "landing" / "eu-only-secret.bin"
    (root / "x.bin").write_bytes(CN_BYTES)
    seen = {"cn": 0, "refused": 0, "missing": 0}
    stop = multiprocessing.get_context("fork").Event()
    swapper = multiprocessing.get_context("fork").Process(target=_swap_in_eu, args=(root, target, stop))
    swapper.start()
    try:
        deadline = time.monotonic() + 4
        i = 0
        while time.monotonic() < deadline:
            try:
                data = (cn.read_bytes, cn.sha256, lambda k: cn.open(k, "r+b").close())[i % 3]("landing/x.bin")
            except ResidencyViolation:
                seen["refused"] += 1
            except FileNotFoundError:
                seen["missing"] += 1
            else:
                assert data is None or data == CN_BYTES or data == hashlib.sha256(CN_BYTES).hexdigest()
                seen["cn"] += 1
            i += 1
    finally:
        stop.set()
        swapper.join()
    assert seen["cn"] > 0 and seen["refused"] > 0, seen
    assert target.read_bytes() == SECRET
