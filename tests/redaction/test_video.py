"""Redaction of whole clips: coverage on every frame, timestamps kept, metadata and GPS stripped."""

import io
import re
from pathlib import Path

import numpy as np
import pytest
from tqdm import tqdm

from curation.media.video import VideoWriter, decode_frames, probe
from curation.errors import RedactionError
from curation.perception.boxes import Detections
from curation.perception.faces import FaceDetector
from curation.redaction.masks import mask_of, redact
from curation.redaction.verify import MAX_REPAIRS, Verification, needs_repair, verify_video
from curation.redaction.video import RedactionConfig, redact_video, stream_frames
from curation.sources.faces import face_bank
from curation.sources.scene import Actor, Camera, Conditions, Scene
from curation.sources.sei import Telemetry, sei_nal
from curation.sources.textures import pedestrian_sprite

W, H, N = 640, 360, 20


def make_face_clip(frames=N) -> tuple[bytes, list[list[dict]]]:
    """A parked car filming one person who stays in view, face 40-50 px, on every frame."""
    bank = face_bank()
    person = Actor("pedestrian", 1, 0.4, 2.6, 0.0, (0.55, 1.75), pedestrian_sprite((200, 40, 40), (30, 30, 90), (200, 160, 140)),
                   {"facing_camera": True}, vx=-0.05, face=0, face_track=2)
    scene = Scene(Camera(W, H), Conditions(), 0.0, [{"id": 0, "x_m": -1.75, "type": "solid", "color": "white"}], 0, [person],
                  (bank.crops, bank.boxes))
    buffer, truth = io.BytesIO(), []
    with VideoWriter(buffer, W, H, fps=10) as writer:
        for i in range(frames):
            image, objects, _ = scene.render(i / 10, 0.0)
            writer.write(image, sei=sei_nal(Telemetry(frame_seq_no=i, latitude_deg=31.2345678, longitude_deg=121.4567891)))
            truth.append([o for o in objects if o["class"] == "face"])
    return buffer.getvalue(), truth


class MissingFrames:
    """The real face detector, made to miss the given calls (one keyframe per call)."""

    name, model_sha256 = "centerface-with-misses", "test"

    def __init__(self, miss: set[int]):
        self.inner, self.miss, self.calls = FaceDetector(0.3, "cpu", (1.0, 0.25)), miss, 0

    def __call__(self, frames):
        found = self.inner(frames)
        out = [Detections.empty() if self.calls + k in self.miss else d for k, d in enumerate(found)]
        self.calls += len(frames)
        return out


def _coverage(boxes, truth):
    shares = []
    for detections, faces in zip(boxes, truth):
        mask = mask_of(detections, (H, W))
        for face in faces:
            x1, y1, x2, y2 = (int(round(v)) for v in face["box"])
            shares.append(mask[y1:y2, x1:x2].mean())
    return np.array(shares)


def test_face_in_every_frame_stays_covered_when_the_detector_misses_single_frames():
    data, truth = make_face_clip()
    assert all(len(faces) == 1 and faces[0]["box"][3] - faces[0]["box"][1] >= 32 for faces in truth)
    missing = MissingFrames({3, 7, 12})
    # Without tracking, masking exactly what the detector returns leaks the missed frames...
    naive = [missing.inner([frame])[0] if i not in missing.miss else Detections.empty()
             for i, (_, frame) in enumerate(decode_frames(io.BytesIO(data)))]
    assert (_coverage(naive, truth) < 0.9).sum() == 3
    # ...the redactor covers every frame.
    result = redact_video(data, io.BytesIO(), [missing], RedactionConfig(detect_every_s=0.1))
    assert result.frames == N and missing.calls == N
    assert (_coverage(result.boxes, truth) >= 0.9).all()


