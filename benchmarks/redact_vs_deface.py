"""`curation redact` against the `deface` CLI (default settings) on the same 720p clips. Prints JSON.

Both run as one subprocess each over all clips (as a user would redact a folder); frames per second
include start-up and model loading; peak memory is each subprocess's maximum resident set size as
the OS reports it. Ours runs twice: without verification, and with the independent verification on
every frame (RetinaFace and a second plate YOLO; what they find is masked too and verified again).

Footage: ``--source real`` (default) is real 720p footage with faces made as a camera panning and
zooming over real photos (../shared/testdata: a street crossing, three people at a table, a parking
lot); ``--source simulated`` the fleet simulator's clips. Leaks are judged for both tools by a face
detector of a third family, MTCNN (facenet-pytorch), on every ``--judge-every``-th output frame: a
leaked frame has a face at least the policy's minimum height (32 px).

``--repeat N`` runs the three commands N times in turn (ours, ours verified, deface, ours, ...): a
speed-up is a ratio within one round, and the median of the rounds' is reported with each round's,
since this machine's speed drifts by 10 % and more from one minute to the next.

usage: python benchmarks/redact_vs_deface.py [--source real|simulated] [--seconds 4] [--fps 25] [--region cn] [--repeat 1]
"""

import argparse
import json
import statistics
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


def leaked_frames(path: Path, min_height: float, every: int) -> int:
    import torch
    from facenet_pytorch import MTCNN

    torch.set_num_threads(2)
    judge = MTCNN(keep_all=True, min_face_size=int(min_height * 0.8), device="cpu", post_process=False)
    leaked = 0
    for index, (_, frame) in enumerate(decode_frames(str(path))):
        if index % every:
            continue
        boxes, probabilities = judge.detect(frame)
        leaked += boxes is not None and any(b[3] - b[1] >= min_height and p >= 0.9 for b, p in zip(boxes, probabilities))
    return leaked


def run(command: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak resident memory (MB) as /usr/bin/time reports it, and stdout of one command
    (`curation redact` exits 1 when an output fails verification: that is a result, not a crash)."""
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "%M", *command], capture_output=True, text=True, cwd=ROOT)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{command[0]}: exit {done.returncode}: {done.stderr[-500:]}")
    return time.perf_counter() - start, int(done.stderr.strip().splitlines()[-1]) / 1024, done.stdout


def real_clips(root: Path, seconds: float, fps: float) -> list[Path]:
    from builders import pan_zoom_clip

    testdata = ROOT.parent / "shared" / "testdata"
    photos = [testdata / "deface_city.jpg", testdata / "real" / "faces" / "egoblur_gen2_test_face_image.png", testdata / "eb_test_lp_image.png"]
    clip = root / "real_pan_zoom.mp4"
    pan_zoom_clip(clip, photos, seconds_each=seconds, fps=fps)
    return [clip]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", choices=("real", "simulated"), default="real")
    parser.add_argument("--clips", type=int, default=2, help="simulated clips")
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds per photo (real) or per clip (simulated)")
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--region", default="cn")
    parser.add_argument("--judge-every", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=1, help="rounds of the three commands, in turn; medians are reported")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        if args.source == "real":
            clips = real_clips(root, args.seconds, args.fps)
        else:
            make_params(root)
            out, manifest = make_fleet(root, args.region, vehicles=args.clips, events=1, seconds=args.seconds, fps=args.fps,
                                       width=1280, height=720, cameras=("front",), pedestrians=10, seed=21)
            clips = [out / e["cameras"]["front"]["file"] for e in manifest["events"]]
        frames = sum(probe(c.read_bytes(), decode=False).frames for c in clips)
        runs: dict[str, list[tuple[float, float]]] = {}  # per tool, (seconds, peak MB) of each round
        outputs, verification = {}, {}
        for round_ in range(args.repeat):
            for name, extra in (("curation_redact", ["--no-verify"]), ("curation_redact_verified", [])):
                out_dir = root / f"{name}-{round_}"
                out_dir.mkdir()
                seconds, memory, stdout = run([str(BIN / "curation"), "redact", *map(str, clips), "-o", str(out_dir), "--region", args.region,
                                               "--keep-failed", *extra, *(["--simulated"] if args.source == "simulated" else [])])
                runs.setdefault(name, []).append((seconds, memory))
                outputs[name] = sorted(out_dir.glob("*.mp4"))
                verification[name] = [{k: line.get(k) for k in ("verification", "repaired", "findings")} for line in map(json.loads, stdout.splitlines())]
            seconds, memory, _ = run([str(BIN / "deface"), *map(str, clips)])  # writes NAME_anonymized.mp4 beside each clip
            runs.setdefault("deface", []).append((seconds, memory))
            outputs["deface"] = [c.with_name(f"{c.stem}_anonymized{c.suffix}") for c in clips]
        # Every round writes the same outputs (the detectors are deterministic): the last round's are judged.
        raw_faces = sum(leaked_frames(c, 32, args.judge_every) for c in clips)
        report = {name: {"seconds": [round(s, 2) for s, _ in rounds], "seconds_median": round(statistics.median(s for s, _ in rounds), 2),
                         "fps_median": round(frames / statistics.median(s for s, _ in rounds), 2),
                         "peak_rss_mb": [round(m, 1) for _, m in rounds],
                         "leaked_frames": sum(leaked_frames(o, 32, args.judge_every) for o in outputs[name])}
                  for name, rounds in runs.items()}

    def speedups(name: str) -> list[float]:  # deface's time over ours, within each round
        return [round(d / s, 2) for (d, _), (s, _) in zip(runs["deface"], runs[name])]

    print(json.dumps({
        "benchmark": "redact_vs_deface", "source": args.source, "clips": len(clips), "frames": frames, "resolution": "1280x720",
        "fps": args.fps, "rounds": args.repeat, "judged_frames": f"every {args.judge_every}th, MTCNN", "frames_with_a_face_before_redaction": raw_faces,
        **report, "verification": verification, "what": {"curation_redact": f"faces and plates by region {args.region} policy", "deface": "faces, default settings"},
        "speedup_without_verification": {"median": statistics.median(speedups("curation_redact")), "rounds": speedups("curation_redact")},
        "speedup_with_verification": {"median": statistics.median(speedups("curation_redact_verified")), "rounds": speedups("curation_redact_verified")},
    }, indent=1))


if __name__ == "__main__":
    main()
