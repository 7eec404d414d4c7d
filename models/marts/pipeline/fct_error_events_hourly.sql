{{ incremental_by_key('hour_at', inputs=['stg_axiom__events'], reset_on_settings_change=true) }}
-- depends_on: {{ ref('stg_axiom__events') }}
-- depends_on: {{ ref('fct_event_run_labels') }}
-- Events join their run by run id, else by a unique run name (fct_event_run_labels);
-- a change of that mapping recomputes every row (the pre-hook clears the table).
-- Incremental (macros/incremental.sql): a build recomputes, from all their
-- events, only the hours that error events of new raw batches fall in
-- (late events included); a renamed run changes the mapping, which
-- recomputes every hour.
-- Missing component or error type is grouped under '(unknown)' rather than
-- dropped: an unlabelled error is still an error someone should see.
with

events {{ cte_not_materialized() }} (

    -- run_id: the run the event's label joins (by id, else unique name), else the label
    {{ events_with_run_key(ref('stg_axiom__events')) }}

),

error_events {{ cte_not_materialized() }} (

    select
        hour_at,
        event_at,
        coalesce(component, '(unknown)') as component,
        coalesce(error_type, '(unknown)') as error_type,
        run_id,
        message
    from events
    where event_kind = 'error'
      and hour_at is not null
    {% if is_incremental() %}
      and hour_at in ({{ incremental_new_keys('events', 'hour_at', "event_kind = 'error'") }})
    {% endif %}

),

final as (

    select
        hour_at,
        component,
        error_type,
        count(*) as n_events,
        count(distinct run_id) as n_runs,
        coalesce(
            {{ list_agg_distinct_sorted('run_id', where='run_id is not null') }},
            {{ empty_text_list() }}
        ) as run_ids,
        {{ value_at_max('message', 'event_at') }} as last_message,
        max(event_at) as last_at

    from error_events
    group by hour_at, component, error_type

)

select * from final
