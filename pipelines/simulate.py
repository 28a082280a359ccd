"""DVC stage simulate@R: the embedded default fleet upload in the region's landing zone.

usage: python -m pipelines.simulate REGION LANDING METRICS_JSON

The landing zone is a drop zone that ingest empties, so it is no out of this stage: METRICS_JSON
(what was uploaded, counted) is, and ingest@R depends on it.
"""

import shutil
import sys
import tempfile
from pathlib import Path

from curation.sources.simulator import simulate_fleet
from pipelines._common import stage_store, store_key, write_metrics


def main(region: str, landing: str, metrics: str) -> None:
    params, store = stage_store(region)
    landing = store_key(store, landing)  # refuses a landing outside the region's store
    target = store.path(landing, "write")
    if store.local:
        shutil.rmtree(target, ignore_errors=True)
        manifest = simulate_fleet(Path(target), params, region)
    else:
        with tempfile.TemporaryDirectory() as folder:
            manifest = simulate_fleet(Path(folder), params, region)
            for path in sorted(Path(folder).rglob("*")):
                if path.is_file():
                    store.write_bytes(f"{landing}/{path.relative_to(folder)}", path.read_bytes())
    write_metrics(metrics, {"region": region, "vehicles": len(manifest["vehicles"]), "events": len(manifest["events"]),
                            "camera_files": sum(len(e["cameras"]) for e in manifest["events"])})


if __name__ == "__main__":
    main(*sys.argv[1:])
