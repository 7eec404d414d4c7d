with

elo_ratings as (

    select * from {{ ref('int_elo_ratings_classified') }}

),

runs as (

    select * from {{ ref('stg_wandb__runs') }}

),

final as (

    select
        elo_ratings.run_id,
        runs.run_name,
        elo_ratings.player,
        elo_ratings.player_kind,
        elo_ratings.checkpoint_step,
        elo_ratings.step,
        elo_ratings.elo,
        elo_ratings.wall_time

    from elo_ratings
    left join runs
        on elo_ratings.run_id = runs.run_id

)

select * from final
