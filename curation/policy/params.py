"""params.yaml: the single source of every jurisdiction rule and stage setting.

Loading validates everything a stage would otherwise trip over later: unknown keys (typos get a
suggestion), missing fields, overlapping region stores, zone files that are not GeoJSON. Each
problem becomes one :class:`PolicyError` line that names the file and the key.

Example:
    >>> params = load_params("params.yaml")          # doctest: +SKIP
    >>> params.regions["cn"].redact.min_face_px     # doctest: +SKIP
    32
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from curation.errors import PolicyError
from curation.policy.zones import Zones, load_zones

__all__ = ["EngineParams", "Params", "QUARANTINE_REASONS", "RegionPolicy", "Retention", "load_params", "store_holding"]

RegionName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,15}$")]
EnvName = Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class Strict(BaseModel):
    """Unknown keys are errors: a typo must never silently fall back to a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _resolve(value: str | Path, info: ValidationInfo) -> Path:
    """Relative paths in params are relative to the params file's folder."""
    path = Path(value).expanduser()
    base = (info.context or {}).get("base", Path.cwd())
    return path if path.is_absolute() else Path(base, path).resolve()


class S3Access(Strict):
    """Where an s3:// store lives and the NAMES of the environment variables holding its keys."""

    endpoint_url: str | None = None
    key_env: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$")
    secret_env: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$")
    region_name: str = "us-east-1"


class KeySource(Strict):
    """Where one per-region secret comes from (read by curation/storage/keys.py, never stored in a store).

    ``env`` wins when that variable is set (hex keys, newest first, separated by commas); otherwise
    ``file`` (hex keys, one a line, newest first). With ``create`` the file is made on first use
    (mode 0600, recorded in the audit log): the embedded default. A deployment sets it false, so a
    lost key stops the platform instead of silently starting a new one.
    """

    env: EnvName | None = None
    file: Path | None = None
    create: bool = True

    _resolve_file = field_validator("file", mode="before")(_resolve)

    @model_validator(mode="after")
    def _somewhere(self) -> "KeySource":
        if self.env is None and self.file is None:
            raise ValueError("name an environment variable (env) or a key file (file)")
        return self


class AuditKeySource(KeySource):
    """The audit MAC key, and where the log's head is anchored (outside the store; a lock file beside it)."""

    anchor: Path

    _resolve_anchor = field_validator("anchor", mode="before")(_resolve)


class RegionKeys(Strict):
    pseudonym: KeySource
    audit: AuditKeySource


def default_keys(region: str, keys: Any) -> Any:
    """regions.R.keys with what it leaves out filled in: env CURATION_<R>_<NAME>_KEY, files in keys/<R>/."""
    if keys is None:
        keys = {}
    if not isinstance(keys, dict):
        return keys
    folder, prefix = f"keys/{region}", f"CURATION_{region.upper()}"
    defaults = {"pseudonym": {"env": f"{prefix}_PSEUDONYM_KEY", "file": f"{folder}/pseudonym.key"},
                "audit": {"env": f"{prefix}_AUDIT_KEY", "file": f"{folder}/audit.key", "anchor": f"{folder}/audit.head"}}
    return {**defaults, **keys}


class RedactPolicy(Strict):
    faces: bool
    plates: bool
    min_face_px: int = Field(gt=0)
    min_plate_px: int = Field(gt=0)
    method: Literal["blur", "pixelate", "fill"]


class ZonePolicy(Strict):
    file: Path
    # blank: frames inside are replaced by black frames (frame count and PTS stay, so labels stay
    # aligned); drop_clip: any frame inside drops the whole clip.
    action: Literal["blank", "drop_clip"]
    # With blank: the whole clip is dropped once more than this share of its frames is inside.
    max_share: Fraction = 1.0

    _resolve_file = field_validator("file", mode="before")(_resolve)


# Why ingest (or a failed re-verification) sets a file aside: the keys of regions.R.retention.quarantine.
QUARANTINE_REASONS = ("undecodable", "truncated", "missing_metadata", "malformed_metadata", "no_consent", "wrong_region",
                      "no_position", "unsupported_codec", "unrecognized_file", "redaction_failed")
Hours = Annotated[float, Field(ge=0)] | None  # 0: at once; None: no clock (kept until a person deletes it)


