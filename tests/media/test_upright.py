"""A video whose display matrix asks to turn or mirror it (a phone held upright, a camera mounted
upside down, a selfie camera) decodes as shown everywhere: redaction, verification, labeling and
export see what a viewer sees (curation.media.display)."""

import io
import subprocess

import av
import cv2
import imageio_ffmpeg
import numpy as np
import pytest

from builders import flagged_clip, turned_clip
from curation.labeling.stream import decode_sampled
from curation.media.display import Display
from curation.media.video import decode_frames, probe
from curation.redaction.video import stream_frames

WIDTH, HEIGHT = 64, 48


def _frame(k: int = 0) -> np.ndarray:
    """A picture whose corners all differ, so that every turn and flip shows."""
    frame = np.full((HEIGHT, WIDTH, 3), 40 + 10 * k, np.uint8)
    frame[:16, :16] = 255
    frame[-16:, -24:] = 150
    frame[:8, -8:] = 90
    return frame


def _close(got: np.ndarray, want: np.ndarray) -> bool:
    return got.shape == want.shape and np.abs(got.astype(int) - want.astype(int)).mean() < 3  # H.264 moves a pixel a level or two


@pytest.mark.parametrize("degrees", [0, 90, 180, 270])
def test_every_decoder_gives_a_turned_clip_upright(degrees):
    upright = [_frame(k) for k in range(3)]
    clip = io.BytesIO()
    turned_clip(clip, upright, degrees)
    data = clip.getvalue()
    info = []
    decoded = {
        "decode_frames": [f for _, f in decode_frames(io.BytesIO(data))],
        "stream_frames": [f for _, f, _ in stream_frames(data, info=info)],
        "decode_sampled": [f for _, _, f in decode_sampled(io.BytesIO(data), lambda index, seconds: True)],
    }
    for name, frames in decoded.items():
        assert len(frames) == 3 and all(_close(got, want) for got, want in zip(frames, upright)), name
    assert (info[0].width, info[0].height, info[0].display.describe()) == (WIDTH, HEIGHT, {"rotation_deg": degrees, "mirrored": False})
    assert (probe(data).width, probe(data).height) == (WIDTH, HEIGHT)  # what ingest catalogs and the review app scales boxes by


def _with_matrix(flag) -> bytes:
    buffer = io.BytesIO()
    flagged_clip(buffer, [_frame()], flag)
    return buffer.getvalue()


def _as_ffmpeg_shows(data: bytes, tmp_path) -> np.ndarray:
    """The first frame as FFmpeg's command line shows it (it turns and flips by the matrix by default)."""
    (tmp_path / "clip.mp4").write_bytes(data)
    done = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(tmp_path / "clip.mp4"), "-frames:v", "1", "-f", "image2pipe",
                           "-c:v", "png", "-"], capture_output=True, check=True)
    return cv2.imdecode(np.frombuffer(done.stdout, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]


@pytest.mark.parametrize("degrees", [0, 90, 180, 270])
@pytest.mark.parametrize("mirrored", [False, True])
def test_turned_and_mirrored_clips_decode_as_ffmpeg_shows_them(degrees, mirrored, tmp_path):
    data = _with_matrix(lambda stream: stream.set_display_rotation(degrees, hflip=mirrored))
    shown = next(decode_frames(io.BytesIO(data)))[1]
    assert _close(shown, _as_ffmpeg_shows(data, tmp_path))
    assert _close(shown, _frame()) == (degrees == 0 and not mirrored)  # the check above can tell them apart
    with av.open(io.BytesIO(data)) as container:
        frame = next(container.decode(video=0))
    assert Display.of(frame).describe() == {"rotation_deg": frame.rotation % 360, "mirrored": mirrored}  # as ffprobe says it


def test_a_matrix_that_cannot_be_read_leaves_the_picture_as_stored(tmp_path):
    data = _with_matrix(lambda stream: stream.set_display_matrix([0] * 8 + [1 << 30]))  # no turn FFmpeg can name
    shown = next(decode_frames(io.BytesIO(data)))[1]
    assert _close(shown, _frame()) and _close(shown, _as_ffmpeg_shows(data, tmp_path))
