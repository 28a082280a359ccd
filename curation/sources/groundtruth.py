"""The simulator's ground truth for a cataloged clip (``raw/groundtruth/<event>.jsonl``), by frame index.

Real uploads have none; quality metrics are computed where it exists.
"""

from __future__ import annotations

import json

from curation.storage.store import RegionStore

__all__ = ["truth_lines"]


def truth_lines(store: RegionStore, clip: dict) -> dict[int, dict] | None:
    """Frame index -> {frame, objects, lanes} for the clip's camera, or None without ground truth."""
    uri = clip["groundtruth_uri"]
    if not uri or not store.exists(uri):
        return None
    lines = (json.loads(line) for line in store.read_text(uri).splitlines() if line.strip())
    return {line["frame"]: line for line in lines if line["camera"] == clip["camera"]}
