"""Ingest: every file in a region's landing zone ends up cataloged, quarantined or a duplicate.

Per camera file: sha256, container/codec probe, frame count and PTS, SEI telemetry from packets,
metadata (event.json or sidecar), keyed-hash vehicle pseudonym, consent, region and restricted-zone
checks on the precise positions, then positions coarsened per policy before anything is stored.
Files are read in bounded chunks (hashing, demuxing, decoding), never whole.

Truncated files: a fragmented file cut short keeps its decodable prefix as it is. A car's file cut
short (mdat, no moov: a pulled drive) is rebuilt from the NAL units in its mdat, with SPS/PPS from
the stream itself or from the nearest earlier complete file of the same camera and vehicle; the
rebuilt file becomes the clip's raw media and the uploaded bytes stay under
``raw/truncated/<sha256>.mp4`` (:func:`truncated_original`).

Where the bytes go: landing/ is a drop zone. Accepted bytes get their one name in raw/, bytes
set aside for a reason a person can fix get theirs in quarantine/<reason>/<sha256>/ (with the
upload's metadata file and a reason.json), and bytes whose reason keeps nothing (no consent,
wrong region: ``regions.R.retention.quarantine`` at 0 h) get none: the arrival row and the audit
record are all that stays. Once the run's arrivals are committed, :func:`curation.retention.release_landing`
removes their landing names (every copy when it was the last), so a crash before that loses nothing.

Crash safety: rows are committed in batches in the order frames -> clips -> arrivals, and a run
starts by deleting clips without an arrival and frames without a clip; arrivals are keyed by
(source, sha256), so a rerun after a kill at any point converges to the catalog of one clean run.

Example:
    >>> summary = ingest(RegionStore(params, "cn"), "landing", params.ingest)   # doctest: +SKIP
    >>> summary["run"]["seen"] == summary["run"]["cataloged"] + ...              # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from fractions import Fraction

import av
import numpy as np
from tqdm import tqdm

from curation.errors import IngestError
from curation.media.mp4 import needs_rebuild, rebuild, scan, tiles, video_avcc
from curation.media.video import Probe, probe
from curation.policy.params import IngestParams, RegionPolicy
from curation.policy.zones import coarsen
from curation.retention import masked, quarantine_folder, raw_key, release_landing, truncated_original
from curation.sources.sei import AUTOPILOT
from curation.sources.teslacam import Upload, discover, parse_stamp, read_event_json, read_sidecar
from curation.storage import keys
from curation.storage.catalog import Catalog
from curation.storage.records import Arrival, Clip, Frame, to_table
from curation.storage.store import RegionStore

__all__ = ["ingest", "pseudonym_key", "truncated_original"]

def pseudonym_key(store: RegionStore) -> bytes:
    """The region's secret for vehicle pseudonyms, kept outside the store (curation/storage/keys.py)."""
    return keys.pseudonym_key(store)


@dataclass
class _Batch:
    frames: list[dict] = field(default_factory=list)
    clips: list[Clip] = field(default_factory=list)
    arrivals: list[Arrival] = field(default_factory=list)

    def commit(self, catalog: Catalog) -> None:
        # Order matters for crash safety: an arrival is the commit marker of its clip and frames.
        if self.frames:
            columns = {k: np.concatenate([f[k] for f in self.frames]) for k in self.frames[0]}
            catalog.table("frames").add(to_table(Frame, columns))
        if self.clips:
            catalog.table("clips").add(to_table(Clip, self.clips))
        if self.arrivals:
            catalog.table("arrivals").add(to_table(Arrival, self.arrivals))
        self.frames, self.clips, self.arrivals = [], [], []


def _drop_orphans(catalog: Catalog) -> None:
    """Undo the partial commit of a killed run (rows written before their arrival marker)."""
    marked = set(catalog.read("arrivals", ["clip_id"], "clip_id IS NOT NULL").column("clip_id").to_pylist())
    clips = set(catalog.read("clips", ["clip_id"]).column("clip_id").to_pylist())
    for orphan in sorted(clips - marked):
        catalog.table("clips").delete(f"clip_id = '{orphan}'")
    frame_clips = set(catalog.read("frames", ["clip_id"]).column("clip_id").unique().to_pylist())
    for orphan in sorted(frame_clips - (clips & marked)):
        catalog.table("frames").delete(f"clip_id = '{orphan}'")


