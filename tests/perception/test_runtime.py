"""The CPU runtimes: OpenVINO in bfloat16 finds what ONNX Runtime in float32 finds, at nearly the same
confidence, for the YOLOs and CenterFace; the face verifier stays in float32; a typo in the setting is one line;
OpenVINO reports nothing home; the face models' input batches hold what the plain expression gives."""

import hashlib
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from builders import REPO
from curation.errors import PolicyError
from curation.perception.boxes import iou_matrix
from curation.perception.faces import FaceDetector
from curation.perception.plate_data import _plate, _scene_background
from curation.perception.plates import PlateDetector
from curation.perception import runtime
from curation.perception.runtime import built_once, cpu_runtime, planar
from curation.policy.params import load_params
from curation.redaction.detectors import BF16_MARGIN, Detectors
from curation.sources.faces import face_bank
from curation.sources.scene import _paste as paste  # the simulator's alpha blend

TESTDATA = REPO.parent / "shared" / "testdata"
# bfloat16 keeps 8 bits of mantissa: confidences moved by at most 0.024 on real faces and plates
# (curation.redaction.detectors.BF16_MARGIN); a box may move a pixel or two.
CONFIDENCE_ATOL = BF16_MARGIN


def _agree(ours, reference, threshold):
    """Every reference box well above ``threshold`` is found again, nearly where and nearly as sure."""
    for found, expected in zip(ours, reference):
        sure = expected[expected.confidence >= threshold + CONFIDENCE_ATOL]
        if not len(sure):
            continue
        assert len(found), "a box ONNX Runtime found is missing"
        overlap = iou_matrix(sure.xyxy, found.xyxy)
        assert overlap.max(1).min() > 0.85
        matched = found.confidence[overlap.argmax(1)]
        assert np.abs(matched - sure.confidence).max() <= CONFIDENCE_ATOL


def _pasted(scene: np.ndarray, sprites: list[np.ndarray], widths: tuple[int, ...]) -> np.ndarray:
    """``scene`` with each sprite (RGBA, or RGB taken as opaque) drawn at its width, in a row."""
    canvas = scene.copy()
    for k, (sprite, width) in enumerate(zip(sprites, widths)):
        if sprite.shape[2] == 3:
            sprite = np.dstack([sprite, np.full(sprite.shape[:2], 255, np.uint8)])
        x, y = 60 + 300 * k, 300
        paste(canvas, sprite, x, y, x + width, y + width * sprite.shape[0] / sprite.shape[1])
    return canvas


def _pictures():
    """Simulated 1280x720 streets, one with real faces (the face bank, not shared/testdata) and one with
    large drawn plates pasted, so that every model finds something on any machine; the real photos
    with faces too when ../shared is here."""
    rng = np.random.default_rng(5)
    scenes = [_scene_background(rng)[0] for _ in range(2)]
    pictures = [*scenes, _pasted(scenes[0], list(face_bank().crops[:4]), (64, 96, 128, 160)),
                _pasted(scenes[1], [_plate(rng) for _ in range(4)], (120, 180, 240, 320))]
    for name in ("deface_city.jpg", "real/faces/egoblur_gen2_test_face_image.png"):
        if (TESTDATA / name).exists():
            pictures.append(np.ascontiguousarray(cv2.resize(cv2.imread(str(TESTDATA / name)), (1280, 720))[..., ::-1]))
    return pictures


@pytest.mark.skipif(cpu_runtime("auto") != "openvino-bf16", reason="this CPU has no native bfloat16: auto runs ONNX Runtime")
def test_openvino_bf16_finds_what_onnx_runtime_finds():
    pictures = _pictures()
    pairs = [
        (FaceDetector(0.3, "cpu", (0.75, 0.25), runtime=r) for r in ("openvino-bf16", "onnxruntime")),
        (PlateDetector("package:fastanpr/best.pt", 960, 0.3, "cpu", runtime=r) for r in ("openvino-bf16", "onnxruntime")),
        (PlateDetector("package:safelicensing/best.pt", 960, 0.3, "cpu", runtime=r) for r in ("openvino-bf16", "onnxruntime")),  # the verifier
    ]
    for bf16, fp32 in pairs:
        assert bf16.runtime == "openvino-bf16" and fp32.runtime == "CPUExecutionProvider"
        reference = fp32(pictures)
        assert sum(len(d) for d in reference) >= 2, f"{fp32.name} found nothing to compare"
        _agree(bf16(pictures), reference, fp32.threshold)
        if hasattr(fp32, "detect_crops"):  # the walks' small crops, batched
            crops = [np.ascontiguousarray(cv2.resize(p, (96, 96))) for p in pictures]
            _agree(bf16.detect_crops(crops), fp32.detect_crops(crops), fp32.threshold)


@pytest.mark.skipif(cpu_runtime("auto") != "openvino-bf16", reason="this CPU has no native bfloat16: auto runs ONNX Runtime")
def test_bf16_lowers_the_thresholds_of_the_models_it_runs_and_the_face_verifier_stays_float32():
    params = load_params(REPO / "params.yaml")
    stage = params.redaction
    detectors = Detectors(params.model_copy(update={"redaction": stage.model_copy(update={"device": "cpu"})}), "cn")
    face, plate, sim = detectors.redact
    face_verifier, plate_verifier = detectors.verify
    assert {d.runtime for d in (*detectors.redact, plate_verifier)} == {"openvino-bf16"}
    assert face.threshold == pytest.approx(stage.face_threshold - BF16_MARGIN) and face.steps[0][1] == pytest.approx(stage.face_large_threshold - BF16_MARGIN)
    assert plate.threshold == pytest.approx(stage.plate_threshold - BF16_MARGIN) and sim.threshold == pytest.approx(stage.plate_sim_threshold - BF16_MARGIN)
    assert plate_verifier.threshold == pytest.approx(stage.verify_plate_threshold - BF16_MARGIN)
    assert plate_verifier.steps[0][1] == pytest.approx(stage.verify_large_threshold - BF16_MARGIN)
    assert face_verifier.runtime == "CPUExecutionProvider" and face_verifier.threshold == stage.verify_face_threshold
    float32 = Detectors(params.model_copy(update={"redaction": stage.model_copy(update={"device": "cpu", "cpu_runtime": "onnxruntime"})}), "cn")
    assert [d.threshold for d in float32.redact] == [stage.face_threshold, stage.plate_threshold, stage.plate_sim_threshold]
    assert [d.threshold for d in float32.verify] == [stage.verify_face_threshold, stage.verify_plate_threshold]
    assert {d.runtime for d in (*float32.redact, *float32.verify)} == {"CPUExecutionProvider"}


