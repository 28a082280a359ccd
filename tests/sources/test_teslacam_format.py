"""Simulated camera files read the way Tesla's published dashcam tools read a car's files.

The readers below are written from the format (../shared/TESLACAM.md), not from our code: one walks
the first ``mdat`` NAL unit by NAL unit (as ``sei_extractor.py`` does), the other takes each sample
from the sample tables in ``moov`` (as ``dashcam-mp4.js`` does). SeiMetadata is decoded by the
protobuf runtime from a descriptor built from the field table, not by curation.sources.sei.
"""

import struct

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from builders import make_fleet, make_params
from curation.media.video import probe

_F = descriptor_pb2.FieldDescriptorProto
SEI_FIELDS = [(1, "version", _F.TYPE_UINT32), (2, "gear_state", "Gear"), (3, "frame_seq_no", _F.TYPE_UINT64),
              (4, "vehicle_speed_mps", _F.TYPE_FLOAT), (5, "accelerator_pedal_position", _F.TYPE_FLOAT),
              (6, "steering_wheel_angle", _F.TYPE_FLOAT), (7, "blinker_on_left", _F.TYPE_BOOL), (8, "blinker_on_right", _F.TYPE_BOOL),
              (9, "brake_applied", _F.TYPE_BOOL), (10, "autopilot_state", "AutopilotState"), (11, "latitude_deg", _F.TYPE_DOUBLE),
              (12, "longitude_deg", _F.TYPE_DOUBLE), (13, "heading_deg", _F.TYPE_DOUBLE),
              (14, "linear_acceleration_mps2_x", _F.TYPE_DOUBLE), (15, "linear_acceleration_mps2_y", _F.TYPE_DOUBLE),
              (16, "linear_acceleration_mps2_z", _F.TYPE_DOUBLE)]
ENUMS = {"Gear": ["GEAR_PARK", "GEAR_DRIVE", "GEAR_REVERSE", "GEAR_NEUTRAL"],
         "AutopilotState": ["NONE", "SELF_DRIVING", "AUTOSTEER", "TACC"]}


def _sei_metadata_class():
    file = descriptor_pb2.FileDescriptorProto(name="teslacam_test.proto", package="teslacam_test", syntax="proto3")
    for name, values in ENUMS.items():
        enum = file.enum_type.add(name=name)
        for number, value in enumerate(values):
            enum.value.add(name=value, number=number)
    message = file.message_type.add(name="SeiMetadata")
    for number, name, kind in SEI_FIELDS:
        if isinstance(kind, str):
            message.field.add(name=name, number=number, type=_F.TYPE_ENUM, type_name=f".teslacam_test.{kind}", label=_F.LABEL_OPTIONAL)
        else:
            message.field.add(name=name, number=number, type=kind, label=_F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("teslacam_test.SeiMetadata"))


SeiMetadata = _sei_metadata_class()


def top_boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[str, int, int]]:
    """(type, payload start, box end) of the boxes in data[start:end]."""
    end, boxes, position = len(data) if end is None else end, [], start
    while position + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, position)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", data, position + 8)[0], 16
        elif size == 0:
            size = end - position
        boxes.append((kind.decode("latin-1"), position + header, position + size))
        position += size
    return boxes


def nal_units(data: bytes, start: int, end: int):
    while start + 4 <= end:
        (length,) = struct.unpack_from(">I", data, start)
        yield data[start + 4 : start + 4 + length]
        start += 4 + length


def tesla_sei(nal: bytes):
    """SeiMetadata of one SEI NAL unit of payload type 5, located as Tesla's reader does; else None."""
    if nal[0] & 0x1F != 6 or nal[1] != 5:
        return None
    position = 3
    while position < len(nal) and nal[position] == 0x42:
        position += 1
    if position >= len(nal) or nal[position] != 0x69:
        return None
    return SeiMetadata.FromString(nal[position + 1 : -1].replace(b"\x00\x00\x03", b"\x00\x00"))


def sei_extractor_rows(data: bytes) -> list:
    """Every SeiMetadata in the first mdat, in file order."""
    _, start, end = next(b for b in top_boxes(data) if b[0] == "mdat")
    return [m for m in (tesla_sei(nal) for nal in nal_units(data, start, end)) if m is not None]


def _child(data: bytes, box: tuple, path: list[str], skip: int = 0):
    for kind, start, end in top_boxes(data, box[1] + skip, box[2]):
        if kind == path[0]:
            return (kind, start, end) if len(path) == 1 else _child(data, (kind, start, end), path[1:])
    return None


