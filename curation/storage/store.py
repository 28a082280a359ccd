"""RegionStore: the only way platform code touches data, and the residency guard.

Every key is resolved and checked against the region's root before any byte moves. A key that
would leave the root (``..``, an absolute path or URL elsewhere, a symlink into another region),
or a copy/move whose destination is another region's store, raises
:class:`~curation.errors.ResidencyViolation` naming both sides and leaves a ``refused`` record in
this region's audit log.

Example:
    >>> store = RegionStore(load_params("params.yaml"), "cn")     # doctest: +SKIP
    >>> store.write_bytes("landing/readme.txt", b"hello")         # doctest: +SKIP
    >>> store.read_bytes("../eu/landing/readme.txt")              # doctest: +SKIP
    Traceback (most recent call last):
    curation.errors.ResidencyViolation: residency violation: read of '../eu/...' from region 'cn' would reach region 'eu'; refused
"""

from __future__ import annotations

import getpass
import hashlib
import os
import posixpath
import shutil
import uuid
from collections.abc import Iterator

import fsspec
from fsspec.implementations.local import LocalFileSystem

from curation.errors import PolicyError, ResidencyViolation
from curation.policy.params import Params, RegionPolicy
from curation.storage.audit import AuditLog

__all__ = ["RegionStore"]

CHUNK = 1 << 20


def _filesystem(name: str, policy: RegionPolicy):
    if not policy.is_s3:
        return LocalFileSystem()
    if policy.s3 is None:
        raise PolicyError(f"regions.{name}.s3: required for store {policy.store}")
    credentials = {}
    for field, variable in (("key", policy.s3.key_env), ("secret", policy.s3.secret_env)):
        if variable not in os.environ:
            raise PolicyError(f"regions.{name}.s3.{field}_env: environment variable {variable} is not set")
        credentials[field] = os.environ[variable]
    client = {"endpoint_url": policy.s3.endpoint_url, "region_name": policy.s3.region_name}
    return fsspec.filesystem("s3", **credentials, client_kwargs=client, skip_instance_cache=True)


