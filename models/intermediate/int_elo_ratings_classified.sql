{{ incremental_by_key('run_id', inputs=['stg_wandb__history', 'stg_wandb__runs']) }}
-- depends_on: {{ ref('stg_wandb__history') }}
-- depends_on: {{ ref('stg_wandb__runs') }}
-- Incremental (macros/incremental.sql): a build reclassifies only the runs
-- with Elo points in new raw batches or a new run version (its define_metric
-- axes may have changed); a changed setting (vars:), every run.
-- League Elo ratings arrive as history metrics `elo/<player>` (or `elo.<player>`
-- when logged as a nested dict: the prefix is matched as a path,
-- macros/elo_players.sql); each player is a fixed reference, a checkpoint (with
-- its training step) or unclassified.
--
-- The step of a rating is the run's own Elo axis. A trainer that calls
-- `wandb.define_metric("elo/*", step_metric="train/global_step")` (TRL logs
-- that way) rates its players on its global step, and W&B copies the step
-- metric's latest value into every row that logs an Elo metric, so ratings
-- logged in separate `wandb.log` calls of one evaluation share a step.
-- Without a definition the axis is W&B's `_step`, which grows with every
-- log call; the log calls of one evaluation (consecutive steps that log only
-- Elo ratings, each player once) are then put at the evaluation's first step,
-- so a base_model rating and a checkpoint rating logged one call apart still
-- pair up. `elo_step_metric` overrides the run's definitions.
with

{% if is_incremental() %}
affected_runs as (

    {{ incremental_affected_runs(ref('stg_wandb__history'), where=is_elo_metric('metric_key')) }}

),
{% endif %}

history {{ cte_not_materialized() }} (

    select * from {{ ref('stg_wandb__history') }}
    {% if is_incremental() %}
    where run_id in (select run_id from affected_runs)
    {% endif %}

),

runs as (

    select run_id, step_metrics from {{ ref('stg_wandb__runs') }}
    {% if is_incremental() %}
    where run_id in (select run_id from affected_runs)
    {% endif %}

),

elo_metrics as (

    select
        run_id,
        step as history_step,
        metric_key,
        wall_time,
        {{ elo_player('metric_key') }} as player,
        value as elo,
        batch_id

    from history
    where {{ is_elo_metric('metric_key') }}
        -- a NaN/±Inf rating is no rating; fct_metric_summaries counts them
        and is_finite
        and {{ elo_player('metric_key') }} <> ''

),

elo_keys as (

    select distinct run_id, metric_key from elo_metrics

),

