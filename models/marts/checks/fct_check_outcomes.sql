-- The targets from dbt_project.yml `vars:` evaluated on the marts. Every
-- check yields one row per subject it applies to; a run-level check skips
-- runs where its metric is null (no rollouts, no KL key logged, ...), so a
-- missing metric never reads as a pass or a failure.
--
-- comparison says how value relates to threshold when the check passes
-- ('<', '>', '<=', '>='); trend checks compare labels instead ('is':
-- observed_label must equal expected_label) and carry no threshold.
with

target_checks as (

    select * from {{ ref('target_checks') }}

),

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

event_run_labels as (

    select * from {{ ref('fct_event_run_labels') }}

),

game_learning as (

    select game_learning.*, runs.run_name
    from {{ ref('fct_game_learning') }} as game_learning
    left join {{ ref('dim_runs') }} as runs
        on game_learning.run_id = runs.run_id

),

rollout_p95_by_run as (
    {{ checks_rows('rollout_p95_s', 'run', 'rollout_timing_by_run', 'run_id', 'p95_s', 'rollout_p95_max_s', '<',
                   n='n_timed', min_n_var='min_rollouts_for_p95') }}
),

rollout_p95_by_hour as (
    {{ checks_rows('rollout_p95_s', 'hour', 'rollout_timing_hourly', events_hour_text('hour_at'), 'p95_s',
                   'rollout_p95_max_s', '<', subject_label=none, n='n_timed', min_n_var='min_rollouts_for_p95') }}
),

error_rate_by_run as (
    {{ checks_rows('error_rate', 'run', 'rollout_errors_by_run', 'run_id', 'error_rate', 'error_rate_max', '<',
                   n='n_rollouts', k='n_failed', min_n_var='min_rollouts_for_rate') }}
),

-- Hourly rates come from all rollouts in the hour, also those naming no run
-- (fct_rollout_timing_hourly; fct_rollout_errors_hourly splits each hour by run).
error_rate_by_hour as (
    {{ checks_rows('error_rate', 'hour', 'rollout_timing_hourly', events_hour_text('hour_at'), 'error_rate',
                   'error_rate_max', '<', subject_label=none,
                   n='n_rollouts', k='n_failed', min_n_var='min_rollouts_for_rate') }}
),

extraction_rate_by_run as (
    {{ checks_rows('extraction_rate', 'run', 'extraction_by_run', 'run_id', 'extraction_rate',
                   'extraction_rate_min', '>', n='orders_expected', k='orders_extracted',
                   min_n_var='min_orders_for_rate') }}
),

extraction_rate_by_hour as (
    {{ checks_rows('extraction_rate', 'hour', 'extraction_hourly', events_hour_text('hour_at'), 'extraction_rate',
                   'extraction_rate_min', '>', subject_label=none, n='orders_expected', k='orders_extracted',
                   min_n_var='min_orders_for_rate') }}
),

grad_norm_by_run as (
    {{ checks_rows('grad_norm_max', 'run', 'training_stability', 'run_id', 'grad_norm_max', 'grad_norm_max', '<') }}
),

kl_p95_by_run as (
    {{ checks_rows('kl_p95', 'run', 'training_stability', 'run_id', 'kl_p95', 'kl_stable_max', '<') }}
),

-- a run without a KL key has no spike count to judge, not zero spikes
kl_spikes_by_run as (
    {{ checks_rows('kl_spike_steps', 'run', 'training_stability', 'run_id', 'kl_spike_steps',
                   'kl_spike_steps_allowed', '<=', not_null='kl_key is not null and kl_spike_steps') }}
),

-- NaN/±Inf KL or grad norm values are counted, never dropped silently (a warning)
non_finite_by_run as (
    {{ checks_rows('non_finite_training_values', 'run', 'training_stability', 'run_id',
                   'coalesce(non_finite_kl, 0) + coalesce(non_finite_grad_norm, 0)',
                   'non_finite_values_allowed', '<=',
                   not_null='coalesce(kl_key, grad_norm_key)') }}
),

-- Entropy collapse: late entropy at least var entropy_collapse_fraction of the early
-- entropy; runs without two windows of entropy values are not judged.
entropy_by_run as (
    {{ checks_rows('entropy_late_to_early', 'run', 'training_stability', 'run_id', 'entropy_late_to_early',
                   'entropy_collapse_fraction', '>=',
                   not_null='has_entropy_collapse') }}
),

