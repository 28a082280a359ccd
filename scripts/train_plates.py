"""Reproduce the committed plate detector: synthetic CN/EU/US plates -> YOLO11n, from a seed.

usage: python scripts/train_plates.py [--images 1500] [--epochs 25] [--imgsz 320] [--seed 0]
       [--out models/plates.pt] [--device cpu|0]

Writes the dataset under build/plates-seed<S>/, trains under build/plates-runs/ (never
site-packages), copies the best weights to --out and prints their sha256. From scratch (ultralytics
ships no weights offline) unless --init names weights to fine-tune. Trains at 320 on 640 crops,
i.e. at half scale: redaction runs the detector at imgsz 640 on 1280x720 frames.

How the committed models/plates.pt was made (three rounds, as the generator improved): 9 epochs
from scratch on generator v1 (seed 0); 8 epochs `--init` from those on v2 (seed 1: recoloured
plates, shear); `--init <those> --seed 2 --epochs 10` on this version (coloured characters, haze,
bumpers). `python scripts/train_plates.py --epochs 27` trains a comparable model in one run.
"""

import argparse
import hashlib
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curation.perception.plate_data import write_dataset  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1500)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--init", type=Path, default=None, help="start from these weights (fine-tune) instead of from scratch")
    parser.add_argument("--name", default="train", help="run folder under build/plates-runs/")
    parser.add_argument("--out", type=Path, default=ROOT / "models" / "plates.pt")
    args = parser.parse_args()
    data_root = ROOT / "build" / f"plates-seed{args.seed}"
    if not (data_root / "data.yaml").exists():
        write_dataset(data_root, args.images, args.seed)
    from ultralytics import YOLO

    model = YOLO(str(args.init) if args.init else "yolo11n.yaml")
    model.train(data=str(data_root / "data.yaml"), epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, seed=args.seed,
                device=args.device, project=str(ROOT / "build" / "plates-runs"), name=args.name, exist_ok=True, amp=False,
                workers=2, plots=False, degrees=10, perspective=0.0005, hsv_h=0.05, mosaic=1.0, scale=0.6, fliplr=0.0,
                close_mosaic=5, patience=100, verbose=False)
    best = ROOT / "build" / "plates-runs" / args.name / "weights" / "best.pt"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(best, args.out)
    print(f"{args.out}: sha256 {hashlib.sha256(args.out.read_bytes()).hexdigest()}")


if __name__ == "__main__":
    main()
