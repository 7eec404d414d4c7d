{#- A Python/Jinja string as a SQL string literal. -#}
{% macro sql_string_literal(text) -%}
    {{- return("'" ~ (text | replace("'", "''")) ~ "'") -}}
{%- endmacro %}


{#- A SQL text literal for a value from dbt_project.yml vars (quotes doubled). -#}
{% macro wb_text_literal(value) -%}
    '{{ value | string | replace("'", "''") }}'
{%- endmacro %}
