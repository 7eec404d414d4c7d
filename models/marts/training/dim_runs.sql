with

runs as (

    select * from {{ ref('stg_wandb__runs') }}

),

name_prefixes as (

    select
        run_id,
        nullif(
            regexp_extract(run_name, {{ wb_text_literal(var('sweep_name_prefix_regex')) }}, 1),
            ''
        ) as name_prefix

    from runs

),

final as (

    select
        runs.run_id,
        runs.run_name,
        runs.project,
        runs.entity,
        runs.run_group,
        runs.sweep_id,
        -- Sweep membership falls back from the W&B sweep id to the run group
        -- to the run-name prefix; a run matching none is a sweep of its own.
        coalesce(
            nullif(runs.sweep_id, ''),
            nullif(runs.run_group, ''),
            name_prefixes.name_prefix,
            runs.run_name,
            runs.run_id
        ) as sweep_key,
        case
            when nullif(runs.sweep_id, '') is not null then 'sweep_id'
            when nullif(runs.run_group, '') is not null then 'group'
            when name_prefixes.name_prefix is not null then 'name_prefix'
            else 'run'
        end as sweep_source,
        runs.state,
        runs.started_at,
        runs.runtime_s,
        runs.last_step,
        runs.tags,
        runs.config_json,
        runs.summary_json

    from runs
    left join name_prefixes
        on runs.run_id = name_prefixes.run_id

)

select * from final
