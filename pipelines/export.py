"""DVC stage export@R: the curated frames as a dataset in <store>/datasets/<name>/.

usage: python -m pipelines.export REGION METRICS_JSON
"""

import json
import sys

from curation.datasets.export import export_region
from pipelines._common import stage_store, write_metrics


def main(region: str, metrics: str) -> None:
    params, store = stage_store(region)
    document = export_region(store, params)
    print(json.dumps(document, indent=1))
    write_metrics(metrics, document)


if __name__ == "__main__":
    main(*sys.argv[1:])
