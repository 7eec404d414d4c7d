-- A view over the raw parquet: the history is the largest table, and every
-- mart that reads it filters or aggregates, so copying it would only cost.
-- Ingest stores a (run, step, key) once by construction (only steps after
-- the stored ones are taken, and uncommitted batches are cleaned up), so no
-- dedupe pass runs here; the grain test below guards that promise. The one
-- exception, a resumed run's newer segment logging stored steps again, is
-- recorded by step and the older rows are left out (restated_steps_filter).
with

source as (

    select history.* from {{ source('wandb', 'wandb_history') }} as history
    {{ restated_steps_filter('history') }}

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
        coalesce({{ is_finite('value') }}, false) as is_finite,
        batch_id

    from source

)

select * from final
