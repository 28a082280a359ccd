"""Plate corners of the CCPD sample photos, read off the annotation CCPD's authors drew into them.

Each photo of ../shared/testdata/real/plates_cn_unlabeled/sample/ (except np/, cars without a
plate) shows its plate's bounding box as a yellow rectangle and its four vertices as red dots (the
annotation CCPD encodes in its file names, which this copy lost). This finds the largest yellow
rectangle outline and the four largest red dots within 25 px of it, and writes their centres as
the plate's corners (tests/data/real_plates_cn/corners.json). Every result was drawn and looked at.

usage: python scripts/ccpd_truth.py [SAMPLE_FOLDER] [OUT.json]
"""

import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "testdata" / "real" / "plates_cn_unlabeled" / "sample"
OUT = ROOT / "tests" / "data" / "real_plates_cn" / "corners.json"


def yellow_box(image: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) of the largest yellow rectangle outline (a thin ring, not a filled area)."""
    b, g, r = (image[..., i].astype(int) for i in range(3))
    mask = ((r > 180) & (g > 180) & (b < 110) & (np.abs(r - g) < 60)).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    rings = [tuple(s[:4]) for s in stats[1:count] if s[2] > 30 and s[3] > 15 and s[4] < 0.5 * s[2] * s[3]]
    return max(rings, key=lambda s: s[2] * s[3], default=None)


def red_dots(image: np.ndarray, box: tuple[int, int, int, int], pad: int = 25) -> list[list[float]]:
    """Centres of the four largest red dots near ``box``."""
    b, g, r = (image[..., i].astype(int) for i in range(3))
    mask = ((r > 170) & (g < 90) & (b < 90)).astype(np.uint8)
    x, y, w, h = box
    near = np.zeros_like(mask)
    near[max(0, y - pad) : y + h + pad, max(0, x - pad) : x + w + pad] = 1
    count, _, stats, centres = cv2.connectedComponentsWithStats(mask & near)
    dots = sorted(((stats[i][4], centres[i]) for i in range(1, count) if stats[i][4] >= 15), key=lambda d: -d[0])[:4]
    return [[round(float(c[0]), 1), round(float(c[1]), 1)] for _, c in dots]


def main() -> None:
    sample = Path(sys.argv[1]) if len(sys.argv) > 1 else SAMPLE
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else OUT
    corners = {}
    for photo in sorted(sample.rglob("*.jpg")):
        if photo.parent.name == "np":
            continue
        image = cv2.imread(str(photo))
        box = yellow_box(image)
        dots = red_dots(image, box) if box else []
        if len(dots) != 4:
            raise SystemExit(f"{photo}: found {len(dots)} corner dots, not 4")
        corners[str(photo.relative_to(sample))] = dots
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("{\n" + ",\n".join(f" {json.dumps(name)}: {json.dumps(dots)}" for name, dots in corners.items()) + "\n}\n")
    print(f"{len(corners)} plates -> {out}")


if __name__ == "__main__":
    main()
