-- Runs of a sweep ranked by their final checkpoint gap. Every pair of runs
-- whose final gaps a test cannot separate is marked as a tie, so nobody picks
-- a "winner" that is indistinguishable from another run: a two-sided Welch
-- t test of the two means at 5 % family-wise over all the sweep's pairs
-- (Bonferroni: each pair at 5 % / m). A missing or zero standard error (one
-- final gap point, or identical ones) means "cannot separate", never
-- "different".
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
        gap_trends.gap_final_n_points,
        verdicts.gap_last,
        verdicts.base_model_delta,
        verdicts.verdict

    from verdicts
    left join gap_trends
        on verdicts.run_id = gap_trends.run_id

),

t_critical_bonferroni as (

    select * from {{ ref('t_critical_bonferroni') }}

),

compared as (

    select * from ranked where gap_final is not null

),

-- m pairs per sweep, and the seed's smallest listed m not below it
sweep_levels as (

    select
        sizes.sweep_key,
        min(levels.comparisons) as comparisons

    from (
        select sweep_key, count(*) * (count(*) - 1) / 2 as pairs
        from compared
        group by sweep_key
    ) as sizes
    inner join (select distinct comparisons from t_critical_bonferroni) as levels
        on levels.comparisons >= sizes.pairs
    group by sizes.sweep_key

),

pairs as (

    select
        a.sweep_key,
        a.run_id,
        b.run_id as other_run_id,
        b.run_name as other_run_name,
        b.rank as other_rank,
        abs(a.gap_final - b.gap_final) as difference,
        sqrt(a.gap_final_se ^ 2 + b.gap_final_se ^ 2) as difference_se,
        case
            when coalesce(a.gap_final_se, 0) > 0 and coalesce(b.gap_final_se, 0) > 0
                then greatest(1, floor(
                    (a.gap_final_se ^ 2 + b.gap_final_se ^ 2) ^ 2
                    / (a.gap_final_se ^ 4 / greatest(a.gap_final_n_points - 1, 1)
                        + b.gap_final_se ^ 4 / greatest(b.gap_final_n_points - 1, 1))
                ))
        end as welch_df

    from compared as a
    inner join compared as b
        on a.sweep_key = b.sweep_key
        and a.run_id <> b.run_id

),

pair_tests as (

    select
        pairs.*,
        t_critical_bonferroni.t_critical

    from pairs
    inner join sweep_levels
        on pairs.sweep_key = sweep_levels.sweep_key
    left join t_critical_bonferroni
        on t_critical_bonferroni.comparisons = sweep_levels.comparisons
        and t_critical_bonferroni.df <= pairs.welch_df
    qualify row_number() over (
        partition by pairs.run_id, pairs.other_run_id
        order by t_critical_bonferroni.df desc nulls last
    ) = 1

),

ties as (

    select
        run_id,
        list(other_run_name order by other_rank) as tied_with

    from pair_tests
    where welch_df is null  -- a missing or zero standard error cannot separate
        or difference < t_critical * difference_se
    group by run_id

),

final as (

    select
        ranked.sweep_key,
        ranked.run_id,
        ranked.run_name,
        ranked.rank,
        ranked.gap_final,
        ranked.gap_final_se,
        ranked.gap_final_n_points,
        ranked.gap_last,
        ranked.base_model_delta,
        ranked.verdict,
        ties.tied_with is not null as is_tie,
        coalesce(ties.tied_with, []) as tied_with

    from ranked
    left join ties
        on ranked.run_id = ties.run_id

)

select * from final
