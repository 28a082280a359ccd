"""Retention: one sweep deletes what a region's clocks say is due, every name and copy of it.

The clocks are data (``regions.R.retention`` in params.yaml, hours; 0 = at once, null = no clock):

==========  ==============================================  ==============================================
kind        the clock starts when                           what goes
==========  ==============================================  ==============================================
landing     ingest has recorded the arrival (the upload's   the landing name; its event.json, thumb.png,
            time: the file's modification time)             ground truth and sidecar once no camera file
                                                            of the event is left (consent.json stays)
raw         the clip's redaction is settled (verified or    raw/<sha[:2]>/<sha>.mp4, raw/truncated/<sha>.mp4
            dropped; a failed one waits for a person)       and any landing name of the same bytes
quarantine  the file was set aside (its reason.json), by    quarantine/<reason>/<sha>/; a reason at 0 h keeps
            reason                                          no bytes at all (ingest never copies them)
redacted    the output was verified                         redacted/<clip>.mp4 (its row says "expired")
datasets    the manifest's created_at                       datasets/<name>/
models      the newest file in models/<name>/               models/<name>/
reviews     the decision was made                           the row of the reviews table
==========  ==============================================  ==============================================

A deletion (:func:`erase`) also removes the DVC cache objects of those files from the region's
cache (``<store>/dvc/cache/files/md5/<2>/<30>``, :mod:`curation.policy.caches`) and the region's DVC
remote, and every ``.dir`` object that lists one, unless a file that stays has the same bytes.
Then it writes ONE audit record ``erase`` (the object's sha256, every name with its sha256, the
object counts) and one ``deletions`` row pointing at it: the proof a regulator checks against the
catalog. The store's own ``delete`` record comes before it for each name.

Stages call it: ingest@R (:func:`release_landing`, once the arrivals are committed), redact@R
(:func:`retire` when a clip's redaction is settled, :func:`sweep` at its end). Time passing changes
no DVC dependency, so a person or a cron job on the region's machines runs
``curation retention sweep --region R``; ``curation retention report`` lists what is due and when.

Example:
    >>> done = sweep(RegionStore(params, "eu"), dry_run=True)     # doctest: +SKIP
    >>> [(d.kind, d.deadline) for d in done]                     # doctest: +SKIP
"""

from __future__ import annotations

import functools
import hashlib
import json
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from curation.policy.caches import CACHE, SITE
from curation.sources.teslacam import COMPANIONS
from curation.storage import keys
from curation.storage.catalog import Catalog
from curation.storage.records import Deletion, to_table
from curation.storage.store import RegionStore

__all__ = ["Due", "erase", "masked", "quarantine_folder", "raw_deadline", "raw_key", "release_landing", "retire", "schedule", "sweep",
           "truncated_original"]

LANDING = "landing"
KINDS = ("landing", "raw", "quarantine", "redacted", "datasets", "models", "reviews")
_STAMPED = re.compile(r"^(\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2})-groundtruth\.jsonl$")


# ---- where footage lives (content-addressed: no VIN in any name) -------------------------------
def raw_key(sha: str) -> str:
    """A cataloged clip's raw media (for a rebuilt clip, the rebuilt file), named by the upload's sha256."""
    return f"raw/{sha[:2]}/{sha}.mp4"


def truncated_original(sha: str) -> str:
    """Where the uploaded bytes of a rebuilt (truncated) clip stay: raw media, on the raw clock."""
    return f"raw/truncated/{sha}.mp4"


def quarantine_folder(reason: str, sha: str) -> str:
    return f"quarantine/{reason}/{sha}"


def masked(secret: bytes, landing: str, key: str) -> str:
    """A landing key with the vehicle folder (a VIN) replaced by its pseudonym: how the catalog names it."""
    vehicle, _, rest = key.removeprefix(landing + "/").partition("/")
    return f"{landing}/{keys.pseudonym(secret, vehicle)}/{rest}" if rest else key


def _hours(value: float | None) -> str:
    return "no clock" if value is None else f"{value:g} h"


def raw_deadline(policy, now: datetime) -> tuple[datetime, bool]:
    """(deadline, due at once) of raw media whose redaction was settled ``now``."""
    hours = policy.retention.raw
    return now + timedelta(hours=hours), hours == 0


