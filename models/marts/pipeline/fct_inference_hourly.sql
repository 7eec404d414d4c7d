{{ incremental_by_key('hour_at', inputs=['stg_axiom__events']) }}
-- depends_on: {{ ref('stg_axiom__events') }}
-- Incremental (macros/incremental.sql): a build recomputes, from all their
-- events, only the hours that inference events of new raw batches fall in
-- (late events included).
with

events {{ cte_not_materialized() }} (

    select * from {{ ref('stg_axiom__events') }}

),

requests as (

    select
        hour_at,
        coalesce(engine, '(unknown)') as engine,
        latency_s,
        tokens_per_s,
        queue_s,
        batch_size
    from events
    where event_kind = 'inference'
      and hour_at is not null
    {% if is_incremental() %}
      and hour_at in ({{ incremental_new_keys('events', 'hour_at', "event_kind = 'inference'") }})
    {% endif %}

),

per_hour as (

    select
        hour_at,
        engine,
        count(*) as n_requests,
        {{ quantile_exact('latency_s', [0.5, 0.95]) }} as latency_quantiles_s,
        max(latency_s) as latency_max_s,
        avg(tokens_per_s) as tokens_per_s_mean,
        {{ quantile_exact('tokens_per_s', 0.5) }} as tokens_per_s_p50,
        {{ quantile_exact('queue_s', 0.95) }} as queue_p95_s,
        avg(batch_size) as batch_size_mean

    from requests
    group by hour_at, engine

),

final as (

    select
        hour_at,
        engine,
        n_requests,
        {{ list_at('latency_quantiles_s', 1) }} as latency_p50_s,
        {{ list_at('latency_quantiles_s', 2) }} as latency_p95_s,
        latency_max_s,
        tokens_per_s_mean,
        tokens_per_s_p50,
        queue_p95_s,
        batch_size_mean

    from per_hour

)

select * from final
