-- A view over the raw parquet: the history is the largest table, and every
-- mart that reads it filters or aggregates, so copying it would only cost.
-- Ingest stores a (run, step, key) once by construction (only steps after
-- the stored ones are taken, and uncommitted batches are cleaned up), so no
-- dedupe pass runs here; the grain test below guards that promise.
with

source as (

    select * from {{ source('wandb', 'wandb_history') }}

),

final as (

    select
        run_id,
        step,
        wall_time,
        key as metric_key,
        cast(value as double) as value,
        -- NaN, ±Inf and missing values are kept but flagged: DuckDB aggregates
        -- propagate NaN, so every statistic downstream filters on this.
        coalesce(isfinite(value), false) as is_finite,
        batch_id

    from source

)

select * from final
