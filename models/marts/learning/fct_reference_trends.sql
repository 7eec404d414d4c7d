-- Win rate against a moving league says little; fixed references do not
-- change, so their Elo falling means the policy got stronger.
with

elo_ratings as (

    select * from {{ ref('int_elo_ratings_classified') }}

),

runs as (

    select * from {{ ref('stg_wandb__runs') }}

),

reference_points as (

    select
        run_id,
        player,
        step,
        elo

    from elo_ratings
    where player_kind = 'fixed_reference'

),

fits as (

    {{ ols_trend('reference_points', ['run_id', 'player'], x='step', y='elo', phi_floor=var('elo_noise_phi_floor')) }}

),

final as (

    select
        fits.run_id,
        runs.run_name,
        fits.player,
        fits.n_points,
        fits.first_step,
        fits.last_step,
        fits.first_value as first_elo,
        fits.last_value as last_elo,
        fits.last_value - fits.first_value as delta,
        fits.slope_per_100_steps,
        fits.slope_se_per_100_steps,
        fits.slope_ci95_lo,
        fits.slope_ci95_hi,
        fits.fitted_change,
        fits.noise_phi,
        fits.trend_df,
        {{ trend_label(var('min_elo_change'), var('min_eval_points'), 'rising', 'declining', prefix='fits.') }} as trend

    from fits
    left join runs
        on fits.run_id = runs.run_id

)

select * from final
