"""DVC stage label@R: auto-labels (objects, tracks, lane lines) on every verified redacted clip.

usage: python -m pipelines.label REGION METRICS_JSON [--workers N|auto]
"""

from curation.labeling.stage import label_region
from pipelines._common import run_region_stage

if __name__ == "__main__":
    run_region_stage(label_region, engine=True)
