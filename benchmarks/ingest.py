"""Ingest throughput against merely reading the same bytes, in one run. Prints JSON.

usage: python benchmarks/ingest.py [--vehicles 4] [--events 2] [--seconds 4] [--fps 10]
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from builders import make_params  # noqa: E402
from curation.policy.params import load_params  # noqa: E402
from curation.sources.ingest import ingest  # noqa: E402
from curation.sources.simulator import simulate_fleet  # noqa: E402
from curation.storage.store import RegionStore  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vehicles", type=int, default=4)
    parser.add_argument("--events", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--fps", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        params = load_params(make_params(root))
        config = params.simulate.model_validate({**params.simulate.model_dump(), "vehicles": args.vehicles, "events": args.events,
                                                 "seconds": args.seconds, "fps": args.fps, "rates": {}})
        landing = root / "data" / "cn" / "landing"
        simulate_fleet(landing, params, "cn", config, progress=False)
        files = sorted(landing.rglob("*.mp4"))
        start = time.perf_counter()
        size = sum(len(path.read_bytes()) for path in files)
        read_s = time.perf_counter() - start
        store = RegionStore(params, "cn", actor="benchmark")
        start = time.perf_counter()
        summary = ingest(store, "landing", params.ingest, progress=False)
        ingest_s = time.perf_counter() - start
    frames = summary["totals"]["frames"]
    print(json.dumps({
        "benchmark": "ingest", "files": len(files), "frames": frames, "megabytes": round(size / 1e6, 2),
        "resolution": f"{config.width}x{config.height}", "fps": config.fps,
        "read_only": {"seconds": round(read_s, 3), "files_per_s": round(len(files) / read_s, 1)},
        "ingest": {"seconds": round(ingest_s, 3), "files_per_s": round(len(files) / ingest_s, 2), "frames_per_s": round(frames / ingest_s, 1)},
        "ingest_over_read": round(ingest_s / read_s, 1),
    }, indent=1))


if __name__ == "__main__":
    main()
