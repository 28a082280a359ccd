"""Label quality on real footage (../shared/testdata/real), with `curation label`'s defaults. Prints JSON.

- Lanes: TuSimple accuracy and F1 on hand-labeled real highway frames nothing was trained on
  (tests/data/real_lanes/, how they were made: its README): the 4 TuSimple frames of
  lanes_unlabeled/ and 9 Udacity frames of dashcam/ (udacity_heldout.json: none is a frame of the
  two dashcam videos the lane model was trained on, nor a photo of the same minute of driving).
- Traffic lights: on traffic_lights/ (lit lamps outlined, 5 to 24 px tall), the share of lamps inside
  a traffic_light box, and of those with the state right (a green arrow counts as green). The lamp
  finder's thresholds were set on the first 12 photos (sorted by name); the other 13 are held out.
- Dashcam: boxes per class on the 14 dashcam photos (no box ground truth: look at the drawings).

usage: python benchmarks/label_real.py [--model yolov8n-coco] [--lanes models/lanes.onnx | classical] [--draw OUT]
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curation.labeling.evaluate import evaluate  # noqa: E402
from curation.labeling.files import expand_inputs, label_files, labeler_for  # noqa: E402
from curation.labeling.formats import from_coco  # noqa: E402
from curation.policy.params import load_params  # noqa: E402

REAL = ROOT.parent / "shared" / "testdata" / "real"
LANES = ROOT / "tests" / "data" / "real_lanes"
LAMP_STATES = {0: "green", 1: "green", 2: "red", 3: "yellow"}  # traffic_lights/data.yaml: green, left (arrow), red, yellow
TUNED_ON = 12


def lamp_boxes(label_file: Path, size: int = 800) -> list[tuple[str, list[float]]]:
    """(state, box) per outlined lamp: YOLO polygons or boxes, normalized."""
    out = []
    for line in label_file.read_text().splitlines():
        values = line.split()
        if not values:
            continue
        cls, numbers = int(values[0]), [float(v) * size for v in values[1:]]
        if len(numbers) == 4:
            cx, cy, w, h = numbers
            box = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
        else:
            xs, ys = numbers[0::2], numbers[1::2]
            box = [min(xs), min(ys), max(xs), max(ys)]
        out.append((LAMP_STATES[cls], box))
    return out


def light_scores(coco: dict, images: list[Path], slack: float = 2.0) -> dict:
    frames = {f.file_name: f for f in from_coco(coco)}
    lamps = contained = right = 0
    for image in images:
        frame = frames[image.name]
        lights = [(b, a.get("state")) for c, b, a in zip(frame.classes, frame.boxes, frame.attributes) if c == "traffic_light"]
        for state, (x1, y1, x2, y2) in lamp_boxes(REAL / "traffic_lights" / "labels" / f"{image.stem}.txt"):
            holding = [s for (a, b, c, d), s in lights if a - slack <= x1 and b - slack <= y1 and c + slack >= x2 and d + slack >= y2]
            lamps += 1
            contained += bool(holding)
            right += state in holding
    return {"lamps": lamps, "contained": round(contained / lamps, 3), "state_right": round(right / lamps, 3)}


def _pooled(parts) -> dict:
    """F1 over the lines of several sets together (from each set's line counts)."""
    truth = sum(p["truth_lines"] for p in parts)
    predicted = sum(p["predicted_lines"] for p in parts)
    matched = sum(p["truth_lines"] * (1 - p["fn_rate"]) for p in parts)
    return {"truth_lines": truth, "predicted_lines": predicted, "f1": round(2 * matched / (truth + predicted), 4)}


def _speed(labeler, lanes, track, pictures: list[Path]) -> dict:
    """Seconds a frame for the detector (with its close-ups) and for the lane lines, on these pictures."""
    import time

    import cv2

    frames = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in pictures]
    start = time.perf_counter()
    found = [labeler([f])[0] for f in frames]
    middle = time.perf_counter()
    for frame, (boxes, _, _) in zip(frames, found):
        lanes(frame, boxes.xyxy)
    end = time.perf_counter()
    return {"objects": round((middle - start) / len(frames), 3), "lanes": round((end - middle) / len(frames), 4)}


def main() -> None:
    global REAL
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="yolov8n-coco")
    parser.add_argument("--lanes", default="models/lanes.onnx", help="lane model, or classical (the calibrated-camera method, horizon auto)")
    parser.add_argument("--real", type=Path, default=None, help="the real test data (default: ../shared/testdata/real)")
    parser.add_argument("--draw", type=Path, default=None, help="also keep the labeled folders (with drawings) here")
    args = parser.parse_args()
    REAL = args.real or REAL
    params = load_params(ROOT / "params.yaml")
    labeler, lanes, track = labeler_for(params.label, args.model, True, "auto", None if args.lanes == "classical" else args.lanes)
    report = {"model": labeler.name, "lanes_method": lanes.name}
    with tempfile.TemporaryDirectory() as scratch:
        out = args.draw or Path(scratch)
        run = lambda name, inputs: label_files(expand_inputs(inputs), out / name, labeler, lanes, track, params.label.every_s,  # noqa: E731
                                               draw=args.draw is not None, progress=False)
        run("tusimple", [str(REAL / "lanes_unlabeled")])
        udacity = [json.loads(line)["raw_file"] for line in (LANES / "udacity_heldout.json").read_text().splitlines()]
        run("udacity", [str(REAL / "dashcam" / name) for name in udacity])
        scored = {"tusimple_4_frames": evaluate(LANES / "tusimple_lanes_unlabeled.json", out / "tusimple")["lanes"],
                  "udacity_9_frames": evaluate(LANES / "udacity_heldout.json", out / "udacity")["lanes"]}
        report["lanes"] = {**scored, "all_13_frames": _pooled(scored.values())}
        images = sorted((REAL / "traffic_lights" / "images").iterdir())
        run("lights", [str(REAL / "traffic_lights" / "images")])
        coco = json.loads((out / "lights" / "labels.coco.json").read_text())
        report["traffic_lights"] = {"tuned_on_first_12": light_scores(coco, images[:TUNED_ON]),
                                    "held_out_13": light_scores(coco, images[TUNED_ON:])}
        report["speed_s_per_frame"] = _speed(labeler, lanes, track, [REAL / "dashcam" / name for name in udacity])
        summary = run("dashcam", [str(p) for p in sorted((REAL / "dashcam").glob("*.jpg"))])
        report["dashcam_boxes"] = {"frames": summary["labeled_frames"], **summary["boxes"]}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
