-- The raw table appends a new version whenever a run's metadata changes;
-- only the latest version of each run is current.
with

source as (

    select * from {{ source('wandb', 'wandb_runs') }}

),

latest as (

    select *
    from source
    qualify row_number() over (
        partition by run_id
        order by ingested_at desc, batch_id desc
    ) = 1

),

final as (

    select
        run_id,
        run_name,
        project,
        entity,
        run_group,
        job_type,
        sweep_id,
        tags,
        notes,
        host,
        config_json,
        summary_json,
        state,
        exit_code,
        started_at,
        runtime_s,
        last_step,
        step_metrics,
        source,
        ingested_at,
        batch_id

    from latest

)

select * from final
