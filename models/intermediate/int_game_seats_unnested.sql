-- One row per player result of a league game (event kind `game`), from both
-- shapes a trainer may log (field names through the `event_fields` var):
--   * one event per game with a list of results:
--     {"event": "game", "game_id", "run_id", "step", "players": [{"player", "score", "rank"}, ...]}
--   * one event per player result: {"event": "game", "game_id", "run_id", "step", "player", "score", "rank"}
-- Nothing is judged here: int_game_results decides which games count and why
-- the others do not (fct_game_rejects).
{%- set player_path = events_field_path('player') | replace("'", "''") -%}
{%- set score_path = events_field_path('score') | replace("'", "''") -%}
{%- set rank_path = events_field_path('rank') | replace("'", "''") %}
with

games as (

    select
        event_id,
        event_at,
        run_id,
        batch_id,
        game_record,
        {{ events_field_text('game_id', 'game_record') }} as game_id,
        cast(round({{ events_field_double('step', 'game_record') }}) as bigint) as step,
        json_extract(game_record, '{{ events_field_path('players') | replace("'", "''") }}') as players_json

    from {{ ref('stg_axiom__events') }}
    where event_kind = 'game'

),

-- a result list: one row per element (its position kept as the seat)
listed as (

    select
        games.*,
        'players' as shape,
        entry.seat,
        entry.result

    from games,
        lateral (
            select
                generate_subscripts(json_extract(games.players_json, '$[*]'), 1) as seat,
                unnest(json_extract(games.players_json, '$[*]')) as result
        ) as entry
    where json_type(games.players_json) = 'ARRAY'

),

results as (

    select
        event_id, event_at, run_id, batch_id, game_id, step, shape, seat,
        nullif(trim(json_extract_string(result, '{{ player_path }}')), '') as player,
        try_cast(json_extract_string(result, '{{ score_path }}') as double) as score,
        try_cast(json_extract_string(result, '{{ rank_path }}') as double) as rank

    from listed

    union all

    -- no result list: the event is one player's result
    select
        event_id, event_at, run_id, batch_id, game_id, step,
        'player_result' as shape,
        1 as seat,
        {{ events_field_text('player', 'game_record') }} as player,
        {{ events_field_double('score', 'game_record') }} as score,
        {{ events_field_double('rank', 'game_record') }} as rank

    from games
    where players_json is null or json_type(players_json) <> 'ARRAY'

),

final as (

    select
        event_id,
        event_at,
        run_id,
        game_id,
        step,
        shape,
        seat,
        player,
        -- a NaN or infinite result decides nothing
        case when isfinite(score) then score end as score,
        case when isfinite(rank) then rank end as rank,
        batch_id

    from results

)

select * from final
