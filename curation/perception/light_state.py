"""Traffic light state from the lamp pixels: which of the three lamps is lit.

Any detector's traffic-light boxes get a state this way (COCO models have a single 'traffic light'
class). The box is split along its long side into three lamps (red, yellow, green from the top of
a vertical light, from the left of a horizontal one); the lit lamp is clearly brighter and more
saturated than the other two (sky around a loose box is bright but pale), and its hue must agree;
otherwise the light is "off" (or its state cannot be read).

Example:
    >>> light_state(np.zeros((30, 10, 3), np.uint8))
    'off'
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["light_state", "STATES", "VERSION"]

VERSION = "lamp-saturated-brightness/2"

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
