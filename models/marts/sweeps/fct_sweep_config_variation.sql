-- What was varied in a sweep: config keys whose value differs between its
-- runs, or that only some of its runs set.
with

runs as (

    select * from {{ ref('dim_runs') }}

),

run_config as (

    select * from {{ ref('dim_run_config') }}

),

sweep_sizes as (

    select
        sweep_key,
        count(*) as n_runs_in_sweep

    from runs
    group by sweep_key

),

key_values as (

    select
        runs.sweep_key,
        run_config.config_key,
        count(distinct run_config.run_id) as n_runs,
        count(distinct run_config.value_json) as n_distinct_values,
        {{ list_agg_distinct_sorted('run_config.value_text') }} as distinct_values

    from run_config
    inner join runs
        on run_config.run_id = runs.run_id
    group by runs.sweep_key, run_config.config_key

),

final as (

    select
        key_values.sweep_key,
        key_values.config_key,
        key_values.n_runs,
        sweep_sizes.n_runs_in_sweep,
        key_values.n_distinct_values,
        key_values.distinct_values

    from key_values
    inner join sweep_sizes
        on key_values.sweep_key = sweep_sizes.sweep_key
    where key_values.n_distinct_values > 1
        or key_values.n_runs < sweep_sizes.n_runs_in_sweep

)

select * from final
