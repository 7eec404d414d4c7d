{#- An hour as the ISO text used as a check subject, e.g. 2024-05-01T13:00:00Z. -#}
{% macro events_hour_text(column) -%}
    strftime({{ column }} at time zone 'UTC', '%Y-%m-%dT%H:%M:%SZ')
{%- endmacro %}


{#- Seconds between two timestamps, as a double. -#}
{% macro events_seconds_between(start_at, end_at) -%}
    (epoch({{ end_at }}) - epoch({{ start_at }}))
{%- endmacro %}
