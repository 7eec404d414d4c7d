#!/usr/bin/env bash
# Lint the dbt SQL (models and macros) with sqlfluff: rules and why in .sqlfluff
# (DuckDB dialect, dbt templater). The dbt templater compiles the project and
# some macros query the build database while compiling (restated steps, the
# incremental watermarks), so dbt gets an empty warehouse in a temporary folder,
# laid out as an ingest lays it (raw tables with their empty schema files),
# never the real one.
# Usage: scripts/lint_sql.sh [sqlfluff lint arguments]   (default: models macros)
set -euo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export GRPO_WAREHOUSE="$tmp/warehouse"
uv run --frozen python -c 'import os, pathlib; from pipelines.raw.layer import Warehouse; Warehouse(pathlib.Path(os.environ["GRPO_WAREHOUSE"])).ensure()'

if [ "$#" -eq 0 ]; then
  set -- models macros
fi
uv run --frozen sqlfluff lint "$@"