-- Every run label events carry joins a W&B run (fct_event_run_labels); value = its events.
events_joined_by_label as (
    {{ checks_rows('events_joined', 'run_label', 'event_run_labels', 'run_label', 'n_events',
                   comparison='is', subject_label=none,
                   observed_label="case when is_joined then 'joined' when ambiguous_run_ids is not null then 'unjoined: several runs have this name' else 'unjoined: no run has this id or name' end",
                   expected_label='joined', not_null='run_label') }}
),

-- A trend with too few points is not judged: it is no evidence either way.
base_model_declining_by_run as (
    {{ checks_rows('base_model_declining', 'run', 'learning_verdicts', 'run_id', 'base_model_delta',
                   comparison='is', observed_label='base_model_trend',
                   expected_label='declining',
                   not_null="nullif(base_model_trend, 'insufficient_data')") }}
),

gap_growing_by_run as (
    {{ checks_rows('gap_growing', 'run', 'learning_verdicts', 'run_id', 'gap_delta',
                   comparison='is', observed_label='gap_trend',
                   expected_label='growing', not_null="nullif(gap_trend, 'insufficient_data')") }}
),

-- The league's harness: the fixed references' ratings relative to the anchor
-- must not move between evaluation steps (when they do, the evaluation
-- changed, not the model). Null (one evaluation step) is not judged.
game_harness_by_run as (
    {{ checks_rows('game_harness_stable', 'run', 'game_learning', 'run_id', 'case when harness_stable then 0 else 1 end',
                   comparison='is',
                   observed_label="case when harness_stable then 'stable' else 'moved' end",
                   expected_label='stable', not_null='harness_stable') }}
),

-- A cycle among the fixed references and the best checkpoint (a beats b, b
-- beats c, c beats a in the games): one rating scale cannot describe it.
games_transitive_by_run as (
    {{ checks_rows('games_transitive', 'run', 'game_learning', 'run_id', 'case when is_intransitive then 1 else 0 end',
                   comparison='is',
                   observed_label="case when is_intransitive then 'intransitive' else 'transitive' end",
                   expected_label='transitive', not_null='is_intransitive') }}
),

-- '<=' so the check agrees with fct_component_health.status: a component is
-- stale only when silent *longer* than the threshold. Components not seen
-- within the health lookback are no longer checked (nor listed).
heartbeat_fresh_by_component as (
    {{ checks_rows('heartbeat_fresh', 'component', 'component_health', "component || '@' || host", 'silent_s',
                   'heartbeat_stale_after_s', '<=', subject_label=none,
                   observed_label='status', not_null='case when is_listed then component end') }}
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
    select * from non_finite_by_run
    union all
    select * from entropy_by_run
    union all
    select * from events_joined_by_label
    union all
    select * from base_model_declining_by_run
    union all
    select * from gap_growing_by_run
    union all
    select * from game_harness_by_run
    union all
    select * from games_transitive_by_run
    union all
    select * from heartbeat_fresh_by_component

),

judged as (

    -- The rule (a rate on its Wilson 95 % interval, with a minimum of observations; any
    -- other value as it is) lives in macros/judging.sql, which the CLI's windows use too.
    -- Severity comes from the check catalogue (seeds/target_checks.csv).
    select
        unioned.*,
        target_checks.severity,
        {{ judge_outcome('unioned.value', 'unioned.threshold', 'unioned.comparison', 'unioned.n_observations',
                         'unioned.min_observations', 'unioned.ci95_lo', 'unioned.ci95_hi',
                         'unioned.observed_label', 'unioned.expected_label') }} as outcome
    from unioned
    left join target_checks
        on
            unioned.check_name = target_checks.check_name
            and unioned.subject_type = target_checks.subject_type

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
        case outcome when 'pass' then true when 'fail' then false end as passed,
        outcome,
        severity,
        observed_label,
        expected_label,
        n_observations,
        ci95_lo,
        ci95_hi,
        case
            when outcome = 'inconclusive' and min_observations is not null and coalesce(n_observations, 0) < min_observations
                then check_name || ' = ' || coalesce(printf('%.6g', value), 'null') || ' from ' || coalesce(n_observations, 0)
                    || ' observations, fewer than the ' || printf('%.0f', min_observations) || ' a verdict needs (inconclusive)'
            when outcome = 'inconclusive'
                then check_name || ' = ' || printf('%.6g', value) || ', 95 % CI [' || printf('%.4g', ci95_lo) || ', '
                    || printf('%.4g', ci95_hi) || '] straddles the target ' || comparison || ' ' || printf('%.6g', threshold)
                    || ' (inconclusive)'
            when check_name = 'events_joined'
                then coalesce(printf('%.0f', value), '0') || ' events carry this run label: ' || coalesce(observed_label, 'unknown')
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
