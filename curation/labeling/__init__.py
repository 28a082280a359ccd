"""Auto-labeling in region: sample frames, detect, track, lanes, score (label@R)."""
