-- One verdict per run. Win rate against a moving league means little, so the
-- evidence is fixed references (their Elo falls when the policy improves) and
-- the best checkpoint's lead over the base model; every trend counts only when
-- statistically clear and material (see macros/trend.sql).
with

runs as (

    select * from {{ ref('dim_runs') }}

),

elo_ratings as (

    select * from {{ ref('int_elo_ratings_classified') }}

),

reference_trends as (

    select * from {{ ref('fct_reference_trends') }}

),

gap_trends as (

    select * from {{ ref('fct_gap_trends') }}

),

stability as (

    select * from {{ ref('fct_training_stability') }}

),

-- The league's games themselves (Bradley-Terry fits, fct_game_learning): with
-- at least var min_games_for_verdict valid games they decide instead of the
-- logged Elo, and the reason says so.
game_learning as (

    select * from {{ ref('fct_game_learning') }}

),

eval_points as (

    select
        run_id,
        count(distinct step) as n_eval_points

    from elo_ratings
    where player = {{ wb_text_literal(var('base_reference_player')) }}
    group by run_id

),

reference_counts as (

    select
        run_id,
        count(*) as n_references,
        count(*) filter (where trend = 'declining') as n_references_declining,
        count(*) filter (where trend = 'rising') as n_references_rising,
        {{ string_agg_ordered(format_text('{} {:+.0f}', ['player', 'fitted_change']), "', '", 'player', where="trend = 'declining'") }}
            as declining_evidence,
        {{ string_agg_ordered(format_text('{} {:+.0f}', ['player', 'fitted_change']), "', '", 'player', where="trend = 'rising'") }}
            as rising_evidence

    from reference_trends
    group by run_id

),

-- Players by kind: a run whose league names its checkpoints in a way no
-- checkpoint pattern matches has no gap; the reason says so and names them.
player_kinds as (

    select
        run_id,
        count(distinct player) filter (where player_kind = 'checkpoint') as n_checkpoint_players,
        {{ list_agg_distinct_sorted('player', where="player_kind = 'unclassified'") }} as unclassified_players

    from elo_ratings
    group by run_id

),

base_model as (

    select
        run_id,
        first_elo as base_model_first,
        last_elo as base_model_last,
        delta as base_model_delta,
        fitted_change as base_model_fitted_change,
        slope_ci95_lo as base_model_ci95_lo,
        slope_ci95_hi as base_model_ci95_hi,
        trend as base_model_trend

    from reference_trends
    where player = {{ wb_text_literal(var('base_reference_player')) }}

),

evidence as (

    select
        runs.run_id,
        runs.run_name,
        runs.sweep_key,
        coalesce(eval_points.n_eval_points, 0) as n_eval_points,
        coalesce(reference_counts.n_references, 0) as n_references,
        coalesce(reference_counts.n_references_declining, 0) as n_references_declining,
        coalesce(reference_counts.n_references_rising, 0) as n_references_rising,
        reference_counts.declining_evidence,
        reference_counts.rising_evidence,
        base_model.base_model_first,
        base_model.base_model_last,
        base_model.base_model_delta,
        base_model.base_model_fitted_change,
        base_model.base_model_ci95_lo,
        base_model.base_model_ci95_hi,
        base_model.base_model_trend,
        gap_trends.gap_first,
        gap_trends.gap_last,
        gap_trends.gap_delta,
        gap_trends.gap_final,
        gap_trends.fitted_change as gap_fitted_change,
        gap_trends.trend as gap_trend,
        coalesce(player_kinds.n_checkpoint_players, 0) as n_checkpoint_players,
        coalesce(player_kinds.unclassified_players, {{ empty_text_list() }}) as unclassified_players,
        stability.kl_spike_steps,
        stability.kl_p95,
        stability.grad_norm_max,
        stability.grad_norm_over_steps,
        coalesce(stability.has_kl_spikes, false) as has_kl_spikes,
        -- NaN/±Inf KL or grad norm: never dropped silently (counted, and unstable per var)
        coalesce(stability.non_finite_kl, 0) + coalesce(stability.non_finite_grad_norm, 0) as non_finite_stability_values,
        stability.kl_p95 is not null or stability.grad_norm_max is not null as has_stability_data,
        coalesce(game_learning.n_games, 0) as n_games,
        coalesce(game_learning.has_enough_games, false)
            and game_learning.games_signal in ('learning', 'not_learning') as uses_games,
        game_learning.games_signal,
        game_learning.checkpoint_trend as game_checkpoint_trend,
        game_learning.trend_per_100_steps as game_trend_per_100_steps,
        game_learning.trend_ci95_lo as game_trend_ci95_lo,
        game_learning.trend_ci95_hi as game_trend_ci95_hi,
        game_learning.newest_checkpoint as game_newest_checkpoint,
        game_learning.newest_vs_anchor as game_gap,
        game_learning.newest_vs_anchor_ci95_lo as game_gap_ci95_lo,
        game_learning.newest_vs_anchor_ci95_hi as game_gap_ci95_hi,
        game_learning.newest_superiority as game_gap_superiority,
        game_learning.anchor as game_anchor

    from runs
    left join eval_points
        on runs.run_id = eval_points.run_id
    left join reference_counts
        on runs.run_id = reference_counts.run_id
    left join player_kinds
        on runs.run_id = player_kinds.run_id
    left join base_model
        on runs.run_id = base_model.run_id
    left join gap_trends
        on runs.run_id = gap_trends.run_id
    left join stability
        on runs.run_id = stability.run_id
    left join game_learning
        on runs.run_id = game_learning.run_id

),

