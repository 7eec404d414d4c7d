{#- The `rollout_ok_statuses` var as a SQL list of lower-cased literals: statuses that are no failure. -#}
{% macro events_rollout_ok_statuses() -%}
    {%- set statuses = var('rollout_ok_statuses', ['ok']) -%}
    {%- if statuses is string or statuses | length == 0 -%}
        {{ exceptions.raise_compiler_error("var rollout_ok_statuses must be a non-empty list of statuses") }}
    {%- endif -%}
    {%- for s in statuses -%}
        {{ sql_string_literal(s | string | trim | lower) }}{{ ", " if not loop.last }}
    {%- endfor -%}
{%- endmacro %}