def moov_samples(data: bytes) -> list[tuple[int, int]]:
    """(offset, size) of every video sample, from stsz, stsc and stco/co64 of the video track."""
    moov = next(b for b in top_boxes(data) if b[0] == "moov")
    for trak in (b for b in top_boxes(data, moov[1], moov[2]) if b[0] == "trak"):
        handler = _child(data, trak, ["mdia", "hdlr"])
        if data[handler[1] + 8 : handler[1] + 12] != b"vide":
            continue
        stbl = _child(data, trak, ["mdia", "minf", "stbl"])
        stsz, stsc = _child(data, stbl, ["stsz"]), _child(data, stbl, ["stsc"])
        uniform, count = struct.unpack_from(">II", data, stsz[1] + 4)
        sizes = [uniform] * count if uniform else list(struct.unpack_from(f">{count}I", data, stsz[1] + 12))
        (entries,) = struct.unpack_from(">I", data, stsc[1] + 4)
        runs = [struct.unpack_from(">III", data, stsc[1] + 8 + 12 * i) for i in range(entries)]
        chunks = _child(data, stbl, ["stco"])
        if chunks:
            (n,) = struct.unpack_from(">I", data, chunks[1] + 4)
            offsets = list(struct.unpack_from(f">{n}I", data, chunks[1] + 8))
        else:
            chunks = _child(data, stbl, ["co64"])
            (n,) = struct.unpack_from(">I", data, chunks[1] + 4)
            offsets = list(struct.unpack_from(f">{n}Q", data, chunks[1] + 8))
        samples, sample = [], 0
        for chunk, offset in enumerate(offsets, start=1):
            per_chunk = next(r[1] for r in reversed(runs) if r[0] <= chunk)
            for _ in range(per_chunk):
                samples.append((offset, sizes[sample]))
                offset += sizes[sample]
                sample += 1
        return samples
    raise AssertionError("no video track")


def _check_car_layout(data: bytes, frames: int) -> None:
    kinds = [b[0] for b in top_boxes(data)]
    assert kinds.count("mdat") == 1 and "moof" not in kinds and kinds[-1] == "moov" and kinds.index("mdat") < kinds.index("moov")
    rows = sei_extractor_rows(data)
    assert len(rows) == frames
    samples = moov_samples(data)
    assert len(samples) == frames
    for offset, size in samples:  # each sample: the SEI comes before the frame's slice
        kinds = [nal[0] & 0x1F for nal in nal_units(data, offset, offset + size)]
        first_slice = next(i for i, k in enumerate(kinds) if k in (1, 5))
        messages = [tesla_sei(nal) for nal in list(nal_units(data, offset, offset + size))[:first_slice]]
        assert sum(m is not None for m in messages) == 1


def test_car_layout_with_sei_on_every_frame_as_teslas_tools_read_it(tmp_path):
    make_params(tmp_path)
    out, manifest = make_fleet(tmp_path, "cn", vehicles=1, events=2, rates={"sentry": 0.5}, cameras=("front", "back"))
    for event in manifest["events"]:
        for camera in event["cameras"].values():
            data = (out / camera["file"]).read_bytes()
            info = probe(data)
            if event["layout"] == "sentry":  # parked: no SEI, still the car's layout
                assert not sei_extractor_rows(data) and len(moov_samples(data)) == info.frames == 20
                continue
            _check_car_layout(data, info.frames)
            rows = sei_extractor_rows(data)  # decode order; the frame numbers name display order
            ours = {t.frame_seq_no: t for t in info.telemetry}
            assert sorted(r.frame_seq_no for r in rows) == sorted(ours)
            for row in rows:
                mine = ours[row.frame_seq_no]
                assert (row.latitude_deg, row.longitude_deg, row.heading_deg) == (mine.latitude_deg, mine.longitude_deg, mine.heading_deg)
                assert row.brake_applied == mine.brake_applied and row.autopilot_state == mine.autopilot_state
                assert row.vehicle_speed_mps == np.float32(mine.vehicle_speed_mps)


def test_a_60_second_36_fps_minute_has_sei_on_all_2160_frames(tmp_path):
    make_params(tmp_path)
    out, manifest = make_fleet(tmp_path, "us", vehicles=1, events=1, seconds=60.0, fps=36, width=96, height=64, cameras=("front",))
    data = (out / manifest["events"][0]["cameras"]["front"]["file"]).read_bytes()
    _check_car_layout(data, 2160)
    seq = sorted(r.frame_seq_no for r in sei_extractor_rows(data))
    assert seq == list(range(seq[0], seq[0] + 2160))


def test_other_fleets_clips_stay_fragmented(tmp_path):
    make_params(tmp_path)
    out, manifest = make_fleet(tmp_path, "eu", vehicles=1, events=1, rates={"sidecar": 1.0}, cameras=("front",))
    data = (out / manifest["events"][0]["cameras"]["front"]["file"]).read_bytes()
    kinds = [b[0] for b in top_boxes(data)]
    assert kinds[:2] == ["ftyp", "moov"] and kinds.count("moof") >= 2 and probe(data).frames == 20
