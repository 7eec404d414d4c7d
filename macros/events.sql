{#
    Event field extraction, driven by the `event_fields` var (our name -> the
    field name in the user's events). Every staging column that comes out of
    the raw `record` JSON goes through these macros, so remapping a field in
    dbt_project.yml (or with `--vars`) changes every model at once.

    A mapped name that starts with `$` is used as a JSON path as-is, so nested
    fields work too (e.g. duration_s: '$.timing.elapsed'). A name missing from
    the mapping falls back to our own name: `--vars '{event_fields: {...}}'`
    replaces the whole dict, and a partial override should not silently turn
    every other field into null.
#}

{% macro events_field_path(name) -%}
    {%- set mapping = var('event_fields', {}) -%}
    {%- set field = mapping.get(name, name) if mapping is mapping else name -%}
    {%- if field is none or field | string | trim == '' -%}
        {{ exceptions.raise_compiler_error("event field '" ~ name ~ "' is mapped to an empty name in var event_fields") }}
    {%- endif -%}
    {%- set field = field | string -%}
    {%- if field.startswith('$') -%}
        {{ return(field) }}
    {%- else -%}
        {#- quoted member name: dots, spaces and dashes in field names stay literal -#}
        {{ return('$."' ~ field.replace('\\', '\\\\').replace('"', '\\"') ~ '"') }}
    {%- endif -%}
{%- endmacro %}


{% macro event_field(name, column='record') -%}
    json_extract_string({{ column }}, '{{ events_field_path(name) | replace("'", "''") }}')
{%- endmacro %}


{#- Numbers may arrive as JSON ints, floats or numeric strings; anything else is null. -#}
{% macro events_field_double(name, column='record') -%}
    try_cast({{ event_field(name, column) }} as double)
{%- endmacro %}


{% macro events_field_text(name, column='record') -%}
    nullif(trim({{ event_field(name, column) }}), '')
{%- endmacro %}


{#- An hour as the ISO text used as a check subject, e.g. 2024-05-01T13:00:00Z. -#}
{% macro events_hour_text(column) -%}
    strftime({{ column }} at time zone 'UTC', '%Y-%m-%dT%H:%M:%SZ')
{%- endmacro %}


{#- Seconds between two timestamps, as a double. -#}
{% macro events_seconds_between(start_at, end_at) -%}
    (epoch({{ end_at }}) - epoch({{ start_at }}))
{%- endmacro %}


{#-
    Every mapped field of an event in ONE JSON parse: json_extract_string with a
    list of paths parses the record once and returns the values in path order
    (separate extractions parse it once per field, ~7x slower on 1M events).
    Use `events_fields_list()` once per row as a column, then
    `events_parsed(name, column)` to pick a field from it.
-#}


{#- The fields parsed into every typed event, in the order of the `fields` list (our names). -#}
{% macro events_parsed_field_names() -%}
    {{ return(['time', 'event', 'level', 'run_id', 'rollout_id', 'duration_s', 'status', 'engine',
               'worker', 'latency_s', 'tokens_per_s', 'batch_size', 'queue_s', 'orders_expected',
               'orders_extracted', 'component', 'error_type', 'message', 'host', 'gpu_util',
               'gpu_mem_gb']) }}
{%- endmacro %}

{% macro events_fields_list(column='record') -%}
    json_extract_string({{ column }}, [
        {%- for name in events_parsed_field_names() -%}
        '{{ events_field_path(name) | replace("'", "''") }}'{{ ", " if not loop.last }}
        {%- endfor -%}
    ])
{%- endmacro %}

{% macro events_parsed(name, column='fields') -%}
    {{ column }}[{{ events_parsed_field_names().index(name) + 1 }}]
{%- endmacro %}

{% macro events_parsed_double(name) -%}
    try_cast({{ events_parsed(name) }} as double)
{%- endmacro %}

{% macro events_parsed_text(name) -%}
    nullif(trim({{ events_parsed(name) }}), '')
{%- endmacro %}

{% macro events_parsed_lower(name) -%}
    lower(nullif(trim({{ events_parsed(name) }}), ''))
{%- endmacro %}


{#-
    Durations (seconds): the value of a mapped field when it is a finite number
    >= 0, else null, so quantiles, maxima and means never see NaN, infinity or a
    negative time. `events_duration_problem` names why a value was set aside
    (null when it was not); stg_axiom__events keeps the reasons in
    `rejected_values`. Both read the `<name>_value` (double) and `<name>_text`
    (trimmed text) columns of stg_axiom__events' `extracted` CTE.
-#}
{% macro events_duration(name) -%}
    case when isfinite({{ name }}_value) and {{ name }}_value >= 0 then {{ name }}_value end
{%- endmacro %}

{% macro events_duration_problem(name) -%}
    case
        when {{ name }}_value is null and {{ name }}_text is not null then '{{ name }} is not a number'
        when isnan({{ name }}_value) then '{{ name }} is NaN'
        when isinf({{ name }}_value) then '{{ name }} is infinite'
        when {{ name }}_value < 0 then '{{ name }} is negative'
    end
{%- endmacro %}


{#- The `rollout_ok_statuses` var as a SQL list of lower-cased literals: statuses that are no failure. -#}
{% macro events_rollout_ok_statuses() -%}
    {%- set statuses = var('rollout_ok_statuses', ['ok']) -%}
    {%- if statuses is string or statuses | length == 0 -%}
        {{ exceptions.raise_compiler_error("var rollout_ok_statuses must be a non-empty list of statuses") }}
    {%- endif -%}
    {%- for s in statuses -%}
        {{ sql_string_literal(s | string | trim | lower) }}{{ ", " if not loop.last }}
    {%- endfor -%}
{%- endmacro %}


{#-
    SQL: the events of `relation` (stg_axiom__events) with `run_id` replaced by the
    run their label joins (fct_event_run_labels: by run id, else by a unique run
    display name), else by the label itself (an unjoined label keeps its own rows,
    named in the answers); the label as written is kept as `run_label`. Models using
    it are incremental per run and recompute every row when the label→run mapping
    changes (incremental_settings_hash includes it).
-#}
{% macro events_with_run_key(relation) -%}
    select
        keyed_events.* replace (coalesce(event_run_labels.run_key, keyed_events.run_id) as run_id),
        keyed_events.run_id as run_label
    from {{ relation }} as keyed_events
    left join {{ ref('fct_event_run_labels') }} as event_run_labels
        on event_run_labels.run_label = keyed_events.run_id
{%- endmacro %}


{#-
    A fingerprint of the label→run mapping (fct_event_run_labels), '' before it
    exists: part of the settings hash of every model that depends on the mapping,
    so a run that arrives or is renamed (and so changes which run a label joins)
    recomputes those models whole instead of leaving rows under the old key.
-#}
{% macro event_run_map_fingerprint() -%}
    {%- if not execute -%}
        {{- return('') -}}
    {%- endif -%}
    {%- set mapping = ref('fct_event_run_labels') -%}
    {%- set relation = adapter.get_relation(database=mapping.database, schema=mapping.schema, identifier=mapping.identifier) -%}
    {%- if relation is none -%}
        {{- return('') -}}
    {%- endif -%}
    {%- set query -%}
        select coalesce(md5(string_agg(run_label || chr(31) || run_key, chr(30) order by run_label)), '')
        from {{ relation }}
    {%- endset -%}
    {{- return(run_query(query).columns[0].values()[0]) -}}
{%- endmacro %}
