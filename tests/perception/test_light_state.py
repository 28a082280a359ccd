"""Traffic light state from lamp pixels, at the sizes and light levels the fleet sees."""

import cv2
import numpy as np
import pytest

from curation.perception.light_state import light_state
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
