{#-
    History rows a later batch replaced: a resumed run's new segment logged
    steps again whose earlier values were already stored, and the ingest
    recorded those steps in raw/wandb_restated_steps with its batch
    (pipelines/sources/wandb_segment_merging.py). A `where` clause for the history
    staging models that leaves out the older rows of such steps. It is
    written only when the table has rows (checked when the view is built:
    every build rebuilds the views), so the common case of no restated step
    scans the history without a join.
-#}
{% macro restated_steps_filter(alias) -%}
    {%- if execute -%}
        {%- set restated = source('wandb', 'wandb_restated_steps') -%}
        {%- set n = run_query("select count(*) from " ~ restated).columns[0].values()[0] -%}
        {%- if n > 0 %}
    where not exists (
        select 1
        from {{ restated }} as restated
        where restated.run_id = {{ alias }}.run_id
            and restated.step = {{ alias }}.step
            and restated.batch_id > {{ alias }}.batch_id
    )
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