def test_output_keeps_every_frame_and_timestamp_and_strips_audio_metadata_and_precise_gps():
    data, _ = make_face_clip()
    target = io.BytesIO()
    redact_video(data, target, [FaceDetector(0.3, "cpu")], RedactionConfig(gps_precision_m=1000.0))
    source, output = probe(data), probe(target.getvalue())
    assert output.frames == source.frames == N and output.decodable == N
    assert np.allclose(output.pts * float(output.time_base), source.pts * float(source.time_base))
    assert output.audio_streams == 0
    assert set(output.metadata) <= {"major_brand", "minor_version", "compatible_brands"}
    latitudes = {t.latitude_deg for t in output.telemetry}
    assert len(latitudes) == 1 and abs(latitudes.pop() - 31.2345678) > 1e-4  # coarsened, not precise
    dropped = io.BytesIO()
    redact_video(data, dropped, [FaceDetector(0.3, "cpu")], RedactionConfig(gps_precision_m=None))
    assert all(t is None for t in probe(dropped.getvalue()).telemetry)


def test_blanked_frames_are_black_and_carry_no_telemetry():
    data, _ = make_face_clip(10)
    target = io.BytesIO()
    zone = np.zeros(10, bool)
    zone[4:7] = True
    result = redact_video(data, target, [FaceDetector(0.3, "cpu")], RedactionConfig(), blank_frames=zone)
    frames = [f for _, f in decode_frames(io.BytesIO(target.getvalue()))]
    assert [f.max() <= 16 for f in frames] == zone.tolist()  # black, up to codec noise
    assert [t is None for t in probe(target.getvalue()).telemetry] == zone.tolist()
    assert result.blanked.tolist() == zone.tolist()


def test_verification_fails_an_unredacted_clip_and_passes_a_redacted_one():
    data, _ = make_face_clip(6)
    verifier = [FaceDetector(0.5, "cpu")]
    raw = verify_video(data, verifier, {0: 32}, expected=6)
    assert len(raw.findings) == 6 and not raw.passed  # the raw clip: a face on every frame
    target = io.BytesIO()
    redact_video(data, target, [FaceDetector(0.3, "cpu")], RedactionConfig())
    redacted = verify_video(target.getvalue(), verifier, {0: 32}, expected=6)
    assert redacted.passed and redacted.findings == [] and redacted.frames == 6
    assert not verify_video(target.getvalue(), verifier, {0: 32}, expected=7).passed  # a frame the output does not have


def test_a_clip_with_odd_sides_is_redacted_with_its_last_column_and_row_repeated():
    import av

    data, _ = make_face_clip(6)
    frames = [frame[:-1, :-1] for _, frame in decode_frames(io.BytesIO(data))]  # 639x359: H.264 in 4:4:4 holds odd sides
    odd = io.BytesIO()
    with av.open(odd, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = W - 1, H - 1, "yuv444p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv444p")))
        container.mux(stream.encode(None))
    target = io.BytesIO()
    redact_video(odd.getvalue(), target, [FaceDetector(0.3, "cpu")], RedactionConfig())  # 4:2:0 output: it needs even sides
    output = [frame for _, frame in decode_frames(io.BytesIO(target.getvalue()))]
    assert len(output) == 6 and output[0].shape == (H, W, 3)
    assert np.abs(output[0][:, -1].astype(int) - output[0][:, -2].astype(int)).mean() < 4  # the last column, once more
    assert verify_video(target.getvalue(), [FaceDetector(0.5, "cpu")], {0: 32}, expected=6).passed


