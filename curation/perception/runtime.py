"""Where models run: the device a stage asks for, and one ultralytics model per weights file.

Example:
    >>> resolve_device("auto")      # doctest: +SKIP
    'cpu'
"""

from __future__ import annotations

import functools
from pathlib import Path

__all__ = ["resolve_device", "load_yolo"]


def resolve_device(device: str = "auto") -> str:
    """'auto' -> '0' (first GPU) when torch sees CUDA, else 'cpu'."""
    if device != "auto":
        return device
    if not Path("/dev/nvidiactl").exists():
        return "cpu"  # no NVIDIA driver: skip importing torch (2.5 s of every command's start)
    import torch

    return "0" if torch.cuda.is_available() else "cpu"


@functools.cache
def load_yolo(path: str):
    """One ultralytics model per weights file and process."""
    from ultralytics import YOLO

    return YOLO(path, task="detect")