class _Ingest:
    def __init__(self, store: RegionStore, landing: str, config: IngestParams, uploads: list[Upload] = ()):
        self.store, self.landing, self.config = store, landing, config
        self.policy: RegionPolicy = store.policy
        self.secret = pseudonym_key(store)
        self._consent: dict[str, bool] = {}
        # Candidate references for a cut file: TeslaCam files of the same vehicle and camera, newest first.
        self._cameras: dict[tuple[str, str], list[Upload]] = {}
        for other in sorted(uploads, key=_file_stamp, reverse=True):
            if other.layout != "sidecar":
                self._cameras.setdefault((other.vehicle_id, other.camera), []).append(other)

    # ---- metadata ----------------------------------------------------------------------------
    def consent(self, upload: Upload, sidecar: dict | None) -> bool:
        if sidecar is not None and "consent" in sidecar:
            return bool(sidecar["consent"])
        if upload.vehicle_id not in self._consent:
            key = f"{self.landing}/{upload.vehicle_id}/consent.json"
            try:
                document = json.loads(self.store.read_bytes(key)) if self.store.exists(key) else {}
            except (json.JSONDecodeError, UnicodeDecodeError):
                document = {}
            self._consent[upload.vehicle_id] = document.get("exterior_recording_consent") is True
        return self._consent[upload.vehicle_id]

    def _vehicle(self, key: str) -> tuple[str, str]:
        """(vehicle folder, rest) of a landing key: the folder is the VIN."""
        vehicle, _, rest = key.removeprefix(self.landing + "/").partition("/")
        return vehicle, rest

    def masked(self, key: str) -> str:
        """A landing key with the vehicle folder (a VIN) replaced by its pseudonym."""
        return masked(self.secret, self.landing, key)

    def mask_text(self, text: str, key: str) -> str:
        """Replace the VIN of a landing key wherever it appears in a message."""
        vehicle, _ = self._vehicle(key)
        return text.replace(vehicle, keys.pseudonym(self.secret, vehicle)) if vehicle else text

    def groundtruth(self, upload: Upload, event_id: str) -> str | None:
        """Copy the simulator's ground truth into the raw zone under the event's pseudonymous id."""
        folder = upload.key.rsplit("/", 1)[0]
        stem = upload.key.rsplit("/", 1)[1].rsplit("-", 1)[0] if upload.layout in ("recent", "sidecar") else None
        candidate = f"{folder}/groundtruth.jsonl" if stem is None else f"{folder}/{stem}-groundtruth.jsonl"
        if not self.store.exists(candidate):
            return None
        target = f"raw/groundtruth/{event_id}.jsonl"
        self.store.link(candidate, target)
        return target

    # ---- truncated files ----------------------------------------------------------------------
    def reference(self, upload: Upload) -> tuple[bytes, Fraction | None, str] | None:
        """(avcC, frame rate, landing key) of the nearest earlier complete file of this camera and vehicle."""
        for other in self._cameras.get((upload.vehicle_id, upload.camera), []):
            if _file_stamp(other) >= _file_stamp(upload):
                continue
            with self.store.open(other.key) as handle:
                boxes = scan(handle)
                record = video_avcc(handle, boxes) if tiles(boxes, self.store.size(other.key)) else None
                if record is not None:
                    handle.seek(0)
                    with av.open(handle) as container:
                        return record, container.streams.video[0].average_rate, other.key
        return None

    def rebuild(self, upload: Upload, handle, boxes, target: str) -> dict:
        """Rebuild a cut car file into ``target``; returns what to record about it."""
        found = self.reference(upload)
        record, fps, key = found if found else (None, None, None)
        result = rebuild(handle, boxes, target, record, fps)
        return {"rebuilt": True, "parameter_sets": result.parameter_sets if result.parameter_sets == "in-band" else self.masked(key),
                "rebuilt_frames": result.frames, "dropped_frames": result.dropped}

    # ---- one file ----------------------------------------------------------------------------
    def clip(self, upload: Upload, sha: str, size: int) -> tuple[Clip, dict, dict]:
        """(clip row, frame rows, notes for the audit log) of one camera file; raises IngestError."""
        event = sidecar = None
        if upload.layout in ("saved", "sentry"):
            event = read_event_json(self.store, upload.metadata_key)
        elif upload.layout == "sidecar":
            sidecar = read_sidecar(self.store, upload.metadata_key)
            if sidecar["region"] != self.store.region:
                raise IngestError("wrong_region", f"sidecar says region {sidecar['region']!r}, uploaded to {self.store.region!r}")
        consent = self.consent(upload, sidecar)
        if self.policy.require.consent and not consent:
            raise IngestError("no_consent", f"vehicle has no exterior recording consent; region {self.store.region} requires it")
        with self.store.open(upload.key) as handle, tempfile.TemporaryDirectory(prefix="curation-ingest-") as scratch:
            boxes = scan(handle)
            rebuilt, notes = None, {}
            if needs_rebuild(boxes):
                rebuilt = f"{scratch}/rebuilt.mp4"
                notes = self.rebuild(upload, handle, boxes, rebuilt)
            handle.seek(0)
            try:
                info = probe(rebuilt or (self.store.uri(upload.key) if self.store.local else handle))
            except av.error.FFmpegError as error:
                raise IngestError("undecodable", f"cannot open as video ({error})") from None
            keep, truncated = self.frames_to_keep(info, rebuilt is not None)
            clip, frames = self.rows(upload, info, keep, sha, size, consent, event, sidecar, truncated)
            if rebuilt:
                self.store.put_file(rebuilt, clip.source_uri)
                self.store.link(upload.key, truncated_original(sha))
                notes["original"] = truncated_original(sha)
            else:
                self.store.link(upload.key, clip.source_uri)
        return clip, frames, notes

    def frames_to_keep(self, info: Probe, rebuilt: bool) -> tuple[int, bool]:
        """(frames, truncated): all of a sound file, or the decodable prefix of a cut one if long enough."""
        if info.codec != "h264":
            raise IngestError("unsupported_codec", f"codec {info.codec}, expected h264")
        keep, truncated = info.frames, rebuilt
        if info.error or not info.complete or info.decodable < info.frames:
            if not info.decodable:
                raise IngestError("truncated" if rebuilt else "undecodable",
                                  f"no frame decodes{' after the rebuild from mdat' if rebuilt else ''} ({info.error})")
            if info.complete and not rebuilt:
                raise IngestError("undecodable", f"{info.decodable} of {info.frames} frames decode ({info.error})")
            keep, truncated = info.decodable, True
        if truncated and keep / info.fps < self.config.min_truncated_seconds:
            raise IngestError("truncated", f"decodable prefix {keep / info.fps:.2f} s < {self.config.min_truncated_seconds} s")
        return keep, truncated

    def rows(self, upload: Upload, info: Probe, keep: int, sha: str, size: int, consent: bool, event: dict | None, sidecar: dict | None,
             truncated: bool) -> tuple[Clip, dict]:
        seconds = info.seconds[:keep]
        lat, lon, telemetry = self.positions(upload, info.telemetry[:keep], seconds, event, sidecar)
        fixes = ~np.isnan(lat)
        if not fixes.any():
            raise IngestError("no_position", "no SEI, event.json or sidecar position: cannot check the region")
        outside = ~self.policy.territory.contains(lat[fixes], lon[fixes])
        if outside.any():
            raise IngestError("wrong_region", f"{int(outside.sum())} of {int(fixes.sum())} positions outside region {self.store.region}")
        zones = self.policy.zones.zones_at(lat, lon)
        lat_c, lon_c = coarsen(lat, lon, self.policy.gps_precision_m)
        start = sidecar["start_time"] if sidecar else parse_stamp(_file_stamp(upload), self.policy.locale.timezone)
        times = [start + timedelta(seconds=float(s)) for s in seconds]
        vehicle = keys.pseudonym(self.secret, upload.vehicle_id)
        event_stamp = upload.stamp if upload.layout != "sidecar" else upload.stamp.rsplit("-", 1)[0]
        event_id = keys.pseudonym(self.secret, f"{upload.vehicle_id}/{upload.layout}/{event_stamp}")
        # The raw zone names files by content: no VIN in any path the catalog points to.
        raw = raw_key(sha)
        clip = Clip(
            clip_id=sha, event_id=event_id, vehicle=vehicle,
            camera=upload.camera, layout=upload.layout, start_time=start, duration_s=round(keep / info.fps, 4), fps=info.fps,
            frames=keep, width=info.width, height=info.height, codec=info.codec, size_bytes=size, sha256=sha,
            source_uri=raw,
            trigger=str(event["reason"]) if event else (sidecar["trigger"] if sidecar else "recent_clips"),
            consent=consent, truncated=truncated, has_sei=any(t is not None for t in info.telemetry[:keep]),
            zone_frames=int((zones != None).sum()), groundtruth_uri=self.groundtruth(upload, event_id), status="cataloged",  # noqa: E711
        )
        frames = {
            "clip_id": np.full(keep, sha, dtype=object), "index": np.arange(keep), "pts": info.pts[:keep],
            "time": times, "lat": np.where(fixes, lat_c, np.nan), "lon": np.where(fixes, lon_c, np.nan),
            **telemetry, "zone": zones,
        }
        frames["lat"] = [None if math.isnan(v) else float(v) for v in frames["lat"]]
        frames["lon"] = [None if math.isnan(v) else float(v) for v in frames["lon"]]
        return clip, frames

    def positions(self, upload: Upload, telemetry: list, seconds: np.ndarray, event: dict | None, sidecar: dict | None):
        n = len(seconds)
        lat, lon = np.full(n, np.nan), np.full(n, np.nan)
        columns = {"speed_mps": [None] * n, "heading_deg": [None] * n, "brake": [None] * n, "autopilot": [None] * n}
        if any(t is not None for t in telemetry):
            for i, t in enumerate(telemetry):
                if t is None:
                    continue
                if (t.latitude_deg, t.longitude_deg) != (0.0, 0.0):  # (0, 0) means no fix
                    lat[i], lon[i] = t.latitude_deg, t.longitude_deg
                columns["speed_mps"][i], columns["heading_deg"][i] = t.vehicle_speed_mps, t.heading_deg
                columns["brake"][i] = t.brake_applied
                columns["autopilot"][i] = AUTOPILOT[t.autopilot_state] if t.autopilot_state < len(AUTOPILOT) else str(t.autopilot_state)
        elif sidecar and sidecar.get("track"):
            track = sidecar["track"]
            ts = np.array([p["t"] for p in track])
            lat, lon = np.interp(seconds, ts, [p["lat"] for p in track]), np.interp(seconds, ts, [p["lon"] for p in track])
            if all("speed_mps" in p for p in track):
                columns["speed_mps"] = np.interp(seconds, ts, [p["speed_mps"] for p in track]).tolist()
        elif event:
            lat[:], lon[:] = event["est_lat"], event["est_lon"]
        return lat, lon, columns


