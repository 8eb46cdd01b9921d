"""MplusQapi items ⇄ canonical records: pure functions, no I/O.

Money: the WSDL types prices and amounts as ``xsd:long``; the WSDL documents other amounts as
cents, and prices are taken as cents too ([unverified] for article prices, see the README).
Quantities are an ``xsd:long`` with a ``decimalPlaces`` count (``15`` with 1 place is 1.5).
Every field order below is the WSDL's ``xsd:sequence`` (pinned by the conformance tests).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from apicenterd import Address, Attribute, Contact, Customer, Order, OrderLine, Product, RecordError, StockLevel

from . import soap

__all__ = [
    "PRODUCT_FIELDS",
    "ARTICLE_FIELDS",
    "RELATION_FIELDS",
    "ORDER_FIELDS",
    "LINE_FIELDS",
    "LINEDATA_FIELDS",
    "ADDRESS_FIELDS",
    "CREATE_ORDER_V3_FIELDS",
    "READ_ONLY",
    "ordered",
    "cents",
    "from_cents",
    "quantity",
    "from_quantity",
    "article_to_product",
    "article_fields",
    "relation_to_customer",
    "customer_to_relation",
    "order_to_canonical",
    "order_status",
    "stock_of",
]

PRODUCT_FIELDS = ("productNumber", "syncMarker", "description", "extraText", "articleList", "groupNumbers", "sortOrderGroupList")
ARTICLE_FIELDS = (
    "articleNumber",
    "extArticleId",
    "pluNumber",
    "syncMarker",
    "changeTimestamp",
    "createTimestamp",
    "active",
    "description",
    "colour",
    "colourSequenceNumber",
    "size",
    "sizeSequenceNumber",
    "invoiceText",
    "receiptText",
    "displayText",
    "barcode",
    "barcodeDate",
    "contentUnit",
    "contentQuantity",
    "contentQuantityDecimalPlaces",
    "brandName",
    "extraText",
    "turnoverGroup",
    "vatCode",
    "vatPercentage",
    "vatCodeAlternative",
    "vatPercentageAlternative",
    "averagePurchasePrice",
    "purchasePrice",
    "priceIncl",
    "priceExcl",
    "siUnit",
    "unit",
    "orderQuantityValue",
    "orderQuantityDecimalPlaces",
    "supplierRelationNumber",
    "supplierRelationName",
    "supplierArticleNumber",
    "webshop",
    "categoryId",
    "categoryIds",
    "stockArticle",
    "articleDiscountGroupNumber",
    "articleDiscountGroupName",
    "course",
    "specialPrice",
    "showPreparationMethodsDirectly",
    "showPreparationMethodsPerGroup",
    "exchangeRateBuyPrice",
    "exchangeRateBuyPriceDecimalPlaces",
    "exchangeRateSellPrice",
    "exchangeRateSellPriceDecimalPlaces",
    "exchangeRateMultiplier",
    "imageList",
    "customFieldList",
    "salesPriceList",
    "priceGroupList",
    "preparationMethodList",
    "componentArticleList",
    "linkedArticleList",
    "barcodeList",
    "relationArticleDiscountList",
    "askFor",
    "nutritionalCharacteristics",
    "discontinued",
    "stockSiUnit",
    "specialBehaviour",
    "ageCheckMinimumAge",
    "oldestBestBeforeDate",
    "shelfLifeInDays",
    "shelfLifeInHours",
    "priceDeviationMin",
    "priceDeviationMax",
    "availableForInterbranchOrdering",
)
RELATION_FIELDS = (
    "relationNumber",
    "extRelationId",
    "syncMarker",
    "createTimestamp",
    "changeTimestamp",
    "active",
    "name",
    "address",
    "zipcode",
    "city",
    "country",
    "deliveryAddress",
    "deliveryZipcode",
    "deliveryCity",
    "deliveryCountry",
    "contact",
    "telephone",
    "mobile",
    "email",
    "website",
    "birthDate",
    "relationCode",
    "points",
    "balance",
    "priceGroupNumber",
    "discountPercentage",
    "categoryId",
    "categoryIds",
    "cardNumber",
    "bankAccountNumber",
    "creditLimit",
    "paymentWithinDays",
    "vatNumber",
    "commerceNumber",
    "extraText",
    "defaultVatMethod",
    "neverPrintOrEmailReceipt",
    "alwaysPrintReceipt",
    "alwaysPrintLargeFormatReceipt",
    "alwaysEmailReceipt",
    "condenseCombinedInvoice",
    "imageList",
    "customFieldList",
    "contactList",
    "relationArticleDiscountList",
    "companyName",
    "branchesNonPurchasable",
    "cardNumbers",
    "invoiceCredit",
    "accountBalance",
    "salePromotionIds",
    "directDebit",
    "reminderEmail",
    "canEarnPoints",
    "canRedeemPoints",
    "cantRedeemPointsReason",
)
ORDER_FIELDS = (
    "orderId",
    "extOrderId",
    "invoiceIds",
    "extInvoiceIds",
    "transactionString",
    "syncMarker",
    "orderType",
    "entryBranchNumber",
    "entryExtBranchId",
    "employeeNumber",
    "employeeName",
    "entryTimestamp",
    "relationNumber",
    "relationName",
    "relationCategoryId",
    "relationBankAccountNumber",
    "relationVatNumber",
    "deliveryAddress",
    "invoiceAddress",
    "financialDate",
    "financialBranchNumber",
    "financialExtBranchId",
    "workplaceNumber",
    "reference",
    "activityId",
    "totalInclAmount",
    "totalExclAmount",
    "vatMethod",
    "vatGroupList",
    "deliveryMethod",
    "deliveryDate",
    "deliveryPeriodBegin",
    "deliveryPeriodEnd",
    "paymentMethod",
    "changeCounter",
    "versionNumber",
    "prepaidAmount",
    "fullyPaid",
    "deliveryState",
    "cancelState",
    "completeState",
    "tableNumber",
    "tableSubNumber",
    "tableDescription",
    "numberOfGuests",
    "orderNumber",
    "branchOrderNumber",
    "orderBarcode",
    "orderCategoryNumber",
    "orderCategoryDescription",
    "onDeliveryUrl",
    "onInvoiceUrl",
    "lineList",
    "paymentList",
    "vatChange",
    "vatCountryCode",
    "vatCountryIso3",
    "webhookSessionData",
    "cateringOrderNumber",
    "invoiceNumbers",
    "packingSlipIds",
    "packingSlipNumbers",
    "proposalId",
    "extProposalId",
    "proposalNumber",
    "branchGroupNumber",
    "ownerId",
    "branchInvoiceNumbers",
    "timelineEvents",
    "contractPeriod",
)
LINE_FIELDS = (
    "lineId",
    "employeeNumber",
    "articleNumber",
    "pluNumber",
    "text",
    "supplierRelationNumber",
    "supplierRelationName",
    "supplierArticleNumber",
    "data",
    "courseNumber",
    "menuHash",
    "menuDescription",
    "menuAmount",
    "salePromotionData",
    "webhookData",
    "lineType",
    "preparationList",
    "suppressDisposableComponent",
    "tempId",
    "retourReason",
    "sequenceNumber",
    "contractLines",
    "uncondensedLines",
    "tempLineId",
    "subLineType",
    "articleAlterationId",
    "lineKind",
    "salesOrderLineId",
)
LINEDATA_FIELDS = (
    "quantity",
    "decimalPlaces",
    "deliveredQuantity",
    "deliveredDecimalPlaces",
    "cancelledQuantity",
    "cancelledDecimalPlaces",
    "price",
    "priceExcl",
    "originalPrice",
    "originalPriceExcl",
    "purchasePrice",
    "averagePurchasePrice",
    "exchangeRateBuyPrice",
    "exchangeRateBuyPriceDecimalPlaces",
    "exchangeRateSellPrice",
    "exchangeRateSellPriceDecimalPlaces",
    "exchangeRateMultiplier",
    "turnoverGroup",
    "turnoverGroupName",
    "turnoverGroupType",
    "turnoverGroupAccountNumber",
    "turnoverGroupCostCenter",
    "vatCode",
    "vatPercentage",
    "pricePerQuantity",
    "siUnit",
    "discountType",
    "discountPercentage",
    "discountAmount",
    "discountAmountExcl",
    "bpeId",
    "bpeDescription",
    "bpeAmount",
    "bpeAmountExcl",
    "menuId",
    "menuLinesId",
    "totalInclAmount",
    "totalExclAmount",
    "priceType",
    "purchaseAccountNumber",
    "stockAccountNumber",
    "bpeAccordationEmployeeNumber",
    "redeemedVoucherIssuanceId",
    "pendingVoucherIssuanceStartTs",
)
ADDRESS_FIELDS = ("addressId", "name", "contact", "address", "zipcode", "city", "country", "label", "companyName", "supplierInformation")
CREATE_ORDER_V3_FIELDS = (
    "idempotencyKey",
    "order",
    "applySalesAndActions",
    "applySalesPrices",
    "applyPriceGroups",
    "scannedVoucherIssuanceCodes",
    "prepay",
    "paymentList",
)

READ_ONLY = frozenset({"syncMarker", "changeTimestamp", "createTimestamp", "averagePurchasePrice"})
"""Fields an item read back carries that a write leaves out (the vendor sets them)."""

CENT = Decimal("0.01")


def ordered(order: Iterable[str], values: Mapping[str, Any], *, drop: Iterable[str] = READ_ONLY) -> dict[str, Any]:
    """``values`` in the WSDL's sequence ``order`` (Nones and ``drop`` left out); ValueError
    naming a field that the sequence does not have."""
    sequence = tuple(order)
    unknown = set(values) - set(sequence)
    if unknown:
        raise ValueError(f"not in the WSDL's sequence: {', '.join(sorted(unknown))}")
    dropped = set(drop)
    return {k: values[k] for k in sequence if k in values and values[k] is not None and k not in dropped}


# -- numbers -----------------------------------------------------------------------------------


def cents(amount: Decimal, what: str) -> int:
    """An amount as whole cents (half up); RecordError for more than 2 decimals' worth of cents is not raised: rounded."""
    try:
        return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    except ArithmeticError:
        raise RecordError(f"{what}: {amount!r} is not an amount") from None


