"""The demo league, written without network or credentials: `build.generate_demo` writes W&B runs
(offline, by the real `wandb` library) and a day of Axiom-shaped events, plus a manifest of what the
warehouse should conclude. The runs' numbers come from `league_truth`; `wandb_runs_writer` and
`wandb_worker` log them; `event_timeline`, `ops_events`, `league_games` and `event_stream` make and
write the events; `manifest` records the outcome."""
