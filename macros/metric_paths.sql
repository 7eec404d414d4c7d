{#-
    A metric key as a path: nested `run.log({"train": {"kl": ...}})` is stored as
    `train.kl`, so `.` and `/` are one separator when names are matched
    (aliases, the Elo prefix). Keys themselves are never rewritten: answers show
    the key as logged.
-#}
{% macro metric_path(expression) -%}
    replace({{ expression }}, '.', '/')
{%- endmacro %}
