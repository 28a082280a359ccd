"""Redaction on real footage (../shared/testdata/real): plates masked, the rest of the picture left alone. Prints JSON.

- plates_eu/ (real photos, one plate box each): a plate counts as masked when at least 90 % of its
  box lies under the mask; recall by plate height; masked patches and area outside the plate.
- plates_cn_unlabeled/sample/ (CCPD's parking-lot photos of Chinese plates, one each; corners from
  CCPD's own annotation, tests/data/real_plates_cn): the same scores, the plate a polygon; and what is
  masked on the photos of cars without a plate (np/).
- dashcam/ (real highway frames and clips, no ground truth): the share of each frame masked outside
  the real faces and plates, taken as what the independent verifiers find on the *input* (at the
  redactor's own threshold, so anything a real-trained detector thinks is a face or plate counts
  as real), each enlarged by the policy's margin; the worst frame and the mean.
- every real video: verification of the output (the independent detectors on every frame).

Runs the same code as `curation redact` (curation.redaction.files). Pictures for the README come
from scripts/readme_pictures.py.

usage: python benchmarks/redact_real.py [--region eu] [--limit N] [--parts plates_eu,plates_cn,dashcam,face_videos]
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curation.perception.boxes import Detections  # noqa: E402
from curation.policy.params import load_params  # noqa: E402
from curation.redaction.detectors import Detectors, for_real_cameras  # noqa: E402
from curation.redaction.files import redact_file  # noqa: E402
from curation.redaction.masks import mask_of  # noqa: E402
from curation.redaction.video import RedactionConfig, stream_frames  # noqa: E402

REAL = ROOT.parent / "shared" / "testdata" / "real"
PLATE_BANDS = [(16, 24), (24, 32), (32, 48), (48, 96), (96, 4000)]
COVERED = 0.9
PARTS = ("plates_eu", "plates_cn", "dashcam", "face_videos")
CN_CORNERS = ROOT / "tests" / "data" / "real_plates_cn" / "corners.json"


def _masks(proof: dict, shape) -> list[np.ndarray]:
    return [mask_of(Detections.from_items(frame["masked"]), shape) for frame in proof["frames"]]


def _patches(mask: np.ndarray) -> int:
    return max(0, cv2.connectedComponents(mask.astype(np.uint8))[0] - 1)


def plate_recall(plates: list[tuple[Path, np.ndarray]], detectors, config, version, folder: Path) -> dict:
    """Redact each photo and score its one plate (a polygon, (N, 2) corners): masked when at least
    90 % of the polygon lies under the mask; recall by plate height (the shorter of the polygon's
    mean side lengths: a box's height); patches and area masked outside the plate's box enlarged
    by 30 % of its height."""
    bands = {band: [0, 0] for band in PLATE_BANDS}
    below, patches, outside, missed = 0, [], [], []
    for source, corners in plates:
        summary = redact_file(source, folder / f"{source.parent.name}_{source.stem}_redacted.png", detectors, config, version, verify=False)
        proof = json.loads(Path(summary["proof"]).read_text())
        image = cv2.imread(str(source))
        mask = _masks(proof, image.shape)[0]
        hull = cv2.convexHull(corners.astype(np.float32)).reshape(-1, 2)
        polygon = cv2.fillPoly(np.zeros(mask.shape, np.uint8), [np.round(hull).astype(np.int32)], 1).astype(bool)
        sides = np.linalg.norm(hull - np.roll(hull, -1, 0), axis=1)
        h = min((sides[0] + sides[2]) / 2, (sides[1] + sides[3]) / 2) if len(hull) == 4 else float(np.ptp(hull[:, 1]))
        share = mask[polygon].mean()
        band = next((b for b in PLATE_BANDS if b[0] <= h < b[1]), None)
        if band is None:
            below += 1
            continue
        bands[band][1] += 1
        bands[band][0] += int(share >= COVERED)
        if share < COVERED:
            missed.append({"file": str(source.relative_to(REAL)), "height": round(float(h), 1), "masked": round(float(share), 2)})
        (x1, y1), (x2, y2) = hull.min(0), hull.max(0)
        plate, pad = np.zeros_like(mask), 0.3 * h
        plate[max(0, int(y1 - pad)) : int(y2 + pad) + 1, max(0, int(x1 - pad)) : int(x2 + pad) + 1] = True
        patches.append(_patches(mask & ~plate))
        outside.append((float((mask & ~plate).mean()), str(source.relative_to(REAL))))
    total = sum(n for _, n in bands.values())
    return {"photos": len(plates), "plates_at_or_above_16px": total, "below_16px": below,
            "masked": sum(k for k, _ in bands.values()), "recall": round(sum(k for k, _ in bands.values()) / max(total, 1), 4),
            "recall_by_plate_height_px": {f"{a}-{b}": {"plates": n, "recall": round(k / n, 3) if n else None} for (a, b), (k, n) in bands.items()},
            "missed": missed, "patches_outside_the_plate": {"mean": round(float(np.mean(patches)), 2), "max": int(np.max(patches))},
            "masked_share_outside_the_plate": {"mean": round(float(np.mean([share for share, _ in outside])), 4),
                                               "worst": [{"file": name, "share": round(share, 4)} for share, name in sorted(outside, reverse=True)[:3]]}}


def plates_eu(detectors, config, version, folder: Path, limit: int | None) -> dict:
    plates = []
    for label in sorted((REAL / "plates_eu").glob("*.txt"))[:limit]:
        name, x, y, w, h, _ = label.read_text().split("\t")
        x, y, w, h = int(x), int(y), int(w), int(h)
        plates.append((label.with_name(name), np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float64)))
    return plate_recall(plates, detectors, config, version, folder)


def plates_cn(detectors, config, version, folder: Path) -> dict:
    """CCPD's parking-lot photos (a plate style none of the plate models names in its training data),
    corners from CCPD's own annotation (tests/data/real_plates_cn); np/ holds cars without a plate:
    whatever is masked there is masked for nothing."""
    sample = REAL / "plates_cn_unlabeled" / "sample"
    corners = json.loads(CN_CORNERS.read_text())
    report = plate_recall([(sample / name, np.array(c, np.float64)) for name, c in corners.items()], detectors, config, version, folder)
    shares, patches = [], []
    for source in sorted((sample / "np").glob("*.jpg")):  # cars without a plate
        summary = redact_file(source, folder / f"np_{source.stem}_redacted.png", detectors, config, version, verify=False)
        mask = _masks(json.loads(Path(summary["proof"]).read_text()), cv2.imread(str(source)).shape)[0]
        shares.append(float(mask.mean()))
        patches.append(_patches(mask))
    report["cars_without_a_plate"] = {"photos": len(shares), "patches": patches, "masked_share": [round(v, 4) for v in shares]}
    return report


def _real_objects(frame: np.ndarray, judges: list, margin: float) -> np.ndarray:
    """What real-trained detectors find on the input, enlarged by the policy's margin: the area a mask may cover."""
    allowed = np.zeros(frame.shape[:2], bool)
    for judge in judges:
        for x1, y1, x2, y2 in judge([frame])[0].xyxy:
            w, h = x2 - x1, y2 - y1
            face = judge.class_id == 0
            grow = margin + (0.42 if face else 0.0)  # a face's mask is the ellipse through its box corners
            allowed[max(0, int(y1 - grow * h)) : int(y2 + grow * h) + 1, max(0, int(x1 - grow * w)) : int(x2 + grow * w) + 1] = True
    return allowed


def dashcam(detectors, config, version, folder: Path, judges: list) -> dict:
    out, worst = {}, 0.0
    for source in sorted((REAL / "dashcam").iterdir()):
        start = time.perf_counter()
        summary = redact_file(source, folder / f"{source.stem}_redacted{source.suffix}", detectors, config, version, verify=source.suffix == ".mp4",
                              keep_failed=True)
        seconds = time.perf_counter() - start
        proof = json.loads(Path(summary["proof"]).read_text())
        frames = [cv2.imread(str(source))[..., ::-1]] if source.suffix == ".jpg" else [f for _, f, _ in stream_frames(str(source))]
        shares = []
        for frame, mask in zip(frames, _masks(proof, frames[0].shape)):
            shares.append(float((mask & ~_real_objects(np.ascontiguousarray(frame), judges, config.track.margin)).mean()))
        worst = max(worst, max(shares))
        out[source.name] = {"frames": len(frames), "masked_outside_real_objects": {"max": round(max(shares), 4), "mean": round(float(np.mean(shares)), 4),
                                                                               "worst_frame": int(np.argmax(shares))},
                            "masked_boxes_per_frame": round(sum(len(f["masked"]) for f in proof["frames"]) / len(frames), 2),
                            "verification": summary["verification"], "seconds": round(seconds, 2)}
    return {"files": out, "worst_frame_masked_outside_real_objects": round(worst, 4)}


def videos(detectors, config, version, folder: Path) -> dict:
    out = {}
    for source in sorted((REAL / "faces").glob("*.mp4")):
        summary = redact_file(source, folder / f"{source.stem}_redacted.mp4", detectors, config, version, keep_failed=True)
        out[source.name] = {"frames": summary["frames"], "face_tracks": summary["face_tracks"], "plate_tracks": summary["plate_tracks"],
                            "verification": summary["verification"], "fps": summary["fps"]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--region", default="eu")
    parser.add_argument("--limit", type=int, default=None, help="plates_eu photos to use (default: all)")
    parser.add_argument("--parts", default=",".join(PARTS), help="which parts to run, comma-separated (default: all)")
    args = parser.parse_args()
    parts = args.parts.split(",")
    if unknown := sorted(set(parts) - set(PARTS)):
        parser.error(f"unknown parts {unknown}: choose from {', '.join(PARTS)}")
    params = for_real_cameras(load_params(ROOT / "params.yaml"))  # as `curation redact` takes real footage
    detectors, config = Detectors(params, args.region), RedactionConfig.from_params(params, args.region)
    version = params.region(args.region).version
    # Judges of what is real on the dashcam input: the independent verifiers at the redactor's thresholds.
    judges = [getattr(d, "detector", d) for d in Detectors(params, args.region).verify]
    for judge, redactor in zip(judges, detectors.redact):
        judge.threshold = redactor.threshold
    with tempfile.TemporaryDirectory() as folder:
        result = {"benchmark": "redact_real", "region": args.region, "detectors": detectors.describe()}
        for name, part in (("plates_eu", lambda: plates_eu(detectors, config, version, Path(folder), args.limit)),
                           ("plates_cn", lambda: plates_cn(detectors, config, version, Path(folder))),
                           ("dashcam", lambda: dashcam(detectors, config, version, Path(folder), judges)),
                           ("face_videos", lambda: videos(detectors, config, version, Path(folder)))):
            if name not in parts:
                continue
            result[name] = part()
            print(json.dumps({name: result[name]}, default=_plain), file=sys.stderr, flush=True)  # each part as it is done
    print(json.dumps(result, indent=1, default=_plain))


def _plain(value):
    """numpy scalars as Python numbers."""
    return value.item() if hasattr(value, "item") else str(value)


if __name__ == "__main__":
    main()
