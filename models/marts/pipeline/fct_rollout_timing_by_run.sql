{{ incremental_by_key('run_id', inputs=['stg_axiom__events', 'stg_wandb__runs'], reset_on_settings_change=true) }}
-- depends_on: {{ ref('stg_axiom__events') }}
-- depends_on: {{ ref('fct_event_run_labels') }}
-- depends_on: {{ ref('stg_wandb__runs') }}
-- Events join their run by run id, else by a unique run name (fct_event_run_labels);
-- a change of that mapping recomputes every row (the pre-hook clears the table).
-- Incremental (macros/incremental.sql): a build recomputes, from all their
-- events, only the runs that got rollout events in new raw batches or a new
-- W&B run version (its name may have changed).
-- Same quantile definition as fct_rollout_timing_hourly, per run instead of
-- per hour. Rollouts that name no run cannot be attributed and are left out
-- here (they still count in the hourly marts).
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

    {{ incremental_affected_runs('events', where="event_kind in ('rollout')") }}

),
{% endif %}

rollouts {{ cte_not_materialized() }} (

    select
        run_id,
        event_at,
        duration_s,
        is_failed
    from events
    where event_kind = 'rollout'
      and run_id is not null
    {% if is_incremental() %}
      and run_id in (select run_id from affected_runs)
    {% endif %}

),

per_run as (

    select
        run_id,
        count(*) as n_rollouts,
        count(*) filter (where is_failed) as n_failed,
        count(duration_s) as n_timed,
        -- one aggregate state for the three quantiles (three calls keep three
        -- copies of every duration: twice the memory and time at full scale)
        {{ quantile_exact('duration_s', [0.5, 0.95, 0.99]) }} as quantiles_s,
        max(duration_s) as max_s,
        min(event_at) as first_at,
        max(event_at) as last_at

    from rollouts
    group by run_id

),

final as (

    select
        per_run.run_id,
        runs.run_name,
        per_run.n_rollouts,
        per_run.n_failed,
        per_run.n_timed,
        {{ list_at('per_run.quantiles_s', 1) }} as p50_s,
        {{ list_at('per_run.quantiles_s', 2) }} as p95_s,
        {{ list_at('per_run.quantiles_s', 3) }} as p99_s,
        per_run.max_s,
        per_run.first_at,
        per_run.last_at

    from per_run
    left join runs
        on per_run.run_id = runs.run_id

)

select * from final