def _file_stamp(upload: Upload) -> str:
    return upload.key.rsplit("/", 1)[1][:19]


def _quarantine(store: RegionStore, key: str, landing_key: str, sha: str, reason: str, detail: str, metadata: str | None) -> None:
    """Set the bytes aside for a person, with the upload's metadata file, unless the region keeps none for this reason."""
    if store.policy.retention.quarantine_hours(reason) == 0:
        return  # no consent, wrong region: only the arrival is recorded; release_landing erases the upload
    folder = quarantine_folder(reason, sha)
    store.link(landing_key, f"{folder}/{key.rsplit('/', 1)[1]}")
    if metadata and metadata != landing_key and store.exists(metadata):
        store.link(metadata, f"{folder}/{metadata.rsplit('/', 1)[1]}")
    store.write_text(f"{folder}/reason.json", json.dumps({"reason": reason, "detail": detail, "source_uri": key, "sha256": sha,
                                                           "time": datetime.now(timezone.utc).isoformat()}, indent=1))


def ingest(store: RegionStore, landing: str, config: IngestParams, progress: bool = True) -> dict:
    """Bring every new file under ``landing`` into the catalog or quarantine; returns the summary.

    Catalog, audit log and quarantine name files by their landing path with the vehicle folder
    replaced by its pseudonym; accepted bytes get a content-addressed name in ``raw/``.
    """
    catalog = Catalog(store)
    catalog.table("reviews")  # exists from the start: the review app writes it, later stages depend on it
    _drop_orphans(catalog)
    seen = catalog.read("arrivals", ["source_uri", "sha256"])
    known = set(zip(seen.column("source_uri").to_pylist(), seen.column("sha256").to_pylist()))
    first_of = {}
    for uri, sha in sorted(known):
        first_of.setdefault(sha, uri)
    uploads, strays = discover(store, landing)
    worker = _Ingest(store, landing, config, uploads)
    batch, run, recorded = _Batch(), Counter(), {}
    items = [(u.key, u) for u in uploads] + [(k, None) for k in strays]
    for landing_key, upload in tqdm(sorted(items, key=lambda item: item[0]), desc=f"ingest {store.region}", unit="file", disable=not progress):
        sha, size = store.sha256(landing_key), store.size(landing_key)
        key = worker.masked(landing_key)
        recorded[landing_key] = (sha, key)  # released once committed
        if (key, sha) in known:
            run["already_ingested"] += 1
            continue
        known.add((key, sha))
        if sha in first_of:
            batch.arrivals.append(Arrival(key, sha, size, "duplicate", None, None, None, first_of[sha]))
            store.audit.append(store.actor, "ingest_duplicate", key, sha, duplicate_of=first_of[sha])
            run["duplicates"] += 1
        else:
            first_of[sha] = key
            try:
                if upload is None:
                    raise IngestError("unrecognized_file", "not a TeslaCam camera file, sidecar pair or known companion")
                clip, frames, notes = worker.clip(upload, sha, size)
            except IngestError as error:
                detail = worker.mask_text(str(error), landing_key)
                _quarantine(store, key, landing_key, sha, error.reason, detail, upload.metadata_key if upload else None)
                batch.arrivals.append(Arrival(key, sha, size, "quarantined", error.reason, detail, None, None))
                store.audit.append(store.actor, "quarantine", key, sha, reason=error.reason)
                run["quarantined"] += 1
                run[f"quarantined:{error.reason}"] += 1
            else:
                batch.frames.append(frames)
                batch.clips.append(clip)
                batch.arrivals.append(Arrival(key, sha, size, "cataloged", None, None, sha, None))
                store.audit.append(store.actor, "ingest", key, sha, clip_id=sha, frames=clip.frames, truncated=clip.truncated, **notes)
                run["cataloged"] += 1
        if len(batch.arrivals) >= config.commit_every:
            batch.commit(catalog)
    batch.commit(catalog)
    release_landing(store, landing, recorded, catalog)
    summary = summarize(catalog, store.region, run, len(items))
    # Always present (a DVC out even when nothing was quarantined); what the folders below hold.
    store.write_text("quarantine/summary.json", json.dumps(summary["totals"]["quarantined_by_reason"], indent=1, sort_keys=True))
    return summary


