"""DVC stage export@R: the curated frames as a dataset in <store>/datasets/<name>/.

usage: python -m pipelines.export REGION METRICS_JSON
"""

from curation.datasets.export import export_region
from pipelines._common import run_region_stage

if __name__ == "__main__":
    run_region_stage(export_region)
