"""Train the lane network (curation/perception/lane_net.py) -> models/lanes.onnx.

  python scripts/train_lanes.py generate --frames 6000          # simulated scenes -> build/lanes/sim/
  python scripts/train_lanes.py train --minutes 18               # resumes from build/lanes/checkpoint.pt
  python scripts/train_lanes.py export                           # -> models/lanes.onnx

Training data: simulated scenes with randomized appearance (curation/perception/lane_data.py, seeds
from 7_000_000 on: no other simulator uses them) and real frames labeled by hand, given as TuSimple
label files (``--real LABELS.json:MEDIA_FOLDER``, repeatable; a ``raw_file`` of ``clip.mp4#12`` is
frame 12 of that video). Every batch is about a third real when real frames are given. Augmented
on the fly: mirror, zoom and shift, colour, rain streaks, night. Chunks of ``--minutes`` resume from the checkpoint, so
a long training runs as several short jobs (the learning rate follows the total ``--steps``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curation.perception.lane_data import HEIGHT, WIDTH, render_scene  # noqa: E402
from curation.perception.lane_net import INPUT, OUTPUT, build_network  # noqa: E402

BUILD = ROOT / "build" / "lanes"
SEED_BASE = 7_000_000
THICKNESS = 2  # truth lines in grid cells


def _one(seed: int) -> tuple[int, bytes, np.ndarray, np.ndarray]:
    image, lines, hidden = render_scene(np.random.default_rng([SEED_BASE, seed]))
    small = cv2.resize(image, INPUT, interpolation=cv2.INTER_AREA)
    ok, jpg = cv2.imencode(".jpg", small[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    xs = np.stack(lines) if lines else np.zeros((0, HEIGHT), np.float32)
    return seed, jpg.tobytes(), xs.astype(np.float16), cv2.resize(hidden, OUTPUT, interpolation=cv2.INTER_NEAREST)


def generate(frames: int, start: int, workers: int) -> None:
    out = BUILD / "sim"
    out.mkdir(parents=True, exist_ok=True)
    with Pool(workers) as pool:
        for n, (seed, png, xs, hidden) in enumerate(pool.imap_unordered(_one, range(start, start + frames), chunksize=4)):
            (out / f"{seed:07d}.jpg").write_bytes(png)
            np.savez_compressed(out / f"{seed:07d}.npz", xs=xs, hidden=hidden)
            if n % 500 == 0:
                print(f"generated {n}/{frames}", flush=True)


def _sim_sample(path: Path) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """(image 320x176 RGB, lines as (N, 2) points in 640x360 pixels, hidden grid)."""
    image = cv2.imread(str(path))[..., ::-1]
    data = np.load(path.with_suffix(".npz"))
    lines = []
    for xs in data["xs"].astype(np.float32):
        rows = np.flatnonzero(xs >= 0)
        if len(rows) >= 2:
            lines.append(np.stack([xs[rows], rows + 0.5], 1) * [INPUT[0] / WIDTH, INPUT[1] / HEIGHT])
    return np.ascontiguousarray(image), lines, data["hidden"]


def read_media(folder: Path, name: str, cache: dict) -> np.ndarray | None:
    """RGB of a picture, or of frame k of a video named ``clip.mp4#k``."""
    if "#" in name:
        import av

        clip, _, index = name.partition("#")
        if clip not in cache:
            with av.open(str(folder / clip)) as container:
                cache[clip] = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        frames = cache[clip]
        return frames[int(index)] if int(index) < len(frames) else None
    picture = cv2.imread(str(folder / name))
    return None if picture is None else picture[..., ::-1]


def _real_samples(specs: list[str]) -> list[tuple[np.ndarray, list[np.ndarray], np.ndarray]]:
    out = []
    for spec in specs:
        labels, _, folder = spec.partition(":")
        cache: dict = {}
        for line in Path(labels).read_text().splitlines():
            item = json.loads(line)
            rgb = read_media(Path(folder), item["raw_file"], cache)
            if rgb is None:
                continue
            h, w = rgb.shape[:2]
            lines = []
            for xs in item["lanes"]:
                pts = np.array([(x, y) for x, y in zip(xs, item["h_samples"]) if x >= 0], np.float32)
                if len(pts) >= 2:
                    lines.append(pts * [INPUT[0] / w, INPUT[1] / h])
            out.append((np.ascontiguousarray(cv2.resize(rgb, INPUT, interpolation=cv2.INTER_AREA)), lines,
                        np.zeros(OUTPUT[::-1], np.uint8)))
    return out


