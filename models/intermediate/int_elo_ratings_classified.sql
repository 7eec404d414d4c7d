-- League Elo ratings arrive as history metrics `elo/<player>`; each player is
-- a fixed reference, a checkpoint (with its training step) or other.
with

history as (

    select * from {{ ref('stg_wandb__history') }}

),

elo_metrics as (

    select
        run_id,
        step,
        wall_time,
        substr(metric_key, length({{ wb_text_literal(var('elo_metric_prefix')) }}) + 1) as player,
        value as elo

    from history
    where starts_with(metric_key, {{ wb_text_literal(var('elo_metric_prefix')) }})
        -- a NaN/±Inf rating is no rating; fct_metric_summaries counts them
        and is_finite

),

final as (

    select
        run_id,
        player,
        {{ elo_player_kind('player') }} as player_kind,
        case
            when {{ elo_player_kind('player') }} = 'checkpoint'
                then {{ elo_checkpoint_step('player') }}
        end as checkpoint_step,
        step,
        elo,
        wall_time

    from elo_metrics
    where player <> ''

)

select * from final
