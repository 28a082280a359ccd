"""What a worker holds: one stage, one region's params and credentials, and that region's store.

Every engine builds its workers from a :class:`WorkerSpec`, the same way: the params of the
stage's region only (other regions' stores are not even named), the key variables of that region
only (other regions' variables are removed from a worker process's environment), and an audit log
that only collects: workers never write the region's log, the commit step does.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, replace

from curation.engine.stage import AuditEntry, Result, Stage, Task
from curation.errors import CurationError

__all__ = ["Worker", "WorkerSpec", "one_line"]


def one_line(error: BaseException, limit: int = 300) -> str:
    """An exception as one short line: our errors as they read, others with their type."""
    text = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    if not isinstance(error, CurationError):
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker is built from; pickled to each worker process or Ray actor."""

    stage: Stage  # not set up yet: no models, no store
    region: str
    params: dict  # params.yaml reduced to this one region, as validated JSON
    actor: str  # who the audit records name: the caller's actor
    credentials: dict[str, str]  # this region's S3 key variables (empty for a local folder)
    foreign: tuple[str, ...]  # names of other regions' key variables, removed from the worker's environment

    @classmethod
    def of(cls, stage: Stage, store) -> "WorkerSpec":
        params, region = store.params, store.region
        document = params.model_dump(mode="json")
        document["regions"] = {region: document["regions"][region]}
        own, foreign = {}, set()
        for name, policy in params.regions.items():
            if policy.s3 is None:
                continue
            variables = (policy.s3.key_env, policy.s3.secret_env)
            if name == region:
                own = {v: os.environ[v] for v in variables if v in os.environ}
            else:
                foreign.update(variables)
        return cls(stage, region, document, store.actor, own, tuple(sorted(foreign - set(own))))


class PendingAudit:
    """Stands in for the region's audit log inside a worker: records wait for the commit step."""

    def __init__(self, worker: str):
        self.worker, self._entries = worker, []

    def append(self, actor: str, action: str, obj: str, sha256: str | None = None, **detail) -> AuditEntry:
        entry = AuditEntry(actor, action, obj, sha256, {**detail, "worker": self.worker})
        self._entries.append(entry)
        return entry

    def drain(self) -> tuple[AuditEntry, ...]:
        entries, self._entries = tuple(self._entries), []
        return entries


class Worker:
    """A set-up stage bound to its region's store; calling it runs one task and never raises for the task's sake.

    ``isolate``: this is a process of its own, so its environment is reduced to the region's credentials.
    """

    def __init__(self, spec: WorkerSpec, isolate: bool):
        from curation.policy.params import Params
        from curation.storage.store import RegionStore

        if isolate:
            for variable in spec.foreign:
                os.environ.pop(variable, None)
            os.environ.update(spec.credentials)
        self.store = RegionStore(Params.model_validate(spec.params), spec.region, actor=spec.actor)
        self.audit = self.store.audit = PendingAudit(f"{socket.gethostname()}:{os.getpid()}")
        self.stage = spec.stage
        self.store.makedirs(f"tmp/{self.stage.name}")
        self.stage.setup(self.store)

    def __call__(self, task: Task) -> Result:
        try:
            result = self.stage.process(task)
        except Exception as error:  # noqa: BLE001  (one clip's failure is that clip's result, not the run's)
            scratch = self.stage.scratch(task)
            partial = scratch if _exists(self.store, scratch) else None
            result = Result(task.id, output=partial, error=self._explain(error))
        return replace(result, audit=result.audit + self.audit.drain())

    def _explain(self, error: Exception) -> str:
        if isinstance(error, PermissionError) and not self.store.local:  # S3's 403: a region's key opens its own bucket only
            return (f"access denied to region {self.store.region!r}'s credentials ({one_line(error)}); "
                    "a worker holds its own region's keys only")
        return one_line(error)


def _exists(store, key: str) -> bool:
    try:
        return store.exists(key)
    except Exception:  # noqa: BLE001  (the store itself may be what failed)
        return False
