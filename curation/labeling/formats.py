"""Label files: COCO for boxes, TuSimple for lane lines, each a writer and a reader that round-trip.

One record per labeled picture, :class:`FrameLabels`: the picture's name (a path relative to the
input folder, ``<path>#<frame index>`` for a video frame), its size, its objects (taxonomy class
names, boxes, confidences, attributes such as a light's state or a sign's type) and its lane lines.

COCO: categories are the taxonomy's classes (ids from 1, as COCO tools expect), every annotation
carries ``attributes`` and, for predictions, ``score``. TuSimple: one JSON object per line with
``raw_file``, ``h_samples`` and ``lanes`` (x per sample row, -2 where the line is not seen), plus
``types`` and ``colors``.

Example:
    >>> frame = FrameLabels("clip.mp4#12", 1280, 720, ["vehicle"], [[10, 20, 110, 90]], [0.9], [{}])
    >>> from_coco(to_coco([frame], ["vehicle", "pedestrian"]))[0].boxes
    [[10.0, 20.0, 110.0, 90.0]]
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from curation.errors import LabelError

__all__ = ["FrameLabels", "to_coco", "from_coco", "to_tusimple", "from_tusimple"]


@dataclass
class FrameLabels:
    file_name: str
    width: int
    height: int
    classes: list[str] = field(default_factory=list)  # taxonomy class per object
    boxes: list[list[float]] = field(default_factory=list)  # x1, y1, x2, y2 pixels
    scores: list[float] = field(default_factory=list)  # 1.0 for ground truth
    attributes: list[dict] = field(default_factory=list)
    lanes: list[list[float]] = field(default_factory=list)  # x per h_sample, -2 = not seen
    h_samples: list[int] = field(default_factory=list)
    lane_types: list[str] = field(default_factory=list)
    lane_colors: list[str] = field(default_factory=list)
    ignore: list[bool] = field(default_factory=list)  # ground truth neither to find nor to miss (COCO iscrowd)

    def __post_init__(self):
        n = len(self.classes)
        if not (len(self.boxes) == len(self.scores) == len(self.attributes) == n) or (self.ignore and len(self.ignore) != n):
            raise ValueError(f"FrameLabels {self.file_name}: classes, boxes, scores, attributes (and ignore) must all have length {n}")
        if not self.ignore:
            self.ignore = [False] * n


def to_coco(frames: list[FrameLabels], classes: list[str]) -> dict:
    """A COCO detection document (images, annotations with attributes and score, categories)."""
    images, annotations = [], []
    for image_id, frame in enumerate(frames, 1):
        images.append({"id": image_id, "file_name": frame.file_name, "width": frame.width, "height": frame.height})
        for cls, (x1, y1, x2, y2), score, attrs, ignore in zip(frame.classes, frame.boxes, frame.scores, frame.attributes, frame.ignore):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": classes.index(cls) + 1,
                                "bbox": [round(x1, 1), round(y1, 1), round(x2 - x1, 1), round(y2 - y1, 1)],
                                "area": round((x2 - x1) * (y2 - y1), 1), "iscrowd": int(ignore), "score": round(float(score), 4),
                                "attributes": attrs})
    return {"info": {"description": "curation label"}, "images": images, "annotations": annotations,
            "categories": [{"id": i, "name": c, "supercategory": "road"} for i, c in enumerate(classes, 1)]}


def from_coco(document: dict) -> list[FrameLabels]:
    """FrameLabels per image of a COCO document (category names become class names)."""
    try:
        names = {c["id"]: c["name"] for c in document["categories"]}
        frames = {image["id"]: FrameLabels(image["file_name"], int(image.get("width", 0)), int(image.get("height", 0)))
                  for image in document["images"]}
        for a in document.get("annotations", []):
            frame = frames[a["image_id"]]
            x, y, w, h = (float(v) for v in a["bbox"])
            frame.classes.append(names[a["category_id"]])
            frame.boxes.append([x, y, x + w, y + h])
            frame.scores.append(float(a.get("score", 1.0)))
            frame.attributes.append(dict(a.get("attributes", {})))
            frame.ignore.append(bool(a.get("iscrowd", 0) or a.get("ignore", 0)))
    except (KeyError, TypeError, ValueError) as error:
        raise LabelError(f"not a COCO detection document: {type(error).__name__} {error}") from None
    return list(frames.values())


def to_tusimple(frames: list[FrameLabels]) -> str:
    """TuSimple lane lines: one JSON object per line."""
    return "".join(json.dumps({"raw_file": f.file_name, "h_samples": f.h_samples, "lanes": f.lanes,
                               "types": f.lane_types, "colors": f.lane_colors}) + "\n" for f in frames)


def from_tusimple(text: str) -> dict[str, FrameLabels]:
    """raw_file -> FrameLabels with lanes (no objects) from TuSimple JSON lines."""
    out = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            lanes = [[float(x) for x in lane] for lane in entry["lanes"]]
            rows = [int(y) for y in entry["h_samples"]]
            if any(len(lane) != len(rows) for lane in lanes):
                raise ValueError("a lane has not one x per h_sample")
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise LabelError(f"TuSimple line {number}: {error}") from None
        out[entry["raw_file"]] = FrameLabels(entry["raw_file"], 0, 0, lanes=lanes, h_samples=rows,
                                             lane_types=list(entry.get("types", [])), lane_colors=list(entry.get("colors", [])))
    return out
