{{ incremental_by_key('run_id', inputs=['int_elo_ratings_classified', 'stg_wandb__runs']) }}
-- depends_on: {{ ref('int_elo_ratings_classified') }}
-- depends_on: {{ ref('stg_wandb__runs') }}
-- Incremental (macros/incremental.sql): a build rewrites only the runs with
-- Elo points in new raw batches or a new W&B run version (its name may have
-- changed); a changed setting (vars:) rewrites every run.
with

{% if is_incremental() %}
affected_runs as (

    {{ incremental_affected_runs(ref('int_elo_ratings_classified')) }}

),
{% endif %}

elo_ratings as (

    select * from {{ ref('int_elo_ratings_classified') }}
    {% if is_incremental() %}
    where run_id in (select run_id from affected_runs)
    {% endif %}

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