def target(lines: list[np.ndarray], hidden: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(line mask, loss weight) on the output grid; ``matrix`` maps input pixels to augmented ones."""
    mask = np.zeros(OUTPUT[::-1], np.uint8)
    scale = OUTPUT[0] / INPUT[0]
    for pts in lines:
        moved = (np.c_[pts, np.ones(len(pts))] @ matrix.T) * scale
        cv2.polylines(mask, [np.round(moved * 16).astype(np.int32)], False, 1, THICKNESS, cv2.LINE_8, shift=4)
    weight = np.ones(OUTPUT[::-1], np.float32)
    hidden_moved = cv2.warpAffine(hidden, matrix * [[1, 1, scale], [1, 1, scale]], OUTPUT, flags=cv2.INTER_NEAREST)
    weight[(hidden_moved > 0) & (mask > 0)] = 0  # a line behind a car: neither taught as paint nor as asphalt
    return mask, weight


def augment(rng, image: np.ndarray, lines, hidden, real: bool):
    zoom = rng.uniform(1.0, 1.25)
    tx = rng.uniform(INPUT[0] * (1 - zoom), 0)
    ty = rng.uniform(INPUT[1] * (1 - zoom), 0)
    matrix = np.array([[zoom, 0, tx], [0, zoom, ty]], np.float64)
    if rng.random() < 0.5:  # mirror
        matrix = np.array([[-1, 0, INPUT[0]], [0, 1, 0]], np.float64) @ np.vstack([matrix, [0, 0, 1]])
    picture = cv2.warpAffine(image, matrix, INPUT, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    mask, weight = target(lines, hidden, matrix)
    picture = picture.astype(np.float32)
    if rng.random() < 0.15:  # rain: bright streaks falling across everything (no lines of the road)
        streaks = np.zeros(picture.shape[:2], np.float32)
        for _ in range(int(rng.integers(40, 250))):
            x, y, length = int(rng.integers(0, INPUT[0])), int(rng.integers(0, INPUT[1])), int(rng.integers(4, 12))
            lean = rng.uniform(-0.3, 0.3)
            cv2.line(streaks, (x, y), (int(x + lean * length), y + length), 1.0, 1, cv2.LINE_AA)
        picture = picture + streaks[..., None] * rng.uniform(40, 110)
    if rng.random() < 0.15:  # night: dark, noisy, a few glares
        picture = picture * rng.uniform(0.12, 0.45)
        for _ in range(int(rng.integers(0, 6))):
            cv2.circle(picture, (int(rng.integers(0, INPUT[0])), int(rng.integers(INPUT[1] // 3, INPUT[1]))),
                       int(rng.integers(2, 8)), (float(rng.uniform(180, 255)),) * 3, -1, cv2.LINE_AA)
        picture = picture + rng.normal(0, rng.uniform(2, 8), picture.shape)
    if real or rng.random() < 0.5:
        picture = picture * rng.uniform(0.7, 1.3) + rng.uniform(-20, 20)
        picture = picture * rng.uniform(0.9, 1.1, 3)
        grey = picture.mean(2, keepdims=True)
        picture = grey + (picture - grey) * rng.uniform(0.5, 1.3)
        if rng.random() < 0.3:
            picture = cv2.GaussianBlur(picture, (0, 0), rng.uniform(0.3, 1.0))
        picture = picture + rng.normal(0, rng.uniform(0, 5), picture.shape)
    picture = np.clip(picture, 0, 255) / 255 - 0.5
    return picture.transpose(2, 0, 1).astype(np.float32), mask, weight


def train(minutes: float, steps: int, batch: int, real: list[str], threads: int, lr: float) -> None:
    import torch

    torch.set_num_threads(threads)
    sim = sorted((BUILD / "sim").glob("*.jpg"))
    print(f"{len(sim)} simulated frames", flush=True)
    sim_data = []
    for p in sim:
        try:
            sim_data.append(_sim_sample(p))
        except (OSError, ValueError, TypeError):  # a frame cut short when its generator was stopped
            print(f"skipped {p.name}", flush=True)
    real_data = _real_samples(real)
    print(f"{len(real_data)} real frames", flush=True)
    net = build_network()
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    checkpoint = BUILD / "checkpoint.pt"
    step = 0
    if checkpoint.exists():
        state = torch.load(checkpoint, weights_only=False)
        net.load_state_dict(state["net"])
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        print(f"resumed at step {step}", flush=True)
    rng = np.random.default_rng(step)
    start, losses = time.time(), []
    net.train()
    while step < steps and time.time() - start < minutes * 60:
        for group in optimizer.param_groups:  # cosine from lr to lr/50 over all steps, after 200 warm-up steps
            group["lr"] = lr * min(1.0, (step + 1) / 200) * (0.02 + 0.98 * 0.5 * (1 + np.cos(np.pi * step / steps)))
        items = []
        for _ in range(batch):
            use_real = real_data and rng.random() < 0.35
            image, lines, hidden = (real_data if use_real else sim_data)[int(rng.integers(len(real_data if use_real else sim_data)))]
            items.append(augment(rng, image, lines, hidden, bool(use_real)))
        x = torch.from_numpy(np.stack([i[0] for i in items]))
        y = torch.from_numpy(np.stack([i[1] for i in items])).float()[:, None]
        w = torch.from_numpy(np.stack([i[2] for i in items]))[:, None]
        logits = net(x)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, weight=w * (1 + 4 * y), reduction="sum") / w.sum()
        p = torch.sigmoid(logits) * w
        dice = 1 - (2 * (p * y).sum((1, 2, 3)) + 1) / (p.sum((1, 2, 3)) + (y * w).sum((1, 2, 3)) + 1)
        loss = bce + dice.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
        step += 1
        if step % 50 == 0:
            print(f"step {step} loss {np.mean(losses[-50:]):.4f} lr {optimizer.param_groups[0]['lr']:.5f} "
                  f"{(time.time() - start) / len(losses):.2f} s/step", flush=True)
        if step % 500 == 0:
            torch.save({"net": net.state_dict(), "optimizer": optimizer.state_dict(), "step": step}, checkpoint)
    torch.save({"net": net.state_dict(), "optimizer": optimizer.state_dict(), "step": step}, checkpoint)
    print(f"stopped at step {step}", flush=True)


def export(out: Path) -> None:
    import torch

    net = build_network()
    net.load_state_dict(torch.load(BUILD / "checkpoint.pt", weights_only=False)["net"])
    net.eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(net, torch.zeros(1, 3, INPUT[1], INPUT[0]), str(out), input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17, dynamo=False)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="render simulated scenes into build/lanes/sim/")
    g.add_argument("--frames", type=int, default=6000)
    g.add_argument("--start", type=int, default=0, help="first seed (run again with a new start to add frames)")
    g.add_argument("--workers", type=int, default=2)
    t = sub.add_parser("train", help="train (resuming from build/lanes/checkpoint.pt)")
    t.add_argument("--minutes", type=float, default=18)
    t.add_argument("--steps", type=int, default=8000, help="total steps of the whole training (sets the schedule)")
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--real", action="append", default=[], help="LABELS.json:MEDIA_FOLDER of real frames (TuSimple lines)")
    e = sub.add_parser("export", help="checkpoint -> ONNX")
    e.add_argument("--out", type=Path, default=ROOT / "models" / "lanes.onnx")
    args = parser.parse_args()
    if args.command == "generate":
        generate(args.frames, args.start, args.workers)
    elif args.command == "train":
        train(args.minutes, args.steps, args.batch, args.real, args.threads, args.lr)
    else:
        export(args.out)


if __name__ == "__main__":
    main()
