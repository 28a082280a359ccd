"""Map a per-clip stage over tasks with the engine params choose; commit each result as it arrives.

Example:
    >>> for result in run(stage, tasks, store):                        # doctest: +SKIP
    ...     commit(store, result, f"redacted/{result.task_id}.mp4")
    ...     catalog.add(result.record)                                  # the stage's own rows
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence

from tqdm import tqdm

from curation.engine.stage import Result, Stage, Task
from curation.engine.worker import WorkerSpec

__all__ = ["commit", "local_workers", "run"]


def local_workers(engine, stage: Stage) -> int:
    """Worker processes for the local engine: ``auto`` is the usable cores over the stage's cpus."""
    if engine.workers != "auto":
        return engine.workers
    return max(1, int(len(os.sched_getaffinity(0)) // stage.resources.cpus))


def run(stage: Stage, tasks: Sequence[Task], store, engine=None, progress: bool = True) -> Iterator[Result]:
    """Results as they complete, in the calling process, from the engine of ``engine`` (default ``params.engine``).

    Workers are built from ``store``'s region alone. A task whose ``process`` raises comes back as a
    failed result; a worker that dies or cannot set up stops the run with an
    :class:`~curation.errors.EngineError` after the results already yielded (commit those; a rerun
    redoes the rest).
    """
    from curation.engine.local import in_process, process_pool

    if not tasks:
        return
    engine = engine or store.params.engine
    spec = WorkerSpec.of(stage, store)
    if engine.kind == "ray":
        from curation.engine.cluster import ray_actors

        results = ray_actors(spec, tasks, engine)
    else:
        workers = min(local_workers(engine, stage), max(1, len(tasks)))
        results = in_process(spec, tasks) if workers == 1 else process_pool(spec, tasks, workers)
    quiet = not progress or bool(os.environ.get("CI")) or not sys.stderr.isatty()
    try:
        with tqdm(results, total=len(tasks), desc=f"{stage.name} {store.region}", unit="clip", disable=quiet) as bar:
            yield from bar
    finally:
        results.close()  # a caller that stops early stops the pool now, not when the generator is collected


def commit(store, result: Result, destination: str | None = None, verified: bool = True) -> bool:
    """The commit step's common part, in the calling process: the worker's audit records go to the
    region's log; its output moves to ``destination`` when the task succeeded and was verified, and
    is deleted otherwise. Returns whether the output is now in place. Catalog rows and retention
    are the stage's own, after this.
    """
    for entry in result.audit:
        store.audit.append(entry.actor, entry.action, entry.object, entry.sha256, **entry.detail)
    if result.output is None or not store.exists(result.output):
        return False
    if result.ok and verified and destination is not None:
        store.move(result.output, destination)
        return True
    store.delete(result.output, reason=result.error or "not verified")
    return False
