{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        full_refresh=false
    )
}}
-- Append-only: every build adds its check outcomes stamped with built_at, so
-- "how often did KL spike in sweep X" is one query. full_refresh=false keeps
-- the history through `dbt build --full-refresh`; a build whose outcomes were
-- already recorded (same evaluated_at) appends nothing.
with

outcomes as (

    select * from {{ ref('fct_check_outcomes') }}

),

{% if is_incremental() %}
recorded as (

    select max(built_at) as last_built_at from {{ this }}

),
{% endif %}

final as (

    select
        outcomes.evaluated_at as built_at,
        outcomes.check_name,
        outcomes.subject_type,
        outcomes.subject,
        outcomes.subject_label,
        outcomes.value,
        outcomes.threshold,
        outcomes.comparison,
        outcomes.passed,
        outcomes.outcome,
        outcomes.severity,
        outcomes.observed_label,
        outcomes.expected_label,
        outcomes.detail

    from outcomes
    {% if is_incremental() %}
    cross join recorded
    where recorded.last_built_at is null
       or outcomes.evaluated_at > recorded.last_built_at
    {% endif %}

)

select * from final
