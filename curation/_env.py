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


def data_file(relative: str) -> Path:
    """A project file that code reads, named by its path from the project root. Name it literally:
    `curation policy check` finds these calls and requires the file among the stage's DVC deps."""
    return PROJECT_ROOT / relative
