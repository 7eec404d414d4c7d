-- Staleness is measured against the latest event in the warehouse, not the
-- wall clock, so a warehouse built from yesterday's export does not call
-- every component stale. A silent component is `stale` even if its last word
-- was healthy; otherwise a last status other than ok/healthy is `degraded`.
with

events as (

    select * from {{ ref('stg_axiom__events') }}

),

as_of as (

    select max(event_at) as as_of from events

),

heartbeats as (

    select
        coalesce(component, '(unknown)') as component,
        coalesce(host, '(unknown)') as host,
        event_at,
        status,
        gpu_util,
        gpu_mem_gb,
        event_id
    from events
    where event_kind = 'heartbeat'
      and event_at is not null

),

per_component as (

    select
        component,
        host,
        min(event_at) as first_seen_at,
        max(event_at) as last_seen_at,
        count(*) as heartbeats,
        -- event_id breaks ties between heartbeats logged in the same instant
        arg_max(status, (event_at, event_id)) as last_status,
        arg_max(gpu_util, (event_at, event_id)) as gpu_util_last,
        arg_max(gpu_mem_gb, (event_at, event_id)) as gpu_mem_gb_last

    from heartbeats
    group by component, host

),

final as (

    select
        per_component.component,
        per_component.host,
        per_component.first_seen_at,
        per_component.last_seen_at,
        per_component.heartbeats,
        per_component.last_status,
        per_component.gpu_util_last,
        per_component.gpu_mem_gb_last,
        as_of.as_of,
        {{ events_seconds_between('per_component.last_seen_at', 'as_of.as_of') }} as silent_s,
        case
            when {{ events_seconds_between('per_component.last_seen_at', 'as_of.as_of') }}
                > {{ var('heartbeat_stale_after_s') }} then 'stale'
            when per_component.last_status is not null
                and lower(per_component.last_status) not in ('ok', 'healthy') then 'degraded'
            else 'ok'
        end as status

    from per_component
    cross join as_of

)

select * from final
