"""DVC stage redact@R: every cataloged clip redacted, verified, recorded; raw media retired.

usage: python -m pipelines.redact REGION METRICS_JSON
"""

import json
import sys

from curation.redaction.stage import redact_region
from pipelines._common import stage_store, write_metrics


def main(region: str, metrics: str) -> None:
    params, store = stage_store(region)
    document = redact_region(store, params)
    print(json.dumps(document, indent=1))
    write_metrics(metrics, document)


if __name__ == "__main__":
    main(*sys.argv[1:])
