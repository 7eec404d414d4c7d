{#-
    The incremental strategies on Spark with plain parquet tables.

    `append` (stg_axiom__events) is Spark's own. `delete+insert` on a unique key
    (the per-run and per-hour marts, macros/incremental.sql) has no Spark form
    without Delta/Iceberg (no DELETE on parquet, and `merge` needs them), so it
    is done here in two statements: the stored rows whose key is not
    recomputed plus the recomputed rows are written to a side table, which then
    replaces the table's rows with `insert overwrite` (Spark refuses to
    overwrite a table in a query that reads it). The model's query, the keys it
    recomputes and the watermark (the table comment) are the same as DuckDB's;
    what grows with the history on Spark is the copy of the kept rows, not
    the recomputation. Rows with a null key are never replaced, as DuckDB's
    `delete ... where key in (...)` never deletes them.
-#}

{% macro dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format) -%}
    {%- if raw_strategy == 'delete+insert' -%}
        {%- do return(raw_strategy) -%}
    {%- endif -%}
    {%- if raw_strategy not in ['append', 'merge', 'insert_overwrite', 'microbatch'] -%}
        {%- do exceptions.raise_compiler_error('Invalid incremental strategy provided: ' ~ raw_strategy) -%}
    {%- endif -%}
    {%- if raw_strategy == 'merge' and file_format not in ['delta', 'iceberg', 'hudi'] -%}
        {%- do exceptions.raise_compiler_error("the 'merge' strategy needs file_format delta, iceberg or hudi") -%}
    {%- endif -%}
    {%- do return(raw_strategy) -%}
{%- endmacro %}


{% macro dbt_spark_get_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates) -%}
    {%- if strategy == 'delete+insert' -%}
        {{ grpo_spark_delete_insert_sql(source, target, unique_key) }}
    {%- elif strategy == 'append' -%}
        {{ get_insert_into_sql(source, target) }}
    {%- elif strategy == 'insert_overwrite' -%}
        {{ get_insert_overwrite_sql(source, target, existing) }}
    {%- else -%}
        {%- do exceptions.raise_compiler_error('No SQL here for the incremental strategy ' ~ strategy) -%}
    {%- endif -%}
{%- endmacro %}


{% macro grpo_spark_delete_insert_sql(source, target, unique_key) -%}
    {%- set keys = [unique_key] if unique_key is string else unique_key -%}
    {%- set columns = adapter.get_columns_in_relation(target) | map(attribute='name') | list -%}
    {%- set cols = columns | join(', ') -%}
    {%- set side = target.incorporate(path={'identifier': target.identifier ~ '__grpo_kept'}) -%}
    {%- do run_query('drop table if exists ' ~ side) -%}
    {%- set fill -%}
        create table {{ side }} using parquet as
        select {% for c in columns %}stored.{{ c }}{{ ', ' if not loop.last }}{% endfor %}
        from {{ target }} as stored
        left anti join {{ source }} as recomputed
            on {% for k in keys %}stored.{{ k }} = recomputed.{{ k }}{{ ' and ' if not loop.last }}{% endfor %}
        union all
        select {{ cols }} from {{ source }}
    {%- endset -%}
    {%- do run_query(fill) -%}
    insert overwrite table {{ target }} select {{ cols }} from {{ side }}
{%- endmacro %}


{#- The JSON object stored as a table's comment ({} if none, or not JSON). -#}
{% macro table_comment_text() -%}{{ return(adapter.dispatch('table_comment_text')()) }}{%- endmacro %}

{% macro default__table_comment_text() -%}
    {%- set query -%}
        select comment
        from duckdb_tables()
        where database_name = '{{ this.database }}'
            and schema_name = '{{ this.schema }}'
            and table_name = '{{ this.identifier }}'
            and json_valid(comment)
            and json_type(comment) = 'OBJECT'
    {%- endset -%}
    {%- set found = run_query(query).columns[0].values() -%}
    {{- return(found[0] if found else none) -}}
{%- endmacro %}

{% macro spark__table_comment_text() -%}
    {%- set relation = adapter.get_relation(database=this.database, schema=this.schema, identifier=this.identifier) -%}
    {%- if relation is none -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set rows = run_query('describe table extended ' ~ relation) -%}
    {%- for row in rows -%}
        {%- if row[0] == 'Comment' and row[1] and (row[1] | trim).startswith('{') -%}
            {{- return(row[1]) -}}
        {%- endif -%}
    {%- endfor -%}
    {{- return(none) -}}
{%- endmacro %}


{#- Empty a table before a full recompute (incremental_reset_if_settings_changed). -#}
{% macro delete_all_rows(relation) -%}{{ return(adapter.dispatch('delete_all_rows')(relation)) }}{%- endmacro %}
{% macro default__delete_all_rows(relation) -%}delete from {{ relation }}{%- endmacro %}
{% macro spark__delete_all_rows(relation) -%}truncate table {{ relation }}{%- endmacro %}