class Retention(Strict):
    """How long each kind of object may live in the region, in hours; enforced by curation/storage/retention.py.

    Each clock starts when the object's fate is settled: ``landing`` when ingest has recorded the
    arrival (its bytes live on under raw/ or quarantine/, or nowhere), ``raw`` when its redaction is
    settled (verified or dropped; a failed one waits for a person), ``quarantine`` when the file was
    set aside (by reason: 0 means its bytes are never kept, only the arrival record), ``redacted``,
    ``datasets`` and ``models`` when they were written, ``reviews`` when the decision was made.
    """

    landing: Hours = 0
    raw: float = Field(ge=0)  # required, never unlimited: every jurisdiction says how long raw footage may live
    quarantine: dict[Literal[QUARANTINE_REASONS + ("default",)], Hours]  # "default" covers the reasons not named
    redacted: Hours = None
    datasets: Hours = None
    models: Hours = None
    reviews: Hours = None

    @model_validator(mode="after")
    def _quarantine_default(self) -> "Retention":
        if "default" not in self.quarantine:
            raise ValueError("quarantine needs a default (hours for the reasons not named)")
        return self

    def quarantine_hours(self, reason: str) -> float | None:
        return self.quarantine.get(reason, self.quarantine["default"])


class Requirements(Strict):
    consent: bool


class Locale(Strict):
    """What the region's streets look like (for the simulator and the plate detector's training)."""

    plate_style: Literal["cn", "eu", "us"]
    sign_style: Literal["cn", "eu", "us"]
    city: str
    origin: tuple[float, float]  # (lat, lon) that simulated drives start around
    timezone: str


class RegionPolicy(Strict):
    """Everything one jurisdiction requires; see REGULATIONS.md for where each default comes from."""

    store: str
    s3: S3Access | None = None
    keys: RegionKeys  # filled in by default_keys when params.yaml leaves it out
    dvc_remote: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    boundary: Path
    locale: Locale
    redact: RedactPolicy
    restricted_zones: ZonePolicy
    retention: Retention
    require: Requirements
    gps_precision_m: float = Field(gt=0)
    may_leave_region: list[Literal["metrics", "datasets", "models"]]
    export_destinations: list[str] = []
    face_embeddings: bool = False
    bulk_gps_vehicles: int | None = Field(default=None, gt=0)

    _resolve_boundary = field_validator("boundary", mode="before")(_resolve)

    @field_validator("store", mode="before")
    @classmethod
    def _resolve_store(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str):
            return value
        if value.startswith("s3://"):
            return value.rstrip("/")
        if "://" in value:
            raise ValueError(f"store must be a local path or s3://bucket/prefix, got {value!r}")
        return str(_resolve(value, info))

    @property
    def is_s3(self) -> bool:
        return self.store.startswith("s3://")

    @functools.cached_property
    def version(self) -> str:
        """Content hash of the region's rules. Where data and keys live (store, s3, remote, keys), what its streets
        look like (locale, for the simulator) and how long bytes live (retention: it changes no pixel) are not rules, and
        zone and boundary files count by their content, not their path: moving a checkout, or a
        store, keeps the version; editing any rule or polygon changes it."""
        rules = self.model_dump(mode="json", exclude={"store", "s3", "dvc_remote", "keys", "locale", "retention", "boundary", "restricted_zones"})
        rules["restricted_zones"] = {**self.restricted_zones.model_dump(mode="json", exclude={"file"}),
                                     "file_sha256": hashlib.sha256(self.restricted_zones.file.read_bytes()).hexdigest()}
        rules["boundary_sha256"] = hashlib.sha256(self.boundary.read_bytes()).hexdigest()
        return hashlib.sha256(json.dumps(rules, sort_keys=True).encode()).hexdigest()[:12]

    @functools.cached_property
    def zones(self) -> Zones:
        return load_zones(self.restricted_zones.file)

    @functools.cached_property
    def territory(self) -> Zones:
        return load_zones(self.boundary)


class FaultRates(Strict):
    """Shares of simulated uploads that exercise each ingest path."""

    no_consent: Fraction = 0.0  # of vehicles
    zone_crossing: Fraction = 0.0  # of events; the rest stay clear of restricted zones
    wrong_region: Fraction = 0.0
    truncated: Fraction = 0.0  # of events: the drive is pulled while the minute records (every camera cut at one moment)
    corrupt: Fraction = 0.0
    missing_event_json: Fraction = 0.0
    malformed_event_json: Fraction = 0.0
    duplicate: Fraction = 0.0  # the same bytes uploaded again under RecentClips
    sentry: Fraction = 0.0  # parked SentryClips without SEI
    recent: Fraction = 0.0  # RecentClips without event.json
    sidecar: Fraction = 0.0  # generic clip + sidecar JSON instead of TeslaCam
    hard_brake: Fraction = 0.0


