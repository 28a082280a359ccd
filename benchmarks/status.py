"""`curation status` on a catalog of 100k clips (rows generated, no video). Prints JSON.

usage: python benchmarks/status.py [--clips 100000]
"""

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from builders import make_params  # noqa: E402
from curation.policy.params import load_params  # noqa: E402
from curation.sources.ingest import summarize  # noqa: E402
from curation.storage.catalog import Catalog  # noqa: E402
from curation.storage.records import Arrival, Clip, to_table  # noqa: E402
from curation.storage.store import RegionStore  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=100_000)
    args = parser.parse_args()
    n = args.clips
    rng = np.random.default_rng(0)
    ids = [f"{i:064x}" for i in range(n)]
    with tempfile.TemporaryDirectory() as folder:
        store = RegionStore(load_params(make_params(Path(folder))), "cn", actor="benchmark")
        catalog = Catalog(store)
        now = datetime(2026, 6, 1, tzinfo=timezone.utc)
        text = lambda value: np.full(n, value, dtype=object)  # noqa: E731
        clips = {"clip_id": ids, "event_id": text("e"), "vehicle": text("v"), "camera": text("front"), "layout": text("saved"),
                 "start_time": [now] * n, "duration_s": rng.uniform(1, 60, n), "fps": np.full(n, 36.0), "frames": rng.integers(36, 2160, n),
                 "width": np.full(n, 1280), "height": np.full(n, 960), "codec": text("h264"), "size_bytes": rng.integers(1e6, 8e7, n),
                 "sha256": ids, "source_uri": text("raw/x.mp4"), "trigger": text("user_interaction_honk"), "consent": np.ones(n, bool),
                 "truncated": rng.random(n) < 0.01, "has_sei": np.ones(n, bool), "zone_frames": np.zeros(n, np.int64),
                 "groundtruth_uri": [None] * n, "status": text("cataloged")}
        catalog.table("clips").add(to_table(Clip, clips))
        outcome = rng.choice(["cataloged", "quarantined", "duplicate"], n, p=[0.9, 0.07, 0.03])
        arrivals = {"source_uri": ids, "sha256": ids, "size_bytes": np.full(n, 1000), "outcome": outcome,
                    "reason": [("truncated" if o == "quarantined" else None) for o in outcome], "detail": [None] * n,
                    "clip_id": ids, "duplicate_of": [None] * n}
        catalog.table("arrivals").add(to_table(Arrival, arrivals))
        start = time.perf_counter()
        summary = summarize(Catalog(store), "cn")
        seconds = time.perf_counter() - start
    print(json.dumps({"benchmark": "status", "clips": n, "seconds": round(seconds, 3), "arrived": summary["totals"]["arrived"]}, indent=1))


if __name__ == "__main__":
    main()
