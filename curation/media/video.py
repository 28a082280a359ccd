"""H.264 in MP4 through PyAV.

:class:`VideoWriter` encodes RGB frames with libx264 and can put an SEI NAL unit in front of each
frame (Annex B in, the MP4 muxer stores it length-prefixed), with a keyframe each second. It writes
fragmented MP4 (``moov`` first, then ``moof mdat`` pairs: a cut file keeps a decodable prefix), or
with ``fragmented=False`` the layout a car writes: one ``mdat``, the sample tables in ``moov`` after
it (what Tesla's own tools read; a cut file needs :func:`curation.media.mp4.rebuild`).
:func:`writer_rgb` turns a decoded frame into RGB the writer's own way, so a re-encoded picture keeps
its YUV values, and :class:`Colour` carries the tags that say what those values mean.
:func:`probe` reads a file's packets (PTS, keyframes, SEI telemetry) from a path, file object or
bytes and, optionally, decodes them as it goes to find where a damaged file stops being decodable.

Example:
    >>> with VideoWriter("clip.mp4", 640, 360, fps=10) as writer:   # doctest: +SKIP
    ...     writer.write(frame, sei=sei_nal(telemetry))
    >>> probe("clip.mp4").frames                                     # doctest: +SKIP
    40
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from fractions import Fraction
from typing import BinaryIO

import av
import cv2
import numpy as np
from av.video.reformatter import ColorRange, Colorspace

from curation.media.display import Display
from curation.media.mp4 import scan, tiles
from curation.sources.sei import Telemetry, telemetry_in_packet

__all__ = ["VideoWriter", "Colour", "writer_rgb", "Probe", "probe", "decode_frames"]


@dataclass(frozen=True)
class Colour:
    """What a stream's YUV values mean, as FFmpeg tags them: matrix, range, primaries, transfer
    (AVColorSpace etc.; 2, 0, 2, 2: unspecified, which players read as BT.601 or by the picture's size)."""

    space: int = 2
    range: int = 0
    primaries: int = 2
    trc: int = 2


_LIMITED = int(ColorRange.MPEG)
# Full range to limited, value by value (swscale's conversion moved colour by 0.45 levels on average).
_LUMA_TO_LIMITED = np.round(np.arange(256) * 219 / 255 + 16).astype(np.uint8)
_CHROMA_TO_LIMITED = np.round((np.arange(256) - 128) * 224 / 255 + 128).astype(np.uint8)


def writer_rgb(frame: av.VideoFrame) -> tuple[np.ndarray, Colour]:
    """``frame`` as RGB in :class:`VideoWriter`'s own conversion (OpenCV's BT.601 I420, both ways), and
    the tags its YUV values carry. Written back, a pixel gets its YUV values again (within a level,
    but where a value lies outside the RGB cube), so with these tags on the output a re-encoded
    picture shows as its source did, in any player. Through swscale (the stream's own matrix, its
    rounding) and back, a real BT.709 clip came out a level darker in untagged BT.601: what perception
    teams train on must be the camera's picture.

    Other layouts (10 bits, 4:2:2) are first made 8-bit 4:2:0 in their own matrix, full range is
    made limited value by value (the only range the writer's conversion knows: those are the values
    kept). A frame stored as RGB, or with an odd side (no 4:2:0 of its own), takes swscale's RGB,
    tagged as the BT.601 the writer makes of it (an RGB stream's own tag would say "no matrix")."""
    if frame.format.is_rgb or frame.width % 2 or frame.height % 2:
        return frame.to_ndarray(format="rgb24"), Colour(int(Colorspace.ITU601), _LIMITED, frame.color_primaries, frame.color_trc)
    full = frame.format.name.startswith("yuvj") or frame.color_range == int(ColorRange.JPEG)
    if frame.format.name in ("yuv420p", "yuvj420p"):
        planes = frame.to_ndarray()
    else:
        same = ColorRange.JPEG if full else ColorRange.MPEG
        planes = frame.reformat(format="yuv420p", src_color_range=same, dst_color_range=same).to_ndarray()
    if full:
        planes = np.concatenate([_LUMA_TO_LIMITED[planes[:frame.height]], _CHROMA_TO_LIMITED[planes[frame.height:]]])
    colour = Colour(frame.colorspace, _LIMITED if full else frame.color_range, frame.color_primaries, frame.color_trc)
    return cv2.cvtColor(planes, cv2.COLOR_YUV2RGB_I420), colour


class VideoWriter:
    """Encode RGB uint8 frames to H.264/MP4; deterministic bytes for the same input.

    ``fragmented=False`` writes one mdat and moov at the end, as a car does; it needs a seekable
    target (a path, a local file, BytesIO), since the muxer goes back to write mdat's size.
    ``colour``: the tags to write (frames from :func:`writer_rgb` carry their source's)."""

    def __init__(self, target: str | BinaryIO, width: int, height: int, fps: float, crf: int = 23,
                 preset: str = "veryfast", gop_seconds: float = 1.0, threads: int = 2, time_base: Fraction | None = None,
                 fragmented: bool = True, colour: Colour = Colour()):
        options = {"fflags": "+bitexact"}
        if fragmented:
            # delay_moov: moov waits for the first fragment, so it holds the edit list that hides x264's
            # B-frame delay; without it a re-encoded real clip showed each frame 2 frames late.
            options["movflags"] = "frag_keyframe+empty_moov+delay_moov+default_base_moof"
        self._container = av.open(target, "w", format="mp4", options=options)
        self._rate = Fraction(fps).limit_denominator(1001)
        stream = self._container.add_stream("libx264", rate=self._rate)
        # 4:2:0 halves the colour planes, so H.264 needs even sides: an odd side gets its last column
        # or row once more (a 321x241 picture is written 322x242, nothing of it lost).
        self._pad = (width % 2, height % 2)
        stream.width, stream.height, stream.pix_fmt = width + width % 2, height + height % 2, "yuv420p"
        # A caller that keeps the source's timestamps passes its time base and each frame's pts.
        codec = stream.codec_context
        codec.time_base = time_base or 1 / self._rate
        codec.colorspace, codec.color_range, codec.color_primaries, codec.color_trc = colour.space, colour.range, colour.primaries, colour.trc
        # A fixed thread count keeps the bytes identical across machines with more cores.
        stream.options = {"preset": preset, "crf": str(crf), "g": str(max(1, round(fps * gop_seconds))),
                          "threads": str(threads),
                          # x264's macroblock-tree rate control gave different bytes for the same frames
                          # from run to run (measured here); without it the output is reproducible.
                          # 3 B-frames whatever the preset (ultrafast has none); the edit list hides
                          # their reorder delay (delay_moov above, or moov at the end).
                          "x264-params": "mbtree=0:bframes=3"}
        self._stream, self._sei, self._count = stream, {}, 0

    def write(self, frame: np.ndarray, sei: bytes | None = None, pts: int | None = None) -> None:
        """Add one RGB frame; ``sei`` is an Annex B NAL unit (with start code) to store before it."""
        if any(self._pad):
            frame = cv2.copyMakeBorder(frame, 0, self._pad[1], 0, self._pad[0], cv2.BORDER_REPLICATE)
        # OpenCV converts to I420 in 0.5 ms a 720p frame, swscale through PyAV in 2.3 ms (same BT.601 matrix).
        video_frame = av.VideoFrame.from_ndarray(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2YUV_I420), format="yuv420p")
        video_frame.pts = self._count if pts is None else pts
        video_frame.time_base = self._stream.codec_context.time_base
        if sei is not None:
            self._sei[video_frame.pts] = sei
        self._count += 1
        self._mux(self._stream.encode(video_frame))

    def _mux(self, packets) -> None:
        for packet in packets:
            sei = self._sei.pop(packet.pts, None)
            if sei is not None:
                rebuilt = av.Packet(sei + bytes(packet))
                rebuilt.pts, rebuilt.dts, rebuilt.time_base = packet.pts, packet.dts, packet.time_base
                rebuilt.is_keyframe, rebuilt.stream = packet.is_keyframe, self._stream
                packet = rebuilt
            self._container.mux(packet)

    def close(self) -> None:
        self._mux(self._stream.encode(None))
        self._container.close()

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class Probe:
    """What a file holds, read from its packets. ``decodable`` counts frames that decoded (if asked)."""

    codec: str
    width: int  # as shown: a stream its display matrix turns a quarter has its sides swapped (curation.media.display)
    height: int
    fps: float
    time_base: Fraction
    pts: np.ndarray  # display order, in time_base units
    keyframes: np.ndarray
    telemetry: list[Telemetry | None]  # per frame, display order
    complete: bool
    error: str | None = None
    decodable: int | None = None
    audio_streams: int = 0
    metadata: dict = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return len(self.pts)

    @property
    def seconds(self) -> np.ndarray:
        return (self.pts - (self.pts[0] if len(self.pts) else 0)) * float(self.time_base)

    @property
    def duration(self) -> float:
        return float(len(self.pts) / self.fps) if self.fps else 0.0


