"""SOAP 1.1 document/literal envelopes of the MplusQapi, built and read with lxml.

Requests are element trees built from ordered mappings (the caller gives the fields in the
order of the WSDL's ``xsd:sequence``; the conformance tests validate every envelope the
connector sends against the WSDL's schema). Answers are read into plain dicts keyed by local
name, without a schema: the connector takes what it needs and checks it. The vendor's faults
become :class:`SoapFault`.

No schema, WSDL or other document is loaded here, so nothing is ever fetched at run time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from lxml import etree

__all__ = [
    "NS",
    "SOAP_ENV",
    "SoapFault",
    "SoapError",
    "envelope",
    "read_envelope",
    "element",
    "children",
    "one",
    "many",
    "text",
    "to_int",
    "to_bool",
    "mplus_datetime",
    "from_mplus_datetime",
    "from_mplus_date",
]

NS = "urn:mplusqapi"
"""The MplusQapi target namespace (``elementFormDefault="qualified"``: every element is in it)."""
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
_ENV = f"{{{SOAP_ENV}}}"
_NS = f"{{{NS}}}"

# a hardened parser: no DTDs, no entities, no network, bounded depth (libxml2's own limits)
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_blank_text=True)


class SoapError(ValueError):
    """An answer that is not a SOAP envelope the connector can read."""


class SoapFault(Exception):
    """A SOAP ``Fault``: ``code`` (``Client``, ``Server``, ... without its prefix), ``message``
    (``faultstring``) and ``detail`` (the text of ``detail``, if any)."""

    def __init__(self, code: str, message: str, detail: str = ""):
        super().__init__(f"{code}: {message}" + (f" ({detail})" if detail else ""))
        self.code, self.message, self.detail = code, message, detail


def _text_of(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (int, str)):
        return str(value)
    raise TypeError(f"cannot write a {type(value).__name__} into a SOAP element")


def element(name: str, value: Any) -> list[etree._Element]:
    """The elements ``<name>`` for ``value``: a mapping gives one element with its items as
    children (in the mapping's order), a list or tuple one element per item, None none, and a
    scalar one element with its text (booleans as ``true``/``false``, Decimals without exponent)."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [e for item in value for e in element(name, item)]
    node = etree.Element(_NS + name)
    if isinstance(value, Mapping):
        for key, child in value.items():
            node.extend(element(key, child))
    else:
        node.text = _text_of(value)
    return [node]


def envelope(operation: str, body: Mapping[str, Any]) -> bytes:
    """The request envelope for ``operation`` (the body element named after it) with ``body``'s
    fields as its children, as UTF-8 bytes with an XML declaration."""
    root = etree.Element(_ENV + "Envelope", nsmap={"SOAP-ENV": SOAP_ENV, "ns": NS})
    soap_body = etree.SubElement(root, _ENV + "Body")
    operation_element = etree.SubElement(soap_body, _NS + operation)
    for key, value in body.items():
        operation_element.extend(element(key, value))
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _local(tag: Any) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _to_python(node: etree._Element) -> Any:
    kids = [c for c in node if isinstance(c.tag, str)]
    if not kids:
        return node.text or ""
    out: dict[str, Any] = {}
    for kid in kids:
        name = _local(kid.tag)
        value = _to_python(kid)
        if name in out:
            if not isinstance(out[name], _Repeated):
                out[name] = _Repeated([out[name]])
            out[name].append(value)
        else:
            out[name] = value
    return {k: list(v) if isinstance(v, _Repeated) else v for k, v in out.items()}


class _Repeated(list[Any]):
    """Marks a list made from repeated elements while a node is read."""


def read_envelope(content: bytes) -> tuple[str, dict[str, Any]]:
    """The body element's local name and its content as a dict (repeated elements as lists),
    from a SOAP answer; :class:`SoapFault` for a Fault, :class:`SoapError` for anything that is
    not a SOAP envelope with one body element."""
    try:
        root = etree.fromstring(content, parser=_PARSER)
    except etree.XMLSyntaxError as exc:
        raise SoapError(f"the answer is not XML ({exc})") from None
    if root.tag != _ENV + "Envelope":
        raise SoapError(f"the answer is not a SOAP 1.1 envelope (root element {root.tag!r:.80})")
    body = root.find(_ENV + "Body")
    if body is None:
        raise SoapError("the SOAP envelope has no Body")
    payload = [c for c in body if isinstance(c.tag, str)]
    if len(payload) != 1:
        raise SoapError(f"the SOAP Body holds {len(payload)} elements, expected one")
    node = payload[0]
    if node.tag == _ENV + "Fault":
        fault = {_local(c.tag): ("".join(c.itertext()).strip()) for c in node if isinstance(c.tag, str)}
        code = fault.get("faultcode", "")
        return_code = code.rsplit(":", 1)[-1] or "Unknown"
        raise SoapFault(return_code, fault.get("faultstring", "").strip() or "(no faultstring)", fault.get("detail", ""))
    content_value = _to_python(node)
    return _local(node.tag), content_value if isinstance(content_value, dict) else {}


# -- reading values ------------------------------------------------------------------------


def children(value: Any, name: str) -> Any:
    """``value[name]`` when ``value`` is a dict that has it, else None."""
    return value.get(name) if isinstance(value, dict) else None


def many(value: Any, name: str) -> list[Any]:
    """The repeated child ``name`` of ``value`` as a list (one element: a list of one; none: empty)."""
    found = children(value, name)
    if found is None or found == "":
        return []
    return found if isinstance(found, list) else [found]


def one(value: Any, name: str) -> Any:
    """The single child ``name`` of ``value`` (the first when repeated), or None."""
    found = children(value, name)
    if isinstance(found, list):
        return found[0] if found else None
    return found


def text(value: Any, name: str) -> str | None:
    """The text of child ``name`` (None when absent or not a text element)."""
    found = one(value, name)
    return found if isinstance(found, str) else None


def to_int(value: Any, name: str) -> int | None:
    """The integer in child ``name``; None when absent; ValueError naming it when not an integer."""
    raw = text(value, name)
    if raw is None or raw.strip() == "":
        return None
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError(f"{name} is not an integer: {raw!r:.40}") from None


def to_bool(value: Any, name: str) -> bool | None:
    """The xsd:boolean in child ``name`` (``true``/``false``/``1``/``0``); None when absent."""
    raw = text(value, name)
    if raw is None or raw.strip() == "":
        return None
    lowered = raw.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise ValueError(f"{name} is not a boolean: {raw!r:.40}")


# -- Mplus date and time types ---------------------------------------------------------------


def mplus_datetime(when: datetime) -> dict[str, Any]:
    """A ``SoapMplusDateTime`` (``sec min hour day mon year isdst timezone``, in that order) for
    ``when``, in UTC with ``timezone`` 0 (minutes east of UTC: the unit is not documented)."""
    utc = when.astimezone(timezone.utc) if when.tzinfo else when.replace(tzinfo=timezone.utc)
    return {
        "sec": utc.second,
        "min": utc.minute,
        "hour": utc.hour,
        "day": utc.day,
        "mon": utc.month,
        "year": utc.year,
        "isdst": False,
        "timezone": 0,
    }


def from_mplus_datetime(value: Any, name: str = "timestamp") -> datetime | None:
    """A ``SoapMplusDateTime`` as an aware datetime (``timezone`` taken as minutes east of UTC,
    [unverified]); None when absent; ValueError naming the field when it is not a valid time."""
    if not isinstance(value, dict):
        return None
    try:
        parts = {k: int(str(value[k]).strip()) for k in ("sec", "min", "hour", "day", "mon", "year")}
        offset = int(str(value.get("timezone") or "0").strip())
        return datetime(
            parts["year"],
            parts["mon"],
            parts["day"],
            parts["hour"],
            parts["min"],
            parts["sec"],
            tzinfo=timezone(timedelta(minutes=offset)),
        )
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{name} is not a valid SoapMplusDateTime ({exc})") from None


def from_mplus_date(value: Any, name: str = "date") -> date | None:
    """A ``SoapMplusDate`` (``day mon year``) as a date; None when absent."""
    if not isinstance(value, dict):
        return None
    try:
        return date(int(value["year"]), int(value["mon"]), int(value["day"]))
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{name} is not a valid SoapMplusDate ({exc})") from None


def mplus_date(day: date) -> dict[str, int]:
    """A ``SoapMplusDate`` (``day mon year``, in that order)."""
    return {"day": day.day, "mon": day.month, "year": day.year}


def numbers(values: Iterable[int]) -> list[int]:
    """A list of ints for a repeated ``xsd:long``/``xsd:int`` element."""
    return [int(v) for v in values]
