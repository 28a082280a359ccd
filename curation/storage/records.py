"""The catalog's records: one dataclass per concept, and the Arrow schema derived from it.

A record type is the single definition of a table's columns: LanceDB tables are created from
:func:`schema_of`, rows are built from the dataclass (or, for per-frame tables, column arrays
validated against the same schema).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

__all__ = ["Clip", "Frame", "Arrival", "Redaction", "RedactedClip", "Detection", "Track", "LaneLine", "LabeledClip",
           "FrameEmbedding", "Review", "CuratedFrame", "Deletion", "Vector", "EMBEDDING_DIM",
           "schema_of", "to_table"]

_ARROW = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_(), datetime: pa.timestamp("us", tz="UTC")}
_ARROW_LATE = {"Vector": lambda: pa.list_(pa.float32(), EMBEDDING_DIM)}


@dataclass(frozen=True)
class Clip:
    """One camera file that passed ingest."""

    clip_id: str  # = sha256 of the file's bytes: content addressed, so re-ingest is idempotent
    event_id: str
    vehicle: str  # keyed-hash pseudonym; the VIN never enters the catalog
    camera: str
    layout: str  # saved | sentry | recent | sidecar
    start_time: datetime
    duration_s: float
    fps: float
    frames: int
    width: int
    height: int
    codec: str
    size_bytes: int
    sha256: str
    source_uri: str  # key in the region's store (raw zone)
    trigger: str
    consent: bool
    truncated: bool
    has_sei: bool
    zone_frames: int  # frames whose precise position lies in a restricted zone
    groundtruth_uri: str | None
    status: str  # cataloged


@dataclass(frozen=True)
class Frame:
    """One frame of a clip: timing and telemetry, positions coarsened per policy."""

    clip_id: str
    index: int
    pts: int
    time: datetime
    lat: float | None
    lon: float | None
    speed_mps: float | None
    heading_deg: float | None
    brake: bool | None
    autopilot: str | None
    zone: str | None  # restricted zone id at the precise position, decided before coarsening


@dataclass(frozen=True)
class Arrival:
    """Every file that reached the landing zone, and where it ended up (nothing is lost)."""

    source_uri: str
    sha256: str
    size_bytes: int
    outcome: str  # cataloged | quarantined | duplicate
    reason: str | None  # machine-readable quarantine reason
    detail: str | None
    clip_id: str | None
    duplicate_of: str | None  # source_uri of the first arrival with the same bytes


@dataclass(frozen=True)
class Redaction:
    """What was masked on one frame of one clip, and by what."""

    clip_id: str
    index: int
    pts: int
    boxes: str  # JSON [[x1, y1, x2, y2, class, track], ...] in pixels
    blanked: bool  # restricted zone: the whole frame is black
    detectors: str  # "name:sha256-prefix" of every model file used
    tracker: str
    policy_version: str


@dataclass(frozen=True)
class RedactedClip:
    """The redaction decision for one clip; only status "verified" may reach people or exports."""

    clip_id: str
    status: str  # verified | redaction_failed | dropped_zone | raw_missing
    output_uri: str | None
    output_sha256: str | None
    frames: int
    blanked_frames: int
    face_tracks: int
    plate_tracks: int
    findings: str  # JSON: what verification still found (empty list when verified)
    fingerprint: str  # policy version + model hashes + stage params + masking code: a change re-redacts
    policy_version: str
    verifiers: str  # "name:sha256-prefix@threshold" of the models that verified it
    raw_deleted: bool
    retention_deadline: datetime | None
    redacted_at: datetime


@dataclass(frozen=True)
class Detection:
    """One auto-label box on one sampled frame, in the region's taxonomy."""

    detection_id: str  # <clip_id>:<index>:<n>, what reviews refer to
    clip_id: str
    index: int
    pts: int
    label: str  # taxonomy class
    attrs: str  # JSON {attribute: value}, e.g. {"state": "red"}
    x1: float
    y1: float
    x2: float
    y2: float
    confidence: float
    track: int  # per clip; -1 = not linked
    model_class: str  # the model's own class name, before the class map
    model: str  # "name:sha256-prefix" of the weights file
    trigger: bool  # sampled because of a telemetry trigger (hard braking, autopilot disengaging)


