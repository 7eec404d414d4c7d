{#-
    Incremental marts whose work grows with the new data, not the history.

    Raw batch ids sort by commit time and every new batch sorts after all
    committed ones (pipelines/raw/batches.py), so "rows of batches newer than the
    newest batch this model has seen" are exactly the new rows. A model:

      1. finds the keys (hours, runs) touched by those rows — late events land
         in old hours, so keys come from the rows' batch, never from event time;
      2. recomputes those keys from ALL their rows (percentiles cannot be merged
         from partial aggregates), and `delete+insert` on the key replaces them;
      3. records in a post-hook the newest batch of its inputs (as the table's
         comment: no shared bookkeeping table, so parallel nodes never collide).

    The record also holds a hash of the `vars:` settings; when any of them
    changes, the next build recomputes every key. A missing or
    unreadable record also means "recompute everything", so the fallback is
    always a full recompute, never a stale row. `--full-refresh` rebuilds from
    scratch and produces the same rows.

    Import CTEs over the big tables (`events`, `history`, and CTEs filtered
    from them) are declared `as not materialized`: DuckDB materializes a CTE
    that a query references more than once, which copied all 50M events
    (every column) before the batch filter could prune anything: 16 s and
    gigabytes for fct_component_health, 1.3 s without.

        {{ incremental_by_key('run_id', inputs=['stg_wandb__history', 'stg_wandb__runs']) }}
        ...
        {% if is_incremental() %}
        where batch_id > {{ incremental_since() }}
        {% endif %}
-#}


{#-
    Every var of the `vars:` block in dbt_project.yml. The stored rows of an
    incremental model are valid for one set of values: any change recomputes
    every key on the next build (settings change rarely; one slower build
    beats a stale row). tests/test_incremental_marts.py keeps this list equal
    to the `vars:` block.
-#}
{% macro incremental_settings_vars() -%}
    {{ return([
        'rollout_p95_max_s', 'extraction_rate_min', 'error_rate_max', 'grad_norm_max', 'kl_stable_max',
        'kl_spike_min', 'kl_spike_steps_allowed', 'min_elo_change', 'min_eval_points', 'final_gap_window',
        'fixed_reference_patterns', 'base_reference_player', 'checkpoint_patterns', 'elo_metric_prefix',
        'metric_aliases', 'sweep_name_prefix_regex', 'heartbeat_stale_after_s', 'events_stale_after_s',
        'wandb_stale_after_s', 'event_fields', 'event_identity', 'rollout_ok_statuses',
        'target_actions', 'heartbeat_down_after_s', 'heartbeat_ok_statuses', 'health_lookback_s',
        'elo_noise_phi_floor', 'reward_noise_phi_floor', 'trend_autocorrelation', 'non_finite_is_unstable',
        'non_finite_values_allowed', 'min_rollouts_for_rate', 'min_orders_for_rate', 'min_rollouts_for_p95',
        'seed_config_keys', 'sweep_bootstrap_rounds', 'elo_step_metric', 'entropy_collapse_fraction',
        'entropy_window',
        'game_rating_anchor', 'game_rating_anchor_elo', 'game_bootstrap_rounds', 'game_bootstrap_seed',
        'min_games_for_verdict', 'game_target_half_width_elo'
    ]) }}
{%- endmacro %}


{#-
    Pre-hook of an incremental model whose keys can move (events_with_run_key: a
    label's rows move to its run once the run arrives): when the stored rows were
    built with other settings, they are deleted before the full recompute, so no
    row is left under a key that no longer exists.
-#}
{% macro incremental_reset_if_settings_changed() -%}
    {%- if execute and is_incremental() and table_comment().get('settings') != incremental_settings_hash() -%}
        {{ delete_all_rows(this) }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}


{#- A short hash of the current values of every settings var: stored with the watermark. -#}
{% macro incremental_settings_hash() -%}
    {%- set values = {} -%}
    {%- for name in incremental_settings_vars() -%}
        {%- do values.update({name: var(name, none)}) -%}
    {%- endfor -%}
    {#- Models keying events by run (macros/event_run_key.sql, events_with_run_key) are valid for one
        label->run mapping too: a run that arrives or is renamed recomputes them whole. -#}
    {%- if model is defined and model.depends_on is defined
          and (model.depends_on.nodes | select('equalto', 'model.grpo_warehouse.fct_event_run_labels') | list) -%}
        {%- do values.update({'_event_run_map': event_run_map_fingerprint()}) -%}
    {%- endif -%}
    {{- local_md5(tojson(values, sort_keys=True)) -}}
{%- endmacro %}


{#-
    SQL literal: the newest raw batch this model's rows already cover
    ('' = none, or the settings changed since: recompute everything).
    Read when the node runs (dbt compiles a node just before executing it)
    and written into the SQL as a constant, not a subquery: a constant
    `batch_id > '…'` reaches the table scan, so DuckDB skips every row group
    (and every raw parquet row group) of older batches by their min/max
    instead of reading the whole column. Each model's rows are appended in
    batch order, so the new rows are the last row groups.
-#}
{% macro incremental_since() -%}
    {%- if not execute -%}
        {{- return("''") -}}
    {%- endif -%}
    {%- set record = table_comment() -%}
    {%- set covered = record.get('through_batch') if record.get('settings') == incremental_settings_hash() else none -%}
    {{- return(sql_string_literal(covered or '')) -}}
{%- endmacro %}


{#- The JSON object stored as this model's table comment ({} if none, or not JSON). -#}
{% macro table_comment() -%}
    {%- set found = table_comment_text() -%}
    {%- set record = fromjson(found) if found else none -%}
    {{- return(record if record is mapping else {}) -}}
{%- endmacro %}


{#-
    Post-hook: record the newest batch among `inputs` (relations with a
    `batch_id` column) as covered. The build holds the warehouse write lock,
    so no batch can commit between the model's query and this hook.
-#}
{% macro incremental_mark(inputs) -%}
    {%- if execute -%}
        {#- The table's comment still holds the previous mark here: only batches
            from it on can be newer, and the constant lets the scans skip the rest. -#}
        {%- set since = incremental_since() -%}
        {%- set newest_sql -%}
            select coalesce(max(newest), {{ since }}) from (
            {%- for relation in inputs %}
                select max(batch_id) as newest from {{ relation }} where batch_id >= {{ since }}{% if not loop.last %} union all{% endif %}
            {%- endfor %}
            ) as marks
        {%- endset -%}
        {%- set newest = run_query(newest_sql).columns[0].values()[0] -%}
        {%- set record = tojson({'through_batch': newest, 'settings': incremental_settings_hash()}, sort_keys=True) -%}
        comment on table {{ this }} is {{ sql_string_literal(record) }}
    {%- endif -%}
{%- endmacro %}


{#-
    SQL: run ids whose current W&B metadata (run name, state, config) came in
    a batch newer than `since`: a new run version. Models using it list
    ref('stg_wandb__runs') among their `incremental_mark` inputs.
-#}
{% macro incremental_runs_changed(since) -%}
    select run_id
    from {{ ref('stg_wandb__runs') }}
    where batch_id > {{ since }}
{%- endmacro %}


{#-
    SQL: the distinct `key` values (hours, runs) of rows of `relation` in
    batches newer than this model's watermark; `where`, if given, narrows
    those rows. What an incremental model recomputes.
-#}
{% macro incremental_new_keys(relation, key, where=none) -%}
    select distinct {{ key }}
    from {{ relation }}
    where batch_id > {{ incremental_since() }}
    {%- if where %}
        and {{ where }}
    {%- endif %}
{%- endmacro %}


{#-
    SQL: the runs a per-run incremental model recomputes: runs with new rows
    of `relation` (narrowed by `where`) and, with `renamed_runs`, runs with a
    new W&B run version (their name may have changed).
-#}
{% macro incremental_affected_runs(relation, where=none, renamed_runs=true) -%}
    {{ incremental_new_keys(relation, 'run_id', where) }}
    {%- if renamed_runs %}
    union
    {{ incremental_runs_changed(incremental_since()) }}
    {%- endif %}
{%- endmacro %}


{#-
    Post-hook of an incremental table that is copied elsewhere (the typed
    events, exported per batch by pipelines/publish.py): a generation id that
    stays while the table is appended to and changes whenever the table is
    created again (first build, `--full-refresh`). A copy keyed by batch and
    row count cannot see that a rebuilt table's rows differ (a changed
    `event_fields` mapping parses the same events into other values); a new
    generation tells it.
-#}
{% macro table_generation_mark() -%}
    {%- if execute -%}
        {%- set generation = table_comment().get('generation') or invocation_id -%}
        comment on table {{ this }} is {{ sql_string_literal(tojson({"generation": generation})) }}
    {%- endif -%}
{%- endmacro %}
