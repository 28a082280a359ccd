"""Per-region, append-only, tamper-evident audit log (``<store>/audit/log.jsonl``).

Every record carries the hash of the one before it, so editing, deleting, reordering or inserting
a line breaks the chain at that line. A head file holds the last sequence number and hash, so
cutting records off the end is caught too. Appends take a file lock: several processes may write
at once.

Example:
    >>> log = AuditLog(fsspec.filesystem("file"), "/tmp/doc-audit", region="cn")  # doctest: +SKIP
    >>> log.append("curation", "ingest", "landing/v1/clip.mp4", sha256="ab...")    # doctest: +SKIP
    >>> log.verify()                                                               # doctest: +SKIP
    1
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import filelock
from fsspec.implementations.local import LocalFileSystem

from curation.errors import AuditError

__all__ = ["AuditLog"]

GENESIS = "0" * 64
FIELDS = ("seq", "time", "region", "actor", "action", "object", "sha256", "detail", "prev")


def _digest(record: dict) -> str:
    body = json.dumps({k: record[k] for k in FIELDS}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()


class AuditLog:
    """Hash-chained JSON lines in ``folder/log.jsonl`` of an fsspec filesystem."""

    def __init__(self, fs, folder: str, region: str):
        self.fs, self.region = fs, region
        self.path, self.head_path = f"{folder}/log.jsonl", f"{folder}/head.json"
        self._folder = folder
        self._local = isinstance(fs, LocalFileSystem)
        if self._local:
            lock_path = f"{folder}/.lock"
        else:  # object stores have no locks: serialize this machine's writers at least
            digest = hashlib.sha256(self.path.encode()).hexdigest()[:16]
            lock_path = str(Path(tempfile.gettempdir(), f"curation-audit-{digest}.lock"))
        self._lock = filelock.FileLock(lock_path)

    def append(self, actor: str, action: str, obj: str, sha256: str | None = None, **detail) -> dict:
        """Add one record; returns it with its hash."""
        self.fs.makedirs(self._folder, exist_ok=True)
        with self._lock:
            head = self._last()
            record = {
                "seq": head["seq"] + 1,
                "time": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
                "region": self.region,
                "actor": actor,
                "action": action,
                "object": obj,
                "sha256": sha256,
                "detail": detail,
                "prev": head["hash"],
            }
            record["hash"] = _digest(record)
            line = (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode()
            if not self._local and self.fs.exists(self.path):
                line = self.fs.cat_file(self.path) + line  # object stores cannot append in place
                self.fs.pipe_file(self.path, line)
            else:
                with self.fs.open(self.path, "ab") as handle:
                    handle.write(line)
            # The head only guards against cut-off tails; a crash before it is written leaves it
            # one record behind, which verify accepts as long as it matches an earlier record.
            temporary = f"{self.head_path}.{os.getpid()}"
            self.fs.pipe_file(temporary, json.dumps({"seq": record["seq"], "hash": record["hash"]}).encode())
            self.fs.mv(temporary, self.head_path)
            return record

    def _head(self) -> dict:
        if self.fs.exists(self.head_path):
            return json.loads(self.fs.cat_file(self.head_path))
        return {"seq": -1, "hash": GENESIS}

    def _last(self) -> dict:
        """Sequence number and hash of the last record, read from the tail of the log."""
        if not self.fs.exists(self.path):
            return {"seq": -1, "hash": GENESIS}
        size = self.fs.size(self.path)
        tail = self.fs.cat_file(self.path, start=max(0, size - 65536)).decode(errors="replace")
        lines = [line for line in tail.splitlines() if line.strip()]
        if not lines:
            return {"seq": -1, "hash": GENESIS}
        try:
            last = json.loads(lines[-1])
            return {"seq": int(last["seq"]), "hash": str(last["hash"])}
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise AuditError(f"{self.path}: last line is not a record; run `curation audit verify`") from None

    def records(self) -> list[dict]:
        if not self.fs.exists(self.path):
            return []
        return [json.loads(line) for line in self.fs.cat_file(self.path).decode().splitlines() if line.strip()]

    def verify(self) -> int:
        """Check the whole chain; return the record count or raise AuditError naming the first bad line."""
        if not self.fs.exists(self.path):
            if self.fs.exists(self.head_path):
                raise AuditError(f"{self.path}: log is missing but its head file says records were written")
            return 0
        previous, hashes = GENESIS, []
        lines = self.fs.cat_file(self.path).decode().split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        for number, line in enumerate(lines, start=1):
            where = f"{self.path} line {number}"
            try:
                record = json.loads(line)
                missing = [k for k in (*FIELDS, "hash") if k not in record]
            except (json.JSONDecodeError, TypeError):
                raise AuditError(f"{where}: not a JSON record") from None
            if missing or not isinstance(record, dict):
                raise AuditError(f"{where}: record lacks {', '.join(missing)}")
            if record["prev"] != previous:
                raise AuditError(f"{where}: chain broken (a record before it was edited, deleted, moved or inserted)")
            if record["seq"] != number - 1:
                raise AuditError(f"{where}: sequence number {record['seq']}, expected {number - 1}")
            if _digest(record) != record["hash"]:
                raise AuditError(f"{where}: hash mismatch (record edited)")
            previous = record["hash"]
            hashes.append(previous)
        head = self._head()
        if head["seq"] >= len(hashes) or (head["seq"] >= 0 and hashes[head["seq"]] != head["hash"]):
            raise AuditError(
                f"{self.path} line {len(hashes) + 1}: records missing at the end "
                f"(head says {head['seq'] + 1} records, log has {len(hashes)})"
            )
        return len(hashes)
