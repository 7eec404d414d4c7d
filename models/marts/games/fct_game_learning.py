"""The learning signal from each run's league games, one row per run (issue #16).

A dbt Python model for the reasons given in fct_game_ratings.py. The run-level
fit is computed again here (same games, same seed: the same numbers as
fct_game_ratings' scope `run`), because the trend and the likelihood of
superiority need the bootstrap rounds themselves, not their intervals; the
harness check reads fct_game_ratings' per-step rows.
"""


def model(dbt, session):
    from pipelines.engine import model_result, ref_as_pandas
    from pipelines.ratings.league import Settings, learning_rows

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
    per_step = ref_as_pandas(dbt.ref("fct_game_ratings").filter("scope = 'step'"))
    return model_result(session, learning_rows(results, per_step, settings))
