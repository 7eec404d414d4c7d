"""Ingest: move whatever the sources have that the warehouse lacks into one committed raw batch."""