def from_cents(value: Any, name: str) -> Decimal | None:
    """Cents in child ``name`` of ``value`` as a Decimal amount; None when absent."""
    number = soap.to_int(value, name)
    return None if number is None else (Decimal(number) / 100).quantize(CENT)


def quantity(amount: Decimal) -> tuple[int, int]:
    """A quantity as MplusKASSA's (long, decimal places): 1.5 → (15, 1), 3 → (3, 0)."""
    normalized = amount.normalize()
    exponent = normalized.as_tuple().exponent
    places = max(0, -exponent) if isinstance(exponent, int) else 0
    return int(normalized.scaleb(places)), places


def from_quantity(value: Any, number: str, places: str) -> Decimal | None:
    """A (long, decimal places) pair from ``value`` as a Decimal; None when absent."""
    amount = soap.to_int(value, number)
    if amount is None:
        return None
    return Decimal(amount).scaleb(-(soap.to_int(value, places) or 0))


def _country(value: str | None) -> str | None:
    """A two-letter country code, or None: MplusKASSA keeps country as free text."""
    value = (value or "").strip().upper()
    return value if re.fullmatch(r"[A-Z]{2}", value) else None


# -- products ----------------------------------------------------------------------------------


def article_to_product(
    product: Mapping[str, Any],
    article: Mapping[str, Any],
    *,
    sku: str | None = None,
    currency: str = "EUR",
    groups: Mapping[int, str] | None = None,
    colour_attribute: str = "colour",
    size_attribute: str = "size",
    features: Mapping[str, str] | None = None,
) -> Product:
    """One article (with its product) as a canonical product. ``sku``: the key it was looked up
    by (an allocated article number's SKU); else the article number. An article of a product
    with several articles is a ``variant`` whose ``parent_sku`` is the product number."""
    number = soap.to_int(article, "articleNumber")
    if number is None:
        raise RecordError("an article without articleNumber")
    articles = soap.many(soap.one(product, "articleList"), "article")
    attributes: list[Attribute] = []
    for field, name in (("colour", colour_attribute), ("size", size_attribute)):
        value = soap.text(article, field)
        if value:
            attributes.append(Attribute(name=name, value=value))
    by_field = {v: k for k, v in (features or {}).items()}
    for field in soap.many(soap.one(article, "customFieldList"), "customField"):
        field_name = soap.text(field, "fieldName")
        field_value = soap.text(field, "strValue")
        if field_name in by_field and field_value:
            attributes.append(Attribute(name=by_field[field_name], value=field_value))
    group_numbers = [int(g) for g in soap.many(product, "groupNumbers") if str(g).strip().lstrip("-").isdigit()]
    categories = tuple(groups[g] for g in group_numbers if groups and g in groups)
    product_number = soap.to_int(product, "productNumber")
    variant = len(articles) > 1 and product_number is not None
    return Product(
        sku=sku or str(number),
        name=soap.text(article, "description") or soap.text(product, "description") or "",
        ean=soap.text(article, "barcode") or None,
        description=soap.text(article, "extraText") or None,
        price_incl_tax=from_cents(article, "priceIncl"),
        price_excl_tax=from_cents(article, "priceExcl"),
        tax_rate=Decimal(soap.to_int(article, "vatPercentage") or 0) if soap.text(article, "vatPercentage") else None,
        purchase_price=from_cents(article, "purchasePrice"),
        currency=currency,
        unit=soap.text(article, "unit") or None,
        type="variant" if variant else "simple",
        parent_sku=str(product_number) if variant else None,
        attributes=tuple(attributes),
        categories=categories,
        active=soap.to_bool(article, "active") is not False,
    )


