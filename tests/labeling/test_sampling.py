"""Which frames get labeled: a steady rate by presentation time, every frame around telemetry triggers."""

import numpy as np

from curation.labeling.sampling import sample_frames, telemetry_triggers


def test_rate_follows_presentation_time_not_frame_numbers():
    # 36 fps for a second, then 10 fps with a dropped frame: one frame per half second either way.
    seconds = np.r_[np.arange(36) / 36, 1 + np.delete(np.arange(20), 7) / 10]
    sampled, near = sample_frames(seconds, 0.5, np.zeros(len(seconds), bool), 1.0)
    assert seconds[sampled].tolist() == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert not near.any()


def test_every_frame_within_the_window_of_a_trigger_is_sampled():
    seconds = np.arange(100) / 10  # 10 s at 10 fps
    triggers = np.zeros(100, bool)
    triggers[50] = True
    sampled, near = sample_frames(seconds, 2.0, triggers, 1.0)
    assert np.flatnonzero(near).tolist() == list(range(40, 61))
    assert np.flatnonzero(sampled).tolist() == [0, 20, *range(40, 61), 80]


def test_hard_braking_and_autopilot_disengaging_are_triggers():
    seconds = np.arange(30) / 10
    speed = [15.0] * 10 + [15.0 - 0.5 * k for k in range(1, 11)] + [10.0] * 10  # -5 m/s^2 for a second
    brake = [False] * 10 + [True] * 10 + [False] * 10
    autopilot = ["AUTOSTEER"] * 25 + ["NONE"] * 5
    triggers = telemetry_triggers(seconds, speed, brake, autopilot, hard_brake_mps2=3.0)
    # The last braking frame is already slowing less (central differences): 2.5 m/s^2.
    assert set(np.flatnonzero(triggers)) == set(range(10, 19)) | {25}
    # A gentle stop with the brake on is not hard braking; no telemetry at all gives no triggers.
    gentle = [15.0 - 0.05 * k for k in range(30)]
    assert not telemetry_triggers(seconds, gentle, [True] * 30, [None] * 30, 3.0).any()
    assert not telemetry_triggers(seconds, [None] * 30, [None] * 30, [None] * 30, 3.0).any()
