"""What a user hands a command: files, folders (searched recursively) and globs of pictures and videos.

Example:
    >>> expand_inputs(["dashcam/", "photos/*.jpg"])      # doctest: +SKIP
    [(PosixPath('dashcam/a.mp4'), 'a.mp4'), (PosixPath('photos/b.jpg'), 'b.jpg')]
"""

from __future__ import annotations

import glob
from pathlib import Path

__all__ = ["expand_inputs", "VIDEO_SUFFIXES", "IMAGE_SUFFIXES"]

# What cameras and phones write: MP4/MOV, Matroska and WebM, AVI (MJPEG dashcams), MPEG-TS and AVCHD
# (dashcams, camcorders), 3GP (older phones).
VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".3gp"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def expand_inputs(patterns: list[str]) -> list[tuple[Path, str]]:
    """(file, name relative to the folder it was found in) for every picture or video the patterns
    name: a file, a folder (recursively) or a glob (relative to the part before the first wildcard)."""
    found: dict[Path, str] = {}
    wanted = VIDEO_SUFFIXES | IMAGE_SUFFIXES
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            for p in sorted(path.rglob("*")):
                if p.is_file() and p.suffix.lower() in wanted:
                    found.setdefault(p, p.relative_to(path).as_posix())
        elif path.is_file():
            found.setdefault(path, path.name)
        else:
            base = Path(*[part for part in Path(pattern).parts[: next((i for i, part in enumerate(Path(pattern).parts)
                                                                         if glob.has_magic(part)), len(Path(pattern).parts))]]) or Path(".")
            for p in sorted(Path(m) for m in glob.glob(pattern, recursive=True)):
                if p.is_file() and p.suffix.lower() in wanted:
                    found.setdefault(p, p.relative_to(base).as_posix() if p.is_relative_to(base) else p.name)
    return list(found.items())
