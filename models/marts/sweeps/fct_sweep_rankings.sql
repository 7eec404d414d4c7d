-- Runs of a sweep ranked by their final checkpoint gap. Every pair of runs
-- whose final gaps a test cannot separate is marked as a tie, so nobody picks
-- a "winner" that is indistinguishable from another run: a two-sided t test
-- of the two means at 5 % family-wise over all the sweep's pairs (Bonferroni:
-- each pair at 5 % / m). The runs of a sweep are rated by one league, so
-- their rating noise is one noise: its variance is pooled over the sweep's
-- runs (each run's AR(1)-aware residual variance, weighted by its degrees of
-- freedom), and each final gap's variance is that times the run's own AR(1)
-- factor for a mean of its final window. Five autocorrelated points alone
-- give too few degrees of freedom to separate anything in a large sweep.
-- A run without a trend fit of its own (fewer than 3 gap points) cannot be
-- separated from anything: "cannot separate", never "different".
--
-- When every run of a sweep has enough league games (fct_game_learning,
-- var min_games_for_verdict), the sweep is ranked by the games instead: the
-- newest checkpoint's rating minus the anchor's, its SE from the 95 %
-- bootstrap interval (width / 3.92), pairs tested as normal (the games of two
-- runs are independent, and the bootstrap already carries the fit's
-- uncertainty); `ranked_by` says which.
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
        gap_trends.gap_final_n_points,
        gap_trends.gap_final_df,
        gap_trends.gap_final_variance_factor,
        gap_trends.noise_sd,
        verdicts.gap_last,
        verdicts.base_model_delta,
        verdicts.verdict,
        game_learning.newest_vs_anchor as game_gap,
        game_learning.newest_vs_anchor_ci95_lo as game_gap_ci95_lo,
        game_learning.newest_vs_anchor_ci95_hi as game_gap_ci95_hi,
        bool_and(
            coalesce(game_learning.has_enough_games, false)
            and {{ is_finite('game_learning.newest_vs_anchor') }}
            and {{ is_finite('game_learning.newest_vs_anchor_ci95_lo') }}
            and {{ is_finite('game_learning.newest_vs_anchor_ci95_hi') }}
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
        row_number() over (
            partition by sweep_key
            order by case when sweep_uses_games then game_gap else gap_final end desc nulls last, run_name asc, run_id asc
        ) as rank

    from basis

),

t_critical_bonferroni as (

    select * from {{ ref('t_critical_bonferroni') }}

),

compared as (

    select *
    from ranked
    where rank_gap is not null

),

-- the numbers of comparisons m the seed lists
comparison_levels as (

    select distinct t_critical_bonferroni.comparisons
    from t_critical_bonferroni

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
    inner join comparison_levels as levels
        on sizes.pairs <= levels.comparisons
    group by sizes.sweep_key

),

-- the sweep's pooled noise: sum(df_i * sd_i^2) / sum(df_i), with sum(df_i) degrees of freedom
sweep_noise as (

    select
        sweep_key,
        sqrt(sum(gap_final_df * power(noise_sd, 2)) / sum(gap_final_df)) as pooled_sd,
        floor(sum(gap_final_df)) as pooled_df

    from compared
    where noise_sd is not null and gap_final_df > 0
    group by sweep_key

),

pairs as (

    select
        a.sweep_key,
        a.run_id,
        b.run_id as other_run_id,
        b.run_name as other_run_name,
        b.rank as other_rank,
        abs(a.rank_gap - b.rank_gap) as difference,
        case
            when a.sweep_uses_games
                then sqrt(power((a.game_gap_ci95_hi - a.game_gap_ci95_lo) / 3.919928, 2)
                          + power((b.game_gap_ci95_hi - b.game_gap_ci95_lo) / 3.919928, 2))
            else sweep_noise.pooled_sd * sqrt(a.gap_final_variance_factor + b.gap_final_variance_factor)
        end as difference_se,
        case
            when a.sweep_uses_games then 1000000  -- the normal quantile (the seed's largest df)
            when sweep_noise.pooled_sd > 0
                and a.gap_final_variance_factor is not null
                and b.gap_final_variance_factor is not null
                then greatest(1, sweep_noise.pooled_df)
        end as test_df

    from compared as a
    inner join compared as b
        on a.sweep_key = b.sweep_key
        and a.run_id <> b.run_id
    left join sweep_noise
        on a.sweep_key = sweep_noise.sweep_key

),

-- each listed df covers the dfs up to the next listed one (a lower df, a larger t)
t_critical_ranges as (

    select
        comparisons,
        df,
        lead(df) over (partition by comparisons order by df) as next_df,
        t_critical

    from t_critical_bonferroni

),

pair_tests as (

    select
        pairs.*,
        t_critical_ranges.t_critical

    from pairs
    inner join sweep_levels
        on pairs.sweep_key = sweep_levels.sweep_key
    left join t_critical_ranges
        on sweep_levels.comparisons = t_critical_ranges.comparisons
        and pairs.test_df >= t_critical_ranges.df
        and (pairs.test_df < t_critical_ranges.next_df or t_critical_ranges.next_df is null)

),

ties as (

    select
        run_id,
        {{ list_agg_ordered('other_run_name', 'other_rank') }} as tied_with

    from pair_tests
    where test_df is null or not difference_se > 0  -- a missing or zero standard error cannot separate
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
        ranked.ranked_by,
        ranked.game_gap,
        ranked.game_gap_ci95_lo,
        ranked.game_gap_ci95_hi,
        coalesce(ties.tied_with, {{ empty_text_list() }}) as tied_with

    from ranked
    left join ties
        on ranked.run_id = ties.run_id

)

select * from final
