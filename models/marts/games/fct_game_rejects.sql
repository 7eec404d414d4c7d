-- League games that do not count, one row per game, with the reason
-- (int_game_results): no game_id or run_id, an unknown run, a duplicate
-- game_id, one player, a player without score or rank.
select
    run_id,
    game_id,
    reject_reason as reason,
    any_value(shape) as shape,
    count(*) as n_results,
    count(distinct event_id) as n_events,
    min(game_at) as game_at,
    {{ string_agg_distinct_sorted('event_id', "', '") }} as event_ids,
    max(batch_id) as batch_id

from {{ ref('int_game_results') }}
where reject_reason is not null
group by run_id, game_id, reject_reason
