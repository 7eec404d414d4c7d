{#-
    Durations (seconds): the value of a mapped field when it is a finite number
    >= 0, else null, so quantiles, maxima and means never see NaN, infinity or a
    negative time. `events_duration_problem` names why a value was set aside
    (null when it was not); stg_axiom__events keeps the reasons in
    `rejected_values`. Both read the `<name>_value` (double) and `<name>_text`
    (trimmed text) columns of stg_axiom__events' `extracted` CTE.
-#}
{% macro events_duration(name) -%}
    case when {{ is_finite(name ~ '_value') }} and {{ name }}_value >= 0 then {{ name }}_value end
{%- endmacro %}


{% macro events_duration_problem(name) -%}
    case
        when {{ name }}_value is null and {{ name }}_text is not null then '{{ name }} is not a number'
        when {{ is_nan(name ~ '_value') }} then '{{ name }} is NaN'
        when {{ is_inf(name ~ '_value') }} then '{{ name }} is infinite'
        when {{ name }}_value < 0 then '{{ name }} is negative'
    end
{%- endmacro %}
