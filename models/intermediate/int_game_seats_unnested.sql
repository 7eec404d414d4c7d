-- One row per player result of a league game (event kind `game`), from both
-- shapes a trainer may log (field names through the `event_fields` var):
--   * one event per game with a list of results:
--     {"event": "game", "game_id", "run_id", "step", "players": [{"player", "score", "rank"}, ...]}
--   * one event per player result: {"event": "game", "game_id", "run_id", "step", "player", "score", "rank"}
-- Nothing is judged here: int_game_results decides which games count and why
-- the others do not (fct_game_rejects).
{%- set player_path = events_field_path('player') -%}
{%- set score_path = events_field_path('score') -%}
{%- set rank_path = events_field_path('rank') %}
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
        {{ json_text('game_record', events_field_path('players')) }} as players_json

    from {{ ref('stg_axiom__events') }}
    where event_kind = 'game'

),

-- a result list: one row per element (its position kept as the seat)
listed as (

    select
        games.*,
        'players' as shape,
        {{ json_array_entry_seat('entry') }} as seat,
        entry.result

    from {{ json_array_entries('games', 'games.players_json', 'entry') }}
    where {{ json_is_array('games.players_json') }}

),

results as (

    select
        event_id, event_at, run_id, batch_id, game_id, step, shape, seat,
        nullif(trim({{ json_text('result', player_path) }}), '') as player,
        try_cast({{ json_text('result', score_path) }} as double) as score,
        try_cast({{ json_text('result', rank_path) }} as double) as rank

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
    where not {{ json_is_array('players_json') }}

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
        case when {{ is_finite('score') }} then score end as score,
        case when {{ is_finite('rank') }} then rank end as rank,
        batch_id

    from results

)

select * from final
