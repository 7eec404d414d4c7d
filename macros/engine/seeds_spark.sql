{#-
    Seeds on Spark: dbt-spark inserts a seed as `insert ... values (cast(? as ...), ...)`
    statements, which Spark parses slowly (the 8k-row seeds took 20-30 s each). Here
    Spark reads the CSV file itself (a temporary view over it) and casts each column to
    the type dbt inferred, as dbt-spark would.
-#}
{% macro spark__load_csv_rows(model, agate_table) %}
    {%- set column_override = model['config'].get('column_types', {}) -%}
    {%- set path = model['root_path'] ~ '/' ~ model['original_file_path'] -%}
    {%- set view = model['name'] ~ '__grpo_csv' -%}
    {%- do run_query(
        'create or replace temporary view ' ~ view ~ ' using csv options (path '
        ~ sql_string_literal(path) ~ ", header 'true', inferSchema 'false', mode 'FAILFAST')"
    ) -%}
    {%- set sql -%}
        insert into {{ this.render() }}
        select
            {%- for col_name in agate_table.column_names %}
            {%- set inferred_type = adapter.convert_type(agate_table, loop.index0) %}
            cast(nullif(`{{ col_name }}`, '') as {{ column_override.get(col_name, inferred_type) }}){{ ',' if not loop.last }}
            {%- endfor %}
        from {{ view }}
    {%- endset -%}
    {%- do run_query(sql) -%}
    {{ return(sql) }}
{% endmacro %}
