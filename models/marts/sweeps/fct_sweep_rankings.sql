-- Runs of a sweep ranked by their final checkpoint gap. Adjacent runs whose
-- final gaps differ by less than their combined noise are marked as ties, so
-- nobody picks a "winner" that is indistinguishable from the runner-up.
--
-- When every run of a sweep has enough league games (fct_game_learning,
-- var min_games_for_verdict), the sweep is ranked by the games instead: the
-- newest checkpoint's rating minus the anchor's, its SE from the 95 %
-- bootstrap interval (width / 3.92); `ranked_by` says which.
with

verdicts as (

    select * from {{ ref('fct_learning_verdicts') }}

),

gap_trends as (

    select * from {{ ref('fct_gap_trends') }}

),

game_learning as (

    select * from {{ ref('fct_game_learning') }}

),

basis as (

    select
        verdicts.sweep_key,
        verdicts.run_id,
        verdicts.run_name,
        gap_trends.gap_final,
        gap_trends.gap_final_se,
        verdicts.gap_last,
        verdicts.base_model_delta,
        verdicts.verdict,
        game_learning.newest_vs_anchor as game_gap,
        game_learning.newest_vs_anchor_ci95_lo as game_gap_ci95_lo,
        game_learning.newest_vs_anchor_ci95_hi as game_gap_ci95_hi,
        bool_and(
            coalesce(game_learning.has_enough_games, false)
            and isfinite(game_learning.newest_vs_anchor)
            and isfinite(game_learning.newest_vs_anchor_ci95_lo)
            and isfinite(game_learning.newest_vs_anchor_ci95_hi)
        ) over (partition by verdicts.sweep_key) as sweep_uses_games

    from verdicts
    left join gap_trends
        on verdicts.run_id = gap_trends.run_id
    left join game_learning
        on verdicts.run_id = game_learning.run_id

),

ranked as (

    select
        *,
        case when sweep_uses_games then 'games' else 'logged_elo' end as ranked_by,
        case when sweep_uses_games then game_gap else gap_final end as rank_gap,
        case
            when sweep_uses_games then (game_gap_ci95_hi - game_gap_ci95_lo) / (2 * 1.959964)
            else gap_final_se
        end as rank_gap_se,
        row_number() over (
            partition by sweep_key
            order by case when sweep_uses_games then game_gap else gap_final end desc nulls last, run_name, run_id
        ) as rank

    from basis

),

neighbours as (

    select
        *,
        lag(run_name) over by_rank as previous_run_name,
        lag(rank_gap) over by_rank as previous_gap,
        lag(rank_gap_se) over by_rank as previous_gap_se,
        lead(run_name) over by_rank as next_run_name,
        lead(rank_gap) over by_rank as next_gap,
        lead(rank_gap_se) over by_rank as next_gap_se

    from ranked
    window by_rank as (partition by sweep_key order by rank)

),

-- |Δ gap_final| < 1.96 · sqrt(se1² + se2²): the two means are within the
-- normal 95 % band of their difference. A missing SE (a single gap point)
-- counts as 0, so such runs tie only on equal gaps.
ties as (

    select
        *,
        abs(rank_gap - previous_gap)
            < 1.96 * sqrt(coalesce(rank_gap_se, 0) ^ 2 + coalesce(previous_gap_se, 0) ^ 2)
            as ties_previous,
        abs(rank_gap - next_gap)
            < 1.96 * sqrt(coalesce(rank_gap_se, 0) ^ 2 + coalesce(next_gap_se, 0) ^ 2)
            as ties_next

    from neighbours

),

final as (

    select
        sweep_key,
        run_id,
        run_name,
        rank,
        gap_final,
        gap_final_se,
        gap_last,
        base_model_delta,
        verdict,
        coalesce(ties_previous, false) or coalesce(ties_next, false) as is_tie,
        ranked_by,
        game_gap,
        game_gap_ci95_lo,
        game_gap_ci95_hi,
        list_filter(
            [
                case when ties_previous then previous_run_name end,
                case when ties_next then next_run_name end
            ],
            lambda name: name is not null
        ) as tied_with

    from ties

)

select * from final
