{#-
    A bound of the Wilson score 95 % interval of the share k / n (sign -1 the lower, 1 the
    upper): (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n), z = 1.959964. Null for n = 0.
-#}
{% macro wilson_bound(k, n, sign) -%}
    case when ({{ n }}) > 0 then
        (
            cast({{ k }} as double) / ({{ n }}) + 1.959964 * 1.959964 / (2.0 * ({{ n }}))
            {{ '+' if sign > 0 else '-' }} 1.959964 * sqrt(
                (cast({{ k }} as double) / ({{ n }})) * (1 - cast({{ k }} as double) / ({{ n }})) / ({{ n }})
                + 1.959964 * 1.959964 / (4.0 * ({{ n }}) * ({{ n }}))
            )
        ) / (1 + 1.959964 * 1.959964 / ({{ n }}))
    end
{%- endmacro %}
