"""A video flagged to be turned for display (a phone held upright, a camera mounted upside down)
decodes upright everywhere: redaction, verification, labeling and export see what a viewer sees."""

import io

import numpy as np
import pytest

from builders import turned_clip
from curation.labeling.stream import decode_sampled
from curation.media.video import decode_frames
from curation.redaction.video import stream_frames


def _upright_frames(n=3, width=64, height=48):
    """Frames whose corners differ (a white block top left, a grey one bottom right), so every turn shows."""
    frames = []
    for k in range(n):
        frame = np.full((height, width, 3), 40 + 10 * k, np.uint8)
        frame[:16, :16] = 255
        frame[-16:, -16:] = 150
        frames.append(frame)
    return frames


@pytest.mark.parametrize("degrees", [0, 90, 180, 270])
def test_every_decoder_gives_the_picture_as_a_player_shows_it(degrees):
    upright = _upright_frames()
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
        assert len(frames) == len(upright), name
        for got, want in zip(frames, upright):
            assert got.shape == want.shape, (name, got.shape)
            assert np.abs(got.astype(int) - want.astype(int)).mean() < 3, name  # H.264 moves a pixel by a level or two
    assert (info[0].width, info[0].height, info[0].rotation) == (64, 48, degrees)
