"""Clips per hour of a per-clip stage at 1 and 2 workers, local pool and Ray, on simulated clips. Prints JSON.

usage: python benchmarks/engine.py [--stage benchmarks.engine:transcode|benchmarks.engine:redaction] [--clips 8] [--seconds 4] [--fps 10]
                                   [--width 1280 --height 720] [--runs local:1 local:2 ray:1 ray:2]

--stage names a factory ``f(store) -> (stage, tasks)``: given a region store whose landing/ holds
the simulated clips, it returns the stage to map and its tasks (a real stage's factory may ingest
and plan first). The default transcodes every clip with one x264 thread (decode, encode, write to
the task's temporary key): the shape of redaction without the detectors. Each run is a process of
its own (Ray in a network namespace of its own, loopback only) and commits every result. wall_s
counts pool (or Ray) start-up and every worker's setup; steady_clips_per_hour leaves out everything
before the first result. peak_rss_children_mb: the largest worker (for Ray: or raylet) as the OS
reports it (getrusage RUSAGE_CHILDREN) after the run; with 1 local worker the work is in the driver.
"""

import argparse
import importlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from curation.engine import Result, Stage, Task, commit, run  # noqa: E402
from curation.engine.cluster import loopback_only  # noqa: E402
from curation.policy.params import EngineParams, load_params  # noqa: E402
from curation.storage.store import RegionStore  # noqa: E402


class Transcode(Stage):
    """Decode every frame, re-encode it with x264 (ultrafast, one thread) into the task's temporary key."""

    name = "transcode"
    suffix = ".mp4"

    def process(self, task: Task) -> Result:
        import av

        frames = 0
        with self.store.open(task.payload) as source, av.open(source) as decoded, self.store.open(self.scratch(task), "wb") as out:
            video = decoded.streams.video[0]
            video.thread_count = 1
            with av.open(out, "w", format="mp4") as encoded:
                stream = encoded.add_stream("libx264", rate=int(round(video.average_rate or 10)))
                stream.width, stream.height, stream.pix_fmt = video.width, video.height, "yuv420p"
                stream.thread_count, stream.options = 1, {"preset": "ultrafast"}
                for frame in decoded.decode(video):
                    encoded.mux(stream.encode(frame.reformat(format="yuv420p")))
                    frames += 1
                encoded.mux(stream.encode(None))
        return Result(task.id, record={"frames": frames}, output=self.scratch(task))


def transcode(store):
    keys = [k for k in store.walk("landing") if k.endswith(".mp4")]
    return Transcode(), [Task(f"clip{i:04d}", key) for i, key in enumerate(keys)]


def redaction(store):
    """redact@R's per-clip unit (detect, walk, mask, encode, verify with the independent detectors) on every landed camera file."""
    from curation.redaction.clip import RedactClip

    keys = [k for k in store.walk("landing") if k.endswith(".mp4")]
    return RedactClip(), [Task(f"clip{i:04d}", {"kind": "redact", "source": key, "frames": None}) for i, key in enumerate(keys)]


def one_run(params_path: str, kind: str, workers: int, factory: str) -> dict:
    """One configuration, in this process: map the stage, commit every result."""
    store = RegionStore(load_params(params_path), "cn", actor="benchmark")
    module, name = factory.split(":")
    stage, tasks = getattr(importlib.import_module(module), name)(store)
    engine = EngineParams(kind=kind, workers=workers, **({"object_store_mb": 100} if kind == "ray" else {}))
    start, ok, frames, first = time.perf_counter(), 0, 0, None
    for result in run(stage, tasks, store, engine, progress=False):
        first = first or time.perf_counter() - start
        ok += commit(store, result, f"bench/{kind}-{workers}/{result.task_id}{stage.suffix}")
        frames += result.record.get("frames", 0) if isinstance(result.record, dict) else 0
        if not result.ok:
            print(f"{result.task_id}: {result.error}", file=sys.stderr)
    wall = time.perf_counter() - start
    return {"engine": kind, "workers": workers, "clips": len(tasks), "committed": ok, "frames": frames, "wall_s": round(wall, 2),
            "clips_per_hour": round(len(tasks) * 3600 / wall), "frames_per_s": round(frames / wall, 1), "first_result_s": round(first, 2),
            # after start-up and setup: what a long run approaches
            "steady_clips_per_hour": round((len(tasks) - 1) * 3600 / (wall - first)) if len(tasks) > 1 else None,
            "peak_rss_children_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
            "peak_rss_driver_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", default="benchmarks.engine:transcode",
                        help="module:factory returning (stage, tasks) for a region store (default: %(default)s)")
    parser.add_argument("--clips", type=int, default=8, help="simulated camera files, front and back (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each clip (default: %(default)s)")
    parser.add_argument("--fps", type=float, default=10.0, help="default: %(default)s; Tesla records about 36")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--runs", nargs="+", default=["local:1", "local:2", "ray:1", "ray:2"], help="kind:workers (default: %(default)s)")
    parser.add_argument("--one", nargs=3, metavar=("PARAMS", "KIND", "WORKERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(args.one[0], args.one[1], int(args.one[2]), args.stage)))
        return
    from builders import make_fleet, make_params

    with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryDirectory(prefix="ray-") as sessions:
        root = Path(folder)
        make_params(root)
        make_fleet(root, "cn", vehicles=max(1, args.clips // 2), events=1, seconds=args.seconds, fps=args.fps, width=args.width,
                   height=args.height, cameras=("front", "back"))
        runs = []
        for spec in args.runs:
            kind, workers = spec.split(":")
            command = [sys.executable, __file__, "--stage", args.stage, "--one", str(root / "params.yaml"), kind, workers]
            done = subprocess.run(loopback_only(command) if kind == "ray" else command, capture_output=True, text=True, cwd=REPO,
                                  env={**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'tests'}", "RAY_AUTH_MODE": "disabled",
                                       "RAY_TMPDIR": sessions})
            if done.returncode:
                sys.exit(f"{spec}: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'failed'}")
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(json.dumps({"benchmark": "engine", "stage": args.stage, "resolution": f"{args.width}x{args.height}", "fps": args.fps,
                      "seconds_per_clip": args.seconds, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
