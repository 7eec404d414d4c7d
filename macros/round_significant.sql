{#- `expression` rounded to `digits` significant digits (0, NaN, ±Inf and null pass through). -#}
{% macro round_significant(expression, digits=12) -%}
    case
        when ({{ expression }}) = 0 or not isfinite({{ expression }}) then ({{ expression }})
        else round(({{ expression }}), cast({{ digits - 1 }} - floor(log10(abs({{ expression }}))) as integer))
    end
{%- endmacro %}
