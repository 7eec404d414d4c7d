{{ incremental_by_key('hour_at', inputs=['stg_axiom__events']) }}
-- depends_on: {{ ref('stg_axiom__events') }}
-- Incremental (macros/incremental.sql): a build recomputes, from all their
-- events, only the hours that extraction events of new raw batches fall in
-- (late events included).
-- The rate is pooled (orders extracted / orders expected over the hour), not
-- a mean of per-event rates, so a large batch weighs as much as its orders.
with

events {{ cte_not_materialized() }} (

    select * from {{ ref('stg_axiom__events') }}

),

extractions as (

    select
        hour_at,
        orders_expected,
        orders_extracted
    from events
    where event_kind = 'extraction'
      and hour_at is not null
    {% if is_incremental() %}
      and hour_at in ({{ incremental_new_keys('events', 'hour_at', "event_kind = 'extraction'") }})
    {% endif %}

),

final as (

    select
        hour_at,
        count(*) as n_events,
        coalesce(sum(orders_expected), 0) as orders_expected,
        coalesce(sum(orders_extracted), 0) as orders_extracted,
        sum(orders_extracted) / nullif(sum(orders_expected), 0) as extraction_rate

    from extractions
    group by hour_at

)

select * from final