class SimulateParams(Strict):
    """The fleet simulator: what a fleet uploader would put in a region's landing zone."""

    seed: int = 0
    vehicles: int = Field(default=3, ge=1)
    events: int = Field(default=2, ge=1)  # per vehicle
    seconds: float = Field(default=4.0, gt=0)
    width: int = Field(default=1280, ge=64, multiple_of=2)
    height: int = Field(default=720, ge=64, multiple_of=2)
    fps: float = Field(default=10.0, gt=0, le=60)
    cameras: tuple[Literal["front", "back", "left_repeater", "right_repeater", "left_pillar", "right_pillar"], ...] = ("front", "back")
    pedestrians: int = Field(default=6, ge=0)
    vehicles_in_scene: int = Field(default=4, ge=0)
    rates: FaultRates = FaultRates()


class IngestParams(Strict):
    """Ingest: landing zone -> catalog | quarantine."""

    min_truncated_seconds: float = Field(default=1.0, ge=0)  # shorter decodable prefixes are quarantined
    commit_every: int = Field(default=16, ge=1)  # files per catalog commit; a crash loses at most this much work


class TrackParams(Strict):
    max_gap: int = Field(default=2, ge=0)  # missed keyframes a track survives
    extend_s: float = Field(default=0.1, ge=0)  # seconds covered before the first and after the last detection
    margin: float = Field(default=0.15, ge=0)
    margin_growth: float = Field(default=0.15, ge=0)
    max_margin: float = Field(default=0.6, ge=0)
    speed_margin: float = Field(default=0.5, ge=0)  # per frame away from a detection, in shares of the motion per frame
    link_reach: float = Field(default=2.0, ge=0)


class RedactionParams(Strict):
    """Stage redact@R and `curation redact`: how detection, tracking, masking and proof run.

    What to redact (faces, plates, minimum sizes, method) is jurisdiction policy: regions.R.redact.
    """

    detect_every_s: float = Field(default=0.2, gt=0)  # full-frame detection interval; walks on crops cover the frames between
    window_s: float = Field(default=1.5, gt=0)  # frames held for backward walks: bounds memory (2896x1876: 16 MB a frame)
    face_threshold: Fraction = 0.3  # low: privacy first
    face_large_threshold: Fraction = 0.6  # faces at least 4x the policy minimum (a car front at 0.46 is no face; verification repairs)
    plate_threshold: Fraction = 0.3
    plate_model: str = "package:fastanpr/best.pt"  # real-trained YOLOv8n (AGPL-3.0); or models/plates.pt, or your own weights
    plate_imgsz: int = Field(default=960, ge=32, multiple_of=32)
    # A second pass of plate_model over the whole frame scaled to this longer side, for plates close to the
    # camera (half a frame wide: found at 320, missed at 960); 0: none. The same for the verifier.
    plate_coarse_imgsz: int = Field(default=320, ge=0, multiple_of=32)
    # A second plate model beside plate_model (their boxes are merged): fastanpr fine-tuned on synthetic
    # CN/EU/US plates, which finds the simulator's drawn plates the real-trained model misses; null: none.
    plate_sim_model: str | None = "models/plates-sim.pt"
    plate_sim_threshold: Fraction = 0.6  # it forgot some real plates, and boxes more else below 0.6 (README)
    track: TrackParams = TrackParams()
    # Verification: other models than redaction's, at least as sensitive (README: how the thresholds were set).
    verify_face_threshold: Fraction = 0.2  # RetinaFace-MobileNet
    verify_plate_model: str = "package:safelicensing/best.pt"  # a separately trained plate YOLOv8n
    verify_plate_threshold: Fraction = 0.4
    verify_plate_imgsz: int = Field(default=960, ge=32, multiple_of=32)
    verify_plate_coarse_imgsz: int = Field(default=320, ge=0, multiple_of=32)
    verify_large_threshold: Fraction = 0.5  # for plates at least twice the policy minimum, faces 4x (as the redactor's own gate)
    verify_huge_face_threshold: Fraction = 0.8  # faces at least 8x the minimum (every face of 96 px and more found at 0.8; arms are not)
    repair: bool = True  # what the verifiers still find is masked and the clip verified again, while each round finds less (8 repairs at most); false: it fails the clip
    crf: int = Field(default=20, ge=0, le=51)
    # x264 preset of the redacted output: ultrafast (with B-frames) encodes 720p in 2.5 ms a frame
    # against 8.5 for veryfast, 0.64 dB less PSNR at the same crf, 21 % fewer bytes (simulated clips).
    preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow"] = "ultrafast"
    device: str = "auto"  # auto: CUDA when present
    # The redactors and the plate verifier on a CPU: auto (OpenVINO in bfloat16 where the CPU computes bfloat16
    # natively, thresholds 0.03 lower; else ONNX Runtime), onnxruntime (float32) or openvino-bf16. RetinaFace: always float32.
    cpu_runtime: Literal["auto", "onnxruntime", "openvino-bf16"] = "auto"