@dataclass(frozen=True)
class Track:
    """Detections of one object linked across a clip's sampled frames."""

    clip_id: str
    track: int
    label: str
    attrs: str  # JSON, the most frequent value of each attribute
    first_pts: int
    last_pts: int
    detections: int
    mean_confidence: float
    min_confidence: float


@dataclass(frozen=True)
class LaneLine:
    """One lane line on one sampled frame, as TuSimple points."""

    clip_id: str
    index: int
    pts: int
    lane: int  # left to right
    type: str  # solid | dashed
    color: str  # white | yellow
    xs: str  # JSON pixel x per row of ys, -2 = not seen
    ys: str  # JSON pixel rows
    confidence: float
    method: str


@dataclass(frozen=True)
class LabeledClip:
    """That a verified redacted clip was labeled, from which bytes and with what (incremental reruns)."""

    clip_id: str
    redacted_sha256: str
    fingerprint: str  # model hash + label params: a change re-labels
    sampled_frames: int
    sampled_indices: str  # JSON frame indices that were labeled (empty frames have no rows elsewhere)
    trigger_frames: int
    detections: int
    tracks: int
    lane_lines: int
    model: str
    labeled_at: datetime


class Vector(tuple):
    """A float32 embedding of EMBEDDING_DIM values (a fixed-size list: LanceDB indexes it)."""


EMBEDDING_DIM = 256


@dataclass(frozen=True)
class FrameEmbedding:
    """Pooled detector features of one labeled frame: near-duplicate search in curate."""

    clip_id: str
    index: int
    vector: Vector


@dataclass(frozen=True)
class Review:
    """One human decision in the review app; curate and redact act on them."""

    review_id: str
    clip_id: str
    index: int | None  # frame; None for a decision on the whole clip
    target: str  # detection | clip | redaction
    target_id: str | None  # detection_id for detection decisions
    decision: str  # accept | reject | fix | missed_face | missed_plate
    before: str  # JSON of what the decision changes (empty object when nothing)
    after: str  # JSON: the corrected box/class, or the box to redact
    reviewer: str
    role: str
    at: datetime
    applied: bool  # manual redactions: true once redact@R has masked it


@dataclass(frozen=True)
class CuratedFrame:
    """A frame chosen for the region's training set, and its split."""

    clip_id: str
    index: int
    pts: int
    split: str  # train | val | test
    scenario: str
    group: str  # frames of one group (vehicle, event, optional map cell) share a split


@dataclass(frozen=True)
class Deletion:
    """Proof that an object is gone from its region: every name and copy, by content hash (retention).

    The audit record ``erase`` with the same sha256 (``audit_seq``) is the tamper-evident twin."""

    sha256: str  # of the bytes erased (footage: the upload's, which is the clip id); a folder: of its file hashes
    kind: str  # landing | raw | quarantine | redacted | datasets | models | reviews
    subject: str  # clip id, pseudonymous landing path, store key or review id
    rule: str  # e.g. "raw 0 h after verified"
    names: str  # JSON: store keys removed
    dvc_cache: int  # objects removed from the region's DVC cache
    dvc_remote: int  # objects removed from the region's DVC remote
    due: datetime
    deleted_at: datetime
    audit_seq: int


def _arrow_type(annotation) -> tuple[pa.DataType, bool]:
    if isinstance(annotation, str):
        if annotation in _ARROW_LATE:
            return _ARROW_LATE[annotation](), False
        annotation = eval(annotation, {"datetime": datetime})  # noqa: S307  (our own annotations only)
    args = typing.get_args(annotation)
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        inner = [a for a in args if a is not type(None)]
        return _ARROW[inner[0]], True
    return _ARROW[annotation], False


def schema_of(record: type) -> pa.Schema:
    fields = []
    for field in dataclasses.fields(record):
        kind, nullable = _arrow_type(field.type)
        fields.append(pa.field(field.name, kind, nullable=nullable))
    return pa.schema(fields)


def to_table(record: type, rows: list | dict) -> pa.Table:
    """Rows (dataclass instances) or columns (name -> sequence) as an Arrow table of the record's schema."""
    schema = schema_of(record)
    if isinstance(rows, dict):
        missing = set(schema.names) - set(rows)
        if missing:
            raise ValueError(f"{record.__name__} columns missing: {sorted(missing)}")
        return pa.table({name: rows[name] for name in schema.names}, schema=schema)
    return pa.Table.from_pylist([dataclasses.asdict(row) for row in rows], schema=schema)
