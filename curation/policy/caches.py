"""Where DVC keeps a region's bytes: its cache, and DVC's own state, inside the region's store.

DVC has one cache per process (``cache.dir``), so one ``dvc repro`` of every region would copy
cn's, eu's and us's outputs into one folder. Each region's DVC commands therefore run with that
region's cache: ``curation dvc --region R ARGS`` runs ``dvc ARGS`` with DVC's global config level
pointed at ``<store>/dvc/config`` (``DVC_GLOBAL_CONFIG_DIR``), which says ``cache.dir =
<store>/dvc/cache`` and ``core.site_cache_dir = <store>/dvc/site`` (DVC's state and index: paths
and hashes of the region's files). The repository's own config (``.dvc/config``, ``.dvc/config.local``)
must not set ``cache.dir``: it would win over the region's, for every region.

Three rules, checked by ``curation policy check`` (:func:`cache_violations`) and, for the one that
a command can break at run time, by every stage before it writes (:func:`refuse_foreign_cache`):

* a region's outputs are cached in its own store (no ``cache.dir`` in the repository's config);
* ``cache.type`` is reflink or copy: the store guard refuses files with two names (hardlink) and
  links (symlink), so a store whose outs were linked to the cache could no longer be read;
* the repository's default cache ``.dvc/cache`` holds no objects (a plain ``dvc pull`` or
  ``dvc repro`` put region outputs there, outside every store).

Example:
    >>> env = dvc_environment(RegionStore(params, "cn"))   # doctest: +SKIP
    >>> subprocess.run(["dvc", "repro", "export@cn"], env={**os.environ, **env})   # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

from curation.errors import PolicyError
from curation.policy.params import Params, store_holding

__all__ = ["CACHE", "SITE", "cache_violations", "dvc_environment", "refuse_foreign_cache", "region_cache"]

FOLDER = "dvc"  # store key of the region's DVC folder: config, cache/, site/
CACHE, SITE = f"{FOLDER}/cache", f"{FOLDER}/site"
LINKS_ALLOWED = ("reflink", "copy")


def region_cache(params: Params, region: str) -> Path:
    """The one folder where DVC may cache region ``region``'s outputs."""
    return Path(params.region(region).store, CACHE)


def dvc_environment(store) -> dict[str, str]:
    """Environment for DVC commands of the store's region: writes ``<store>/dvc/config``, returns the variables.

    A region's DVC commands read this file in place of your global DVC config (~/.config/dvc):
    put other settings in the repository's ``.dvc/config.local``."""
    if not store.local:
        raise PolicyError(f"regions.{store.region}.store: {store.root}: DVC caches on a local folder; run the region's pipeline on a "
                          "local store on its machines (README: S3 deployment)")
    root = Path(store.root)
    store.write_text(f"{FOLDER}/config", "# Written by `curation dvc`: this region's DVC cache and state stay in its store.\n"
                                         f"[cache]\n    dir = {root / CACHE}\n[core]\n    site_cache_dir = {root / SITE}\n")
    return {"DVC_GLOBAL_CONFIG_DIR": str(root / FOLDER)}


def _levels(repo: Path) -> dict[str, dict]:
    """DVC config as each level of this repository sees it now (system and global follow the environment)."""
    from dvc.config import Config

    config = Config(dvc_dir=str(repo / ".dvc"), validate=False)
    return {level: config.load_one(level) for level in ("system", "global", "repo", "local") if level in config.files}


def _active_cache(levels: dict[str, dict], repo: Path) -> tuple[Path, str]:
    """(cache folder DVC would use, the level that set it)."""
    where = (repo / ".dvc" / "cache", "the default")
    for level in ("system", "global", "repo", "local"):
        folder = levels.get(level, {}).get("cache", {}).get("dir")
        if folder:
            where = (Path(str(folder)), {"repo": ".dvc/config", "local": ".dvc/config.local"}.get(level, f"the {level} DVC config"))
    return where


def refuse_foreign_cache(params: Params, region: str, repo: str | Path) -> None:
    """Stop a stage that DVC runs with a cache outside the stage's region's store (before it writes)."""
    repo = Path(repo)
    cache, origin = _active_cache(_levels(repo), repo)
    if os.path.realpath(cache) != os.path.realpath(region_cache(params, region)):
        raise PolicyError(f"region {region}: DVC would cache this stage's outputs in {cache} ({origin}), not in the region's store "
                          f"({region_cache(params, region)}); run `curation dvc --region {region} repro ...` (README: Caches in their region)")


def cache_violations(params: Params, repo: str | Path, cached: set[str]) -> list[tuple[str, str]]:
    """(path, problem) for each way the outputs of the regions in ``cached`` (those with outs DVC caches)
    would be cached outside their stores, or could not be read through the guard."""
    repo = Path(repo)
    levels = _levels(repo)
    problems = []
    for level in ("repo", "local"):
        folder = levels.get(level, {}).get("cache", {}).get("dir")
        if not folder:
            continue
        holder = store_holding(params, folder)
        for region in sorted(cached):
            if holder != region:
                inside = f"region {holder}'s store" if holder else "no region's store"
                problems.append((f".dvc/{'config' if level == 'repo' else 'config.local'}",
                                 f"cache.dir {folder} would cache region {region}'s outputs in {inside}; remove it: "
                                 f"`curation dvc --region {region}` caches them in {region_cache(params, region)}"))
    for level, config in levels.items():
        kinds = config.get("cache", {}).get("type") or []
        kinds = [k.strip() for k in (kinds.split(",") if isinstance(kinds, str) else kinds)]
        if any(k not in LINKS_ALLOWED for k in kinds):
            problems.append((f"cache.type ({level} DVC config)", f"{','.join(kinds)}: the store guard refuses files with two names "
                                                                  f"and links; use {','.join(LINKS_ALLOWED)}"))
    default = repo / ".dvc" / "cache"
    found = sum(1 for p in default.rglob("*") if p.is_file()) if default.is_dir() else 0
    if found:
        problems.append((".dvc/cache", f"{found} files outside every store (a plain `dvc` command cached region outputs there); "
                                       "delete the folder and run each region with `curation dvc --region R`"))
    return problems
