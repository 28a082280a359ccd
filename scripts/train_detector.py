"""Reproduce a committed detector from a seed: `plates` (models/plates.pt) or `labeler` (models/labeler.pt).

usage: python scripts/train_detector.py plates|labeler [--images N] [--epochs E] [--seed S] [--init W]
       [--out PATH] [--device cpu|0]

Writes the dataset under build/<kind>-seed<S>/, trains under build/<kind>-runs/ (never
site-packages), copies the best weights to --out and prints their sha256. From scratch (ultralytics
ships no weights offline) unless --init names weights to fine-tune. Both train at imgsz 320 on
tiles at inference scale: the stages run them at imgsz 640 on 1280x720 frames.

plates: synthetic CN/EU/US plates pasted on scenes and photos (curation/perception/plate_data.py).
`--init package:fastanpr/best.pt --freeze 10 --imgsz 480 --lr0 0.002` fine-tunes the real-trained plate
model instead (backbone frozen). The committed models/plates-sim.pt (redaction.plate_sim_model, beside
fastanpr's model, not instead of it: alone it forgot some real plates) is
`python scripts/train_detector.py plates --images 1200 --epochs 4 --imgsz 480 --batch 16 --seed 10
--init package:fastanpr/best.pt --freeze 10 --lr0 0.002 --name fastanpr-sim --out models/plates-sim.pt`.
The committed models/plates.pt took three rounds as the generator improved: 9 epochs from scratch
on generator v1 (seed 0); 8 epochs `--init` from those on v2 (seed 1: recoloured plates, shear);
`--init <those> --seed 2 --epochs 10` on this version (coloured characters, haze, bumpers).
`python scripts/train_detector.py plates --epochs 27` trains a comparable model in one run.

labeler: simulated road scenes, redacted as redact@R leaves them, with vehicles, pedestrians,
traffic lights by state and signs by type (curation/perception/scene_data.py). How the committed
models/labeler.pt was made is in README.md (Auto-labeling).
"""

import argparse
import hashlib
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curation.perception import plate_data, scene_data  # noqa: E402

DEFAULTS = {"plates": {"images": 1500, "epochs": 25}, "labeler": {"images": 1500, "epochs": 20}}
AUGMENT = {"plates": {"degrees": 10, "perspective": 0.0005, "hsv_h": 0.05, "fliplr": 0.0, "scale": 0.6},
           # Lights and signs are not mirror-symmetric in meaning (text): no flips; mild scale.
           "labeler": {"degrees": 0, "hsv_h": 0.01, "fliplr": 0.0, "scale": 0.3}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=sorted(DEFAULTS))
    parser.add_argument("--images", type=int, default=None, help="training images (labeler: frames, two tiles each)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--init", default=None, help="start from these weights (a path or package:NAME/FILE) instead of from scratch")
    parser.add_argument("--freeze", type=int, default=0, help="layers to keep frozen when fine-tuning (10: the whole backbone)")
    parser.add_argument("--lr0", type=float, default=0.01)
    parser.add_argument("--name", default="train", help="run folder under build/<kind>-runs/")
    parser.add_argument("--out", type=Path, default=None, help="default: models/<kind>.pt")
    args = parser.parse_args()
    images = args.images or DEFAULTS[args.kind]["images"]
    epochs = args.epochs or DEFAULTS[args.kind]["epochs"]
    out = args.out or ROOT / "models" / f"{args.kind}.pt"
    data_root = ROOT / "build" / f"{args.kind}-seed{args.seed}"
    if not (data_root / "data.yaml").exists():
        (plate_data if args.kind == "plates" else scene_data).write_dataset(data_root, images, args.seed)
    from ultralytics import YOLO

    runs = ROOT / "build" / f"{args.kind}-runs"
    from curation.perception.runtime import resolve_weights

    model = YOLO(str(resolve_weights(args.init, "--init")) if args.init else "yolo11n.yaml")
    model.train(data=str(data_root / "data.yaml"), epochs=epochs, imgsz=args.imgsz, batch=args.batch, seed=args.seed,
                device=args.device, project=str(runs), name=args.name, exist_ok=True, amp=False, workers=2, plots=False,
                mosaic=1.0, close_mosaic=min(5, epochs // 3), patience=100, verbose=False, freeze=args.freeze or None, lr0=args.lr0,
                **AUGMENT[args.kind])
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(runs / args.name / "weights" / "best.pt", out)
    print(f"{out}: sha256 {hashlib.sha256(out.read_bytes()).hexdigest()}")


if __name__ == "__main__":
    main()
