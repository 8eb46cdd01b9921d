"""The data mapper: per-flow overrides of the default (canonical → canonical) mapping.

The default mapping is the identity on the canonical model: each connector maps its
vendor's fields to and from canonical records, so every canonical field a source fills
reaches the target as is. A flow's ``map`` rules change that::

    [[flows.orders.map]]
    field = "reference"                       # the target's canonical field (dotted path)
    from = "number"                           # a source field path ...
    transforms = ["trim", ["prefix", "POS-"]] # ... through a chain of transforms

    [[flows.orders.map]]
    field = "lines.*.name"                    # "*": every line
    from = "lines.*.name"
    transforms = [["truncate", 50]]

    [[flows.orders.map]]
    field = "payment_terms"
    value = "30"                              # a constant

    [[flows.orders.map]]
    field = "custom_fields.channel"
    from = "custom_fields.source"
    map = { pos = "Till", web = "Webshop" }   # a value map: a value it lacks is a record error

Transform arguments that start with ``$`` are source field paths (``["concat", " ", "$customer.name"]``).
Plugins add transforms through the ``register_transforms`` hook.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from . import fieldpath
from .errors import RecordError
from .fieldpath import MISSING
from .model import Record

__all__ = ["MapRule", "Mapper", "BUILTIN_TRANSFORMS", "split_street", "check_path", "check_arguments"]


# ---------------------------------------------------------------- transforms


def split_street(line: str) -> tuple[str, str, str]:
    """``"Kerkstraat 12-A"`` → ``("Kerkstraat", "12", "A")``; no number → ``(line, "", "")``.

    Handles Dutch/German "street number" and French/English "number street" orders.
    """
    text = " ".join(str(line).split())
    # "12-A", "3 / 2": a suffix after a dash or slash; else "12", "1a", "2 bis"
    for pattern in (
        r"^(?P<street>.*?\D)\s*(?P<number>\d+)\s*[-/]\s*(?P<suffix>[A-Za-z0-9]{1,4})$",
        r"^(?P<street>.*\D)\s*(?P<number>\d+)\s*(?P<suffix>[A-Za-z]{0,4})$",
    ):
        match = re.match(pattern, text)
        if match and match.group("street").strip(" ,-/"):
            return match.group("street").strip(" ,"), match.group("number"), match.group("suffix")
    match = re.match(r"^(?P<number>\d+)\s*(?P<suffix>[A-Za-z]?)[\s,]+(?P<street>\D.*)$", text)
    if match:
        return match.group("street").strip(), match.group("number"), match.group("suffix")
    return text, "", ""


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    try:
        return Decimal(str(value).strip().replace(",", "."))
    except (InvalidOperation, ValueError):
        raise ValueError(f"{value!r} is not a number") from None


INT_DIGITS = 30
"""The ``int`` transform refuses numbers with more digits: ``int(Decimal("1e999999"))`` takes a minute."""


def _int(value: Any) -> int:
    number = _decimal(value)
    if not number.is_finite() or number.adjusted() >= INT_DIGITS:
        raise ValueError(f"{value!r:.40} is not an integer of at most {INT_DIGITS} digits")
    return int(number)


MAX_PLACES = 10
"""The most decimal places the ``number`` transform rounds to."""


_WHOLE = re.compile(r"\s*-?\d{1,18}\s*")


def _whole(arg: Any, what: str) -> int:
    """``arg`` as a whole number (an integer, or a string of digits); ValueError otherwise."""
    if isinstance(arg, bool) or not isinstance(arg, (int, str)) or (isinstance(arg, str) and not _WHOLE.fullmatch(arg)):
        raise ValueError(f"{what} must be a whole number, got {arg!r:.40}")
    return int(arg)


def _length(arg: Any) -> int:
    """A length argument: a whole number of at least 1."""
    length = _whole(arg, "length")
    if length < 1:
        raise ValueError(f"length must be at least 1, got {length}")
    return length


def _places(arg: Any) -> int:
    """A decimal places argument: a whole number from 0 to MAX_PLACES."""
    places = _whole(arg, "places")
    if not 0 <= places <= MAX_PLACES:
        raise ValueError(f"places must be from 0 to {MAX_PLACES}, got {places}")
    return places


def _number(value: Any, places: int = 2) -> Decimal:
    return _decimal(value).quantize(Decimal(1).scaleb(-_places(places)), rounding=ROUND_HALF_UP)


def _date(value: Any, fmt: str = "%Y-%m-%d") -> str:
    if isinstance(value, (date, datetime)):
        return value.strftime(fmt)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).strftime(fmt)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO date") from None


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _truncate(value: Any, length: int) -> str:
    return _text(value)[: _length(length)]


def _default(value: Any, fallback: Any) -> Any:
    return fallback if value is None or value == "" else value


def _concat(value: Any, separator: str = " ", *others: Any) -> str:
    parts = [_text(value), *(_text(o) for o in others)]
    return str(separator).join(p for p in parts if p)


BUILTIN_TRANSFORMS: dict[str, Callable[..., Any]] = {
    "trim": lambda v: _text(v).strip(),
    "upper": lambda v: _text(v).upper(),
    "lower": lambda v: _text(v).lower(),
    "title": lambda v: _text(v).title(),
    "prefix": lambda v, p: f"{p}{_text(v)}",
    "suffix": lambda v, s: f"{_text(v)}{s}",
    "replace": lambda v, old, new: _text(v).replace(str(old), str(new)),
    "truncate": _truncate,
    "default": _default,
    "concat": _concat,
    "street_name": lambda v: split_street(_text(v))[0],
    "house_number": lambda v: split_street(_text(v))[1],
    "house_number_suffix": lambda v: split_street(_text(v))[2],
    "number": _number,
    "int": _int,
    "string": _text,
    "date": _date,
    "digits": lambda v: re.sub(r"\D", "", _text(v)),
}
"""The transforms every flow can use; ``register_transforms`` adds more."""

ARGUMENT_CHECKS: dict[str, tuple[Callable[[Any], Any], ...]] = {"truncate": (_length,), "number": (_places,)}
"""Per built-in transform, a check of each argument by position (ValueError with the reason);
``check`` runs them on the arguments a configuration gives as constants."""


def check_arguments(name: str, function: Callable[..., Any], args: Sequence[Any]) -> str | None:
    """A message if ``args`` do not suit transform ``name`` (count, or a constant's value), else None.

    Arguments that start with ``$`` are source fields, known only per record: their count is
    checked here, their value when a record is mapped.
    """
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin without a signature: nothing to check
        signature = None
    if signature is not None:
        try:
            signature.bind(None, *args)
        except TypeError as exc:
            params = list(signature.parameters.values())[1:]
            usage = ", ".join(str(p.replace(annotation=inspect.Parameter.empty)) for p in params)
            return f"transform {name!r} takes ({usage}): {exc}"
    if function is BUILTIN_TRANSFORMS.get(name):
        for check, arg in zip(ARGUMENT_CHECKS.get(name, ()), args, strict=False):  # optional arguments may be left out
            if isinstance(arg, str) and arg.startswith("$"):
                continue
            try:
                check(arg)
            except ValueError as exc:
                return f"transform {name!r}: {exc}"
    return None


# ---------------------------------------------------------------- rules


Transform = str | list[Any]


class MapRule(BaseModel):
    """One override: where the value comes from, and how it is changed on the way."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    field: str = Field(min_length=1)
    from_: str | None = Field(default=None, alias="from")
    value: Any = None
    map: dict[str, Any] | None = None
    transforms: list[Transform] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_source(self) -> MapRule:
        if self.from_ is not None and self.value is not None:
            raise ValueError("give 'from' (a source field) or 'value' (a constant), not both")
        if ("*" in self.field) != ("*" in (self.from_ or self.field)) and self.value is None:
            raise ValueError(f"'field' {self.field!r} and 'from' {self.from_!r} must both use '*' or neither")
        for t in self.transforms:
            if isinstance(t, list) and (not t or not isinstance(t[0], str)):
                raise ValueError(f"transform {t!r} must be a name or [name, arguments...]")
        return self

    @property
    def source(self) -> str:
        """The source path (the field itself when only transforms are given)."""
        return self.from_ if self.from_ is not None else self.field

    def describe(self) -> str:
        """The rule as one line of text."""
        if self.value is not None:
            text = f"= {self.value!r}"
        else:
            text = f"← {self.source}"
        for t in self.transforms:
            text += f" | {t if isinstance(t, str) else t[0] + '(' + ', '.join(map(repr, t[1:])) + ')'}"
        if self.map is not None:
            text += f" | map({len(self.map)} values)"
        return text


def check_path(model: type[BaseModel], path: str) -> str | None:
    """A message if dotted ``path`` is not a field of ``model``, else None."""
    return fieldpath.check(model, path)


class Mapper:
    """Applies a flow's rules to canonical records of one type."""

    def __init__(self, flow: str, record_type: type[Record], rules: Sequence[MapRule], transforms: Mapping[str, Callable[..., Any]]):
        self.flow = flow
        self.record_type = record_type
        self.rules = tuple(rules)
        self.transforms = {**BUILTIN_TRANSFORMS, **transforms}

    def problems(self) -> list[str]:
        """Configuration mistakes in the rules, each as ``[i].part: message``."""
        out = []
        for i, rule in enumerate(self.rules):
            for part, path in (("field", rule.field), ("from", rule.from_)):
                if path is None:
                    continue
                problem = check_path(self.record_type, path)
                if problem:
                    out.append(f"[{i}].{part}: {problem}")
            for j, t in enumerate(rule.transforms):
                name, args = (t, []) if isinstance(t, str) else (t[0], t[1:])
                if name not in self.transforms:
                    out.append(f"[{i}].transforms[{j}]: no transform {name!r} (known: {', '.join(sorted(self.transforms))})")
                    continue
                problem = check_arguments(name, self.transforms[name], args)
                if problem:
                    out.append(f"[{i}].transforms[{j}]: {problem}")
        return out

    def apply(self, record: Record) -> Record:
        """``record`` with every rule applied; RecordError naming the flow, field and problem."""
        if not self.rules:
            return record
        data = record.model_dump(mode="python")
        for rule in self.rules:
            for target_path, source_path in self._expand(rule, data):
                value = self._value(rule, source_path, record, target_path)
                _set(data, target_path, value, self.flow)
        try:
            return self.record_type.model_validate(data)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in err["loc"])
            raise RecordError(f"flow {self.flow!r}: after mapping, {where}: {err['msg']}") from None

    def _expand(self, rule: MapRule, data: dict[str, Any]) -> list[tuple[str, str]]:
        if "*" not in rule.field:
            return [(rule.field, rule.source)]
        count = fieldpath.star_count(data, rule.field)
        return [(rule.field.replace("*", str(i), 1), rule.source.replace("*", str(i), 1)) for i in range(count)]

    def _value(self, rule: MapRule, source_path: str, record: Record, target_path: str) -> Any:
        if rule.value is not None:
            value = rule.value
        else:
            value = fieldpath.get(record, source_path)
            if value is MISSING:
                value = None
        for t in rule.transforms:
            name, args = (t, []) if isinstance(t, str) else (t[0], t[1:])
            resolved = [self._argument(a, record) for a in args]
            try:
                value = self.transforms[name](value, *resolved)
            except (ValueError, TypeError, ArithmeticError) as exc:
                raise RecordError(f"flow {self.flow!r}: mapping {target_path}: transform {name!r} failed on {value!r}: {exc}") from None
        if rule.map is not None:
            lookup = str(getattr(value, "value", value))
            if lookup not in rule.map:
                known = ", ".join(sorted(rule.map)) or "none"
                raise RecordError(
                    f"flow {self.flow!r}: mapping {target_path}: value {lookup!r} is not in the value map (maps: {known})"
                )
            value = rule.map[lookup]
        return value

    @staticmethod
    def _argument(arg: Any, record: Record) -> Any:
        if isinstance(arg, str) and arg.startswith("$"):
            value = fieldpath.get(record, arg[1:])
            return None if value is MISSING else value
        return arg


def _set(data: dict[str, Any], path: str, value: Any, flow: str) -> None:
    try:
        fieldpath.set_value(data, path, value)
    except fieldpath.PathError as exc:
        raise RecordError(f"flow {flow!r}: mapping {path}: {exc}") from None
