"""The analyst's questions, answered from the published snapshot: plain dicts in the documented `--json`
shapes, which the CLI only formats. Nothing here imports Dagster or dbt: this is the CLI's fast path."""
