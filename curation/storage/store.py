"""RegionStore: the only way platform code touches data, and the residency guard.

A key is read as a POSIX path relative to the region's root (absolute paths and ``file://`` or
``s3://`` URLs only when they name something inside it). Anything else, whatever its type or
bytes (``..`` out of the root, another bucket, another scheme, bytes that are no file name, NUL,
a key longer than the system allows), is refused with
:class:`~curation.errors.ResidencyViolation` naming both sides, after a ``refused`` record in
this region's audit log.

On a local store the root is opened once and every key is walked name by name under it with
``O_NOFOLLOW`` (:mod:`curation.storage.localfs`): the file opened is the file checked, no symbolic
link is followed (one anywhere on the way is refused), a file with a second name (a hard link) is
refused, and recursive copy, move, walk and delete check every member. Reads, writes and appends
go through the descriptor that was checked. Nothing under ``audit/`` can be written, moved or
deleted through the store: only :class:`~curation.storage.audit.AuditLog` appends there. Copy,
move and delete write their audit record before they take effect, and undo the preparation when
the record cannot be written.

Example:
    >>> store = RegionStore(load_params("params.yaml"), "cn")     # doctest: +SKIP
    >>> store.write_bytes("landing/readme.txt", b"hello")         # doctest: +SKIP
    >>> store.read_bytes("../eu/landing/readme.txt")              # doctest: +SKIP
    Traceback (most recent call last):
    curation.errors.ResidencyViolation: residency violation: read of '../eu/...' from region 'cn' would reach region 'eu'; refused
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import io
import os
import posixpath
import shutil
import stat
import unicodedata
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone

import fsspec

from curation.errors import AuditError, PolicyError, ResidencyViolation, UnrecordedRefusal
from curation.policy.params import Params, RegionPolicy, check_keys_outside_stores, check_stores_disjoint
from curation.storage.audit import AuditLog, LocalFile, ObjectFile, describe
from curation.storage.keys import OLD_SECRETS
from curation.storage.localfs import DIRECTORY, LocalRoot, Refused

__all__ = ["RegionStore"]

CHUNK = 1 << 20
AUDIT = "audit"
MAX_KEY = 4096  # PATH_MAX: longer keys cannot name a file
MAX_NAME = 255  # NAME_MAX, in bytes


def _filesystem(name: str, policy: RegionPolicy):
    if policy.s3 is None:
        raise PolicyError(f"regions.{name}.s3: required for store {policy.store}")
    credentials = {}
    for field, variable in (("key", policy.s3.key_env), ("secret", policy.s3.secret_env)):
        if variable not in os.environ:
            raise PolicyError(f"regions.{name}.s3.{field}_env: environment variable {variable} is not set")
        credentials[field] = os.environ[variable]
    client = {"endpoint_url": policy.s3.endpoint_url, "region_name": policy.s3.region_name}
    return fsspec.filesystem("s3", **credentials, client_kwargs=client, skip_instance_cache=True)


def _flags(mode: str) -> int:
    """os.open flags of a Python file mode (no O_TRUNC surprises: the guard truncates after its checks)."""
    kinds = [c for c in mode if c in "rwax"]
    if len(kinds) != 1 or set(mode) - set("rwaxbt+") or len(mode) != len(set(mode)) or ("b" in mode and "t" in mode):
        raise ValueError(f"invalid mode: {mode!r}")
    access = os.O_RDWR if "+" in mode else (os.O_RDONLY if kinds[0] == "r" else os.O_WRONLY)
    return access | {"r": 0, "w": os.O_CREAT | os.O_TRUNC, "a": os.O_CREAT | os.O_APPEND, "x": os.O_CREAT | os.O_EXCL}[kinds[0]]


def _as_text(key):
    """The exact str a key spells (``__fspath__`` called once, bytes decoded), or the key itself when it spells none.

    A str subclass is copied to a plain str: its methods must not answer the guard's questions."""
    try:
        if isinstance(key, os.PathLike):
            key = os.fspath(key)
        if isinstance(key, (bytes, bytearray)):
            key = os.fsdecode(bytes(key))
        if isinstance(key, str) and type(key) is not str:
            key = str.join("", [key])
    except Exception:  # noqa: BLE001 - a hostile __fspath__ is refused like any other key
        return _Unreadable(type(key).__name__)
    return key


