-- Configuration cells of a sweep: runs whose config differs only in seed keys
-- (var seed_config_keys) are repeats of one configuration, and a sweep is won by
-- a configuration, not by a lucky seed. Cells are ranked by the interquartile
-- mean (IQM) of their runs' final gaps, the aggregate rliable recommends over
-- seeds (robust to one outlier seed, less noisy than the median), with a 95 %
-- bootstrap interval: var sweep_bootstrap_rounds resamples of the cell's runs
-- with replacement (deterministic: indexes come from a hash of the cell, the
-- round and the draw). A cell of one seed has no bootstrap; its interval is the
-- run's final gap ± t · its standard error over the final evaluations, and it
-- says so (is_single_seed). Two cells whose intervals overlap cannot be
-- separated: a conservative test (non-overlapping 95 % intervals mean a
-- difference at well under 5 %, which also covers a sweep's several pairs), and
-- a missing interval never separates anything.
with

runs as (

    select * from {{ ref('dim_runs') }}

),

verdicts as (

    select * from {{ ref('fct_learning_verdicts') }}

),

gap_trends as (

    select * from {{ ref('fct_gap_trends') }}

),

t_critical_95 as (

    select * from {{ ref('t_critical_95') }}

),

cell_runs as (

    select
        runs.sweep_key,
        -- the config without its seed keys (top level), as canonical JSON: the cell's identity
        {{ json_without_keys("coalesce(nullif(runs.config_json, ''), '{}')", var('seed_config_keys')) }} as cell_config,
        runs.run_id,
        runs.run_name,
        gap_trends.gap_final,
        gap_trends.gap_final_se,
        gap_trends.gap_final_n_points,
        gap_trends.gap_final_df,
        verdicts.verdict

    from runs
    inner join verdicts
        on runs.run_id = verdicts.run_id
    left join gap_trends
        on runs.run_id = gap_trends.run_id

),

cell_keys as (

    select
        sweep_key,
        cell_config,
        -- a short stable name for the cell
        'cell-' || substr(md5(sweep_key || chr(0) || cell_config), 1, 8) as cell_id,
        count(*) filter (where gap_final is not null) as n_seeds

    from cell_runs
    group by sweep_key, cell_config

),

cell_members as (

    select
        cell_runs.*,
        cell_keys.cell_id,
        cell_keys.n_seeds,
        row_number() over (
            partition by cell_keys.cell_id
            order by cell_runs.gap_final is null, cell_runs.run_name, cell_runs.run_id
        ) - 1 as member_index

    from cell_runs
    inner join cell_keys
        on cell_runs.sweep_key = cell_keys.sweep_key
        and cell_runs.cell_config = cell_keys.cell_config

),

observed as (

    select
        cell_id,
        {{ interquartile_mean('gap_final', 'ordinal', 'n_seeds') }} as gap_final_iqm,
        avg(gap_final) as gap_final_mean

    from (
        select
            cell_id,
            n_seeds,
            gap_final,
            row_number() over (partition by cell_id order by gap_final) as ordinal
        from cell_members
        where gap_final is not null
    ) as ranked_members
    group by cell_id

),

draws as (

    select
        cell_id,
        n_seeds,
        boot_round,
        cast({{ stable_hash("concat_ws(':', cell_id, cast(boot_round as " ~ type_text() ~ "), cast(draw as " ~ type_text() ~ "))") }} % n_seeds as bigint) as member_index

    from (
        select
            cell_keys.cell_id,
            cell_keys.n_seeds,
            rounds.boot_round,
            {{ unnest_range('cell_keys.n_seeds') }} as draw
        from cell_keys
        cross join {{ integers_table(var('sweep_bootstrap_rounds'), 'rounds', 'boot_round') }}
        where cell_keys.n_seeds >= 2
    )

),

resampled as (

    select
        draws.cell_id,
        draws.n_seeds,
        draws.boot_round,
        cell_members.gap_final,
        row_number() over (partition by draws.cell_id, draws.boot_round order by cell_members.gap_final) as ordinal

    from draws
    inner join cell_members
        on draws.cell_id = cell_members.cell_id
        and draws.member_index = cell_members.member_index

),

bootstrap as (

    select
        cell_id,
        {{ quantile_exact('iqm', [0.025, 0.975]) }} as ci

    from (
        select
            cell_id,
            boot_round,
            {{ interquartile_mean('gap_final', 'ordinal', 'n_seeds') }} as iqm
        from resampled
        group by cell_id, boot_round
    )
    group by cell_id

),

single_seed as (

    select
        cell_members.cell_id,
        cell_members.gap_final - t_critical_95.t_critical * cell_members.gap_final_se as ci_lo,
        cell_members.gap_final + t_critical_95.t_critical * cell_members.gap_final_se as ci_hi

    from cell_members
    {{ asof_left_join_le('greatest(floor(cell_members.gap_final_df), 1)', 't_critical_95', 't_critical_95', 'df') }}
    where cell_members.n_seeds = 1
        and cell_members.gap_final is not null
        and cell_members.gap_final_se > 0

),

cells as (

    select
        cell_keys.sweep_key,
        cell_keys.cell_id,
        cell_keys.cell_config,
        cell_keys.n_seeds,
        cell_keys.n_seeds = 1 as is_single_seed,
        {{ list_agg_ordered('cell_members.run_name', 'cell_members.run_name') }} as run_names,
        {{ round_significant('observed.gap_final_iqm') }} as gap_final_iqm,
        {{ round_significant('observed.gap_final_mean') }} as gap_final_mean,
        {{ round_significant('coalesce(' ~ list_at('bootstrap.ci', 1) ~ ', single_seed.ci_lo)') }} as gap_final_ci95_lo,
        {{ round_significant('coalesce(' ~ list_at('bootstrap.ci', 2) ~ ', single_seed.ci_hi)') }} as gap_final_ci95_hi,
        count(*) filter (where cell_members.verdict = 'learning') as n_learning,
        count(*) filter (where cell_members.verdict = 'unstable') as n_unstable,
        count(*) filter (where cell_members.verdict = 'insufficient_data') as n_insufficient_data

    from cell_keys
    inner join cell_members
        on cell_keys.cell_id = cell_members.cell_id
    left join observed
        on cell_keys.cell_id = observed.cell_id
    left join bootstrap
        on cell_keys.cell_id = bootstrap.cell_id
    left join single_seed
        on cell_keys.cell_id = single_seed.cell_id
    group by all

),

ranked as (

    select
        *,
        row_number() over (
            partition by sweep_key
            order by gap_final_iqm desc nulls last, cell_id asc
        ) as rank

    from cells

),

-- every pair of cells whose intervals overlap (or that lack one) cannot be separated
inseparable as (

    select
        a.cell_id,
        {{ list_agg_ordered('b.cell_id', 'b.rank') }} as tied_with

    from ranked as a
    inner join ranked as b
        on a.sweep_key = b.sweep_key
        and a.cell_id <> b.cell_id
    where a.gap_final_ci95_lo is null
        or b.gap_final_ci95_lo is null
        or (a.gap_final_ci95_lo <= b.gap_final_ci95_hi and b.gap_final_ci95_lo <= a.gap_final_ci95_hi)
    group by a.cell_id

),

final as (

    select
        ranked.sweep_key,
        ranked.cell_id,
        ranked.rank,
        ranked.cell_config,
        ranked.n_seeds,
        ranked.is_single_seed,
        ranked.run_names,
        ranked.gap_final_iqm,
        ranked.gap_final_mean,
        ranked.gap_final_ci95_lo,
        ranked.gap_final_ci95_hi,
        ranked.n_learning,
        ranked.n_unstable,
        ranked.n_insufficient_data,
        coalesce(inseparable.tied_with, {{ empty_text_list() }}) as tied_with,
        {{ list_len('coalesce(inseparable.tied_with, ' ~ empty_text_list() ~ ')') }} > 0 as is_tie

    from ranked
    left join inseparable
        on ranked.cell_id = inseparable.cell_id

)

select * from final
