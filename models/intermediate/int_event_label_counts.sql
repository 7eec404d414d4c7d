{{ incremental_by_key('run_label', inputs=['stg_axiom__events']) }}
-- depends_on: {{ ref('stg_axiom__events') }}
-- Incremental (macros/incremental.sql): a build recounts, from all their
-- events, only the run labels that got events in new raw batches.
-- Events per run label: the text in the events' run field (var event_fields.run_id),
-- which may be a W&B run id, a run's display name or anything a logger wrote.
-- fct_event_run_labels decides which run each label joins.
with

events {{ cte_not_materialized() }} (

    select * from {{ ref('stg_axiom__events') }}

),
{% if is_incremental() %}
affected_labels as (

    {{ incremental_new_keys('events', 'run_id') }}

),
{% endif %}

final as (

    select
        run_id as run_label,
        count(*) as n_events,
        count(*) filter (where event_kind = 'rollout') as n_rollouts,
        count(*) filter (where event_kind = 'extraction') as n_extractions,
        count(*) filter (where event_kind = 'error') as n_error_events,
        min(event_at) as first_at,
        max(event_at) as last_at

    from events
    where run_id is not null
    {% if is_incremental() %}
      and run_id in (select run_id from affected_labels)
    {% endif %}
    group by run_id

)

select * from final
