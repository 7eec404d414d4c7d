"""The raw layer: append-only parquet batches under `raw/`, committed atomically (see warehouse/README.md)."""
