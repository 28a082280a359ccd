"""Traffic light state from the lamp pixels: which of the three lamps is lit.

Any detector's traffic-light boxes get a state this way (COCO models have a single 'traffic light'
class). The box is split along its long side into three lamps (red, yellow, green from the top of
a vertical light, from the left of a horizontal one); the lit lamp is clearly brighter and more
saturated than the other two (sky around a loose box is bright but pale), and its hue must agree;
otherwise the light is "off" (or its state cannot be read).

Lights a detector misses (a lamp 5 px tall at 50 m) are found by their lamps (:func:`find_lights`):
a bright, saturated, roundish spot of a signal colour with a black housing running on from it
along one axis, above the horizon (tail lights and road paint are below it).

Example:
    >>> light_state(np.zeros((30, 10, 3), np.uint8))
    'off'
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

__all__ = ["light_state", "find_lights", "Lamp", "STATES", "VERSION"]

VERSION = "lamp-saturated-brightness/2+lit-lamps/2"

STATES = ("red", "yellow", "green")
LIT_RATIO = 1.35  # the lit lamp's brightness over the brighter of the other two
HUES = {"red": (0, 20, 160, 180), "yellow": (12, 40, 12, 40), "green": (40, 100, 40, 100)}  # OpenCV hue ranges (0-180)


def light_state(crop: np.ndarray) -> str:
    """RGB crop of one traffic light -> red | yellow | green | off."""
    h, w = crop.shape[:2]
    if h < 3 or w < 1:
        return "off"
    vertical = h >= w
    length = h if vertical else w
    hsv = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2HSV)
    brightness, hues = [], []
    for k in range(3):
        lo, hi = int(round(k * length / 3)), int(round((k + 1) * length / 3))
        lamp = hsv[lo:hi] if vertical else hsv[:, lo:hi]
        # Lit lamps are bright AND saturated; a loose box's sky or haze is bright but pale.
        values = (lamp[..., 1].astype(np.float32) / 255 * lamp[..., 2]).reshape(-1)
        top = np.sort(values)[-max(1, values.size // 4):]  # the lamp's core, not the housing around it
        brightness.append(float(top.mean()))
        core = lamp.reshape(-1, 3)[values >= 0.7 * values.max()]  # the hue of the brightest part only
        hues.append(float(np.median(core[:, 0])) if len(core) else -1.0)
    order = np.argsort(brightness)[::-1]
    lit, runner_up = int(order[0]), brightness[order[1]]
    if brightness[lit] < LIT_RATIO * max(runner_up, 8.0):
        return "off"
    state = STATES[lit]
    a, b, c, d = HUES[state]
    return state if a <= hues[lit] <= b or c <= hues[lit] <= d else "off"


# Lit lamps (find_lights). Hues in OpenCV units (0-180): a red lamp photographs orange, a green one cyan.
LAMP_HUES = {"red": ((0, 18), (160, 180)), "yellow": ((19, 34),), "green": ((40, 100),)}
HOUSING = 115  # a housing (and its unlit lamps) is darker than this; daylight sky and lit lamps are far brighter
LAMP_PEAK = 180  # a lit lamp's brightest tenth is at least this bright (a 6 px lamp far away is dim)
ROOM = 0.8  # dark housing beside a lamp, in lamp sizes (the lamp's glow eats into a blurred housing)
HOUSING_SHARE = 0.65  # ... or than this share of the brightness around it (a housing against a bright sky is grey)


def _dark_run(dark: np.ndarray, start: int, step: int, limit: int) -> int:
    """Length of the run of dark pixels from ``start`` (one light pixel is a gap, two end it)."""
    count, light, position, last = 0, 0, start, None
    while 0 <= position < len(dark) and count < limit:
        if dark[position]:
            light, last = 0, position
        else:
            light += 1
            if light >= 2:
                break
        position += step
        count += 1
    return 0 if last is None else abs(last - start) + 1


class Lamp(NamedTuple):
    """A lit lamp found in the pixels."""

    box: list[float]  # x1, y1, x2, y2 over the lamp and the dark housing running on from it
    state: str  # red | yellow | green
    score: float  # housing length in lamp sizes / 4, at most 1
    core: list[float]  # x1, y1, x2, y2 of the lit lamp itself


def find_lights(rgb: np.ndarray, horizon: float | None = None, min_px: int = 3, max_px: int = 60) -> list[Lamp]:
    """Traffic lights found by their lit lamps. ``horizon``: the image row of the horizon, where known
    (else 60 % of the height); lamps lower than that are not looked at.

    Example:
        >>> find_lights(np.zeros((100, 100, 3), np.uint8))
        []
    """
    hsv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2HSV)
    hue, value = hsv[..., 0], hsv[..., 2]
    lowest = rgb.shape[0] * 0.6 if horizon is None else horizon + 0.02 * rgb.shape[0]
    lit = (value >= 150) & (hsv[..., 1] >= 80)
    found = []
    for state, ranges in LAMP_HUES.items():
        mask = lit & np.any([(hue >= a) & (hue <= b) for a, b in ranges], 0)
        # An over-exposed core is white (unsaturated): close it into the coloured ring around it.
        mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        for k in range(1, count):
            x, y, w, h, area = (int(v) for v in stats[k])
            if not (min_px <= h <= max_px and min_px <= w <= max_px and area >= 0.3 * w * h and 0.5 <= w / h <= 2.0) or y + h > lowest:
                continue
            if np.percentile(value[labels == k], 90) < LAMP_PEAK:
                continue
            size, glow = max(w, h), max(1, int(round(0.3 * max(w, h))))
            around = value[max(y - 3 * size, 0) : y + h + 3 * size, max(x - 3 * size, 0) : x + w + 3 * size]
            limit = max(HOUSING, HOUSING_SHARE * float(np.percentile(around, 75)))
            best = None
            for horizontal in (True, False):
                dark = (value[y : y + h].mean(0) if horizontal else value[:, x : x + w].mean(1)) < limit
                a, b = (x - glow, x + w + glow) if horizontal else (y - glow, y + h + glow)
                before = _dark_run(dark, a - 1, -1, 5 * size) if a >= 1 else 0
                after = _dark_run(dark, b, 1, 5 * size) if b < len(dark) else 0
                if before + after >= ROOM * size and (best is None or before + after > best[0]):  # room for more lamps
                    best = (before + after, horizontal, before, after)
            if best is None:
                continue
            reach, horizontal, before, after = best
            if horizontal:
                box = [x - glow - before, y - glow, x + w + glow + after, y + h + glow]
            else:
                box = [x - glow, y - glow - before, x + w + glow, y + h + glow + after]
            found.append(Lamp([float(max(box[0], 0)), float(max(box[1], 0)), float(min(box[2], rgb.shape[1])), float(min(box[3], rgb.shape[0]))],
                              state, round(min(reach / size / 4, 1.0), 3), [float(x), float(y), float(x + w), float(y + h)]))
    return found
