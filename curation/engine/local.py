"""This machine's engines: in process, or a pool of spawned worker processes.

Spawned, not forked: ONNX Runtime's and torch's thread pools do not survive a fork. Each worker is
built from a :class:`WorkerSpec` alone (one region's params, one region's credentials) and sets its
stage up once, on its first task. At most two tasks per worker are in flight, so a crash loses few.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from curation.engine.stage import Result, Task
from curation.engine.worker import Worker, WorkerSpec, one_line
from curation.errors import EngineError

__all__ = ["in_process", "process_pool"]

_spec: WorkerSpec | None = None
_worker: Worker | None = None


def in_process(spec: WorkerSpec, tasks: Iterable[Task]) -> Iterator[Result]:
    """No pool: the calling process is the one worker (workers: 1)."""
    try:
        worker = Worker(spec, isolate=False)
    except Exception as error:  # noqa: BLE001
        raise EngineError(f"{spec.stage.name}: worker setup failed: {one_line(error)}") from None
    for task in tasks:
        yield worker(task)


def _start(spec: WorkerSpec, threads: int) -> None:
    global _spec
    _spec = spec
    _die_with_parent()
    # Workers share the cores: each gets its share for ONNX Runtime, OpenCV and torch, not all of them.
    os.environ["CURATION_THREADS"] = str(threads)


def _die_with_parent() -> None:
    """A worker must not outlive a killed stage: it would go on writing a clip's temporary output
    while the rerun writes the same key (Linux: PR_SET_PDEATHSIG; elsewhere the pool's pipes end it)."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1


def _run(task: Task) -> Result:
    global _worker
    if _worker is None:  # set up here, not in the initializer: a failure then comes back with its message
        _worker = Worker(_spec, isolate=True)
    return _worker(task)


def process_pool(spec: WorkerSpec, tasks: Iterable[Task], workers: int) -> Iterator[Result]:
    """Results as they complete from ``workers`` spawned processes."""
    context = multiprocessing.get_context("spawn")
    pending, queue = set(), iter(tasks)
    threads = max(1, len(os.sched_getaffinity(0)) // workers)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start, initargs=(spec, threads)) as pool:
        try:
            while True:
                for task in queue:
                    pending.add(_guard(spec, pool.submit, _run, task))
                    if len(pending) >= 2 * workers:
                        break
                if not pending:
                    return
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield _guard(spec, future.result)
        finally:
            for future in pending:
                future.cancel()


def _guard(spec: WorkerSpec, call, *args):
    """What escapes a worker is the pool breaking or the stage's setup failing: either stops the run."""
    try:
        return call(*args)
    except BrokenProcessPool:
        raise EngineError(f"{spec.stage.name}: a worker process died (killed, or out of memory); the clips in flight "
                          "are not committed and a rerun redoes them") from None
    except Exception as error:  # noqa: BLE001
        raise EngineError(f"{spec.stage.name}: worker setup failed: {one_line(error)}") from None
