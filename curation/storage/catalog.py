"""The region's catalog: LanceDB tables under ``<store>/catalog``, opened through RegionStore.

Each table is its own folder (``catalog/<name>.lance``), so each DVC stage can own the tables it
writes as separate outs.

Example:
    >>> catalog = Catalog(store)                        # doctest: +SKIP
    >>> catalog.table("clips").count_rows()             # doctest: +SKIP
"""

from __future__ import annotations

from datetime import timedelta

import lancedb
import pyarrow as pa

from curation.storage.records import (Arrival, Clip, CuratedFrame, Deletion, Detection, Frame, FrameEmbedding, LabeledClip, LaneLine,
                                      RedactedClip, Redaction, Review, Track, schema_of)
from curation.storage.store import RegionStore

__all__ = ["Catalog", "TABLES"]

TABLES = {"clips": Clip, "frames": Frame, "arrivals": Arrival, "redactions": Redaction, "redacted_clips": RedactedClip,
          "detections": Detection, "tracks": Track, "lane_lines": LaneLine, "labeled_clips": LabeledClip,
          "frame_embeddings": FrameEmbedding, "reviews": Review, "curated": CuratedFrame, "deletions": Deletion}


class Catalog:
    def __init__(self, store: RegionStore, folder: str = "catalog"):
        self.store = store
        # Every read sees the latest commit: the review server and the pipeline write the same tables.
        self.db = lancedb.connect(store.uri(folder), storage_options=store.storage_options() or None,
                                  read_consistency_interval=timedelta(0))
        self._tables = {}

    def table(self, name: str):
        """Open a table, creating it empty (with the record's schema) on first use."""
        if name not in self._tables:
            self._tables[name] = self.db.create_table(name, schema=schema_of(TABLES[name]), exist_ok=True)
        return self._tables[name]

    def read(self, name: str, columns: list[str] | None = None, where: str | None = None) -> pa.Table:
        query = self.table(name).search()
        if where:
            query = query.where(where)
        if columns:
            query = query.select(columns)
        return query.limit(None).to_arrow()

    def count(self, name: str, where: str | None = None) -> int:
        return self.table(name).count_rows(where) if where else self.table(name).count_rows()
