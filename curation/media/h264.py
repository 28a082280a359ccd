"""H.264 bitstream facts read without a decoder: parameter sets, slice headers, display order.

What a file cut short needs: its samples have no sample table any more, so access units are found
by their NAL unit types (7.4.1.2.3 of the H.264 spec), and their display order comes from each
picture's order count (8.2.1), which needs only the first bytes of every slice header.

Example:
    >>> sps = parse_sps(bytes.fromhex("6764000aacd9428da1000003000100000300140f1225960"))   # doctest: +SKIP
    >>> sps.poc_type, sps.fps                                                               # doctest: +SKIP
    (0, Fraction(10, 1))
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from curation.sources.sei import remove_emulation_prevention

__all__ = ["Sps", "SliceHeader", "parse_sps", "parse_slice_header", "avcc", "parse_avcc", "NAL_SLICE", "NAL_IDR", "NAL_SPS", "NAL_PPS",
           "starts_access_unit", "DisplayOrder"]

NAL_SLICE, NAL_IDR, NAL_SEI, NAL_SPS, NAL_PPS, NAL_AUD = 1, 5, 6, 7, 8, 9
# NAL unit types that open a new access unit when they follow a picture's slices (7.4.1.2.3).
_OPENERS = {NAL_SEI, NAL_SPS, NAL_PPS, NAL_AUD, 14, 15, 16, 17, 18}
# Profiles whose SPS carries chroma format, bit depths and scaling matrices.
_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


class _Bits:
    """MSB-first reader of an RBSP, with the Exp-Golomb codes H.264 uses."""

    def __init__(self, rbsp: bytes):
        self.value, self.length, self.position = int.from_bytes(rbsp, "big"), len(rbsp) * 8, 0

    def u(self, n: int) -> int:
        if self.position + n > self.length:
            raise ValueError("bitstream ends inside a header")
        self.position += n
        return (self.value >> (self.length - self.position)) & ((1 << n) - 1)

    def ue(self) -> int:
        zeros = 0
        while not self.u(1):
            zeros += 1
            if zeros > 31:
                raise ValueError("invalid Exp-Golomb code")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)


@dataclass(frozen=True)
class Sps:
    """The fields of a sequence parameter set that slice headers and timing depend on."""

    profile: int
    log2_max_frame_num: int
    poc_type: int
    log2_max_poc_lsb: int
    frame_mbs_only: bool
    separate_colour_plane: bool
    fps: Fraction | None  # from VUI timing (two fields per frame), when the encoder wrote it


def parse_sps(nal: bytes) -> Sps:
    """Parse a sequence parameter set NAL unit (header byte included); raises ValueError."""
    if not nal or nal[0] & 0x1F != NAL_SPS:
        raise ValueError("not an SPS NAL unit")
    bits = _Bits(remove_emulation_prevention(nal[1:]))
    profile = bits.u(8)
    bits.u(16)  # constraint flags, level
    bits.ue()  # seq_parameter_set_id
    separate = False
    if profile in _HIGH_PROFILES:
        chroma = bits.ue()
        if chroma == 3:
            separate = bool(bits.u(1))
        bits.ue(), bits.ue(), bits.u(1)  # bit depths, qpprime_y_zero_transform_bypass
        if bits.u(1):  # seq_scaling_matrix_present_flag
            for i in range(12 if chroma == 3 else 8):
                if bits.u(1):
                    last = following = 8
                    for _ in range(16 if i < 6 else 64):
                        if following:
                            following = (last + bits.se() + 256) % 256
                        last = following or last
    log2_max_frame_num = bits.ue() + 4
    poc_type, log2_max_poc_lsb = bits.ue(), 0
    if poc_type == 0:
        log2_max_poc_lsb = bits.ue() + 4
    elif poc_type == 1:
        bits.u(1), bits.se(), bits.se()
        for _ in range(bits.ue()):
            bits.se()
    bits.ue(), bits.u(1)  # max_num_ref_frames, gaps_in_frame_num_value_allowed_flag
    bits.ue(), bits.ue()  # picture size in macroblocks
    frame_mbs_only = bool(bits.u(1))
    if not frame_mbs_only:
        bits.u(1)
    bits.u(1)  # direct_8x8_inference_flag
    if bits.u(1):  # frame cropping
        for _ in range(4):
            bits.ue()
    return Sps(profile, log2_max_frame_num, poc_type, log2_max_poc_lsb, frame_mbs_only, separate, _vui_fps(bits) if bits.u(1) else None)


def _vui_fps(bits: _Bits) -> Fraction | None:
    if bits.u(1) and bits.u(8) == 255:  # aspect_ratio_idc == Extended_SAR
        bits.u(32)
    if bits.u(1):  # overscan_info_present_flag
        bits.u(1)
    if bits.u(1):  # video_signal_type_present_flag
        bits.u(4)
        if bits.u(1):
            bits.u(24)
    if bits.u(1):  # chroma_loc_info_present_flag
        bits.ue(), bits.ue()
    if not bits.u(1):  # timing_info_present_flag
        return None
    num_units_in_tick, time_scale = bits.u(32), bits.u(32)
    return Fraction(time_scale, 2 * num_units_in_tick) if num_units_in_tick and time_scale else None


@dataclass(frozen=True)
class SliceHeader:
    first_mb: int
    frame_num: int
    poc_lsb: int
    field: bool


def parse_slice_header(nal: bytes, sps: Sps) -> SliceHeader:
    """The start of a slice header, up to pic_order_cnt_lsb; ``nal`` may be just its first bytes."""
    bits = _Bits(remove_emulation_prevention(nal[1:]))
    first_mb = bits.ue()
    bits.ue(), bits.ue()  # slice_type, pic_parameter_set_id
    if sps.separate_colour_plane:
        bits.u(2)
    frame_num = bits.u(sps.log2_max_frame_num)
    field = False
    if not sps.frame_mbs_only and bits.u(1):
        field = True
        bits.u(1)
    if nal[0] & 0x1F == NAL_IDR:
        bits.ue()  # idr_pic_id
    return SliceHeader(first_mb, frame_num, bits.u(sps.log2_max_poc_lsb) if sps.poc_type == 0 else 0, field)


def starts_access_unit(nal_type: int, first_mb: int | None, has_picture: bool) -> bool:
    """Whether a NAL unit opens a new access unit, given that the current one holds a picture."""
    if not has_picture:
        return False
    return nal_type in _OPENERS or (nal_type in (NAL_SLICE, NAL_IDR) and first_mb == 0)


class DisplayOrder:
    """Picture order counts of the pictures of a stream, fed in decode order (8.2.1.1, frames only)."""

    def __init__(self, sps: Sps):
        if sps.poc_type == 1:
            raise ValueError("picture order count type 1 is not supported")
        self.sps, self.gop, self._msb, self._lsb, self._index = sps, -1, 0, 0, 0

    def add(self, idr: bool, reference: bool, header: SliceHeader) -> tuple[int, int]:
        """(GOP number, order count) of the next picture; display order sorts by both."""
        if header.field:
            raise ValueError("interlaced (field) pictures are not supported")
        if idr or self.gop < 0:
            self.gop, self._msb, self._lsb, self._index = self.gop + 1, 0, 0, 0
        if self.sps.poc_type == 2:  # output order is decode order
            self._index += 1
            return self.gop, 2 * (self._index - 1)
        half, lsb = 1 << (self.sps.log2_max_poc_lsb - 1), header.poc_lsb
        msb = self._msb
        if lsb < self._lsb and self._lsb - lsb >= half:
            msb += 2 * half
        elif lsb > self._lsb and lsb - self._lsb > half:
            msb -= 2 * half
        if reference:
            self._msb, self._lsb = msb, lsb
        return self.gop, msb + lsb


def avcc(sps: bytes, pps: bytes) -> bytes:
    """An AVCDecoderConfigurationRecord (MP4's avcC) with 4-byte NAL lengths."""
    return (bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE1]) + len(sps).to_bytes(2, "big") + sps
            + b"\x01" + len(pps).to_bytes(2, "big") + pps)


def parse_avcc(record: bytes) -> tuple[list[bytes], list[bytes], int]:
    """(SPS NAL units, PPS NAL units, NAL length size) of an avcC record; raises ValueError."""
    if len(record) < 7 or record[0] != 1:
        raise ValueError("not an avcC record")
    position, groups = 5, []
    for mask in (0x1F, 0xFF):
        count, position, units = record[position] & mask, position + 1, []
        for _ in range(count):
            length = int.from_bytes(record[position : position + 2], "big")
            units.append(record[position + 2 : position + 2 + length])
            position += 2 + length
        groups.append(units)
    if position > len(record) or not groups[0] or not groups[1]:
        raise ValueError("avcC record without SPS and PPS")
    return groups[0], groups[1], (record[4] & 3) + 1
