"""Redact every cataloged clip of a region, verify it, record the proof, enforce retention.

Incremental: a clip already redacted with the same fingerprint (policy version, model file
hashes, stage params, a hash of the masking code) is kept as it is, so a rerun after raw media was deleted loses nothing.

Example:
    >>> metrics = redact_region(RegionStore(params, "cn"), params)   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import datetime, timezone

import numpy as np

from curation.engine import Task, commit, run
from curation.perception.boxes import CLASSES, Detections
from curation.perception.tracks import VERSION as TRACKER_VERSION
from curation.policy.deps import code_hash
from curation.redaction.clip import RedactClip
from curation.redaction.detectors import Detectors
from curation.redaction.quality import combine, score_clip
from curation.retention import raw_deadline, retire, sweep
from curation.sources.groundtruth import truth_lines
from curation.storage.catalog import Catalog
from curation.storage.records import RedactedClip, Redaction, to_table
from curation.storage.store import RegionStore

__all__ = ["redact_region", "redaction_status", "MASKING_CODE", "MASKING_PACKAGES"]

# The code that decides which pixels are masked and how the output is encoded: its hash is part of
# every clip's fingerprint. Storage, audit and the stage's own bookkeeping are not in it.
MASKING_CODE = ["curation.redaction.video", "curation.redaction.detectors", "curation.redaction.verify"]
MASKING_PACKAGES = ("curation/perception", "curation/redaction", "curation/media")


def redact_region(store: RegionStore, params, progress: bool = True, engine=None) -> dict:
    """Redact, verify and record every clip of the region's catalog; returns the metrics document.

    Plan (here): which clips need work, by fingerprint; zone drops and missing raw media are settled
    without a worker. Work (the engine's workers, :class:`~curation.redaction.clip.RedactClip`):
    redact into a temporary key and verify. Commit (here, as each result arrives): audit records,
    the output moved into place only when verified (a failed one is deleted), catalog rows,
    retention. A crash loses at most the clips in flight; a rerun redoes only those."""
    policy, stage = store.policy, params.redaction
    catalog = Catalog(store)
    detectors = Detectors(params, store.region)
    version = policy.version
    code = code_hash(MASKING_CODE, within=MASKING_PACKAGES)
    # Weights count by their hashes; where the models run (device, cpu_runtime) is in each proof, not in the fingerprint.
    settings = stage.model_dump_json(exclude={"plate_model", "plate_sim_model", "verify_plate_model", "device", "cpu_runtime"})
    fingerprint = hashlib.sha256(f"{version}|{detectors.names}|{detectors.verifier_names}|{code}|{settings}".encode()).hexdigest()[:16]
    previous = {row["clip_id"]: row for row in catalog.read("redacted_clips").to_pylist()}
    clips = catalog.read("clips").to_pylist()
    by_id = {c["clip_id"]: c for c in clips}
    manual = _manual_redactions(catalog)
    statuses, now, tasks, fingerprints = Counter(), datetime.now(timezone.utc), [], {}
    for clip in clips:
        clip_id = clip["clip_id"]
        old = previous.get(clip_id)
        drawn = manual.get(clip_id, {})
        fingerprints[clip_id] = clip_fingerprint = _with_manual(fingerprint, drawn)
        if old and old["fingerprint"] == clip_fingerprint:
            statuses[old["status"]] += 1
            continue
        source = clip["source_uri"]
        if not store.exists(source) and drawn and old and old["output_uri"] and store.exists(old["output_uri"]):
            source = old["output_uri"]  # raw is gone (retention): mask the drawn boxes on the redacted output itself
        if not store.exists(source):
            if old and old["status"] == "verified" and old["output_uri"] and store.exists(old["output_uri"]):
                # Raw media is gone on its retention clock: the stored output is all there is, so the
                # current rules judge it again rather than the old proof standing silently.
                rows = catalog.read("redactions", ["index", "boxes"], f"clip_id = '{clip_id}'").sort_by("index").to_pylist()
                tasks.append(Task(clip_id, {"kind": "verify", "source": old["output_uri"], "frames": old["frames"],
                                            "masked": [json.loads(r["boxes"]) for r in rows]}))
                continue
            if old:  # nothing left to redact or verify: the earlier result stands
                statuses[old["status"]] += 1
                continue
            _replace(catalog, clip_id, [], _row(clip, "raw_missing", None, None, 0, 0, 0, 0, [], clip_fingerprint, version, "", False, None, now))
            statuses["raw_missing"] += 1
            continue
        zones = catalog.read("frames", ["index", "zone"], f"clip_id = '{clip_id}'").sort_by("index").column("zone").to_pylist()
        in_zone = np.array([z is not None for z in zones], bool)
        share = in_zone.mean() if len(in_zone) else 0.0
        zone_policy = policy.restricted_zones
        if in_zone.any() and (zone_policy.action == "drop_clip" or share > zone_policy.max_share):
            store.audit.append(store.actor, "drop_clip_restricted_zone", clip["source_uri"], clip_id, share=round(float(share), 3))
            deadline, delete_now = raw_deadline(policy, now)
            row = _row(clip, "dropped_zone", None, None, clip["frames"], int(in_zone.sum()), 0, 0, [], clip_fingerprint, version, "",
                       delete_now, deadline, now)
            _replace(catalog, clip_id, [], row)
            retire(store, catalog, clip_id, now)
            statuses["dropped_zone"] += 1
            continue
        tasks.append(Task(clip_id, {"kind": "redact", "source": source, "frames": clip["frames"], "blank": in_zone.tolist(),
                                    "manual": {str(i): b for i, b in drawn.items()}}))
    for result in run(RedactClip(), tasks, store, engine, progress=progress):
        clip = by_id[result.task_id]
        status = _commit(store, catalog, clip, previous.get(result.task_id), result, fingerprints[result.task_id], detectors, version, now)
        statuses[status] += 1
    for stale in sorted(set(previous) - set(by_id)):
        # The catalog was rebuilt without this clip: its redaction must not outlive it.
        if previous[stale]["output_uri"] and store.exists(previous[stale]["output_uri"]):
            store.delete(previous[stale]["output_uri"], reason="clip no longer in the catalog")
        catalog.table("redactions").delete(f"clip_id = '{stale}'")
        catalog.table("redacted_clips").delete(f"clip_id = '{stale}'")
    sweep(store, now, catalog=catalog)
    verified = catalog.read("redacted_clips", ["clip_id", "output_sha256"], "status = 'verified'").to_pylist()
    # Always written (the folder is a DVC out): which outputs are verified, by content hash.
    store.write_text("redacted/manifest.json", json.dumps({r["clip_id"]: r["output_sha256"] for r in verified}, indent=1, sort_keys=True))
    return {"region": store.region, "policy_version": version, "clips": dict(sorted(statuses.items())),
            "detectors": detectors.names, "verifiers": detectors.verifier_names, "tracker": TRACKER_VERSION, "code": code,
            "detect_every_s": stage.detect_every_s, "quality": _quality(store, catalog, clips, detectors)}


def _commit(store: RegionStore, catalog: Catalog, clip: dict, old: dict | None, result, fingerprint: str, detectors: Detectors,
            version: str, now: datetime) -> str:
    """One worker result into the region: audit records, the output into place (verified) or deleted,
    catalog rows, retention. Returns the clip's status."""
    clip_id = clip["clip_id"]
    if not result.ok:  # the worker could not redact this clip: nothing of it is kept
        commit(store, result)
        store.audit.append(store.actor, "redact", clip["source_uri"], clip_id, status="redaction_failed", error=result.error,
                           policy_version=version)
        _replace(catalog, clip_id, [], _row(clip, "redaction_failed", None, None, 0, 0, 0, 0, [{"error": result.error}], fingerprint,
                                            version, detectors.verifier_names, False, None, now))
        return "redaction_failed"
    record, verification = result.record, result.record["verification"]
    if record["kind"] == "verify":
        commit(store, result)
        return _reverified(store, catalog, clip, old, verification, fingerprint, detectors, version)
    uri = f"redacted/{clip_id}.mp4"
    placed = commit(store, result, uri, verified=verification.passed)
    status, uri, digest = ("verified", uri, record["output_sha256"]) if placed else ("redaction_failed", None, None)
    store.audit.append(store.actor, "redact", clip["source_uri"], clip_id, status=status, output=uri, output_sha256=digest,
                       findings=len(verification.findings), repaired=len(record["repaired"]), verified_frames=verification.frames,
                       reused_frames=verification.reused,
                       frames=record["frames"], policy_version=version, verifiers=detectors.verifier_names)
    frames = [Redaction(clip_id, i, int(record["pts"][i]), json.dumps(record["boxes"][i]), bool(record["blanked"][i]), detectors.names,
                        TRACKER_VERSION, version) for i in range(record["frames"])]
    findings = [*([] if verification.complete else [{"error": verification.summary()}]), *verification.findings,
                *({**f, "repaired": True} for f in record["repaired"])]  # repaired: what the second opinion found and was masked too
    deadline, delete_now = raw_deadline(store.policy, now) if status == "verified" else (None, False)
    row = _row(clip, status, uri, digest, record["frames"], int(sum(record["blanked"])), record["tracks"]["face"], record["tracks"]["plate"],
               findings, fingerprint, version, detectors.verifier_names, delete_now, deadline, now)
    _replace(catalog, clip_id, frames, row)
    if status == "verified":  # the people's boxes are in this redaction now: the clip may be exported again
        catalog.table("reviews").update(where=f"clip_id = '{clip_id}' AND decision IN ('missed_face', 'missed_plate')", values={"applied": True})
    retire(store, catalog, clip_id, now)
    return status


def _reverified(store: RegionStore, catalog: Catalog, clip: dict, old: dict, verification, fingerprint: str, detectors: Detectors,
                version: str) -> str:
    """A stored output verified again (raw already deleted); one that fails leaves redacted/ for quarantine."""
    status, uri = ("verified", old["output_uri"]) if verification.passed else ("redaction_failed", None)
    if not verification.passed:
        store.move(old["output_uri"], f"quarantine/redaction_failed/{clip['clip_id']}.mp4")
    store.audit.append(store.actor, "reverify", old["output_uri"], clip["clip_id"], status=status, findings=len(verification.findings),
                       verified_frames=verification.frames, policy_version=version, verifiers=detectors.verifier_names)
    row = {**old, "status": status, "output_uri": uri, "output_sha256": old["output_sha256"] if uri else None,
           "findings": json.dumps(verification.findings[:50]), "fingerprint": fingerprint, "policy_version": version,
           "verifiers": detectors.verifier_names, "redacted_at": datetime.now(timezone.utc)}
    catalog.table("redacted_clips").delete(f"clip_id = '{clip['clip_id']}'")
    catalog.table("redacted_clips").add(to_table(RedactedClip, [RedactedClip(**row)]))
    return status


def _quality(store: RegionStore, catalog: Catalog, clips: list, detectors: Detectors) -> dict | None:
    """Coverage against the simulator's ground truth, from the stored proof (so incremental runs report every clip)."""
    min_height = {CLASSES[cls]: px for cls, px in detectors.min_height.items()}  # ground truth names classes
    scores = []
    for clip in clips:
        truth = truth_lines(store, clip)
        rows = catalog.read("redactions", ["index", "boxes", "blanked"], f"clip_id = '{clip['clip_id']}'").sort_by("index").to_pylist()
        if truth is not None and rows:
            boxes = [Detections.from_items(json.loads(r["boxes"])) for r in rows]
            blanked = np.array([r["blanked"] for r in rows], bool)
            scores.append(score_clip(list(truth.values()), boxes, blanked, (clip["height"], clip["width"]), min_height))
    return combine(scores) if scores else None


def redaction_status(catalog: Catalog) -> dict:
    """Clips by redaction status, and which failed verification (for `curation status`)."""
    rows = catalog.read("redacted_clips", ["clip_id", "status"]).to_pylist()
    if not rows:  # not redacted yet: nothing to say
        return {}
    return {"redaction": dict(sorted(Counter(r["status"] for r in rows).items())),
            "redaction_failed_clips": sorted(r["clip_id"] for r in rows if r["status"] == "redaction_failed")}


def _manual_redactions(catalog: Catalog) -> dict[str, dict[int, list]]:
    """Boxes reviewers drew for missed faces and plates: clip -> frame index -> [[x1, y1, x2, y2, class, track]]."""
    reviews = catalog.read("reviews", ["clip_id", "index", "decision", "after"], "decision IN ('missed_face', 'missed_plate')").to_pylist()
    out: dict[str, dict[int, list]] = {}
    for k, review in enumerate(reviews):
        box = json.loads(review["after"])["box"]
        cls = "face" if review["decision"] == "missed_face" else "plate"
        out.setdefault(review["clip_id"], {}).setdefault(int(review["index"]), []).append([*box, cls, k])
    return out


def _with_manual(fingerprint: str, drawn: dict) -> str:
    """A new drawn box changes the clip's fingerprint, so the clip is redacted again."""
    return fingerprint if not drawn else hashlib.sha256(f"{fingerprint}|{json.dumps(drawn, sort_keys=True)}".encode()).hexdigest()[:16]


def _row(clip, status, uri, digest, frames, blanked, faces, plates, findings, fingerprint, version, verifiers, deleted, deadline,
         now) -> RedactedClip:
    return RedactedClip(clip["clip_id"], status, uri, digest, frames, blanked, faces, plates, json.dumps(findings[:50]), fingerprint,
                        version, verifiers, deleted, deadline, now)


def _replace(catalog: Catalog, clip_id: str, frames: list[Redaction], row: RedactedClip) -> None:
    """Rows of a redone clip replace the old ones (frames first: the clip row marks completion)."""
    catalog.table("redactions").delete(f"clip_id = '{clip_id}'")
    if frames:
        catalog.table("redactions").add(to_table(Redaction, frames))
    catalog.table("redacted_clips").delete(f"clip_id = '{clip_id}'")
    catalog.table("redacted_clips").add(to_table(RedactedClip, [row]))
