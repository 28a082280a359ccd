"""Rebuilding a car's camera file that a pulled drive cut short (no moov; mdat complete or cut)."""

import io
import struct

import av
import cv2
import numpy as np
import pytest

from curation.errors import IngestError
from curation.media.mp4 import needs_rebuild, rebuild, scan, video_avcc
from curation.media.video import VideoWriter, probe
from curation.sources.sei import Telemetry, sei_nal

W, H, N, FPS = 160, 64, 40, 10


def _frames():
    """A textured pan: x264 codes it with B-frames in a pyramid (decode order 0 4 2 1 3 ...)."""
    texture = cv2.GaussianBlur((np.random.default_rng(0).random((H, 2 * W + 2 * N, 3)) * 255).astype(np.uint8), (9, 9), 3)
    return [np.ascontiguousarray(texture[:, 2 * i : 2 * i + W]) for i in range(N)]


def car_file(**x264) -> bytes:
    """A car-layout file (one mdat, moov at the end) with SEI frame numbers 100, 101, ..."""
    buffer = io.BytesIO()
    if x264:  # a writer with other encoder settings, straight through PyAV
        with av.open(buffer, "w", format="mp4", options={"fflags": "+bitexact"}) as container:
            stream = container.add_stream("libx264", rate=FPS)
            stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
            stream.options = {"g": str(FPS), "threads": "1", "x264-params": ":".join(f"{k}={v}" for k, v in x264.items())}
            for i, image in enumerate(_frames()):
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = i
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        return buffer.getvalue()
    with VideoWriter(buffer, W, H, FPS, fragmented=False) as writer:
        for i, image in enumerate(_frames()):
            writer.write(image, sei=sei_nal(Telemetry(frame_seq_no=100 + i)))
    return buffer.getvalue()


def _mdat(data: bytes):
    return next(b for b in scan(io.BytesIO(data)) if b.kind == "mdat")


def pulled(data: bytes, share: float, placeholder: bool = True) -> bytes:
    """The file cut inside mdat at ``share`` of its samples; mdat's size left as the writer's placeholder (0)."""
    mdat = _mdat(data)
    start, end = mdat.payload
    cut = bytearray(data[: start + int((end - start) * share)])
    if placeholder:
        cut[mdat.offset : mdat.offset + 4] = b"\x00\x00\x00\x00"
    return bytes(cut)


def _decoded(source) -> list[np.ndarray]:
    with av.open(source) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def _rebuild(tmp_path, data: bytes, reference: bytes | None):
    handle = io.BytesIO(data)
    boxes = scan(handle)
    assert needs_rebuild(boxes)
    target = str(tmp_path / "rebuilt.mp4")
    result = rebuild(handle, boxes, target, reference and video_avcc(io.BytesIO(reference), scan(io.BytesIO(reference))))
    return result, probe(target), target


def test_the_writer_uses_b_frames_so_decode_order_is_not_display_order():
    with av.open(io.BytesIO(car_file())) as container:
        order = [p.pts for p in container.demux(video=0) if p.size]
    assert order != sorted(order)


def test_moov_missing_mdat_whole_gives_back_every_frame_exactly(tmp_path):
    original = car_file()
    moov = next(b for b in scan(io.BytesIO(original)) if b.kind == "moov")
    result, info, target = _rebuild(tmp_path, original[: moov.offset], reference=original)
    before = probe(original)
    assert (result.frames, result.dropped, result.cut, result.parameter_sets) == (N, 0, False, "reference")
    assert info.complete and info.decodable == info.frames == N and info.error is None
    assert info.fps == FPS and np.array_equal(info.pts, before.pts) and info.time_base == before.time_base
    assert info.telemetry == before.telemetry
    assert all(np.array_equal(a, b) for a, b in zip(_decoded(target), _decoded(io.BytesIO(original))))


