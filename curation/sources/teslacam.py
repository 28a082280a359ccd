"""Find uploads in a landing zone: TeslaCam folders and generic clip + sidecar pairs.

Layouts under ``<vehicle_id>/``::

    TeslaCam/SavedClips/<stamp>/<stamp>-<camera>.mp4 + event.json     (saved)
    TeslaCam/SentryClips/<stamp>/<stamp>-<camera>.mp4 + event.json    (sentry)
    TeslaCam/RecentClips/[YYYY-MM-DD/]<stamp>-<camera>.mp4            (recent, no event.json)
    **/<name>.mp4 + <name>.json                                        (sidecar)

Every other file is either a known companion (event.json, thumb.png, consent.json, ground truth,
the simulator's manifest) or reported as unrecognized: nothing is skipped silently.

Example:
    >>> uploads, strays = discover(store, "landing")      # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import jsonschema

from curation._env import data_file
from curation.errors import IngestError

__all__ = ["Upload", "discover", "read_event_json", "read_sidecar", "SIDECAR_SCHEMA"]

CAMERAS = ("front", "back", "left_repeater", "right_repeater", "left_pillar", "right_pillar")
STAMP = r"\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}"
CAMERA_FILE = re.compile(rf"^({STAMP})-({'|'.join(CAMERAS)})\.mp4$")
COMPANIONS = re.compile(rf"^(event\.json|thumb\.png|consent\.json|groundtruth\.jsonl|{STAMP}-groundtruth\.jsonl)$")
SIDECAR_SCHEMA = json.loads(data_file("curation/sources/sidecar.schema.json").read_text())
_VALIDATOR = jsonschema.Draft202012Validator(SIDECAR_SCHEMA, format_checker=jsonschema.FormatChecker())
EVENT_FIELDS = ("timestamp", "est_lat", "est_lon", "reason")


@dataclass(frozen=True)
class Upload:
    """One camera file that arrived, with where its metadata should be."""

    key: str  # store key of the video
    layout: str  # saved | sentry | recent | sidecar
    vehicle_id: str
    camera: str
    stamp: str  # local time YYYY-MM-DD_HH-MM-SS (TeslaCam) or the sidecar's name
    metadata_key: str | None  # event.json or sidecar JSON

    @property
    def event_key(self) -> str:
        return f"{self.vehicle_id}/{self.layout}/{self.stamp}"


def discover(store, landing: str = "landing") -> tuple[list[Upload], list[str]]:
    """(uploads, unrecognized keys) under the landing prefix, sorted for reproducible runs."""
    keys = list(store.walk(landing))
    present = set(keys)
    uploads, strays = [], []
    for key in keys:
        parts = Path(key).relative_to(landing).parts
        name = parts[-1]
        if len(parts) == 1 and name == "simulation.json":
            continue
        if COMPANIONS.match(name) or (name.endswith(".json") and key[:-5] + ".mp4" in present):
            continue
        upload = _classify(key, parts, present)
        if upload is None:
            strays.append(key)
        else:
            uploads.append(upload)
    return uploads, strays


def _classify(key: str, parts: tuple[str, ...], present: set[str]) -> Upload | None:
    name, vehicle = parts[-1], parts[0]
    sidecar = key[:-4] + ".json"
    if name.endswith(".mp4") and sidecar in present and len(parts) >= 2:
        stem = name[:-4]
        camera = next((c for c in CAMERAS if stem.endswith(f"-{c}")), "unknown")
        return Upload(key, "sidecar", vehicle, camera, stem, sidecar)
    match = CAMERA_FILE.match(name)
    if not match or len(parts) < 4 or parts[1] != "TeslaCam":
        return None
    stamp, camera = match.groups()
    folder = parts[2]
    if folder in ("SavedClips", "SentryClips") and len(parts) == 5 and re.fullmatch(STAMP, parts[3]):
        event_json = str(Path(key).parent / "event.json")
        return Upload(key, "saved" if folder == "SavedClips" else "sentry", vehicle, camera, parts[3], event_json)
    if folder == "RecentClips" and (len(parts) == 4 or (len(parts) == 5 and re.fullmatch(r"\d{4}-\d{2}-\d{2}", parts[3]))):
        return Upload(key, "recent", vehicle, camera, stamp, None)
    return None


def parse_stamp(stamp: str, tz: str) -> datetime:
    """TeslaCam's local-time folder/file stamp as UTC."""
    local = datetime.strptime(stamp, "%Y-%m-%d_%H-%M-%S").replace(tzinfo=ZoneInfo(tz))
    return local.astimezone(timezone.utc)


def read_event_json(store, key: str) -> dict:
    """Tesla's event.json, validated: lat/lon are strings of numbers; raises IngestError."""
    if not store.exists(key):
        raise IngestError("missing_metadata", f"{key} not found")
    try:
        document = json.loads(store.read_bytes(key))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise IngestError("malformed_metadata", f"{key}: not JSON ({error})") from None
    if not isinstance(document, dict):
        raise IngestError("malformed_metadata", f"{key}: expected an object")
    missing = [f for f in EVENT_FIELDS if f not in document]
    if missing:
        raise IngestError("malformed_metadata", f"{key}: missing {', '.join(missing)}")
    try:
        lat, lon = float(document["est_lat"]), float(document["est_lon"])
        datetime.strptime(str(document["timestamp"]), "%Y-%m-%dT%H:%M:%S")
    except (TypeError, ValueError) as error:
        raise IngestError("malformed_metadata", f"{key}: {error}") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise IngestError("malformed_metadata", f"{key}: est_lat/est_lon out of range")
    return {**document, "est_lat": lat, "est_lon": lon}


def read_sidecar(store, key: str) -> dict:
    """A generic sidecar validated against SIDECAR_SCHEMA; raises IngestError."""
    try:
        document = json.loads(store.read_bytes(key))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise IngestError("malformed_metadata", f"{key}: not JSON ({error})") from None
    errors = sorted(_VALIDATOR.iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        problems = "; ".join(f"{'/'.join(str(p) for p in e.absolute_path) or '(top level)'}: {e.message}" for e in errors)
        raise IngestError("malformed_metadata", f"{key}: {problems}")
    try:
        document["start_time"] = datetime.fromisoformat(document["start_time"].replace("Z", "+00:00"))
    except ValueError as error:
        raise IngestError("malformed_metadata", f"{key}: start_time: {error}") from None
    return document
