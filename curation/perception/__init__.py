"""Detectors and tracking. The only package that touches onnxruntime and ultralytics."""
