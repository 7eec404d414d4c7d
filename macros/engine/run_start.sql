{#-
    on-run-start of every build (dbt_project.yml). DuckDB reads the raw parquet
    through the sources' `external_location`; Spark gets the same folders as
    external parquet tables, one schema per source (`wandb.wandb_runs`, ...),
    declared again at each run so a new column (`mergeSchema`) is seen.
    Both create `_grpo_tests_since` (see tests_since_batch, macros/grain_tests.sql).
-#}
{% macro grpo_on_run_start() -%}
    {{- return(adapter.dispatch('grpo_on_run_start')()) -}}
{%- endmacro %}

{% macro default__grpo_on_run_start() -%}
    create table if not exists _grpo_tests_since as select ''::varchar as batch_id
{%- endmacro %}

{% macro spark__grpo_on_run_start() -%}
    {%- if execute -%}
        {%- set root = env_var('GRPO_WAREHOUSE', 'warehouse') -%}
        {%- for source_node in graph.sources.values() -%}
            {%- do run_query('create database if not exists ' ~ source_node.schema) -%}
            {%- do run_query('drop table if exists ' ~ source_node.schema ~ '.' ~ source_node.identifier) -%}
            {%- do run_query(
                'create table ' ~ source_node.schema ~ '.' ~ source_node.identifier ~ ' using parquet options ('
                ~ "path " ~ sql_string_literal(root ~ '/raw/' ~ source_node.identifier) ~ ", mergeSchema 'true')"
            ) -%}
        {%- endfor -%}
        {#- the Dagster build passes the since-batch in GRPO_TESTS_SINCE (pipelines/defs/dbt/assets.py) -#}
        {%- do run_query('create database if not exists ' ~ target.schema) -%}
        {%- do run_query('create table if not exists ' ~ target.schema ~ '._grpo_tests_since (batch_id string) using parquet') -%}
        {%- do run_query('insert overwrite table ' ~ target.schema ~ '._grpo_tests_since select '
                         ~ sql_string_literal(env_var('GRPO_TESTS_SINCE', ''))) -%}
    {%- endif -%}
    select 1
{%- endmacro %}
