"""Where a verified redaction spends its time: per verification round and per detector. Prints JSON.

The same real 720p footage as redact_vs_deface.py (a camera panning and zooming over three real
photos with faces and a plate), redacted and verified in this process as `curation redact` does it
(``redact_verified``): seconds of the whole run and of redaction alone, and for each verification
round the frames it looked at, the frames it reused (pixels and masks identical to the round
before, which found nothing there) and its findings. Then each redaction detector and each verifier
alone, timed on ``--sample`` frames of the output (milliseconds a frame, after one warm-up call).

usage: python benchmarks/verify_cost.py [--seconds 4] [--fps 25] [--region cn] [--sample 24]
"""

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redact_vs_deface import real_clips  # noqa: E402  (benchmarks/ is this script's folder)

from curation.media.video import decode_frames  # noqa: E402
from curation.policy.params import load_params  # noqa: E402
from curation.redaction.detectors import Detectors, for_real_cameras  # noqa: E402
from curation.redaction.verify import redact_verified  # noqa: E402
from curation.redaction.video import RedactionConfig, redact_video  # noqa: E402


def per_frame_ms(detector, frames: list) -> float:
    detector(frames[:1])  # warm-up: the first session call allocates
    start = time.perf_counter()
    for frame in frames:
        detector([frame])
    return round((time.perf_counter() - start) / len(frames) * 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds per photo")
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--region", default="cn")
    parser.add_argument("--sample", type=int, default=24, help="frames each detector is timed on alone")
    args = parser.parse_args()
    params = for_real_cameras(load_params(ROOT / "params.yaml"))  # as `curation redact` without --simulated
    detectors, config = Detectors(params, args.region), RedactionConfig.from_params(params, args.region)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        clip = real_clips(root, args.seconds, args.fps)[0]
        output = root / "redacted.mp4"
        start = time.perf_counter()
        with open(clip, "rb") as source, open(root / "unverified.mp4", "wb") as target:
            redact_video(source, target, detectors.redact, config)
        redaction_s = time.perf_counter() - start
        start = time.perf_counter()
        with open(clip, "rb") as source:
            result, rounds = redact_verified(source, lambda mode: open(output, mode), detectors, config, config.repair)
        verified_s = time.perf_counter() - start
        frames = [frame for _, frame in itertools.islice(decode_frames(str(output)), args.sample)]
    print(json.dumps({
        "benchmark": "verify_cost", "region": args.region, "frames": result.frames, "resolution": f"{result.size[0]}x{result.size[1]}",
        "redaction_only_s": round(redaction_s, 1), "redaction_with_verification_s": round(verified_s, 1),
        "passed": rounds[-1].passed,
        "rounds": [{"verified_frames": r.frames - r.reused, "reused_frames": r.reused, "findings": len(r.findings)} for r in rounds],
        "ms_per_frame_alone": {
            "redaction (keyframes only)": {d.name: per_frame_ms(d, frames) for d in detectors.redact},
            "verification (every frame)": {d.name: per_frame_ms(d, frames) for d in detectors.verify},
        },
        "sampled_frames": len(frames),
    }, indent=1))


if __name__ == "__main__":
    main()
