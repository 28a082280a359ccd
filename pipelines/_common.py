"""What every stage script shares: params, the region's store, metrics files."""

from __future__ import annotations

import json
import os
from pathlib import Path

from curation.policy.params import Params, load_params
from curation.storage.store import RegionStore


def stage_store(region: str, params_path: str = "params.yaml") -> tuple[Params, RegionStore]:
    params = load_params(params_path)
    return params, RegionStore(params, region, actor=f"dvc:{os.environ.get('USER', 'pipeline')}")


def store_key(store: RegionStore, argument: str) -> str:
    """A path from dvc.yaml (relative to the repository, or a URL) as a key of the region's store.

    Refuses, like every store access, a path outside the region."""
    target = argument if "://" in argument else os.path.abspath(argument)
    return store.key(store.path(target, "access"))


def write_metrics(path: str, document: dict) -> None:
    """Metrics are the one thing that may leave a region: aggregates only, by construction."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
