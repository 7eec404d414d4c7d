{{ incremental_by_key('run_id', inputs=['stg_wandb__history']) }}
-- depends_on: {{ ref('stg_wandb__history') }}
-- Incremental (macros/incremental.sql): a build resolves only the runs with
-- history in new raw batches; a changed setting (vars:) resolves every run.
-- Trainers name the same metric differently (TRL, verl, OpenRLHF); var
-- metric_aliases lists the names per canonical metric, and per run the first
-- alias in list order that the run actually logged wins. Names match as paths
-- (macros/elo_players.sql: `train/kl` = `train.kl`, a nested dict), and the
-- key is kept as logged.
with

{% if is_incremental() %}
affected_runs as (

    {{ incremental_affected_runs(ref('stg_wandb__history'), renamed_runs=false) }}

),
{% endif %}

history {{ cte_not_materialized() }} (

    select * from {{ ref('stg_wandb__history') }}
    {% if is_incremental() %}
    where run_id in (select run_id from affected_runs)
    {% endif %}

),

aliases as (

    {% for canonical_name, alias_list in var('metric_aliases').items() %}
    {% for alias in alias_list %}
    select
        {{ wb_text_literal(canonical_name) }} as canonical_name,
        {{ wb_text_literal(alias) }} as metric_key,
        {{ loop.index }} as alias_rank
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

logged_keys as (

    select distinct
        run_id,
        metric_key

    from history

),

final as (

    select
        logged_keys.run_id,
        aliases.canonical_name,
        logged_keys.metric_key,
        aliases.alias_rank

    from logged_keys
    inner join aliases
        on {{ metric_path('logged_keys.metric_key') }} = {{ metric_path('aliases.metric_key') }}
    qualify row_number() over (
        partition by logged_keys.run_id, aliases.canonical_name
        order by aliases.alias_rank, logged_keys.metric_key
    ) = 1

)

select * from final
