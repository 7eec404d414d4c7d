{{ incremental_by_key('run_id', inputs=['stg_wandb__history', 'stg_wandb__runs']) }}
-- depends_on: {{ ref('stg_wandb__history') }}
-- depends_on: {{ ref('stg_wandb__runs') }}
-- Incremental (macros/incremental.sql): a build recomputes, from all their
-- history, only the runs with history in new raw batches or a new W&B run
-- version (its name may have changed).
with

{% if is_incremental() %}
affected_runs as (

    {{ incremental_affected_runs(ref('stg_wandb__history')) }}

),
{% endif %}

history {{ cte_not_materialized() }} (

    select * from {{ ref('stg_wandb__history') }}
    {% if is_incremental() %}
    where run_id in (select run_id from affected_runs)
    {% endif %}

),

runs as (

    select * from {{ ref('stg_wandb__runs') }}

),

summaries as (

    select
        run_id,
        metric_key,
        count(*) as n_values,
        count(*) filter (where not is_finite) as non_finite,
        -- statistics over finite values only: DuckDB aggregates propagate NaN
        min(step) filter (where is_finite) as first_step,
        max(step) filter (where is_finite) as last_step,
        {{ value_at_min('value', 'step') }} filter (where is_finite) as first_value,
        {{ value_at_max('value', 'step') }} filter (where is_finite) as last_value,
        min(value) filter (where is_finite) as min_value,
        max(value) filter (where is_finite) as max_value,
        avg(value) filter (where is_finite) as mean_value

    from history
    group by run_id, metric_key

),

final as (

    select
        summaries.run_id,
        runs.run_name,
        summaries.metric_key,
        summaries.n_values,
        summaries.non_finite,
        summaries.first_step,
        summaries.last_step,
        summaries.first_value,
        summaries.last_value,
        summaries.min_value,
        summaries.max_value,
        summaries.mean_value

    from summaries
    left join runs
        on summaries.run_id = runs.run_id

)

select * from final
