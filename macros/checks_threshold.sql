{#- A threshold from the `vars:` block as a double; fails the compile, naming the var, when it is missing. -#}
{% macro checks_threshold(name) -%}
    {%- set value = var(name, none) -%}
    {%- if value is none -%}
        {{ exceptions.raise_compiler_error("var '" ~ name ~ "' is missing from dbt_project.yml vars; the checks read their thresholds there") }}
    {%- endif -%}
    cast({{ value }} as double)
{%- endmacro %}
