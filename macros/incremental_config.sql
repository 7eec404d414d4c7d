{#-
    The config of a model recomputed per key (how it works: macros/incremental.sql).
    What such models share is said here once; a model says only what is its own:

        {{ incremental_by_key('run_id', inputs=['stg_wandb__history', 'stg_wandb__runs']) }}

    unique_key: the column(s) whose rows a build deletes and recomputes
        (`delete+insert`): a run, an hour, a component and host.
    inputs: the models (names) with a `batch_id` column whose newest batch the
        post-hook records as covered (incremental_mark); list them in
        `-- depends_on:` lines too.
    reset_on_settings_change: for models whose keys can move (events keyed by
        run, events_with_run_key): a pre-hook deletes every stored row when the
        settings changed, so no row stays under a key that no longer exists.
-#}
{% macro incremental_by_key(unique_key, inputs, reset_on_settings_change=false) -%}
    {%- set input_refs = [] -%}
    {%- for name in inputs -%}
        {%- do input_refs.append("ref('" ~ name ~ "')") -%}
    {%- endfor -%}
    {#- hooks are strings rendered when the model runs, as if written in the model's header -#}
    {%- set mark_hook = "{{ incremental_mark([" ~ (input_refs | join(', ')) ~ "]) }}" -%}
    {%- if reset_on_settings_change -%}
        {%- do config(
            materialized='incremental',
            incremental_strategy='delete+insert',
            unique_key=unique_key,
            pre_hook="{{ incremental_reset_if_settings_changed() }}",
            post_hook=mark_hook
        ) -%}
    {%- else -%}
        {%- do config(
            materialized='incremental',
            incremental_strategy='delete+insert',
            unique_key=unique_key,
            post_hook=mark_hook
        ) -%}
    {%- endif -%}
{%- endmacro %}