DEFAULT_TAXONOMY = {"vehicle": {}, "pedestrian": {}, "traffic_light": {"state": ["red", "yellow", "green", "off"]},
                    "traffic_sign": {"sign": ["stop", "yield", "speed_limit"]}}
# The bootstrap labeler's classes (models/labeler.pt, curation/perception/scene_data.py NAMES).
BOOTSTRAP_CLASS_MAP = {"vehicle": {"class": "vehicle"}, "pedestrian": {"class": "pedestrian"}, "traffic_light": {"class": "traffic_light"},
                       **{f"sign_{s}": {"class": "traffic_sign", "sign": s} for s in ("stop", "yield", "speed_limit")}}


class LaneParams(Strict):
    """The calibrated camera the lane method warps to a top-down view (TeslaCam front: about 60 degrees)."""

    hfov_deg: float = Field(default=60.0, gt=0, lt=180)
    mount_m: float = Field(default=1.4, gt=0)
    horizon: Fraction = 0.42  # share of the image height where the horizon lies
    auto_horizon: bool = False  # estimate the horizon per frame from the lines (cameras of unknown mounting); the value above is the prior
    model: str | None = None  # a learned lane model (models/lanes.onnx: real footage, any camera); null: the calibrated-camera method above


class LabelParams(Strict):
    """Stage label@R: which frames, which model, how its classes map to the taxonomy."""

    model: str = "models/labeler.pt"  # scripts/train_detector.py labeler; coco-ssd (real-trained, COCO names); or any ultralytics weights + class_map
    imgsz: int = Field(default=640, ge=32, multiple_of=32)
    batch: int = Field(default=8, ge=1)
    threshold: Fraction = 0.25
    lamps: bool = False  # also find traffic lights by their lit lamps (small lights a detector misses; real footage)
    device: str = "auto"  # auto: CUDA and half precision when present
    every_s: float = Field(default=0.5, gt=0)  # one frame per interval of presentation time
    trigger_window_s: float = Field(default=1.0, ge=0)  # every frame this close to a trigger
    hard_brake_mps2: float = Field(default=3.0, gt=0)  # deceleration with the brake on that counts as hard braking
    min_box_px: float = Field(default=20, ge=0)  # smaller ground truth is neither taught nor scored
    taxonomy: dict[str, dict[str, list[str]]] = DEFAULT_TAXONOMY  # class -> attribute -> allowed values
    class_map: dict[str, dict[str, str]] = BOOTSTRAP_CLASS_MAP  # model class name -> {class: taxonomy class, attribute: value}
    track: TrackParams = TrackParams(max_gap=2, extend_s=0.0, margin=0.0, margin_growth=0.0, link_reach=2.0)
    lanes: LaneParams = LaneParams()

    @model_validator(mode="after")
    def _class_map_in_taxonomy(self) -> "LabelParams":
        for name, target in self.class_map.items():
            cls = target.get("class")
            if cls not in self.taxonomy:
                raise ValueError(f"class_map.{name}: class {cls!r} is not in the taxonomy ({', '.join(self.taxonomy)})")
            for attribute, value in target.items():
                if attribute == "class":
                    continue
                allowed = self.taxonomy[cls].get(attribute)
                if allowed is None or value not in allowed:
                    raise ValueError(f"class_map.{name}: {attribute}={value!r} is not allowed for {cls} "
                                     f"(taxonomy: {self.taxonomy[cls] or 'no attributes'})")
        return self


class Scenario(Strict):
    where: str  # pandas query over the curate frame table (see curation/datasets/frames.py)
    quota: int = Field(ge=0)  # most frames taken for it


