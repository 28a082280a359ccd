"""DVC stage ingest@R: landing zone -> catalog (clips, frames, arrivals) | quarantine.

usage: python -m pipelines.ingest REGION LANDING METRICS_JSON
"""

import json
import sys

from curation.sources.ingest import ingest
from pipelines._common import stage_store, store_key, write_metrics


def main(region: str, landing: str, metrics: str) -> None:
    params, store = stage_store(region)
    summary = ingest(store, store_key(store, landing), params.ingest)
    print(json.dumps(summary, indent=1))
    write_metrics(metrics, summary)


if __name__ == "__main__":
    main(*sys.argv[1:])
