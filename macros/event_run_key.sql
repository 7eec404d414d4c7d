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
        {{ events_run_key_columns(relation) }},
        keyed_events.run_id as run_label
    from {{ relation }} as keyed_events
    left join {{ ref('fct_event_run_labels') }} as event_run_labels
        on event_run_labels.run_label = keyed_events.run_id
{%- endmacro %}


{#- Every column of the events with run_id replaced in place (DuckDB: `* replace`). -#}
{% macro events_run_key_columns(relation) -%}
    {{- return(adapter.dispatch('events_run_key_columns')(relation)) -}}
{%- endmacro %}

{% macro default__events_run_key_columns(relation) -%}
    keyed_events.* replace (coalesce(event_run_labels.run_key, keyed_events.run_id) as run_id)
{%- endmacro %}

{#- Spark has no `* replace`: the columns are listed, run_id in its place. -#}
{% macro spark__events_run_key_columns(relation) -%}
    {%- set columns = adapter.get_columns_in_relation(relation) | map(attribute='name') | list if execute else ['run_id'] -%}
    {%- for c in columns %}
        {% if c | lower == 'run_id' %}coalesce(event_run_labels.run_key, keyed_events.run_id) as run_id{% else %}keyed_events.{{ c }}{% endif %}{{ ',' if not loop.last }}
    {%- endfor %}
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
        select coalesce(md5({{ string_agg_ordered("run_label || chr(31) || run_key", 'chr(30)', 'run_label') }}), '')
        from {{ relation }}
    {%- endset -%}
    {{- return(run_query(query).columns[0].values()[0]) -}}
{%- endmacro %}