class CurateParams(Strict):
    """Stage curate@R: which labeled frames make the training set."""

    scenarios: dict[str, Scenario] = {"everything": Scenario(where="True", quota=100_000)}  # first match wins
    near_duplicate_distance: float = Field(default=0.02, ge=0, le=2)  # cosine distance: below it, the same picture
    balance: dict[str, Fraction] = {}  # taxonomy class -> target share of boxes; empty: no balancing
    max_frames: int = Field(default=5000, ge=1)
    splits: dict[Literal["train", "val", "test"], Fraction] = {"train": 0.7, "val": 0.15, "test": 0.15}
    group_cell_km: float | None = Field(default=None, gt=0)  # also keep frames within one cell of this size together
    seed: int = 0

    @model_validator(mode="after")
    def _shares(self) -> "CurateParams":
        if abs(sum(self.splits.values()) - 1) > 1e-6 or "train" not in self.splits:
            raise ValueError(f"splits must include train and sum to 1, got {dict(self.splits)}")
        return self


class ExportParams(Strict):
    """Stage export@R: <store>/datasets/<name>/."""

    name: str = Field(default="fleet", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    jpeg_quality: int = Field(default=95, ge=50, le=100)
    thumbnails: int = Field(default=16, ge=0)


class TrainParams(Strict):
    """Stage train@R: fine-tune in region on the exported set, evaluate on its test split."""

    init: str = "models/labeler.pt"  # starting weights (the bootstrap labeler); "yolo11n.yaml" trains from scratch
    epochs: int = Field(default=3, ge=1)
    imgsz: int = Field(default=640, ge=32, multiple_of=32)
    batch: int = Field(default=8, ge=1)
    device: str = "auto"
    seed: int = 0


class EngineParams(Strict):
    """How per-clip stages (ingest, redact, label) spread over cores and machines: curation/engine."""

    kind: Literal["local", "ray"] = "local"  # local: processes on this machine; ray: a Ray cluster
    # local: auto = one worker per usable core, 1 = in process (no pool); ray: the most actors (auto: as
    # many as the CPUs Ray reports for the region's nodes allow)
    workers: Literal["auto"] | Annotated[int, Field(ge=1)] = "auto"
    address: str | None = None  # ray: None starts Ray on this machine; "auto" joins the cluster this job runs on
    object_store_mb: int = Field(default=256, ge=80)  # ray on this machine only: shared memory for task arguments

    @model_validator(mode="after")
    def _address_is_for_ray(self) -> "EngineParams":
        if self.address is not None and self.kind != "ray":
            raise ValueError(f"address is for kind ray, got kind {self.kind!r}")
        return self


class Params(Strict):
    """The whole params.yaml. Stage sections join here as stages are added."""

    regions: dict[RegionName, RegionPolicy] = Field(min_length=1)
    simulate: SimulateParams = SimulateParams()
    ingest: IngestParams = IngestParams()
    redaction: RedactionParams = RedactionParams()
    label: LabelParams = LabelParams()
    curate: CurateParams = CurateParams()
    export: ExportParams = ExportParams()
    train: TrainParams = TrainParams()
    engine: EngineParams = EngineParams()
    source: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _keys_of_every_region(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("regions"), dict):
            regions = {name: {**region, "keys": default_keys(str(name), region.get("keys"))} if isinstance(region, dict) else region
                       for name, region in data["regions"].items()}
            data = {**data, "regions": regions}
        return data

    def region(self, name: str) -> RegionPolicy:
        try:
            return self.regions[name]
        except KeyError:
            raise PolicyError(f"{self.source}: regions: no region {name!r} (known: {', '.join(self.regions)})") from None


def _all_field_names(model: type[BaseModel], seen: set | None = None) -> set[str]:
    seen = set() if seen is None else seen
    names = set(model.model_fields)
    for field_info in model.model_fields.values():
        for candidate in _models_in(field_info.annotation):
            if candidate not in seen:
                seen.add(candidate)
                names |= _all_field_names(candidate, seen)
    return names


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models_in(arg)]


