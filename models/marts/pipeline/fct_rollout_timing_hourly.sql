{{ incremental_by_key('hour_at', inputs=['stg_axiom__events']) }}
-- depends_on: {{ ref('stg_axiom__events') }}
-- Incremental (macros/incremental.sql): a build recomputes, from all their
-- events, only the hours that rollout events of new raw batches fall in
-- (late events included).
-- Quantiles are continuous (quantile_cont = numpy.percentile's default
-- linear interpolation) over every rollout with a duration, failed ones
-- included: a slow failure is still time the trainer waited.
with

events {{ cte_not_materialized() }} (

    select * from {{ ref('stg_axiom__events') }}

),

rollouts {{ cte_not_materialized() }} (

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

per_hour as (

    select
        hour_at,
        count(*) as n_rollouts,
        count(*) filter (where is_failed) as n_failed,
        count(*) filter (where is_failed) / count(*) as error_rate,
        count(duration_s) as n_timed,
        -- one aggregate state for the three quantiles (three calls keep three
        -- copies of every duration: twice the memory and time at full scale)
        {{ quantile_exact('duration_s', [0.5, 0.95, 0.99]) }} as quantiles_s,
        max(duration_s) as max_s

    from rollouts
    group by hour_at

),

final as (

    select
        hour_at,
        n_rollouts,
        n_failed,
        error_rate,
        n_timed,
        {{ list_at('quantiles_s', 1) }} as p50_s,
        {{ list_at('quantiles_s', 2) }} as p95_s,
        {{ list_at('quantiles_s', 3) }} as p99_s,
        max_s

    from per_hour

)

select * from final
