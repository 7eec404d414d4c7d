{#- A Python/Jinja string as a SQL string literal. -#}
{% macro sql_string_literal(text) -%}
    {{- return(adapter.dispatch('sql_string_literal')(text)) -}}
{%- endmacro %}

{% macro default__sql_string_literal(text) -%}
    {{- return("'" ~ (text | replace("'", "''")) ~ "'") -}}
{%- endmacro %}

{#- Spark reads literals raw (spark.sql.parser.escapedStringLiterals, profiles.yml): a doubled
    quote is two quotes there, so text holding a single quote goes between double quotes. -#}
{% macro spark__sql_string_literal(text) -%}
    {%- if "'" not in text -%}
        {{- return("'" ~ text ~ "'") -}}
    {%- elif '"' not in text -%}
        {{- return('"' ~ text ~ '"') -}}
    {%- else -%}
        {{- exceptions.raise_compiler_error("Spark SQL cannot write this text as a literal (both quote kinds): " ~ text) -}}
    {%- endif -%}
{%- endmacro %}


{#- A SQL text literal for a value from dbt_project.yml vars (quotes doubled). -#}
{% macro wb_text_literal(value) -%}
    {{ sql_string_literal(value | string) }}
{%- endmacro %}
