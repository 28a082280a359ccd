"""DVC stage curate@R: scenarios, near-duplicates, balance and grouped splits -> catalog/curated.lance.

usage: python -m pipelines.curate REGION METRICS_JSON
"""

import json
import sys

from curation.datasets.curate import curate_region
from pipelines._common import stage_store, write_metrics


def main(region: str, metrics: str) -> None:
    params, store = stage_store(region)
    document = curate_region(store, params)
    print(json.dumps(document, indent=1))
    write_metrics(metrics, document)


if __name__ == "__main__":
    main(*sys.argv[1:])