@dataclass(frozen=True)
class Due:
    """One object on a clock: what it is, which names hold it, when it goes and by which rule."""

    kind: str
    subject: str  # clip id, store key or review id
    sha256: str
    names: tuple[str, ...]  # store keys (files or folders)
    deadline: datetime | None  # None: no clock (kept until a person deletes it)
    rule: str

    def due(self, now: datetime) -> bool:
        return self.deadline is not None and self.deadline <= now


# ---- the region's DVC cache and remote -----------------------------------------------------------
def _cache_object(md5: str) -> str:
    return f"{CACHE}/files/md5/{md5[:2]}/{md5[2:]}"


@functools.lru_cache(maxsize=8)
def _remote(root: str, name: str, store_root: str):
    """The region's DVC remote as DVC's object database, or None when the repository configures none."""
    from dvc.repo import Repo

    config = {"cache": {"dir": str(Path(store_root, CACHE))}, "core": {"site_cache_dir": str(Path(store_root, SITE))}}
    repo = Repo(root, config=config)
    if name not in repo.config["remote"]:
        return None
    return repo.cloud.get_remote_odb(name)


def _listed(document: bytes) -> set[str]:
    """md5s of the files a DVC .dir object lists."""
    try:
        return {entry["md5"] for entry in json.loads(document) if isinstance(entry, dict) and "md5" in entry}
    except (ValueError, TypeError):
        return set()


class _Dvc:
    """Objects of one region in its DVC cache (inside its store, deleted through the guard) and remote."""

    def __init__(self, store: RegionStore):
        self.store = store
        source = store.params.source
        root = Path(source).resolve().parent if source else None
        self.remote = None
        if root is not None and (root / ".dvc").is_dir() and store.local:
            self.remote = _remote(str(root), store.policy.dvc_remote, str(Path(store.root)))

    def erase(self, objects: dict[str, int], leaving: set[str], rule: str) -> tuple[int, int]:
        """Delete the objects (md5 -> size) of files that are going, and the .dir objects listing them,
        from cache and remote; an object whose bytes a staying file also has is kept. Returns the counts."""
        store, remote = self.store, self.remote
        in_cache = {m for m in objects if store.exists(_cache_object(m))}
        in_remote = {m for m in objects if remote is not None and remote.exists(m)}
        if not in_cache | in_remote:
            return 0, 0
        gone = (in_cache | in_remote) - self._kept({m: objects[m] for m in in_cache | in_remote}, leaving)
        cache_dirs = [k for k in store.walk(f"{CACHE}/files/md5") if k.endswith(".dir") and gone & _listed(store.read_bytes(k))]
        remote_dirs = [] if remote is None else [
            oid for oid in remote.all() if oid.endswith(".dir") and gone & _listed(remote.fs.cat_file(remote.oid_to_path(oid)))]
        for oid in sorted(gone & in_remote) + remote_dirs:
            remote.delete(oid)
        for key in [_cache_object(m) for m in sorted(gone & in_cache)] + cache_dirs:
            store.delete(key, reason=f"{rule}: its DVC cache object")
        return len(gone & in_cache) + len(cache_dirs), len(gone & in_remote) + len(remote_dirs)

    def _kept(self, objects: dict[str, int], leaving: set[str]) -> set[str]:
        """md5s among ``objects`` that a file staying in the store also has (same size, then md5)."""
        sizes, kept = set(objects.values()), set()
        for key in self.store.walk(""):
            if key in leaving or key.startswith(("dvc/", "audit/")) or self.store.size(key) not in sizes:
                continue
            md5 = _hashes(self.store, key)[1]
            if md5 in objects:
                kept.add(md5)
        return kept


def _hashes(store: RegionStore, key: str) -> tuple[str, str]:
    """(sha256, md5) of a file, read once in chunks."""
    sha, md5 = hashlib.sha256(), hashlib.md5()  # noqa: S324 - md5 is how DVC names objects, not a security check
    with store.open(key) as handle:
        while chunk := handle.read(1 << 20):
            sha.update(chunk)
            md5.update(chunk)
    return sha.hexdigest(), md5.hexdigest()


