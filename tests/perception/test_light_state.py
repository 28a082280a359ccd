"""Traffic light state from lamp pixels, at the sizes and light levels the fleet sees."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from curation.perception.light_state import find_lights, light_state
from curation.sources.textures import light_sprite


@pytest.mark.parametrize("state", ["red", "yellow", "green", "off"])
@pytest.mark.parametrize("width", [7, 12, 40])
@pytest.mark.parametrize("light", [1.0, 0.6, 0.28])  # day, dusk, night as the simulator darkens frames
def test_the_lit_lamp_gives_the_state(state, width, light):
    sprite = cv2.resize(light_sprite(state)[..., :3], (width, width * 3), interpolation=cv2.INTER_AREA).astype(np.float32)
    noisy = np.clip(sprite * light + np.random.default_rng(width).normal(0, 5, sprite.shape), 0, 255).astype(np.uint8)
    assert light_state(noisy) == state


def test_horizontal_lights_read_left_to_right_and_grey_boxes_are_off():
    vertical = light_sprite("green")[..., :3]
    horizontal = np.ascontiguousarray(np.rot90(vertical, k=1))  # top lamp (red) to the left, green to the right
    assert light_state(horizontal) == "green"
    assert light_state(np.full((30, 10, 3), 120, np.uint8)) == "off"


@pytest.mark.parametrize("state", ["red", "yellow", "green"])
def test_a_loose_box_with_sky_around_the_light_still_reads(state):
    sprite = cv2.resize(light_sprite(state)[..., :3], (12, 36), interpolation=cv2.INTER_AREA)
    crop = np.zeros((48, 22, 3), np.uint8)
    crop[:] = (150, 190, 235)  # bright daytime sky around a loose detection box
    crop[6:42, 5:17] = sprite
    assert light_state(crop) == state


REAL = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "real" / "traffic_lights"


@pytest.mark.skipif(not REAL.exists(), reason="shared/testdata is not beside the repository")
def test_lit_lamps_of_real_lights_are_found_with_their_state():
    """The 12 intersection photos the lamp finder's thresholds were set on (the others are for
    benchmarks/label_real.py): nearly every lit lamp is inside a found light of its colour."""
    images = sorted((REAL / "images").iterdir())[:12]
    found = right = 0
    for image in images:
        lights = find_lights(cv2.cvtColor(cv2.imread(str(image)), cv2.COLOR_BGR2RGB))
        for line in (REAL / "labels" / f"{image.stem}.txt").read_text().splitlines():
            values = line.split()
            cls, numbers = int(values[0]), np.array(values[1:], float) * 800
            if len(numbers) == 4:
                x1, y1, x2, y2 = numbers[0] - numbers[2] / 2, numbers[1] - numbers[3] / 2, numbers[0] + numbers[2] / 2, numbers[1] + numbers[3] / 2
            else:
                x1, y1, x2, y2 = numbers[0::2].min(), numbers[1::2].min(), numbers[0::2].max(), numbers[1::2].max()
            holding = [state for (a, b, c, d), state, _, _ in lights if a - 2 <= x1 and b - 2 <= y1 and c + 2 >= x2 and d + 2 >= y2]
            found += bool(holding)
            right += ("green", "green", "red", "yellow")[cls] in holding
    assert found >= 23 and right >= 23  # of 26 lamps


def test_no_lamps_in_sky_or_in_a_lamp_without_a_housing():
    sky = np.zeros((200, 300, 3), np.uint8)
    sky[:] = (150, 190, 235)
    cv2.circle(sky, (150, 60), 6, (255, 40, 40), -1)  # a red disc in open sky: no black housing around it
    assert find_lights(sky) == []
    cv2.rectangle(sky, (140, 52), (190, 68), (20, 20, 20), -1)  # now a horizontal housing to its right
    cv2.circle(sky, (150, 60), 6, (255, 40, 40), -1)
    (box, state, _, core), = find_lights(sky)
    assert state == "red" and box[0] <= 144 and box[2] >= 185
    assert 142 <= core[0] <= 145 and 155 <= core[2] <= 158  # the lamp itself: a disc of radius 6 at x = 150