def article_fields(
    record: Product,
    *,
    vat_code: int | None,
    colour_attribute: str = "colour",
    size_attribute: str = "size",
    features: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The article fields apicenterd writes for ``record`` (not ordered: see :func:`ordered`)."""
    what = f"article {record.sku!r}"
    attributes = {a.name.casefold(): a.value for a in record.attributes}
    custom = [
        {"fieldName": field, "dataType": "DATA-TYPE-STRING", "strValue": attributes[name.casefold()]}
        for name, field in (features or {}).items()
        if name.casefold() in attributes
    ]
    fields: dict[str, Any] = {
        "active": record.active,
        "description": record.name,
        "colour": attributes.get(colour_attribute.casefold()),
        "size": attributes.get(size_attribute.casefold()),
        "barcode": record.ean,
        "extraText": record.description,
        "vatCode": vat_code,
        "vatPercentage": int(record.tax_rate) if record.tax_rate is not None else None,
        "purchasePrice": cents(record.purchase_price, what) if record.purchase_price is not None else None,
        "priceIncl": cents(record.price_incl_tax, what) if record.price_incl_tax is not None else None,
        "priceExcl": cents(record.price_excl_tax, what) if record.price_excl_tax is not None else None,
        "unit": record.unit,
        "customFieldList": {"customField": custom} if custom else None,
    }
    return fields


# -- relations ---------------------------------------------------------------------------------


def _split_name(full: str) -> tuple[str, str]:
    first, _, last = full.strip().partition(" ")
    return (first, last) if last else ("", first)


def _street(address: Address) -> str:
    number = f"{address.house_number}{address.house_number_suffix}".strip()
    return " ".join(p for p in (address.street, number) if p)


def _address(street: str | None, zipcode: str | None, city: str | None, country: str | None) -> Address:
    return Address(street=(street or "").strip(), postcode=(zipcode or "").strip(), city=(city or "").strip(), country=_country(country))


def relation_to_customer(relation: Mapping[str, Any]) -> Customer:
    """A relation as a canonical customer: a company when it has a ``companyName``, else a person."""
    number = soap.to_int(relation, "relationNumber")
    company = (soap.text(relation, "companyName") or "").strip()
    name = (soap.text(relation, "name") or "").strip()
    contact_name = (soap.text(relation, "contact") or "").strip()
    email = (soap.text(relation, "email") or "").strip() or None
    phone = (soap.text(relation, "telephone") or soap.text(relation, "mobile") or "").strip() or None
    contact = None
    if company and (contact_name or (name and name != company)):
        first, last = _split_name(contact_name or name)
        contact = Contact(first_name=first, last_name=last, email=email, phone=phone)
    delivery = None
    if soap.text(relation, "deliveryAddress") or soap.text(relation, "deliveryCity"):
        delivery = _address(
            soap.text(relation, "deliveryAddress"),
            soap.text(relation, "deliveryZipcode"),
            soap.text(relation, "deliveryCity"),
            soap.text(relation, "deliveryCountry"),
        )
    return Customer(
        kind="company" if company else "person",
        name=company or name or contact_name or (email or f"relation {number}"),
        email=email,
        phone=phone,
        contact=contact,
        billing_address=_address(
            soap.text(relation, "address"), soap.text(relation, "zipcode"), soap.text(relation, "city"), soap.text(relation, "country")
        ),
        shipping_address=delivery,
        vat_number=(soap.text(relation, "vatNumber") or "").strip() or None,
        coc_number=(soap.text(relation, "commerceNumber") or "").strip() or None,
        customer_number=str(number) if number is not None else None,
    )


def customer_to_relation(record: Customer) -> dict[str, Any]:
    """The relation fields apicenterd writes for ``record`` (not ordered)."""
    billing = record.billing_address
    shipping = record.shipping_address
    person = record.contact.full_name if record.contact else ""
    return {
        "active": True,
        "name": record.name,
        "address": _street(billing) or None,
        "zipcode": billing.postcode or None,
        "city": billing.city or None,
        "country": billing.country,
        "deliveryAddress": _street(shipping) if shipping else None,
        "deliveryZipcode": shipping.postcode if shipping else None,
        "deliveryCity": shipping.city if shipping else None,
        "deliveryCountry": shipping.country if shipping else None,
        "contact": person or None,
        "telephone": record.phone,
        "email": record.email,
        "vatNumber": record.vat_number,
        "commerceNumber": record.coc_number,
        "companyName": record.name if record.kind == "company" else None,
    }


# -- orders ------------------------------------------------------------------------------------


def order_status(order: Mapping[str, Any]) -> str:
    """A till order's status for the order process: ``cancelled`` (cancelled completely),
    ``completed`` (complete state COMPLETE), ``paid`` (fully paid), else ``open``."""
    if soap.text(order, "cancelState") == "ORDER-CANCEL-STATE-COMPLETE":
        return "cancelled"
    if soap.text(order, "completeState") == "ORDER-COMPLETE-STATE-COMPLETE":
        return "completed"
    if soap.to_bool(order, "fullyPaid"):
        return "paid"
    return "open"


def order_number(order: Mapping[str, Any]) -> str:
    """The order's number: ``extOrderId`` when it has one (an order apicenterd or a web shop
    created), else ``<year>-<number>`` of its ``orderNumber``, else its ``orderId``."""
    ext = (soap.text(order, "extOrderId") or "").strip()
    if ext:
        return ext
    number = soap.one(order, "orderNumber")
    if isinstance(number, dict) and soap.to_int(number, "number") is not None:
        return f"{soap.to_int(number, 'year')}-{soap.to_int(number, 'number')}"
    order_id = (soap.text(order, "orderId") or "").strip()
    if not order_id:
        raise RecordError("an order without orderId")
    return order_id


def _order_address(value: Any) -> Address | None:
    if not isinstance(value, dict):
        return None
    return _address(soap.text(value, "address"), soap.text(value, "zipcode"), soap.text(value, "city"), soap.text(value, "country"))


def order_to_canonical(order: Mapping[str, Any], *, currency: str, relation: Mapping[str, Any] | None = None) -> Order:
    """A till order as a canonical order; ``relation``: its relation as read (for e-mail and
    address), else the order's own relation name and invoice address."""
    number = order_number(order)
    include_tax = soap.text(order, "vatMethod") != "VAT-METHOD-EXCLUSIVE"
    lines: list[OrderLine] = []
    for line in soap.many(soap.one(order, "lineList"), "line"):
        data = soap.one(line, "data") or {}
        amount = from_quantity(data, "quantity", "decimalPlaces")
        if amount is None:
            raise RecordError(f"order {number}: a line without data.quantity")
        price = from_cents(data, "price" if include_tax else "priceExcl")
        if price is None:
            price = from_cents(data, "priceExcl" if include_tax else "price")
        article = soap.to_int(line, "articleNumber")
        vat = soap.to_int(data, "vatPercentage")
        lines.append(
            OrderLine(
                sku=str(article) if article else None,
                name=soap.text(line, "text") or "",
                quantity=amount,
                unit_price=price if price is not None else Decimal(0),
                prices_include_tax=include_tax,
                discount=from_cents(data, "discountAmount" if include_tax else "discountAmountExcl") or Decimal(0),
                tax_rate=Decimal(vat) if vat is not None else None,
            )
        )
    incl = from_cents(order, "totalInclAmount")
    excl = from_cents(order, "totalExclAmount")
    billing = _order_address(soap.one(order, "invoiceAddress"))
    shipping = _order_address(soap.one(order, "deliveryAddress"))
    customer = None
    if relation is not None:
        customer = relation_to_customer(relation)
    elif soap.to_int(order, "relationNumber"):
        customer = Customer(
            kind="person",
            name=soap.text(order, "relationName") or f"relation {soap.to_int(order, 'relationNumber')}",
            customer_number=str(soap.to_int(order, "relationNumber")),
            billing_address=billing or Address(),
            vat_number=soap.text(order, "relationVatNumber") or None,
        )
    payments = [soap.text(p, "method") for p in soap.many(soap.one(order, "paymentList"), "payment")]
    created = soap.from_mplus_datetime(soap.one(order, "entryTimestamp"), "entryTimestamp")
    if created is None:
        financial = soap.from_mplus_date(soap.one(order, "financialDate"), "financialDate")
        if financial is None:
            raise RecordError(f"order {number}: neither entryTimestamp nor financialDate")
        created = datetime(financial.year, financial.month, financial.day, tzinfo=timezone.utc)
    return Order(
        number=number,
        status=order_status(order),
        created_at=created,
        currency=currency,
        customer=customer,
        billing_address=billing or (customer.billing_address if customer else Address()),
        shipping_address=shipping,
        lines=tuple(lines),
        total=incl if incl is not None else Decimal(0),
        total_tax=(incl - excl) if incl is not None and excl is not None else None,
        paid=bool(soap.to_bool(order, "fullyPaid")),
        payment_method=next((p for p in payments if p), None) or soap.text(order, "paymentMethod") or None,
        reference=soap.text(order, "reference") or None,
        custom_fields={
            k: v
            for k, v in {
                "delivery_method": soap.text(order, "deliveryMethod") or None,
                "branch_number": soap.to_int(order, "entryBranchNumber"),
                "employee_number": soap.to_int(order, "employeeNumber"),
                "order_id": soap.text(order, "orderId") or None,
            }.items()
            if v is not None
        },
    )


# -- stock -------------------------------------------------------------------------------------


def stock_of(stock: Mapping[str, Any]) -> tuple[Decimal, Decimal]:
    """(free, reserved) of one ``ArticleStock``."""
    free = from_quantity(stock, "amountFree", "decimalPlacesFree") or Decimal(0)
    reserved = from_quantity(stock, "amountReserved", "decimalPlacesReserved") or Decimal(0)
    return free, reserved


def stock_level(sku: str, stocks: Iterable[Mapping[str, Any]], *, branches: Iterable[int]) -> StockLevel:
    """The stock of ``sku`` summed over ``branches`` (free is on hand here; reserved is MplusKASSA's)."""
    wanted = set(branches)
    on_hand = reserved = Decimal(0)
    for stock in stocks:
        branch = soap.to_int(stock, "branchNumber")
        if branch is not None and branch not in wanted:
            continue
        free, held = stock_of(stock)
        on_hand += free
        reserved += held
    return StockLevel(sku=sku, on_hand=on_hand, reserved=reserved, available=on_hand)
