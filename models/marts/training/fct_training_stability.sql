{{ incremental_by_key('run_id', inputs=['stg_wandb__history', 'stg_wandb__runs']) }}
-- depends_on: {{ ref('stg_wandb__history') }}
-- depends_on: {{ ref('stg_wandb__runs') }}
-- Incremental (macros/incremental.sql): a build recomputes, from all their
-- history, only the runs with history in new raw batches or a new W&B run
-- version; a changed setting (vars:) recomputes every run.
-- KL, gradient norm, reward, policy entropy, clip ratio and response length per
-- run, each under whichever alias the run logged (var metric_aliases), compared
-- with the targets in dbt_project.yml. Entropy collapse: the mean of the last
-- var entropy_window entropy values below var entropy_collapse_fraction of the
-- mean of the first ones (judged only with at least twice that many values).
with

{% if is_incremental() %}
affected_runs as (

    {{ incremental_affected_runs(ref('stg_wandb__history')) }}

),
{% endif %}

runs as (

    select * from {{ ref('stg_wandb__runs') }}
    {% if is_incremental() %}
    where run_id in (select run_id from affected_runs)
    {% endif %}

),

history {{ cte_not_materialized() }} (

    select * from {{ ref('stg_wandb__history') }}
    {% if is_incremental() %}
    where run_id in (select run_id from affected_runs)
    {% endif %}

),

resolved_keys as (

    select * from {{ ref('int_metric_keys_resolved') }}

),

metric_keys as (

    select
        run_id,
        any_value(metric_key) filter (where canonical_name = 'kl') as kl_key,
        any_value(metric_key) filter (where canonical_name = 'grad_norm') as grad_norm_key,
        any_value(metric_key) filter (where canonical_name = 'reward') as reward_key,
        any_value(metric_key) filter (where canonical_name = 'entropy') as entropy_key,
        any_value(metric_key) filter (where canonical_name = 'clip_ratio') as clip_ratio_key,
        any_value(metric_key) filter (where canonical_name = 'response_length') as response_length_key

    from resolved_keys
    group by run_id

),

canonical_values as (

    select
        resolved_keys.canonical_name,
        history.run_id,
        history.metric_key,
        history.step,
        history.value,
        history.is_finite

    from history
    inner join resolved_keys
        on history.run_id = resolved_keys.run_id
        and history.metric_key = resolved_keys.metric_key
    where resolved_keys.canonical_name in ('kl', 'grad_norm', 'reward', 'entropy', 'clip_ratio', 'response_length')

),

kl as (

    select
        run_id,
        avg(value) filter (where is_finite) as kl_mean,
        {{ quantile_exact('value', 0.95) }} filter (where is_finite) as kl_p95,
        max(value) filter (where is_finite) as kl_max,
        -- +Inf is the largest spike there is; NaN is no reading at all
        count(*) filter (where value > {{ var('kl_spike_min') }} and not {{ is_nan('value') }}) as kl_spike_steps,
        count(*) filter (where is_finite and value < {{ var('kl_stable_max') }})
            / nullif(count(*) filter (where is_finite), 0) as kl_stable_share,
        count(*) filter (where not is_finite) as non_finite_kl

    from canonical_values
    where canonical_name = 'kl'
    group by run_id

),

grad_norm as (

    select
        run_id,
        {{ quantile_exact('value', 0.95) }} filter (where is_finite) as grad_norm_p95,
        max(value) filter (where is_finite) as grad_norm_max,
        count(*) filter (where is_finite and value >= {{ var('grad_norm_max') }}) as grad_norm_over_steps,
        count(*) filter (where not is_finite) as non_finite_grad_norm

    from canonical_values
    where canonical_name = 'grad_norm'
    group by run_id

),

reward_points as (

    select
        run_id,
        step,
        value

    from canonical_values
    where canonical_name = 'reward'
        and is_finite

),

-- Reward uses the CI test alone (materiality 0): rewards have no common
-- scale across tasks, so no fixed "big enough" change could be set here.
reward_fits as (

    {{ ols_trend('reward_points', ['run_id'], x='step', y='value', phi_floor=var('reward_noise_phi_floor')) }}

),

reward as (

    select
        run_id,
        first_value as reward_first,
        last_value as reward_last,
        n_points as reward_n_points,
        slope_per_100_steps as reward_slope_per_100_steps,
        slope_ci95_lo as reward_ci95_lo,
        slope_ci95_hi as reward_ci95_hi,
        {{ trend_label(0, var('min_eval_points'), 'rising', 'falling') }} as reward_trend

    from reward_fits

),

