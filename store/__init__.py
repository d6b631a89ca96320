"""The dataset store: Hugging Face dataset-repository layout, append-only parquet shards, version records, crash-safe journal."""
from store.store import (COLUMNS, SCHEMA, SPLITS, DatasetStore, StoreError, VersionWriter, check_shard, now_iso,
                         read_shard, reject_category, schema_with)

__all__ = ["COLUMNS", "SCHEMA", "SPLITS", "DatasetStore", "StoreError", "VersionWriter", "check_shard", "now_iso",
           "read_shard", "reject_category", "schema_with"]
