-- One row per player result of every league game, with the game's verdict:
-- `reject_reason` is null for a game that counts, else why it does not
-- (fct_game_rejects lists those games). A game is known by (run_id, game_id).
--
-- Which result decides a pair: the rank when every result of the game has one
-- (lower is better), else the score (higher is better); `result_value` is the
-- deciding value with higher = better (minus the rank). Equal values are a draw.
with

results as (

    select * from {{ ref('int_game_seats_unnested') }}

),

runs as (

    select run_id from {{ ref('stg_wandb__runs') }}

),

games as (

    select
        run_id,
        game_id,
        count(distinct event_id) as n_events,
        count(distinct shape) as n_shapes,
        any_value(shape) as shape,
        count(*) as n_results,
        count(distinct player) as n_players,
        count(*) filter (where player is null) as n_without_player,
        count(*) filter (where rank is null) as n_without_rank,
        count(*) filter (where score is null) as n_without_score,
        min(step) as step,
        count(distinct step) as n_steps,
        min(event_at) as game_at

    from results
    group by run_id, game_id

),

judged as (

    select
        games.*,
        case
            when games.game_id is null then 'no game_id'
            when games.run_id is null then 'no run_id'
            when games.run_id not in (select runs.run_id from runs) then {{ format_text('unknown run {}', ['games.run_id']) }}
            -- one game id for two game events (or both shapes): which one is the game is unknown
            when games.n_shapes > 1 or (games.shape = 'players' and games.n_events > 1)
                then {{ format_text('duplicate game_id: {} events', ['games.n_events']) }}
            when games.n_without_player > 0 then 'a result without a player'
            when games.n_players < games.n_results
                then 'duplicate game_id: a player has two results'
            when games.n_players < 2 then 'one player'
            when games.n_without_rank > 0 and games.n_without_score > 0 then 'a player without a score or rank'
            when games.n_steps > 1 then 'results of one game at different steps'
        end as reject_reason,
        games.n_without_rank = 0 as decided_by_rank

    from games

),

final as (

    select
        results.run_id,
        results.game_id,
        judged.step,
        judged.game_at,
        judged.shape,
        results.seat,
        results.player,
        {{ elo_player_kind('results.player') }} as player_kind,
        {{ elo_checkpoint_step('results.player') }} as checkpoint_step,
        results.score,
        results.rank,
        case when judged.decided_by_rank then -results.rank else results.score end as result_value,
        judged.n_players,
        judged.reject_reason,
        results.event_id,
        results.batch_id

    from results
    inner join judged
        on results.run_id is not distinct from judged.run_id
        and results.game_id is not distinct from judged.game_id

)

select * from final
