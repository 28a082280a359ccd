"""DVC stage train@R: fine-tune on the region's dataset in the region; test metrics and plots data out.

usage: python -m pipelines.train REGION METRICS_JSON PLOTS_DIR
"""

import json
import sys
from pathlib import Path

from curation.datasets.train import train_region
from pipelines._common import stage_store, write_metrics


def main(region: str, metrics: str, plots: str) -> None:
    params, store = stage_store(region)
    document, curves = train_region(store, params)
    print(json.dumps(document, indent=1))
    write_metrics(metrics, document)
    for name, rows in curves.items():  # aggregates only: dvc plots show reads them
        write_metrics(str(Path(plots) / f"{name}.json"), rows)


if __name__ == "__main__":
    main(*sys.argv[1:])
