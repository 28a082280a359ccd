import os

os.environ.setdefault("CURATION_ACTOR", "pytest")
