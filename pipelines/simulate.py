"""DVC stage simulate@R: the embedded default fleet upload in the region's landing zone.

usage: python -m pipelines.simulate REGION LANDING
"""

import shutil
import sys
import tempfile
from pathlib import Path

from curation.sources.simulator import simulate_fleet
from pipelines._common import stage_store, store_key


def main(region: str, landing: str) -> None:
    params, store = stage_store(region)
    landing = store_key(store, landing)  # refuses a landing outside the region's store
    target = store.path(landing, "write")
    if store.local:
        shutil.rmtree(target, ignore_errors=True)
        simulate_fleet(Path(target), params, region)
        return
    with tempfile.TemporaryDirectory() as folder:
        simulate_fleet(Path(folder), params, region)
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file():
                store.write_bytes(f"{landing}/{path.relative_to(folder)}", path.read_bytes())


if __name__ == "__main__":
    main(*sys.argv[1:])
