

{#- True when `expression` matches any regular expression in `patterns`. -#}
{% macro wb_matches_any(expression, patterns) -%}
    {%- if patterns | length == 0 -%}
        false
    {%- else -%}
        ({% for pattern in patterns %}{{ regex_matches(expression, wb_text_literal(pattern)) }}{% if not loop.last %} or {% endif %}{% endfor %})
    {%- endif -%}
{%- endmacro %}


{#- The Elo prefix (var elo_metric_prefix) as a path (`.` read as `/`, like the keys). -#}
{% macro elo_prefix_path() -%}
    {%- set prefix = var('elo_metric_prefix') | string -%}
    {%- if prefix | trim == '' -%}
        {{ exceptions.raise_compiler_error("var elo_metric_prefix must name a prefix such as 'elo/'") }}
    {%- endif -%}
    {{- wb_text_literal(prefix | replace('.', '/')) -}}
{%- endmacro %}


{#- True when metric key `expression` is an Elo rating: its path starts with the Elo prefix. -#}
{% macro is_elo_metric(expression) -%}
    {{ text_starts_with(metric_path(expression), elo_prefix_path()) }}
{%- endmacro %}


{#- The player of an Elo metric key: what follows the prefix and its separator, as logged. -#}
{% macro elo_player(expression) -%}
    substr({{ expression }}, length({{ elo_prefix_path() }}) + 1)
{%- endmacro %}


{#-
    The kind of an Elo player: 'fixed_reference' (var fixed_reference_patterns),
    else 'checkpoint' (var checkpoint_patterns), else 'unclassified' (named by
    `grpo elo` with the vars to set).
-#}
{% macro elo_player_kind(player) -%}
    case
        when {{ wb_matches_any(player, var('fixed_reference_patterns')) }} then 'fixed_reference'
        when {{ wb_matches_any(player, var('checkpoint_patterns')) }} then 'checkpoint'
        else 'unclassified'
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
            when {{ regex_matches(player, wb_text_literal(pattern)) }}
                then try_cast(nullif(regexp_extract({{ player }}, {{ wb_text_literal(pattern) }}, 1), '') as bigint)
            {% endfor -%}
        end
    {%- endif -%}
{%- endmacro %}
