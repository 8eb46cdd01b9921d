"""Dotted field paths on canonical records and their models: one walker for filters, mapping and the CLI.

A path names a field by its parts: ``billing_address.country``, ``lines.0.sku`` (one item of a list),
``lines.*.sku`` (every item), ``custom_fields.channel`` (a key of a dict field).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

__all__ = ["MISSING", "PathError", "parse", "get", "values", "star_count", "set_value", "check", "paths"]

MISSING: Any = object()
"""What :func:`get` returns for a path that does not exist in a record."""

STAR = "*"


class PathError(ValueError):
    """A path that cannot be set in a record; the message names the part that is missing."""


def parse(path: str) -> tuple[str, ...]:
    """The parts of a dotted ``path``: ``"lines.*.sku"`` → ``("lines", "*", "sku")``."""
    return tuple(path.split("."))


def _index(part: str, items: Sequence[Any]) -> int | None:
    """``part`` as the index of an existing item of ``items`` (``lines.2`` of a two-line order is not), else None."""
    return int(part) if part.isdigit() and int(part) < len(items) else None


def _step(value: Any, part: str) -> Any:
    """The value of ``part`` inside ``value`` (a model, a dict, or a list by index), or MISSING."""
    if isinstance(value, BaseModel):
        return getattr(value, part) if part in type(value).model_fields else MISSING
    if isinstance(value, dict):
        return value.get(part, MISSING)
    if isinstance(value, (list, tuple)):
        index = _index(part, value)
        return MISSING if index is None else value[index]
    return MISSING


def get(record: Any, path: str) -> Any:
    """The value at a dotted ``path`` (``billing_address.country``, ``lines.0.sku``) or MISSING."""
    value = record
    for part in parse(path):
        value = _step(value, part)
        if value is MISSING:
            return MISSING
    return value


def values(record: Any, path: str) -> list[Any]:
    """Every value at ``path``, where ``*`` stands for each item of a list (``lines.*.sku``); missing ones left out."""
    found = [record]
    for part in parse(path):
        if part == STAR:
            found = [item for value in found if isinstance(value, (list, tuple)) for item in value]
        else:
            found = [v for v in (_step(value, part) for value in found) if v is not MISSING]
    return found


def star_count(record: Any, path: str) -> int:
    """How many items the list before the first ``*`` of ``path`` has in ``record`` (0 if it is not a list)."""
    items = get(record, path.split(STAR)[0].rstrip("."))
    return len(items) if isinstance(items, (list, tuple)) else 0


def set_value(data: dict[str, Any], path: str, value: Any) -> None:
    """Set ``path`` (no ``*``) in ``data``, a record as plain dicts and lists; missing dicts on the way are made.

    PathError if the path goes through a list item the record lacks, or inside a value that is no dict.
    """
    parts = parse(path)
    current: Any = data
    for i, part in enumerate(parts[:-1]):
        if not isinstance(current, (list, dict)) or (isinstance(current, list) and _index(part, current) is None):
            raise PathError(f"the record has no {'.'.join(parts[: i + 1])}")
        nxt = current[int(part)] if isinstance(current, list) else current.get(part)
        if nxt is None or isinstance(nxt, tuple):
            nxt = {} if nxt is None else list(nxt)
            if isinstance(current, list):
                current[int(part)] = nxt
            else:
                current[part] = nxt
        current = nxt
    last = parts[-1]
    if isinstance(current, list):
        if _index(last, current) is None:
            raise PathError(f"the record has no {path}")
        current[int(last)] = value
    elif isinstance(current, dict):
        current[last] = value
    else:
        raise PathError(f"cannot set a field inside {type(current).__name__}")


# ---------------------------------------------------------------- paths of a model


def _options(annotation: Any) -> list[Any]:
    """The types an annotation allows, ``None`` left out (``Address | None`` → ``[Address]``)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(annotation) if a is not type(None)]
    return [annotation]


def _is_model(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, BaseModel)


def _item_type(annotation: Any) -> Any:
    """The item type of a list or tuple annotation (``tuple[OrderLine, ...]`` → ``OrderLine``), else None."""
    for option in _options(annotation):
        if typing.get_origin(option) in (tuple, list) and typing.get_args(option):
            return typing.get_args(option)[0]
    return None


def _inner_type(annotation: Any) -> Any:
    """``dict`` for a dict field, the model inside an annotation (``tuple[OrderLine, ...]``, ``Address | None``),
    else the annotation itself."""
    origin = typing.get_origin(annotation)
    if origin in (dict, Mapping):
        return dict
    for arg in typing.get_args(annotation) if origin is not None else ():
        inner = _inner_type(arg)
        if isinstance(inner, type) and (issubclass(inner, BaseModel) or inner is dict):
            return inner
    return annotation


def check(model: type[BaseModel], path: str) -> str | None:
    """None if dotted ``path`` is a field of ``model`` (dict fields accept any key), else what is wrong.

    A list of records must be followed by ``*`` (every item) or an index: ``lines.name`` is a mistake
    for ``lines.*.name``.
    """
    parts = parse(path)
    current: Any = model
    annotation: Any = None
    for i, part in enumerate(parts):
        if part == STAR or part.isdigit():
            annotation = None
            continue
        if current is dict:
            return None
        if annotation is not None and _is_model(_item_type(annotation)):
            where = ".".join(parts[:i])
            rest = ".".join(parts[i:])
            return (
                f"{model.__name__} field {where!r} is a list: write {where + '.*.' + rest!r} (every item) "
                f"or an index ({where + '.0.' + rest!r})"
            )
        fields = getattr(current, "model_fields", None)
        if fields is None:
            return f"{'.'.join(parts[:i]) or model.__name__} has no fields"
        if part not in fields:
            return f"{model.__name__} has no field {'.'.join(parts[: i + 1])!r}"
        annotation = fields[part].annotation
        current = _inner_type(annotation)
    return None


def paths(model: type[BaseModel], prefix: str = "", depth: int = 0) -> list[str]:
    """The leaf paths of ``model``, two levels of nested records deep (``lines.*.sku``, ``customer.email``)."""
    out = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        options = _options(info.annotation)
        nested = next((a for a in options if _is_model(a)), None)
        item = next((typing.get_args(a)[0] for a in options if typing.get_origin(a) is tuple and typing.get_args(a)), None)
        if isinstance(item, type) and issubclass(item, BaseModel) and depth < 2:
            out.extend(paths(item, f"{path}.*.", depth + 1))
        elif nested is not None and depth < 2:
            out.extend(paths(nested, f"{path}.", depth + 1))
        else:
            out.append(path)
    return out
