"""Tesla's per-frame SEI telemetry: the SeiMetadata protobuf inside H.264 SEI NAL units.

Written and read without protoc: proto3 wire format is a few lines for these field types. The
reader follows Tesla's public parser (skip the 0x42 run, expect 0x69, protobuf to the byte before
the RBSP trailing bits) and works on demuxed packets, so telemetry never needs decoded pixels.

Example:
    >>> nal = sei_nal(Telemetry(frame_seq_no=7, latitude_deg=31.23, longitude_deg=121.47))
    >>> parse_sei_nal(nal[4:]).latitude_deg
    31.23
"""

from __future__ import annotations

import struct
from dataclasses import asdict, dataclass, fields

__all__ = ["Telemetry", "sei_nal", "parse_sei_nal", "telemetry_in_packet", "add_emulation_prevention", "remove_emulation_prevention"]

GEARS = ("PARK", "DRIVE", "REVERSE", "NEUTRAL")
AUTOPILOT = ("NONE", "SELF_DRIVING", "AUTOSTEER", "TACC")

# field number -> (name, wire kind); kinds: v=varint (uint/bool/enum), f=float32, d=double
_FIELDS = {
    1: ("version", "v"), 2: ("gear_state", "v"), 3: ("frame_seq_no", "v"), 4: ("vehicle_speed_mps", "f"),
    5: ("accelerator_pedal_position", "f"), 6: ("steering_wheel_angle", "f"), 7: ("blinker_on_left", "v"),
    8: ("blinker_on_right", "v"), 9: ("brake_applied", "v"), 10: ("autopilot_state", "v"),
    11: ("latitude_deg", "d"), 12: ("longitude_deg", "d"), 13: ("heading_deg", "d"),
    14: ("linear_acceleration_mps2_x", "d"), 15: ("linear_acceleration_mps2_y", "d"), 16: ("linear_acceleration_mps2_z", "d"),
}
_NUMBER = {name: (number, kind) for number, (name, kind) in _FIELDS.items()}
_SEI_PREFIX = b"\x06\x05"  # nal_unit_type 6 (SEI), payload type 5 (user_data_unregistered)


@dataclass(frozen=True)
class Telemetry:
    """One frame of SeiMetadata. Enums are ints (see GEARS, AUTOPILOT); (0, 0) means no GPS fix."""

    version: int = 1
    gear_state: int = 0
    frame_seq_no: int = 0
    vehicle_speed_mps: float = 0.0
    accelerator_pedal_position: float = 0.0
    steering_wheel_angle: float = 0.0
    blinker_on_left: bool = False
    blinker_on_right: bool = False
    brake_applied: bool = False
    autopilot_state: int = 0
    latitude_deg: float = 0.0
    longitude_deg: float = 0.0
    heading_deg: float = 0.0
    linear_acceleration_mps2_x: float = 0.0
    linear_acceleration_mps2_y: float = 0.0
    linear_acceleration_mps2_z: float = 0.0

    def encode(self) -> bytes:
        """proto3 wire format; default values are omitted as proto3 does."""
        out = bytearray()
        for item in fields(self):
            value = getattr(self, item.name)
            if not value:
                continue
            number, kind = _NUMBER[item.name]
            if kind == "v":
                out += _varint(number << 3) + _varint(int(value))
            elif kind == "f":
                out += _varint(number << 3 | 5) + struct.pack("<f", value)
            else:
                out += _varint(number << 3 | 1) + struct.pack("<d", value)
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes) -> "Telemetry":
        values, position = {}, 0
        while position < len(data):
            key, position = _read_varint(data, position)
            number, wire = key >> 3, key & 7
            if wire == 0:
                value, position = _read_varint(data, position)
            elif wire == 5:
                value, position = struct.unpack_from("<f", data, position)[0], position + 4
            elif wire == 1:
                value, position = struct.unpack_from("<d", data, position)[0], position + 8
            elif wire == 2:  # unknown length-delimited field from a newer firmware: skip it
                length, position = _read_varint(data, position)
                position += length
                continue
            else:
                raise ValueError(f"unsupported protobuf wire type {wire}")
            if number in _FIELDS:
                name, kind = _FIELDS[number]
                values[name] = bool(value) if name.startswith(("blinker", "brake")) else value
        if position != len(data):
            raise ValueError("protobuf message overruns its NAL unit")
        return cls(**values)

    def as_dict(self) -> dict:
        return asdict(self)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data):
            raise ValueError("truncated varint")
        byte = data[position]
        result |= (byte & 0x7F) << shift
        position, shift = position + 1, shift + 7
        if not byte & 0x80:
            return result, position


def add_emulation_prevention(rbsp: bytes) -> bytes:
    """Insert 0x03 after any 00 00 followed by a byte <= 3, as H.264 requires inside a NAL."""
    out, zeros = bytearray(), 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def remove_emulation_prevention(nal: bytes) -> bytes:
    """Drop the 0x03 of every 00 00 03 sequence."""
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


def sei_nal(telemetry: Telemetry) -> bytes:
    """An Annex B SEI NAL unit (start code included) carrying one frame of telemetry, Tesla style."""
    message = telemetry.encode()
    payload = b"\x42" * 3 + b"\x69" + message  # Tesla's marker, then the protobuf
    size = len(payload)
    header = b"\xff" * (size // 255) + bytes([size % 255])
    rbsp = _SEI_PREFIX + header + payload + b"\x80"  # rbsp_trailing_bits
    return b"\x00\x00\x00\x01" + add_emulation_prevention(rbsp)


def parse_sei_nal(nal: bytes) -> Telemetry | None:
    """Telemetry from one NAL unit (no start code or length prefix), or None if it carries none."""
    if len(nal) < 4 or nal[0] & 0x1F != 6 or nal[1] != 5:
        return None
    data = remove_emulation_prevention(nal)
    position = 3  # Tesla's reader: start at byte 3, skip the 0x42 run, expect 0x69
    while position < len(data) and data[position] == 0x42:
        position += 1
    if position >= len(data) or data[position] != 0x69:
        return None
    try:
        return Telemetry.decode(data[position + 1 : -1])
    except (ValueError, struct.error, TypeError):
        return None


def telemetry_in_packet(packet: bytes) -> Telemetry | None:
    """Telemetry from an MP4 packet (4-byte big-endian length-prefixed NAL units), or None."""
    position = 0
    while position + 4 <= len(packet):
        (length,) = struct.unpack_from(">I", packet, position)
        position += 4
        if length == 0 or position + length > len(packet):
            return None
        kind = packet[position] & 0x1F  # look before slicing: a frame's slice is most of its bytes
        if kind == 6:
            telemetry = parse_sei_nal(packet[position : position + length])
            if telemetry is not None:
                return telemetry
        elif kind in (1, 5):  # a slice: SEI always comes before it
            return None
        position += length
    return None
