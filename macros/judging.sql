{#-
    How a value is judged against its target: the one home of the rule. dbt expands these
    macros in fct_check_outcomes, and pipelines/answers/judging.py renders the same file
    for the CLI's arbitrary time windows, so both must stay plain Jinja (no var(), no
    adapter calls): every argument is an SQL expression.
-#}


{#-
    A bound of the Wilson score 95 % interval of the share k / n (sign -1 the lower, 1 the
    upper): (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n), z = 1.959964, held to
    [0, 1] against rounding. Null for n = 0.
-#}
{% macro wilson_bound(k, n, sign) -%}
    case when ({{ n }}) > 0 then
        {{ 'least(1.0, ' if sign > 0 else 'greatest(0.0, ' }}(
            cast({{ k }} as double) / ({{ n }}) + 1.959964 * 1.959964 / (2.0 * ({{ n }}))
            {{ '+' if sign > 0 else '-' }} 1.959964 * sqrt(
                (cast({{ k }} as double) / ({{ n }})) * (1 - cast({{ k }} as double) / ({{ n }})) / ({{ n }})
                + 1.959964 * 1.959964 / (4.0 * ({{ n }}) * ({{ n }}))
            )
        ) / (1 + 1.959964 * 1.959964 / ({{ n }})))
    end
{%- endmacro %}


{#-
    pass | fail | inconclusive for one value against its target.
    A rate (with its Wilson 95 % interval ci95_lo..ci95_hi) passes only when the whole
    interval meets the target and fails only when the whole interval misses it; an interval
    that straddles the target, or fewer observations than the minimum, is inconclusive
    (0 failures in 50 rollouts does not prove an error rate under 1 %). Any other value is
    compared as it is: NaN compares greater than every number in DuckDB, so a NaN metric
    fails '<' checks. comparison 'is' passes when observed_label equals expected_label.
-#}
{% macro judge_outcome(value, threshold, comparison, n_observations, min_observations, ci95_lo, ci95_hi,
                       observed_label='cast(null as varchar)', expected_label='cast(null as varchar)') -%}
    case
        when {{ min_observations }} is not null and coalesce({{ n_observations }}, 0) < {{ min_observations }}
            then 'inconclusive'
        when {{ ci95_lo }} is not null and {{ comparison }} = '<' and {{ ci95_hi }} < {{ threshold }} then 'pass'
        when {{ ci95_lo }} is not null and {{ comparison }} = '<' and {{ ci95_lo }} >= {{ threshold }} then 'fail'
        when {{ ci95_lo }} is not null and {{ comparison }} = '>' and {{ ci95_lo }} > {{ threshold }} then 'pass'
        when {{ ci95_lo }} is not null and {{ comparison }} = '>' and {{ ci95_hi }} <= {{ threshold }} then 'fail'
        when {{ ci95_lo }} is not null then 'inconclusive'
        when coalesce(
            case {{ comparison }}
                when '<' then {{ value }} < {{ threshold }}
                when '<=' then {{ value }} <= {{ threshold }}
                when '>' then {{ value }} > {{ threshold }}
                when '>=' then {{ value }} >= {{ threshold }}
                when 'is' then {{ observed_label }} = {{ expected_label }}
            end,
            false
        ) then 'pass'
        else 'fail'
    end
{%- endmacro %}


{#-
    down | stale | degraded | ok for a component silent for `silent_s` seconds whose last
    heartbeat said `last_status`: silent longer than `down_after_s` is down, longer than
    `stale_after_s` stale (even if its last word was healthy); otherwise a last status outside
    `ok_statuses` (a list of words, compared in lower case) is degraded.
-#}
{% macro component_status(silent_s, last_status, down_after_s, stale_after_s, ok_statuses) -%}
    case
        when {{ silent_s }} > {{ down_after_s }} then 'down'
        when {{ silent_s }} > {{ stale_after_s }} then 'stale'
        when {{ last_status }} is not null
            and lower({{ last_status }}) not in (
                {%- for s in ok_statuses %}'{{ s | lower | replace("'", "''") }}'{{ ', ' if not loop.last }}{% endfor -%}
            ) then 'degraded'
        else 'ok'
    end
{%- endmacro %}
