"""Per-region secrets, kept outside every store: the vehicle pseudonym key and the audit MAC key.

Each comes from ``regions.R.keys`` in params: an environment variable when it is set (hex keys,
newest first, separated by commas), else a key file (hex keys, one a line, newest first; mode
0600). Older keys stay in the ring only to check what they signed (the audit chain across a
rotation). The embedded default keeps the files in ``keys/<region>/`` of the repository (git
ignores it) and creates each on first use; the creation is an audit record carrying the key's
id (a keyed hash of a constant: it names the key without revealing it).

Nothing here ever writes into a store: a key file that resolves into any region's store, or a
store that still holds the old ``secrets/`` folder, stops the platform with one line.

Example:
    >>> ring = load(params, "cn", "pseudonym")          # doctest: +SKIP
    >>> ring.current.hex()[:8], ring.ids[0]             # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path

from curation.errors import PolicyError
from curation.policy.params import KeySource, Params, store_holding

__all__ = ["Keyring", "create", "key_id", "load", "pseudonym", "pseudonym_key", "OLD_SECRETS"]

KEY_BYTES = 32
OLD_SECRETS = "secrets"  # where the pseudonym key used to live, inside the store


def key_id(key: bytes) -> str:
    """A short public name of a key: a keyed hash of a constant, so it reveals nothing of the key."""
    return hmac.new(key, b"curation key id", hashlib.sha256).hexdigest()[:16]


@dataclass(frozen=True)
class Keyring:
    """One secret's keys, newest first, and where they came from."""

    name: str
    keys: tuple[bytes, ...]
    origin: str

    @property
    def current(self) -> bytes:
        return self.keys[0]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(key_id(k) for k in self.keys)

    def by_id(self, identifier: str) -> bytes | None:
        return next((k for k in self.keys if key_id(k) == identifier), None)


def _source(params: Params, region: str, name: str) -> KeySource:
    return getattr(params.region(region).keys, name)


def _parse(text: str, origin: str, name: str) -> tuple[bytes, ...]:
    keys = []
    for number, item in enumerate((part.strip() for part in text.replace(",", "\n").splitlines()), start=1):
        if not item:
            continue
        try:
            key = bytes.fromhex(item)
        except ValueError:
            raise PolicyError(f"{origin}: {name} key {number} is not hexadecimal") from None
        if len(key) < KEY_BYTES:
            raise PolicyError(f"{origin}: {name} key {number} has {len(key)} bytes, needs at least {KEY_BYTES}")
        keys.append(key)
    if not keys:
        raise PolicyError(f"{origin}: no {name} key in it")
    return tuple(keys)


def _check_place(params: Params, region: str, name: str, path: Path) -> None:
    holder = store_holding(params, path)
    if holder is not None:
        raise PolicyError(f"{path}: regions.{region}.keys.{name}: the key file lies inside the store of region {holder!r}; "
                          "keys must live outside every store")


def load(params: Params, region: str, name: str) -> Keyring | None:
    """The keyring of ``name`` ("pseudonym" or "audit"), or None when its file does not exist yet."""
    source = _source(params, region, name)
    if source.env and os.environ.get(source.env, "").strip():
        origin = f"environment variable {source.env}"
        return Keyring(name, _parse(os.environ[source.env], origin, name), origin)
    if source.file is None:
        raise PolicyError(f"regions.{region}.keys.{name}: environment variable {source.env} is not set and no key file is named")
    path = Path(source.file)
    _check_place(params, region, name, path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        if not source.create:
            raise PolicyError(f"{path}: regions.{region}.keys.{name}: key file missing (create: false); restore it") from None
        return None
    except OSError as error:
        raise PolicyError(f"{path}: regions.{region}.keys.{name}: cannot read the key file ({error.strerror})") from None
    with open(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise PolicyError(f"{path}: regions.{region}.keys.{name}: not a regular file")
        if info.st_mode & 0o077:
            raise PolicyError(f"{path}: regions.{region}.keys.{name}: readable by others (mode {stat.S_IMODE(info.st_mode):04o}); "
                              "chmod 600 it")
        data = handle.read(1 << 16)
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise PolicyError(f"{path}: {name} key file is not hexadecimal text") from None
    return Keyring(name, _parse(text, str(path), name), str(path))


def create(params: Params, region: str, name: str) -> tuple[Keyring, bool]:
    """Create the key file (mode 0600, atomically: a concurrent creator's key wins if it was first).

    Returns the keyring and whether this call made it (the caller records that in the audit log)."""
    source = _source(params, region, name)
    if source.file is None or not source.create:
        raise PolicyError(f"regions.{region}.keys.{name}: no key and nothing to create (set {source.env} or name a file)")
    path = Path(source.file)
    _check_place(params, region, name, path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with open(fd, "w") as handle:
            handle.write(os.urandom(KEY_BYTES).hex() + "\n")
        try:
            os.link(temporary, path)  # fails if another process created it first: then theirs is the key
            made = True
        except FileExistsError:
            made = False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    ring = load(params, region, name)
    assert ring is not None
    return ring, made


def pseudonym(secret: bytes, value: str) -> str:
    """The keyed hash that stands for a VIN (or an event of it) everywhere outside the landing zone."""
    return hmac.new(secret, value.encode(), hashlib.sha256).hexdigest()[:20]


def pseudonym_key(store) -> bytes:
    """The key of vehicle pseudonyms (HMAC of the VIN) for a store's region; created once, outside the store.

    A missing key file is created only while the region's audit log has no record of an earlier
    one: a new key would give every known vehicle a second pseudonym."""
    params, region = store.params, store.region
    ring = load(params, region, "pseudonym")
    if ring is None:
        history = getattr(store.audit, "records", None)  # an engine worker's audit only collects, its parent checks
        earlier = [r for r in (history() if history else []) if r["action"] == "create_key" and r["detail"].get("key") == "pseudonym"]
        if earlier:
            raise PolicyError(f"{_source(params, region, 'pseudonym').file}: regions.{region}.keys.pseudonym: the key file is "
                              f"missing, but audit record {earlier[-1]['seq']} created it; restore it (README: Keys)")
        ring, made = create(params, region, "pseudonym")
        if made:
            store.audit.append(store.actor, "create_key", "keys:pseudonym", None, key="pseudonym", key_id=ring.ids[0], file=ring.origin)
    return ring.current