@pytest.mark.parametrize("share", [0.23, 0.37, 0.5, 0.61, 0.77, 0.9, 0.97])
@pytest.mark.parametrize("placeholder", [True, False], ids=["size-placeholder", "size-as-final"])
def test_mdat_cut_midway_keeps_a_decodable_run_in_display_order(tmp_path, share, placeholder):
    original = car_file()
    result, info, target = _rebuild(tmp_path, pulled(original, share, placeholder), reference=original)
    assert result.cut and 0 < info.frames < N and info.decodable == info.frames and info.error is None
    # No hole in display order: frame numbers run on, timestamps step by one frame, pixels as before.
    assert [t.frame_seq_no for t in info.telemetry] == list(range(100, 100 + info.frames))
    assert np.diff(info.pts).tolist() == [info.pts[1] - info.pts[0]] * (info.frames - 1)
    frames = _decoded(target)
    assert len(frames) == info.frames and all(np.array_equal(a, b) for a, b in zip(frames, _decoded(io.BytesIO(original))))
    # Frames lost: those after the cut in decode order and at most the B-frame run the cut broke.
    with av.open(io.BytesIO(original)) as container:
        positions = [p.pos + p.size for p in container.demux(video=0) if p.size]
    whole = sum(end <= len(pulled(original, share)) for end in positions)
    assert whole - 4 <= info.frames <= whole


def test_in_band_parameter_sets_need_no_reference(tmp_path):
    original = car_file(**{"repeat-headers": 1, "bframes": 3, "mbtree": 0})
    result, info, _ = _rebuild(tmp_path, pulled(original, 0.8), reference=None)
    assert result.parameter_sets == "in-band" and info.decodable == info.frames >= 0.6 * N


def test_no_parameter_sets_anywhere_is_refused_with_the_reason(tmp_path):
    with pytest.raises(IngestError, match="truncated: .*no SPS/PPS"):
        _rebuild(tmp_path, pulled(car_file(), 0.8), reference=None)


def test_nothing_but_a_partial_first_frame_is_refused(tmp_path):
    original = car_file()
    with pytest.raises(IngestError, match="no complete frame"):
        _rebuild(tmp_path, pulled(original, 0.01), reference=original)


def test_fragmented_files_are_read_as_they_are_even_when_cut():
    buffer = io.BytesIO()
    with VideoWriter(buffer, W, H, FPS) as writer:
        for image in _frames():
            writer.write(image)
    data = buffer.getvalue()
    assert not needs_rebuild(scan(io.BytesIO(data))) and probe(data).complete
    cut = data[: int(len(data) * 0.7)]
    info = probe(cut)
    assert not needs_rebuild(scan(io.BytesIO(cut))) and not info.complete and 10 <= info.decodable <= info.frames < N


def test_probe_reads_paths_file_objects_and_bytes_alike(tmp_path):
    data = car_file()
    (tmp_path / "clip.mp4").write_bytes(data)
    with open(tmp_path / "clip.mp4", "rb") as handle:
        results = [probe(str(tmp_path / "clip.mp4")), probe(handle), probe(data)]
    assert all(r.frames == r.decodable == N and r.complete and r.telemetry == results[0].telemetry for r in results)


def test_box_scan_reports_cut_and_placeholder_sizes():
    data = car_file()
    kinds = [(b.kind, b.complete) for b in scan(io.BytesIO(data))]
    assert kinds == [("ftyp", True), ("free", True), ("mdat", True), ("moov", True)]
    boxes = scan(io.BytesIO(pulled(data, 0.5, placeholder=False)))
    assert [b.kind for b in boxes] == ["ftyp", "free", "mdat"] and not boxes[-1].complete
    boxes = scan(io.BytesIO(pulled(data, 0.5)))
    assert boxes[-1].end is None and boxes[-1].complete  # size 0: runs to the end of the file
    assert struct.unpack(">I", pulled(data, 0.5)[boxes[-1].offset : boxes[-1].offset + 4]) == (0,)
