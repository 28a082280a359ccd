"""MP4 boxes read in bounded chunks, and the rebuild of a camera file that a pulled drive cut short.

A car writes one ``mdat`` and, when the minute ends, the sample tables in ``moov`` after it. A
drive pulled mid-minute leaves ``ftyp mdat`` (the ``mdat`` size still the writer's placeholder, or
larger than what reached the drive): no sample table, no SPS/PPS (they live in moov's ``avcC``).
:func:`rebuild` walks the length-prefixed NAL units in ``mdat``, groups them into access units,
orders them by picture order count, and muxes the complete ones into a new MP4, with parameter
sets from the file's own stream (a writer that repeats them) or from a reference file of the same
camera. Only box headers, moov and one access unit at a time are ever in memory.

Example:
    >>> with open("cut.mp4", "rb") as handle:                                        # doctest: +SKIP
    ...     boxes = scan(handle)
    ...     if needs_rebuild(boxes):
    ...         rebuild(handle, boxes, "rebuilt.mp4", reference_avcc)
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass
from fractions import Fraction
from typing import BinaryIO

import av

from curation.errors import IngestError
from curation.media.h264 import (NAL_IDR, NAL_PPS, NAL_SLICE, NAL_SPS, DisplayOrder, avcc, parse_avcc, parse_slice_header, parse_sps,
                                 starts_access_unit)

__all__ = ["Box", "scan", "tiles", "needs_rebuild", "video_avcc", "rebuild", "Rebuilt"]

_HEAD = 48  # bytes of a slice NAL unit enough for its header up to pic_order_cnt_lsb
_CONTAINERS = {"moov", "trak", "mdia", "minf", "stbl"}
_SKIP = {"stsd": 8, "avc1": 78}  # fields before the child boxes of a sample description


@dataclass(frozen=True)
class Box:
    """One box as found in the file: ``end`` is where it should end, ``present`` how much is there."""

    kind: str
    offset: int
    header: int
    end: int | None  # None: size 0, the box runs to the end of the file
    present: int  # bytes of the box (header included) in the file

    @property
    def complete(self) -> bool:
        return self.end is None or self.offset + self.present == self.end

    @property
    def payload(self) -> tuple[int, int]:
        return self.offset + self.header, self.offset + self.present


def _size(handle: BinaryIO) -> int:
    handle.seek(0, os.SEEK_END)
    return handle.tell()


def scan(handle: BinaryIO, start: int = 0, end: int | None = None) -> list[Box]:
    """The boxes one after another in [start, end): stops at a header that is cut or not a box."""
    end = _size(handle) if end is None else end
    boxes, position = [], start
    while position + 8 <= end:
        handle.seek(position)
        header = handle.read(16)
        size, kind = struct.unpack_from(">I4s", header)
        length = 8
        if size == 1:
            if len(header) < 16:
                break
            size, length = struct.unpack_from(">Q", header, 8)[0], 16
        if not all(48 <= c <= 57 or 97 <= c <= 122 or 65 <= c <= 90 or c == 32 for c in kind) or 0 < size < length:
            break
        stop = None if size == 0 else position + size
        boxes.append(Box(kind.decode(), position, length, stop, (stop if stop is not None and stop <= end else end) - position))
        if stop is None or stop > end:
            break
        position = stop
    return boxes


def tiles(boxes: list[Box], size: int) -> bool:
    """True when the top-level boxes exactly cover the file (a cut file ends inside one)."""
    return bool(boxes) and boxes[0].offset == 0 and all(b.complete for b in boxes) and (boxes[-1].end or size) == size


def _first(boxes: list[Box], kind: str, complete: bool = True) -> Box | None:
    return next((b for b in boxes if b.kind == kind and (b.complete or not complete)), None)


def needs_rebuild(boxes: list[Box]) -> bool:
    """An mdat without a complete moov: what a writer leaves before it writes the sample tables."""
    return _first(boxes, "mdat", complete=False) is not None and _first(boxes, "moov") is None


def video_avcc(handle: BinaryIO, boxes: list[Box]) -> bytes | None:
    """The avcC record of the first H.264 track in a complete moov, or None."""
    moov = _first(boxes, "moov")
    if moov is None:
        return None
    handle.seek(moov.offset)
    data = io.BytesIO(handle.read(moov.present))
    return _find_avcc(data, moov.header, moov.present)


def _find_avcc(data: BinaryIO, start: int, end: int) -> bytes | None:
    for box in scan(data, start, end):
        if box.kind == "avcC":
            data.seek(box.offset + box.header)
            return data.read(box.present - box.header)
        if box.kind in _CONTAINERS or box.kind in _SKIP:
            found = _find_avcc(data, box.offset + box.header + _SKIP.get(box.kind, 0), box.offset + box.present)
            if found:
                return found
    return None


@dataclass(frozen=True)
class _Unit:
    """One access unit: its bytes in mdat and its place in display order."""

    offset: int
    size: int
    keyframe: bool
    order: tuple[int, int]  # (GOP, picture order count)


@dataclass(frozen=True)
class Rebuilt:
    """What :func:`rebuild` wrote."""

    frames: int  # access units kept
    dropped: int  # complete access units dropped after a gap in display order
    cut: bool  # mdat ended inside a NAL unit (or its end was unknown)
    parameter_sets: str  # "in-band" | "reference"
    fps: Fraction


def _nal_units(handle: BinaryIO, start: int, end: int, length_size: int):
    """(offset, total size, first bytes) of each length-prefixed NAL unit; ends at a cut or garbage one."""
    position = start
    while position + length_size < end:
        handle.seek(position)
        head = handle.read(length_size + _HEAD)
        length = int.from_bytes(head[:length_size], "big")
        if length == 0 or position + length_size + length > end or head[length_size] & 0x80 or not head[length_size] & 0x1F:
            return
        yield position, length_size + length, head[length_size : length_size + length]
        position += length_size + length


def _access_units(handle: BinaryIO, mdat: Box, reference: bytes | None):
    """Pass one: access units of mdat in decode order, the parameter sets used, whether mdat was cut."""
    sps = pps = None
    length_size = 4
    if reference is not None:
        sps_list, pps_list, length_size = parse_avcc(reference)
        sps, pps = sps_list[0], pps_list[0]
    start, end = mdat.payload
    units, in_band, info, order, consumed = [], False, None, None, start
    current = None  # [offset, size, keyframe, (gop, poc) or None while it holds no picture]
    for offset, size, head in _nal_units(handle, start, end, length_size):
        kind, first_mb = head[0] & 0x1F, None
        if kind in (NAL_SPS, NAL_PPS) and order is None:  # in-band parameter sets ahead of the first picture
            handle.seek(offset + length_size)
            whole = handle.read(size - length_size)
            sps, pps, in_band = (whole, pps, True) if kind == NAL_SPS else (sps, whole, in_band)
        elif kind in (NAL_SLICE, NAL_IDR):
            if sps is None or pps is None:
                raise IngestError("truncated", "moov missing (file cut short) and no SPS/PPS to decode it with: none in the stream, "
                                  "and no reference (a complete earlier file of the same camera and vehicle)")
            try:
                info = info or parse_sps(sps)
                order = order or DisplayOrder(info)
                header = parse_slice_header(head, info)
            except ValueError as error:
                raise IngestError("truncated", f"moov missing (file cut short) and its frames cannot be ordered ({error})") from None
            first_mb = header.first_mb
        if current is not None and starts_access_unit(kind, first_mb, current[3] is not None):
            units.append(_Unit(*current))
            current = None
        current = current or [offset, 0, False, None]
        current[1] += size
        if first_mb is not None and current[3] is None:
            current[2], current[3] = kind == NAL_IDR, order.add(kind == NAL_IDR, bool(head[0] & 0x60), header)
        consumed = offset + size
    # The last access unit is whole only if mdat's declared end was reached exactly: a cut may
    # fall between two slices of one picture, and a writer's placeholder size says nothing.
    cut = mdat.end is None or consumed != mdat.end
    if current is not None and current[3] is not None and not cut:
        units.append(_Unit(*current))
    return units, sps, pps, in_band, cut, length_size


def _display(units: list[_Unit]) -> tuple[list[int], int]:
    """Display ranks of the longest decodable run of units without a hole in display order.

    A cut removes the end of decode order, so any prefix in decode order decodes (references come
    first); the longest prefix whose pictures are contiguous in display order is kept, so a
    P-frame whose B-frames were cut off does not show up in their place. Returns (rank of each
    kept unit in decode order, units dropped)."""
    orders = [u.order for u in units]
    if len(set(orders)) < len(orders):
        raise IngestError("truncated", "moov missing (file cut short) and two of its frames claim the same place in display order")
    by_gop = sorted(orders)
    step = min((b[1] - a[1] for a, b in zip(by_gop, by_gop[1:]) if a[0] == b[0]), default=2)
    keep, gop, low, high, count = 0, None, 0, 0, 0
    for index, (number, poc) in enumerate(orders):
        if number != gop:
            gop, low, high, count = number, poc, poc, 0
        low, high, count = min(low, poc), max(high, poc), count + 1
        if (high - low) == step * (count - 1):
            keep = index + 1
    rank = {o: i for i, o in enumerate(sorted(orders[:keep]))}
    return [rank[o] for o in orders[:keep]], len(units) - keep


def rebuild(handle: BinaryIO, boxes: list[Box], target: str, reference: bytes | None = None, reference_fps: Fraction | None = None) -> Rebuilt:
    """Write the complete access units of a cut file's mdat as a new MP4 at ``target``.

    ``reference`` is the avcC of a complete file of the same camera; parameter sets in the stream
    itself win over it. Raises IngestError("truncated", ...) when nothing can be rebuilt."""
    mdat = _first(boxes, "mdat", complete=False)
    units, sps, pps, in_band, cut, length_size = _access_units(handle, mdat, reference)
    if not units:
        raise IngestError("truncated", "moov missing (file cut short) and no complete frame in mdat")
    ranks, dropped = _display(units)
    kept = list(zip(units, ranks))
    fps = parse_sps(sps).fps or reference_fps
    if not fps:
        raise IngestError("truncated", "moov missing (file cut short) and no frame rate in the SPS or a reference file")
    record = avcc(sps, pps) if in_band else reference
    delay = max(i - r for i, (_, r) in enumerate(kept))  # how far decode runs ahead of display
    time_base = 1 / fps
    with av.open(io.BytesIO(_annexb(sps) + _annexb(pps) + _sample_annexb(handle, kept[0][0], length_size)), format="h264") as template, \
            av.open(target, "w", format="mp4", options={"fflags": "+bitexact"}) as output:
        stream = output.add_stream_from_template(template.streams.video[0])
        stream.codec_context.extradata = record
        stream.time_base = time_base
        for index, (unit, rank) in enumerate(kept):
            handle.seek(unit.offset)
            packet = av.Packet(handle.read(unit.size))
            packet.pts, packet.dts, packet.time_base, packet.is_keyframe, packet.stream = rank, index - delay, time_base, unit.keyframe, stream
            output.mux(packet)
    return Rebuilt(len(kept), dropped, cut, "in-band" if in_band else "reference", fps)


def _annexb(nal: bytes) -> bytes:
    return b"\x00\x00\x00\x01" + nal


def _sample_annexb(handle: BinaryIO, unit: _Unit, length_size: int) -> bytes:
    handle.seek(unit.offset)
    sample, out, position = handle.read(unit.size), bytearray(), 0
    while position + length_size <= len(sample):
        length = int.from_bytes(sample[position : position + length_size], "big")
        out += _annexb(sample[position + length_size : position + length_size + length])
        position += length_size + length
    return bytes(out)
