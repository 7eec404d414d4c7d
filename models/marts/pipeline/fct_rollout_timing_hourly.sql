{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='hour_at',
        post_hook="{{ incremental_mark([ref('stg_axiom__events')]) }}"
    )
}}
-- depends_on: {{ ref('stg_axiom__events') }}
-- Incremental (macros/incremental.sql): a build recomputes, from all their
-- events, only the hours that rollout events of new raw batches fall in
-- (late events included).
-- Quantiles are continuous (quantile_cont = numpy.percentile's default
-- linear interpolation) over every rollout with a duration, failed ones
-- included: a slow failure is still time the trainer waited.
with

events as (

    select * from {{ ref('stg_axiom__events') }}

),

rollouts as (

    select
        hour_at,
        duration_s,
        is_failed
    from events
    where event_kind = 'rollout'
      and hour_at is not null
    {% if is_incremental() %}
      and hour_at in ({{ incremental_new_keys('events', 'hour_at', "event_kind = 'rollout'") }})
    {% endif %}

),

final as (

    select
        hour_at,
        count(*) as n_rollouts,
        count(*) filter (where is_failed) as n_failed,
        count(*) filter (where is_failed) / count(*) as error_rate,
        count(duration_s) as n_timed,
        quantile_cont(duration_s, 0.5) as p50_s,
        quantile_cont(duration_s, 0.95) as p95_s,
        quantile_cont(duration_s, 0.99) as p99_s,
        max(duration_s) as max_s

    from rollouts
    group by hour_at

)

select * from final
