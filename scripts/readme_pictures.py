"""Pictures for the README: `curation redact` before/after on the real test images, and
`curation label` on real frames (a dashcam frame, a TuSimple frame, an intersection photo).

usage: python scripts/readme_pictures.py   (writes docs/redaction_city.png, docs/redaction_plate.png, docs/redaction_dashcam.jpg,
                                          docs/redaction_cn_plates.jpg, docs/labels_real.jpg, docs/lanes_real.jpg)
"""

import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TESTDATA = ROOT.parent / "shared" / "testdata"


def redacted(name: str, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    source = TESTDATA / name
    target = folder / f"redacted{source.suffix}"
    subprocess.run([str(Path(sys.executable).parent / "curation"), "redact", str(source), "-o", str(target), "--region", "us"],
                   check=True, cwd=ROOT, capture_output=True)
    return cv2.imread(str(source)), cv2.imread(str(target))


def main() -> None:
    (ROOT / "docs").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        before, after = redacted("deface_city.jpg", Path(folder))
        cv2.imwrite(str(ROOT / "docs" / "redaction_city.png"), cv2.resize(np.hstack([before, after]), None, fx=0.6, fy=0.6))
        before, after = redacted("eb_test_lp_image.png", Path(folder))
        crop = (slice(900, 1400), slice(1150, 1750))
        side = np.hstack([before[crop], after[crop]])
        cv2.imwrite(str(ROOT / "docs" / "redaction_plate.png"), side)
        cv2.imwrite(str(ROOT / "docs" / "redaction_dashcam.jpg"), dashcam_frames(Path(folder)), [cv2.IMWRITE_JPEG_QUALITY, 85])
        cv2.imwrite(str(ROOT / "docs" / "redaction_cn_plates.jpg"), cn_plates(Path(folder)), [cv2.IMWRITE_JPEG_QUALITY, 85])
        cv2.imwrite(str(ROOT / "docs" / "labels_real.jpg"), labeled_real(Path(folder)), [cv2.IMWRITE_JPEG_QUALITY, 85])
    cv2.imwrite(str(ROOT / "docs" / "lanes_real.jpg"), lanes_real(), [cv2.IMWRITE_JPEG_QUALITY, 85])


def dashcam_frames(folder: Path) -> np.ndarray:
    """Real dashcam video before (left) and after `curation redact` (right): frame 20 of each Udacity clip."""
    sys.path.insert(0, str(ROOT))
    from curation.redaction.video import stream_frames

    rows = []
    for name in ("udacity_test_video.mp4", "udacity_solidWhiteRight.mp4"):
        source = TESTDATA / "real" / "dashcam" / name
        target = folder / f"redacted_{name}"
        subprocess.run([str(Path(sys.executable).parent / "curation"), "redact", str(source), "-o", str(target), "--region", "us"],
                       check=True, cwd=ROOT, capture_output=True)
        pair = [next(f for i, (_, f, _) in enumerate(stream_frames(str(path))) if i == 20) for path in (source, target)]
        rows.append(cv2.resize(np.hstack(pair)[..., ::-1], (1280, int(1280 * pair[0].shape[0] / (2 * pair[0].shape[1])))))
    return np.vstack(rows)


def cn_plates(folder: Path) -> np.ndarray:
    """CCPD photos before (top) and after `curation redact --region cn` (bottom): a blurred plate, a
    close-up, a turned one and a slanted one, which the plate models missed before the pass at 320
    and the turned views."""
    pairs = []
    for name in ("blur/blur3.jpg", "fn/fn4.jpg", "rotate/rot2.jpg", "tilt/tilt2.jpg"):
        source = TESTDATA / "real" / "plates_cn_unlabeled" / "sample" / name
        target = folder / f"cn_{source.stem}.png"
        subprocess.run([str(Path(sys.executable).parent / "curation"), "redact", str(source), "-o", str(target), "--region", "cn"],
                       check=True, cwd=ROOT, capture_output=True)
        pairs.append([cv2.resize(cv2.imread(str(path)), (300, 483)) for path in (source, target)])
    return np.vstack([np.hstack([pair[row] for pair in pairs]) for row in (0, 1)])


def labeled_real(folder: Path) -> np.ndarray:
    """`curation label --draw` (its defaults: yolov8n-coco, lit lamps, the learned lanes) on real frames none
    of its models was trained or tuned on."""
    real = TESTDATA / "real"
    lights = sorted((real / "traffic_lights" / "images").iterdir())[12]  # one of the photos the lamp finder was not tuned on
    inputs = [real / "dashcam" / "udacity_vd_test2.jpg", real / "lanes_unlabeled" / "3.jpg", real / "dashcam" / "udacity_p1_solidWhiteCurve.jpg", lights]
    subprocess.run([sys.executable, "-m", "curation.cli", "label", *map(str, inputs), "-o", str(folder / "labels"), "--draw"],
                   check=True, cwd=ROOT, capture_output=True)
    tiles = []
    for source in inputs:
        drawn = cv2.imread(str(folder / "labels" / "draw" / f"{source.name}.jpg"))
        if source == lights:  # the photo is 800x800: show the lights' part at full size
            drawn = drawn[120:480, 0:640]
        tiles.append(cv2.resize(drawn, (640, 360)))
    return np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])


def lanes_real() -> np.ndarray:
    """The learned lanes (magenta) over the hand labels (green) on four held-out real frames."""
    import json

    sys.path.insert(0, str(ROOT))
    from curation.perception.lane_net import MODEL, LearnedLanes

    lanes = LearnedLanes(MODEL)
    labels = ROOT / "tests" / "data" / "real_lanes"
    picks = [("tusimple_lanes_unlabeled.json", "lanes_unlabeled", "1.jpg"), ("tusimple_lanes_unlabeled.json", "lanes_unlabeled", "2.jpg"),
             ("udacity_heldout.json", "dashcam", "udacity_vd_test3.jpg"), ("udacity_heldout.json", "dashcam", "udacity_all_straight_lines2.jpg")]
    tiles = []
    for file, folder, name in picks:
        truth = next(json.loads(line) for line in (labels / file).read_text().splitlines() if json.loads(line)["raw_file"] == name)
        picture = cv2.imread(str(TESTDATA / "real" / folder / name))
        found = lanes(np.ascontiguousarray(picture[..., ::-1]))
        width = max(1, picture.shape[0] // 240)
        for xs in truth["lanes"]:
            points = np.array([(x, y) for x, y in zip(xs, truth["h_samples"]) if x >= 0], np.int32)
            cv2.polylines(picture, [points], False, (0, 220, 0), 3 * width)
        for lane in found:
            points = np.array([(x, y) for x, y in zip(lane.xs, lane.ys) if x >= 0], np.int32)
            cv2.polylines(picture, [points], False, (255, 0, 255), width)
        tiles.append(cv2.resize(picture, (640, 360)))
    return np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])


if __name__ == "__main__":
    main()
