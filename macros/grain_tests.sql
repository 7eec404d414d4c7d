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


{#-
    unique_grain for large append-only tables, checked incrementally: keys of
    rows added since the last build (var `tests_since_batch`, set by the
    Dagster build; unset = every row) must occur once in the WHOLE table, so
    a new row that repeats an old one is caught, at the cost of the new keys.
-#}
{% test unique_grain_since(model, columns) %}

{%- set since = var("tests_since_batch", "") -%}
{%- if since == "" %}

-- a full build: one pass over every row
select {{ columns | join(', ') }}, count(*) as n_rows
from {{ model }}
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
