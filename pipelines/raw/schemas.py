"""The raw tables and their Arrow schemas: what every batch file of a table holds."""

from __future__ import annotations

import pyarrow as pa

UTC_TS = pa.timestamp("us", tz="UTC")

RUNS = "wandb_runs"
HISTORY = "wandb_history"
HISTORY_OTHER = "wandb_history_other"
RESTATED = "wandb_restated_steps"
EVENTS = "axiom_events"
REJECTS = "axiom_rejects"

SCHEMAS: dict[str, pa.Schema] = {
    # One row per run *version*: a new row is appended only when a run's
    # metadata changed (state, summary, config...); staging keeps the latest.
    RUNS: pa.schema(
        [
            ("run_id", pa.string()),
            ("run_name", pa.string()),
            ("project", pa.string()),
            ("entity", pa.string()),
            ("run_group", pa.string()),
            ("job_type", pa.string()),
            ("sweep_id", pa.string()),
            ("tags", pa.list_(pa.string())),
            ("notes", pa.string()),
            ("host", pa.string()),
            ("config_json", pa.string()),
            ("summary_json", pa.string()),
            ("state", pa.string()),
            ("exit_code", pa.int32()),
            ("started_at", UTC_TS),
            ("runtime_s", pa.float64()),
            ("last_step", pa.int64()),
            ("source", pa.string()),
            # define_metric's x-axes: [{metric (name or glob), step_metric}]. Added after
            # the first release: readers of this table use union_by_name.
            ("step_metrics", pa.list_(pa.struct([("metric", pa.string()), ("step_metric", pa.string())]))),
            ("fingerprint", pa.string()),
            ("batch_id", pa.string()),
            ("ingested_at", UTC_TS),
        ]
    ),
    # Long form: one row per run, step and numeric metric. NaN/±Inf are kept.
    HISTORY: pa.schema(
        [
            ("run_id", pa.string()),
            ("step", pa.int64()),
            ("wall_time", UTC_TS),
            ("key", pa.string()),
            ("value", pa.float64()),
            ("batch_id", pa.string()),
        ]
    ),
    # Non-numeric history values (strings, booleans, lists, media refs), as JSON.
    HISTORY_OTHER: pa.schema(
        [
            ("run_id", pa.string()),
            ("step", pa.int64()),
            ("wall_time", UTC_TS),
            ("key", pa.string()),
            ("value_json", pa.string()),
            ("batch_id", pa.string()),
        ]
    ),
    # Steps of a resumed run that a later segment logged again after an earlier
    # segment's values were stored: the history rows of this batch replace the
    # stored rows of those steps (staging leaves out rows of older batches).
    RESTATED: pa.schema(
        [
            ("run_id", pa.string()),
            ("step", pa.int64()),
            ("batch_id", pa.string()),
        ]
    ),
    # One row per event, with every original field kept in `record` (JSON text).
    EVENTS: pa.schema(
        [
            ("time", UTC_TS),
            ("record", pa.string()),
            ("source", pa.string()),
            ("line", pa.int64()),
            ("event_key", pa.string()),
            ("batch_id", pa.string()),
        ]
    ),
    # Lines that could not be loaded, with the reason and the raw text.
    REJECTS: pa.schema(
        [
            ("source", pa.string()),
            ("line", pa.int64()),
            ("reason", pa.string()),
            ("raw", pa.string()),
            ("batch_id", pa.string()),
        ]
    ),
}
