import dataclasses
import io

import numpy as np
import pytest

from curation.media.video import VideoWriter, probe
from curation.sources.sei import (Telemetry, add_emulation_prevention, parse_sei_nal, remove_emulation_prevention, sei_nal,
                                  telemetry_in_packet)


def _f32(x):
    return float(np.float32(x))


FULL = Telemetry(version=1, gear_state=1, frame_seq_no=123456789012, vehicle_speed_mps=_f32(13.7), accelerator_pedal_position=_f32(0.31),
                 steering_wheel_angle=_f32(-12.5), blinker_on_left=True, blinker_on_right=False, brake_applied=True, autopilot_state=2,
                 latitude_deg=31.230416789, longitude_deg=121.473701234, heading_deg=271.25, linear_acceleration_mps2_x=-6.5,
                 linear_acceleration_mps2_y=0.125, linear_acceleration_mps2_z=9.81)


@pytest.mark.parametrize("telemetry", [FULL, Telemetry(), Telemetry(latitude_deg=0.0, longitude_deg=0.0, frame_seq_no=1),
                                       Telemetry(latitude_deg=-33.9, longitude_deg=-70.6, heading_deg=359.999)])
def test_protobuf_roundtrip(telemetry):
    assert Telemetry.decode(telemetry.encode()) == telemetry
    assert parse_sei_nal(sei_nal(telemetry)[4:]) == telemetry


@pytest.mark.parametrize("payload", [b"\x00\x00\x00", b"\x00\x00\x01\x00\x00\x02", b"\x00\x00\x03", bytes(range(256)) * 3])
def test_emulation_prevention_roundtrip(payload):
    escaped = add_emulation_prevention(payload)
    assert b"\x00\x00\x00" not in escaped and b"\x00\x00\x01" not in escaped and b"\x00\x00\x02" not in escaped
    assert remove_emulation_prevention(escaped) == payload


def test_non_tesla_sei_and_slices_give_none():
    assert parse_sei_nal(b"\x06\x05\x10" + b"\x00" * 16 + b"\x80") is None
    assert telemetry_in_packet(b"\x00\x00\x00\x02\x65\x88") is None
    assert telemetry_in_packet(b"") is None


def test_sei_written_in_h264_mp4_roundtrips_exactly_per_frame():
    rng = np.random.default_rng(0)
    written = [dataclasses.replace(FULL, frame_seq_no=1000 + i, latitude_deg=31.2 + float(rng.uniform(0, 0.01)),
                                   vehicle_speed_mps=_f32(rng.uniform(0, 30)), brake_applied=bool(i % 2)) for i in range(30)]
    buffer = io.BytesIO()
    with VideoWriter(buffer, 160, 96, fps=10) as writer:
        for i, telemetry in enumerate(written):
            writer.write(np.full((96, 160, 3), i * 8, np.uint8), sei=sei_nal(telemetry))
    info = probe(buffer.getvalue())
    assert info.frames == 30 and info.decodable == 30 and info.complete
    assert info.telemetry == written
