-- Which W&B run the events carrying each run label belong to. Loggers put the
-- W&B run id into events, or the run's display name, or a name of their own:
-- a label joins the run with that id; else the one run with that display name;
-- else (no such run, or several runs share the name) it stays unjoined, and
-- the answers and a warning check name it. Small (one row per label) and
-- rebuilt whole: a run that arrives or is renamed can change any label's run.
-- The per-run event marts key events by run_key (macros/event_run_key.sql,
-- events_with_run_key) and recompute every row when this mapping changes.
with

labels as (

    select * from {{ ref('int_event_label_counts') }}

),

runs as (

    select * from {{ ref('stg_wandb__runs') }}

),

by_id as (

    select
        labels.run_label,
        runs.run_id

    from labels
    inner join runs
        on labels.run_label = runs.run_id

),

by_name as (

    select
        labels.run_label,
        {{ list_agg_ordered('runs.run_id', 'runs.run_id') }} as run_ids

    from labels
    inner join runs
        on labels.run_label = runs.run_name
    group by labels.run_label

),

final as (

    select
        labels.run_label,
        coalesce(by_id.run_id, case when {{ list_len('by_name.run_ids') }} = 1 then {{ list_at('by_name.run_ids', 1) }} end) as run_id,
        case
            when by_id.run_id is not null then 'run_id'
            when {{ list_len('by_name.run_ids') }} = 1 then 'run_name'
        end as joined_by,
        coalesce(by_id.run_id, case when {{ list_len('by_name.run_ids') }} = 1 then {{ list_at('by_name.run_ids', 1) }} end) is not null as is_joined,
        -- the key the per-run event marts group by: the run, else the label itself
        coalesce(by_id.run_id, case when {{ list_len('by_name.run_ids') }} = 1 then {{ list_at('by_name.run_ids', 1) }} end, labels.run_label) as run_key,
        case
            when by_id.run_id is null and {{ list_len('by_name.run_ids') }} > 1 then by_name.run_ids
        end as ambiguous_run_ids,
        labels.n_events,
        labels.n_rollouts,
        labels.n_extractions,
        labels.n_error_events,
        labels.first_at,
        labels.last_at

    from labels
    left join by_id
        on labels.run_label = by_id.run_label
    left join by_name
        on labels.run_label = by_name.run_label

)

select * from final
