{{ incremental_by_key('run_id', inputs=['int_elo_ratings_classified']) }}
-- depends_on: {{ ref('int_elo_ratings_classified') }}
-- Incremental (macros/incremental.sql): a build recomputes only the runs with
-- Elo points in new raw batches; a changed setting (vars:), every run.
-- What happens to a checkpoint's Elo once a newer one is in the league: a
-- checkpoint that keeps its rating after being superseded shows the league
-- is stable; one that sinks shows later checkpoints are genuinely stronger.
with

{% if is_incremental() %}
affected_runs as (

    {{ incremental_affected_runs(ref('int_elo_ratings_classified'), renamed_runs=false) }}

),
{% endif %}

elo_ratings as (

    select * from {{ ref('int_elo_ratings_classified') }}
    {% if is_incremental() %}
    where run_id in (select run_id from affected_runs)
    {% endif %}

),

checkpoint_ratings as (

    select
        run_id,
        player,
        checkpoint_step,
        step,
        elo

    from elo_ratings
    where player_kind = 'checkpoint'
        and checkpoint_step is not null

),

checkpoints as (

    select
        run_id,
        player,
        checkpoint_step,
        {{ value_at_max('elo', 'step') }} as elo_last

    from checkpoint_ratings
    group by run_id, player, checkpoint_step

),

superseded as (

    select
        checkpoints.run_id,
        checkpoints.player,
        checkpoints.checkpoint_step,
        checkpoints.elo_last,
        min(newer.step) as superseded_at_step

    from checkpoints
    inner join checkpoint_ratings as newer
        on checkpoints.run_id = newer.run_id
        and checkpoints.checkpoint_step < newer.checkpoint_step
    group by all

),

-- The checkpoint's own rating when it was superseded: at that step, or its
-- latest one before it if it was not rated at that exact step.
rating_when_superseded as (

    select
        superseded.run_id,
        superseded.player,
        {{ value_at_max('checkpoint_ratings.elo', 'checkpoint_ratings.step') }}
            filter (where checkpoint_ratings.step <= superseded.superseded_at_step) as elo_at_superseded,
        count(*) filter (where checkpoint_ratings.step > superseded.superseded_at_step) as n_points_after

    from superseded
    inner join checkpoint_ratings
        on superseded.run_id = checkpoint_ratings.run_id
        and superseded.player = checkpoint_ratings.player
    group by superseded.run_id, superseded.player

),

final as (

    select
        superseded.run_id,
        superseded.player,
        superseded.checkpoint_step,
        superseded.superseded_at_step,
        rating_when_superseded.elo_at_superseded,
        superseded.elo_last,
        -- never rated again after a newer one appeared: no change is known (not a change of 0)
        case
            when rating_when_superseded.n_points_after > 0
                then superseded.elo_last - rating_when_superseded.elo_at_superseded
        end as elo_change_after_superseded,
        rating_when_superseded.n_points_after

    from superseded
    inner join rating_when_superseded
        on superseded.run_id = rating_when_superseded.run_id
        and superseded.player = rating_when_superseded.player

)

select * from final
