-- Every field is read through the `event_fields` mapping (macros/events.sql),
-- so a logger with other field names needs a var change, not a model change.
--
-- Materialized as an incremental table, not a view: parsing JSON is the most
-- expensive thing the warehouse does, so each event is parsed once, when its
-- batch arrives, and every mart reads typed columns. A changed `event_fields`
-- mapping needs `dbt build --full-refresh` (or `grpo ingest --full-refresh`).
{{ config(
    materialized='incremental',
    unique_key='event_id',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    post_hook="{{ table_generation_mark() }}"
) }}

with

-- Read three times below; never materialized (that would copy every column).
source as not materialized (

    select * from {{ source('axiom', 'axiom_events') }}
    {% if is_incremental() and execute %}
    -- raw files are immutable per batch and batch ids sort by time; a constant
    -- (not a subquery) so the parquet reader skips the stored batches' row groups
    {%- set newest = run_query("select coalesce(max(batch_id), '') from " ~ this).columns[0].values()[0] %}
    where batch_id > {{ sql_string_literal(newest) }}
    {% endif %}

),

-- Overlapping API windows and re-read files can deliver an event twice;
-- the ingest key identifies it, and the newest batch wins. Only keys seen
-- more than once go through the sort: their 64-bit hashes are found first
-- (a hash collision merely sends a few more rows through the exact
-- dedupe), so a full build never sorts 50M wide rows (memory, spill).
repeated_keys as (

    select hash(event_key) as key_hash
    from source
    group by key_hash
    having count(*) > 1

),

deduplicated as (

    select *
    from source
    where hash(event_key) not in (select key_hash from repeated_keys)

    union all

    select *
    from source
    where hash(event_key) in (select key_hash from repeated_keys)
    qualify row_number() over (
        partition by event_key
        order by batch_id desc, source, line
    ) = 1

),

-- One JSON parse per event for all mapped fields (macros/events.sql).
parsed as (

    select *, {{ events_fields_list('record') }} as fields
    from deduplicated

),

extracted as (

    select
        event_key as event_id,
        coalesce(
            time,
            try_cast({{ events_parsed('time') }} as timestamptz)
        ) as event_at,

        {{ events_parsed_lower('event') }} as event_name,
        {{ events_parsed_lower('level') }} as level,

        {{ events_parsed_text('run_id') }} as run_id,
        {{ events_parsed_text('rollout_id') }} as rollout_id,
        {{ events_parsed_double('duration_s') }} as duration_s,
        {{ events_parsed_text('status') }} as status,
        {{ events_parsed_text('engine') }} as engine,
        {{ events_parsed_text('worker') }} as worker,

        {{ events_parsed_double('latency_s') }} as latency_s,
        {{ events_parsed_double('tokens_per_s') }} as tokens_per_s,
        cast(round({{ events_parsed_double('batch_size') }}) as bigint) as batch_size,
        {{ events_parsed_double('queue_s') }} as queue_s,

        cast(round({{ events_parsed_double('orders_expected') }}) as bigint) as orders_expected,
        cast(round({{ events_parsed_double('orders_extracted') }}) as bigint) as orders_extracted,

        {{ events_parsed_text('component') }} as component,
        {{ events_parsed_text('error_type') }} as error_type,
        {{ events_parsed('message') }} as message,

        {{ events_parsed_text('host') }} as host,
        {{ events_parsed_double('gpu_util') }} as gpu_util,
        {{ events_parsed_double('gpu_mem_gb') }} as gpu_mem_gb,

        record,
        source,
        line,
        batch_id

    from parsed

),

classified as (

    select
        *,
        -- A failed rollout often also carries level=error; it stays a rollout
        -- so it counts once, in the rollout error rate.
        case
            when event_name = 'rollout' then 'rollout'
            when level = 'error' or event_name = 'error' then 'error'
            when event_name in ('inference', 'extraction', 'heartbeat') then event_name
            else 'other'
        end as event_kind

    from extracted

),

final as (

    select
        event_id,
        event_at,
        date_trunc('hour', event_at) as hour_at,
        event_kind,
        event_name,
        run_id,
        rollout_id,
        duration_s,
        status,
        case
            when event_kind = 'rollout' then coalesce(lower(status) <> 'ok', false)
        end as is_failed,
        engine,
        worker,
        latency_s,
        tokens_per_s,
        batch_size,
        queue_s,
        orders_expected,
        orders_extracted,
        level,
        component,
        error_type,
        message,
        host,
        gpu_util,
        gpu_mem_gb,
        source,
        line,
        batch_id

    from classified

)

select * from final
