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


class _NotPlain(Exception):
    """A dumped value whose JSON form only pydantic's JSON mode knows (a date, an enum, a UUID, ...)."""


def _plain(python: Any) -> Any:
    """What :func:`_comparable` makes of ``python`` (a ``model_dump`` in Python mode), without the
    JSON-mode dump, for values whose JSON form is plain: str, int, bool, None, finite floats and
    decimals, and lists, tuples and dicts of them (exact types only: a subclass, e.g. an enum, may
    dump otherwise). Raises :class:`_NotPlain` for anything else."""
    kind = type(python)
    if kind is str or kind is int or kind is bool or python is None:
        return python
    if kind is Decimal:
        if python.is_finite():
            return format(python.normalize(), "f")
        raise _NotPlain
    if kind is float:
        if python - python == 0:  # finite (inf and nan dump as null)
            return python
        raise _NotPlain
    if kind is dict:
        return {k: _plain(v) for k, v in python.items()}
    if kind is list or kind is tuple:
        return [_plain(v) for v in python]
    raise _NotPlain


def _dump(record: Record, fields: frozenset[str]) -> dict[str, Any]:
    """``fields`` of ``record`` as compared and hashed (see :func:`_comparable`): from one dump in
    Python mode when every value is plain (:func:`_plain`, the same result), else from both modes."""
    include = set(fields)
    python = record.model_dump(include=include)
    try:
        plain: dict[str, Any] = _plain(python)
        return plain
    except _NotPlain:
        result: dict[str, Any] = _comparable(python, record.model_dump(mode="json", include=include))
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
