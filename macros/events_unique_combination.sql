{#
    Generic test: no two rows share the same combination of `columns`.
    No dbt packages are available offline, so this stands in for
    dbt_utils.unique_combination_of_columns. Nulls compare equal here, so a
    key column that may be null still cannot hide a duplicate.
#}
{% test events_unique_combination(model, columns) %}

with grouped as (

    select
        {{ columns | join(', ') }},
        count(*) as n_rows
    from {{ model }}
    group by all
    having count(*) > 1

)

select * from grouped

{% endtest %}
