"""What the eAccounting simulator checks: the swagger's property rules and the OData subset it reads."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

__all__ = ["Rule", "ARTICLE_RULES", "CUSTOMER_RULES", "VendorError", "validate", "compile_filter", "parse_time"]


# -- the swagger's rules for the properties the simulator accepts --------------------------


@dataclasses.dataclass(frozen=True)
class Rule:
    """What eAccounting checks on one request property (from the swagger definition)."""

    type: str  # string | number | integer | boolean | uuid | array | object
    required: bool = False
    max_length: int | None = None
    minimum: Decimal | None = None
    maximum: Decimal | None = None
    decimals: int | None = None
    read_only: bool = False


def _s(max_length: int | None = None, **kw: Any) -> Rule:
    return Rule("string", max_length=max_length, **kw)


_PRICE = Rule("number", minimum=Decimal(0), maximum=Decimal(10_000_000), decimals=2)
_RO = Rule("string", read_only=True)

ARTICLE_RULES: Mapping[str, Rule] = {
    "Id": Rule("uuid", read_only=True),
    "IsActive": Rule("boolean", required=True),
    "Number": _s(40, required=True),
    "Name": _s(50, required=True),
    "NameEnglish": _s(50),
    "NetPrice": _PRICE,
    "GrossPrice": _PRICE,
    "CodingId": Rule("uuid", required=True),
    "CodingName": _RO,
    "UnitId": Rule("uuid", required=True),
    "UnitName": _RO,
    "UnitAbbreviation": _RO,
    "StockBalance": Rule("number", decimals=2),
    "StockBalanceManuallyChangedUtc": _RO,
    "StockBalanceReserved": Rule("number", read_only=True),
    "StockBalanceAvailable": Rule("number", read_only=True),
    "ChangedUtc": _RO,
    "HouseWorkType": Rule("integer"),
    "PurchasePrice": Rule("number"),
    "PurchasePriceManuallyChangedUtc": _RO,
    "SendToWebshop": Rule("boolean"),
    "ArticleLabels": Rule("array"),
}
"""ArticleApi, as the swagger defines it."""

CUSTOMER_RULES: Mapping[str, Rule] = {
    "Id": Rule("uuid", read_only=True),
    "CustomerNumber": _s(16),
    "CorporateIdentityNumber": _s(20),
    "ContactPersonEmail": _s(255),
    "ContactPersonMobile": _s(50),
    "ContactPersonName": _s(100),
    "ContactPersonPhone": _s(50),
    "CurrencyCode": _s(3),
    "GLN": _s(255),
    "EmailAddress": _s(255),
    "InvoiceAddress1": _s(50),
    "InvoiceAddress2": _s(50),
    "InvoiceCity": _s(50, required=True),
    "InvoiceCountryCode": _s(2),
    "InvoicePostalCode": _s(10, required=True),
    "DeliveryCustomerName": _s(100),
    "DeliveryAddress1": _s(50),
    "DeliveryAddress2": _s(50),
    "DeliveryCity": _s(50),
    "DeliveryCountryCode": _s(2),
    "DeliveryPostalCode": _s(10),
    "DeliveryMethodId": Rule("uuid"),
    "DeliveryTermId": Rule("uuid"),
    "PayToAccountId": Rule("uuid", read_only=True),
    "Name": _s(50, required=True),
    "Note": _s(4000),
    "ReverseChargeOnConstructionServices": Rule("boolean"),
    "WebshopCustomerNumber": Rule("integer"),
    "MobilePhone": _s(50),
    "Telephone": _s(50),
    "TermsOfPaymentId": Rule("uuid", required=True),
    "TermsOfPayment": Rule("object", read_only=True),
    "VatNumber": _s(20),
    "WwwAddress": _s(255),
    "LastInvoiceDate": _RO,
    "IsPrivatePerson": Rule("boolean", required=True),
    "DiscountPercentage": Rule("number", minimum=Decimal(0), maximum=Decimal(1), decimals=4),
    "ChangedUtc": _RO,
    "IsActive": Rule("boolean", required=True),
    "ForceBookkeepVat": Rule("boolean"),
    "EdiGlnNumber": _s(),
    "SalesDocumentLanguage": _s(2),
    "ElectronicAddress": _s(),
    "ElectronicReference": _s(),
    "EdiServiceDelivererId": _s(),
    "AutoInvoiceActivationEmailSentDate": _RO,
    "AutoInvoiceRegistrationRequestSentDate": _RO,
    "EmailAddresses": Rule("array"),
    "CustomerLabels": Rule("array"),
}
"""CustomerApi, as the swagger defines it."""

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class VendorError(Exception):
    """Raised inside a handler to answer with eAccounting's error shape."""

    def __init__(self, status: int, code: int, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def validate(body: Any, rules: Mapping[str, Rule]) -> dict[str, Any]:
    """The writable properties of ``body``, or a 2000 DataModelValidationError listing every problem."""
    if not isinstance(body, dict):
        raise VendorError(400, 2000, "DataModelValidationError - the request body must be a JSON object")
    problems: list[str] = []
    clean: dict[str, Any] = {}
    for prop, rule in rules.items():
        if rule.read_only:
            continue
        value = body.get(prop)
        if value is None or (rule.type == "string" and value == "" and rule.required):
            if rule.required:
                problems.append(f"{prop}: The {prop} field is required.")
            continue
        problem = _check(prop, value, rule)
        if problem:
            problems.append(problem)
        else:
            clean[prop] = value
    if problems:
        raise VendorError(400, 2000, "; ".join(problems))
    return clean


def _check(prop: str, value: Any, rule: Rule) -> str | None:
    if rule.type in ("string", "uuid"):
        if not isinstance(value, str):
            return f"{prop}: Error converting value {value!r} to type 'System.String'."
        if rule.type == "uuid" and not _UUID.match(value):
            return f"{prop}: Error converting value {value!r} to type 'System.Guid'."
        if rule.max_length is not None and len(value) > rule.max_length:
            return f"{prop}: The field {prop} must be a string with a maximum length of {rule.max_length}."
    elif rule.type == "boolean":
        if not isinstance(value, bool):
            return f"{prop}: Error converting value {value!r} to type 'System.Boolean'."
    elif rule.type == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{prop}: Error converting value {value!r} to type 'System.Int32'."
    elif rule.type == "number":
        if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
            return f"{prop}: Error converting value {value!r} to type 'System.Decimal'."
        number = Decimal(value)
        if (rule.minimum is not None and number < rule.minimum) or (rule.maximum is not None and number > rule.maximum):
            return f"{prop}: The field {prop} must be between {rule.minimum} and {rule.maximum}."
        if rule.decimals is not None and number != number.quantize(Decimal(1).scaleb(-rule.decimals), rounding=ROUND_HALF_UP):
            return f"{prop}: The field {prop} allows at most {rule.decimals} decimals."
    elif rule.type == "array" and not isinstance(value, list):
        return f"{prop}: Error converting value {value!r} to a collection."
    return None


# -- OData subset --------------------------------------------------------------------------

_CLAUSE = re.compile(
    r"^\s*(?P<field>[A-Za-z]\w*)\s+(?P<op>eq|ne|gt|ge|lt|le)\s+(?P<value>'(?:[^']|'')*'|\S+)\s*$", re.IGNORECASE
)
_AND = re.compile(r"\s+and\s+(?=(?:[^']*'[^']*')*[^']*$)", re.IGNORECASE)


def parse_time(text: str) -> datetime:
    """An OData / JSON date-time as an aware UTC datetime."""
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


def _literal(text: str) -> Any:
    if text.startswith("'"):
        return text[1:-1].replace("''", "'")
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        pass
    try:
        return parse_time(text)
    except ValueError:
        raise VendorError(400, 2000, f"$filter: cannot read the value {text!r}") from None


def compile_filter(expression: str, fields: Mapping[str, Rule]) -> Callable[[dict[str, Any]], bool]:
    """A predicate for the ``$filter`` subset the simulator understands (VendorError otherwise)."""
    tests = []
    for clause in _AND.split(expression.strip()):
        match = _CLAUSE.match(clause)
        if not match:
            raise VendorError(400, 2000, f"$filter: the simulator understands 'Field op value [and ...]', not {clause!r}")
        field, op, value = match["field"], match["op"].lower(), _literal(match["value"])
        if field not in fields:
            raise VendorError(400, 2000, f"$filter: could not find a property named '{field}'")
        tests.append((field, op, value))

    def compare(stored: Any, op: str, value: Any) -> bool:
        """One ``stored op value`` comparison, typed by the literal."""
        if isinstance(value, datetime):
            if not stored:
                return False
            stored = parse_time(stored)
        elif isinstance(value, str):
            # SQL Server's default collation: case-insensitive
            stored, value = (stored or "").lower(), value.lower()
        elif isinstance(value, Decimal) and stored is not None:
            stored = Decimal(stored)
        if op == "eq":
            return stored == value
        if op == "ne":
            return stored != value
        if stored is None or value is None:
            return False
        return {"gt": stored > value, "ge": stored >= value, "lt": stored < value, "le": stored <= value}[op]

    return lambda item: all(compare(item.get(f), op, v) for f, op, v in tests)
