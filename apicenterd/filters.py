"""Custom record filters: conditions on canonical fields that decide whether a flow handles a record."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from . import fieldpath
from .fieldpath import MISSING
from .model import Record

__all__ = ["Filter", "field_value", "MISSING"]

Op = Literal["eq", "ne", "in", "not_in", "gt", "ge", "lt", "le", "contains", "matches", "exists"]


def field_value(record: Any, path: str) -> Any:
    """The value at a dotted ``path`` (``billing_address.country``, ``lines.0.sku``) or MISSING."""
    return fieldpath.get(record, path)


def _number(value: Any) -> Decimal | None:
    """A finite number, or None: NaN and Infinity (``"NaN"`` in a field) compare to nothing."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


class Filter(BaseModel):
    """``field op value``: e.g. ``{field = "active", op = "eq", value = true}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str
    op: Op = "eq"
    value: Any = None

    @model_validator(mode="after")
    def _check_value(self) -> Filter:
        if self.op in ("in", "not_in") and not isinstance(self.value, list):
            raise ValueError(f"op {self.op!r} needs a list as value, got {self.value!r}")
        if self.op in ("gt", "ge", "lt", "le") and _number(self.value) is None:
            raise ValueError(f"op {self.op!r} needs a number as value, got {self.value!r}")
        if self.op == "exists" and not isinstance(self.value, (bool, type(None))):
            raise ValueError(f"op 'exists' needs true or false as value, got {self.value!r}")
        if self.op == "matches":
            try:
                re.compile(str(self.value))
            except re.error as exc:
                raise ValueError(f"value {self.value!r} is not a regular expression: {exc}") from None
        return self

    def matches(self, record: Record) -> bool:
        """Whether ``record`` passes this condition. A missing field passes only ``exists = false``;
        an empty (None) field fails ``contains``, ``matches`` and the number comparisons."""
        actual = field_value(record, self.field)
        if self.op == "exists":
            wanted = True if self.value is None else bool(self.value)
            return (actual is not MISSING and actual is not None) == wanted
        if actual is MISSING:
            return False
        if actual is None and self.op not in ("eq", "ne", "in", "not_in"):
            return False  # None contains nothing, matches nothing, compares to nothing
        if self.op in ("eq", "ne"):
            same = _equal(actual, self.value)
            return same if self.op == "eq" else not same
        if self.op in ("in", "not_in"):
            found = any(_equal(actual, v) for v in self.value)
            return found if self.op == "in" else not found
        if self.op == "contains":
            if isinstance(actual, (list, tuple)):
                return any(_equal(a, self.value) for a in actual)
            return str(self.value).lower() in str(actual).lower()
        if self.op == "matches":
            return re.search(str(self.value), str(actual)) is not None
        left, right = _number(actual), _number(self.value)
        if left is None or right is None:
            return False
        return {"gt": left > right, "ge": left >= right, "lt": left < right, "le": left <= right}[self.op]

    def describe(self) -> str:
        """The condition as text, for logs and audit reasons."""
        return f"{self.field} {self.op} {self.value!r}"


def _equal(actual: Any, wanted: Any) -> bool:
    if actual is None or wanted is None:
        return actual is wanted
    if isinstance(actual, bool) or isinstance(wanted, bool):
        return isinstance(actual, bool) and isinstance(wanted, bool) and actual == wanted
    left, right = _number(actual), _number(wanted)
    if left is not None and right is not None:
        return left == right
    return str(getattr(actual, "value", actual)) == str(wanted)
