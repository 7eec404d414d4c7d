with

gaps as (

    select * from {{ ref('fct_checkpoint_gaps') }}

),

gap_points as (

    select
        run_id,
        step,
        gap

    from gaps

),

fits as (

    {{ ols_trend('gap_points', ['run_id'], x='step', y='gap', phi_floor=var('elo_noise_phi_floor')) }}

),

-- The final gap averages the last few evaluations, because a single last
-- Elo reading is as noisy as any other. Its standard error must allow for the
-- same autocorrelation as the trend: n consecutive readings of AR(1) noise
-- carry less than n readings' worth of information. Var(mean of n) =
-- sigma^2 / n * f, f = 1 + 2 sum_{k<n} (1 - k/n) phi^k
--   = (1 + phi) / (1 - phi) - 2 phi (1 - phi^n) / (n (1 - phi)^2),
-- with phi and sigma from the whole series' trend fit (noise_phi, noise_sd;
-- sigma's degrees of freedom are the fit's trend_df). A plain sd / sqrt(n)
-- over the last 5 points called equally strong runs different in 38-64 % of
-- simulated sweeps at phi 0.8 (bench/calibration.py --sweeps).
final_window as (

    select
        run_id,
        gap

    from gap_points
    qualify row_number() over (partition by run_id order by step desc) <= {{ var('final_gap_window') }}

),

final_gaps as (

    select
        run_id,
        avg(gap) as gap_final,
        count(*) as gap_final_n_points

    from final_window
    group by run_id

),

run_names as (

    select distinct
        run_id,
        run_name

    from gaps

),

final as (

    select
        fits.run_id,
        run_names.run_name,
        fits.n_points,
        fits.first_step,
        fits.last_step,
        fits.first_value as gap_first,
        fits.last_value as gap_last,
        fits.last_value - fits.first_value as gap_delta,
        {{ round_significant('final_gaps.gap_final') }} as gap_final,
        {{ round_significant(
            'fits.noise_sd * sqrt(case when fits.noise_phi = 0 then 1.0 else'
            ~ ' (1 + fits.noise_phi) / (1 - fits.noise_phi)'
            ~ ' - 2 * fits.noise_phi * (1 - power(fits.noise_phi, final_gaps.gap_final_n_points))'
            ~ ' / (final_gaps.gap_final_n_points * power(1 - fits.noise_phi, 2)) end'
            ~ ' / final_gaps.gap_final_n_points)'
        ) }} as gap_final_se,
        fits.trend_df as gap_final_df,
        -- Var(gap_final) / sigma^2: the sweep ranking multiplies it by its runs' pooled noise variance
        {{ round_significant(
            'case when fits.noise_sd is null then null when fits.noise_phi = 0 then 1.0 / final_gaps.gap_final_n_points else ('
            ~ ' (1 + fits.noise_phi) / (1 - fits.noise_phi)'
            ~ ' - 2 * fits.noise_phi * (1 - power(fits.noise_phi, final_gaps.gap_final_n_points))'
            ~ ' / (final_gaps.gap_final_n_points * power(1 - fits.noise_phi, 2))'
            ~ ') / final_gaps.gap_final_n_points end'
        ) }} as gap_final_variance_factor,
        fits.noise_sd,
        final_gaps.gap_final_n_points,
        fits.slope_per_100_steps,
        fits.slope_se_per_100_steps,
        fits.slope_ci95_lo,
        fits.slope_ci95_hi,
        fits.fitted_change,
        fits.noise_phi,
        fits.trend_df,
        {{ trend_label(var('min_elo_change'), var('min_eval_points'), 'growing', 'shrinking', prefix='fits.') }} as trend

    from fits
    inner join final_gaps
        on fits.run_id = final_gaps.run_id
    left join run_names
        on fits.run_id = run_names.run_id

)

select * from final
