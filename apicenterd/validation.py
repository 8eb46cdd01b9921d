"""Rules every settings model shares: finite numbers, no booleans for numbers, http(s) URLs.

:class:`SettingsModel` is the base of the configuration's tables (``[daemon]``, ``[state]``,
``[alerts]``, flow options) and of :class:`~apicenterd.plugin.ConnectorSettings`, so a
connector's own settings follow the same rules without declaring them:

- no float setting accepts ``inf``, ``-inf`` or ``nan`` (TOML has all three);
- a number setting (``int`` or ``float``) refuses ``true``/``false``, which pydantic would
  otherwise read as 1 and 0;
- a setting whose name ends in ``_url`` (``base_url``, ``token_url``, ``webhook_url``) is an
  absolute ``http://`` or ``https://`` URL with a host (:func:`check_http_url`); an optional
  one (default ``None``) may be ``""``, which means "not set".
"""

from __future__ import annotations

import types
import typing
import urllib.parse
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

__all__ = ["SettingsModel", "check_http_url", "is_number_annotation"]


def is_number_annotation(annotation: Any) -> bool:
    """True if a field typed ``annotation`` takes numbers but not booleans (``int``, ``float | None``, ...)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        options = typing.get_args(annotation)
    elif origin is typing.Annotated:
        return is_number_annotation(typing.get_args(annotation)[0])
    else:
        options = (annotation,)
    return bool not in options and any(o in (int, float) for o in options)


class SettingsModel(BaseModel):
    """A settings table: finite numbers only, and a boolean is never a number."""

    model_config = ConfigDict(allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and info.field_name is not None:
            field = cls.model_fields.get(info.field_name)
            if field is not None and is_number_annotation(field.annotation):
                raise ValueError(f"expected a number, got the boolean {str(value).lower()}")
        return value

    @field_validator("*")
    @classmethod
    def _http_urls(cls, value: Any, info: ValidationInfo) -> Any:
        name = info.field_name or ""
        if isinstance(value, str) and name.endswith("_url"):
            field = cls.model_fields.get(name)
            if value == "" and field is not None and not field.is_required() and field.default is None:
                return value  # an optional URL left empty: not set
            check_http_url(value)
        return value


def check_http_url(value: str) -> str:
    """``value`` if it is an absolute http(s) URL with a host; ValueError saying what it lacks."""
    example = "e.g. https://api.example.com"
    try:
        parts = urllib.parse.urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"{value!r} is not an absolute http:// or https:// URL ({example})")
    if not parts.hostname:
        raise ValueError(f"{value!r} has no host name ({example})")
    if any(c.isspace() for c in value):
        raise ValueError(f"{value!r} is not a URL: it contains white space ({example})")
    return value
