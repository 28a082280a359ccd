"""DVC stage curate@R: scenarios, near-duplicates, balance and grouped splits -> catalog/curated.lance.

usage: python -m pipelines.curate REGION METRICS_JSON
"""

from curation.datasets.curate import curate_region
from pipelines._common import run_region_stage

if __name__ == "__main__":
    run_region_stage(curate_region)
