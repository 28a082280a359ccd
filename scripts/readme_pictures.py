"""Pictures for the README: `curation redact` before/after on the real test images, and
`curation label` on real frames (a dashcam frame, a TuSimple frame, an intersection photo).

usage: python scripts/readme_pictures.py   (writes docs/redaction_city.png, docs/redaction_plate.png, docs/labels_real.jpg)
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
        cv2.imwrite(str(ROOT / "docs" / "labels_real.jpg"), labeled_real(Path(folder)), [cv2.IMWRITE_JPEG_QUALITY, 85])


def labeled_real(folder: Path) -> np.ndarray:
    """`curation label --draw` (its defaults: the real-trained COCO SSD, lit lamps, estimated horizon) on real frames."""
    real = TESTDATA / "real"
    lights = sorted((real / "traffic_lights" / "images").iterdir())[12]  # one of the photos the lamp finder was not tuned on
    inputs = [real / "dashcam" / "udacity_vd_test4.jpg", real / "lanes_unlabeled" / "3.jpg", real / "dashcam" / "udacity_p1_solidWhiteCurve.jpg", lights]
    subprocess.run([sys.executable, "-m", "curation.cli", "label", *map(str, inputs), "-o", str(folder / "labels"), "--draw"],
                   check=True, cwd=ROOT, capture_output=True)
    tiles = []
    for source in inputs:
        drawn = cv2.imread(str(folder / "labels" / "draw" / f"{source.name}.jpg"))
        if source == lights:  # the photo is 800x800: show the lights' part at full size
            drawn = drawn[120:480, 0:640]
        tiles.append(cv2.resize(drawn, (640, 360)))
    return np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])


if __name__ == "__main__":
    main()