# ---- one region's sweep --------------------------------------------------------------------------
class _Region:
    def __init__(self, store: RegionStore, catalog: Catalog | None, now: datetime | None, landing: str = LANDING):
        self.store, self.catalog = store, catalog or Catalog(store)
        self.now = now or datetime.now(timezone.utc)
        self.retention = store.policy.retention
        self.prefix = landing
        self._dvc: _Dvc | None = None
        self._landing: dict[str, list[str]] | None = None
        self._secret: bytes | None = None

    def shown(self, key: str) -> str:
        """How records name a key: a landing path with its vehicle folder (a VIN) as its pseudonym."""
        if not key.startswith(self.prefix + "/"):
            return key
        if self._secret is None:
            self._secret = keys.pseudonym_key(self.store)
        return masked(self._secret, self.prefix, key)

    def delete(self, key: str, reason: str) -> None:
        self.store.delete(key, reason=reason, recorded_as=self.shown(key))

    @property
    def dvc(self) -> _Dvc:
        if self._dvc is None:
            self._dvc = _Dvc(self.store)
        return self._dvc

    def landing_names(self, sha: str) -> list[str]:
        """Landing keys holding recorded arrivals of these bytes (the catalog names them by pseudonym)."""
        if self._landing is None:
            self._landing = {}
            files = list(self.store.walk(self.prefix))
            if files:
                arrivals = self.catalog.read("arrivals", ["source_uri", "sha256"]).to_pylist()
                by_uri = {}
                for a in arrivals:
                    by_uri.setdefault(a["source_uri"], set()).add(a["sha256"])
                for key in files:
                    for candidate in by_uri.get(self.shown(key), ()):
                        self._landing.setdefault(candidate, []).append(key)
        return [k for k in self._landing.get(sha, []) if self.store.exists(k)]

    def other_names(self, sha: str) -> list[str]:
        """Where else than landing/ these bytes are kept (raw, the truncated original, quarantine)."""
        names = [k for k in (raw_key(sha), truncated_original(sha)) if self.store.exists(k)]
        for reason in self._folders("quarantine"):
            if self.store.exists(f"{reason}/{sha}"):
                names.append(f"{reason}/{sha}")
        return names

    # ---- what is on a clock ------------------------------------------------------------------
    def schedule(self, landing: str = LANDING) -> Iterator[Due]:
        yield from (due for due, _ in self.landing(landing))
        for kind in KINDS[1:]:
            yield from getattr(self, f"_{kind}")()

    def _raw(self, clip_id: str | None = None) -> Iterator[Due]:
        only = f" AND subject = '{clip_id}'" if clip_id else ""
        done = {r["subject"] for r in self.catalog.read("deletions", ["subject"], f"kind = 'raw'{only}").to_pylist()}
        where = f"clip_id = '{clip_id}'" if clip_id else None
        sources = {c["clip_id"]: c["source_uri"] for c in self.catalog.read("clips", ["clip_id", "source_uri"], where).to_pylist()}
        for row in self.catalog.read("redacted_clips", ["clip_id", "status", "retention_deadline", "redacted_at"], where).to_pylist():
            clip_id, deadline = row["clip_id"], row["retention_deadline"]
            if clip_id in done or clip_id not in sources or row["status"] == "raw_missing":
                continue
            hours = None if deadline is None else (deadline - row["redacted_at"]).total_seconds() / 3600
            rule = f"raw {_hours(hours)} after {row['status']}" if deadline else f"raw: no clock ({row['status']}: a person decides)"
            yield Due("raw", clip_id, clip_id, (sources[clip_id], truncated_original(clip_id)), deadline, rule)

    def _quarantine(self) -> Iterator[Due]:
        if not self.store.isdir("quarantine"):
            return
        for folder in self.store.ls("quarantine"):
            if not self.store.isdir(folder):
                continue  # summary.json
            reason = posixpath.basename(folder)
            hours = self.retention.quarantine_hours(reason)
            for entry in self.store.ls(folder):
                since, sha = self._set_aside(entry)
                deadline = None if hours is None else since + timedelta(hours=hours)
                yield Due("quarantine", entry, sha, (entry,), deadline, f"quarantine {reason} {_hours(hours)}")

    def _set_aside(self, entry: str) -> tuple[datetime, str]:
        """(when, sha256) of a quarantine entry: its reason.json, else the file itself."""
        note = f"{entry}/reason.json"
        if self.store.exists(note):
            document = json.loads(self.store.read_text(note))
            return datetime.fromisoformat(document["time"]), document["sha256"]
        if self.store.isdir(entry):
            return self.store.modified(entry), posixpath.basename(entry)
        return self.store.modified(entry), self.store.sha256(entry)

    def _redacted(self) -> Iterator[Due]:
        hours = self.retention.redacted
        rows = self.catalog.read("redacted_clips", ["clip_id", "output_uri", "output_sha256", "redacted_at"], "status = 'verified'")
        for row in rows.to_pylist():
            if row["output_uri"] and self.store.exists(row["output_uri"]):
                deadline = None if hours is None else row["redacted_at"] + timedelta(hours=hours)
                yield Due("redacted", row["clip_id"], row["output_sha256"], (row["output_uri"],), deadline, f"redacted {_hours(hours)}")

    def _datasets(self) -> Iterator[Due]:
        hours = self.retention.datasets
        for folder in self._folders("datasets"):
            manifest = f"{folder}/manifest.json"
            if self.store.exists(manifest):
                since, sha = datetime.fromisoformat(json.loads(self.store.read_text(manifest))["created_at"]), self.store.sha256(manifest)
            else:
                since, sha = self._newest(folder), hashlib.sha256(folder.encode()).hexdigest()
            yield Due("datasets", folder, sha, (folder,), None if hours is None else since + timedelta(hours=hours), f"datasets {_hours(hours)}")

    def _models(self) -> Iterator[Due]:
        hours = self.retention.models
        for folder in self._folders("models"):
            weights = f"{folder}/best.pt"
            sha = self.store.sha256(weights) if self.store.exists(weights) else hashlib.sha256(folder.encode()).hexdigest()
            since = self._newest(folder)
            yield Due("models", folder, sha, (folder,), None if hours is None else since + timedelta(hours=hours), f"models {_hours(hours)}")

    def _reviews(self) -> Iterator[Due]:
        hours = self.retention.reviews
        if hours is None:
            return
        for row in self.catalog.read("reviews").to_pylist():
            sha = hashlib.sha256(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()
            yield Due("reviews", row["review_id"], sha, (), row["at"] + timedelta(hours=hours), f"reviews {_hours(hours)}")

    def _folders(self, top: str) -> list[str]:
        return [f for f in self.store.ls(top) if self.store.isdir(f)] if self.store.isdir(top) else []

    def _newest(self, folder: str) -> datetime:
        stamps = [self.store.modified(k) for k in self.store.walk(folder)]
        return max(stamps) if stamps else self.store.modified(folder)

    # ---- deleting ----------------------------------------------------------------------------
    def erase(self, due: Due) -> dict:
        """Delete every name and copy of one object; one audit record and one deletions row prove it."""
        store = self.store
        names = list(due.names) + (self.landing_names(due.sha256) if due.kind == "raw" else [])
        files = [key for name in names for key in store.walk(name)]
        hashed = {key: _hashes(store, key) for key in files}
        cache, remote = self.dvc.erase({md5: store.size(key) for key, (_, md5) in hashed.items()}, set(files), due.rule)
        for key in files:
            self.delete(key, due.rule)
        for name in names:
            if store.exists(name):  # the folders, now empty
                self.delete(name, due.rule)
        if due.kind == "reviews":
            self.catalog.table("reviews").delete(f"review_id = '{due.subject}'")
        removed = [{"key": self.shown(key), "sha256": sha} for key, (sha, _) in hashed.items()]
        record = store.audit.append(store.actor, "erase", due.subject, due.sha256, kind=due.kind, rule=due.rule, names=removed,
                                    dvc_cache=cache, dvc_remote=remote, due=due.deadline.isoformat() if due.deadline else None)
        deletion = Deletion(due.sha256, due.kind, due.subject, due.rule, json.dumps(removed), cache, remote, due.deadline or self.now,
                            self.now, record["seq"])
        self.catalog.table("deletions").add(to_table(Deletion, [deletion]))
        if due.kind == "raw":
            self.catalog.table("redacted_clips").update(where=f"clip_id = '{due.subject}'", values={"raw_deleted": True})
        elif due.kind == "redacted":
            self.catalog.table("redacted_clips").update(where=f"clip_id = '{due.subject}'", values={"status": "expired", "output_uri": None})
        return record

    def landing(self, landing: str, recorded: dict[str, tuple[str, str]] | None = None) -> Iterator[tuple[Due, bool]]:
        """(landing name on its clock, whether its bytes are kept elsewhere) for every recorded arrival in landing/.

        ``recorded`` (landing key -> (sha256, catalog name)) comes from ingest; the sweep finds them
        itself, by their pseudonymous names and their bytes (a new upload at an old name is not recorded)."""
        store = self.store
        arrivals = self.catalog.read("arrivals", ["source_uri", "sha256", "outcome", "reason"]).to_pylist()
        outcomes = {(a["source_uri"], a["sha256"]): (a["outcome"], a["reason"]) for a in arrivals}
        if recorded is None:
            uris = {a["source_uri"] for a in arrivals}
            recorded = {}
            for key in store.walk(landing):
                uri = self.shown(key)
                if uri in uris and (uri, sha := store.sha256(key)) in outcomes:
                    recorded[key] = (sha, uri)
        hours = self.retention.landing
        for key, (sha, uri) in sorted(recorded.items()):
            if not store.exists(key):
                continue
            kept = self.other_names(sha)
            if kept:
                deadline = None if hours is None else store.modified(key) + timedelta(hours=hours)
                yield Due("landing", uri, sha, (key,), deadline, f"landing {_hours(hours)}: bytes kept in {kept[0]}"), True
            else:  # its bytes live nowhere else: their own clock, which ran out (at 0 h ingest kept no copy)
                outcome, reason = outcomes.get((uri, sha), ("recorded", None))
                why = (f"quarantine {reason} {_hours(self.retention.quarantine_hours(reason))}: bytes not kept" if outcome == "quarantined"
                       else f"landing: {outcome}, its bytes are kept nowhere else")
                yield Due("landing", uri, sha, (key,), self.now, why), False

    def release_landing(self, landing: str, recorded: dict[str, tuple[str, str]] | None = None, dry_run: bool = False) -> list[Due]:
        """Remove what is due in landing/ (the name, or every copy when it is the last); returns what went."""
        gone, folders = [], set()
        for due, kept in list(self.landing(landing, recorded)):
            if not due.due(self.now):
                continue
            gone.append(due)
            if dry_run:
                continue
            key = due.names[0]
            if kept:
                self.delete(key, due.rule)
            else:
                self.erase(due)
            folders.add(posixpath.dirname(key))
            sidecar = key[:-4] + ".json"
            if key.endswith(".mp4") and self.store.exists(sidecar):
                self.delete(sidecar, "landing: the sidecar of an upload that left")
        for folder in sorted(folders):
            self._release_companions(folder)
        return gone

    def _release_companions(self, folder: str) -> None:
        """Event files (event.json, thumb.png, ground truth) of a folder whose camera files have all left.

        consent.json stays: it is the vehicle's, for its later uploads."""
        names = [posixpath.basename(k) for k in self.store.ls(folder) if not self.store.isdir(k)] if self.store.isdir(folder) else []
        videos = [n for n in names if n.endswith(".mp4")]
        for name in names:
            if name == "consent.json" or not COMPANIONS.match(name):
                continue
            stamp = _STAMPED.match(name)
            if any(v.startswith(stamp.group(1)) for v in videos) if stamp else videos:
                continue
            self.delete(f"{folder}/{name}", "landing: a companion of uploads that left")


# ---- entry points --------------------------------------------------------------------------------
def schedule(store: RegionStore, now: datetime | None = None, catalog: Catalog | None = None, landing: str = LANDING) -> list[Due]:
    """Every object of the region with a retention rule, due or not (``curation retention report``)."""
    return list(_Region(store, catalog, now, landing).schedule(landing))


def sweep(store: RegionStore, now: datetime | None = None, dry_run: bool = False, catalog: Catalog | None = None,
          landing: str = LANDING) -> list[Due]:
    """Delete everything due in the region (nothing with ``dry_run``); returns what was (would be) deleted."""
    region = _Region(store, catalog, now, landing)
    gone = region.release_landing(landing, dry_run=dry_run)
    due = [d for kind in KINDS[1:] for d in getattr(region, f"_{kind}")() if d.due(region.now)]
    if not dry_run:
        for item in due:
            region.erase(item)
    return gone + due


def retire(store: RegionStore, catalog: Catalog, clip_id: str, now: datetime | None = None) -> bool:
    """Erase one clip's raw media if its deadline has come (redact@R, right after its row is written)."""
    region = _Region(store, catalog, now)
    for item in region._raw(clip_id):
        if item.due(region.now):
            region.erase(item)
            return True
    return False


def release_landing(store: RegionStore, landing: str, recorded: dict[str, tuple[str, str]], catalog: Catalog | None = None,
                    now: datetime | None = None) -> list[Due]:
    """ingest@R, once its arrivals are committed: ``recorded`` maps landing key -> (sha256, catalog name)."""
    return _Region(store, catalog, now, landing).release_landing(landing, recorded)


def erase(store: RegionStore, due: Due, catalog: Catalog | None = None, now: datetime | None = None) -> dict:
    """Delete one object everywhere in its region and record the proof; returns the audit record."""
    return _Region(store, catalog, now).erase(due)
