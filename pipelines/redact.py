"""DVC stage redact@R: every cataloged clip redacted, verified, recorded; raw media retired.

usage: python -m pipelines.redact REGION METRICS_JSON [--workers N|auto]
"""

from curation.redaction.stage import redact_region
from pipelines._common import run_region_stage

if __name__ == "__main__":
    run_region_stage(redact_region, engine=True)
