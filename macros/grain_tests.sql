{#-
    Generic test for composite keys (dbt_utils is not available offline):
    fails with one row per key value that occurs more than once. Nulls
    group together, so a key column that may be null cannot hide a duplicate.
    The one grain test of the project (unique_grain_since below is its
    incremental form for the big append-only tables).

        data_tests:
          - unique_grain:
              arguments:
                columns: [run_id, step, metric_key]
-#}
{% test unique_grain(model, columns) %}

select
    {{ columns | join(', ') }},
    count(*) as n_rows

from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1

{% endtest %}


{#-
    The newest raw batch the last build covered: row-level tests of the big
    append-only tables check only rows of later batches ('' = every row).
    The Dagster build writes it into the one-row table `_grpo_tests_since` of
    the build database before it runs dbt; read at execution time, not passed
    with --vars, so dbt's partial parsing stays valid from build to build.
    The var `tests_since_batch`, when given, wins (dbt run by hand).
-#}
{% macro tests_since_batch() -%}
    {%- set given = var("tests_since_batch", none) -%}
    {%- if given is not none -%}
        {{- return(given) -}}
    {%- endif -%}
    {%- if not execute -%}
        {{- return("") -}}
    {%- endif -%}
    {%- set rel = adapter.get_relation(database=target.database, schema=target.schema, identifier="_grpo_tests_since") -%}
    {%- if rel is none -%}
        {{- return("") -}}
    {%- endif -%}
    {%- set result = run_query("select coalesce(max(batch_id), '') from " ~ rel) -%}
    {{- return(result.columns[0].values()[0]) -}}
{%- endmacro %}


{#-
    unique_grain for large append-only tables, checked incrementally: keys of
    rows added since the last build (see tests_since_batch above; '' = every
    row) must occur once in the WHOLE table, so a new row that repeats an old
    one is caught, at the cost of the new keys.
-#}
{% test unique_grain_since(model, columns) %}

{%- set since = tests_since_batch() -%}
{%- if since == "" %}

-- a full build: one pass over every row, grouping 64-bit hashes of the key
-- (not the key's text: 100M history keys would need gigabytes); the keys
-- behind a repeated hash are then counted exactly, so a hash collision is
-- never reported as a duplicate
with

repeated_hashes as (

    select {{ hash64(columns) }} as key_hash
    from {{ model }}
    group by key_hash
    having count(*) > 1

)

select {{ columns | join(', ') }}, count(*) as n_rows
from {{ model }}
where {{ hash64(columns) }} in (select key_hash from repeated_hashes)
group by {{ columns | join(', ') }}
having count(*) > 1

{%- else %}

with

new_keys as (

    select distinct {{ columns | join(', ') }}
    from {{ model }}
    where batch_id > '{{ since }}'

)

select
    {% for c in columns %}m.{{ c }}, {% endfor %}count(*) as n_rows

from {{ model }} as m
semi join new_keys using ({{ columns | join(', ') }})
-- lets the parquet reader skip row groups of untouched runs (rows of a run are stored together)
where m.{{ columns[0] }} in (select distinct {{ columns[0] }} from new_keys)
group by {% for c in columns %}m.{{ c }}{% if not loop.last %}, {% endif %}{% endfor %}
having count(*) > 1

{%- endif %}

{% endtest %}


{#-
    Data tests' `where` config may say `batch_id > __tests_since_batch__`: the
    token becomes the since-batch above as a constant when the test runs, so
    the filter reaches the table scan and skips old batches' row groups (a
    subquery there would make DuckDB read the whole column). Otherwise the
    same as dbt's own default__get_where_subquery.
-#}
{% macro grpo_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- if '__tests_since_batch__' in where -%}
            {%- set where = where | replace('__tests_since_batch__', sql_string_literal(tests_since_batch())) -%}
        {%- endif -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}


{%- macro duckdb__get_where_subquery(relation) -%}
    {%- do return(grpo_where_subquery(relation)) -%}
{%- endmacro %}


{#- The same on Spark. -#}
{% macro spark__get_where_subquery(relation) -%}
    {%- do return(grpo_where_subquery(relation)) -%}
{%- endmacro %}
