"""Choose a region's training frames: scenarios with quotas, near-duplicates out, classes balanced,
splits that never share a vehicle or an event.

1. Frame table (curation/datasets/frames.py): labeled frames of verified clips, after review.
2. Near-duplicates: in clip order, a frame whose pooled detector features lie within
   ``near_duplicate_distance`` (cosine) of a frame already kept is dropped; the neighbours come
   from the ``frame_embeddings`` table's vector search (IVF index once the table is large).
3. Scenarios: each frame goes to the first scenario whose query it matches, up to its quota.
4. Balance: while more than ``max_frames`` remain, keep the frames that move the box share of each
   class toward ``balance`` (greedy).
5. Splits: frames that share a vehicle or an event (or, optionally, a map cell) form one group
   (union-find); groups go to the split furthest below its share.

Example:
    >>> metrics = curate_region(RegionStore(params, "cn"), params)   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from curation.datasets.frames import frame_table
from curation.errors import PolicyError
from curation.storage.catalog import Catalog
from curation.storage.records import CuratedFrame, to_table
from curation.storage.store import RegionStore

__all__ = ["curate_region", "near_duplicates", "balance", "group_splits"]

KM_PER_DEG = 111.32


def near_duplicates(catalog: Catalog, table: pd.DataFrame, distance: float, neighbours: int = 8) -> np.ndarray:
    """Mask of frames to drop: closer than ``distance`` (cosine) to an earlier frame that was kept.

    Neighbours come from the catalog's exact vector search; their distances are recomputed here in
    float64 and clipped at 0, so the decision never rests on the search's float rounding: a distance
    of 0 drops nothing (not even exact copies), and the same frames give the same answer anywhere."""
    drop = np.zeros(len(table), bool)
    if distance <= 0 or not len(table):
        return drop
    embeddings = catalog.table("frame_embeddings")
    vectors = {(r["clip_id"], r["index"]): np.asarray(r["vector"], np.float64) for r in catalog.read("frame_embeddings").to_pylist()}
    kept: set[tuple[str, int]] = set()
    for position, key in enumerate(zip(table.clip_id, table["index"])):
        vector = vectors.get(key)
        if vector is None:
            kept.add(key)
            continue
        hits = embeddings.search(vector.astype(np.float32), vector_column_name="vector").distance_type("cosine") \
            .bypass_vector_index().limit(neighbours).select(["clip_id", "index"]).to_list()
        if any((h["clip_id"], h["index"]) in kept and _cosine_distance(vector, vectors[(h["clip_id"], h["index"])]) < distance for h in hits):
            drop[position] = True
        else:
            kept.add(key)
    return drop


def _cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    return max(0.0, 1.0 - float(a @ b) / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-300))


def balance(counts: np.ndarray, target: np.ndarray, keep: int) -> np.ndarray:
    """Indices of ``keep`` rows of per-frame class counts whose summed shares come closest to ``target`` (greedy)."""
    chosen, total = [], np.zeros(counts.shape[1])
    available = np.ones(len(counts), bool)
    for _ in range(min(keep, len(counts))):
        trial = total[None] + counts
        shares = trial / np.maximum(trial.sum(1, keepdims=True), 1)
        error = np.abs(shares - target[None]).sum(1) - 1e-6 * counts.sum(1)  # ties: the frame with more boxes
        error[~available] = np.inf
        best = int(np.argmin(error))
        chosen.append(best)
        available[best] = False
        total += counts[best]
    return np.array(sorted(chosen), int)


def group_splits(keys: list[list[str]], sizes: np.ndarray, shares: dict[str, float], seed: int,
                 names: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(group id, split name) per frame; frames sharing any key are in one group, groups in one split.

    A group is named by the smallest of its frames' ``names`` (default: their first key), and groups
    are dealt out by size, then by a seeded hash of that name: give content-derived names (clip ids)
    and the splits are the same wherever and with whatever pseudonym key the region runs."""
    parent: dict[str, str] = {}

    def find(k: str) -> str:
        while parent.setdefault(k, k) != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for frame_keys in keys:
        for other in frame_keys[1:]:
            parent[find(other)] = find(frame_keys[0])
    roots = [find(k[0]) for k in keys]
    label: dict[str, str] = {}
    for root, name in zip(roots, names if names is not None else [k[0] for k in keys]):
        label[root] = min(label.get(root, name), name)
    groups = np.array([label[r] for r in roots], object)
    order = sorted(set(groups), key=lambda g: (-sizes[groups == g].sum(), hashlib.sha256(f"{seed}:{g}".encode()).hexdigest()))
    total, filled = sizes.sum(), dict.fromkeys(shares, 0.0)
    split_of = {}
    for group in order:
        # The split furthest below its share takes the next-largest group (train first on ties).
        name = max(shares, key=lambda s: (shares[s] * total - filled[s], shares[s]))
        split_of[group] = name
        filled[name] += sizes[groups == group].sum()
    return groups, np.array([split_of[g] for g in groups], object)


