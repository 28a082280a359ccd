"""A redacted clip keeps its source's picture outside the masks: the same YUV values (up to x264's
loss, without a bias), the same colour tags, the same presentation times, whatever layout a camera
or phone writes."""

import io

import av
import numpy as np
import pytest

from builders import flagged_clip
from curation.media.video import VideoWriter, writer_rgb
from curation.redaction.video import RedactionConfig, redact_video

H, W, N = 96, 128, 12


def _scene(n: int) -> list[np.ndarray]:
    """Coloured gradients and texture drifting across the frame, with every level from dark to bright."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:H, 0:W * 2].astype(np.float32)
    base = np.stack([x / (W * 2) * 255, y / H * 255, (1 - x / (W * 2)) * 200 + 30 * np.sin(y / 5)], -1)
    base = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    return [np.ascontiguousarray(base[:, 4 * k:4 * k + W]) for k in range(n)]


def _tags(**tags):
    def flag(stream):
        for name, value in tags.items():
            setattr(stream.codec_context, name, value)
    return flag


BT709 = {"colorspace": 1, "color_primaries": 1, "color_trc": 1}
CAMERAS = {  # what real cameras and phones write
    "H.264, BT.709 limited range (a dashcam)": ("libx264", "yuv420p", {**BT709, "color_range": 1}),
    "H.264, full range (yuvj: webcams, many dashcams)": ("libx264", "yuvj420p", {"colorspace": 5, "color_range": 2}),
    "HEVC 10 bits, BT.709 (a phone)": ("libx265", "yuv420p10le", {**BT709, "color_range": 1}),
    "H.264, untagged (the simulator, old recorders)": ("libx264", "yuv420p", {}),
}


def _limited_yuv(frame: av.VideoFrame) -> np.ndarray:
    """The frame's planes (I420 rows) as 8-bit limited-range values, exactly, in floating point."""
    planes = frame.to_ndarray().astype(np.float64)
    if frame.format.name.endswith("10le"):
        planes /= 4
    if frame.format.name.startswith("yuvj") or frame.color_range == 2:
        planes = np.concatenate([planes[:H] * 219 / 255 + 16, (planes[H:] - 128) * 224 / 255 + 128])
    return planes


@pytest.mark.parametrize("camera", CAMERAS)
def test_outside_the_masks_a_redacted_clip_keeps_the_source_picture_tags_and_times(camera):
    codec, pix_fmt, tags = CAMERAS[camera]
    source = io.BytesIO()
    flagged_clip(source, _scene(N), _tags(**tags), codec=codec, pix_fmt=pix_fmt)
    output = io.BytesIO()
    redact_video(source.getvalue(), output, [], RedactionConfig())  # nothing to mask: the picture is all "outside"
    with av.open(io.BytesIO(source.getvalue())) as raw, av.open(io.BytesIO(output.getvalue())) as redacted:
        pairs = list(zip(raw.decode(video=0), redacted.decode(video=0), strict=True))
        written = redacted.streams.video[0].codec_context
        assert (written.colorspace, written.color_primaries, written.color_trc) == (pairs[0][0].colorspace, pairs[0][0].color_primaries,
                                                                                    pairs[0][0].color_trc)
        assert written.color_range == (1 if tags else 0)  # limited; untagged stays untagged (every player reads it as limited)
        assert [a.time for a, _ in pairs] == pytest.approx([b.time for _, b in pairs], abs=1e-6)  # before: 2 frames late
        difference = np.stack([_limited_yuv(b) - _limited_yuv(a) for a, b in pairs])
    luma, chroma = difference[:, :H], difference[:, H:]
    assert abs(luma.mean()) < 0.3 and abs(chroma.mean()) < 0.3, (luma.mean(), chroma.mean())  # before: luma 1 level darker
    assert np.abs(luma).mean() < 2.5  # x264's loss at the stage's quality


def test_the_writer_turns_writer_rgb_back_into_the_same_yuv_values():
    frame = av.VideoFrame.from_ndarray(_scene(1)[0], format="rgb24").reformat(format="yuv420p")
    rgb, _ = writer_rgb(frame)
    stored = io.BytesIO()
    with VideoWriter(stored, W, H, fps=10, crf=0, preset="ultrafast") as writer:  # crf 0: lossless, the conversion alone
        writer.write(rgb)
    with av.open(io.BytesIO(stored.getvalue())) as container:
        back = next(container.decode(video=0)).to_ndarray().astype(int)
    difference = back - frame.to_ndarray()
    assert (np.abs(difference) > 1).mean() < 0.01 and abs(difference.mean()) < 0.05  # more: values outside the RGB cube


def test_a_clip_stored_as_rgb_is_written_as_the_bt601_yuv_it_becomes_and_tagged_so():
    """An RGB stream (libx264rgb, some screen and machine-vision cameras) says "no matrix"; copied onto
    the YUV output, that tag would make players show wrong colours."""
    source = io.BytesIO()
    flagged_clip(source, _scene(N), lambda stream: None, codec="libx264rgb", pix_fmt="bgr0")
    output = io.BytesIO()
    redact_video(source.getvalue(), output, [], RedactionConfig())
    with av.open(io.BytesIO(source.getvalue())) as raw, av.open(io.BytesIO(output.getvalue())) as redacted:
        assert raw.streams.video[0].codec_context.pix_fmt == "gbrp"
        written = redacted.streams.video[0].codec_context
        assert (written.colorspace, written.color_range) == (5, 1)  # BT.601, limited: what the writer makes of RGB
        # The output read back exactly (swscale's own YUV to RGB runs a level or two dark in red and green)
        difference = np.stack([writer_rgb(b)[0].astype(float) - a.to_ndarray(format="rgb24")
                               for a, b in zip(raw.decode(video=0), redacted.decode(video=0), strict=True)])
    # 4:2:0 shares colour between 2x2 pixels: on this saturated, noisy scene clipping leaves a level or so;
    # a wrong matrix leaves tens
    assert np.abs(difference.mean(axis=(0, 1, 2))).max() < 2.0
