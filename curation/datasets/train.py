"""Fine-tune a detector on a region's exported dataset, in the region, and evaluate it on the test split.

Everything ultralytics writes (runs, weights) lands under ``<store>/models/``: nothing trained on
a region's data exists outside it. The metrics (mAP per class, the precision-recall curve) are
aggregates: they are the one thing that may leave (metrics/<R>/train.json and plots data).

Example:
    >>> metrics, plots = train_region(RegionStore(params, "cn"), params)   # doctest: +SKIP
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from curation._env import PROJECT_ROOT
from curation.errors import CurationError
from curation.perception.runtime import resolve_device
from curation.storage.store import RegionStore

__all__ = ["train_region"]


def train_region(store: RegionStore, params) -> tuple[dict, dict]:
    """(metrics document, plots data {"pr": [...], "ap": [...]}) after training and testing."""
    from ultralytics import YOLO

    config, name = params.train, params.export.name
    if store.policy.is_s3:
        raise CurationError(f"train@{store.region}: training reads the dataset from a local store; stage it inside the region first")
    dataset = Path(store.path(f"datasets/{name}"))
    data = dataset / "data.yaml"
    if not data.is_file():
        raise CurationError(f"train@{store.region}: no exported dataset at {dataset} (run export@{store.region} first)")
    counts = {split: sum(1 for _ in (dataset / "images" / split).glob("*.jpg")) for split in ("train", "val", "test")}
    if not counts["train"] or not counts["val"]:
        raise CurationError(f"train@{store.region}: dataset {name} needs train and val images, has {counts}")
    runs = Path(store.path("models/runs"))
    if runs.exists():
        shutil.rmtree(runs)  # a fresh run each time: no stale weights or results
    # ultralytics writes label caches next to the labels: train on a copy, so the exported dataset
    # stays exactly as its manifest says (and as DVC recorded it).
    staged = runs / "data"
    shutil.copytree(dataset, staged, ignore=shutil.ignore_patterns("*.png", "*.md", "annotations", "lanes", "manifest.json"))
    data = staged / "data.yaml"
    init = config.init if config.init.endswith(".yaml") or Path(config.init).is_absolute() else str(PROJECT_ROOT / config.init)
    device = resolve_device(config.device)
    model = YOLO(init)
    model.train(data=str(data), epochs=config.epochs, imgsz=config.imgsz, batch=config.batch, device=device, seed=config.seed,
                project=str(runs), name="train", exist_ok=True, amp=False, plots=False, workers=0, verbose=False, deterministic=True)
    best = runs / "train" / "weights" / "best.pt"
    weights = store.write_bytes(f"models/{name}/best.pt", best.read_bytes())
    split = "test" if counts["test"] else "val"  # a tiny default fleet may leave no vehicle for test
    trained = YOLO(str(Path(store.path(f"models/{name}/best.pt"))))
    result = trained.val(data=str(data), split=split, imgsz=config.imgsz, batch=config.batch, device=device, project=str(runs),
                         name="test", exist_ok=True, plots=False, verbose=False)
    names = trained.names
    per_class = {}
    for k, cls in enumerate(result.box.ap_class_index):
        per_class[names[int(cls)]] = {"mAP50": round(float(result.box.ap50[k]), 4), "mAP50_95": round(float(result.box.ap[k]), 4)}
    recall, precision = _pr_curve(result)
    store.audit.append(store.actor, "train", f"models/{name}/best.pt", weights, epochs=config.epochs, evaluated_on=split)
    metrics = {"region": store.region, "dataset": name, "images": counts, "evaluated_on": split, "epochs": config.epochs,
               "init": Path(config.init).name, "weights_sha256": weights, "device": device,
               "mAP50": round(float(result.box.map50), 4), "mAP50_95": round(float(result.box.map), 4), "classes": per_class}
    plots = {"pr": [{"recall": round(float(r), 3), "precision": round(float(p), 4)} for r, p in zip(recall, precision)],
             "ap": [{"class": c, "mAP50": v["mAP50"]} for c, v in per_class.items()]}
    return metrics, plots


def _pr_curve(result, points: int = 51) -> tuple[np.ndarray, np.ndarray]:
    """All-class precision over recall, as ultralytics computes it (mean over classes), resampled."""
    curves = getattr(result, "curves_results", None) or getattr(result.box, "curves_results", None)
    if not curves:
        return np.zeros(0), np.zeros(0)
    recall, precision = np.asarray(curves[0][0]), np.asarray(curves[0][1])
    mean = precision.mean(0) if precision.ndim == 2 and len(precision) else np.zeros_like(recall)
    grid = np.linspace(0, 1, points)
    return grid, np.interp(grid, recall, mean)

