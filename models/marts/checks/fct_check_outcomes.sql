-- The targets from dbt_project.yml `vars:` evaluated on the marts. Every
-- check yields one row per subject it applies to; a run-level check skips
-- runs where its metric is null (no rollouts, no KL key logged, ...), so a
-- missing metric never reads as a pass or a failure.
--
-- comparison says how value relates to threshold when the check passes
-- ('<', '>', '<='); trend checks compare labels instead ('is':
-- observed_label must equal expected_label) and carry no threshold.
with

rollout_timing_by_run as (

    select * from {{ ref('fct_rollout_timing_by_run') }}

),

rollout_timing_hourly as (

    select * from {{ ref('fct_rollout_timing_hourly') }}

),

rollout_errors_by_run as (

    select * from {{ ref('fct_rollout_errors_by_run') }}

),

extraction_by_run as (

    select * from {{ ref('fct_extraction_by_run') }}

),

extraction_hourly as (

    select * from {{ ref('fct_extraction_hourly') }}

),

component_health as (

    select * from {{ ref('fct_component_health') }}

),

training_stability as (

    select * from {{ ref('fct_training_stability') }}

),

learning_verdicts as (

    select * from {{ ref('fct_learning_verdicts') }}

),

rollout_p95_by_run as (

    select
        'rollout_p95_s' as check_name,
        'run' as subject_type,
        run_id as subject,
        run_name as subject_label,
        p95_s as value,
        {{ checks_threshold('rollout_p95_max_s') }} as threshold,
        '<' as comparison,
        cast(null as varchar) as observed_label,
        cast(null as varchar) as expected_label,
        'error' as severity
    from rollout_timing_by_run
    where p95_s is not null

),

rollout_p95_by_hour as (

    select
        'rollout_p95_s' as check_name,
        'hour' as subject_type,
        {{ events_hour_text('hour_at') }} as subject,
        cast(null as varchar) as subject_label,
        p95_s as value,
        {{ checks_threshold('rollout_p95_max_s') }} as threshold,
        '<' as comparison,
        cast(null as varchar) as observed_label,
        cast(null as varchar) as expected_label,
        'error' as severity
    from rollout_timing_hourly
    where p95_s is not null

),

error_rate_by_run as (

    select
        'error_rate' as check_name,
        'run' as subject_type,
        run_id as subject,
        run_name as subject_label,
        error_rate as value,
        {{ checks_threshold('error_rate_max') }} as threshold,
        '<' as comparison,
        cast(null as varchar) as observed_label,
        cast(null as varchar) as expected_label,
        'error' as severity
    from rollout_errors_by_run
    where error_rate is not null

),

-- Hourly rates come from all rollouts in the hour, also those naming no run.
error_rate_by_hour as (

    select
        'error_rate' as check_name,
        'hour' as subject_type,
        {{ events_hour_text('hour_at') }} as subject,
        cast(null as varchar) as subject_label,
        error_rate as value,
        {{ checks_threshold('error_rate_max') }} as threshold,
        '<' as comparison,
        cast(null as varchar) as observed_label,
        cast(null as varchar) as expected_label,
        'error' as severity
    from rollout_timing_hourly
    where error_rate is not null

),

extraction_rate_by_run as (

    select
        'extraction_rate' as check_name,
        'run' as subject_type,
        run_id as subject,
        run_name as subject_label,
        extraction_rate as value,
        {{ checks_threshold('extraction_rate_min') }} as threshold,
        '>' as comparison,
        cast(null as varchar) as observed_label,
        cast(null as varchar) as expected_label,
        'error' as severity
    from extraction_by_run
    where extraction_rate is not null

),

extraction_rate_by_hour as (

    select
        'extraction_rate' as check_name,
        'hour' as subject_type,
        {{ events_hour_text('hour_at') }} as subject,
        cast(null as varchar) as subject_label,
        extraction_rate as value,
        {{ checks_threshold('extraction_rate_min') }} as threshold,
        '>' as comparison,
        cast(null as varchar) as observed_label,
        cast(null as varchar) as expected_label,
        'error' as severity
    from extraction_hourly
    where extraction_rate is not null

),

