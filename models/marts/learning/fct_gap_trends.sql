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
-- Elo reading is as noisy as any other.
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
        case
            when count(*) >= 2 then stddev_samp(gap) / sqrt(count(*))
        end as gap_final_se,
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
        {{ round_significant('final_gaps.gap_final_se') }} as gap_final_se,
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
