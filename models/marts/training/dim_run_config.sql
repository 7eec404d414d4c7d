-- Nested config objects are walked down to their leaves so that keys like
-- `optimizer.lr` can be compared across runs; lists stay one JSON value.
with recursive

runs as (

    select * from {{ ref('stg_wandb__runs') }}

),

config_nodes (run_id, config_key, value_json, json_type) as (

    select
        runs.run_id,
        entry.key,
        entry.value,
        entry.type

    from runs,
        json_each(runs.config_json) as entry
    where json_valid(runs.config_json)
        and json_type(runs.config_json) = 'OBJECT'
        -- wandb's own bookkeeping (versions, runtime) differs between every run
        and entry.key <> '_wandb'

    union all

    select
        config_nodes.run_id,
        config_nodes.config_key || '.' || entry.key,
        entry.value,
        entry.type

    from config_nodes,
        json_each(config_nodes.value_json) as entry
    where config_nodes.json_type = 'OBJECT'

),

final as (

    select
        run_id,
        config_key,
        cast(value_json as varchar) as value_json,
        case
            when json_type = 'VARCHAR' then value_json ->> '$'
            else cast(value_json as varchar)
        end as value_text

    from config_nodes
    -- an object is represented by its leaves; an empty one is a leaf itself
    where json_type <> 'OBJECT'
        or cast(value_json as varchar) = '{}'

)

select * from final
