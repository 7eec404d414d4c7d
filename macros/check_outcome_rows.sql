{#-
    One target check as rows of fct_check_outcomes: a row per subject of
    `relation`, carrying the value, its threshold (from a dbt var) and how
    they must compare for the check to pass. Subjects whose value is null are
    skipped, so a missing metric never reads as a pass or a failure.
-#}
{% macro checks_rows(check_name, subject_type, relation, subject, value,
                     threshold_var=none, comparison='<',
                     subject_label='run_name', observed_label=none, expected_label=none,
                     not_null=none, n=none, k=none, min_n_var=none) %}
    {#- n / k: a rate's denominator and numerator: the rate gets a Wilson 95 % interval, and
        the check is judged on the interval (fct_check_outcomes); min_n_var: fewer observations
        than this var make the check inconclusive. -#}
    select
        '{{ check_name }}' as check_name,
        '{{ subject_type }}' as subject_type,
        {{ subject }} as subject,
        {{ subject_label if subject_label else 'cast(null as varchar)' }} as subject_label,
        cast({{ value }} as double) as value,
        {{ checks_threshold(threshold_var) if threshold_var else 'cast(null as double)' }} as threshold,
        '{{ comparison }}' as comparison,
        {{ observed_label if observed_label else 'cast(null as varchar)' }} as observed_label,
        {{ "'" ~ expected_label ~ "'" if expected_label else 'cast(null as varchar)' }} as expected_label,
        {{ 'cast(' ~ n ~ ' as bigint)' if n else 'cast(null as bigint)' }} as n_observations,
        {{ checks_threshold(min_n_var) if min_n_var else 'cast(null as double)' }} as min_observations,
        {% if n and k -%}
        {{ wilson_bound(k, n, -1) }} as ci95_lo,
        {{ wilson_bound(k, n, 1) }} as ci95_hi
        {%- else -%}
        cast(null as double) as ci95_lo,
        cast(null as double) as ci95_hi
        {%- endif %}
    from {{ relation }}
    where {{ not_null if not_null else value }} is not null
{% endmacro %}


{#- A threshold from the `vars:` block as a double; fails the compile, naming the var, when it is missing. -#}
{% macro checks_threshold(name) -%}
    {%- set value = var(name, none) -%}
    {%- if value is none -%}
        {{ exceptions.raise_compiler_error("var '" ~ name ~ "' is missing from dbt_project.yml vars; the checks read their thresholds there") }}
    {%- endif -%}
    cast({{ value }} as double)
{%- endmacro %}
