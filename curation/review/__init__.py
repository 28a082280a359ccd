"""The labelers review app (FastAPI + plain HTML/JS): per-region tokens, redacted media only."""
