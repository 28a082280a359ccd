"""`curation label`: auto-labels for anyone's pictures and videos, outside a region's pipeline.

Inputs are image or video files, folders (searched recursively) and globs. Videos are sampled by
presentation time as label@R samples them (the first frame of every ``label.every_s``) and stream
through a window of frames. Writes into OUT:

- ``labels.coco.json``: COCO boxes, categories named by the taxonomy, attributes (a light's state,
  a sign's type) in each annotation's ``attributes``; ``file_name`` is the input's path relative to
  the folder it was found in, ``<path>#<frame index>`` for a video's frames;
- ``lanes.tusimple.json``: one TuSimple object per picture (``raw_file`` named the same way);
- with ``draw``, ``draw/<path>.jpg``: the labels drawn (for a video, a sheet of up to 9 frames).

It labels what it is given, like `curation redact` redacts it: redact first when people will look.

Example:
    >>> summary = label_files(expand_inputs(["dashcam/"]), Path("out"), labeler, lanes, TrackConfig())  # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from curation.labeling.formats import FrameLabels, to_coco, to_tusimple
from curation.labeling.stream import LabeledFrame, decode_sampled, every, label_stream
from curation.media.inputs import IMAGE_SUFFIXES, VIDEO_SUFFIXES, expand_inputs
from curation.perception.labeler import Labeler
from curation.perception.lane_net import LearnedLanes, lane_detector
from curation.perception.lanes import LaneDetector
from curation.perception.tracks import TrackConfig

__all__ = ["label_files", "expand_inputs", "draw_labels", "VIDEO_SUFFIXES", "IMAGE_SUFFIXES"]

COLOURS = {"vehicle": (255, 160, 0), "pedestrian": (255, 0, 200), "traffic_light": (0, 230, 255), "traffic_sign": (255, 255, 0)}
STATE_COLOURS = {"red": (255, 40, 40), "yellow": (255, 220, 0), "green": (40, 255, 80), "off": (160, 160, 160)}
SHEET = 9


def _frame_labels(name: str, frame: LabeledFrame, classes: list[str]) -> FrameLabels:
    boxes = frame.boxes
    rows = frame.lanes[0].ys if frame.lanes else []
    return FrameLabels(name, frame.width, frame.height, [classes[int(c)] for c in boxes.class_id],
                       [[float(v) for v in box] for box in boxes.xyxy], [float(s) for s in boxes.confidence],
                       [dict(a) for a in frame.attributes], [list(lane.xs) for lane in frame.lanes], list(rows),
                       [lane.type for lane in frame.lanes], [lane.color for lane in frame.lanes])


def draw_labels(rgb: np.ndarray, labels: FrameLabels) -> np.ndarray:
    """The picture (RGB) with boxes (colour by class, a light's box by its state), names and lane lines."""
    out = np.ascontiguousarray(rgb.copy())
    scale = max(1, round(out.shape[0] / 720))
    for xs in labels.lanes:
        points = np.array([(x, y) for x, y in zip(xs, labels.h_samples) if x >= 0], np.int32)
        if len(points) > 1:
            cv2.polylines(out, [points], False, (0, 255, 0), 2 * scale)
    for cls, (x1, y1, x2, y2), score, attrs in zip(labels.classes, labels.boxes, labels.scores, labels.attributes):
        colour = STATE_COLOURS.get(attrs.get("state"), COLOURS.get(cls, (255, 255, 255)))
        cv2.rectangle(out, (int(x1), int(y1)), (int(x2), int(y2)), colour, scale)
        text = " ".join([cls.replace("traffic_", ""), *(str(v) for v in attrs.values()), f"{score:.2f}"])
        cv2.putText(out, text, (int(x1), max(int(y1) - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * scale, colour, scale, cv2.LINE_AA)
    return out


def _write_picture(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 90])


def _sheet(thumbs: list[np.ndarray]) -> np.ndarray:
    columns = min(3, len(thumbs))
    rows = [thumbs[i : i + columns] for i in range(0, len(thumbs), columns)]
    rows[-1] = rows[-1] + [np.zeros_like(thumbs[0])] * (columns - len(rows[-1]))
    return np.vstack([np.hstack(r) for r in rows])


def label_files(inputs: list[tuple[Path, str]], out: Path, labeler: Labeler, lanes: LaneDetector, track_config: TrackConfig,
                every_s: float, draw: bool = False, info: dict | None = None, progress: bool = True) -> dict:
    """Label every input; write OUT/labels.coco.json, OUT/lanes.tusimple.json (and drawings); returns a summary.

    An input that cannot be read is listed under ``failed`` with the reason; the others are labeled.
    """
    import sys

    from tqdm import tqdm

    out.mkdir(parents=True, exist_ok=True)
    labeled: list[FrameLabels] = []
    failed, videos, images = [], 0, 0
    bar = tqdm(total=len(inputs), unit="file", desc="label", disable=not progress or not sys.stderr.isatty())
    with open(out / "lanes.tusimple.json", "w") as lanes_file:
        for path, name in inputs:
            if path.suffix.lower() in IMAGE_SUFFIXES:
                picture = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if picture is None:
                    failed.append({"input": str(path), "error": "not a readable image"})
                    bar.update()
                    continue
                rgb = np.ascontiguousarray(picture[..., ::-1])
                frames = label_stream([(0, 0, rgb)], labeler, lanes, track_config)
                entries = [_frame_labels(name, frames[0], labeler.classes)]
                if draw:
                    _write_picture(out / "draw" / f"{name}.jpg", draw_labels(rgb, entries[0]))
                images += 1
            else:
                thumbs: list[np.ndarray] = []
                stride = [1]

                def frames_of(source=path):
                    for k, (index, pts, rgb) in enumerate(decode_sampled(str(source), every(every_s))):
                        if draw and k % stride[0] == 0:
                            thumbs.append((index, cv2.resize(rgb, (640, int(640 * rgb.shape[0] / rgb.shape[1])))))
                            if len(thumbs) > SHEET:  # keep the sheet evenly spaced: every other one, twice the stride
                                del thumbs[1::2]
                                stride[0] *= 2
                        yield index, pts, rgb

                frames = label_stream(frames_of(), labeler, lanes, track_config)
                if not frames:
                    failed.append({"input": str(path), "error": "no decodable video frame"})
                    bar.update()
                    continue
                entries = [_frame_labels(f"{name}#{f.index}", f, labeler.classes) for f in frames]
                if draw:
                    by_index = {f.index: e for f, e in zip(frames, entries)}
                    sheet = []
                    for index, thumb in thumbs:
                        entry = by_index[index]
                        factor = thumb.shape[1] / entry.width
                        small = FrameLabels(entry.file_name, thumb.shape[1], thumb.shape[0], entry.classes,
                                            [[v * factor for v in b] for b in entry.boxes], entry.scores, entry.attributes,
                                            [[x * factor if x >= 0 else x for x in xs] for xs in entry.lanes],
                                            [int(y * factor) for y in entry.h_samples])
                        sheet.append(draw_labels(thumb, small))
                    _write_picture(out / "draw" / f"{name}.jpg", _sheet(sheet))
                videos += 1
            lanes_file.write(to_tusimple(entries))
            labeled += entries
            bar.update()
    bar.close()
    document = to_coco(labeled, labeler.classes)
    document["info"] = {"description": "curation label", "model": labeler.name, "lanes": lanes.name, **(info or {})}
    (out / "labels.coco.json").write_text(json.dumps(document))
    counts: dict[str, int] = {}
    for entry in labeled:
        for cls in entry.classes:
            counts[cls] = counts.get(cls, 0) + 1
    return {"output": str(out), "images": images, "videos": videos, "labeled_frames": len(labeled),
            "boxes": dict(sorted(counts.items())), "lane_lines": sum(len(e.lanes) for e in labeled), "model": labeler.name,
            "failed": failed}


def labeler_for(config, model: str, lamps: bool, horizon: str, lanes: str | None = None) -> tuple[Labeler, LaneDetector | LearnedLanes, TrackConfig]:
    """The labeler, lane detector and tracker `curation label` runs: ``model`` with the COCO class map
    when its classes carry COCO names (yolov8n-coco, coco-ssd, yolov8n.pt...), else params' ``label.class_map``;
    ``lanes``: a learned lane model (models/lanes.onnx) or None for the calibrated-camera method with ``horizon``."""
    from curation.errors import PolicyError
    from curation.perception.coco_ssd import BUILTIN as SSD
    from curation.perception.labeler import COCO_CLASS_MAP, model_path
    from curation.perception.runtime import load_yolo
    from curation.perception.yolo_onnx import YoloOnnx

    path = model_path(model)
    names = set(COCO_CLASS_MAP) if model == SSD else set(load_yolo(str(path)).names.values()) if path.suffix == ".pt" else \
        set(YoloOnnx(path).names.values()) if path.suffix == ".onnx" else set()
    class_map = {k: v for k, v in COCO_CLASS_MAP.items() if k in names} if {"car", "person"} <= names else config.class_map
    try:
        prior = config.lanes.horizon if horizon == "auto" else float(horizon)
    except ValueError:
        raise PolicyError(f"--horizon must be auto or a share of the height such as 0.42, not {horizon!r}") from None
    if not 0 < prior < 1:
        raise PolicyError(f"--horizon must lie between 0 and 1, not {prior}")
    label = config.model_copy(update={"model": model, "class_map": class_map, "lamps": lamps,
                                      "lanes": config.lanes.model_copy(update={"horizon": prior, "auto_horizon": horizon == "auto", "model": lanes})})
    return Labeler(label), lane_detector(label.lanes), TrackConfig(**label.track.model_dump())