def _explain(error: ValidationError, source: Path) -> str:
    """First validation error as one line: file, dotted key, what is wrong."""
    errors = error.errors()
    first = errors[0]
    key = ".".join(str(part) for part in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        name = str(first["loc"][-1])
        close = difflib.get_close_matches(name, sorted(_all_field_names(Params)), n=1)
        message = "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
    elif first["type"] == "missing":
        message = "required key is missing"
    else:
        message = first["msg"]
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{source}: {key}: {message}{more}"


def _real(store: str) -> str:
    """A local store's folder after resolving every link that exists now; s3 stores as bucket/prefix."""
    return store.rstrip("/") if store.startswith("s3://") else os.path.realpath(store)


def _contains(outer: str, inner: str) -> bool:
    return inner == outer or inner.startswith(outer.rstrip("/") + "/")


def _shown(store: str) -> str:
    real = _real(store)
    return store if real == store.rstrip("/") else f"{store} (resolved: {real})"


def store_holding(params: Params, path: str | Path) -> str | None:
    """The region whose local store holds ``path`` once links are resolved (or None)."""
    real = os.path.realpath(path)
    for name, region in params.regions.items():
        if not region.is_s3 and _contains(_real(region.store), real):
            return name
    return None


def check_stores_disjoint(params: Params, source: Path | str | None = None) -> None:
    """Every region's store is its own: no alias (a link to another's folder) and no nesting.

    Compared after resolving links, so it also runs when a store is opened (links made later count)."""
    names = sorted(params.regions)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            store_a, store_b = params.regions[a].store, params.regions[b].store
            real_a, real_b = _real(store_a), _real(store_b)
            if _contains(real_a, real_b) or _contains(real_b, real_a):
                raise PolicyError(
                    f"{source or params.source}: regions.{b}.store: {_shown(store_b)} overlaps regions.{a}.store {_shown(store_a)}; "
                    "every region needs a store of its own"
                )
            if params.regions[a].dvc_remote == params.regions[b].dvc_remote:
                raise PolicyError(
                    f"{source or params.source}: regions.{b}.dvc_remote: {params.regions[b].dvc_remote!r} is also "
                    f"regions.{a}.dvc_remote; every region needs a remote of its own"
                )


def check_keys_outside_stores(params: Params, source: Path | str | None = None) -> None:
    """Every key file, audit anchor and its lock lies outside every store (after resolving links), and
    no two of them, nor two key variables, are shared: one region's secrets are its own."""
    seen: dict[str, str] = {}
    for name, region in params.regions.items():
        keys = region.keys
        for where, path in (("pseudonym.file", keys.pseudonym.file), ("audit.file", keys.audit.file),
                            ("audit.anchor", keys.audit.anchor), ("audit.anchor (its .lock)", Path(f"{keys.audit.anchor}.lock"))):
            if path is None:
                continue
            holder = store_holding(params, path)
            if holder is not None:
                raise PolicyError(f"{source or params.source}: regions.{name}.keys.{where}: {path} lies inside the store of region {holder!r} "
                                  f"({params.regions[holder].store}); keys and anchors must live outside every store")
            real = os.path.realpath(path)
            if real in seen:
                raise PolicyError(f"{source or params.source}: regions.{name}.keys.{where}: {path} is also {seen[real]}; "
                                  "every key and anchor needs a file of its own")
            seen[real] = f"regions.{name}.keys.{where}"
        for where, variable in (("pseudonym.env", keys.pseudonym.env), ("audit.env", keys.audit.env)):
            if variable is None:
                continue
            if f"${variable}" in seen:
                raise PolicyError(f"{source or params.source}: regions.{name}.keys.{where}: {variable} is also {seen[f'${variable}']}; "
                                  "every key needs a variable of its own")
            seen[f"${variable}"] = f"regions.{name}.keys.{where}"


def _check_geofences(params: Params) -> None:
    for name, region in params.regions.items():
        for key, path, attribute in (
            ("restricted_zones.file", region.restricted_zones.file, "zones"),
            ("boundary", region.boundary, "territory"),
        ):
            try:
                getattr(region, attribute)
            except ValueError as error:
                raise PolicyError(f"{path}: regions.{name}.{key}: not valid GeoJSON: {error}") from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml; every problem is a one-line :class:`PolicyError`."""
    source = Path(path)
    try:
        document = yaml.safe_load(source.read_text())
    except FileNotFoundError:
        raise PolicyError(f"{source}: file not found") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise PolicyError(f"{source}:{where}: not valid YAML ({getattr(error, 'problem', error)})") from None
    if not isinstance(document, dict):
        raise PolicyError(f"{source}: (top level): expected a mapping of sections, got {type(document).__name__}")
    try:
        params = Params.model_validate({**document, "source": source}, context={"base": source.resolve().parent})
    except ValidationError as error:
        raise PolicyError(_explain(error, source)) from None
    check_stores_disjoint(params, source)
    check_keys_outside_stores(params, source)
    _check_geofences(params)
    return params
