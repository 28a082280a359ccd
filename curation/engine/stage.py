"""The per-clip stage interface, as nvidia-cosmos/cosmos-curate shapes it: declare resources, set up
once per worker, then process tasks. The engine only maps ``process`` over tasks.

A stage object is built in the calling process from its params (no models, no store yet), pickled
to every worker, and set up there with that worker's own :class:`RegionStore`. ``process`` writes
its output, if any, to ``self.scratch(task)`` (a temporary key in the region's store) and returns a
:class:`Result`; the commit step in the calling process moves it into place or deletes it.

Example:
    >>> class Size(Stage):
    ...     name = "size"
    ...     def process(self, task):
    ...         return Result(task.id, record=self.store.size(task.payload))
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AuditEntry", "Resources", "Result", "Stage", "Task"]

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class Resources:
    """What one worker of a stage holds: CPU cores, and GPUs where a GPU is present (fractions allowed)."""

    cpus: float = 1.0
    gpus: float = 0.0

    def __post_init__(self):
        if self.cpus <= 0 or self.gpus < 0:
            raise ValueError(f"Resources: cpus must be > 0 and gpus >= 0, got cpus={self.cpus}, gpus={self.gpus}")


@dataclass(frozen=True)
class Task:
    """One clip's work: ``id`` (a clip id, part of a store key: no slashes) and what the stage needs to do it."""

    id: str
    payload: Any = None

    def __post_init__(self):
        if not isinstance(self.id, str) or not _SAFE_ID.match(self.id):
            raise ValueError(f"Task.id must be 1-128 of [A-Za-z0-9_.-], not starting with '.', '-' or '_'; got {self.id!r}")


@dataclass(frozen=True)
class AuditEntry:
    """An audit record a worker wants written; the commit step appends it to the region's log."""

    actor: str
    action: str
    object: str
    sha256: str | None = None
    detail: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Result:
    """What a worker returns for a task.

    ``record``: the per-clip output record. ``output``: the temporary key of the file it wrote in
    the region's store (None if it wrote none). ``audit``: records for the region's log (filled by
    the engine from what the worker's store collected). ``error``: one line when the task failed.
    """

    task_id: str
    record: Any = None
    output: str | None = None
    audit: tuple[AuditEntry, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Stage:
    """Base of per-clip stages. Subclasses set ``name`` (and ``resources``) and implement ``process``."""

    name: str = "stage"
    resources: Resources = Resources()
    suffix: str = ""  # of the temporary output (".mp4" where a library picks the format by name)

    def setup(self, store) -> None:
        """Once per worker, before its first task: keep the worker's store, load models here."""
        self.store = store

    def process(self, task: Task) -> Result:
        raise NotImplementedError

    def scratch(self, task: Task) -> str:
        """The temporary key of a task's output: the same on a rerun, so a crashed attempt is overwritten."""
        return f"tmp/{self.name}/{task.id}{self.suffix}"
