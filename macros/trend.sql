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
    DuckDB aggregates propagate NaN). Use as a CTE body:

        fits as ({{ ols_trend('points', ['run_id', 'player'], 'step', 'elo') }})

    Statistics are rounded to 12 significant digits: far below any meaningful
    precision, and it removes float noise such as 1.999999999999998 (which
    also keeps unit tests hand-checkable).

    Columns: the group columns, n_points, first_step, last_step, first_value,
    last_value, slope_per_100_steps, slope_se_per_100_steps, slope_ci95_lo,
    slope_ci95_hi, fitted_change.

    CI = slope ± t(0.975, n - 2) · SE with SE = sqrt(SSE / (n - 2) / Sxx). t
    comes from the seed t_critical_95, taking the largest df listed that is not
    above n - 2 (exact up to df 1000; beyond, never narrower than exact). The CI
    is null when it is undefined: fewer than 3 points or all points at one x.
-#}
{% macro ols_trend(points, group_by, x='step', y='value') %}

    with

    ols_fit as (

        select
            {% for column in group_by %}{{ column }},
            {% endfor %}count(*) as n_points,
            min({{ x }}) as first_step,
            max({{ x }}) as last_step,
            arg_min({{ y }}, {{ x }}) as first_value,
            arg_max({{ y }}, {{ x }}) as last_value,
            -- one point, or all at one x: no slope (DuckDB would say NaN)
            case when regr_sxx({{ y }}, {{ x }}) > 0 then regr_slope({{ y }}, {{ x }}) end as slope,
            regr_sxx({{ y }}, {{ x }}) as sxx,
            regr_syy({{ y }}, {{ x }}) as syy,
            regr_sxy({{ y }}, {{ x }}) as sxy,
            count(*) - 2 as residual_df

        from {{ points }}
        group by {% for column in group_by %}{{ column }}{% if not loop.last %}, {% endif %}{% endfor %}

    ),

    ols_with_t as (

        select
            ols_fit.*,
            -- 1.959964 = the normal quantile, for a df beyond any seed row.
            coalesce(t_critical_95.t_critical, 1.959964) as t_critical,
            case
                when ols_fit.residual_df >= 1 and ols_fit.sxx > 0
                    -- SSE = Syy - Sxy²/Sxx cancels catastrophically on a (near) perfect
                    -- fit, and parallel aggregation changes the last bits from run to
                    -- run; below 1e-12 of Syy the residual is float noise, so it is 0.
                    then sqrt(case
                                  when ols_fit.syy - ols_fit.sxy * ols_fit.sxy / ols_fit.sxx <= 1e-12 * ols_fit.syy then 0
                                  else ols_fit.syy - ols_fit.sxy * ols_fit.sxy / ols_fit.sxx
                              end / ols_fit.residual_df / ols_fit.sxx)
            end as slope_se

        from ols_fit
        asof left join {{ ref('t_critical_95') }} as t_critical_95
            on ols_fit.residual_df >= t_critical_95.df

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
            {{ round_significant('slope * (last_step - first_step)') }} as fitted_change

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


{#- `expression` rounded to `digits` significant digits (0, NaN, ±Inf and null pass through). -#}
{% macro round_significant(expression, digits=12) -%}
    case
        when ({{ expression }}) = 0 or not isfinite({{ expression }}) then ({{ expression }})
        else round(({{ expression }}), cast({{ digits - 1 }} - floor(log10(abs({{ expression }}))) as integer))
    end
{%- endmacro %}