def summarize(catalog: Catalog, region: str, run: Counter | None = None, seen: int | None = None) -> dict:
    """Totals over the whole catalog (and this run's counts when given)."""
    arrivals = catalog.read("arrivals", ["outcome", "reason"])
    outcomes = Counter(arrivals.column("outcome").to_pylist())
    reasons = Counter(r for o, r in zip(arrivals.column("outcome").to_pylist(), arrivals.column("reason").to_pylist()) if o == "quarantined")
    clips = catalog.read("clips", ["duration_s", "truncated", "frames"])
    totals = {
        "arrived": arrivals.num_rows, "cataloged": outcomes["cataloged"], "quarantined": outcomes["quarantined"],
        "duplicates": outcomes["duplicate"], "quarantined_by_reason": dict(sorted(reasons.items())),
        "truncated_kept": int(sum(clips.column("truncated").to_pylist())), "frames": int(sum(clips.column("frames").to_pylist())),
        "hours": round(sum(clips.column("duration_s").to_pylist()) / 3600, 4),
    }
    summary = {"region": region, "totals": totals}
    if run is not None:
        summary["run"] = {"seen": seen, "cataloged": run["cataloged"], "quarantined": run["quarantined"],
                          "duplicates": run["duplicates"], "already_ingested": run["already_ingested"]}
    return summary
