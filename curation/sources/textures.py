"""Sprites for simulated street scenes: plates, signs, traffic lights, vehicles, pedestrians.

Each sprite is an RGBA image drawn once at high resolution and scaled per frame, so that a
distant plate is illegible for the same reason as in a real camera: too few pixels.
Plates and signs follow each region's style (``locale.plate_style`` / ``sign_style``).
"""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["plate_text", "plate_sprite", "sign_sprite", "light_sprite", "vehicle_sprite", "pedestrian_sprite",
           "PLATE_SIZE_M", "SIGN_TYPES", "LIGHT_STATES"]

# Physical plate sizes (width, height in metres): CN GA 36-2018 blue, EU 520x110, US 12x6 in.
PLATE_SIZE_M = {"cn": (0.44, 0.14), "eu": (0.52, 0.11), "us": (0.305, 0.152)}
SIGN_TYPES = {
    "cn": ("stop", "yield", "speed_limit_40", "speed_limit_60", "speed_limit_80"),
    "eu": ("stop", "yield", "speed_limit_30", "speed_limit_50", "speed_limit_100"),
    "us": ("stop", "yield", "speed_limit_25", "speed_limit_35", "speed_limit_65"),
}
LIGHT_STATES = ("red", "yellow", "green", "off")
PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤川"
LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I or O on plates
EU_PREFIXES = ("M", "B", "HH", "F", "S", "K", "D")
US_STATES = ("CALIFORNIA", "NEVADA", "OREGON", "ARIZONA")


@functools.cache
def _font(cjk: bool = False, bold: bool = True) -> Path:
    if cjk:
        import cvttf_NotoSansCJK_Regular

        return Path(cvttf_NotoSansCJK_Regular.__file__).parent / "NotoSansCJKtc-Regular.otf"
    import matplotlib

    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf" / name


def _text(draw: ImageDraw.ImageDraw, box, text: str, fill, cjk: bool = False) -> None:
    """Draw text centred in box, as large as fits."""
    x1, y1, x2, y2 = box
    size = int(y2 - y1)
    while size > 4:
        font = ImageFont.truetype(str(_font(cjk)), size)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        if right - left <= x2 - x1 and bottom - top <= y2 - y1:
            break
        size -= 2
    draw.text(((x1 + x2 - (right - left)) / 2 - left, (y1 + y2 - (bottom - top)) / 2 - top), text, font=font, fill=fill)


def plate_text(style: str, rng: np.random.Generator) -> str:
    digits = lambda n: "".join(str(d) for d in rng.integers(0, 10, n))  # noqa: E731
    letters = lambda n: "".join(rng.choice(list(LETTERS), n))  # noqa: E731
    if style == "cn":
        tail = "".join(rng.choice(list(LETTERS + "0123456789"), 5))
        return f"{rng.choice(list(PROVINCES))}{letters(1)}·{tail}"
    if style == "eu":
        return f"{rng.choice(EU_PREFIXES)} {letters(int(rng.integers(1, 3)))} {int(rng.integers(1, 9999))}"
    return f"{int(rng.integers(1, 9))}{letters(3)}{digits(3)}"


def plate_sprite(style: str, text: str, px_per_m: int = 800) -> np.ndarray:
    """RGBA plate image."""
    w_m, h_m = PLATE_SIZE_M[style]
    w, h = int(w_m * px_per_m), int(h_m * px_per_m)
    if style == "cn":
        image = Image.new("RGBA", (w, h), (10, 60, 190, 255))
        draw = ImageDraw.Draw(image)
        draw.rectangle([3, 3, w - 4, h - 4], outline=(235, 235, 235, 255), width=3)
        _text(draw, (10, h * 0.12, w - 10, h * 0.88), text, (245, 245, 245, 255), cjk=True)
    elif style == "eu":
        image = Image.new("RGBA", (w, h), (245, 245, 245, 255))
        draw = ImageDraw.Draw(image)
        band = int(w * 0.08)
        draw.rectangle([0, 0, band, h], fill=(0, 51, 153, 255))
        _text(draw, (2, h * 0.55, band - 2, h * 0.92), "D", (255, 255, 255, 255))
        draw.rectangle([0, 0, w - 1, h - 1], outline=(20, 20, 20, 255), width=3)
        _text(draw, (band + 8, h * 0.12, w - 8, h * 0.88), text, (15, 15, 15, 255))
    else:
        image = Image.new("RGBA", (w, h), (240, 240, 240, 255))
        draw = ImageDraw.Draw(image)
        draw.rectangle([0, 0, w - 1, h - 1], outline=(60, 60, 60, 255), width=3)
        state = US_STATES[sum(map(ord, text)) % len(US_STATES)]
        _text(draw, (w * 0.2, h * 0.05, w * 0.8, h * 0.28), state, (180, 20, 30, 255))
        _text(draw, (8, h * 0.3, w - 8, h * 0.85), text, (20, 30, 110, 255))
    return np.asarray(image)


