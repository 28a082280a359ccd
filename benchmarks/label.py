"""Label stage speed and quality on held-out simulated scenes. Prints JSON.

Speed, in one run on the same frames: the stage's path (batched `predict` through the class map,
linking, lane lines) against a naive loop calling `model.predict` one frame at a time, and the
detector alone at several batch sizes. The GPU path (CUDA, half precision) runs when one is present.
Quality: mAP50 and mAP50-95 per class, light-state and sign-type accuracy, TuSimple lane accuracy
and F1, on scenes from seeds the bootstrap model never saw, redacted as redact@R leaves them.

Other detectors and lane methods on the same scenes (quality only): ``--model yolov8n-coco --lanes
models/lanes.onnx --no-speed`` (a COCO-named model gets the COCO class map, as in `curation label`).

usage: python benchmarks/label.py [--frames 48] [--quality-frames 300] [--batches 1,4,8,16] [--model M] [--lanes L] [--lamps] [--no-speed]
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curation.labeling.files import labeler_for  # noqa: E402
from curation.labeling.quality import BoxScorer, combine_lanes, lane_scores  # noqa: E402
from curation.labeling.stage import label_frames  # noqa: E402
from curation.perception.boxes import Detections  # noqa: E402
from curation.perception.labeler import Labeler  # noqa: E402
from curation.perception.lanes import LaneCamera, LaneDetector  # noqa: E402
from curation.perception.tracks import TrackConfig  # noqa: E402
from curation.policy.params import load_params  # noqa: E402
from curation.redaction.masks import FACE, PLATE, redact  # noqa: E402
from curation.sources.faces import face_bank  # noqa: E402
from curation.sources.scene import Camera, Scene  # noqa: E402

HELD_OUT = 424_242  # seeds neither the fleet default (7) nor the labeler's training (1_000_003) use


def held_out_frames(n: int, per_scene: int = 4):
    """(frame, truth objects, truth lanes), redacted by ground truth; scenes of the simulator's own mix."""
    bank = face_bank()
    for k in range(n):
        if k % per_scene == 0:
            rng = np.random.default_rng([HELD_OUT, k])
            scene = Scene.random(rng, Camera(), str(rng.choice(["cn", "eu", "us"])), (bank.crops, bank.boxes),
                                 direction=int(rng.choice([-1, 1])), pedestrians=6, vehicles=4)
            start = float(rng.uniform(0, 20))
        t = (k % per_scene) * 0.5
        frame, objects, lanes = scene.render(t, start + 8 * t)
        private = [o for o in objects if o["class"] in ("face", "plate")]
        if private:
            frame = redact(frame, Detections(np.array([o["box"] for o in private]), np.ones(len(private)),
                                             [FACE if o["class"] == "face" else PLATE for o in private]))
        yield frame, objects, lanes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--quality-frames", type=int, default=300)
    parser.add_argument("--batches", default="1,4,8,16")
    parser.add_argument("--model", default=None, help="detector (default: params' label.model, the bootstrap)")
    parser.add_argument("--lanes", default=None, help="lane model (default: params' label.lanes: the calibrated-camera method)")
    parser.add_argument("--lamps", action="store_true", help="also find lights by their lit lamps (curation label's default)")
    parser.add_argument("--speed", action=argparse.BooleanOptionalAction, default=True, help="measure speed (ultralytics weights only)")
    args = parser.parse_args()
    params = load_params(ROOT / "params.yaml")
    config = params.label
    if args.model or args.lanes or args.lamps:
        labeler, lanes, track = labeler_for(config, args.model or config.model, args.lamps or config.lamps, str(config.lanes.horizon),
                                            args.lanes or config.lanes.model)
        config = labeler.config
    else:
        labeler, lanes, track = Labeler(config), LaneDetector.from_params(config.lanes), TrackConfig(**config.track.model_dump())
    frames = [f for f, _, _ in held_out_frames(args.frames)]
    labeler([frames[0]])  # warm-up: model load and first-call setup are not per-frame work
    speed = _speed(args, config, labeler, lanes, track, frames) if args.speed else {}

    scorer, lane_frames = BoxScorer(labeler.classes, config.min_box_px), []
    for frame, objects, truth_lanes in held_out_frames(args.quality_frames):
        (boxes, attrs, _), = labeler([frame])
        scorer.add([{"class": labeler.classes[c], "box": b.tolist(), "confidence": float(s), "attrs": a}
                    for b, s, c, a in zip(boxes.xyxy, boxes.confidence, boxes.class_id, attrs)], objects)
        occluders = boxes.xyxy[np.isin([labeler.classes[c] for c in boxes.class_id], ["vehicle", "pedestrian"])]  # as the stage
        lane_frames.append(lane_scores([{"xs": l.xs, "ys": l.ys, "type": l.type, "color": l.color} for l in lanes(frame, occluders)],
                                       truth_lanes, frame.shape[0]))
    print(json.dumps({
        "device": labeler.device, "imgsz": config.imgsz, "batch": config.batch, "model": labeler.name, "lanes_method": lanes.name,
        "frames": len(frames), "resolution": "1280x720", **speed,
        "quality": {"frames": args.quality_frames, "min_box_px": config.min_box_px, "boxes": scorer.result(),
                    "lanes": combine_lanes(lane_frames)},
    }, indent=1))


def _speed(args, config, labeler, lanes, track, frames) -> dict:
    start = time.perf_counter()
    for frame in frames:  # the naive loop: one predict call per frame, RGB converted each time
        labeler.model.predict(np.ascontiguousarray(frame[..., ::-1]), imgsz=config.imgsz, conf=config.threshold,
                              device=labeler.device, verbose=False)
    naive = len(frames) / (time.perf_counter() - start)
    start = time.perf_counter()
    label_frames(frames, labeler, lanes, track)
    stage = len(frames) / (time.perf_counter() - start)
    scaling = {}
    for batch in (int(b) for b in args.batches.split(",")):
        sized = Labeler(config.model_copy(update={"batch": batch}))
        start = time.perf_counter()
        sized(frames)
        scaling[batch] = round(len(frames) / (time.perf_counter() - start), 2)
    start = time.perf_counter()
    for frame in frames:
        lanes(frame)
    lane_fps = len(frames) / (time.perf_counter() - start)
    return {"stage_fps": round(stage, 2), "naive_predict_loop_fps": round(naive, 2), "speedup": round(stage / naive, 2),
            "detector_fps_by_batch": scaling, "lanes_fps": round(lane_fps, 2)}


if __name__ == "__main__":
    main()
