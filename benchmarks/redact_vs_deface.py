"""`curation redact` against the `deface` CLI (default settings) on the same 720p clips. Prints JSON.

Both run as one subprocess each over all clips (as a user would redact a folder); frames per second
include start-up and model loading.
Leaks are judged the same way for both: CenterFace (threshold 0.5) re-run on every output frame;
a leaked frame has a detected face at least the policy's minimum height (32 px).

usage: python benchmarks/redact_vs_deface.py [--clips 2] [--seconds 8] [--fps 30] [--region cn]
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

from builders import make_fleet, make_params  # noqa: E402
from curation.media.video import decode_frames, probe  # noqa: E402

BIN = Path(sys.executable).parent


def leaked_frames(path: Path, min_height: float) -> int:
    from deface.centerface import CenterFace

    judge = CenterFace(in_shape=None, backend="onnxrt", override_execution_provider="CPUExecutionProvider")
    leaked = 0
    for _, frame in decode_frames(str(path)):
        detections, _ = judge(frame, threshold=0.5)
        leaked += any(d[3] - d[1] >= min_height for d in detections)
    return leaked


def run(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--region", default="cn")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        make_params(root)
        out, manifest = make_fleet(root, args.region, vehicles=args.clips, events=1, seconds=args.seconds, fps=args.fps,
                                   width=1280, height=720, cameras=("front",), pedestrians=10, seed=21)
        clips = [out / e["cameras"]["front"]["file"] for e in manifest["events"]]
        frames = sum(probe(c.read_bytes(), decode=False).frames for c in clips)
        out_dir = root / "ours"
        out_dir.mkdir()
        ours_s = run([str(BIN / "curation"), "redact", *map(str, clips), "-o", str(out_dir), "--region", args.region, "--no-verify"])
        ours = sorted(out_dir.glob("*.mp4"))
        deface_s = run([str(BIN / "deface"), *map(str, clips)])  # writes NAME_anonymized.mp4 beside each clip
        theirs = [c.with_name(f"{c.stem}_anonymized{c.suffix}") for c in clips]
        assert len(ours) == len(theirs) == len(clips)
        ours_leaks = sum(leaked_frames(o, 32) for o in ours)
        deface_leaks = sum(leaked_frames(o, 32) for o in theirs)
        raw_faces = sum(leaked_frames(c, 32) for c in clips)
    print(json.dumps({
        "benchmark": "redact_vs_deface", "clips": len(clips), "frames": frames, "resolution": "1280x720", "fps": args.fps,
        "frames_with_a_face_before_redaction": raw_faces,
        "curation_redact": {"seconds": round(ours_s, 2), "fps": round(frames / ours_s, 2), "leaked_frames": ours_leaks,
                            "what": f"faces and plates by region {args.region} policy"},
        "deface": {"seconds": round(deface_s, 2), "fps": round(frames / deface_s, 2), "leaked_frames": deface_leaks,
                   "what": "faces, default settings"},
        "speedup": round(deface_s / ours_s, 2),
    }, indent=1))


if __name__ == "__main__":
    main()
