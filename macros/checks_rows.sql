{#-
    One target check as rows of fct_check_outcomes: a row per subject of
    `relation`, carrying the value, its threshold (from a dbt var) and how
    they must compare for the check to pass. Subjects whose value is null are
    skipped, so a missing metric never reads as a pass or a failure.
-#}
{% macro checks_rows(check_name, subject_type, relation, subject, value,
                     threshold_var=none, comparison='<', severity='error',
                     subject_label='run_name', observed_label=none, expected_label=none,
                     not_null=none) %}
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
        '{{ severity }}' as severity
    from {{ relation }}
    where {{ not_null if not_null else value }} is not null
{% endmacro %}
