{#- `expression` rounded to `digits` significant digits (0, NaN, ±Inf and null pass through). -#}
{% macro round_significant(expression, digits=12) -%}
    case
        when ({{ expression }}) = 0 or not {{ is_finite(expression) }} then ({{ expression }})
        else {{ round_to_places('(' ~ expression ~ ')', 'cast(' ~ (digits - 1) ~ ' - floor(log10(abs(' ~ expression ~ '))) as integer)') }}
    end
{%- endmacro %}
