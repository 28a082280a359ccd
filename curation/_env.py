"""Offline defaults, applied once before ultralytics, DVC or LanceDB are imported.

No code path of the platform may need the internet: ultralytics must not download fonts or
weights, DVC must not send analytics, and ultralytics must keep its settings in the project.
"""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", str(PROJECT_ROOT / ".ultralytics"))
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("LANCEDB_LOG", "error")


def _libc():
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return None


_LIBC = _libc()


def trim_heap() -> None:
    """Return the heap's free pages to the OS. glibc raises its mmap threshold each time a large
    block is freed; after that, decoded frames (4 to 16 MB) come from the heap, whose free pages it
    keeps, so resident memory grew with clip length (`curation redact --no-verify`, 1280x960: 716 MB
    for 10 s, 1,045 MB for 30 s). Decode loops call this every few dozen frames. (A fixed mmap
    threshold kept memory flat too, but cost 17 % of the speed in page faults.)"""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def data_file(relative: str) -> Path:
    """A project file that code reads, named by its path from the project root. Name it literally:
    `curation policy check` finds these calls and requires the file among the stage's DVC deps."""
    return PROJECT_ROOT / relative
