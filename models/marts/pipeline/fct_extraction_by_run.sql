{{ incremental_by_key('run_id', inputs=['stg_axiom__events', 'stg_wandb__runs'], reset_on_settings_change=true) }}
-- depends_on: {{ ref('stg_axiom__events') }}
-- depends_on: {{ ref('fct_event_run_labels') }}
-- depends_on: {{ ref('stg_wandb__runs') }}
-- Events join their run by run id, else by a unique run name (fct_event_run_labels);
-- a change of that mapping recomputes every row (the pre-hook clears the table).
-- Incremental (macros/incremental.sql): a build recomputes, from all their
-- events, only the runs that got extraction events in new raw batches or a new
-- W&B run version (its name may have changed).
-- Pooled rate per run, as in fct_extraction_hourly; extraction events that
-- name no run are left out here (they still count in the hourly mart).
with

events {{ cte_not_materialized() }} (

    -- run_id: the run the event's label joins (by id, else unique name), else the label
    {{ events_with_run_key(ref('stg_axiom__events')) }}

),

runs as (

    select * from {{ ref('stg_wandb__runs') }}

),
{% if is_incremental() %}
affected_runs as (

    {{ incremental_affected_runs('events', where="event_kind in ('extraction')") }}

),
{% endif %}

extractions as (

    select
        run_id,
        event_at,
        orders_expected,
        orders_extracted
    from events
    where event_kind = 'extraction'
      and run_id is not null
    {% if is_incremental() %}
      and run_id in (select run_id from affected_runs)
    {% endif %}

),

per_run as (

    select
        run_id,
        count(*) as n_events,
        coalesce(sum(orders_expected), 0) as orders_expected,
        coalesce(sum(orders_extracted), 0) as orders_extracted,
        sum(orders_extracted) / nullif(sum(orders_expected), 0) as extraction_rate,
        min(event_at) as first_at,
        max(event_at) as last_at

    from extractions
    group by run_id

),

final as (

    select
        per_run.run_id,
        runs.run_name,
        per_run.n_events,
        per_run.orders_expected,
        per_run.orders_extracted,
        per_run.extraction_rate,
        per_run.first_at,
        per_run.last_at

    from per_run
    left join runs
        on per_run.run_id = runs.run_id

)

select * from final
