{{ incremental_by_key('run_id', inputs=['int_elo_ratings_classified', 'stg_wandb__runs']) }}
-- depends_on: {{ ref('int_elo_ratings_classified') }}
-- depends_on: {{ ref('stg_wandb__runs') }}
-- Incremental (macros/incremental.sql): a build recomputes only the runs with
-- Elo points in new raw batches or a new W&B run version (its name may have
-- changed); a changed setting (vars:) recomputes every run.
-- How far the newest checkpoint is ahead of the base model at each evaluation
-- step: both are rated in the same league at the same step, so the gap does
-- not drift with the league's overall Elo level. The checkpoint is chosen by
-- its training step, never by its rating: "the best checkpoint" picked by the
-- same noisy ratings it is then measured on is the maximum of noisy values,
-- which grows with every new equally strong checkpoint (a gap that grows by
-- itself). The newest checkpoint's lead is unbiased, and it is the policy the
-- run would ship.
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

gap_checkpoints as (

    select
        run_id,
        step,
        player as gap_checkpoint,
        elo as gap_checkpoint_elo

    from elo_ratings
    where player_kind = 'checkpoint'
    qualify row_number() over (
        partition by run_id, step
        order by checkpoint_step desc, player desc
    ) = 1

),

base_model as (

    select
        run_id,
        step,
        elo as base_model_elo

    from elo_ratings
    where player = {{ wb_text_literal(var('base_reference_player')) }}

),

final as (

    select
        gap_checkpoints.run_id,
        runs.run_name,
        gap_checkpoints.step,
        gap_checkpoints.gap_checkpoint,
        gap_checkpoints.gap_checkpoint_elo,
        base_model.base_model_elo,
        gap_checkpoints.gap_checkpoint_elo - base_model.base_model_elo as gap

    from gap_checkpoints
    inner join base_model
        on gap_checkpoints.run_id = base_model.run_id
        and gap_checkpoints.step = base_model.step
    left join runs
        on gap_checkpoints.run_id = runs.run_id

)

select * from final
