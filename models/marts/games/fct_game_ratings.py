"""Ratings from each run's league games: Bradley-Terry with bootstrap intervals (issue #16).

A dbt Python model (dbt-duckdb runs it in the dbt process, on the build's
DuckDB connection) rather than a Dagster asset after the build: it is then
part of every `dbt build` (`grpo ingest`, the Dagster dbt asset, the test
harness), its lineage is dbt's (int_game_results -> here -> fct_game_learning
-> fct_learning_verdicts), its data tests are Dagster asset checks like every
other mart's, and the SQL verdict can use it. The statistics are in
pipelines/ratings/ (numpy/scipy). Rebuilt whole each build (games are few
next to events; a fit is per run).

One row per run, scope and player: scope `run` fits all the run's valid games,
scope `step` the games of one evaluation step.
"""


def model(dbt, session):
    from pipelines.engine import model_result, ref_as_pandas
    from pipelines.ratings.league import Settings, ratings_rows

    dbt.config(materialized="table")
    # the vars, rendered into the model's meta (its .yml); dbt hands a Python
    # model only the keys its code names literally (not inside another call)
    meta = {
        "game_rating_anchor": dbt.config.meta_get("game_rating_anchor"),
        "game_rating_anchor_elo": dbt.config.meta_get("game_rating_anchor_elo"),
        "game_bootstrap_rounds": dbt.config.meta_get("game_bootstrap_rounds"),
        "game_bootstrap_seed": dbt.config.meta_get("game_bootstrap_seed"),
        "min_games_for_verdict": dbt.config.meta_get("min_games_for_verdict"),
        "game_target_half_width_elo": dbt.config.meta_get("game_target_half_width_elo"),
    }
    settings = Settings.from_config(meta.get)
    results = ref_as_pandas(dbt.ref("int_game_results").filter("reject_reason is null"))
    return model_result(session, ratings_rows(results, settings))
