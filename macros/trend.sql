{#-
    Trend statistics shared by fixed-reference Elo, checkpoint gaps and reward.

    A trend counts only when it is statistically clear (the 95 % confidence
    interval of the least-squares slope excludes zero) AND material (the fitted
    change over the observed steps is at least `min_change`), so a verdict
    never comes from noise.
-#}


{#-
    One row per `group_by` group: an ordinary least-squares fit of `y` on `x`
    over `points` (a relation or CTE name; pass finite values only, because
    DuckDB aggregates propagate NaN), with a 95 % interval that allows for
    serially correlated noise. Use as a CTE body:

        fits as ({{ ols_trend('points', ['run_id', 'player'], 'step', 'elo', phi_floor=var('elo_noise_phi_floor')) }})

    Why: an online Elo rating starts each update from the previous one, so
    the noise of a fixed player's rating is autocorrelated (about AR(1)), and
    the textbook OLS interval, which assumes independent noise, calls a flat
    series a trend far more often than 5 % of the time.

    How: phi, the noise's lag-1 autocorrelation, is the residuals' lag-1
    autocorrelation r1 corrected for its small-sample bias (r1 + (1 + 4 r1)/n),
    never below `phi_floor` (the least autocorrelation assumed for the
    series) and at most 0.95, rounded up to the next 0.05. The seed
    ar1_trend_factors (scripts/make_ar1_table.py) gives, for that phi and n
    equally spaced points, the exact inflation of the slope's variance, the
    expected residual sum of squares and Satterthwaite's degrees of freedom:
    SE = sqrt(SSE / residual_trace · variance_factor / Sxx), CI = slope ±
    t(0.975, df) · SE. With phi = 0 this is the textbook interval. var
    trend_autocorrelation = false switches the correction off (phi = 0).

    Statistics are rounded to 12 significant digits: far below any meaningful
    precision, and it removes float noise such as 1.999999999999998 (which
    also keeps unit tests hand-checkable).

    Columns: the group columns, n_points, first_step, last_step, first_value,
    last_value, slope_per_100_steps, slope_se_per_100_steps, slope_ci95_lo,
    slope_ci95_hi, fitted_change, noise_phi (the phi used), noise_sd (the noise's
    standard deviation, SSE / tr(MR) under it), trend_df.

    t comes from the seed t_critical_95, taking the largest df listed that is
    not above the needed one (never narrower than exact). The CI is null when
    it is undefined: fewer than 3 points or all points at one x.
-#}
{% macro ols_trend(points, group_by, x='step', y='value', phi_floor=0) %}

    {%- set groups -%}{% for column in group_by %}{{ column }}{% if not loop.last %}, {% endif %}{% endfor %}{%- endset %}
    with

    ols_fit as (

        select
            {{ groups }},
            count(*) as n_points,
            min({{ x }}) as first_step,
            max({{ x }}) as last_step,
            {{ value_at_min(y, x) }} as first_value,
            {{ value_at_max(y, x) }} as last_value,
            -- one point, or all at one x: no slope (DuckDB would say NaN)
            case when regr_sxx({{ y }}, {{ x }}) > 0 then regr_slope({{ y }}, {{ x }}) end as slope,
            regr_intercept({{ y }}, {{ x }}) as intercept,
            regr_sxx({{ y }}, {{ x }}) as sxx,
            regr_syy({{ y }}, {{ x }}) as syy,
            regr_sxy({{ y }}, {{ x }}) as sxy,
            count(*) - 2 as residual_df

        from {{ points }}
        group by {{ groups }}

    ),

    {%- if var('trend_autocorrelation', true) %}

    ols_residuals as (

        select
            {% for column in group_by %}ols_points.{{ column }},
            {% endfor %}ols_points.{{ x }} as x,
            ols_points.{{ y }} - (ols_fit.intercept + ols_fit.slope * ols_points.{{ x }}) as residual

        from {{ points }} as ols_points
        inner join ols_fit
            using ({{ groups }})
        where ols_fit.slope is not null

    ),

    ols_lagged as (

        select
            {{ groups }},
            residual,
            lag(residual) over (partition by {{ groups }} order by x) as previous_residual

        from ols_residuals

    ),

    ols_autocorrelation as (

        select
            {{ groups }},
            sum(residual * previous_residual) / nullif(sum(residual * residual), 0) as residual_r1

        from ols_lagged
        group by {{ groups }}

    ),

    {%- endif %}

    ols_phi as (

        select
            ols_fit.*,
            {%- if var('trend_autocorrelation', true) %}
            -- bias-corrected lag-1 autocorrelation, floored, capped, rounded up to the seed's 0.05 grid
            cast(ceil(20 * least(0.95, greatest(
                {{ phi_floor }},
                coalesce(ols_autocorrelation.residual_r1 + (1 + 4 * ols_autocorrelation.residual_r1) / ols_fit.n_points, 0)
            )) - 1e-9) / 20 as decimal(3, 2)) as noise_phi
            {%- else %}
            cast(0 as decimal(3, 2)) as noise_phi
            {%- endif %}

        from ols_fit
        {%- if var('trend_autocorrelation', true) %}
        left join ols_autocorrelation
            using ({{ groups }})
        {%- endif %}

    ),

    ols_factors as (

        select
            ols_phi.*,
            case
                when ols_phi.n_points <= 400 then ar1.residual_trace
                else ar1.residual_trace * ols_phi.n_points / 400
            end as residual_trace,
            ar1.variance_factor,
            case
                when ols_phi.n_points <= 400 then ar1.df
                else ar1.df * ols_phi.n_points / 400
            end as trend_df

        from ols_phi
        left join {{ ref('ar1_trend_factors') }} as ar1
            on ar1.phi = ols_phi.noise_phi
            and ar1.n_points = least(ols_phi.n_points, 400)

    ),

    ols_with_t as (

        select
            ols_factors.*,
            -- 1.959964 = the normal quantile, for a df beyond any seed row.
            coalesce(t_critical_95.t_critical, 1.959964) as t_critical,
            case
                when ols_factors.residual_df >= 1 and ols_factors.sxx > 0
                    -- SSE = Syy - Sxy²/Sxx cancels catastrophically on a (near) perfect
                    -- fit, and parallel aggregation changes the last bits from run to
                    -- run; below 1e-12 of Syy the residual is float noise, so it is 0.
                    then sqrt(case
                                  when ols_factors.syy - ols_factors.sxy * ols_factors.sxy / ols_factors.sxx <= 1e-12 * ols_factors.syy then 0
                                  else ols_factors.syy - ols_factors.sxy * ols_factors.sxy / ols_factors.sxx
                              end / ols_factors.residual_trace * ols_factors.variance_factor / ols_factors.sxx)
            end as slope_se,
            -- the noise's standard deviation: SSE / tr(MR) is unbiased for AR(1) noise of that phi
            case
                when ols_factors.residual_df >= 1 and ols_factors.sxx > 0
                    then sqrt(greatest(ols_factors.syy - ols_factors.sxy * ols_factors.sxy / ols_factors.sxx, 0)
                              / ols_factors.residual_trace)
            end as noise_sd

        from ols_factors
        -- Satterthwaite's df is fractional: the largest listed df not above it (a wider interval)
        {{ asof_left_join_le('greatest(ols_factors.trend_df, 1)', ref('t_critical_95'), 't_critical_95', 'df') }}

    ),

    ols_trend_final as (

        select
            {% for column in group_by %}{{ column }},
            {% endfor %}n_points,
            first_step,
            last_step,
            first_value,
            last_value,
            {{ round_significant('100 * slope') }} as slope_per_100_steps,
            {{ round_significant('100 * slope_se') }} as slope_se_per_100_steps,
            {{ round_significant('100 * (slope - t_critical * slope_se)') }} as slope_ci95_lo,
            {{ round_significant('100 * (slope + t_critical * slope_se)') }} as slope_ci95_hi,
            {{ round_significant('slope * (last_step - first_step)') }} as fitted_change,
            cast(noise_phi as double) as noise_phi,
            {{ round_significant('noise_sd') }} as noise_sd,
            {{ round_significant('trend_df') }} as trend_df

        from ols_with_t

    )

    select * from ols_trend_final

{% endmacro %}


{#-
    The trend label of a fit from ols_trend: `up_label` / `down_label` when the
    CI excludes zero and |fitted_change| >= min_change; 'insufficient_data'
    below min_points points (at least 3, the fewest with a CI); else 'stable'.
-#}
{% macro trend_label(min_change, min_points, up_label, down_label, prefix='') %}
    case
        when {{ prefix }}n_points < greatest({{ min_points }}, 3)
            or {{ prefix }}slope_ci95_lo is null
            then 'insufficient_data'
        when {{ prefix }}slope_ci95_lo > 0 and {{ prefix }}fitted_change >= {{ min_change }}
            then '{{ up_label }}'
        when {{ prefix }}slope_ci95_hi < 0 and {{ prefix }}fitted_change <= -({{ min_change }})
            then '{{ down_label }}'
        else 'stable'
    end
{% endmacro %}
