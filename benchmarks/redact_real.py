"""Redaction on real footage (../shared/testdata/real): plates masked, the rest of the picture left alone. Prints JSON.

- plates_eu/ (real photos, one plate box each): a plate counts as masked when at least 90 % of its
  box lies under the mask; recall by plate height; masked patches and area outside the plate.
- dashcam/ (real highway frames and clips, no ground truth): the share of each frame masked outside
  the real faces and plates, taken as what the independent verifiers find on the *input* (at the
  redactor's own threshold, so anything a real-trained detector thinks is a face or plate counts
  as real), each enlarged by the policy's margin; the worst frame and the mean.
- every real video: verification of the output (the independent detectors on every frame).

Runs the same code as `curation redact` (curation.redaction.files). Pictures for the README come
from scripts/readme_pictures.py.

usage: python benchmarks/redact_real.py [--region eu] [--limit N]
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


def _masks(proof: dict, shape) -> list[np.ndarray]:
    return [mask_of(Detections.from_items(frame["masked"]), shape) for frame in proof["frames"]]


def _patches(mask: np.ndarray) -> int:
    return max(0, cv2.connectedComponents(mask.astype(np.uint8))[0] - 1)


def plates_eu(detectors, config, version, folder: Path, limit: int | None) -> dict:
    bands = {band: [0, 0] for band in PLATE_BANDS}
    below, patches, outside, missed = 0, [], [], []
    labels = sorted((REAL / "plates_eu").glob("*.txt"))[:limit]
    for label in labels:
        name, x, y, w, h, _ = label.read_text().split("\t")
        x, y, w, h = int(x), int(y), int(w), int(h)
        source = label.with_name(name)
        summary = redact_file(source, folder / f"{source.stem}_redacted.png", detectors, config, version, verify=False)
        proof = json.loads(Path(summary["proof"]).read_text())
        image = cv2.imread(str(source))
        mask = _masks(proof, image.shape)[0]
        share = mask[y : y + h, x : x + w].mean()
        band = next((b for b in PLATE_BANDS if b[0] <= h < b[1]), None)
        if band is None:
            below += 1
            continue
        bands[band][1] += 1
        bands[band][0] += int(share >= COVERED)
        if share < COVERED:
            missed.append({"file": name, "height": h, "masked": round(float(share), 2)})
        plate = np.zeros_like(mask)
        pad = int(0.3 * h)
        plate[max(0, y - pad) : y + h + pad, max(0, x - pad) : x + w + pad] = True
        patches.append(_patches(mask & ~plate))
        outside.append(float((mask & ~plate).mean()))
    total = sum(n for _, n in bands.values())
    return {"photos": len(labels), "plates_at_or_above_16px": total, "below_16px": below,
            "masked": sum(k for k, _ in bands.values()), "recall": round(sum(k for k, _ in bands.values()) / max(total, 1), 4),
            "recall_by_plate_height_px": {f"{a}-{b}": {"plates": n, "recall": round(k / n, 3) if n else None} for (a, b), (k, n) in bands.items()},
            "missed": missed, "patches_outside_the_plate": {"mean": round(float(np.mean(patches)), 2), "max": int(np.max(patches))},
            "masked_share_outside_the_plate": {"mean": round(float(np.mean(outside)), 4), "max": round(float(np.max(outside)), 4)}}


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
    args = parser.parse_args()
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
                           ("dashcam", lambda: dashcam(detectors, config, version, Path(folder), judges)),
                           ("face_videos", lambda: videos(detectors, config, version, Path(folder)))):
            result[name] = part()
            print(json.dumps({name: result[name]}, default=_plain), file=sys.stderr, flush=True)  # each part as it is done
    print(json.dumps(result, indent=1, default=_plain))


def _plain(value):
    """numpy scalars as Python numbers."""
    return value.item() if hasattr(value, "item") else str(value)


if __name__ == "__main__":
    main()
