{{ incremental_by_key('hour_at', inputs=['stg_axiom__events', 'stg_wandb__runs'], reset_on_settings_change=true) }}
-- depends_on: {{ ref('stg_axiom__events') }}
-- depends_on: {{ ref('fct_event_run_labels') }}
-- depends_on: {{ ref('stg_wandb__runs') }}
-- Events join their run by run id, else by a unique run name (fct_event_run_labels);
-- a change of that mapping recomputes every row (the pre-hook clears the table).
-- Incremental (macros/incremental.sql): a build recomputes, from all their
-- events, only the hours that rollouts of new raw batches fall in (late
-- events included) and the stored hours of runs with a new W&B run version
-- (its name may have changed).
with

events {{ cte_not_materialized() }} (

    -- run_id: the run the event's label joins (by id, else unique name), else the label
    {{ events_with_run_key(ref('stg_axiom__events')) }}

),

runs as (

    select * from {{ ref('stg_wandb__runs') }}

),
{% if is_incremental() %}
affected_hours as (

    {{ incremental_new_keys('events', 'hour_at', "event_kind = 'rollout'") }}
    union
    select hour_at
    from {{ this }}
    where run_id in ({{ incremental_runs_changed(incremental_since()) }})

),
{% endif %}

rollouts {{ cte_not_materialized() }} (

    select
        hour_at,
        run_id,
        is_failed
    from events
    where event_kind = 'rollout'
      and hour_at is not null
      and run_id is not null
    {% if is_incremental() %}
      and hour_at in (select hour_at from affected_hours)
    {% endif %}

),

per_hour_and_run as (

    select
        hour_at,
        run_id,
        count(*) as n_rollouts,
        count(*) filter (where is_failed) as n_failed

    from rollouts
    group by hour_at, run_id

),

final as (

    select
        per_hour_and_run.hour_at,
        per_hour_and_run.run_id,
        runs.run_name,
        per_hour_and_run.n_rollouts,
        per_hour_and_run.n_failed,
        per_hour_and_run.n_failed / per_hour_and_run.n_rollouts as error_rate

    from per_hour_and_run
    left join runs
        on per_hour_and_run.run_id = runs.run_id

)

select * from final