def test_cli_redacts_a_video_file_next_to_the_input(tmp_path):
    import json
    import subprocess
    import sys

    from builders import REPO

    data, _ = make_face_clip(8)
    source = tmp_path / "dashcam.mp4"
    source.write_bytes(data)
    result = subprocess.run([sys.executable, "-m", "curation.cli", "redact", str(source), "--region", "eu"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-1500:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["output"] == str(tmp_path / "dashcam_redacted.mp4") and report["frames"] == 8
    assert report["face_tracks"] >= 1 and report["verification"] == "passed"
    proof = json.loads((tmp_path / "dashcam_redacted.proof.json").read_text())
    assert len(proof["frames"]) == 8 and all(frame["masked"] for frame in proof["frames"])  # the face, masked on every frame
    assert proof["verification"]["frames"] == proof["verification"]["expected"] == 8 and proof["input_sha256"]
    # Real footage by default: the model fine-tuned on the simulator's plates runs only when asked for.
    assert [d["name"] for d in proof["detectors"]["redaction"]] == ["centerface", "yolo-plates-fastanpr"]
    # And at what size each model saw the frames: eu's 16 px plate reaches the plate models at 12 px or
    # more; close-ups are looked for at 320 by the redactor and the verifier.
    assert proof["detectors"]["redaction"][1]["input"] == {"imgsz": 960, "min_scale": 0.75, "coarse_imgsz": 320}
    assert proof["detectors"]["verification"][0]["input"] == {"scale": 1.0}
    assert proof["detectors"]["verification"][1]["input"]["coarse_imgsz"] == 320
    simulated = subprocess.run([sys.executable, "-m", "curation.cli", "redact", str(source), "-o", str(tmp_path / "sim.mp4"), "--region", "eu",
                                "--simulated", "--no-verify"], cwd=REPO, capture_output=True, text=True)
    assert simulated.returncode == 0, simulated.stderr[-1500:]
    proof = json.loads((tmp_path / "sim.proof.json").read_text())
    assert [d["name"] for d in proof["detectors"]["redaction"]] == ["centerface", "yolo-plates-fastanpr", "yolo-plates-plates-sim"]
    assert proof["verification"] == "off" and proof["detectors"]["verification"] == []  # no verifier ran, none is named
    missing = subprocess.run([sys.executable, "-m", "curation.cli", "redact", str(tmp_path / "nope*.mp4")], cwd=REPO,
                             capture_output=True, text=True)
    assert missing.returncode != 0 and "no video or image" in missing.stderr


def test_a_dashcam_clip_in_mpeg_ts_is_redacted_into_mp4_at_its_own_times(tmp_path):
    """Many dashcams record MPEG-TS (timestamps from 1.4 s, a 90 kHz clock): the output is H.264 in
    MP4, named so, each frame shown when the camera's was."""
    import json
    import subprocess
    import sys

    import av

    from builders import REPO

    data, _ = make_face_clip(8)
    source = tmp_path / "cam" / "REC0001.TS"
    source.parent.mkdir()
    with av.open(io.BytesIO(data)) as clip, av.open(str(source), "w", format="mpegts") as ts:
        stream = ts.add_stream_from_template(clip.streams.video[0])
        for packet in clip.demux(clip.streams.video[0]):
            if packet.size:
                start = int(1.4 / packet.time_base)  # as a camera's clock runs: the clip starts at 1.4 s
                packet.pts, packet.dts, packet.stream = packet.pts + start, packet.dts + start, stream
                ts.mux(packet)
    done = subprocess.run([sys.executable, "-m", "curation.cli", "redact", str(source.parent), "--region", "eu"], cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-1500:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["output"] == str(tmp_path / "cam" / "REC0001_redacted.mp4") and report["verification"] == "passed"
    with av.open(str(source)) as raw, av.open(report["output"]) as redacted:
        assert redacted.format.name.startswith("mov,mp4")
        times = [(a.time, b.time) for a, b in zip(raw.decode(video=0), redacted.decode(video=0), strict=True)]
    assert len(times) == 8 and times[0][0] > 1.0 and all(abs(a - b) < 0.001 for a, b in times)  # the movie clock: 1 ms


def test_cli_says_in_one_line_what_it_cannot_read_and_redacts_what_decodes_of_a_cut_file(tmp_path):
    import json
    import subprocess
    import sys

    import av

    from builders import REPO

    # A file with its sample tables first (as web and many dashcam files are), cut at 60 %.
    data, _ = make_face_clip(20)
    whole = tmp_path / "whole.mp4"
    with av.open(io.BytesIO(data)) as src, av.open(str(whole), "w", format="mp4", options={"movflags": "faststart"}) as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                dst.mux(packet)
    (tmp_path / "cut.mp4").write_bytes(whole.read_bytes()[: whole.stat().st_size * 6 // 10])
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "notes.mp4").write_text("not a video")
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "curation.cli", "redact", *(str(tmp_path / n) for n in ("cut.mp4", "empty.mp4", "notes.mp4")),
                           "-o", str(out), "--region", "eu", "--no-verify"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-1500:]
    lines = {Path(line["input"]).name: line for line in map(json.loads, done.stdout.splitlines())}
    assert "not a readable video" in lines["notes.mp4"]["error"] and lines["empty.mp4"]["error"].endswith("empty.mp4: empty file")
    cut = lines["cut.mp4"]
    assert 0 < cut["frames"] < 20 and cut["truncated"] == f"{cut['frames']} of the 20 frames its container lists decode"
    assert json.loads((out / "cut_redacted.proof.json").read_text())["input_frames_listed"] == 20
    with pytest.raises(RedactionError, match="not a readable video"):  # what cannot even be seeked in, in one line too
        list(stream_frames(io.BytesIO(b"")))
    assert sorted(p.name for p in out.iterdir()) == ["cut_redacted.mp4", "cut_redacted.proof.json"]  # nothing for what did not read


def test_outputs_keep_the_folders_they_came_from_and_never_overwrite_each_other_or_an_input(tmp_path):
    import subprocess
    import sys

    from builders import REPO
    from curation.errors import CurationError
    from curation.media.inputs import expand_inputs
    from curation.redaction.files import outputs_for, without_outputs

    for name in ("front/clip.mp4", "back/clip.mp4", "side/clip.mp4", "side/clip.mov"):
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / name).write_bytes(b"x")
    out = tmp_path / "out"
    two = expand_inputs([str(tmp_path / "in" / "front"), str(tmp_path / "in" / "back" / "clip.mp4")])
    assert outputs_for(two, None) == [tmp_path / "in" / d / "clip_redacted.mp4" for d in ("front", "back")]  # beside each input
    # Two folders' clip.mp4 found under one folder keep their subfolders: two outputs, not one written twice.
    nested = [(p, r) for p, r in expand_inputs([str(tmp_path / "in")]) if p.suffix == ".mp4"]
    assert sorted(outputs_for(nested, out)) == sorted(out / d / "clip_redacted.mp4" for d in ("back", "front", "side"))
    with pytest.raises(CurationError, match="would both write"):  # the same name from two places, into one folder
        outputs_for(two, out)
    with pytest.raises(CurationError, match="clip_redacted.proof.json"):  # clip.mp4 and clip.mov: one proof name
        outputs_for(expand_inputs([str(tmp_path / "in" / "side")]), out)
    source = tmp_path / "in" / "front" / "clip.mp4"
    done = subprocess.run([sys.executable, "-m", "curation.cli", "redact", str(source), "-o", str(source)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode != 0 and done.stderr.strip() == f"error: {source}: the output would replace an input; choose another --output"
    assert source.read_bytes() == b"x"
    # A folder's single clip, -o without a suffix: a folder, not a file named "out" with no extension.
    assert outputs_for(expand_inputs([str(tmp_path / "in" / "front")]), out) == [out / "clip_redacted.mp4"]
    with pytest.raises(CurationError, match="a folder for the outputs is needed"):  # several inputs, -o an existing file
        outputs_for(two, source)
    # Over a folder a second time: the earlier outputs (a proof beside each) are not inputs again.
    (tmp_path / "in" / "front" / "clip_redacted.mp4").write_bytes(b"y")
    (tmp_path / "in" / "front" / "clip_redacted.proof.json").write_text("{}")
    failed = tmp_path / "in" / "front" / "clip_redacted.FAILED.mp4"  # and one kept by --keep-failed
    failed.write_bytes(b"z")
    kept, earlier = without_outputs(expand_inputs([str(tmp_path / "in" / "front")]))
    assert [p.name for p, _ in kept] == ["clip.mp4"] and earlier == sorted([tmp_path / "in" / "front" / "clip_redacted.mp4", failed])
    with pytest.raises(CurationError, match="would replace an input"):
        outputs_for([(source, "clip.mp4"), (failed, failed.name)], None)
    # What is written is H.264 in MP4, and its name says so: an AVI, Matroska or MPEG-TS input's output is .mp4.
    other = [(tmp_path / "in" / name, name) for name in ("a.avi", "b.mkv", "c.MTS", "d.mov", "e.jpg")]
    assert [p.name for p in outputs_for(other, None)] == ["a_redacted.mp4", "b_redacted.mp4", "c_redacted.mp4", "d_redacted.mov", "e_redacted.jpg"]
    with pytest.raises(CurationError, match="name it out.mp4"):
        outputs_for(other[:1], tmp_path / "out.MKV")
    with pytest.raises(CurationError, match="name it out.mp4"):
        outputs_for(other[:1], tmp_path / "out.jpg")  # a video is never written under a picture's name
    with pytest.raises(CurationError, match="name it out.jpg"):
        outputs_for(other[-1:], tmp_path / "out.mp4")  # nor a picture under a video's
    assert outputs_for(other[3:4], tmp_path / "out.m4v") == [tmp_path / "out.m4v"]


def test_a_repair_round_verifies_again_only_the_frames_that_changed():
    from curation.perception.retinaface import RetinaFaceDetector

    class Counted:  # the real verifier, counting the frames it is shown
        def __init__(self):
            self.detector, self.name, self.seen = RetinaFaceDetector(0.5), "retinaface", 0

        def __call__(self, frames):
            self.seen += len(frames)
            return self.detector(frames)

    rng = np.random.default_rng(3)
    base = [np.full((96, 128, 3), 40 + 8 * k, np.uint8) for k in range(20)]

    def clip(frames) -> io.BytesIO:
        out = io.BytesIO()
        writer = VideoWriter(out, 128, 96, 10.0, preset="ultrafast")  # groups of 10 frames
        for frame in frames:
            writer.write(frame)
        writer.close()
        return out

    nothing = [Detections.empty() for _ in base]
    verifier = Counted()
    first = verify_video(clip(base), [verifier], {0: 32}, nothing, 20)
    assert (first.frames, first.reused, verifier.seen) == (20, 0, 20)
    same = verify_video(clip(base), [verifier], {0: 32}, nothing, 20, previous=(first, nothing))
    assert (same.reused, verifier.seen) == (20, 20) and same.passed  # identical output: nothing to look at again
    changed = [*base[:15], rng.integers(0, 255, base[0].shape, np.uint8), *base[16:]]
    again = verify_video(clip(changed), [verifier], {0: 32}, nothing, 20, previous=(first, nothing))
    # The changed frame (and whatever of its group of pictures decodes differently) is verified again; the first group stands.
    assert 10 <= again.reused < 20 and verifier.seen == 40 - again.reused
    masked = [*nothing[:3], Detections.from_items([[0, 0, 10, 10, "face", 0]]), *nothing[4:]]
    moved = verify_video(clip(base), [verifier], {0: 32}, masked, 20, previous=(first, nothing))
    assert moved.reused == 19  # same pixels, other masked boxes: that frame's verdict is not taken over


def test_a_repair_masks_the_frames_the_verifier_found_a_face_on_and_no_others(tmp_path):
    from types import SimpleNamespace

    from curation.perception.retinaface import RetinaFaceDetector
    from curation.redaction.verify import redact_verified

    data, _ = make_face_clip(10)
    faces = [frame for _, frame in decode_frames(io.BytesIO(data))]
    empty = np.full_like(faces[0], 90)
    frames = [faces[i] if 4 <= i <= 6 else empty for i in range(10)]  # a real face on frames 4-6 only
    source = io.BytesIO()
    with VideoWriter(source, W, H, fps=10) as writer:
        for frame in frames:
            writer.write(frame)
    blind = FaceDetector(0.999, "cpu")  # a redactor that misses the face: the verifier finds it
    detectors = SimpleNamespace(redact=[blind], verify=[RetinaFaceDetector(0.5)], min_height={0: 32})
    class Passes(tqdm):  # the user's bar, remembering how far each pass had counted when the next began
        ends: list = []

        def reset(self, total=None):
            self.ends.append(self.n)
            super().reset(total=total)

    shown = io.StringIO()
    with Passes(file=shown, mininterval=0, miniters=1, unit="frame") as bar:
        result, rounds = redact_verified(source.getvalue(), lambda mode: open(tmp_path / "out.mp4", mode), detectors, RedactionConfig(),
                                         progress=bar)
        # detect, mask, verify, mask again, verify after repair 1: each counted every frame once
        assert Passes.ends == [0, 10, 10, 10, 10] and bar.n == bar.total == 10
    assert [f["frame"] for f in rounds[0].findings] == [4, 5, 6] and rounds[-1].passed
    # The verifier looked at frames 3 and 7 too and found nothing: the repair does not spread there.
    assert [i for i, boxes in enumerate(result.boxes) if len(boxes)] == [4, 5, 6]
    # The user's bar counted every frame of every pass, each under its name (of a total the container
    # states: this in-memory file does not, so the first pass counts up without one).
    for name in ("detect", "mask", "verify", "verify after repair 1"):
        assert re.search(rf"\b10(/10 |frame )\[[^]]*, {name}\]", shown.getvalue()), name


def test_repairs_go_on_while_no_round_finds_more_and_stop_when_one_does():
    def rounds(*counts, frames=10):
        return [Verification(frames, 10, [{"frame": k, "class": "face"} for k in range(n)]) for n in counts]

    assert needs_repair(rounds(408)) and needs_repair(rounds(408, 164)) and needs_repair(rounds(408, 164, 16))
    assert not needs_repair(rounds(408, 164, 0))  # the last round found nothing: the clip passes
    assert not needs_repair(rounds(5, 7))  # repairs breed findings: the clip fails
    assert needs_repair(rounds(127, 18, 2, 2))  # as many as before: new places (a finding under a mask is not one)
    assert not needs_repair(rounds(3, frames=9))  # an incomplete decode fails, whatever was found
    assert needs_repair(rounds(*range(MAX_REPAIRS + 1, 1, -1)))  # MAX_REPAIRS - 1 repairs so far, still converging
    assert not needs_repair(rounds(*range(MAX_REPAIRS + 2, 1, -1)))  # MAX_REPAIRS repairs done: what is left fails
    assert not needs_repair(rounds(*[2] * (MAX_REPAIRS + 1)))  # nor do repairs that only keep level go on for ever


def test_below_the_redactors_large_face_gate_the_face_verifier_asks_only_its_base_threshold():
    """Gated from twice the minimum, a dim 64 px face RetinaFace scored 0.29 passed verification
    unmasked (a simulated night clip): the verifier asks more of a face from where the redactor does."""
    from builders import REPO
    from curation.policy.params import load_params
    from curation.redaction.detectors import Detectors

    params = load_params(REPO / "params.yaml")
    detectors = Detectors(params, "us")
    redactor, verifier = detectors.redact[0], detectors.verify[0]
    assert verifier.name.startswith("retinaface") and redactor.name == "centerface"
    assert verifier.steps[0][0] == redactor.steps[0][0] == 4 * params.region("us").redact.min_face_px
    assert verifier.threshold == params.redaction.verify_face_threshold
