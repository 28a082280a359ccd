"""Small per-clip stages for the engine tests (importable by spawned workers and Ray actors)."""

from __future__ import annotations

import hashlib
import json
import os

import av

from curation.engine import Result, Stage, Task


class Digest(Stage):
    """Decode every frame of a clip; stream one digest per frame into the task's temporary key."""

    name = "digest"
    suffix = ".jsonl"

    def __init__(self, meet=None):
        # A spawn-context Barrier(workers), for local pools: each worker's first task waits until every
        # worker has set up, so every worker does work however unevenly the processes start.
        self.meet = meet

    def setup(self, store) -> None:
        super().setup(store)
        store.audit.append(store.actor, "setup", self.name)  # once per worker: the tests count them

    def process(self, task: Task) -> Result:
        if self.meet is not None:
            self.meet.wait(timeout=300)  # a bound only: the other worker sets up as soon as it takes a task
            self.meet = None
        scratch, frames = self.scratch(task), 0
        with self.store.open(scratch, "wb") as out, self.store.open(task.payload) as source, av.open(source) as container:
            for frame in container.decode(video=0):  # streamed: one frame at a time
                out.write(hashlib.sha256(frame.to_ndarray(format="gray")).hexdigest().encode() + b"\n")
                frames += 1
        digest = self.store.sha256(scratch)
        self.store.audit.append(self.store.actor, "digest", task.payload, digest, frames=frames)
        return Result(task.id, record={"clip": task.payload, "frames": frames, "sha256": digest}, output=scratch)


class Probe(Stage):
    """What a worker can see: its environment's S3 key variables, or a key read around the store's guard or through it."""

    name = "probe"

    def process(self, task: Task) -> Result:
        op, key = task.payload
        if op == "env":
            return Result(task.id, record=sorted(v for v in os.environ if v.startswith("CURATION_S3_")))
        if op == "raw":  # what code that bypassed the guard would get: only the S3 server stands in the way
            return Result(task.id, record=len(self.store.fs.cat_file(key)))
        return Result(task.id, record=len(self.store.read_bytes(key)))


def digest_tasks(store) -> list[Task]:
    """One task per video under landing/, named by the hash of its key."""
    keys = [k for k in store.walk("landing") if k.endswith(".mp4")]
    return [Task(hashlib.sha256(k.encode()).hexdigest()[:16], k) for k in keys]


def dump(results) -> str:
    return json.dumps(sorted(([r.task_id, r.record, r.error] for r in results), key=lambda r: r[0]))