signals as (

    select
        *,
        n_eval_points < {{ var('min_eval_points') }} and not uses_games as is_insufficient,
        -- Without a usable gap trend (no checkpoints, or too few gap points
        -- for a trend) the fixed references alone decide.
        coalesce(gap_trend, 'insufficient_data') = 'insufficient_data' as gap_undecided,
        case
            when uses_games then games_signal = 'learning'
            else n_references_declining >= 1
                and n_references_rising = 0
                and coalesce(gap_trend, 'insufficient_data') in ('growing', 'insufficient_data')
        end as has_learning_signal,
        has_kl_spikes
            or coalesce(grad_norm_over_steps, 0) > 0
            or ({{ var('non_finite_is_unstable') }} and non_finite_stability_values > 0) as is_unstable,

        {{ format_head("{} {} → {} Elo (fitted {}, 95 % CI of the slope {} to {} per 100 steps)") }}
            {{ wb_text_literal(var('base_reference_player')) }},
            coalesce({{ format_head("{:.0f}") }} base_model_first), 'n/a'),
            coalesce({{ format_head("{:.0f}") }} base_model_last), 'n/a'),
            coalesce({{ format_head("{:+.0f}") }} base_model_fitted_change), 'n/a'),
            coalesce({{ format_head("{:+.1f}") }} base_model_ci95_lo), 'n/a'),
            coalesce({{ format_head("{:+.1f}") }} base_model_ci95_hi), 'n/a')
        ) as base_model_evidence,
        {{ format_head("from {} league games (Bradley-Terry fit, 95 % bootstrap intervals): checkpoint ratings {} over checkpoint step ({} Elo per 100 steps, CI {} to {}); the newest checkpoint {} is {} Elo vs {} (CI {} to {}, P(stronger) {})") }}
            n_games,
            coalesce(game_checkpoint_trend, 'insufficient_data'),
            coalesce({{ format_head("{:+.1f}") }} game_trend_per_100_steps), 'n/a'),
            coalesce({{ format_head("{:+.1f}") }} game_trend_ci95_lo), 'n/a'),
            coalesce({{ format_head("{:+.1f}") }} game_trend_ci95_hi), 'n/a'),
            coalesce(game_newest_checkpoint, 'n/a'),
            coalesce({{ format_head("{:+.0f}") }} game_gap), 'n/a'),
            coalesce(game_anchor, 'n/a'),
            coalesce({{ format_head("{:+.0f}") }} game_gap_ci95_lo), 'n/a'),
            coalesce({{ format_head("{:+.0f}") }} game_gap_ci95_hi), 'n/a'),
            coalesce({{ format_head("{:.2f}") }} game_gap_superiority), 'n/a')
        ) as game_evidence,
        {{ format_head("the newest checkpoint's lead over {} went {} → {} Elo (fitted {}, trend {})") }}
            {{ wb_text_literal(var('base_reference_player')) }},
            coalesce({{ format_head("{:.0f}") }} gap_first), 'n/a'),
            coalesce({{ format_head("{:.0f}") }} gap_last), 'n/a'),
            coalesce({{ format_head("{:+.0f}") }} gap_fitted_change), 'n/a'),
            coalesce(gap_trend, 'n/a')
        ) as gap_evidence,
        case
            when n_checkpoint_players = 0 and {{ list_len('unclassified_players') }} > 0 then {{ format_head("; no Elo player was classified as a checkpoint, so there is no checkpoint gap and the references alone decide (unclassified players: {}; set var checkpoint_patterns or fixed_reference_patterns)") }}
                {{ list_join('unclassified_players', "', '") }}
            )
            when n_checkpoint_players = 0
                then '; no Elo player was classified as a checkpoint, so there is no checkpoint gap and the references alone decide'
            else '; there is too little checkpoint gap data for a gap trend, so the references alone decide'
        end as gap_undecided_evidence,
        concat_ws(
            ' and ',
            case
                when has_kl_spikes then {{ format_head("KL above {} on {} steps ({} allowed)") }}
                    {{ var('kl_spike_min') }}, kl_spike_steps, {{ var('kl_spike_steps_allowed') }}
                )
            end,
            case
                when coalesce(grad_norm_over_steps, 0) > 0 then {{ format_head("grad norm at or above {} on {} steps (max {:.1f})") }}
                    {{ var('grad_norm_max') }}, grad_norm_over_steps, grad_norm_max
                )
            end,
            case
                when non_finite_stability_values > 0 then {{ format_head("{} non-finite KL or grad norm values (NaN/Inf)") }} non_finite_stability_values
                )
            end
        ) as instability_evidence

    from evidence

),

