-- Every field is read through the `event_fields` mapping (macros/event_fields.sql),
-- so a logger with other field names needs a var change, not a model change.
--
-- Materialized as an incremental table, not a view: parsing JSON is the most
-- expensive thing the warehouse does, so each event is parsed once, when its
-- batch arrives, and every mart reads typed columns. A changed `event_fields`
-- mapping or `rollout_ok_statuses` list needs `dbt build --full-refresh` (or
-- `grpo ingest --full-refresh`).
--
-- One row per event: the ingest key says what an event is (its `_rowId`, its
-- kind's identity fields, else its content; pipelines/sources/event_identity.py),
-- and the copy stored first is kept. A build only appends events whose key the
-- table does not hold yet, so stored rows never change batch (the published
-- per-batch exports stay valid) and a full refresh keeps the same copies.
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    post_hook="{{ table_generation_mark() }}"
) }}

with

-- Read three times below; never materialized (that would copy every column).
source {{ cte_not_materialized() }} (

    select * from {{ source('axiom', 'axiom_events') }}
    {% if is_incremental() and execute %}
    -- raw files are immutable per batch and batch ids sort by time; a constant
    -- (not a subquery) so the parquet reader skips the stored batches' row groups
    {%- set newest = run_query("select coalesce(max(batch_id), '') from " ~ this).columns[0].values()[0] %}
    where batch_id > {{ sql_string_literal(newest) }}
    {% endif %}

),

{% if is_incremental() %}
-- Keys of new rows that are stored already (a copy ingested before): the
-- stored copy stays. The new keys are the small side of the join; the
-- stored ids are scanned once, as delete+insert's probe did.
stored_keys as (

    select event_id as event_key
    from {{ this }}
    where event_id in (select event_key from source)

),
{% endif %}

-- One event can arrive many times: overlapping API windows, re-read files,
-- one file under two names, overlapping exports. The ingest key identifies
-- it, and the first copy wins (earliest batch, then earliest time). Only keys
-- seen more than once go through the sort: their 64-bit hashes are found
-- first (a hash collision merely sends a few more rows through the exact
-- dedupe), so a full build never sorts 50M wide rows (memory, spill).
repeated_keys as (

    select {{ hash64(['event_key']) }} as key_hash
    from source
    group by key_hash
    having count(*) > 1

),

deduplicated as (

    select *
    from source
    where {{ hash64(['event_key']) }} not in (select repeated_keys.key_hash from repeated_keys)

    union all

    select *
    from source
    where {{ hash64(['event_key']) }} in (select repeated_keys.key_hash from repeated_keys)
    qualify row_number() over (
        partition by event_key
        order by batch_id, time, source, line, record
    ) = 1

),

-- One JSON parse per event for all mapped fields (macros/event_fields.sql).
parsed as (

    select *, {{ events_fields_list('record') }} as fields
    from deduplicated
    {% if is_incremental() %}
    where event_key not in (select event_key from stored_keys)
    {% endif %}

),

extracted as (

    select
        event_key as event_id,
        coalesce(
            time,
            try_cast({{ events_parsed('time') }} as {{ type_timestamptz() }})
        ) as event_at,

        {{ events_parsed_lower('event') }} as event_name,
        {{ events_parsed_lower('level') }} as level,

        {{ events_parsed_text('run_id') }} as run_id,
        {{ events_parsed_text('rollout_id') }} as rollout_id,
        {{ events_parsed_double('duration_s') }} as duration_s_value,
        {{ events_parsed_text('duration_s') }} as duration_s_text,
        {{ events_parsed_text('status') }} as status,
        {{ events_parsed_text('engine') }} as engine,
        {{ events_parsed_text('worker') }} as worker,

        {{ events_parsed_double('latency_s') }} as latency_s_value,
        {{ events_parsed_text('latency_s') }} as latency_s_text,
        {{ events_parsed_double('tokens_per_s') }} as tokens_per_s,
        cast(round({{ events_parsed_double('batch_size') }}) as bigint) as batch_size,
        {{ events_parsed_double('queue_s') }} as queue_s_value,
        {{ events_parsed_text('queue_s') }} as queue_s_text,

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

{# An extraction counts only with both counts, neither negative, and no more extracted than
   expected: a rate above 1 is impossible. Otherwise both counts are set aside, with the reason. #}
{% set orders_problem -%}
            case
                when event_name is distinct from 'extraction' then null
                when orders_expected is null or orders_extracted is null
                    then 'an extraction needs both orders_expected and orders_extracted'
                when orders_expected < 0 or orders_extracted < 0 then 'orders counts are negative'
                when orders_extracted > orders_expected
                    then {{ format_text('orders_extracted {} > orders_expected {}', ['orders_extracted', 'orders_expected']) }}
            end
{%- endset %}
classified as (

    select
        *,
        -- A failed rollout often also carries level=error; it stays a rollout
        -- so it counts once, in the rollout error rate. The readers key events
        -- by this same rule (pipelines/sources/event_identity.py): keep them equal.
        case
            when event_name = 'rollout' then 'rollout'
            when level = 'error' or event_name = 'error' then 'error'
            when event_name in ('inference', 'extraction', 'heartbeat', 'game') then event_name
            else 'other'
        end as event_kind,
        -- Durations are seconds: a NaN, infinite, negative or non-numeric value
        -- is set aside (null, so no quantile, max or mean ever sees it) and the
        -- reason kept in rejected_values.
        {{ events_duration('duration_s') }} as duration_s,
        {{ events_duration('latency_s') }} as latency_s,
        {{ events_duration('queue_s') }} as queue_s,
        nullif(concat_ws('; ',
            {{ events_duration_problem('duration_s') }},
            {{ events_duration_problem('latency_s') }},
            {{ events_duration_problem('queue_s') }},
            {{ orders_problem }}
        ), '') as rejected_values

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
        -- a status outside rollout_ok_statuses (any case) is a failure; none is not
        case
            when event_kind = 'rollout' then coalesce(lower(status) not in ({{ events_rollout_ok_statuses() }}), false)
        end as is_failed,
        engine,
        worker,
        latency_s,
        tokens_per_s,
        batch_size,
        queue_s,
        case when ({{ orders_problem }}) is null then orders_expected end as orders_expected,
        case when ({{ orders_problem }}) is null then orders_extracted end as orders_extracted,
        level,
        component,
        error_type,
        message,
        host,
        gpu_util,
        gpu_mem_gb,
        rejected_values,
        -- a league game's record, parsed into its player results by
        -- int_game_seats_unnested (null for every other kind)
        case when event_kind = 'game' then record end as game_record,
        source,
        line,
        batch_id

    from classified

)

select * from final
