"""Peak memory of `curation label` on a short and a long clip: flat in the clip's length. Prints JSON.

Each clip is labeled in a child process, measured on its own: the peak resident memory the OS
reports for it (``resource.getrusage(RUSAGE_CHILDREN)`` inside a fresh measuring process per clip).

usage: python benchmarks/label_memory.py [--seconds 10,60] [--fps 30] [--width 1280] [--height 720]
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curation.media.video import VideoWriter  # noqa: E402
from curation.sources.faces import face_bank  # noqa: E402
from curation.sources.scene import Camera, Scene  # noqa: E402


MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(json.loads(sys.argv[1]), capture_output=True, text=True, check=True)
print(json.dumps({"peak_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "wall_s": time.perf_counter() - start, "stdout": done.stdout}))
"""


def write_clip(path: Path, seconds: float, fps: float, width: int, height: int) -> None:
    bank = face_bank()
    scene = Scene.random(np.random.default_rng(11), Camera(width, height), "us", (bank.crops, bank.boxes), vehicles=6)
    with VideoWriter(str(path), width, height, fps=fps, preset="ultrafast") as writer:
        for k in range(int(seconds * fps)):
            writer.write(scene.render(k / fps, 8 * k / fps)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", default="10,60")
    parser.add_argument("--fps", type=float, default=30)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--model", default="coco-ssd")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for seconds in (float(s) for s in args.seconds.split(",")):
            clip = Path(folder) / f"clip_{seconds:g}s.mp4"
            write_clip(clip, seconds, args.fps, args.width, args.height)
            command = [sys.executable, "-m", "curation.cli", "label", str(clip), "-o", str(Path(folder) / f"out_{seconds:g}"), "--model", args.model]
            # A measuring process per clip: RUSAGE_CHILDREN's maximum is then this clip's alone.
            measured = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(command)], cwd=ROOT, capture_output=True, text=True, check=True)
            report = json.loads(measured.stdout)
            peak_mb, elapsed = report["peak_kib"] / 1024, report["wall_s"]
            summary = json.loads(report["stdout"].strip().splitlines()[-1])
            results.append({"seconds": seconds, "frames": int(seconds * args.fps), "labeled_frames": summary["labeled_frames"],
                            "peak_rss_mb": round(peak_mb, 1), "wall_s": round(elapsed, 1), "clip_mb": round(clip.stat().st_size / 2**20, 1)})
    print(json.dumps({"resolution": f"{args.width}x{args.height}", "fps": args.fps, "model": args.model, "runs": results}, indent=1))


if __name__ == "__main__":
    main()