-- The x-axis of each Elo metric: the override, else the definition naming the
-- metric exactly, else the most specific glob that matches it (W&B's `*`).
-- each run's step metric definitions, one row per (metric glob, step metric)
step_metric_definitions as (

    select
        run_id,
        -- a recursive unnest names its columns itself (metric, step_metric): no alias
        {{ unnest_struct_list('step_metrics') }}  -- noqa: AL03
    from runs

),

axis_of_key as (

    {% if var('elo_step_metric') %}
    select
        run_id,
        metric_key,
        {{ wb_text_literal(var('elo_step_metric')) }} as step_metric

    from elo_keys
    where {{ wb_text_literal(var('elo_step_metric')) }} <> '_step'
    {% else %}
    select
        elo_keys.run_id,
        elo_keys.metric_key,
        definitions.step_metric

    from elo_keys
    inner join step_metric_definitions as definitions
        on elo_keys.run_id = definitions.run_id
        and (elo_keys.metric_key = definitions.metric or {{ glob_matches('elo_keys.metric_key', 'definitions.metric') }})
    where definitions.step_metric <> '_step'
    qualify row_number() over (
        partition by elo_keys.run_id, elo_keys.metric_key
        order by elo_keys.metric_key = definitions.metric desc, length(definitions.metric) desc
    ) = 1
    {% endif %}

),

axis_values as (

    select
        history.run_id,
        history.metric_key as step_metric,
        history.step as history_step,
        history.value as axis_value

    from history
    where history.is_finite
        and (history.run_id, history.metric_key) in (select axis_of_key.run_id, axis_of_key.step_metric from axis_of_key)

),

-- Ratings on a defined axis take the axis's latest value at or before their
-- own `_step` (W&B's step sync puts it in the same row).
axis_timeline as (

    select
        run_id,
        step_metric,
        history_step,
        false as is_rating,
        axis_value,
        cast(null as {{ type_text() }}) as player,
        cast(null as double) as elo,
        cast(null as {{ type_timestamptz() }}) as wall_time,
        cast(null as {{ type_text() }}) as batch_id

    from axis_values

    union all

    select
        elo_metrics.run_id,
        axis_of_key.step_metric,
        elo_metrics.history_step,
        true as is_rating,
        null as axis_value,
        elo_metrics.player,
        elo_metrics.elo,
        elo_metrics.wall_time,
        elo_metrics.batch_id

    from elo_metrics
    inner join axis_of_key
        on elo_metrics.run_id = axis_of_key.run_id
        and elo_metrics.metric_key = axis_of_key.metric_key

),

rated_on_axis as (

    select
        run_id,
        player,
        step,
        history_step,
        step_metric,
        elo,
        wall_time,
        batch_id

    from (
        select
            *,
            cast(round({{ last_value_ignore_nulls('axis_value') }} over (
                partition by run_id, step_metric
                order by history_step, is_rating
                rows between unbounded preceding and current row
            )) as bigint) as step

        from axis_timeline
    ) as timeline_steps
    -- a rating logged before its axis had any value has no place on it
    where is_rating and step is not null

),

-- Ratings on `_step`: consecutive log calls of one evaluation share a step.
rated_on_step as (

    select
        run_id,
        metric_key,
        history_step,
        player,
        elo,
        wall_time,
        batch_id

    from elo_metrics
    where not exists (
        select 1
        from axis_of_key
        where axis_of_key.run_id = elo_metrics.run_id
            and axis_of_key.metric_key = elo_metrics.metric_key
    )

),

rating_steps as (

    select distinct run_id, history_step from rated_on_step

),

-- steps that log something besides Elo ratings (W&B's own `_…` keys aside)
mixed_steps as (

    select distinct history.run_id, history.step as history_step
    from history
    where not {{ is_elo_metric('history.metric_key') }}
        and not {{ text_starts_with('history.metric_key', "'_'") }}
        and (history.run_id, history.step) in (select rating_steps.run_id, rating_steps.history_step from rating_steps)

),

-- A step continues the evaluation of the step before it when that one rated
-- players too and this one logs nothing but ratings.
evaluation_starts as (

    select
        rating_steps.run_id,
        rating_steps.history_step,
        case
            when previous.history_step is not null and mixed_steps.history_step is null then 0
            else 1
        end as is_start

    from rating_steps
    left join rating_steps as previous
        on rating_steps.run_id = previous.run_id
        and rating_steps.history_step = previous.history_step + 1
    left join mixed_steps
        on rating_steps.run_id = mixed_steps.run_id
        and rating_steps.history_step = mixed_steps.history_step

),

evaluation_runs as (

    select
        run_id,
        history_step,
        sum(is_start) over (partition by run_id order by history_step rows between unbounded preceding and current row)
            as block_id

    from evaluation_starts

),

-- Within a block of consecutive rating calls, a player's k-th rating belongs
-- to the block's k-th evaluation (a block may hold several evaluations).
rated_in_block as (

    select
        rated_on_step.*,
        evaluation_runs.block_id,
        row_number() over (
            partition by rated_on_step.run_id, evaluation_runs.block_id, rated_on_step.player
            order by rated_on_step.history_step
        ) as evaluation_in_block

    from rated_on_step
    inner join evaluation_runs
        on rated_on_step.run_id = evaluation_runs.run_id
        and rated_on_step.history_step = evaluation_runs.history_step

),

rated_by_call as (

    select
        run_id,
        player,
        min(history_step) over (partition by run_id, block_id, evaluation_in_block) as step,
        history_step,
        '_step' as step_metric,
        elo,
        wall_time,
        batch_id

    from rated_in_block

),

rated as (

    select * from rated_on_axis
    union all
    select * from rated_by_call

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
        history_step,
        step_metric,
        elo,
        wall_time,
        batch_id

    from rated
    -- a player rated twice at one step of the axis (the axis did not move
    -- between two evaluations): the later rating stands
    qualify row_number() over (partition by run_id, player, step order by history_step desc) = 1

)

select * from final
