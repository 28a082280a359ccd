"""Running per-clip stages: in process, a local process pool, or Ray (params.yaml ``engine``).

A stage declares its resources, sets up once per worker and processes one task at a time
(:mod:`curation.engine.stage`); every worker holds one region's params, credentials and store
(:mod:`curation.engine.worker`); :func:`run` yields results as they complete and :func:`commit`
settles each in the calling process.
"""

from curation.engine.run import commit, run
from curation.engine.stage import AuditEntry, Resources, Result, Stage, Task

__all__ = ["AuditEntry", "Resources", "Result", "Stage", "Task", "commit", "run"]
