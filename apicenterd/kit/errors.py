"""Error classification: a vendor's failed response as the error class the runner acts on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import httpx

from ..errors import ConnectorError
from ..http import error_for_status

__all__ = ["classify", "not_found_by_path", "raise_for_response", "vendor_message"]

_MESSAGE_KEYS = ("DeveloperErrorMessage", "developermessage", "error_description", "message", "Message", "detail", "title")
_CODE_KEYS = ("ErrorCode", "errorCode", "code", "Code")


def _text(value: Any) -> str | None:
    if isinstance(value, dict):  # OData v2: {"message": {"lang": "en", "value": "..."}}
        value = value.get("value")
    if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
        return str(value).strip()
    return None


def _from(body: dict[str, Any]) -> tuple[str | None, str | None]:
    message = next((m for k in _MESSAGE_KEYS if (m := _text(body.get(k)))), None)
    code = next((c for k in _CODE_KEYS if (c := _text(body.get(k)))), None)
    return message, code


def not_found_by_path(path: str, is_id: Callable[[str], bool] = str.isdigit) -> Literal["record", "config"]:
    """What a 404 on ``path`` means, for ``classify(not_found=...)``: ``"record"`` when a segment
    of the path (query left out) is an id by ``is_id`` (``orders/3/``, ``orders/3/rows/``: that
    record is gone), else ``"config"`` (``products/``, ``/v2/companysettings``: a path that must
    exist, so ``base_url`` is wrong). Give ``is_id`` for the vendor's ids (GUIDs, ``(guid'...')``)
    when a path also holds numbers that are not record ids (a division, an API version)."""
    segments = path.split("?", 1)[0].split("/")
    return "record" if any(segment and is_id(segment) for segment in segments) else "config"


def vendor_message(response: httpx.Response) -> tuple[str, str | None]:
    """The vendor's error message and code from a failed response's body, for the common shapes:
    ``{"message"|"Message"|"DeveloperErrorMessage"|"error_description"|"detail": ..., "code"|"ErrorCode": ...}``,
    OData ``{"error": {"code", "message"}}`` (v2 ``message.value``), ``{"errors": [{...}]}``,
    QuickBooks ``{"Fault": {"Error": [{"Message", "Detail", "code"}]}}``; else the body's start
    or the status's reason phrase."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        nested: list[Any] = [body.get("error"), body.get("Fault")]
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            nested.append(errors[0])
        for inner in nested:
            if isinstance(inner, dict):
                if isinstance(inner.get("Error"), list) and inner["Error"] and isinstance(inner["Error"][0], dict):
                    inner = inner["Error"][0]
                    detail = _text(inner.get("Detail"))
                    message, code = _from(inner)
                    if message:
                        return (f"{message}: {detail}" if detail and detail != message else message), code
                message, code = _from(inner)
                if message:
                    return message, code
        message, code = _from(body)
        if message is None and isinstance(body.get("error"), str):
            message = body["error"]
        if message:
            return message, code
    text = response.text.strip()[:200] if response.content else ""
    return text or response.reason_phrase or f"HTTP {response.status_code}", None


def classify(
    response: httpx.Response,
    what: str,
    *,
    not_found: Literal["record", "config", "none"] = "record",
    message: Callable[[httpx.Response], tuple[str, str | None]] = vendor_message,
) -> ConnectorError | None:
    """The error for a vendor's answer, or None for a success.

    401/403 → AuthError; 429 → RateLimited (its Retry-After); 408/425/5xx → RetryableError;
    400/409/422 and other 4xx → RecordError with the vendor's message (``message`` reads it:
    :func:`vendor_message` by default). A 404 as ``not_found`` says: ``"record"`` → RecordError
    (the item asked for is missing), ``"none"`` → None (the caller takes it as "not there"),
    ``"config"`` → FatalError naming the URL and pointing at ``base_url`` (a collection or any
    path that must exist: the configuration is wrong, every record would fail the same way).
    """
    if response.is_success:
        return None
    if response.status_code == 404 and not_found == "none":
        return None
    text, code = message(response)
    return error_for_status(
        response, f"{what}: {text}", vendor_code=code, not_found="config" if not_found == "config" else "record"
    )


def raise_for_response(
    response: httpx.Response,
    what: str,
    *,
    not_found: Literal["record", "config", "none"] = "record",
    message: Callable[[httpx.Response], tuple[str, str | None]] = vendor_message,
) -> None:
    """Raise what :func:`classify` gives for ``response``; nothing for a success (or a 404 with ``not_found="none"``)."""
    error = classify(response, what, not_found=not_found, message=message)
    if error is not None:
        raise error
