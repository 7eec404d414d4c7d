with

source as (

    select history.* from {{ source('wandb', 'wandb_history_other') }} as history
    {{ restated_steps_filter('history') }}

),

deduplicated as (

    select *
    from source
    qualify row_number() over (
        partition by run_id, step, key
        order by batch_id desc
    ) = 1

),

final as (

    select
        run_id,
        step,
        wall_time,
        key as metric_key,
        value_json

    from deduplicated

)

select * from final
