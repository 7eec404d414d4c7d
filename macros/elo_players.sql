{#- A SQL text literal for a value from dbt_project.yml vars (quotes doubled). -#}
{% macro wb_text_literal(value) -%}
    '{{ value | string | replace("'", "''") }}'
{%- endmacro %}


{#- True when `expression` matches any regular expression in `patterns`. -#}
{% macro wb_matches_any(expression, patterns) -%}
    {%- if patterns | length == 0 -%}
        false
    {%- else -%}
        ({% for pattern in patterns %}regexp_matches({{ expression }}, {{ wb_text_literal(pattern) }}){% if not loop.last %} or {% endif %}{% endfor %})
    {%- endif -%}
{%- endmacro %}


{#-
    The kind of an Elo player: 'fixed_reference' (var fixed_reference_patterns),
    else 'checkpoint' (var checkpoint_patterns), else 'other'.
-#}
{% macro elo_player_kind(player) -%}
    case
        when {{ wb_matches_any(player, var('fixed_reference_patterns')) }} then 'fixed_reference'
        when {{ wb_matches_any(player, var('checkpoint_patterns')) }} then 'checkpoint'
        else 'other'
    end
{%- endmacro %}


{#- The training step of a checkpoint player: group 1 of the first checkpoint pattern that matches. -#}
{% macro elo_checkpoint_step(player) -%}
    {%- set patterns = var('checkpoint_patterns') -%}
    {%- if patterns | length == 0 -%}
        cast(null as bigint)
    {%- else -%}
        case
            {% for pattern in patterns -%}
            when regexp_matches({{ player }}, {{ wb_text_literal(pattern) }})
                then try_cast(nullif(regexp_extract({{ player }}, {{ wb_text_literal(pattern) }}, 1), '') as bigint)
            {% endfor -%}
        end
    {%- endif -%}
{%- endmacro %}
