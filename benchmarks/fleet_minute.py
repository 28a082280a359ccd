"""A four-camera TeslaCam minute (front, back, left and right repeater) through the region pipeline:
ingest@R, redact@R (with verification) and label@R, as `dvc repro` runs them. Prints JSON.

One simulated vehicle writes one event with the four cameras at 1280x960 and 36 fps (what the
cars record), into a fresh region root. Each stage runs as its own child process (``python -m
pipelines.<stage> REGION METRICS``) with the local engine's ``--workers``; its wall time and peak
resident memory (the child's and its workers', as the kernel reports them through
/usr/bin/time) are measured. Per-frame costs give camera-minutes per hour and per core.

usage: python benchmarks/fleet_minute.py [--seconds 60] [--workers 1] [--region us]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
BIN = Path(sys.executable).parent
CAMERAS = ("front", "back", "left_repeater", "right_repeater")


def stage(root: Path, command: list[str]) -> dict:
    """Wall seconds and peak RSS (MB, the largest of the stage process and its workers) of one stage."""
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-m", *command], capture_output=True, text=True, cwd=root,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "CI": "1"})
    if done.returncode:
        raise SystemExit(f"{command[0]}: exit {done.returncode}: {done.stderr.strip().splitlines()[-3:]}")
    return {"seconds": round(time.perf_counter() - start, 1), "peak_rss_mb": round(int(done.stderr.strip().splitlines()[-1]) / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the event (a TeslaCam file is one minute)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=960)
    parser.add_argument("--fps", type=float, default=36.0)
    parser.add_argument("--workers", default="1", help="local engine workers for redact@R and label@R (a number or auto)")
    parser.add_argument("--region", default="us")
    args = parser.parse_args()
    from builders import make_fleet, make_params

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        make_params(root, regions=(args.region,))
        start = time.perf_counter()
        make_fleet(root, args.region, vehicles=1, events=1, seconds=args.seconds, width=args.width, height=args.height, fps=args.fps,
                   cameras=CAMERAS, seed=11)
        simulated_s = time.perf_counter() - start
        landing = root / "data" / args.region / "landing"
        files = sorted(landing.rglob("*.mp4"))
        metrics = root / "metrics"
        report = {"ingest": stage(root, ["pipelines.ingest", args.region, str(landing), str(metrics / "ingest.json")])}
        for name in ("redact", "label"):
            report[name] = stage(root, [f"pipelines.{name}", args.region, str(metrics / f"{name}.json"), "--workers", str(args.workers)])
        documents = {name: json.loads((metrics / f"{name}.json").read_text()) for name in ("redact", "label")}
    frames = round(len(files) * args.seconds * args.fps)
    for name, row in report.items():
        row["frames_per_second"] = round(frames / row["seconds"], 2)
    total = sum(row["seconds"] for row in report.values())
    print(json.dumps({
        "benchmark": "fleet_minute", "region": args.region, "cameras": list(CAMERAS), "files": len(files),
        "seconds_per_file": args.seconds, "resolution": f"{args.width}x{args.height}", "fps": args.fps, "frames": frames,
        "workers": args.workers, "cores": len(os.sched_getaffinity(0)), "simulated_s": round(simulated_s, 1), "stages": report,
        "redaction": documents["redact"]["clips"], "labels": {k: documents["label"][k] for k in ("clips", "sampled_frames", "detections")},
        "total_s": round(total, 1), "real_time_factor": round(args.seconds / total, 3),
        "camera_minutes_per_hour": round(len(files) * args.seconds / 60 * 3600 / total, 1),
    }, indent=1))


if __name__ == "__main__":
    main()
