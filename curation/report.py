"""Cross-region summary built from metrics files only: aggregates are the one thing that may leave a region.

Reads exactly ``<metrics>/<region>/<stage>.json`` for the stages below and refuses anything else:
a folder inside a region's store, a file that is not a stage's metrics, or a metrics file that
carries per-clip or per-vehicle fields (an aggregate has none).

Example:
    >>> markdown, data = build_report(Path("metrics"), params)   # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path

from curation.errors import ResidencyViolation

__all__ = ["build_report", "STAGES"]

STAGES = ("ingest", "redaction", "label", "curate", "export", "train")
NOT_AGGREGATE = {"clip_id", "clip_ids", "vin", "vehicle_id", "source_uri", "source_clip_sha256", "lat", "lon", "redaction_failed_clips"}


def _refuse_if_inside_a_store(root: Path, params) -> None:
    for name, policy in params.regions.items():
        if policy.is_s3:
            continue
        store = Path(policy.store).resolve()
        if root == store or store in root.parents:
            raise ResidencyViolation(name, "a cross-region report (metrics only)", "report read", str(root))


def _check_aggregate(document, path: Path, trail: str = "") -> None:
    if isinstance(document, dict):
        for key, value in document.items():
            if key in NOT_AGGREGATE:
                raise ResidencyViolation(path.parent.name, f"a cross-region report (per-item field {trail}{key})", "report read", str(path))
            _check_aggregate(value, path, f"{trail}{key}.")
    elif isinstance(document, list):
        for item in document:
            _check_aggregate(item, path, trail)


def build_report(metrics: Path, params) -> tuple[str, dict]:
    """(markdown, {region: {stage: document}}) for every region in params with metrics present."""
    root = Path(metrics).resolve()
    _refuse_if_inside_a_store(root, params)
    data: dict[str, dict] = {}
    for region in params.regions:
        for stage in STAGES:
            path = root / region / f"{stage}.json"
            if path.is_symlink():
                raise ResidencyViolation(region, "a file outside the metrics folder (link)", "report read", str(path))
            if path.is_file():
                document = json.loads(path.read_text())
                _check_aggregate(document, path)
                data.setdefault(region, {})[stage] = document
    return _markdown(data), data


def _get(document: dict | None, *keys, default="–"):
    for key in keys:
        if not isinstance(document, dict) or document.get(key) is None:
            return default
        document = document[key]
    return document


def _share(value) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else str(value)


def _markdown(data: dict) -> str:
    lines = ["# Cross-region summary (from metrics files only)", "",
             "| region | clips cataloged / arrived | redaction verified | faces covered | plates covered | label mAP50 (vehicle, light, sign) | lane F1 | curated frames | dataset images | trained mAP50 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for region, stages in sorted(data.items()):
        ingest, redaction, label = stages.get("ingest"), stages.get("redaction"), stages.get("label")
        boxes = _get(label, "quality", "boxes", "classes", default={})
        maps = ", ".join(_share(_get(boxes, c, "mAP50")) for c in ("vehicle", "traffic_light", "traffic_sign"))
        lines.append("| " + " | ".join([
            region,
            f"{_get(ingest, 'totals', 'cataloged')} / {_get(ingest, 'totals', 'arrived')}",
            str(_get(redaction, "clips", "verified")),
            _share(_get(redaction, "quality", "classes", "face", "covered_share")),
            _share(_get(redaction, "quality", "classes", "plate", "covered_share")),
            maps,
            _share(_get(label, "quality", "lanes", "f1")),
            str(_get(stages.get("curate"), "selected")),
            str(_get(stages.get("export"), "images")),
            _share(_get(stages.get("train"), "mAP50")),
        ]) + " |")
    return "\n".join(lines) + "\n"
