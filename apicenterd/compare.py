"""What decides whether a write is needed: the hash of what a target stores, and which fields differ.
Decimals compare by value (``13.5`` and ``13.50`` are the same price)."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any

from .model import Record

__all__ = ["differing_fields", "record_hash", "same_json"]


def _comparable(python: Any, json_value: Any) -> Any:
    """The JSON form of a dumped value with every decimal in its shortest form (``13.50`` and
    ``13.5`` compare and hash alike; other values exactly as their JSON dump)."""
    if isinstance(python, Decimal):
        return format(python.normalize(), "f") if python.is_finite() else json_value
    if isinstance(python, dict) and isinstance(json_value, dict):
        return {k: _comparable(python.get(k), v) for k, v in json_value.items()}
    if isinstance(python, (list, tuple)) and isinstance(json_value, list) and len(python) == len(json_value):
        return [_comparable(p, j) for p, j in zip(python, json_value, strict=True)]
    return json_value


def _dump(record: Record, fields: frozenset[str]) -> dict[str, Any]:
    """``fields`` of ``record`` as compared and hashed (see :func:`_comparable`)."""
    include = set(fields)
    result: dict[str, Any] = _comparable(record.model_dump(include=include), record.model_dump(mode="json", include=include))
    return result


def same_json(old: Any, new: Any) -> bool:
    """Whether two JSON-dumped values are equal, numbers written as decimals compared by value."""
    if isinstance(old, str) and isinstance(new, str) and old != new:
        try:
            return Decimal(old) == Decimal(new)
        except ArithmeticError:
            return False
    return bool(old == new)


def record_hash(record: Record, fields: frozenset[str]) -> str:
    """A stable hash of ``fields`` of ``record`` (what decides whether a write is needed). Decimals
    hash by value: ``13.5`` and ``13.50`` are the same price."""
    data = _dump(record, fields)
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


def differing_fields(record: Record, current: Record | None, fields: frozenset[str]) -> frozenset[str]:
    """Which of ``fields`` differ between ``record`` and the target's ``current`` version (decimals by value)."""
    if current is None or type(current) is not type(record):
        return fields
    new = _dump(record, fields)
    old = _dump(current, fields)
    return frozenset(f for f in fields if new.get(f) != old.get(f))
