"""Which events are the same event: the key every event source gives an event.

An event exported twice (one file ingested under two names, two Axiom exports
that overlap, an API sync and an Axiom export of the same dataset with its
`_rowId`s) must count once.
So an event's key says what the event *is*, not where it was read:

1. Axiom's own row id, the ``_rowId`` field, when the event has one;
2. else, for the event kinds listed in the ``event_identity`` var, the values
   of the fields listed there (default: a rollout is its ``run_id`` and
   ``rollout_id``), as ``<kind>:<JSON list of the values>``; an event missing
   any of them falls through to
3. a hash of the event's content: the record as the source delivered it
   (NDJSON: the line, without its terminator; the Axiom API: its canonical
   JSON), so the identical line always gives the identical key.

Sources compute the key when they read (one JSON parse per line, shared with
the time field), and the staging model `stg_axiom__events` keeps one row per
key (the first copy stored). Keys are made when events are ingested: a change
of `event_identity` or `event_fields` applies to events ingested afterwards.

Both sources use the SQL built here (the NDJSON reader for every line, the
Axiom API source for rows without `_rowId`), so the rules cannot drift apart.
The event kind is decided as `stg_axiom__events` decides it (`classified`);
tests/test_events_once.py checks the two agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

ROW_ID_FIELD = "_rowId"
# Kinds a key can be configured for: those stg_axiom__events assigns.
EVENT_KINDS = ("rollout", "inference", "extraction", "error", "heartbeat", "game", "other")


def field_path(field_name: str) -> str:
    """The DuckDB JSON path of a mapped field name, as macros/event_fields.sql builds it.

    A name starting with ``$`` is a path already (nested fields); any other
    name is one top-level member, quoted so dots and spaces stay literal.
    """
    if field_name.startswith("$"):
        return field_name
    return '$."' + field_name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class EventIdentity:
    """The key rules: the field mapping (`event_fields`) and the identity fields per kind (`event_identity`)."""

    fields: Mapping[str, str]
    by_kind: Mapping[str, tuple[str, ...]]

    @classmethod
    def from_settings(cls) -> EventIdentity:
        from pipelines.settings import event_fields, event_identity

        return cls(event_fields(), event_identity())

    def __post_init__(self) -> None:
        for kind, names in self.by_kind.items():
            if kind not in EVENT_KINDS:
                raise ValueError(f"event_identity: unknown event kind {kind!r} (kinds: {', '.join(EVENT_KINDS)})")
            if not names:
                raise ValueError(f"event_identity: kind {kind!r} lists no fields")

    def _path(self, name: str) -> str:
        mapped = self.fields.get(name, name)
        if mapped is None or not str(mapped).strip():
            raise ValueError(f"event field {name!r} is mapped to an empty name in var event_fields")
        return field_path(str(mapped))

    def paths(self) -> list[str]:
        """JSON paths to extract (in one `json_extract_string(text, [...])`), in the order `key_sql` reads them."""
        return [field_path(ROW_ID_FIELD), *(self._path(n) for n in self._fields_read())]

    def _fields_read(self) -> list[str]:
        """Our names of the fields the key reads after `_rowId`: the kind's, then the identity fields."""
        if not self.by_kind:
            return []
        # a rollout is known by its `event` alone; any other kind also needs `level`
        kind_fields = ["event"] if set(self.by_kind) == {"rollout"} else ["event", "level"]
        identity = [n for names in self.by_kind.values() for n in names]
        return list(dict.fromkeys(kind_fields + identity))

    def key_sql(self, values: str, content_key: str | None, first: int = 1) -> str:
        """SQL: the event key of a row whose `values` (a list column) holds `paths()` from index `first` on.

        `content_key` is the SQL of the content hash, the last resort (None: null there).
        """
        index = {n: first + 1 + i for i, n in enumerate(self._fields_read())}

        def text(name: str) -> str:
            return f"trim({values}[{index[name]}])"

        row_id = f"{values}[{first}]"
        whens = [f"when trim({row_id}) <> '' then {row_id}"]
        if self.by_kind:
            event = f"lower({text('event')})"
            for k, names in self.by_kind.items():
                if k == "rollout":
                    is_kind = f"{event} = 'rollout'"
                else:
                    # the rule of stg_axiom__events (classified): a rollout with level=error stays a rollout
                    level = f"lower({text('level')})"
                    kind = (
                        f"case when {event} = 'rollout' then 'rollout' "
                        f"when {level} = 'error' or {event} = 'error' then 'error' "
                        f"when {event} in ('inference', 'extraction', 'heartbeat', 'game') then {event} "
                        f"else 'other' end"
                    )
                    is_kind = f"coalesce({kind}, 'other') = {sql_literal(k)}"
                present = " and ".join(f"{text(n)} <> ''" for n in names)
                values_json = f"to_json([{', '.join(text(n) for n in names)}])::varchar"
                whens.append(f"when {is_kind} and {present} then {sql_literal(k + ':')} || {values_json}")
        return "case " + " ".join(whens) + f" else {content_key or 'null'} end"
