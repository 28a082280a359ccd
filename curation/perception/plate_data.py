"""Synthetic licence-plate training images for the plate detector (CN, EU, US styles).

No pretrained plate detector installs offline, so the project trains its own on plates rendered
in each region's format and pasted with strong augmentation (perspective up to steep angles,
colour, blur, noise, JPEG, night) onto backgrounds: simulated street scenes and real photographs
shipped with scikit-image. Never uses shared/testdata.

Example:
    >>> write_dataset(Path("build/plates"), images=800, seed=0)   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from curation.sources.scene import Camera, Conditions, Scene
from curation.sources.textures import PLATE_SIZE_M, plate_sprite, plate_text

__all__ = ["write_dataset", "plate_image"]

SIZE = 640
REAL_BACKGROUNDS = ("chelsea", "coffee", "rocket", "motorcycle_left", "hubble_deep_field", "immunohistochemistry", "brick",
                    "grass", "gravel", "page", "text", "retina", "cat")


def _backgrounds() -> list[np.ndarray]:
    import skimage.data

    images = []
    for name in REAL_BACKGROUNDS:
        loader = getattr(skimage.data, name, None)
        if loader is None:
            continue
        try:
            image = loader()
        except Exception:  # noqa: BLE001  (a loader that would download: skip it, we stay offline)
            continue
        if image.ndim == 2:
            image = np.dstack([image] * 3)
        images.append(np.ascontiguousarray(image[..., :3]).astype(np.uint8))
    return images


def _scene_background(rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[float, float, float, float]]]:
    """A simulated street frame and the boxes of the plates on its cars (they must be labelled too)."""
    camera = Camera(1280, 720)
    scene = Scene.random(rng, camera, str(rng.choice(["cn", "eu", "us"])), faces=None, pedestrians=0, vehicles=6,
                         conditions=Conditions("day", "clear"))
    frame, objects, _ = scene.render(float(rng.uniform(0, 5)), float(rng.uniform(0, 30)))
    return frame, [tuple(o["box"]) for o in objects if o["class"] == "plate" and o["visible"] > 0.5]


def _crop(background: np.ndarray, boxes, rng) -> tuple[np.ndarray, list[list[float]]]:
    h, w = background.shape[:2]
    scale = SIZE / min(h, w) * float(rng.uniform(1.0, 1.6))
    image = cv2.resize(background, (max(SIZE, int(w * scale)), max(SIZE, int(h * scale))))
    y, x = int(rng.integers(0, image.shape[0] - SIZE + 1)), int(rng.integers(0, image.shape[1] - SIZE + 1))
    kept = []
    for x1, y1, x2, y2 in boxes:
        bx1, by1, bx2, by2 = (np.clip([x1 * scale - x, y1 * scale - y, x2 * scale - x, y2 * scale - y], 0, SIZE))
        if bx2 - bx1 >= 4 and by2 - by1 >= 3:
            kept.append([(bx1 + bx2) / 2 / SIZE, (by1 + by2) / 2 / SIZE, (bx2 - bx1) / SIZE, (by2 - by1) / SIZE])
    return image[y : y + SIZE, x : x + SIZE].copy(), kept


def _plate(rng) -> np.ndarray:
    style = str(rng.choice(["cn", "eu", "us"]))
    plate = plate_sprite(style, plate_text(style, rng), px_per_m=int(rng.integers(300, 700)))
    rgb = plate[..., :3].astype(np.float32)
    if style == "cn" and rng.random() < 0.3:  # new-energy plates are green-white
        rgb = rgb[..., [1, 2, 0]]
    if style == "us" and rng.random() < 0.6:  # state plates: cream, yellow, blue tints
        rgb = rgb * rng.uniform([0.85, 0.8, 0.55], [1.0, 1.0, 1.0])
    if rng.random() < 0.3:  # other states and countries: any hue for text and background
        rgb = rgb[..., rng.permutation(3)]
    elif rng.random() < 0.4:  # coloured characters on a light plate (green, red, blue, black)
        dark = rgb.mean(2) < 110
        rgb[dark] = rng.uniform(0, 160, 3)
    if rng.random() < 0.5:  # haze, glare and cheap optics flatten contrast
        haze = float(rng.uniform(0.15, 0.55))
        rgb = rgb * (1 - haze) + rng.uniform(90, 200, 3) * haze
    if rng.random() < 0.1:  # dark plates with light characters
        rgb = 255 - rgb
    rgb = np.clip(rgb * rng.uniform(0.5, 1.2) + rng.normal(0, 6, rgb.shape), 0, 255)
    return np.dstack([rgb.astype(np.uint8), plate[..., 3]])


def _paste(image: np.ndarray, plate: np.ndarray, rng) -> list[float] | None:
    """Warp the plate by a random homography into the image; return its YOLO box or None."""
    ph, pw = plate.shape[:2]
    width = float(np.exp(rng.uniform(np.log(14), np.log(220))))
    height = width * ph / pw
    cx, cy = rng.uniform(0.05, 0.95) * SIZE, rng.uniform(0.05, 0.95) * SIZE
    angle = np.radians(rng.normal(0, 15) if rng.random() < 0.7 else rng.uniform(-50, 50))
    if rng.random() < 0.4:  # a bumper or grille around the plate: plates sit on car fronts and backs
        bw, bh = width * rng.uniform(1.6, 3.5), height * rng.uniform(2.0, 5.0)
        colour = rng.uniform(10, 120, 3)
        cv2.rectangle(image, (int(cx - bw / 2), int(cy - bh / 2)), (int(cx + bw / 2), int(cy + bh / 2)), colour.tolist(), -1)
        for y in np.arange(cy - bh / 2, cy - height, max(3.0, height / 3)):
            cv2.line(image, (int(cx - bw / 2), int(y)), (int(cx + bw / 2), int(y)), (colour * 0.6).tolist(), max(1, int(height / 8)))
    yaw = float(rng.uniform(0.45, 1.0))  # seen from the side the plate narrows
    corners = np.float32([[-width / 2 * yaw, -height / 2], [width / 2 * yaw, -height / 2 * rng.uniform(0.8, 1.2)],
                          [width / 2 * yaw, height / 2], [-width / 2 * yaw, height / 2 * rng.uniform(0.8, 1.2)]])
    rotation = np.float32([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    shear = float(rng.uniform(-0.5, 0.5)) * height if rng.random() < 0.4 else 0.0  # seen from below or above at an angle
    corners[[1, 2], 1] += shear
    target = corners @ rotation.T + np.float32([cx, cy]) + rng.normal(0, width * 0.02, (4, 2)).astype(np.float32)
    matrix = cv2.getPerspectiveTransform(np.float32([[0, 0], [pw, 0], [pw, ph], [0, ph]]), target)
    warped = cv2.warpPerspective(plate, matrix, (SIZE, SIZE), flags=cv2.INTER_AREA)
    alpha = warped[..., 3:4].astype(np.float32) / 255
    image[:] = (warped[..., :3] * alpha + image * (1 - alpha)).astype(np.uint8)
    x1, y1 = np.clip(target.min(0), 0, SIZE)
    x2, y2 = np.clip(target.max(0), 0, SIZE)
    if (x2 - x1) < 4 or (y2 - y1) < 3:
        return None
    return [(x1 + x2) / 2 / SIZE, (y1 + y2) / 2 / SIZE, (x2 - x1) / SIZE, (y2 - y1) / SIZE]


def plate_image(rng: np.random.Generator, backgrounds: list[np.ndarray]) -> tuple[np.ndarray, list[list[float]]]:
    """One 640x640 RGB training image and its YOLO boxes (class 0 = plate)."""
    if backgrounds and rng.random() < 0.5:
        source, scene_boxes = backgrounds[int(rng.integers(0, len(backgrounds)))], []
    else:
        source, scene_boxes = _scene_background(rng)
    image, boxes = _crop(source, scene_boxes, rng)
    for _ in range(int(rng.integers(0, 4))):
        box = _paste(image, _plate(rng), rng)
        if box:
            boxes.append(box)
    if rng.random() < 0.3:
        k = int(rng.choice([3, 5, 7]))
        image = cv2.GaussianBlur(image, (k, k), 0) if rng.random() < 0.5 else cv2.blur(image, (k, 1))
    if rng.random() < 0.25:  # night
        image = cv2.convertScaleAbs(image, alpha=float(rng.uniform(0.2, 0.5)))
    image = np.clip(image.astype(np.int16) + rng.normal(0, rng.uniform(0, 10), image.shape).astype(np.int16), 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        _, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 90))])
        image = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    return image, boxes


def write_dataset(root: Path, images: int, seed: int, val_share: float = 0.15) -> Path:
    """YOLO layout under root (images/{train,val}, labels/{train,val}, data.yaml); returns data.yaml."""
    rng = np.random.default_rng(seed)
    backgrounds = _backgrounds()
    for n in range(images):
        split = "val" if n < images * val_share else "train"
        image, boxes = plate_image(rng, backgrounds)
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "images" / split / f"{n:05d}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        (root / "labels" / split / f"{n:05d}.txt").write_text("".join(f"0 {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for x, y, w, h in boxes))
    data = root / "data.yaml"
    data.write_text(f"path: {root.resolve()}\ntrain: images/train\nval: images/val\nnames:\n  0: plate\n")
    return data