grad_norm_by_run as (

    select
        'grad_norm_max' as check_name,
        'run' as subject_type,
        run_id as subject,
        run_name as subject_label,
        grad_norm_max as value,
        {{ checks_threshold('grad_norm_max') }} as threshold,
        '<' as comparison,
        cast(null as varchar) as observed_label,
        cast(null as varchar) as expected_label,
        'error' as severity
    from training_stability
    where grad_norm_max is not null

),

kl_p95_by_run as (

    select
        'kl_p95' as check_name,
        'run' as subject_type,
        run_id as subject,
        run_name as subject_label,
        kl_p95 as value,
        {{ checks_threshold('kl_stable_max') }} as threshold,
        '<' as comparison,
        cast(null as varchar) as observed_label,
        cast(null as varchar) as expected_label,
        'error' as severity
    from training_stability
    where kl_p95 is not null

),

kl_spikes_by_run as (

    select
        'kl_spike_steps' as check_name,
        'run' as subject_type,
        run_id as subject,
        run_name as subject_label,
        cast(kl_spike_steps as double) as value,
        {{ checks_threshold('kl_spike_steps_allowed') }} as threshold,
        '<=' as comparison,
        cast(null as varchar) as observed_label,
        cast(null as varchar) as expected_label,
        'error' as severity
    from training_stability
    -- a run without a KL key has no spike count to judge, not zero spikes
    where kl_key is not null
      and kl_spike_steps is not null

),

base_model_declining_by_run as (

    select
        'base_model_declining' as check_name,
        'run' as subject_type,
        run_id as subject,
        run_name as subject_label,
        base_model_delta as value,
        cast(null as double) as threshold,
        'is' as comparison,
        base_model_trend as observed_label,
        'declining' as expected_label,
        'warn' as severity
    from learning_verdicts
    where base_model_trend is not null

),

gap_growing_by_run as (

    select
        'gap_growing' as check_name,
        'run' as subject_type,
        run_id as subject,
        run_name as subject_label,
        gap_delta as value,
        cast(null as double) as threshold,
        'is' as comparison,
        gap_trend as observed_label,
        'growing' as expected_label,
        'warn' as severity
    from learning_verdicts
    where gap_trend is not null

),

-- '<=' so the check agrees with fct_component_health.status: a component is
-- stale only when silent *longer* than the threshold.
heartbeat_fresh_by_component as (

    select
        'heartbeat_fresh' as check_name,
        'component' as subject_type,
        component || '@' || host as subject,
        cast(null as varchar) as subject_label,
        silent_s as value,
        {{ checks_threshold('heartbeat_stale_after_s') }} as threshold,
        '<=' as comparison,
        status as observed_label,
        cast(null as varchar) as expected_label,
        'warn' as severity
    from component_health

),

unioned as (

    select * from rollout_p95_by_run
    union all
    select * from rollout_p95_by_hour
    union all
    select * from error_rate_by_run
    union all
    select * from error_rate_by_hour
    union all
    select * from extraction_rate_by_run
    union all
    select * from extraction_rate_by_hour
    union all
    select * from grad_norm_by_run
    union all
    select * from kl_p95_by_run
    union all
    select * from kl_spikes_by_run
    union all
    select * from base_model_declining_by_run
    union all
    select * from gap_growing_by_run
    union all
    select * from heartbeat_fresh_by_component

),

judged as (

    select
        *,
        -- NaN compares greater than every number in DuckDB, so a NaN metric fails '<' checks
        coalesce(
            case comparison
                when '<' then value < threshold
                when '<=' then value <= threshold
                when '>' then value > threshold
                when 'is' then observed_label = expected_label
            end,
            false
        ) as passed

    from unioned

),

final as (

    select
        check_name,
        subject_type,
        subject,
        subject_label,
        value,
        threshold,
        comparison,
        passed,
        severity,
        observed_label,
        expected_label,
        case
            when comparison = 'is'
                then check_name || ': ' || coalesce(observed_label, 'unknown')
                    || ' (wants ' || expected_label || ')'
            when check_name = 'heartbeat_fresh'
                then 'silent_s = ' || printf('%.6g', value) || ' (target ' || comparison || ' '
                    || printf('%.6g', threshold) || '), status ' || observed_label
            else check_name || ' = ' || coalesce(printf('%.6g', value), 'null')
                || ' (target ' || comparison || ' ' || printf('%.6g', threshold) || ')'
        end as detail,
        current_timestamp as evaluated_at

    from judged

)

select * from final
