{{ incremental_by_key('run_id', inputs=['stg_axiom__events', 'stg_wandb__runs'], reset_on_settings_change=true) }}
-- depends_on: {{ ref('stg_axiom__events') }}
-- depends_on: {{ ref('fct_event_run_labels') }}
-- depends_on: {{ ref('stg_wandb__runs') }}
-- Events join their run by run id, else by a unique run name (fct_event_run_labels);
-- a change of that mapping recomputes every row (the pre-hook clears the table).
-- Incremental (macros/incremental.sql): a build recomputes, from all their
-- events, only the runs that got rollout or error events in new raw batches or a new
-- W&B run version (its name may have changed).
-- A run appears when it has rollouts or error events; error_rate is null for
-- a run with error events but no rollouts (nothing to divide by).
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

    {{ incremental_affected_runs('events', where="event_kind in ('rollout', 'error')") }}

),
{% endif %}

rollout_counts as (

    select
        run_id,
        count(*) as n_rollouts,
        count(*) filter (where is_failed) as n_failed
    from events
    where event_kind = 'rollout'
      and run_id is not null
    {% if is_incremental() %}
      and run_id in (select run_id from affected_runs)
    {% endif %}
    group by run_id

),

error_event_counts as (

    select
        run_id,
        count(*) as n_error_events
    from events
    where event_kind = 'error'
      and run_id is not null
    {% if is_incremental() %}
      and run_id in (select run_id from affected_runs)
    {% endif %}
    group by run_id

),

run_ids as (

    select run_id from rollout_counts
    union
    select run_id from error_event_counts

),

final as (

    select
        run_ids.run_id,
        runs.run_name,
        coalesce(rollout_counts.n_rollouts, 0) as n_rollouts,
        coalesce(rollout_counts.n_failed, 0) as n_failed,
        rollout_counts.n_failed / rollout_counts.n_rollouts as error_rate,
        coalesce(error_event_counts.n_error_events, 0) as n_error_events

    from run_ids
    left join rollout_counts
        on run_ids.run_id = rollout_counts.run_id
    left join error_event_counts
        on run_ids.run_id = error_event_counts.run_id
    left join runs
        on run_ids.run_id = runs.run_id

)

select * from final