verdicts as (

    select
        *,
        case
            when is_insufficient then 'insufficient_data'
            when has_learning_signal and is_unstable then 'unstable'
            when has_learning_signal then 'learning'
            else 'not_learning'
        end as verdict

    from signals

),

final as (

    select
        run_id,
        run_name,
        sweep_key,
        verdict,
        case
            when uses_games then {{ format_head("{}: {}.") }}
                case verdict
                    when 'learning' then 'Learning'
                    when 'unstable' then 'Unstable learning (' || instability_evidence || ')'
                    else 'Not learning'
                end,
                game_evidence
            )
            when verdict = 'insufficient_data' and n_eval_points = 0 then {{ format_head("No evaluation step has a {} Elo yet; a verdict needs at least {}.") }}
                {{ wb_text_literal(var('base_reference_player')) }}, {{ var('min_eval_points') }}
            )
            when verdict = 'insufficient_data' then {{ format_head("Only {} evaluation steps have a {} Elo; a verdict needs at least {}.") }}
                n_eval_points, {{ wb_text_literal(var('base_reference_player')) }}, {{ var('min_eval_points') }}
            )
            when verdict in ('learning', 'unstable') then {{ format_head("{}ixed references declined ({}) and none rose; {}{}.") }}
                case when verdict = 'unstable' then 'Unstable learning: ' || instability_evidence || '; f' else 'F' end,
                declining_evidence,
                base_model_evidence,
                case
                    when gap_undecided then gap_undecided_evidence
                    else '; ' || gap_evidence
                end
            )
            when n_references_rising > 0 then {{ format_head("Fixed references rose in Elo ({}), so the policy is not beating fixed opponents more often: {}.") }}
                rising_evidence, base_model_evidence
            )
            when n_references_declining = 0 then {{ format_head("No fixed reference declined clearly (a trend needs a 95 % CI excluding zero and at least {} Elo of fitted change): {}.") }}
                {{ var('min_elo_change') }}, base_model_evidence
            )
            else {{ format_head("Fixed references declined ({}) but {}, so checkpoints are not pulling ahead of the base model.") }}
                declining_evidence, gap_evidence
            )
        end
        -- a run that does not learn can still be unstable: say so rather than hide it
        || case
            when verdict = 'not_learning' and is_unstable then ' Training is also unstable: ' || instability_evidence || '.'
            else ''
        end as reason,
        -- which evidence decided: the league's games, or the Elo the trainer logged
        case when uses_games then 'games' else 'logged_elo' end as evidence,
        n_games,
        case
            when is_unstable then 'unstable'
            when has_stability_data then 'stable'
            else 'unknown'
        end as stability,
        nullif(instability_evidence, '') as stability_evidence,
        non_finite_stability_values,
        n_eval_points,
        n_references,
        n_references_declining,
        n_references_rising,
        base_model_first,
        base_model_last,
        base_model_delta,
        base_model_trend,
        gap_first,
        gap_last,
        gap_delta,
        gap_final,
        gap_trend,
        n_checkpoint_players,
        unclassified_players,
        kl_spike_steps,
        kl_p95,
        grad_norm_max,
        grad_norm_over_steps,
        game_gap,
        game_gap_ci95_lo,
        game_gap_ci95_hi,
        game_gap_superiority,
        game_checkpoint_trend

    from verdicts

)

select * from final
