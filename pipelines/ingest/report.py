"""What one ingest added and how long each part took."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field


@dataclass
class IngestReport:
    """What one ingest added (new_*) and how long each part took."""

    new_runs: int = 0
    updated_runs: int = 0
    new_history_rows: int = 0
    new_history_other_rows: int = 0
    restated_steps: int = 0
    new_events: int = 0
    new_rejects: int = 0
    duplicate_events_dropped: int = 0
    runs_seen: int = 0
    wandb_seconds: float = 0.0
    events_seconds: float = 0.0
    batch_id: str | None = None
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


Progress = Callable[[str], None]
