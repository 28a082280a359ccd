"""Video in and out through PyAV: encode with per-frame SEI, probe without decoding, decode frames."""
