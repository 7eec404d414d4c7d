{#-
    The interquartile mean of `value` over a group, as scipy.stats.trim_mean(x, 0.25): drop
    floor(n / 4) values at each end and average the rest. `ordinal` is the value's 1-based rank
    in its group (row_number() ordered by the value), `n` the group's size.
-#}
{% macro interquartile_mean(value, ordinal, n) -%}
    avg({{ value }}) filter (where {{ ordinal }} > floor({{ n }} / 4) and {{ ordinal }} <= {{ n }} - floor({{ n }} / 4))
{%- endmacro %}
