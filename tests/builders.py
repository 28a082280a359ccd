"""Small builders shared by the tests: a project's params in a temporary folder, stores, ..."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from curation.policy.params import load_params
from curation.storage.store import RegionStore

REPO = Path(__file__).resolve().parents[1]
REPO_PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


def params_document(tmp_path: Path, regions=("cn", "eu", "us")) -> dict:
    """The repository's params with every store moved under tmp_path and file paths made absolute."""
    document = copy.deepcopy(REPO_PARAMS)
    document["regions"] = {name: document["regions"][name] for name in regions}
    for name, region in document["regions"].items():
        region["store"] = str(tmp_path / "data" / name)
        region["boundary"] = str(REPO / region["boundary"])
        region["restricted_zones"]["file"] = str(REPO / region["restricted_zones"]["file"])
    return document


def make_params(tmp_path: Path, document: dict | None = None, regions=("cn", "eu", "us")) -> Path:
    """Write a params.yaml under tmp_path and return its path."""
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(document if document is not None else params_document(tmp_path, regions)))
    return path


def make_store(tmp_path: Path, region: str = "cn", actor: str = "test") -> RegionStore:
    params = load_params(make_params(tmp_path)) if not (tmp_path / "params.yaml").exists() else load_params(tmp_path / "params.yaml")
    return RegionStore(params, region, actor=actor)


def make_fleet(tmp_path: Path, region: str = "cn", out: Path | None = None, **overrides) -> tuple[Path, dict]:
    """A small simulated upload (tiny frames, short clips) written to the region's landing zone."""
    from curation.sources.simulator import simulate_fleet

    params = load_params(tmp_path / "params.yaml") if (tmp_path / "params.yaml").exists() else load_params(make_params(tmp_path))
    rates = overrides.pop("rates", {})
    config = params.simulate.model_validate({**params.simulate.model_dump(), "vehicles": 2, "events": 2, "seconds": 2.0,
                                             "width": 320, "height": 180, "fps": 10, "rates": rates, **overrides})
    out = out or Path(params.regions[region].store) / "landing"
    return out, simulate_fleet(out, params, region, config, progress=False)


def file_hashes(folder: Path) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}
