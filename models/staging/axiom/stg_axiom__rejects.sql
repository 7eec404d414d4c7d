with

source as (

    select * from {{ source('axiom', 'axiom_rejects') }}

),

final as (

    select
        source,
        line,
        reason,
        raw,
        batch_id

    from source

)

select * from final