class _Unreadable:
    """A key whose ``__fspath__`` failed: described by its type only."""

    def __init__(self, kind: str):
        self.kind = kind

    def __repr__(self) -> str:
        return f"<{self.kind} whose __fspath__ failed>"


def _folded(name: str) -> str:
    """A name as case-insensitive file systems compare it: NFKC, case folded, without format characters
    (HFS+ ignores zero-width ones) or trailing dots and spaces (Windows drops those)."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return "".join(c for c in folded if unicodedata.category(c) != "Cf").rstrip(". ")


def _contains(outer: str, inner: str) -> bool:
    return inner == outer or inner.startswith(outer.rstrip("/") + "/")


def _ancestors(fd: int) -> set[tuple[int, int]]:
    """(device, inode) of every folder above an open folder, up to the file system's root."""
    seen, current = set(), os.open("..", DIRECTORY, dir_fd=fd)
    try:
        while True:
            info = os.fstat(current)
            identity = (info.st_dev, info.st_ino)
            if identity in seen:
                return seen
            seen.add(identity)
            try:
                parent = os.open("..", DIRECTORY, dir_fd=current)
            except OSError:  # an unreadable folder above: what was seen so far
                return seen
            os.close(current)
            current = parent
    finally:
        os.close(current)


class RegionStore:
    """One region's data root (local folder or s3://bucket/prefix), guarded.

    Keys are POSIX paths relative to the root (``landing/v1/clip.mp4``). Absolute paths and URLs
    are accepted only when they point inside the root.
    """

    def __init__(self, params: Params, region: str, actor: str | None = None):
        self.params, self.region = params, region
        self.policy = params.region(region)
        self.actor = actor or os.environ.get("CURATION_ACTOR") or getpass.getuser()
        self.root = self.policy.store  # what users see: a path or an s3:// URL
        self.local = not self.policy.is_s3
        self._roots = None
        # Checked again now, not only when params loaded: a link made since then counts.
        check_stores_disjoint(params)
        check_keys_outside_stores(params)
        if self.local:
            self.fs = None  # no fsspec handle on a local store: it would reopen paths behind the guard
            self._disk = LocalRoot(self.root)
            self._root, self._given = self._disk.path, os.path.normpath(self.root)
            self._check_alone()
            log, head = LocalFile(self._disk, (AUDIT, "log.jsonl")), LocalFile(self._disk, (AUDIT, "head.json"))
        else:
            self.fs = _filesystem(region, self.policy)
            self._root = self._given = self.root.removeprefix("s3://")
            log, head = ObjectFile(self.fs, f"{self._root}/{AUDIT}/log.jsonl"), ObjectFile(self.fs, f"{self._root}/{AUDIT}/head.json")
        self._refuse_old_secrets()
        self.audit = AuditLog(log, head, params, region)

    def __repr__(self) -> str:
        return f"RegionStore({self.region!r}, {self.root!r})"

    def __reduce__(self):  # workers get a store of their own: the root is opened again there
        return RegionStore, (self.params, self.region, self.actor)

    def _check_alone(self) -> None:
        """No other local region's store is this folder, holds it or lies in it (by inode: links and mounts count)."""
        mine, above_mine = self._disk.identity, _ancestors(self._disk.fd)
        for name, policy in self.params.regions.items():
            if name == self.region or policy.is_s3:
                continue
            try:
                fd = os.open(policy.store, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                continue  # not made yet: it is checked against this one when it is opened
            try:
                info = os.fstat(fd)
                theirs, above_theirs = (info.st_dev, info.st_ino), _ancestors(fd)
            finally:
                os.close(fd)
            if theirs == mine or theirs in above_mine or mine in above_theirs:
                raise PolicyError(f"{self.params.source}: regions.{self.region}.store: {self.root} and regions.{name}.store "
                                  f"{policy.store} are one folder or one holds the other (after links and mounts); "
                                  "every region needs a store of its own")

    def _refuse_old_secrets(self) -> None:
        try:
            found = self._disk.lstat((OLD_SECRETS,)) is not None if self.local else self.fs.exists(f"{self._root}/{OLD_SECRETS}")
        except Refused:
            found = True
        if found:
            target = self.policy.keys.pseudonym.file or f"${self.policy.keys.pseudonym.env}"
            raise PolicyError(f"{self.root}/{OLD_SECRETS}: region {self.region}'s store holds keys of the old layout; move "
                              f"pseudonym.key out of every store (hex, into {target}) and delete the folder (README: Keys)")

    # ---- the guard -------------------------------------------------------------------------
    def _owner(self, full: str, s3: bool) -> str:
        """Describe who owns a path outside this root: another region, or nobody (for messages only)."""
        if self._roots is None:  # the roots as spelled and as resolved when first needed
            self._roots = [(name, policy.is_s3, [policy.store.removeprefix("s3://")] if policy.is_s3 else
                            [os.path.normpath(policy.store), os.path.realpath(policy.store)]) for name, policy in self.params.regions.items()]
        candidates = [full.lstrip("/")] if s3 else [full, os.path.realpath(full)]
        for name, is_s3, roots in self._roots:
            if is_s3 == s3 and any(_contains(root, path) for root in roots for path in candidates):
                return f"region {name!r}" if name != self.region else "a path outside this store's root (spelled through a link)"
        return "a location outside every region"

    def _refuse(self, action: str, key, owner: str, **detail):
        target = describe(key)
        try:
            self.audit.append(self.actor, "refused", target, None, attempted=action, reached=owner, **detail)
        except AuditError as error:
            raise UnrecordedRefusal(self.region, owner, action, target, str(error)) from None
        raise ResidencyViolation(self.region, owner, action, target)

    def _parse(self, key) -> tuple[tuple[str, ...], str | None]:
        """(names under the root, None) or ((), why it is refused); never raises, whatever ``key`` is."""
        if not isinstance(key, str):
            return (), f"a key that is not a path ({type(key).__name__})"
        if "\x00" in key:
            return (), "a key with a NUL character (no file name holds one)"
        if len(key) > MAX_KEY:
            return (), f"a key of {len(key)} characters (at most {MAX_KEY})"
        try:
            os.fsencode(key)
        except UnicodeError:
            return (), "a key that is no file name (a lone surrogate outside the file system's encoding)"
        text = key
        if text.startswith("file://"):
            if not self.local:
                return (), "a local path outside this region's object store"
            text = text.removeprefix("file://")
            if not text.startswith("/"):
                return (), "a file:// URL without an absolute path"
        elif text.startswith("s3://"):
            if self.local:
                return (), self._owner(text.removeprefix("s3://"), s3=True)
            text = "/" + text.removeprefix("s3://")
        elif "://" in text:
            return (), f"another storage scheme ({describe(text.split('://')[0])}://)"
        roots = (self._given, self._root) if self.local else ("/" + self._root,)
        if text.startswith("/"):
            full = "/" + posixpath.normpath(text).lstrip("/")
            inside = next((root for root in roots if _contains(root, full)), None)
            if inside is None:
                return (), self._owner(full, s3=not self.local)
            relative = full[len(inside.rstrip("/")):]
        else:
            relative = posixpath.normpath(text)
            if relative == ".." or relative.startswith("../"):
                return (), self._owner(posixpath.normpath(posixpath.join(roots[0], text)), s3=not self.local)
        parts = tuple(part for part in relative.split("/") if part not in ("", "."))
        for part in parts:
            if len(os.fsencode(part)) > MAX_NAME:
                return (), f"a name of {len(os.fsencode(part))} bytes (at most {MAX_NAME})"
        return parts, None

    def _resolve(self, key, action: str, mutating: bool) -> tuple[tuple[str, ...], object]:
        """(names under the root, the key as the text that was checked), or an audited refusal."""
        key = _as_text(key)
        parts, why = self._parse(key)
        if why is None and mutating:
            if not parts:
                why = "the store's root (it holds the audit log)"
            elif _folded(parts[0]) == AUDIT:  # also Audit, AUDIT, fullwidth...: folded as case-insensitive file systems do
                why = "the region's audit log (append-only: only AuditLog writes there)"
        if why is not None:
            self._refuse(action, key, why)
        return parts, key

    @contextlib.contextmanager
    def _guarded(self, action: str, key, **detail):
        """Turn what the descriptor walk found (a link, a second name, a special file) into an audited refusal."""
        try:
            yield
        except Refused as refused:
            where = "/".join(refused.where)
            reached = f"{refused.what} at {where!r}"
            if refused.target is not None:
                owner = self._owner(os.path.realpath(refused.target), s3=False)
                if owner.startswith("region "):
                    reached = f"{owner} through the symbolic link at {where!r}"
            self._refuse(action, key, reached, **detail)

    def _full(self, parts: tuple[str, ...]) -> str:
        return posixpath.join(self._root, *parts)

    def path(self, key: str, action: str = "access") -> str:
        """A checked path, for libraries that open paths themselves (LanceDB, ultralytics, DVC).

        Every existing name on the way and every member of a folder is checked at this moment;
        what changes after it is the library's to follow (README: what remains open)."""
        parts, key = self._resolve(key, action, mutating=action in ("write", "move", "delete"))
        if parts and _folded(parts[0]) == AUDIT:  # a library given this path could write there
            self._refuse(action, key, "the region's audit log (append-only: only AuditLog writes there)")
        if self.local:
            try:
                now = os.stat(self._root)
            except OSError:
                now = None
            if now is None or (now.st_dev, now.st_ino) != self._disk.identity or os.path.realpath(self._root) != self._root:
                self._refuse(action, key, "a root moved or replaced since the store opened it (a library would follow the new one)")
            with self._guarded(action, key):
                for depth in range(1, len(parts) + 1):
                    info = self._disk.lstat(parts[:depth])
                    if info is None or not stat.S_ISDIR(info.st_mode):
                        break
                else:
                    for _ in self._disk.scan(parts, own_names=True):
                        pass
        return self._full(parts)

    def key(self, full: str) -> str:
        """Inverse of :meth:`path`: the key of a full path inside the root."""
        full = full.removeprefix("s3://")
        root = next((r for r in (self._root, self._given) if _contains(r, full)), self._root)
        return posixpath.relpath(full, root)

    def uri(self, key: str = "") -> str:
        """A checked URI for libraries that open paths themselves (LanceDB, PyAV, DVC)."""
        full = self.path(key or ".")
        return full if self.local else f"s3://{full}"

    def storage_options(self) -> dict:
        """Credentials and endpoint in the form LanceDB and pyarrow take them."""
        if self.local:
            return {}
        s3 = self.policy.s3
        return {
            "aws_access_key_id": os.environ[s3.key_env],
            "aws_secret_access_key": os.environ[s3.secret_env],
            "aws_endpoint": s3.endpoint_url or "",
            "aws_region": s3.region_name,
            "allow_http": "true",
        }

    # ---- reading ---------------------------------------------------------------------------
    def open(self, key: str, mode: str = "rb"):
        """A file object on the checked descriptor (local) or fsspec's (S3)."""
        writing = any(c in mode for c in "wax+")
        action = "write" if writing else "read"
        parts, key = self._resolve(key, action, mutating=writing)
        if not self.local:
            return self.fs.open(self._full(parts), mode)
        flags = _flags(mode)
        if not parts:
            raise IsADirectoryError(f"{self.root}: the store's root is a folder")
        with self._guarded(action, key):
            fd = self._disk.open(parts, flags)
        handle = open(fd, mode.replace("x", "w"))
        raw = handle if isinstance(handle, io.RawIOBase) else getattr(handle, "buffer", handle).raw
        raw.name = key  # libraries name the file by it in their errors (PyAV), not by a descriptor number
        return handle

    def read_bytes(self, key: str) -> bytes:
        parts, key = self._resolve(key, "read", mutating=False)
        if not self.local:
            return self.fs.cat_file(self._full(parts))
        if not parts:
            raise IsADirectoryError(f"{self.root}: the store's root is a folder")
        with self._guarded("read", key):
            fd = self._disk.open(parts, os.O_RDONLY)
        with open(fd, "rb") as handle:
            return handle.read()

    def read_text(self, key: str) -> str:
        return self.read_bytes(key).decode()

    def _stat(self, key, action: str = "read") -> os.stat_result | None:
        parts, key = self._resolve(key, action, mutating=False)
        with self._guarded(action, key):
            return self._disk.lstat(parts)

    def exists(self, key: str) -> bool:
        if not self.local:
            return self.fs.exists(self._full(self._resolve(key, "read", mutating=False)[0]))
        return self._stat(key) is not None

    def isdir(self, key: str) -> bool:
        if not self.local:
            return self.fs.isdir(self._full(self._resolve(key, "read", mutating=False)[0]))
        info = self._stat(key)
        return info is not None and stat.S_ISDIR(info.st_mode)

    def size(self, key: str) -> int:
        if not self.local:
            return self.fs.size(self._full(self._resolve(key, "read", mutating=False)[0]))
        info = self._stat(key)
        if info is None:
            raise FileNotFoundError(f"{self.root}: no {describe(key)!r}")
        return info.st_size

    def modified(self, key: str) -> datetime:
        """When a file was last written (UTC): the clock of objects that carry no time of their own."""
        if not self.local:
            stamp = self.fs.modified(self._full(self._resolve(key, "read", mutating=False)[0]))
            return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)
        info = self._stat(key)
        if info is None:
            raise FileNotFoundError(f"{self.root}: no {describe(key)!r}")
        return datetime.fromtimestamp(info.st_mtime, timezone.utc)

    def sha256(self, key: str) -> str:
        digest = hashlib.sha256()
        with self.open(key) as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    def _members(self, prefix, recursive: bool) -> list[str]:
        parts, prefix = self._resolve(prefix, "list", mutating=False)
        if not self.local:
            top = self._full(parts)
            if not self.fs.exists(top):
                return []
            found = self.fs.find(top) if recursive else self.fs.ls(top, detail=False)
            return sorted(self.key(p) for p in found)
        with self._guarded("list", prefix):
            info = self._disk.lstat(parts)
            if info is None:
                return []
            if not stat.S_ISDIR(info.st_mode):
                return ["/".join(parts)]
            if recursive:
                members = [where for where, member in self._disk.scan(parts) if not stat.S_ISDIR(member.st_mode)]
            else:
                members = [where for where, _ in self._disk.children(parts)]
        return sorted("/".join(where) for where in members)

    def walk(self, prefix: str = "") -> Iterator[str]:
        """Keys of every file under a prefix, sorted, so runs are reproducible."""
        return iter(self._members(prefix, recursive=True))

    def ls(self, prefix: str = "") -> list[str]:
        """Keys of the direct children of a prefix (files and folders), sorted."""
        return self._members(prefix, recursive=False)

    # ---- writing ---------------------------------------------------------------------------
    def write_bytes(self, key: str, data: bytes) -> str:
        """Write atomically (temporary name, then rename); return the sha256 of the data."""
        parts, key = self._resolve(key, "write", mutating=True)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"write_bytes takes bytes, not {type(data).__name__}")
        if self.local:
            with self._guarded("write", key):
                self._disk.write(parts, data)
        else:
            full = self._full(parts)
            self.fs.makedirs(posixpath.dirname(full), exist_ok=True)
            self.fs.pipe_file(full, bytes(data))
        return hashlib.sha256(data).hexdigest()

    def write_text(self, key: str, text: str) -> str:
        _, key = self._resolve(key, "write", mutating=True)  # a refused key is refused before the text is looked at
        return self.write_bytes(key, text.encode())

    def makedirs(self, key: str) -> None:
        """Make a folder and its parents inside the region, name by name (no link followed on the way)."""
        parts, key = self._resolve(key, "write", mutating=True)
        if not self.local:
            self.fs.makedirs(self._full(parts), exist_ok=True)
            return
        with self._guarded("write", key):
            os.close(self._disk.folder(parts, create=True))

    def put_file(self, local_path: str, key: str) -> None:
        """Upload a local file in chunks, never holding it in memory; atomic on a local store (a
        temporary name in the same folder, then a move)."""
        if not self.local:
            parts, _ = self._resolve(key, "write", mutating=True)
            full = self._full(parts)
            self.fs.makedirs(posixpath.dirname(full), exist_ok=True)
            self.fs.put_file(local_path, full)
            return
        if posixpath.dirname(key):
            self.makedirs(posixpath.dirname(key))  # as write_bytes does: the folder may not exist yet
        temporary = f"{key}.tmp-{uuid.uuid4().hex}"
        with open(local_path, "rb") as source, self.open(temporary, "wb") as target:
            shutil.copyfileobj(source, target, 1 << 20)
        self.move(temporary, key)

    def _transfer(self, action: str, src: str, dst: str, to: RegionStore | None) -> None:
        source, src = self._resolve(src, action, mutating=action == "move")
        target = self if to is None else to
        if not isinstance(target, RegionStore) or target.region != self.region or target._root != self._root:
            where = target.region if isinstance(target, RegionStore) else describe(target)
            reached = f"region {target.region!r}" if isinstance(target, RegionStore) else "something that is not a region's store"
            self._refuse(action, f"{describe(dst)} -> {where}", reached)
        destination, dst = self._resolve(dst, action, mutating=True)

        def record():
            self.audit.append(self.actor, action, describe(src), None, to=describe(dst))

        if self.local:
            with self._guarded(action, src, to=describe(dst)):
                (self._disk.copy if action == "copy" else self._disk.move)(source, destination, record)
            return
        full_source, full_destination = self._full(source), self._full(destination)
        recursive = self.fs.isdir(full_source)
        record()
        self.fs.makedirs(posixpath.dirname(full_destination), exist_ok=True)
        (self.fs.copy if action == "copy" else self.fs.mv)(full_source, full_destination, recursive=recursive)

    def copy(self, src: str, dst: str, to: RegionStore | None = None) -> None:
        """Copy within this region; a destination in another region's store is refused."""
        self._transfer("copy", src, dst, to)

    def move(self, src: str, dst: str, to: RegionStore | None = None) -> None:
        """Move within this region; a destination in another region's store is refused."""
        self._transfer("move", src, dst, to)

    def link(self, src: str, dst: str) -> None:
        """Give a file a second name in this region, if it has none there yet.

        A copy, not a hard link: a file with two names is what the guard refuses, since the
        other name of a hard link may lie in another region."""
        (source, src), (destination, dst) = self._resolve(src, "copy", mutating=False), self._resolve(dst, "write", mutating=True)
        if not self.local:
            full = self._full(destination)
            if not self.fs.exists(full):
                self.fs.makedirs(posixpath.dirname(full), exist_ok=True)
                self.fs.copy(self._full(source), full)
            return
        with self._guarded("copy", src, to=describe(dst)):
            if self._disk.lstat(destination) is None:
                self._disk.copy(source, destination, lambda: None)

    def delete(self, key: str, reason: str = "", recorded_as: str | None = None) -> None:
        """Delete a file or folder; recorded in the audit log first (retention is a legal duty).

        ``recorded_as`` is the name the record gives it: ingest names landing files by their
        pseudonymous path, so that no VIN reaches the log."""
        parts, key = self._resolve(key, "delete", mutating=True)

        def record(digest: str | None, files: int) -> None:
            extra = {} if digest is not None else {"files": files}
            self.audit.append(self.actor, "delete", describe(recorded_as or key), digest, reason=reason, **extra)

        if self.local:
            with self._guarded("delete", key):
                self._disk.delete(parts, record)
            return
        full = self._full(parts)
        if not self.fs.exists(full):
            return
        if self.fs.isfile(full):
            record(self.sha256(key), 1)
        else:
            record(None, len(self.fs.find(full)))
        self.fs.rm(full, recursive=True)
