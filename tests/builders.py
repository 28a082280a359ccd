"""Small builders shared by the tests: a project's params in a temporary folder, stores, ..."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from curation.policy.params import load_params
from curation.storage.store import RegionStore

REPO = Path(__file__).resolve().parents[1]
REPO_PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


def params_document(tmp_path: Path, regions=("cn", "eu", "us")) -> dict:
    """The repository's params with every store moved under tmp_path and file paths made absolute."""
    document = copy.deepcopy(REPO_PARAMS)
    document["regions"] = {name: document["regions"][name] for name in regions}
    for name, region in document["regions"].items():
        region["store"] = str(tmp_path / "data" / name)
        region["boundary"] = str(REPO / region["boundary"])
        region["restricted_zones"]["file"] = str(REPO / region["restricted_zones"]["file"])
    return document


def make_params(tmp_path: Path, document: dict | None = None, regions=("cn", "eu", "us")) -> Path:
    """Write a params.yaml under tmp_path and return its path."""
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(document if document is not None else params_document(tmp_path, regions)))
    return path


def make_store(tmp_path: Path, region: str = "cn", actor: str = "test") -> RegionStore:
    params = load_params(make_params(tmp_path)) if not (tmp_path / "params.yaml").exists() else load_params(tmp_path / "params.yaml")
    return RegionStore(params, region, actor=actor)


def make_fleet(tmp_path: Path, region: str = "cn", out: Path | None = None, **overrides) -> tuple[Path, dict]:
    """A small simulated upload (tiny frames, short clips) written to the region's landing zone."""
    from curation.sources.simulator import simulate_fleet

    params = load_params(tmp_path / "params.yaml") if (tmp_path / "params.yaml").exists() else load_params(make_params(tmp_path))
    rates = overrides.pop("rates", {})
    config = params.simulate.model_validate({**params.simulate.model_dump(), "vehicles": 2, "events": 2, "seconds": 2.0,
                                             "width": 320, "height": 180, "fps": 10, "rates": rates, **overrides})
    out = out or Path(params.regions[region].store) / "landing"
    return out, simulate_fleet(out, params, region, config, progress=False)


def file_hashes(folder: Path) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def fresh_checkout(root: Path, simulate: dict | None = None, train: dict | None = None) -> Path:
    """The repository's tracked and untracked-but-not-ignored files copied to ``root`` as a new git
    repository, without dvc.lock and metrics: what a fresh clone builds from. ``simulate`` and
    ``train`` override params (a small fleet keeps end-to-end tests short)."""
    import shutil
    import subprocess

    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split()
    for name in files:
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    shutil.copytree(REPO / ".cache" / "faces", root / ".cache" / "faces", ignore=shutil.ignore_patterns("*.tmp"))  # made by `make setup`
    (root / "dvc.lock").unlink(missing_ok=True)
    shutil.rmtree(root / "metrics", ignore_errors=True)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["simulate"].update(simulate or {})
    params["train"].update(train or {})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def run_in(root: Path, *args: str, check: bool = True):
    """Run a command of the project's virtual environment in ``root`` (its code, not this checkout's)."""
    import os
    import subprocess
    import sys

    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(root), "DVC_NO_ANALYTICS": "1"}
    command = [str(bin_dir / args[0]) if (bin_dir / args[0]).exists() else args[0], *args[1:]]
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    assert not check or result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def pan_zoom_clip(target, images: list[Path], seconds_each: float = 2.0, fps: float = 25.0, width: int = 1280, height: int = 720,
                  zoom: tuple[float, float] = (1.0, 1.6)) -> int:
    """Real footage made from real photos: a camera panning and zooming over each picture in turn
    (H.264, ``width`` x ``height``), as a dashcam would see a scene drift by. Returns the frame count."""
    import cv2
    import numpy as np

    from curation.media.video import VideoWriter

    count = 0
    with VideoWriter(target, width, height, fps=fps, crf=18) as writer:
        for path in images:
            photo = cv2.imread(str(path))[..., ::-1]
            base = max(width / photo.shape[1], height / photo.shape[0])  # the whole frame always shows the photo
            steps = int(round(seconds_each * fps))
            for k in range(steps):
                t = k / max(steps - 1, 1)
                scale = base * (zoom[0] + (zoom[1] - zoom[0]) * t)
                view_w, view_h = width / scale, height / scale
                x0 = (photo.shape[1] - view_w) * (0.2 + 0.6 * t)
                y0 = (photo.shape[0] - view_h) * 0.5
                matrix = np.array([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]], np.float32)
                writer.write(cv2.warpAffine(np.ascontiguousarray(photo), matrix, (width, height), flags=cv2.INTER_LINEAR))
                count += 1
    return count


def flagged_clip(target, frames, flag, fps: float = 25.0, codec: str = "libx264", pix_fmt: str = "yuv420p") -> None:
    """RGB ``frames`` as stored (H.264 by default, as FFmpeg writes it: B-frames, an edit list), with
    what ``flag(stream)`` sets: a display matrix, colour tags."""
    import av

    with av.open(target, "w", format="mp4") as container:
        stream = container.add_stream(codec, rate=round(fps))
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt, stream.options = pix_fmt, {"crf": "10"} if codec == "libx264" else {}
        flag(stream)
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))


def turned_clip(target, frames, degrees: int, fps: float = 25.0) -> None:
    """Upright RGB ``frames`` as a phone held upright stores them: each picture turned clockwise by
    ``degrees``, with a display matrix that tells players to turn it back."""
    import numpy as np

    turned = [np.ascontiguousarray(np.rot90(frame, -(degrees // 90))) for frame in frames]
    flagged_clip(target, turned, lambda stream: stream.set_display_rotation(degrees), fps)


# The bootstrap model with COCO's names for the classes COCO has: a small model whose classes carry COCO names.
COCO_NAMES = {"vehicle": "car", "pedestrian": "person", "traffic_light": "traffic light", "sign_stop": "stop sign"}


def coco_named_weights(folder: Path) -> Path:
    """models/labeler.pt under COCO's names for four of its classes, saved as a user would ship it."""
    from ultralytics import YOLO

    model = YOLO(str(REPO / "models" / "labeler.pt"))
    model.model.names = {i: COCO_NAMES.get(n, n) for i, n in model.model.names.items()}
    path = folder / "coco_named.pt"
    model.save(str(path))
    return path
