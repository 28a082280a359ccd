"""Write a region's curated frames as a dataset inside the region's store.

``<store>/datasets/<name>/``::

    images/<split>/<clip>_<index>.jpg     redacted frames only (decoded from redacted/<clip>.mp4)
    labels/<split>/<clip>_<index>.txt     ultralytics YOLO boxes (class order = taxonomy order)
    data.yaml                             for `yolo train` / stage train@R
    annotations/<split>.json              COCO, with each box's attributes (light state, sign type)
    lanes/<split>.json                    TuSimple lane lines, one JSON object per line
    manifest.json                         every file's sha256; per image its source clip (sha256),
                                          frame PTS, split, scenario, coarse position and local hour;
                                          model, policy and redaction versions; counts
    README.md, class_histogram.png, thumbnails.png   the dataset card

No vehicle pseudonym or event id is written: the manifest names clips by content hash only.
`curation dataset verify PATH` re-hashes everything against the manifest.

Example:
    >>> export_region(RegionStore(params, "cn"), params)   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import cv2
import numpy as np

from curation.datasets.card import dataset_card
from curation.datasets.frames import reviewed_detections
from curation.media.video import decode_frames
from curation.storage.catalog import Catalog
from curation.storage.store import RegionStore

__all__ = ["export_region", "verify_dataset", "SPLITS"]

SPLITS = ("train", "val", "test")


def _jpeg(frame: np.ndarray, quality: int) -> bytes:
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return encoded.tobytes()


def export_region(store: RegionStore, params) -> dict:
    config, classes = params.export, list(params.label.taxonomy)
    catalog = Catalog(store)
    root = f"datasets/{config.name}"
    if store.exists(root):
        store.delete(root, reason="dataset rebuilt from the current curation")
    curated = catalog.read("curated").to_pandas().sort_values(["clip_id", "index"])
    redacted = {r["clip_id"]: r for r in catalog.read("redacted_clips", where="status = 'verified'").to_pylist()}
    clips = {r["clip_id"]: r for r in catalog.read("clips", ["clip_id", "camera", "width", "height"]).to_pylist()}
    frames = catalog.read("frames", ["clip_id", "index", "time", "lat", "lon"]).to_pandas().set_index(["clip_id", "index"])
    detections = reviewed_detections(catalog)
    by_frame = {key: group for key, group in detections.groupby(["clip_id", "index"])} if len(detections) else {}
    lanes = catalog.read("lane_lines").to_pandas()
    lanes_by_frame = {key: group.sort_values("lane") for key, group in lanes.groupby(["clip_id", "index"])} if len(lanes) else {}
    timezone_ = ZoneInfo(store.policy.locale.timezone)
    files: dict[str, str] = {}
    images, coco = [], {s: {"images": [], "annotations": [], "categories": [{"id": i, "name": c} for i, c in enumerate(classes)]}
                        for s in SPLITS}
    tusimple = {s: [] for s in SPLITS}
    counts = {s: Counter() for s in SPLITS}
    samples = []

    def write(key: str, data: bytes) -> None:
        files[key] = store.write_bytes(f"{root}/{key}", data)

    for clip_id, chosen in curated.groupby("clip_id", sort=True):
        if clip_id not in redacted:  # curated before its redaction was withdrawn: never export it
            continue
        wanted = dict(zip(chosen["index"], zip(chosen.split, chosen.scenario)))
        source = io.BytesIO(store.read_bytes(redacted[clip_id]["output_uri"]))
        for index, (pts, frame) in enumerate(decode_frames(source)):
            if index not in wanted:
                continue
            split, scenario = wanted[index]
            stem = f"{clip_id[:16]}_{index:05d}"
            height, width = frame.shape[:2]
            write(f"images/{split}/{stem}.jpg", _jpeg(frame, config.jpeg_quality))
            boxes = by_frame.get((clip_id, index))
            rows, image_id = [], len(coco[split]["images"])
            coco[split]["images"].append({"id": image_id, "file_name": f"images/{split}/{stem}.jpg", "width": width, "height": height})
            drawn = []
            for box in ([] if boxes is None else boxes.itertuples()):
                cls = classes.index(box.label)
                x1, y1, x2, y2 = max(box.x1, 0), max(box.y1, 0), min(box.x2, width), min(box.y2, height)
                if x2 <= x1 or y2 <= y1:
                    continue
                rows.append(f"{cls} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} {(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}\n")
                coco[split]["annotations"].append({"id": len(coco[split]["annotations"]), "image_id": image_id, "category_id": cls,
                                                   "bbox": [round(x1, 1), round(y1, 1), round(x2 - x1, 1), round(y2 - y1, 1)],
                                                   "area": round((x2 - x1) * (y2 - y1), 1), "iscrowd": 0,
                                                   "attributes": json.loads(box.attrs), "score": round(float(box.confidence), 4)})
                counts[split][box.label] += 1
                drawn.append((cls, (x1, y1, x2, y2)))
            write(f"labels/{split}/{stem}.txt", "".join(rows).encode())
            frame_lanes = lanes_by_frame.get((clip_id, index))
            lane_list = [] if frame_lanes is None else frame_lanes.to_dict("records")
            tusimple[split].append({"raw_file": f"images/{split}/{stem}.jpg", "lanes": [json.loads(l["xs"]) for l in lane_list],
                                    "h_samples": json.loads(lane_list[0]["ys"]) if lane_list else [],
                                    "types": [l["type"] for l in lane_list], "colors": [l["color"] for l in lane_list]})
            where = frames.loc[(clip_id, index)]
            images.append({"file": f"images/{split}/{stem}.jpg", "split": split, "scenario": scenario, "source_clip_sha256": clip_id,
                           "camera": clips[clip_id]["camera"], "frame_index": int(index), "pts": int(pts),
                           "lat": _coarse(where.lat), "lon": _coarse(where.lon),
                           "local_hour": int(where.time.tz_convert(timezone_).hour), "boxes": len(rows), "lanes": len(lane_list)})
            samples.append((frame, drawn, lane_list))
    for split in SPLITS:
        write(f"annotations/{split}.json", json.dumps(coco[split]).encode())
        write(f"lanes/{split}.json", "".join(json.dumps(entry) + "\n" for entry in tusimple[split]).encode())
    data_yaml = "".join(f"{s}: images/{s}\n" for s in SPLITS) + "names:\n" + "".join(f"  {i}: {c}\n" for i, c in enumerate(classes))
    write("data.yaml", data_yaml.encode())
    per_split = {s: {"images": sum(1 for i in images if i["split"] == s), "boxes": dict(sorted(counts[s].items()))} for s in SPLITS}
    labeled = catalog.read("labeled_clips", ["model"]).column("model").to_pylist()
    for name, data in dataset_card(config.name, store.region, classes, per_split, samples, config.thumbnails).items():
        write(name, data)
    manifest = {"name": config.name, "region": store.region, "created_at": datetime.now(timezone.utc).isoformat(),
                "policy_version": store.policy.version, "label_models": sorted(set(labeled)),
                "redaction_fingerprints": sorted({redacted[c]["fingerprint"] for c in curated.clip_id.unique() if c in redacted}),
                "classes": classes, "splits": per_split, "images": images, "files": dict(sorted(files.items()))}
    store.write_text(f"{root}/manifest.json", json.dumps(manifest, indent=1))
    store.audit.append(store.actor, "export", root, None, images=len(images), files=len(files))
    return {"region": store.region, "dataset": config.name, "images": len(images), "splits": per_split, "files": len(files) + 1}


def _coarse(value) -> float | None:
    return None if value is None or np.isnan(value) else float(value)  # frames already hold the policy's coarse position


def verify_dataset(path) -> list[str]:
    """Problems found re-hashing a dataset folder against its manifest.json (empty when intact)."""
    from pathlib import Path

    root = Path(path)
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        return [f"{manifest_path}: missing (not a dataset folder?)"]
    try:
        manifest = json.loads(manifest_path.read_text())
        listed = manifest["files"]
    except (json.JSONDecodeError, KeyError) as error:
        return [f"{manifest_path}: unreadable manifest ({error})"]
    problems = []
    for name, digest in sorted(listed.items()):
        file = root / name
        if not file.is_file():
            problems.append(f"{name}: missing")
        elif hashlib.sha256(file.read_bytes()).hexdigest() != digest:
            problems.append(f"{name}: sha256 differs from the manifest")
    present = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} - {"manifest.json"}
    problems += [f"{name}: not in the manifest" for name in sorted(present - set(listed))]
    return problems
