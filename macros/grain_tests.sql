{#-
    Generic test for composite keys (dbt_utils is not available offline):
    fails with one row per key value that occurs more than once.

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