def test_a_typo_in_cpu_runtime_is_one_line():
    with pytest.raises(PolicyError, match="cpu_runtime: 'openvino' is not one of auto, onnxruntime, openvino-bf16"):
        cpu_runtime("openvino")


def test_openvino_sends_no_telemetry(tmp_path):
    """Importing openvino starts openvino-telemetry (a client id in ~/intel, a forked process that
    reports to Google Analytics) unless it is kept out: the runtime check and an OpenVINO session
    leave the home folder empty and fork nothing."""
    script = (
        "import os\n"
        "forks = []\n"
        "os.register_at_fork(before=lambda: forks.append(1))\n"
        "from curation.perception.runtime import OpenVinoSession, cpu_runtime\n"
        "cpu_runtime('auto')\n"
        f"OpenVinoSession({str(REPO / 'models' / 'lanes.onnx')!r})\n"
        "print('forks', len(forks))\n"
    )
    # HOME of this child only: where openvino-telemetry keeps its client id and consent file.
    env = {**os.environ, "HOME": str(tmp_path)}
    env.pop("CI", None)  # openvino-telemetry stays quiet in CI by itself; the guard must not rely on it
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "forks 0" in done.stdout and not list(tmp_path.iterdir()), (done.stdout, list(tmp_path.rglob("*")))


def test_planar_batches_equal_converting_and_transposing_the_stack():
    """The one-pass input batch is bit for bit what the face detectors fed before (convert the stack,
    subtract the means, transpose): RetinaFace's BGR order less its means, CenterFace's plain RGB, and
    a YOLO's RGB over 255, filled up with zeros to the batch a file was exported for."""
    images = [np.random.default_rng(seed).integers(0, 256, (72, 128, 3), np.uint8) for seed in range(3)]
    mean = np.array([104.0, 117.0, 123.0], np.float32)
    bgr = np.ascontiguousarray((np.stack(images)[..., ::-1].astype(np.float32) - mean).transpose(0, 3, 1, 2))
    assert np.array_equal(planar(images, (2, 1, 0), tuple(mean)), bgr)
    assert np.array_equal(planar(images), np.stack(images).astype(np.float32).transpose(0, 3, 1, 2))
    yolo = np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2), np.float32) / 255
    assert np.array_equal(planar(np.stack(images), divisor=255, size=4), np.concatenate([yolo, np.zeros_like(yolo[:1])]))


def test_a_derived_model_is_made_once_named_by_its_source(tmp_path, monkeypatch):
    """An export or rewrite is made once into build/onnx/, named by the source's content hash and
    what was done to it; a make that fails leaves neither a file nor its private folder behind."""
    monkeypatch.setattr(runtime, "PROJECT_ROOT", tmp_path)
    source = tmp_path / "net.pt"
    source.write_bytes(b"weights")
    made = []

    def make(folder):
        made.append(folder)
        (folder / "net.onnx").write_bytes(b"model")
        return folder / "net.onnx"

    first = built_once(source, make, tag="dynamic")
    assert built_once(source, make, tag="dynamic") == first and len(made) == 1
    assert first.name == f"net-{hashlib.sha256(b'weights').hexdigest()[:16]}-dynamic.onnx" and first.read_bytes() == b"model"

    def broken(folder):
        (folder / "half.onnx").write_bytes(b"mo")
        raise RuntimeError("export failed")

    source.write_bytes(b"other weights")
    with pytest.raises(RuntimeError, match="export failed"):
        built_once(source, broken)
    assert sorted(p.name for p in first.parent.iterdir()) == [first.name]


def test_a_command_starts_without_importing_onnx():
    """CenterFace is rewritten once (dynamic sizes, weights as constants) and later processes load
    that file: importing onnx took 1.2 s of every `curation redact` start on this CPU."""
    FaceDetector(device="cpu", runtime="onnxruntime")  # makes the file where this checkout has none yet
    script = ("import sys\nfrom curation.perception.faces import FaceDetector\n"
              "FaceDetector(device='cpu', runtime='onnxruntime')\nprint('onnx' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"


def test_auto_asks_openvino_only_where_the_cpu_flags_allow_bf16(tmp_path):
    """A CPU whose flags name no bfloat16 instructions runs ONNX Runtime without importing OpenVINO
    (0.3 s of a command's start); one that does, or where the flags cannot be read, asks OpenVINO."""
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma avx512f\n\nprocessor\t: 1\nflags\t\t: fpu sse2 avx2 fma avx512f\n")
    assert not runtime._may_compute_bf16(cpuinfo)
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_tile\n")
    assert runtime._may_compute_bf16(cpuinfo)
    assert runtime._may_compute_bf16(tmp_path / "missing")
    assert runtime._may_compute_bf16(tmp_path)  # a folder: unreadable as text