def probe(source: str | BinaryIO | bytes, decode: bool = True) -> Probe:
    """Demux (and optionally decode) an MP4 from a path, a seekable file object or bytes.

    Reads the file in the demuxer's chunks and keeps per frame only its PTS, keyframe flag and
    telemetry, so memory does not grow with the file's length. Raises av.error.FFmpegError if the
    file cannot be opened as video."""
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as handle:
            complete = _tiled(handle)
        return _probe(str(source), decode, complete)  # PyAV reads a path without Python in the loop
    complete = _tiled(source)
    source.seek(0)
    return _probe(source, decode, complete)


def _tiled(handle: BinaryIO) -> bool:
    boxes = scan(handle)
    return tiles(boxes, handle.seek(0, os.SEEK_END))


def _probe(source: str | BinaryIO, decode: bool, complete: bool) -> Probe:
    container = av.open(source, "r")
    try:
        if not container.streams.video:
            raise av.error.InvalidDataError(1, "no video stream")
        stream = container.streams.video[0]
        codec = stream.codec_context
        decoder = None
        if decode:
            decoder = av.CodecContext.create(codec.name, "r")
            decoder.extradata = codec.extradata
            decoder.thread_type = "SLICE"  # frame threading would report a damaged packet frames later
        frames, error, decodable = [], None, 0
        try:
            for packet in container.demux(stream):
                if packet.size and packet.pts is not None:
                    payload = bytes(packet)
                    frames.append((int(packet.pts), bool(packet.is_keyframe), telemetry_in_packet(payload)))
                    if decoder is not None and error is None:
                        decodable, error = _decode(decoder, payload, int(packet.pts), decodable)
        except av.error.FFmpegError as caught:
            error = f"demux: {caught}"
        if decoder is not None and error is None:
            decodable, error = _decode(decoder, None, None, decodable)
        frames.sort(key=lambda f: f[0])
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        width, height = (codec.height, codec.width) if _display(container, stream).transpose else (codec.width, codec.height)
        return Probe(codec.name, width, height, fps, stream.time_base,
                     np.array([f[0] for f in frames], np.int64), np.array([f[1] for f in frames], bool),
                     [f[2] for f in frames], complete, error, decodable if decode else None,
                     len(container.streams.audio), dict(container.metadata))
    finally:
        container.close()


def _display(container, stream) -> Display:
    """How the stream asks to be shown, read off its first frame (one that does not decode: as stored)."""
    try:
        container.seek(0, stream=stream)
        for frame in container.decode(stream):
            return Display.of(frame)
    except av.error.FFmpegError:
        pass
    return Display()


def _decode(decoder, payload: bytes | None, pts: int | None, count: int) -> tuple[int, str | None]:
    """Feed one packet (None: flush); frames decoded so far and the first error."""
    try:
        if payload is None:
            return count + len(decoder.decode(None)), None
        packet = av.Packet(payload)
        packet.pts = pts
        return count + len(decoder.decode(packet)), None
    except av.error.FFmpegError as caught:
        return count, f"decode: {caught}"


def decode_frames(source: str | BinaryIO, limit: int | None = None):
    """Yield (pts, RGB ndarray as shown: curation.media.display) in display order until the end or the
    first undecodable packet."""
    container = av.open(source, "r")
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        display = None
        for n, frame in enumerate(container.decode(stream)):
            if limit is not None and n >= limit:
                break
            display = display or Display.of(frame)
            yield frame.pts, display.apply(frame.to_ndarray(format="rgb24"))
    except av.error.FFmpegError:
        return
    finally:
        container.close()
