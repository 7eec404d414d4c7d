with

events as (

    select * from {{ ref('stg_axiom__events') }}

),

runs as (

    select * from {{ ref('stg_wandb__runs') }}

),

rollouts as (

    select
        hour_at,
        run_id,
        is_failed
    from events
    where event_kind = 'rollout'
      and hour_at is not null
      and run_id is not null

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