-- Finite values of the series read early vs late, numbered from both ends.
windowed as (

    select
        canonical_name,
        run_id,
        value,
        row_number() over (partition by run_id, canonical_name order by step) as from_start,
        row_number() over (partition by run_id, canonical_name order by step desc) as from_end

    from canonical_values
    where canonical_name in ('entropy', 'response_length')
        and is_finite

),

early_late as (

    select
        run_id,
        canonical_name,
        count(*) as n_values,
        avg(value) filter (where from_start <= {{ var('entropy_window') }}) as early_mean,
        avg(value) filter (where from_end <= {{ var('entropy_window') }}) as late_mean

    from windowed
    group by run_id, canonical_name

),

entropy as (

    select
        run_id,
        n_values as entropy_n_values,
        early_mean as entropy_early,
        late_mean as entropy_late,
        case when early_mean > 0 then late_mean / early_mean end as entropy_late_to_early,
        -- too few values for two separate windows: no judgement (unknown, not fine)
        case
            when n_values >= 2 * {{ var('entropy_window') }} and early_mean > 0
                then late_mean < {{ var('entropy_collapse_fraction') }} * early_mean
        end as has_entropy_collapse

    from early_late
    where canonical_name = 'entropy'

),

clip_ratio as (

    select
        run_id,
        avg(value) filter (where is_finite) as clip_ratio_mean,
        {{ quantile_exact('value', 0.95) }} filter (where is_finite) as clip_ratio_p95,
        max(value) filter (where is_finite) as clip_ratio_max

    from canonical_values
    where canonical_name = 'clip_ratio'
    group by run_id

),

response_length as (

    select
        canonical_values.run_id,
        avg(canonical_values.value) filter (where canonical_values.is_finite) as response_length_mean,
        max(canonical_values.value) filter (where canonical_values.is_finite) as response_length_max,
        any_value(early_late.early_mean) as response_length_early,
        any_value(early_late.late_mean) as response_length_late

    from canonical_values
    left join early_late
        on canonical_values.run_id = early_late.run_id
        and early_late.canonical_name = 'response_length'
    where canonical_values.canonical_name = 'response_length'
    group by canonical_values.run_id

),

non_finite as (

    select
        run_id,
        count(*) filter (where not is_finite) as non_finite_values

    from history
    group by run_id

),

final as (

    select
        runs.run_id,
        runs.run_name,
        metric_keys.kl_key,
        kl.kl_mean,
        kl.kl_p95,
        kl.kl_max,
        kl.kl_spike_steps,
        kl.kl_stable_share,
        kl.non_finite_kl,
        metric_keys.grad_norm_key,
        grad_norm.grad_norm_p95,
        grad_norm.grad_norm_max,
        grad_norm.grad_norm_over_steps,
        coalesce(non_finite.non_finite_values, 0) as non_finite_values,
        grad_norm.non_finite_grad_norm,
        metric_keys.reward_key,
        reward.reward_n_points,
        reward.reward_first,
        reward.reward_last,
        reward.reward_slope_per_100_steps,
        reward.reward_ci95_lo,
        reward.reward_ci95_hi,
        coalesce(reward.reward_trend, 'insufficient_data') as reward_trend,
        metric_keys.entropy_key,
        entropy.entropy_n_values,
        entropy.entropy_early,
        entropy.entropy_late,
        entropy.entropy_late_to_early,
        entropy.has_entropy_collapse,
        metric_keys.clip_ratio_key,
        clip_ratio.clip_ratio_mean,
        clip_ratio.clip_ratio_p95,
        clip_ratio.clip_ratio_max,
        metric_keys.response_length_key,
        response_length.response_length_mean,
        response_length.response_length_max,
        response_length.response_length_early,
        response_length.response_length_late,
        -- null when the run logged no KL / grad norm: unknown, not fine
        kl.kl_p95 < {{ var('kl_stable_max') }} as is_kl_stable,
        kl.kl_spike_steps > {{ var('kl_spike_steps_allowed') }} as has_kl_spikes,
        grad_norm.grad_norm_over_steps > 0 as has_grad_norm_over_target

    from runs
    left join metric_keys
        on runs.run_id = metric_keys.run_id
    left join kl
        on runs.run_id = kl.run_id
    left join grad_norm
        on runs.run_id = grad_norm.run_id
    left join reward
        on runs.run_id = reward.run_id
    left join non_finite
        on runs.run_id = non_finite.run_id
    left join entropy
        on runs.run_id = entropy.run_id
    left join clip_ratio
        on runs.run_id = clip_ratio.run_id
    left join response_length
        on runs.run_id = response_length.run_id

)

select * from final
