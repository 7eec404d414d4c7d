-- Everything known about a run on one row: what it was (W&B), whether it
-- learned (verdicts), whether it was stable (KL, grad norm) and how the
-- pipeline around it behaved (rollouts, errors, extraction). Metrics a run
-- does not have stay null.
with

runs as (

    select * from {{ ref('dim_runs') }}

),

learning_verdicts as (

    select * from {{ ref('fct_learning_verdicts') }}

),

training_stability as (

    select * from {{ ref('fct_training_stability') }}

),

rollout_timing_by_run as (

    select * from {{ ref('fct_rollout_timing_by_run') }}

),

rollout_errors_by_run as (

    select * from {{ ref('fct_rollout_errors_by_run') }}

),

extraction_by_run as (

    select * from {{ ref('fct_extraction_by_run') }}

),

final as (

    select
        runs.run_id,
        runs.run_name,
        runs.sweep_key,
        runs.state,
        runs.started_at,
        runs.config_json,
        learning_verdicts.verdict,
        learning_verdicts.gap_final,
        learning_verdicts.base_model_delta,
        training_stability.kl_p95,
        training_stability.kl_spike_steps,
        training_stability.grad_norm_max,
        rollout_timing_by_run.p95_s as rollout_p95_s,
        coalesce(rollout_errors_by_run.n_rollouts, 0) as n_rollouts,
        rollout_errors_by_run.error_rate,
        coalesce(rollout_errors_by_run.n_error_events, 0) as n_error_events,
        extraction_by_run.extraction_rate

    from runs
    left join learning_verdicts
        on runs.run_id = learning_verdicts.run_id
    left join training_stability
        on runs.run_id = training_stability.run_id
    left join rollout_timing_by_run
        on runs.run_id = rollout_timing_by_run.run_id
    left join rollout_errors_by_run
        on runs.run_id = rollout_errors_by_run.run_id
    left join extraction_by_run
        on runs.run_id = extraction_by_run.run_id

)

select * from final
