{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='run_id',
        post_hook="{{ incremental_mark([ref('stg_wandb__history')]) }}"
    )
}}
-- depends_on: {{ ref('stg_wandb__history') }}
-- Incremental (macros/incremental.sql): a build reclassifies only the runs
-- with Elo points in new raw batches; a changed setting (vars:), every run.
-- League Elo ratings arrive as history metrics `elo/<player>` (or `elo.<player>`
-- when logged as a nested dict: the prefix is matched as a path,
-- macros/elo_players.sql); each player is a fixed reference, a checkpoint (with
-- its training step) or unclassified.
with

{% if is_incremental() %}
affected_runs as (

    {{ incremental_affected_runs(ref('stg_wandb__history'), where=is_elo_metric('metric_key'), renamed_runs=false) }}

),
{% endif %}

history as not materialized (

    select * from {{ ref('stg_wandb__history') }}
    {% if is_incremental() %}
    where run_id in (select run_id from affected_runs)
    {% endif %}

),

elo_metrics as (

    select
        run_id,
        step,
        wall_time,
        {{ elo_player('metric_key') }} as player,
        value as elo,
        batch_id

    from history
    where {{ is_elo_metric('metric_key') }}
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
        wall_time,
        batch_id

    from elo_metrics
    where player <> ''

)

select * from final
