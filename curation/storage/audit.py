"""Per-region, append-only, tamper-evident audit log (``<store>/audit/log.jsonl``).

Each record is one canonical JSON line (sorted keys, ASCII, no spaces) with a MAC: HMAC-SHA256,
under the region's audit key (kept outside the store, :mod:`curation.storage.keys`), of every
other field, the previous record's MAC included. Editing, deleting, reordering or inserting a line
breaks the chain there, and without the key nobody can write a line that verifies. The head (last
sequence number and MAC) is kept twice: ``audit/head.json`` in the store and an *anchor* outside
it, beside the key (``regions.R.keys.audit.anchor``), so cutting records off the end, deleting the
log or its head, or putting back an older copy is caught. A crash between writing a line and its
heads leaves them one record behind, which is the only gap accepted.

Appends hold a lock file beside the anchor (several processes may write at once) and refuse to
continue a log whose tail does not match its anchor: nothing is appended to a broken chain.
``verify`` parses strictly (exact field set, types, canonical form, no duplicate keys) and every
problem is one :class:`~curation.errors.AuditError` line naming the first bad line.

Key rotation: put the new key first in the key file or variable, keep the old one after it. The
next append writes a ``rotate_key`` record signed by the old key naming the new key's id; every
record after it is signed by the new key.

Example:
    >>> store.audit.append("curation", "ingest", "landing/v1/clip.mp4", sha256="ab...")  # doctest: +SKIP
    >>> store.audit.verify()                                                             # doctest: +SKIP
    2
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import math
import os
import re
import threading
from datetime import datetime, timezone
from pathlib import Path

from curation.errors import AuditError
from curation.storage import keys as keystore
from curation.storage.localfs import LocalRoot, Refused

__all__ = ["AuditLog", "LocalFile", "ObjectFile", "describe"]

GENESIS = "0" * 64
FIELDS = ("action", "actor", "detail", "key", "mac", "object", "prev", "region", "sha256", "seq", "time")
HEAD_FIELDS = ("mac", "region", "seq")
HEX64, HEX16 = re.compile(r"[0-9a-f]{64}"), re.compile(r"[0-9a-f]{16}")
HEAD_WIDTH = 191  # heads are rewritten in place at a fixed width: one small write, no rename (ext4 flushes on those)
DOMAIN = b"curation audit record v2\n"
LONGEST_TEXT = 1024


def describe(value) -> str:
    """Any key a caller passed (str, bytes, Path, None, lone surrogates, NUL, megabytes...) as a short, valid string."""
    try:
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if isinstance(value, str):
            text = str.join("", [value])  # a plain copy: a str subclass's methods must not write the record
        elif isinstance(value, (bytes, bytearray, memoryview)):
            text = repr(bytes(value[: LONGEST_TEXT + 1]))
        else:
            text = f"<{type(value).__name__}> {repr(value)[: LONGEST_TEXT + 1]}"
    except Exception:  # noqa: BLE001 - a hostile __fspath__ or __repr__ must not stop the refusal from being recorded
        text = f"<{type(value).__name__}>"
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= LONGEST_TEXT else f"{text[:LONGEST_TEXT]}...({len(text)} characters)"


def _plain(value, depth: int = 0):
    """A JSON value that round-trips exactly: text cleaned, odd types described, no NaN."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return str.join("", [value]).encode("utf-8", "backslashreplace").decode("utf-8")
    if depth < 16 and isinstance(value, dict):
        return {describe(k): _plain(v, depth + 1) for k, v in value.items()}
    if depth < 16 and isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value]
    return describe(value)


def _canonical(document: dict) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


def _head_bytes(document: dict) -> bytes:
    return _canonical(document).ljust(HEAD_WIDTH) + b"\n"


def _mac(key: bytes, record: dict) -> str:
    body = _canonical({k: v for k, v in record.items() if k != "mac"})
    return hmac.new(key, DOMAIN + body, hashlib.sha256).hexdigest()


class _Duplicate(ValueError):
    pass


def _unique(pairs):
    document = {}
    for name, value in pairs:
        if name in document:
            raise _Duplicate(name)
        document[name] = value
    return document


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


