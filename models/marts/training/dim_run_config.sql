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

    from {{ json_object_entries('runs', 'runs.config_json', 'entry') }}
    where {{ json_is_object('runs.config_json') }}
        -- wandb's own bookkeeping (versions, runtime) differs between every run
        and entry.key <> '_wandb'

    union all

    select
        config_nodes.run_id,
        config_nodes.config_key || '.' || entry.key,
        entry.value,
        entry.type

    from {{ json_object_entries('config_nodes', 'config_nodes.value_json', 'entry') }}
    where config_nodes.json_type = 'OBJECT'

),

final as (

    select
        run_id,
        config_key,
        cast(value_json as {{ type_text() }}) as value_json,
        case
            when json_type = 'VARCHAR' then {{ json_text('value_json', '$') }}
            else cast(value_json as {{ type_text() }})
        end as value_text

    from config_nodes
    -- an object is represented by its leaves; an empty one is a leaf itself
    where json_type <> 'OBJECT'
        or cast(value_json as {{ type_text() }}) = '{}'

)

select * from final
