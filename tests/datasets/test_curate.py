"""Curation rules: grouped splits, class balance, near-duplicates through LanceDB's vector search, scenario queries."""

import numpy as np
import pandas as pd
import pytest

from builders import make_store
from curation.datasets.curate import _matches, balance, group_splits, near_duplicates
from curation.errors import PolicyError
from curation.storage.catalog import Catalog
from curation.storage.records import EMBEDDING_DIM, FrameEmbedding, to_table


def test_splits_never_share_a_vehicle_an_event_or_a_linked_cell():
    rng = np.random.default_rng(0)
    vehicles = [f"v{k}" for k in range(12)]
    keys, owner = [], []
    for _ in range(600):
        v = str(rng.choice(vehicles))
        event = f"{v}-e{rng.integers(0, 3)}"
        frame_keys = [f"vehicle:{v}", f"event:{event}"]
        if v in ("v1", "v2"):  # both drive through the same map cell: they must land together
            frame_keys.append("cell:7:9")
        keys.append(frame_keys)
        owner.append((v, event))
    groups, splits = group_splits(keys, np.ones(len(keys)), {"train": 0.7, "val": 0.15, "test": 0.15}, seed=0)
    table = pd.DataFrame({"vehicle": [o[0] for o in owner], "event": [o[1] for o in owner], "split": splits})
    assert (table.groupby("vehicle").split.nunique() == 1).all()
    assert (table.groupby("event").split.nunique() == 1).all()
    assert table[table.vehicle == "v1"].split.iloc[0] == table[table.vehicle == "v2"].split.iloc[0]
    shares = table.split.value_counts(normalize=True)
    assert set(shares.index) == {"train", "val", "test"} and abs(shares["train"] - 0.7) < 0.15


def test_splits_depend_on_content_names_not_on_pseudonyms():
    """Another pseudonym key gives other vehicle and event ids; named by clip ids, the splits stay."""
    rng = np.random.default_rng(1)
    owners = [(int(rng.integers(0, 8)), int(rng.integers(0, 2))) for _ in range(200)]
    clips = [f"{hash((v, e)) % 10**6:06d}-{v}-{e}" for v, e in owners]  # one clip per (vehicle, event), content-named

    def splits(key: str):
        keys = [[f"vehicle:{key}{v}", f"event:{key}{v}-{e}"] for v, e in owners]
        return group_splits(keys, np.ones(len(keys)), {"train": 0.7, "val": 0.15, "test": 0.15}, seed=0, names=clips)[1].tolist()

    assert splits("key-one-") == splits("other-key-") and len(set(splits("key-one-"))) == 3


def test_balance_moves_the_class_shares_toward_the_target():
    rng = np.random.default_rng(1)
    counts = np.concatenate([rng.poisson([6, 1, 0.2], (300, 3)), rng.poisson([1, 1, 3], (60, 3))]).astype(float)
    target = np.array([0.4, 0.3, 0.3])
    chosen = balance(counts, target, 100)
    assert len(chosen) == len(set(chosen)) == 100
    naive = counts[:100].sum(0) / counts[:100].sum()
    balanced = counts[chosen].sum(0) / counts[chosen].sum()
    assert np.abs(balanced - target).sum() < 0.5 * np.abs(naive - target).sum()


def test_near_duplicates_are_found_through_the_catalog_vector_search(tmp_path):
    catalog = Catalog(make_store(tmp_path))
    rng = np.random.default_rng(2)
    base = rng.normal(size=(5, EMBEDDING_DIM)).astype(np.float32)
    vectors = [base[0], base[0] + 0.01 * rng.normal(size=EMBEDDING_DIM), base[1], base[2], base[2] * 1.5, base[3]]
    rows = [FrameEmbedding("clip", i, tuple((v / np.linalg.norm(v)).tolist())) for i, v in enumerate(vectors)]
    catalog.table("frame_embeddings").add(to_table(FrameEmbedding, rows))
    table = pd.DataFrame({"clip_id": ["clip"] * 6, "index": range(6)})
    drop = near_duplicates(catalog, table, distance=0.02)
    assert drop.tolist() == [False, True, False, False, True, False]
    assert not near_duplicates(catalog, table, distance=0.0).any()


def test_scenario_queries_select_frames_and_a_broken_query_names_itself():
    table = pd.DataFrame({"red_lights": [0, 2, 1], "speed_mps": [20.0, 15.0, 3.0], "night": [False, True, True]})
    assert _matches(table, "red", "red_lights > 0 and speed_mps > 10").tolist() == [False, True, False]
    assert _matches(table, "all", "True").tolist() == [True, True, True]
    with pytest.raises(PolicyError, match="curate.scenarios.typo.where: 'red_light > 0'"):
        _matches(table, "typo", "red_light > 0")
