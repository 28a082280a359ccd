"""Peak memory of `curation redact` (with verification) against clip length and resolution. Prints JSON.

Clips at TeslaCam's 36 fps: 10 s and 60 s at 1280x960 from the fleet simulator (what `curation fleet
simulate --seconds 60 --width 1280 --height 960 --fps 36 --cameras front --clean` writes), and 60 s
at HW4's 2896x1876 as a camera panning over a real photo (the simulator would take half an hour to
draw it). Each redaction runs in a child process; peak memory is its maximum resident set size as
/usr/bin/time reports it. Streaming means the 10 s and the 60 s clip peak within 10 % of each other.

usage: python benchmarks/redact_memory.py [--sizes 1280x960:10,1280x960:60,2896x1876:60] [--region us]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
BIN = Path(sys.executable).parent


def make_clip(root: Path, width: int, height: int, seconds: float, fps: float) -> Path:
    if (width, height) == (1280, 960):
        out = root / f"sim-{seconds:g}s"
        subprocess.run([str(BIN / "curation"), "fleet", "simulate", "--region", "us", "--out", str(out), "--vehicles", "1", "--events", "1",
                        "--seconds", str(seconds), "--width", str(width), "--height", str(height), "--fps", str(fps), "--cameras", "front",
                        "--clean"], check=True, capture_output=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": f"{BIN}:/usr/bin:/bin"})
        return next(out.rglob("*-front.mp4"))
    from builders import pan_zoom_clip

    clip = root / f"pan-{width}x{height}-{seconds:g}s.mp4"
    pan_zoom_clip(clip, [ROOT.parent / "shared" / "testdata" / "eb_test_lp_image.png"], seconds_each=seconds, fps=fps, width=width,
                  height=height, zoom=(1.0, 1.3))
    return clip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1280x960:10,1280x960:60,2896x1876:60", help="WIDTHxHEIGHT:SECONDS, comma-separated")
    parser.add_argument("--fps", type=float, default=36.0)
    parser.add_argument("--region", default="us")
    parser.add_argument("--no-verify", action="store_true")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for spec in args.sizes.split(","):
            size, seconds = spec.split(":")
            width, height = map(int, size.split("x"))
            clip = make_clip(root, width, height, float(seconds), args.fps)
            start = time.perf_counter()
            done = subprocess.run(["/usr/bin/time", "-f", "%M", str(BIN / "curation"), "redact", str(clip), "-o", str(root / f"out-{spec}.mp4"),
                                   "--region", args.region, *(["--simulated"] if clip.name.endswith("-front.mp4") else []),  # the pan is a real photo
                                   *(["--no-verify"] if args.no_verify else []), "--keep-failed"],
                                  capture_output=True, text=True, cwd=ROOT)
            seconds_taken = time.perf_counter() - start
            summary = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {"error": done.stderr[-300:]}
            results.append({"clip": spec, "fps": args.fps, "frames": summary.get("frames"), "bytes": clip.stat().st_size,
                            "peak_rss_mb": round(int(done.stderr.strip().splitlines()[-1]) / 1024, 1),
                            "seconds": round(seconds_taken, 1), "frames_per_second": round((summary.get("frames") or 0) / seconds_taken, 2),
                            "verification": summary.get("verification"), "repaired": summary.get("repaired")})
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"benchmark": "redact_memory", "region": args.region, "verification": not args.no_verify, "clips": results}, indent=1))


if __name__ == "__main__":
    main()
