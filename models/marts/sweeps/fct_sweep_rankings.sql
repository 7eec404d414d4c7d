-- Runs of a sweep ranked by their final checkpoint gap. Adjacent runs whose
-- final gaps differ by less than their combined noise are marked as ties, so
-- nobody picks a "winner" that is indistinguishable from the runner-up.
with

verdicts as (

    select * from {{ ref('fct_learning_verdicts') }}

),

gap_trends as (

    select * from {{ ref('fct_gap_trends') }}

),

ranked as (

    select
        verdicts.sweep_key,
        verdicts.run_id,
        verdicts.run_name,
        row_number() over (
            partition by verdicts.sweep_key
            order by gap_trends.gap_final desc nulls last, verdicts.run_name, verdicts.run_id
        ) as rank,
        gap_trends.gap_final,
        gap_trends.gap_final_se,
        verdicts.gap_last,
        verdicts.base_model_delta,
        verdicts.verdict

    from verdicts
    left join gap_trends
        on verdicts.run_id = gap_trends.run_id

),

neighbours as (

    select
        *,
        lag(run_name) over by_rank as previous_run_name,
        lag(gap_final) over by_rank as previous_gap_final,
        lag(gap_final_se) over by_rank as previous_gap_final_se,
        lead(run_name) over by_rank as next_run_name,
        lead(gap_final) over by_rank as next_gap_final,
        lead(gap_final_se) over by_rank as next_gap_final_se

    from ranked
    window by_rank as (partition by sweep_key order by rank)

),

-- |Δ gap_final| < 1.96 · sqrt(se1² + se2²): the two means are within the
-- normal 95 % band of their difference. A missing SE (a single gap point)
-- counts as 0, so such runs tie only on equal gaps.
ties as (

    select
        *,
        abs(gap_final - previous_gap_final)
            < 1.96 * sqrt(coalesce(gap_final_se, 0) ^ 2 + coalesce(previous_gap_final_se, 0) ^ 2)
            as ties_previous,
        abs(gap_final - next_gap_final)
            < 1.96 * sqrt(coalesce(gap_final_se, 0) ^ 2 + coalesce(next_gap_final_se, 0) ^ 2)
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
