{#- An hour as the ISO text used as a check subject, e.g. 2024-05-01T13:00:00Z. -#}
{% macro events_hour_text(column) -%}
    {{ iso_utc_text(column) }}
{%- endmacro %}


{#- Seconds between two timestamps, as a double. -#}
{% macro events_seconds_between(start_at, end_at) -%}
    ({{ epoch_seconds(end_at) }} - {{ epoch_seconds(start_at) }})
{%- endmacro %}
