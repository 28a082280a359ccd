"""What every stage script shares: params, the region's store, metrics files."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from curation.errors import PolicyError
from curation.policy.caches import refuse_foreign_cache
from curation.policy.params import Params, load_params
from curation.storage.store import RegionStore


def stage_store(region: str, params_path: str = "params.yaml") -> tuple[Params, RegionStore]:
    params = load_params(params_path)
    if os.environ.get("DVC_STAGE"):  # DVC caches what this stage writes: only in the region's own store
        try:
            refuse_foreign_cache(params, region, os.environ.get("DVC_ROOT", "."))
        except PolicyError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(error.exit_code)
    return params, RegionStore(params, region, actor=f"dvc:{os.environ.get('USER', 'pipeline')}")


def store_key(store: RegionStore, argument: str) -> str:
    """A path from dvc.yaml (relative to the repository, or a URL) as a key of the region's store.

    Refuses, like every store access, a path outside the region."""
    target = argument if "://" in argument else os.path.abspath(argument)
    return store.key(store.path(target, "access"))


def run_region_stage(stage, engine: bool = False) -> None:
    """`python -m pipelines.<stage> REGION METRICS_JSON [--workers N|auto]`: run ``stage(store, params)``,
    print and write its metrics. ``engine``: the stage maps its clips over params.engine, and
    ``--workers`` overrides how many workers (the same results with any number: not a DVC param)."""
    import argparse

    parser = argparse.ArgumentParser(description="A region stage of dvc.yaml.")
    parser.add_argument("region")
    parser.add_argument("metrics")
    if engine:
        parser.add_argument("--workers", default=None, help="local workers: auto (one per core, the default) or a number; 1 runs in process")
    args = parser.parse_args()
    params, store = stage_store(args.region)
    if engine and args.workers:
        workers = args.workers if args.workers == "auto" else int(args.workers)
        document = stage(store, params, engine=params.engine.model_copy(update={"workers": workers}))
    else:
        document = stage(store, params)
    print(json.dumps(document, indent=1))
    write_metrics(args.metrics, document)


def write_metrics(path: str, document) -> None:
    """Metrics are the one thing that may leave a region: aggregates only, by construction."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
