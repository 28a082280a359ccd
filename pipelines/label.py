"""DVC stage label@R: auto-labels (objects, tracks, lane lines) on every verified redacted clip.

usage: python -m pipelines.label REGION METRICS_JSON
"""

import json
import sys

from curation.labeling.stage import label_region
from pipelines._common import stage_store, write_metrics


def main(region: str, metrics: str) -> None:
    params, store = stage_store(region)
    document = label_region(store, params)
    print(json.dumps(document, indent=1))
    write_metrics(metrics, document)


if __name__ == "__main__":
    main(*sys.argv[1:])