def _json(raw: bytes, where: str) -> dict:
    """One strictly parsed, canonical JSON object, or one AuditError line."""
    try:
        document = json.loads(raw.decode("ascii"), object_pairs_hook=_unique, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise AuditError(f"{where}: not ASCII (records are canonical JSON)") from None
    except _Duplicate as duplicate:
        raise AuditError(f"{where}: duplicate key {describe(str(duplicate))!r}") from None
    except (ValueError, RecursionError):
        raise AuditError(f"{where}: not a JSON record") from None
    if type(document) is not dict:
        raise AuditError(f"{where}: not a JSON object")
    return document


def _exact_fields(document: dict, fields: tuple[str, ...], where: str) -> None:
    missing, extra = sorted(set(fields) - set(document)), sorted(set(document) - set(fields))
    if missing:
        old = " (a record of the old unkeyed format: archive the log, README: Audit log)" if "hash" in document else ""
        raise AuditError(f"{where}: record lacks {', '.join(missing)}{old}")
    if extra:
        raise AuditError(f"{where}: fields outside the MAC: {', '.join(describe(e) for e in extra)}")


def _seq(value, where: str) -> int:
    if type(value) is not int or value < 0:
        raise AuditError(f"{where}: seq must be a non-negative integer, got {describe(repr(value))}")
    return value


LONGEST_LINE = 16 << 20


def _incomplete(path: str) -> AuditError:
    return AuditError(f"{path}: the last line is incomplete (a crash while writing, or tampering); run `curation audit verify`")


class LocalFile:
    """A file of a local store reached through its guard, for the audit log and its in-store head.

    Only AuditLog holds one: RegionStore's own methods refuse every write under ``audit/``."""

    def __init__(self, root: LocalRoot, parts: tuple[str, ...]):
        self.root, self.parts = root, parts
        self.path = os.path.join(root.path, *parts)

    def _refused(self, refused: Refused) -> AuditError:
        return AuditError(f"{self.path}: {refused.what} at {'/'.join(refused.where)}; the audit log must be a plain file of the store")

    def _open(self, flags: int) -> int | None:
        try:
            return self.root.open(self.parts, flags, create_folders=bool(flags & os.O_CREAT))
        except FileNotFoundError:
            return None
        except Refused as refused:
            raise self._refused(refused) from None
        except OSError as error:  # audit/ made a file, a folder where the log should be...
            raise AuditError(f"{self.path}: cannot be opened ({error.strerror or error}); the audit log must be a plain file of the store") from None

    def read(self) -> bytes | None:
        fd = self._open(os.O_RDONLY)
        if fd is None:
            return None
        with open(fd, "rb") as handle:
            return handle.read(1 << 12)

    def write(self, data: bytes) -> None:
        """Overwrite in place (heads have a fixed width: one write of a few hundred bytes)."""
        fd = self._open(os.O_WRONLY | os.O_CREAT)
        try:
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
        finally:
            os.close(fd)

    def append(self, line: bytes) -> None:
        fd = self._open(os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)

    def tail(self) -> bytes | None:
        """The last line (without its newline), or None for a missing or empty log."""
        fd = self._open(os.O_RDONLY)
        if fd is None:
            return None
        try:
            size = os.fstat(fd).st_size
            if size == 0:
                return None
            if os.pread(fd, 1, size - 1) != b"\n":
                raise _incomplete(self.path)
            data, start = b"", size - 1
            while start > 0 and b"\n" not in data:
                if size - start > LONGEST_LINE:
                    raise AuditError(f"{self.path}: the last line is longer than {LONGEST_LINE} bytes")
                step = min(start, 1 << 16)
                start -= step
                data = os.pread(fd, step, start) + data
            return data.rsplit(b"\n", 1)[-1]
        finally:
            os.close(fd)

    def lines(self):
        fd = self._open(os.O_RDONLY)
        if fd is None:
            return
        with open(fd, "rb") as handle:
            for raw in handle:
                if not raw.endswith(b"\n"):
                    raise _incomplete(self.path)
                yield raw[:-1]


class ObjectFile:
    """The same for an object store (no append in place: the object is rewritten, as S3 allows)."""

    def __init__(self, fs, path: str):
        self.fs, self.path = fs, path

    def read(self) -> bytes | None:
        try:
            return self.fs.cat_file(self.path)
        except FileNotFoundError:
            return None

    def write(self, data: bytes) -> None:
        self.fs.pipe_file(self.path, data)

    def append(self, line: bytes) -> None:
        self.fs.pipe_file(self.path, (self.read() or b"") + line)

    def tail(self) -> bytes | None:
        data = self.read()
        if not data:
            return None
        if not data.endswith(b"\n"):
            raise _incomplete(self.path)
        return data[:-1].rsplit(b"\n", 1)[-1]

    def lines(self):
        data = self.read() or b""
        if data and not data.endswith(b"\n"):
            raise _incomplete(self.path)
        yield from data.split(b"\n")[:-1]


class AuditLog:
    """The MAC-chained log of one region. ``file`` is the store's handle on ``audit/log.jsonl``."""

    def __init__(self, file, head, params, region: str):
        self.file, self.head, self.params, self.region = file, head, params, region
        self.path, self.head_path = file.path, head.path
        self.anchor_path = Path(params.region(region).keys.audit.anchor)
        self._thread_lock = threading.RLock()
        self._lock_fd, self._lock_pid = -1, None
        self._ring: keystore.Keyring | None = None

    @contextlib.contextmanager
    def _locked(self):
        """Threads of this process, then processes (flock on a file beside the anchor, outside the store)."""
        if self._lock_pid != os.getpid():
            # First use, or a forked child: it must not share its parent's lock description (flock
            # would not exclude the two) nor a thread lock some parent thread may hold forever.
            self._thread_lock = threading.RLock()
            self.anchor_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._lock_fd = os.open(f"{self.anchor_path}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._lock_pid = os.getpid()
        with self._thread_lock:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def __del__(self):
        if self._lock_pid == os.getpid():
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)

    # ---- keys --------------------------------------------------------------------------------
    def _keyring(self) -> keystore.Keyring | None:
        if self._ring is None:
            self._ring = keystore.load(self.params, self.region, "audit")
        return self._ring

    def _key(self, ring: keystore.Keyring | None, record: dict, where: str) -> bytes:
        if ring is None:
            raise AuditError(f"{where}: cannot check the MAC: the audit key ({self.params.region(self.region).keys.audit.file}) "
                             "is missing; restore it")
        key = ring.by_id(record["key"])
        if key is None:
            raise AuditError(f"{where}: signed by key {record['key']}, which is not in the audit keyring ({ring.origin})")
        return key

    # ---- parsing -----------------------------------------------------------------------------
    def _record(self, raw: bytes, where: str) -> dict:
        record = _json(raw, where)
        _exact_fields(record, FIELDS, where)
        _seq(record["seq"], where)
        for name in ("time", "region", "actor", "action", "object", "prev", "key", "mac"):
            if type(record[name]) is not str:
                raise AuditError(f"{where}: {name} must be a string")
        if record["sha256"] is not None and type(record["sha256"]) is not str:
            raise AuditError(f"{where}: sha256 must be a string or null")
        if type(record["detail"]) is not dict:
            raise AuditError(f"{where}: detail must be an object")
        if not (HEX64.fullmatch(record["prev"]) and HEX64.fullmatch(record["mac"]) and HEX16.fullmatch(record["key"])):
            raise AuditError(f"{where}: prev, mac or key is not lower-case hex of the right length")
        if record["region"] != self.region:
            raise AuditError(f"{where}: a record of region {describe(record['region'])!r} in the log of {self.region!r}")
        try:
            datetime.fromisoformat(record["time"])
        except ValueError:
            raise AuditError(f"{where}: time is not an ISO 8601 timestamp") from None
        if _canonical(record) != raw:
            raise AuditError(f"{where}: not in canonical form (edited by hand?)")
        return record

    def _heads(self) -> list[tuple[str, dict | None]]:
        """(where, {seq, mac} or None when absent) of the anchor outside the store and head.json inside it."""
        heads = []
        for where, raw in ((str(self.anchor_path), self._read_anchor()), (self.head.path, self.head.read())):
            if raw is None:
                heads.append((where, None))
                continue
            document = _json(raw.rstrip(b"\n").rstrip(b" "), where)
            _exact_fields(document, HEAD_FIELDS, where)
            if _head_bytes(document) != raw:
                raise AuditError(f"{where}: not in canonical form (edited by hand?)")
            _seq(document["seq"], where)
            if type(document["mac"]) is not str or not HEX64.fullmatch(document["mac"]) or document["region"] != self.region:
                raise AuditError(f"{where}: not a head of region {self.region!r}'s log")
            heads.append((where, document))
        return heads

    def _read_anchor(self) -> bytes | None:
        try:
            with open(self.anchor_path, "rb") as handle:
                return handle.read(1 << 12)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise AuditError(f"{self.anchor_path}: cannot read the audit anchor ({error.strerror})") from None

    def _check_heads(self, last: dict | None) -> None:
        """Both heads name the last record, or (after a crash between the writes) the one before it."""
        for where, head in self._heads():
            if last is None:
                if head is not None:
                    raise AuditError(f"{self.path}: the log is missing or empty, but {where} says {head['seq'] + 1} records were written")
                continue
            if head is None:
                raise AuditError(f"{self.path}: {last['seq'] + 1} records, but the head {where} is missing (deleted?)")
            if head["seq"] > last["seq"]:
                raise AuditError(f"{self.path} line {last['seq'] + 2}: records missing at the end "
                                 f"({where} says {head['seq'] + 1} records, log has {last['seq'] + 1})")
            if (head["seq"], head["mac"]) == (last["seq"], last["mac"]):
                continue
            if head["seq"] == last["seq"] - 1 and head["mac"] == last["prev"]:
                continue
            raise AuditError(f"{self.path}: the log does not continue its head {where} (seq {head['seq']}): "
                             "records cut off, replaced or forged")

    # ---- writing -----------------------------------------------------------------------------
    def append(self, actor: str, action: str, obj: str, sha256: str | None = None, **detail) -> dict:
        """Add one record after checking the tail against its heads; returns the record."""
        with self._locked():
            ring = self._keyring()
            last = self._checked_tail(ring)
            if ring is None:
                if last is not None:
                    raise AuditError("unreachable")  # _checked_tail refuses a log it cannot check
                ring, made = keystore.create(self.params, self.region, "audit")
                self._ring = ring
                if made:
                    last = self._write(last, ring.current, actor, "create_key", "keys:audit", None,
                                       {"key": "audit", "key_id": ring.ids[0], "file": ring.origin})
            if last is not None and last["key"] != ring.ids[0]:
                old = ring.by_id(last["key"])
                last = self._write(last, old, actor, "rotate_key", "keys:audit", None, {"key": "audit", "from": last["key"], "to": ring.ids[0]})
            return self._write(last, ring.current, actor, action, obj, sha256, detail)

    def _checked_tail(self, ring) -> dict | None:
        raw = self.file.tail()
        if raw is None:
            self._check_heads(None)
            return None
        where = f"{self.path} last line"
        last = self._record(raw, where)
        key = self._key(ring, last, where)
        if not hmac.compare_digest(_mac(key, last), last["mac"]):
            raise AuditError(f"{where}: MAC mismatch (record edited or forged); run `curation audit verify`")
        self._check_heads(last)
        return last

    def _write(self, last: dict | None, key: bytes, actor, action, obj, sha256, detail: dict) -> dict:
        record = {
            "seq": 0 if last is None else last["seq"] + 1,
            "time": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
            "region": self.region,
            "actor": describe(actor),
            "action": describe(action),
            "object": describe(obj),
            "sha256": None if sha256 is None else describe(sha256),
            "detail": _plain(detail),
            "prev": GENESIS if last is None else last["mac"],
            "key": keystore.key_id(key),
        }
        record["mac"] = _mac(key, record)
        self.file.append(_canonical(record) + b"\n")
        head = _head_bytes({"seq": record["seq"], "mac": record["mac"], "region": self.region})
        self._write_anchor(head)
        self.head.write(head)
        return record

    def _write_anchor(self, data: bytes) -> None:
        fd = os.open(self.anchor_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
        finally:
            os.close(fd)

    # ---- reading -----------------------------------------------------------------------------
    def records(self) -> list[dict]:
        """Every record, parsed strictly (MACs are checked by :meth:`verify`)."""
        with self._locked():  # no half-written last line
            return [self._record(raw, f"{self.path} line {n}") for n, raw in enumerate(self.file.lines(), start=1)]

    def verify(self) -> int:
        """Check the whole chain and both heads; return the record count or raise one AuditError line."""
        try:
            return self._verify()
        except OSError as error:
            raise AuditError(f"{self.path}: cannot be checked ({error.strerror or error})") from None

    def _verify(self) -> int:
        with self._locked():
            ring = self._keyring()
            previous: dict | None = None
            for number, raw in enumerate(self.file.lines(), start=1):
                where = f"{self.path} line {number}"
                record = self._record(raw, where)
                if record["seq"] != number - 1:
                    raise AuditError(f"{where}: sequence number {record['seq']}, expected {number - 1}")
                if record["prev"] != (GENESIS if previous is None else previous["mac"]):
                    raise AuditError(f"{where}: chain broken (a record before it was edited, deleted, moved or inserted)")
                if previous is not None:
                    expected = previous["detail"].get("to") if previous["action"] == "rotate_key" else previous["key"]
                    if record["key"] != expected:
                        raise AuditError(f"{where}: signed by key {record['key']}, expected {expected} "
                                         "(the key changes only after a rotate_key record)")
                if not hmac.compare_digest(_mac(self._key(ring, record, where), record), record["mac"]):
                    raise AuditError(f"{where}: MAC mismatch (record edited or forged)")
                previous = record
            self._check_heads(previous)
            return 0 if previous is None else previous["seq"] + 1
