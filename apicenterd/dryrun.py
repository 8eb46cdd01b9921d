"""The dry run: what a run would write, field by field, without writing anything."""

from __future__ import annotations

import dataclasses
from typing import Any

from .compare import same_json
from .model import Record

__all__ = ["Plan", "plan"]


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