def curate_region(store: RegionStore, params) -> dict:
    config, classes = params.curate, list(params.label.taxonomy)
    catalog = Catalog(store)
    table = frame_table(catalog, params, store.region)
    candidates = len(table)
    duplicate = near_duplicates(catalog, table, config.near_duplicate_distance) if len(table) else np.zeros(0, bool)
    table = table[~duplicate].reset_index(drop=True)
    table["scenario"] = None
    for name, scenario in config.scenarios.items():
        open_rows = table[table.scenario.isna()]
        matched = open_rows.index[_matches(open_rows, name, scenario.where)]
        table.loc[matched[: scenario.quota], "scenario"] = name
    table = table[table.scenario.notna()].reset_index(drop=True)
    before = table[classes].sum()
    if config.balance and len(table) > config.max_frames:
        target = np.array([config.balance.get(c, 0.0) for c in classes])
        table = table.iloc[balance(table[classes].to_numpy(float), target / max(target.sum(), 1e-9), config.max_frames)]
    else:
        table = table.head(config.max_frames)
    table = table.reset_index(drop=True)
    keys = [[f"vehicle:{v}", f"event:{e}"] + ([cell] if config.group_cell_km and (cell := _cell(la, lo, config.group_cell_km)) else [])
            for v, e, la, lo in zip(table.source_vehicle, table.event_id, table.lat, table.lon)]
    groups, splits = group_splits(keys, np.ones(len(table)), dict(config.splits), config.seed, list(table.clip_id)) if len(table) else ([], [])
    rows = [CuratedFrame(c, int(i), int(p), str(s), str(sc), hashlib.sha256(str(g).encode()).hexdigest()[:12])
            for c, i, p, s, sc, g in zip(table.clip_id, table["index"], table.pts, splits, table.scenario, groups)]
    catalog.table("curated").delete("true")
    if rows:
        catalog.table("curated").add(to_table(CuratedFrame, rows))
    store.audit.append(store.actor, "curate", "catalog/curated.lance", None, frames=len(rows))
    after = table[classes].sum()
    split_table = pd.DataFrame({"split": splits, "group": groups, "vehicle": table.source_vehicle, "event": table.event_id})
    return {"region": store.region, "candidates": candidates, "near_duplicates": int(duplicate.sum()), "selected": len(rows),
            "scenarios": {name: int((table.scenario == name).sum()) for name in config.scenarios},
            "boxes_before_balance": {c: int(before[c]) for c in classes}, "boxes": {c: int(after[c]) for c in classes},
            "splits": {s: {"frames": int((split_table.split == s).sum()),
                           "vehicles": int(split_table[split_table.split == s].vehicle.nunique()),
                           "events": int(split_table[split_table.split == s].event.nunique())} for s in config.splits}}


def _matches(table: pd.DataFrame, name: str, where: str) -> np.ndarray:
    """Boolean mask of a scenario's query (a constant like "True" selects all)."""
    if not len(table):
        return np.zeros(0, bool)
    try:
        result = table.eval(where, engine="python")
    except Exception as error:  # noqa: BLE001  (a user's query: say which one and why)
        raise PolicyError(f"params.yaml: curate.scenarios.{name}.where: {where!r}: {type(error).__name__}: {error}") from None
    return np.broadcast_to(np.asarray(result, bool), (len(table),))


def _cell(lat, lon, km: float) -> str | None:
    if lat is None or lon is None or np.isnan(lat) or np.isnan(lon):
        return None  # no position: grouped by vehicle and event only
    step = km / KM_PER_DEG
    return f"cell:{int(np.floor(lat / step))}:{int(np.floor(lon / (step / max(np.cos(np.radians(lat)), 1e-6))))}"
