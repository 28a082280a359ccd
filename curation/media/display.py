"""How a player shows a video's pictures: the stream's display matrix.

A phone held upright stores its picture sideways and a matrix that says "turn it a quarter"; a
camera mounted upside down says "turn it half"; a selfie camera may say "mirror it". Every decode
in the project shows pictures as that matrix says, the first frame's for the whole stream (a picture
that changed shape mid-stream would break every frame after it), so detectors see faces
upright (faces on their side are what face detectors miss: a real pan clip stored turned gave 14 face
tracks instead of 35) and every stage, and the redacted output, is in the coordinates a viewer sees.
The rule is FFmpeg's (its command line turns and flips a stream alike): the matrix's 2x2 part,
rounded, is a swap of the axes and a flip of each. A matrix that is not a quarter turn is rounded to
the nearest; one that cannot be read (all zero) leaves the picture as stored.

Example:
    >>> for frame in container.decode(stream):                          # doctest: +SKIP
    ...     display = display or Display.of(frame)                      # the first frame's, for all
    ...     image = display.apply(frame.to_ndarray(format="rgb24"))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import av
import cv2
import numpy as np
from av.sidedata.sidedata import Type

__all__ = ["Display"]


@dataclass(frozen=True)
class Display:
    """Shown = stored with x and y swapped (``transpose``), then mirrored left to right (``flip_x``)
    and upside down (``flip_y``)."""

    transpose: bool = False
    flip_x: bool = False
    flip_y: bool = False

    @classmethod
    def of(cls, frame: av.VideoFrame) -> "Display":
        """What ``frame``'s display matrix asks for (none: as stored)."""
        side = frame.side_data.get(Type.DISPLAYMATRIX)
        if side is None:
            return cls()
        # (x', y') = (a x + c y, b x + d y) + offset, in 16.16 fixed point (libavutil/display.h).
        a, b, _, c, d = np.frombuffer(bytes(side), "<i4")[:5].astype(np.int64)
        if abs(b) + abs(c) > abs(a) + abs(d):  # a quarter turn: x' comes from y, y' from x
            return cls(True, bool(c < 0), bool(b < 0))
        return cls(False, bool(a < 0), bool(d < 0))

    @property
    def rotation_deg(self) -> int:
        """Degrees counter-clockwise (0, 90, 180 or 270), as ffprobe reports the matrix (its -90 is 270)."""
        a, b = (0, -1 if self.flip_y else 1) if self.transpose else (-1 if self.flip_x else 1, 0)
        return round(-math.degrees(math.atan2(b, a))) % 360

    @property
    def mirrored(self) -> bool:
        return self.transpose != (self.flip_x != self.flip_y)  # the matrix's determinant is negative

    def describe(self) -> dict:
        """For proof records: how the input asked to be shown, and so how the output was turned."""
        return {"rotation_deg": self.rotation_deg, "mirrored": self.mirrored}

    def apply(self, image: np.ndarray) -> np.ndarray:
        """``image`` (stored) as shown."""
        if self.transpose:
            image = cv2.transpose(image)
        if self.flip_x or self.flip_y:
            image = cv2.flip(image, -1 if self.flip_x and self.flip_y else 1 if self.flip_x else 0)
        return image