def sign_sprite(style: str, kind: str, size: int = 200) -> np.ndarray:
    """RGBA sign face (square canvas, transparent outside the sign's shape)."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    s = size
    if kind == "stop":
        k = s * 0.29
        octagon = [(k, 0), (s - k, 0), (s, k), (s, s - k), (s - k, s), (k, s), (0, s - k), (0, k)]
        draw.polygon(octagon, fill=(200, 20, 30, 255), outline=(255, 255, 255, 255))
        _text(draw, (s * 0.12, s * 0.3, s * 0.88, s * 0.7), "停" if style == "cn" else "STOP", (255, 255, 255, 255), cjk=style == "cn")
    elif kind == "yield":
        draw.polygon([(0, s * 0.08), (s, s * 0.08), (s / 2, s * 0.95)], fill=(200, 20, 30, 255))
        inner = (255, 255, 255, 255) if style != "cn" else (255, 210, 0, 255)
        draw.polygon([(s * 0.18, s * 0.18), (s * 0.82, s * 0.18), (s / 2, s * 0.75)], fill=inner)
        if style == "us":
            _text(draw, (s * 0.3, s * 0.22, s * 0.7, s * 0.4), "YIELD", (200, 20, 30, 255))
        elif style == "cn":
            _text(draw, (s * 0.38, s * 0.22, s * 0.62, s * 0.45), "让", (10, 10, 10, 255), cjk=True)
    else:
        limit = kind.rsplit("_", 1)[1]
        if style == "us":
            draw.rectangle([s * 0.15, 0, s * 0.85, s - 1], fill=(250, 250, 250, 255), outline=(10, 10, 10, 255), width=4)
            _text(draw, (s * 0.2, s * 0.06, s * 0.8, s * 0.24), "SPEED", (10, 10, 10, 255))
            _text(draw, (s * 0.2, s * 0.26, s * 0.8, s * 0.42), "LIMIT", (10, 10, 10, 255))
            _text(draw, (s * 0.2, s * 0.48, s * 0.8, s * 0.94), limit, (10, 10, 10, 255))
        else:
            draw.ellipse([0, 0, s - 1, s - 1], fill=(200, 20, 30, 255))
            draw.ellipse([s * 0.14, s * 0.14, s * 0.86, s * 0.86], fill=(250, 250, 250, 255))
            _text(draw, (s * 0.22, s * 0.3, s * 0.78, s * 0.7), limit, (10, 10, 10, 255))
    return np.asarray(image)


def light_sprite(state: str, size: int = 60) -> np.ndarray:
    """RGBA vertical three-lamp traffic light (w = size, h = 3 * size)."""
    image = np.zeros((size * 3, size, 4), np.uint8)
    image[..., :3], image[..., 3] = (25, 25, 25), 255
    lamps = {"red": (0, (255, 40, 30)), "yellow": (1, (255, 200, 20)), "green": (2, (40, 230, 90))}
    for name, (slot, colour) in lamps.items():
        lit = name == state
        cv2.circle(image, (size // 2, size // 2 + slot * size), int(size * 0.38),
                   (*colour, 255) if lit else (*(c // 6 + 20 for c in colour), 255), -1, cv2.LINE_AA)
    return image


def vehicle_sprite(colour: tuple[int, int, int], plate: np.ndarray, size_m: tuple[float, float], plate_m: tuple[float, float],
                   px_per_m: int = 200) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """RGBA rear view of a car with its plate; returns the sprite and the plate box in sprite pixels."""
    w, h = int(size_m[0] * px_per_m), int(size_m[1] * px_per_m)
    image = np.zeros((h, w, 4), np.uint8)
    body = (*colour, 255)
    cv2.rectangle(image, (0, int(h * 0.35)), (w - 1, int(h * 0.93)), body, -1)
    cv2.rectangle(image, (int(w * 0.12), 0), (int(w * 0.88), int(h * 0.4)), body, -1)
    cv2.rectangle(image, (int(w * 0.17), int(h * 0.06)), (int(w * 0.83), int(h * 0.34)), (40, 50, 60, 255), -1)
    for x in (int(w * 0.04), int(w * 0.8)):
        cv2.rectangle(image, (x, int(h * 0.45)), (x + int(w * 0.16), int(h * 0.56)), (200, 20, 20, 255), -1)
    for x in (int(w * 0.05), int(w * 0.77)):
        cv2.rectangle(image, (x, int(h * 0.88)), (x + int(w * 0.18), h - 1), (15, 15, 15, 255), -1)
    pw, ph = int(plate_m[0] * px_per_m), int(plate_m[1] * px_per_m)
    x1, y1 = (w - pw) // 2, int(h * 0.62)
    image[y1 : y1 + ph, x1 : x1 + pw] = cv2.resize(plate, (pw, ph), interpolation=cv2.INTER_AREA)
    return image, (x1, y1, x1 + pw, y1 + ph)


def pedestrian_sprite(shirt: tuple[int, int, int], trousers: tuple[int, int, int], skin: tuple[int, int, int],
                      px_per_m: int = 120) -> np.ndarray:
    """RGBA body without a face (the face is pasted at frame resolution); 0.55 m x 1.75 m."""
    w, h = int(0.55 * px_per_m), int(1.75 * px_per_m)
    image = np.zeros((h, w, 4), np.uint8)
    head = int(0.14 * h)
    cv2.ellipse(image, (w // 2, head // 2 + 2), (int(w * 0.22), head // 2), 0, 0, 360, (*skin, 255), -1)
    cv2.rectangle(image, (int(w * 0.12), head), (int(w * 0.88), int(h * 0.55)), (*shirt, 255), -1)
    cv2.rectangle(image, (int(w * 0.2), int(h * 0.55)), (int(w * 0.47), h - 1), (*trousers, 255), -1)
    cv2.rectangle(image, (int(w * 0.53), int(h * 0.55)), (int(w * 0.8), h - 1), (*trousers, 255), -1)
    return image
