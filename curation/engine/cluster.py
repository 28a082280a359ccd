"""Ray: one actor per worker (so setup runs once), placed on the region's own nodes only.

A node serves a region when it was started with the region's custom resource, e.g. on cn's
machines ``ray start --resources '{"region_cn": 1}'``; every actor asks for a sliver of it, so Ray
never schedules cn's work on a node without it. ``address: null`` starts Ray on this machine
holding the resource of the one region being run. The pool is sized from what Ray reports for
those nodes, never more actors than their CPUs divided by the stage's cpus (on 2 cores a pool that
asked for more has deadlocked).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence

from curation.engine.stage import Result, Task
from curation.engine.worker import Worker, WorkerSpec, one_line
from curation.errors import EngineError

__all__ = ["actors_that_fit", "loopback_only", "ray_actors", "region_resource"]

SLIVER = 0.001  # of a node's region resource per actor: up to 1,000 actors a node


def region_resource(region: str) -> str:
    return f"region_{region}"


def loopback_only(argv: list[str]) -> list[str]:
    """``argv`` in a network namespace of its own with only loopback up (Ray binds every address it finds)."""
    return ["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *argv]


class _Actor:
    def __init__(self, spec: WorkerSpec):
        self.spec, self.worker = spec, None

    def process(self, task: Task) -> Result:
        if self.worker is None:  # set up on the first task: a failure comes back with its message
            self.worker = Worker(self.spec, isolate=True)
        return self.worker(task)


def actors_that_fit(nodes: list[dict], cpus: float, gpus: float) -> int:
    """Actors of ``cpus`` CPUs (and ``gpus`` GPUs) that nodes of these Ray resources hold, node by node."""
    def fits(node: dict) -> int:  # the small epsilon keeps 0.3 / 0.1 at 3
        cpu = math.floor(node.get("CPU", 0) / cpus + 1e-9)
        return min(cpu, math.floor(node.get("GPU", 0) / gpus + 1e-9)) if gpus else cpu

    return sum(fits(node) for node in nodes)


def _placement(spec: WorkerSpec, workers: int | str, tasks: int) -> tuple[int, float]:
    """How many actors, and GPUs per actor, the region's nodes hold (as Ray reports them)."""
    import ray

    resource, cpus = region_resource(spec.region), spec.stage.resources.cpus
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive") and n["Resources"].get(resource)]
    if not nodes:
        raise EngineError(f"{spec.stage.name}: the Ray cluster has no node for region {spec.region!r}; start that region's nodes "
                          f"with ray start --resources '{{\"{resource}\": 1}}'")
    # A detector stage takes GPUs where the region's nodes have them, and runs on CPU where they have none.
    gpus = spec.stage.resources.gpus if any(n.get("GPU", 0) for n in nodes) else 0.0
    size = min(actors_that_fit(nodes, cpus, gpus), tasks, tasks if workers == "auto" else workers)
    if size < 1:
        raise EngineError(f"{spec.stage.name}: region {spec.region!r}'s Ray nodes hold no worker of {cpus:g} CPUs"
                          + (f" and {gpus:g} GPUs" if gpus else ""))
    return size, gpus


def ray_actors(spec: WorkerSpec, tasks: Sequence[Task], engine) -> Iterator[Result]:
    """Results as they complete from a pool of Ray actors on the region's nodes."""
    import ray
    from ray.util import ActorPool

    started = not ray.is_initialized()
    if started and engine.address is None:
        ray.init(num_cpus=len(os.sched_getaffinity(0)), resources={region_resource(spec.region): 1}, include_dashboard=False,
                 object_store_memory=engine.object_store_mb << 20, log_to_driver=False, configure_logging=False)
    elif started:
        ray.init(address=engine.address, log_to_driver=False, configure_logging=False)
    try:
        size, gpus = _placement(spec, engine.workers, len(tasks))
        options = {"num_cpus": spec.stage.resources.cpus, "num_gpus": gpus, "resources": {region_resource(spec.region): SLIVER}}
        actor = ray.remote(_Actor).options(**options)
        pool = ActorPool([actor.remote(spec) for _ in range(size)])
        try:
            yield from pool.map_unordered(lambda a, task: a.process.remote(task), tasks)
        except ray.exceptions.RayActorError as error:
            raise EngineError(f"{spec.stage.name}: a Ray worker died ({one_line(error)}); the clips in flight are not committed "
                              "and a rerun redoes them") from None
        except ray.exceptions.RayTaskError as error:
            raise EngineError(f"{spec.stage.name}: worker setup failed: {one_line(error.cause or error)}") from None
    finally:
        if started:
            ray.shutdown()
