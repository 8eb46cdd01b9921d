"""The dry run: what a run would write, field by field, without writing anything."""

from __future__ import annotations

import dataclasses
from typing import Any

from .compare import same_json
from .model import Record

__all__ = ["Plan", "plan", "written"]


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a dry run would write: the operation, the record and a field-by-field diff."""

    op: str
    entity: str
    key: str
    target_id: str | None
    diff: dict[str, dict[str, Any]]


def plan(op: str, entity: str, target_id: str | None, record: Record, fields: frozenset[str], current: Record | None) -> Plan:
    """The :class:`Plan` of one write: every field for a create, the ones that differ for an update."""
    new = record.model_dump(mode="json", include=set(fields))
    old = current.model_dump(mode="json", include=set(fields)) if current is not None else {}
    diff = {f: {"from": old.get(f), "to": new.get(f)} for f in sorted(fields) if op == "create" or not same_json(old.get(f), new.get(f))}
    return Plan(op, entity, record.key(), target_id, diff)


def written(op: str, entity: str, target_id: str | None, record: Record, fields: frozenset[str], current: Record | None) -> dict[str, Any]:
    """What one write sent to the target, for the audit trail: ``{"op", "entity", "target_id", "fields"}``
    where each field is ``{"to": value}`` (a create, or an update whose target record was not read) or
    ``{"from": old, "to": new}`` (an update of a record read from the target: only the fields that differ)."""
    new = record.model_dump(mode="json", include=set(fields))
    if op == "update" and current is not None:
        old = current.model_dump(mode="json", include=set(fields))
        diff = {f: {"from": old.get(f), "to": new.get(f)} for f in sorted(fields) if not same_json(old.get(f), new.get(f))}
    else:
        diff = {f: {"to": new.get(f)} for f in sorted(fields) if f in new}
    return {"op": op, "entity": entity, "target_id": target_id, "fields": diff}
