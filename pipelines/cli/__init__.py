"""`grpo`: the analyst's questions, answered from the warehouse (the click layer; `app.main` is the entry point)."""
