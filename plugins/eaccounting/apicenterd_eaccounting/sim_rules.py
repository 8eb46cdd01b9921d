"""What the eAccounting simulator checks: the swagger's property rules and the OData subset it reads."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from apicenterd.testing.sim import VendorError  # raised with eAccounting's ErrorCode; the simulator renders it

__all__ = [
    "Rule",
    "ARTICLE_RULES",
    "CUSTOMER_RULES",
    "PERSON_RULES",
    "ORDER_ROW_RULES",
    "ORDER_RULES",
    "DRAFT_ROW_RULES",
    "DRAFT_RULES",
    "INVOICE_ROW_RULES",
    "INVOICE_RULES",
    "VendorError",
    "validate",
    "compile_filter",
    "parse_time",
]


# -- the swagger's rules for the properties the simulator accepts --------------------------


@dataclasses.dataclass(frozen=True)
class Rule:
    """What eAccounting checks on one request property (from the swagger definition)."""

    type: str  # string | number | integer | boolean | uuid | datetime | array | object
    required: bool = False
    max_length: int | None = None
    minimum: Decimal | None = None
    maximum: Decimal | None = None
    decimals: int | None = None
    read_only: bool = False
    enum: tuple[int, ...] | None = None
    items: Mapping[str, Rule] | None = None  # an array of objects: the rules of each item


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

_N2 = Rule("number", decimals=2)
_RO_N = Rule("number", read_only=True)
_RO_B = Rule("boolean", read_only=True)
_RO_T = Rule("datetime", read_only=True)
_ROT_TYPE = (0, 1, 2)

PERSON_RULES: Mapping[str, Rule] = {
    "Ssn": _s(50, required=True),
    "Amount": Rule("number"),
}
"""SalesDocumentRotRutReductionPersonApi, as the swagger defines it."""

ORDER_ROW_RULES: Mapping[str, Rule] = {
    "LineNumber": Rule("integer", required=True, minimum=Decimal(0), maximum=Decimal(1000)),
    "DeliveredQuantity": _N2,
    "ArticleId": Rule("uuid"),
    "ArticleNumber": _s(40),
    "IsTextRow": Rule("boolean", required=True),
    "Text": _s(2000),
    "UnitPrice": _N2,
    "DiscountPercentage": Rule("number", minimum=Decimal(0), maximum=Decimal(1), decimals=4),
    "Quantity": Rule("number", decimals=4),
    "WorkCostType": Rule("integer"),
    "IsWorkCost": Rule("boolean", required=True),
    "EligibleForReverseChargeOnVat": Rule("boolean", required=True),
    "CostCenterItemId1": Rule("uuid"),
    "CostCenterItemId2": Rule("uuid"),
    "CostCenterItemId3": Rule("uuid"),
    "Id": Rule("uuid"),
    "ProjectId": Rule("uuid"),
}
"""OrderRowApi, as the swagger defines it."""

ORDER_RULES: Mapping[str, Rule] = {
    "Id": Rule("uuid", read_only=True),
    "Amount": Rule("number", required=True, decimals=2),
    "CustomerId": Rule("uuid", required=True),
    "CurrencyCode": _s(3, required=True),
    "CreatedUtc": _RO_T,
    "VatAmount": Rule("number", required=True, decimals=2),
    "RoundingsAmount": Rule("number", required=True, decimals=2),
    "DeliveredAmount": _N2,
    "DeliveredVatAmount": _N2,
    "DeliveredRoundingsAmount": _N2,
    "DeliveryCustomerName": _s(50),
    "DeliveryAddress1": _s(50),
    "DeliveryAddress2": _s(50),
    "DeliveryPostalCode": _s(10),
    "DeliveryCity": _s(50),
    "DeliveryCountryCode": _s(2),
    "YourReference": _s(50),
    "OurReference": _s(50),
    "InvoiceAddress1": _s(50),
    "InvoiceAddress2": _s(50),
    "InvoiceCity": _s(required=True),
    "InvoiceCountryCode": _s(2, required=True),
    "InvoiceCustomerName": _s(50, required=True),
    "InvoicePostalCode": _s(10, required=True),
    "DeliveryMethodName": _s(50),
    "DeliveryMethodCode": _s(20),
    "DeliveryTermName": _s(50),
    "DeliveryTermCode": _s(20),
    "EuThirdParty": Rule("boolean", required=True),
    "CustomerIsPrivatePerson": Rule("boolean", required=True),
    "OrderDate": Rule("datetime", required=True),
    "Status": Rule("integer", required=True, minimum=Decimal(1), maximum=Decimal(4), enum=(1, 2, 3, 4)),
    "Number": Rule("integer"),
    "ModifiedUtc": _RO_T,
    "DeliveryDate": Rule("datetime"),
    "HouseWorkAmount": Rule("number"),
    "HouseWorkAutomaticDistribution": Rule("boolean"),
    "HouseWorkCorporateIdentityNumber": _s(20),
    "HouseWorkPropertyName": _s(100),
    "Rows": Rule("array", items=ORDER_ROW_RULES),
    "ShippedDateTime": Rule("datetime"),
    "RotReducedInvoicingType": Rule("integer", required=True, enum=_ROT_TYPE),
    "RotPropertyType": Rule("integer"),
    "Persons": Rule("array", items=PERSON_RULES),
    "ReverseChargeOnConstructionServices": Rule("boolean", required=True),
}
"""OrderApi, as the swagger defines it (note: Amount, VatAmount and RoundingsAmount are required input)."""

DRAFT_ROW_RULES: Mapping[str, Rule] = {
    "LineNumber": Rule("integer", required=True, minimum=Decimal(0), maximum=Decimal(1000)),
    "ArticleId": Rule("uuid"),  # "Required if IsTextRow is false": checked by the simulator
    "ArticleNumber": _s(),
    "IsTextRow": Rule("boolean", required=True),
    "Text": _s(2000, required=True),
    "UnitPrice": _N2,
    "DiscountPercentage": Rule("number", minimum=Decimal(0), maximum=Decimal(1), decimals=4),
    "Quantity": _N2,
    "WorkCostType": Rule("integer"),
    "IsWorkCost": Rule("boolean"),
    "WorkHours": Rule("number"),
    "MaterialCosts": Rule("number"),
    "ReversedConstructionServicesVatFree": Rule("boolean", required=True),
    "CostCenterItemId1": Rule("uuid"),
    "CostCenterItemId2": Rule("uuid"),
    "CostCenterItemId3": Rule("uuid"),
    "UnitAbbreviation": _s(),
    "VatRateId": Rule("string", read_only=True),
    "UnitName": _s(),
    "ProjectId": Rule("uuid"),
}
"""CustomerInvoiceDraftRowApi, as the swagger defines it."""

DRAFT_RULES: Mapping[str, Rule] = {
    "Id": Rule("uuid", read_only=True),
    "CustomerId": Rule("uuid", required=True),
    "CreatedUtc": _RO_T,
    "IsCreditInvoice": Rule("boolean"),
    "RotReducedInvoicingType": Rule("integer", required=True, enum=_ROT_TYPE),
    "RotReducedInvoicingPropertyName": _s(40),
    "RotReducedInvoicingOrgNumber": _s(11),
    "RotReducedInvoicingAmount": _N2,
    "RotReducedInvoicingAutomaticDistribution": Rule("boolean"),
    "RotPropertyType": Rule("integer"),
    "HouseWorkOtherCosts": Rule("number"),
    "Rows": Rule("array", items=DRAFT_ROW_RULES),
    "Persons": Rule("array", items=PERSON_RULES),
    "YourReference": _s(100),
    "OurReference": _s(100),
    "InvoiceCustomerName": _s(50, required=True),
    "InvoiceAddress1": _s(50),
    "InvoiceAddress2": _s(50),
    "InvoicePostalCode": _s(10, required=True),
    "InvoiceCity": _s(50, required=True),
    "InvoiceCountryCode": _s(2, required=True),
    "InvoiceCurrencyCode": _RO,
    "DeliveryCustomerName": _s(50),
    "DeliveryAddress1": _s(50),
    "DeliveryAddress2": _s(50),
    "DeliveryPostalCode": _s(10),
    "DeliveryCity": _s(50),
    "DeliveryCountryCode": _s(2),
    "DeliveryMethodName": _s(50),
    "DeliveryTermName": _s(50),
    "DeliveryMethodCode": _s(20),
    "DeliveryTermCode": _s(20),
    "EuThirdParty": Rule("boolean", required=True),
    "CustomerIsPrivatePerson": Rule("boolean", required=True),
    "ReverseChargeOnConstructionServices": _RO_B,
    "SalesDocumentAttachments": Rule("array", read_only=True),
    "InvoiceDate": Rule("datetime"),
    "DeliveryDate": Rule("datetime"),
    "TotalAmount": _RO_N,
    "TotalVatAmount": _RO_N,
    "TotalRoundings": _RO_N,
    "TotalAmountBaseCurrency": _RO_N,
    "TotalVatAmountBaseCurrency": _RO_N,
    "CustomerNumber": Rule("string", max_length=16, read_only=True),
    "IncludesVat": _RO_B,
}
"""CustomerInvoiceDraftApi, as the swagger defines it."""

INVOICE_ROW_RULES: Mapping[str, Rule] = {
    "Id": Rule("uuid", read_only=True),
    "ArticleNumber": _RO,
    "ArticleId": Rule("uuid"),  # "Null if text row"
    "AmountNoVat": _RO_N,
    "PercentVat": _RO_N,
    "LineNumber": Rule("integer", read_only=True),
    "IsTextRow": _RO_B,
    "Text": _s(),
    "UnitPrice": _N2,
    "UnitAbbreviation": _RO,
    "UnitAbbreviationEnglish": _RO,
    "DiscountPercentage": Rule("number", minimum=Decimal(0), maximum=Decimal(1), decimals=4),
    "Quantity": _N2,
    "IsWorkCost": _RO_B,
    "IsVatFree": Rule("boolean"),
    "CostCenterItemId1": Rule("uuid"),
    "CostCenterItemId2": Rule("uuid"),
    "CostCenterItemId3": Rule("uuid"),
    "UnitId": Rule("uuid", read_only=True),
    "ProjectId": Rule("uuid"),
    "WorkCostType": Rule("integer"),
    "WorkHours": Rule("number"),
    "MaterialCosts": Rule("number"),
}
"""CustomerInvoiceRowApi, as the swagger defines it."""

INVOICE_RULES: Mapping[str, Rule] = {
    "Id": Rule("uuid", read_only=True),
    "EuThirdParty": Rule("boolean", required=True),
    "IsCreditInvoice": Rule("boolean"),
    "CurrencyCode": _RO,
    "CurrencyRate": Rule("number"),
    "CreatedByUserId": Rule("uuid", read_only=True),
    "TotalAmount": _RO_N,
    "TotalVatAmount": _RO_N,
    "TotalRoundings": _RO_N,
    "TotalAmountInvoiceCurrency": _RO_N,
    "TotalVatAmountInvoiceCurrency": _RO_N,
    "CustomerId": Rule("uuid", required=True),
    "Rows": Rule("array", required=True, items=INVOICE_ROW_RULES),
    "InvoiceDate": Rule("datetime"),
    "DueDate": Rule("datetime"),
    "DeliveryDate": Rule("datetime"),
    "RotReducedInvoicingType": Rule("integer", required=True, minimum=Decimal(0), maximum=Decimal(2), enum=_ROT_TYPE),
    "RotReducedInvoicingAmount": _N2,
    "RotReducedInvoicingPercent": _RO_N,
    "RotReducedInvoicingPropertyName": _s(),
    "RotReducedInvoicingOrgNumber": _s(11),
    "Persons": Rule("array", items=PERSON_RULES),
    "RotReducedInvoicingAutomaticDistribution": _RO_B,
    "ElectronicReference": _s(),
    "ElectronicAddress": _RO,
    "EdiServiceDelivererId": _s(50),
    "OurReference": _s(50),
    "YourReference": _s(50),
    "InvoiceCustomerName": _RO,
    "InvoiceAddress1": _RO,
    "InvoiceAddress2": _RO,
    "InvoicePostalCode": _RO,
    "InvoiceCity": _RO,
    "InvoiceCountryCode": _RO,
    "DeliveryCustomerName": _RO,
    "DeliveryAddress1": _RO,
    "DeliveryAddress2": _s(50),
    "DeliveryPostalCode": _RO,
    "DeliveryCity": _RO,
    "DeliveryCountryCode": _RO,
    "DeliveryMethodName": _RO,
    "DeliveryTermName": _RO,
    "DeliveryMethodCode": _RO,
    "DeliveryTermCode": _RO,
    "CustomerIsPrivatePerson": _RO_B,
    "TermsOfPaymentId": Rule("uuid", read_only=True),
    "CustomerEmail": _RO,
    "InvoiceNumber": Rule("integer", read_only=True),
    "CustomerNumber": _RO,
    "PaymentReferenceNumber": _RO,
    "RotPropertyType": Rule("integer", minimum=Decimal(1), maximum=Decimal(2)),
    "SalesDocumentAttachments": Rule("array", read_only=True),
    "HasAutoInvoiceError": _RO_B,
    "IsNotDelivered": _RO_B,
    "ReverseChargeOnConstructionServices": _RO_B,
    "WorkHouseOtherCosts": Rule("number"),
    "RemainingAmount": _RO_N,
    "RemainingAmountInvoiceCurrency": _RO_N,
    "ReferringInvoiceId": Rule("uuid", read_only=True),
    "VoucherNumber": _RO,
    "VoucherId": Rule("uuid", read_only=True),
    "CreatedUtc": _RO_T,
    "ModifiedUtc": _RO_T,
    "ReversedConstructionVatInvoicing": _RO_B,
    "IncludesVat": _RO_B,
    "SendType": Rule("integer", enum=(0, 1, 2, 3)),
}
"""CustomerInvoiceApi, as the swagger defines it (addresses, terms and currency come from the customer)."""

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def validate(body: Any, rules: Mapping[str, Rule]) -> dict[str, Any]:
    """The writable properties of ``body`` (and of the objects in its arrays), or a 2000
    DataModelValidationError listing every problem (``Rows[1].Text: ...`` for an array item)."""
    if not isinstance(body, dict):
        raise VendorError(400, 2000, "DataModelValidationError - the request body must be a JSON object")
    problems: list[str] = []
    clean = _validate(body, rules, "", problems)
    if problems:
        raise VendorError(400, 2000, "; ".join(problems))
    return clean


def _validate(body: dict[str, Any], rules: Mapping[str, Rule], prefix: str, problems: list[str]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for prop, rule in rules.items():
        if rule.read_only:
            continue
        name = f"{prefix}{prop}"
        value = body.get(prop)
        if value is None or (rule.type == "string" and value == "" and rule.required):
            if rule.required:
                problems.append(f"{name}: The {prop} field is required.")
            continue
        problem = _check(name, value, rule)
        if problem:
            problems.append(problem)
        elif rule.items is not None:
            items = []
            for n, item in enumerate(value):
                if not isinstance(item, dict):
                    problems.append(f"{name}[{n}]: Error converting value {item!r} to an object.")
                    continue
                items.append(_validate(item, rule.items, f"{name}[{n}].", problems))
            clean[prop] = items
        else:
            clean[prop] = value
    return clean


def _check(prop: str, value: Any, rule: Rule) -> str | None:
    if rule.type in ("string", "uuid"):
        if not isinstance(value, str):
            return f"{prop}: Error converting value {value!r} to type 'System.String'."
        if rule.type == "uuid" and not _UUID.match(value):
            return f"{prop}: Error converting value {value!r} to type 'System.Guid'."
        if rule.max_length is not None and len(value) > rule.max_length:
            return f"{prop}: The field {prop.rpartition('.')[2]} must be a string with a maximum length of {rule.max_length}."
    elif rule.type == "datetime":
        try:
            if not isinstance(value, str):
                raise ValueError(value)
            parse_time(value)
        except ValueError:
            return f"{prop}: Error converting value {value!r} to type 'System.DateTime'."
    elif rule.type == "boolean":
        if not isinstance(value, bool):
            return f"{prop}: Error converting value {value!r} to type 'System.Boolean'."
    elif rule.type == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{prop}: Error converting value {value!r} to type 'System.Int32'."
        if rule.enum is not None and value not in rule.enum:
            return f"{prop}: The value {value} is not valid for {prop.rpartition('.')[2]}."
        if (rule.minimum is not None and value < rule.minimum) or (rule.maximum is not None and value > rule.maximum):
            return f"{prop}: The field {prop.rpartition('.')[2]} must be between {rule.minimum} and {rule.maximum}."
    elif rule.type == "number":
        if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
            return f"{prop}: Error converting value {value!r} to type 'System.Decimal'."
        number = Decimal(value)
        if (rule.minimum is not None and number < rule.minimum) or (rule.maximum is not None and number > rule.maximum):
            return f"{prop}: The field {prop.rpartition('.')[2]} must be between {rule.minimum} and {rule.maximum}."
        if rule.decimals is not None and number != number.quantize(Decimal(1).scaleb(-rule.decimals), rounding=ROUND_HALF_UP):
            return f"{prop}: The field {prop.rpartition('.')[2]} allows at most {rule.decimals} decimals."
    elif rule.type == "array" and not isinstance(value, list):
        return f"{prop}: Error converting value {value!r} to a collection."
    return None


# -- OData subset --------------------------------------------------------------------------

_CLAUSE = re.compile(
    r"^\s*(?P<field>[A-Za-z]\w*)\s+(?P<op>eq|ne|gt|ge|lt|le)\s+(?P<value>'(?:[^']|'')*'|\S+)\s*$", re.IGNORECASE
)
_AND = re.compile(r"\s+and\s+(?=(?:[^']*'[^']*')*[^']*$)", re.IGNORECASE)
_OR = re.compile(r"\s+or\s+(?=(?:[^']*'[^']*')*[^']*$)", re.IGNORECASE)


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
    """A predicate for the ``$filter`` subset the simulator understands: clauses joined by ``and``,
    groups of them joined by ``or`` (``and`` binds tighter, as in OData); VendorError otherwise."""
    groups = []
    for group in _OR.split(expression.strip()):
        tests = []
        for clause in _AND.split(group.strip()):
            match = _CLAUSE.match(clause)
            if not match:
                raise VendorError(
                    400, 2000, f"$filter: the simulator understands 'Field op value [and|or ...]', not {clause!r}"
                )
            field, op, value = match["field"], match["op"].lower(), _literal(match["value"])
            if field not in fields:
                raise VendorError(400, 2000, f"$filter: could not find a property named '{field}'")
            tests.append((field, op, value))
        groups.append(tests)

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

    return lambda item: any(all(compare(item.get(f), op, v) for f, op, v in tests) for tests in groups)