class RegionStore:
    """One region's data root (local folder or s3://bucket/prefix), guarded.

    Keys are POSIX paths relative to the root (``landing/v1/clip.mp4``). Absolute paths and URLs
    are accepted only when they point inside the root.
    """

    def __init__(self, params: Params, region: str, actor: str | None = None):
        self.params, self.region = params, region
        self.policy = params.region(region)
        self.fs = _filesystem(region, self.policy)
        self.local = isinstance(self.fs, LocalFileSystem)
        self.root = self.policy.store  # what users see: a path or an s3:// URL
        self._root = self.root.removeprefix("s3://")  # what fsspec wants
        if self.local:
            os.makedirs(self._root, exist_ok=True)
        self.actor = actor or os.environ.get("CURATION_ACTOR") or getpass.getuser()
        self.audit = AuditLog(self.fs, f"{self._root}/audit", region)

    def __repr__(self) -> str:
        return f"RegionStore({self.region!r}, {self.root!r})"

    # ---- the guard -------------------------------------------------------------------------
    def _owner(self, full: str, s3: bool) -> str:
        """Describe who owns a path outside this root: another region, or nobody."""
        for name, policy in self.params.regions.items():
            root = policy.store.removeprefix("s3://")
            if policy.is_s3 == s3 and (full == root or full.startswith(root.rstrip("/") + "/")):
                return f"region {name!r}"
        return "a location outside every region"

    def _refuse(self, action: str, target: str, owner: str):
        self.audit.append(self.actor, "refused", str(target), attempted=action, reached=owner)
        raise ResidencyViolation(self.region, owner, action, str(target))

    def _inside(self, full: str) -> bool:
        return full == self._root or full.startswith(self._root.rstrip("/") + "/")

    def path(self, key: str, action: str = "access") -> str:
        """Resolve a key to the filesystem path, refusing anything outside this region's root."""
        original = key = os.fspath(key)
        if key.startswith("file://"):
            key = key.removeprefix("file://")
            if not self.local:
                self._refuse(action, original, "a local path outside this region's object store")
        elif key.startswith("s3://"):
            if self.local:
                self._refuse(action, original, self._owner(key.removeprefix("s3://"), s3=True))
            key = "/" + key.removeprefix("s3://")  # bucket/prefix form, made absolute for joining
        elif "://" in key:
            self._refuse(action, original, f"another storage scheme ({key.split('://')[0]}://)")
        if self.local:
            full = os.path.normpath(os.path.join(self._root, key))
        else:
            full = posixpath.normpath(posixpath.join("/" + self._root, key)).lstrip("/")
        if not self._inside(full):
            self._refuse(action, original, self._owner(full, s3=not self.local))
        if self.local:
            # Symlinks are followed before deciding: a link inside the root may point anywhere.
            real, real_root = os.path.realpath(full), os.path.realpath(self._root)
            if real != real_root and not real.startswith(real_root + os.sep):
                self._refuse(action, original, self._owner(real, s3=False))
        return full

    def key(self, full: str) -> str:
        """Inverse of :meth:`path`: the key of a full path inside the root."""
        return posixpath.relpath(full.removeprefix("s3://"), self._root)

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
        return self.fs.open(self.path(key, "write" if any(c in mode for c in "wax+") else "read"), mode)

    def read_bytes(self, key: str) -> bytes:
        return self.fs.cat_file(self.path(key, "read"))

    def read_text(self, key: str) -> str:
        return self.read_bytes(key).decode()

    def exists(self, key: str) -> bool:
        return self.fs.exists(self.path(key, "read"))

    def isdir(self, key: str) -> bool:
        return self.fs.isdir(self.path(key, "read"))

    def size(self, key: str) -> int:
        return self.fs.size(self.path(key, "read"))

    def sha256(self, key: str) -> str:
        digest = hashlib.sha256()
        with self.open(key) as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    def walk(self, prefix: str = "") -> Iterator[str]:
        """Keys of every file under a prefix, sorted, so runs are reproducible."""
        top = self.path(prefix or ".", "list")
        if not self.fs.exists(top):
            return iter(())
        return iter(sorted(self.key(p) for p in self.fs.find(top)))

    def ls(self, prefix: str = "") -> list[str]:
        """Keys of the direct children of a prefix (files and folders), sorted."""
        top = self.path(prefix or ".", "list")
        if not self.fs.exists(top):
            return []
        return sorted(self.key(p) for p in self.fs.ls(top, detail=False))

    # ---- writing ---------------------------------------------------------------------------
    def write_bytes(self, key: str, data: bytes) -> str:
        """Write atomically (temporary name, then rename); return the sha256 of the data."""
        full = self.path(key, "write")
        self.fs.makedirs(posixpath.dirname(full), exist_ok=True)
        if self.local:
            temporary = f"{full}.tmp-{uuid.uuid4().hex}"
            with open(temporary, "wb") as handle:
                handle.write(data)
            os.replace(temporary, full)
        else:
            self.fs.pipe_file(full, data)
        return hashlib.sha256(data).hexdigest()

    def write_text(self, key: str, text: str) -> str:
        return self.write_bytes(key, text.encode())

    def put_file(self, local_path: str, key: str) -> None:
        """Upload a local file in chunks (atomically when local), never holding it in memory."""
        full = self.path(key, "write")
        self.fs.makedirs(posixpath.dirname(full), exist_ok=True)
        if self.local:
            temporary = f"{full}.tmp-{uuid.uuid4().hex}"
            shutil.copyfile(local_path, temporary)
            os.replace(temporary, full)
        else:
            self.fs.put_file(local_path, full)

    def _transfer(self, action: str, src: str, dst: str, to: RegionStore | None) -> None:
        source = self.path(src, action)
        target = to or self
        if target.region != self.region or target.root != self.root:
            self._refuse(action, f"{dst} -> {target.region}", f"region {target.region!r}")
        destination = self.path(dst, action)
        self.fs.makedirs(posixpath.dirname(destination), exist_ok=True)
        (self.fs.copy if action == "copy" else self.fs.mv)(source, destination, recursive=self.fs.isdir(source))
        self.audit.append(self.actor, action, src, None, to=dst)

    def copy(self, src: str, dst: str, to: RegionStore | None = None) -> None:
        """Copy within this region; a destination in another region's store is refused."""
        self._transfer("copy", src, dst, to)

    def move(self, src: str, dst: str, to: RegionStore | None = None) -> None:
        """Move within this region; a destination in another region's store is refused."""
        self._transfer("move", src, dst, to)

    def link(self, src: str, dst: str) -> None:
        """Give a file a second name in this region (a hard link when local: no bytes copied)."""
        source, destination = self.path(src, "copy"), self.path(dst, "write")
        if self.fs.exists(destination):
            return
        self.fs.makedirs(posixpath.dirname(destination), exist_ok=True)
        if self.local:
            try:
                os.link(source, destination)
                return
            except OSError:  # another filesystem, or links not allowed
                pass
        self.fs.copy(source, destination)

    def delete(self, key: str, reason: str = "") -> None:
        """Delete a file or folder; recorded in the audit log (retention is a legal duty)."""
        full = self.path(key, "delete")
        if not self.fs.exists(full):
            return
        digest = self.sha256(key) if self.fs.isfile(full) else None
        self.fs.rm(full, recursive=True)
        self.audit.append(self.actor, "delete", key, digest, reason=reason)
