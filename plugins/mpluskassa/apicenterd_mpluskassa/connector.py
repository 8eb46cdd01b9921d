"""The MplusKASSA connector: products, stock, relations and till orders through the MplusQapi (SOAP)."""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from apicenterd import (
    Attribute,
    Change,
    Connector,
    ConnectorSettings,
    Customer,
    Entity,
    FatalError,
    Found,
    Order,
    Product,
    RateLimit,
    RecordError,
    Sink,
    Source,
    StockLevel,
)
from apicenterd.kit import chunks

from . import mapping, soap
from .client import MplusClient, cursor_of, marker_of, result_error
from .numbers import Allocator, numeric
from .orders import TillOrderSink, till_order_source

__all__ = ["MplusKassaConnector", "MplusKassaSettings"]

LOOKUP_CHUNK = 100
"""Article numbers per getProducts/getStock look-up."""


class MplusKassaSettings(ConnectorSettings):
    """Connection settings of a MplusKASSA connection."""

    base_url: str = Field(description="The customer's MplusQapi address with its port, e.g. https://api.example.nl:34343")
    ident: str = Field(min_length=1, description="API ident (sent as the ident query parameter)")
    secret: SecretStr = Field(description="API secret (sent as the secret query parameter; redacted everywhere)")
    max_concurrency: int = Field(
        default=2, ge=1, le=32, description="SOAP calls in flight at once (MplusKASSA documents no limit; a conservative default)"
    )
    soap_action: Literal["operation", "empty"] = Field(
        default="operation", description='SOAPAction header: the operation name (as the vendor\'s clients send) or "" (as the WSDL says)'
    )
    page_size: int = Field(default=200, ge=1, le=10_000, description="syncMarkerLimit of sync-marker reads")
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$", description="The currency of the till's prices")
    # products
    allocate_article_numbers: bool = Field(
        default=False,
        description="Give a non-numeric SKU an allocated article number (kept on the article as pluNumber); "
        "false: a non-numeric SKU is a record error",
    )
    allocation_range: tuple[int, int] = Field(
        default=(900_000_000, 999_999_999), description="First and last number allocated to non-numeric SKUs and variant groups"
    )
    variant_grouping: Literal["none", "parent_sku", "sku_pattern"] = Field(
        default="none",
        description="How articles are grouped into one product: none (a product per article), parent_sku (the "
        "canonical parent_sku, e.g. QuickBooks' parent item), sku_pattern (variant_sku_pattern's group 'product')",
    )
    variant_sku_pattern: str | None = Field(
        default=None, description=r"Regular expression with a group named product, e.g. ^(?P<product>\d+)-"
    )
    colour_attribute: str = Field(default="colour", description="The product attribute written to the article's colour")
    size_attribute: str = Field(default="size", description="The product attribute written to the article's size")
    feature_fields: dict[str, str] = Field(
        default_factory=dict,
        description="Product attribute -> MplusKASSA custom field (features such as country of origin, type, delivery time)",
    )
    categories: bool = Field(default=True, description="Write product categories as article groups (created when missing)")
    category_parent_group: int = Field(default=0, ge=0, description="Parent group number of article groups created for categories")
    # stock
    stock_branch: int | None = Field(default=None, ge=0, description="The branch whose stock is written (or stock_split)")
    stock_split: dict[int, Decimal] | None = Field(
        default=None, description="Branch -> share of the available quantity, e.g. {1 = 0.7, 2 = 0.3}; remainder to the first"
    )
    stock_employee_number: int | None = Field(default=None, ge=0, description="employeeNumber on stock writes")
    # orders (as a source)
    order_branches: list[int] = Field(default_factory=list, description="Read only orders of these branches (empty: all)")

    @field_validator("base_url")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("variant_sku_pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        if "product" not in compiled.groupindex:
            raise ValueError("needs a group named product, e.g. ^(?P<product>\\d+)-")
        return value

    @field_validator("stock_split")
    @classmethod
    def _split(cls, value: dict[int, Decimal] | None) -> dict[int, Decimal] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("name at least one branch")
        if any(share <= 0 for share in value.values()):
            raise ValueError("every share must be above 0")
        return value

    @model_validator(mode="after")
    def _together(self) -> MplusKassaSettings:
        if self.variant_grouping == "sku_pattern" and not self.variant_sku_pattern:
            raise ValueError('variant_grouping = "sku_pattern" needs variant_sku_pattern')
        if self.stock_branch is not None and self.stock_split is not None:
            raise ValueError("set stock_branch or stock_split, not both")
        low, high = self.allocation_range
        if not 0 < low <= high:
            raise ValueError(f"allocation_range {low}..{high} must be positive and ascending")
        return self


# -- sources -----------------------------------------------------------------------------------


class ProductSource(Source[Product]):
    """Articles changed since a sync marker (``getProducts``), one canonical product per article."""

    connector: MplusKassaConnector
    field_map = {
        "sku": "articleNumber",
        "name": "description",
        "ean": "barcode",
        "description": "extraText",
        "price_incl_tax": "priceIncl (cents)",
        "price_excl_tax": "priceExcl (cents)",
        "tax_rate": "vatPercentage",
        "purchase_price": "purchasePrice (cents)",
        "unit": "unit",
        "active": "active",
        "parent_sku": "productNumber",
        "categories": "groupNumbers (names)",
    }

    async def changes(self, since: str | None) -> AsyncIterator[Change]:
        conn = self.connector
        groups = await conn.group_names() if conn.settings.categories else {}

        def body(marker: int | None, limit: int) -> dict[str, Any]:
            return {"request": {"pluNumbers": {}, "syncMarker": marker or 0, "syncMarkerLimit": limit}}

        async for products in conn.client.sync_pages(
            "getProducts",
            body,
            container="productList",
            item="product",
            since=marker_of(since),
            limit=conn.settings.page_size,
            what="products",
        ):
            for product in products:
                cursor = cursor_of(soap.to_int(product, "syncMarker") or 0)
                for article in soap.many(soap.one(product, "articleList"), "article"):
                    source_id = soap.text(article, "articleNumber") or "?"
                    yield self.mapped(source_id, cursor, functools.partial(conn.to_product, product, article, groups=groups))


class RelationSource(Source[Customer]):
    """Relations changed since a sync marker (``getRelations``)."""

    connector: MplusKassaConnector
    field_map = {"customer_number": "relationNumber", "name": "companyName or name", "email": "email", "phone": "telephone"}

    async def changes(self, since: str | None) -> AsyncIterator[Change]:
        conn = self.connector

        def body(marker: int | None, limit: int) -> dict[str, Any]:
            return {"request": {"syncMarker": marker or 0, "syncMarkerLimit": limit}}

        async for relations in conn.client.sync_pages(
            "getRelations",
            body,
            container="relationList",
            item="relation",
            since=marker_of(since),
            limit=conn.settings.page_size,
            what="relations",
        ):
            for relation in relations:
                source_id = soap.text(relation, "relationNumber") or "?"
                yield self.mapped(
                    source_id,
                    cursor_of(soap.to_int(relation, "syncMarker") or 0),
                    functools.partial(mapping.relation_to_customer, relation),
                )


class OrderSource(Source[Order]):
    """Till orders changed since a sync marker (``getOrders``), each with its relation."""

    connector: MplusKassaConnector
    field_map = {
        "number": "extOrderId or orderNumber (year-number)",
        "status": "cancelState/completeState/fullyPaid",
        "created_at": "entryTimestamp",
        "total": "totalInclAmount (cents)",
        "lines.*.sku": "lineList.line.articleNumber",
        "lines.*.quantity": "line.data.quantity/decimalPlaces",
        "lines.*.unit_price": "line.data.price (cents)",
        "paid": "fullyPaid",
        "payment_method": "paymentList.payment.method",
        "reference": "reference",
    }

    def changes(self, since: str | None) -> AsyncIterator[Change]:
        return till_order_source(self, since)


class StockSource(Source[StockLevel]):
    """Stock changed since a ``stockId`` (``getStock`` with ``stockId``), each changed article's
    stock summed over the configured branches (``stock_branch`` / ``stock_split``)."""

    connector: MplusKassaConnector
    field_map = {
        "sku": "articleNumber (pluNumber when allocated)",
        "on_hand": "amountFree",
        "reserved": "amountReserved",
        "available": "amountFree",
    }

    async def changes(self, since: str | None) -> AsyncIterator[Change]:
        conn = self.connector
        branches = conn.stock_branches()
        marker = marker_of(since) or 0
        request = {"branchNumber": branches[0], "articleNumbers": {}, "stockId": marker, "branchNumbers": {"branchNumber": branches}}
        answer = await conn.client.call("getStock", {"request": request}, what=f"stock changed after stockId {marker}")
        changed: dict[int, int] = {}
        for stock in soap.many(answer, "articleStocks"):
            number, stock_id = soap.to_int(stock, "articleNumber"), soap.to_int(stock, "stockId")
            if number is not None:
                changed[number] = max(changed.get(number, 0), stock_id or 0)
        ordered_numbers = sorted(changed, key=lambda n: (changed[n], n))
        for chunk in chunks(ordered_numbers, LOOKUP_CHUNK):
            skus = await conn.skus_of(chunk)
            full = {"branchNumber": branches[0], "articleNumbers": {"articleNumbers": chunk}, "branchNumbers": {"branchNumber": branches}}
            current = await conn.client.call("getStock", {"request": full}, what=f"stock of {len(chunk)} articles")
            stocks: dict[int, list[dict[str, Any]]] = {}
            for stock in soap.many(current, "articleStocks"):
                number = soap.to_int(stock, "articleNumber")
                if number is not None:
                    stocks.setdefault(number, []).append(stock)
            for number in chunk:
                sku = skus.get(number, str(number))
                yield self.mapped(
                    str(number),
                    cursor_of(changed[number]),
                    functools.partial(mapping.stock_level, sku, stocks.get(number, []), branches=branches),
                )


# -- sinks -------------------------------------------------------------------------------------

PRODUCT_WRITTEN = frozenset(
    {
        "name",
        "ean",
        "description",
        "price_incl_tax",
        "price_excl_tax",
        "tax_rate",
        "purchase_price",
        "unit",
        "active",
        "attributes",
        "categories",
    }
)


class ProductSink(Sink[Product]):
    """Articles by article number (the numeric SKU, or the number allocated to a non-numeric one);
    variants grouped into one product by the configured rule."""

    connector: MplusKassaConnector
    written_fields = PRODUCT_WRITTEN
    field_map = {
        "sku": "articleNumber (pluNumber when allocated)",
        "name": "description",
        "ean": "barcode",
        "description": "extraText",
        "price_incl_tax": "priceIncl (cents)",
        "price_excl_tax": "priceExcl (cents)",
        "tax_rate": "vatCode/vatPercentage",
        "purchase_price": "purchasePrice (cents)",
        "unit": "unit",
        "active": "active",
        "attributes": "colour, size, customFieldList",
        "categories": "product groupNumbers",
    }

    async def find(self, key: str) -> Found | None:
        return (await self.find_many([key])).get(key)

    async def find_many(self, keys: Sequence[str]) -> Mapping[str, Found]:
        conn = self.connector
        found: dict[str, Found] = {}
        groups = await conn.group_names() if conn.settings.categories else {}
        for sku, (product, article) in (await conn.articles_by_sku(keys)).items():
            number = soap.to_int(article, "articleNumber")
            found[sku] = Found(
                id=str(number),
                record=conn.to_product(product, article, sku=sku, groups=groups),
                vendor={"product": product, "article": article},
            )
        return found

    async def create(self, record: Product) -> str:
        return await self.connector.create_article(record)

    async def update(self, target_id: str, record: Product, fields: frozenset[str]) -> None:
        await self.connector.update_article(target_id, record, fields)

    def normalize(self, record: Product) -> Product:
        return self.connector.normalize_product(record)


class StockSink(Sink[StockLevel]):
    """The article's stock in the configured branch (``setStock``), or split over branches."""

    connector: MplusKassaConnector
    written_fields = frozenset({"available"})
    field_map = {"sku": "articleNumber", "available": "setStock amount (per branch)"}

    async def find(self, key: str) -> Found | None:
        return (await self.find_many([key])).get(key)

    async def find_many(self, keys: Sequence[str]) -> Mapping[str, Found]:
        conn = self.connector
        branches = conn.stock_branches()
        articles = await conn.articles_by_sku(keys)
        numbers = {soap.to_int(article, "articleNumber"): sku for sku, (_, article) in articles.items()}
        stocks: dict[int, list[dict[str, Any]]] = {}
        for chunk in chunks([n for n in numbers if n is not None], LOOKUP_CHUNK):
            answer = await conn.client.call(
                "getStock",
                {
                    "request": {
                        "branchNumber": branches[0],
                        "articleNumbers": {"articleNumbers": chunk},
                        "branchNumbers": {"branchNumber": branches},
                    }
                },
                what=f"stock of {len(chunk)} articles",
            )
            for stock in soap.many(answer, "articleStocks"):
                number = soap.to_int(stock, "articleNumber")
                if number is not None:
                    stocks.setdefault(number, []).append(stock)
        return {
            sku: Found(id=str(number), record=mapping.stock_level(sku, stocks.get(number, []), branches=branches))
            for number, sku in numbers.items()
            if number is not None
        }

    async def create(self, record: StockLevel) -> str:
        raise RecordError(f"no article for SKU {record.sku!r} in MplusKASSA; sync products first")

    async def update(self, target_id: str, record: StockLevel, fields: frozenset[str]) -> None:
        if not record.tracked or (fields and "available" not in fields):
            return
        await self.connector.set_stock(int(target_id), record)

    def normalize(self, record: StockLevel) -> StockLevel:
        available = max(record.available, Decimal(0))
        return record.model_copy(update={"available": available})


class RelationSink(Sink[Customer]):
    """Relations by e-mail (``findRelationV2`` with an exact match), else by relation number."""

    connector: MplusKassaConnector
    written_fields = frozenset(
        {"kind", "name", "email", "phone", "contact", "billing_address", "shipping_address", "vat_number", "coc_number"}
    )
    field_map = {
        "name": "name / companyName",
        "email": "email",
        "phone": "telephone",
        "contact": "contact",
        "billing_address": "address, zipcode, city, country",
        "shipping_address": "deliveryAddress, ...",
        "vat_number": "vatNumber",
        "coc_number": "commerceNumber",
    }

    async def find(self, key: str) -> Found | None:
        relation = await self.connector.relation_by_key(key)
        if relation is None:
            return None
        return Found(
            id=str(soap.to_int(relation, "relationNumber")), record=self.normalize(mapping.relation_to_customer(relation)), vendor=relation
        )

    async def create(self, record: Customer) -> str:
        relation = mapping.ordered(mapping.RELATION_FIELDS, mapping.customer_to_relation(record))
        what = f"relation {record.key()!r}"
        answer = await self.connector.client.call("createRelation", {"relation": relation}, what=what, record=True)
        result = soap.text(answer, "result")
        if result != "CREATE-RELATION-RESULT-OK":
            raise result_error(result, soap.text(answer, "errorMessage"), what)
        number = soap.to_int(answer, "relationNumber")
        if not number:
            raise FatalError(f"{what}: createRelation answered OK without a relationNumber")
        return str(number)

    async def update(self, target_id: str, record: Customer, fields: frozenset[str]) -> None:
        conn = self.connector
        what = f"relation {record.key()!r}"
        current = await conn.relation_by_number(int(target_id))
        if current is None:
            raise RecordError(f"{what}: relation {target_id} is no longer in MplusKASSA")
        merged = {k: v for k, v in current.items() if k in mapping.RELATION_FIELDS}
        merged.update({k: v for k, v in mapping.customer_to_relation(record).items() if v is not None or k in merged})
        merged["relationNumber"] = int(target_id)
        answer = await conn.client.call(
            "updateRelation", {"relation": mapping.ordered(mapping.RELATION_FIELDS, merged)}, what=what, record=True
        )
        result = soap.text(answer, "result")
        if result != "UPDATE-RELATION-RESULT-OK":
            raise result_error(result, soap.text(answer, "errorMessage"), what)

    def normalize(self, record: Customer) -> Customer:
        # what a relation holds: one street line, no house number apart, country as a code
        def flat(address: Any) -> Any:
            if address is None:
                return None
            return address.model_copy(
                update={"street": mapping._street(address), "house_number": "", "house_number_suffix": "", "line2": "", "region": ""}
            )

        contact = record.contact
        if contact is not None:
            first, last = mapping._split_name(contact.full_name)
            contact = contact.model_copy(update={"first_name": first, "last_name": last, "email": record.email, "phone": record.phone})
        if record.kind == "person":
            contact = None
        return record.model_copy(
            update={"billing_address": flat(record.billing_address), "shipping_address": flat(record.shipping_address), "contact": contact}
        )


# -- the connector -----------------------------------------------------------------------------


class MplusKassaConnector(Connector):
    """MplusKASSA through the MplusQapi (SOAP 1.1, document/literal).

    Reads products, relations and till orders by sync marker; writes products (articles, with
    variants grouped into one product and categories as article groups), stock per branch,
    relations and orders into the till (``createOrderV3`` with an ``idempotencyKey``).
    """

    name: ClassVar[str] = "mpluskassa"
    title: ClassVar[str] = "MplusKASSA"
    Settings: ClassVar[type[ConnectorSettings]] = MplusKassaSettings
    sources = {Entity.PRODUCTS: ProductSource, Entity.STOCK: StockSource, Entity.CUSTOMERS: RelationSource, Entity.ORDERS: OrderSource}
    sinks = {
        Entity.PRODUCTS: ProductSink,
        Entity.STOCK: StockSink,
        Entity.CUSTOMERS: RelationSink,
        Entity.ORDERS: TillOrderSink,
    }
    # MplusKASSA documents no rate limit: a ceiling of our own, well below what one till server
    # serves; the connection's max_concurrency bounds the calls in flight
    rate_limits = (RateLimit(1200, 60.0, name="conservative_default"),)
    default_port: ClassVar[int | None] = 8715

    settings: MplusKassaSettings

    def __init__(self, settings: ConnectorSettings, context: Any):
        super().__init__(settings, context)
        self._client: MplusClient | None = None
        self._groups: dict[int, str] | None = None
        self._vat: dict[int, int] | None = None
        self._pattern = re.compile(self.settings.variant_sku_pattern) if self.settings.variant_sku_pattern else None
        low, high = self.settings.allocation_range
        self.allocator = Allocator(context.tokens, low, high, self._numbers_free)

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        """Create the SOAP client (ident and secret go on every call's query)."""
        s = self.settings
        http = self.context.http_client(base_url=s.base_url, timeout=s.timeout)
        self._client = MplusClient(
            http, ident=s.ident, secret=s.secret.get_secret_value(), max_concurrency=s.max_concurrency, soap_action=s.soap_action
        )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def check(self) -> None:
        """``getApiVersion``: proves the address, the ident and the secret."""
        answer = await self.client.call("getApiVersion", {}, what="API version")
        if soap.to_int(answer, "majorNumber") is None:
            raise FatalError("getApiVersion answered without majorNumber")

    @property
    def client(self) -> MplusClient:
        """The SOAP client (made in :meth:`open`)."""
        if self._client is None:
            raise FatalError(f"connection {self.context.name!r}: used before open() or after aclose()")
        return self._client

    # -- configuration look-ups (cached for the connection's life) ----------------------

    async def group_names(self) -> dict[int, str]:
        """Article group number -> name (every level)."""
        if self._groups is None:
            answer = await self.client.call("getArticleGroups", {"request": {}}, what="article groups")
            groups: dict[int, str] = {}

            def walk(container: Any) -> None:
                for group in soap.many(container, "articleGroups"):
                    number = soap.to_int(group, "groupNumber")
                    if number is not None and not soap.to_bool(group, "isDeleted"):
                        groups[number] = soap.text(group, "name") or ""
                    walk(soap.one(group, "subGroupList"))

            walk(soap.one(answer, "articleGroupList"))
            self._groups = groups
        return self._groups

    async def group_numbers(self, names: Sequence[str], what: str) -> list[int]:
        """The article group numbers of category ``names``; a missing group is created."""
        groups = await self.group_names()
        by_name = {name.casefold(): number for number, name in groups.items()}
        numbers: list[int] = []
        for name in names:
            number = by_name.get(name.casefold())
            if number is None:
                request = {"parentGroupNumber": self.settings.category_parent_group, "name": name, "text": name}
                answer = await self.client.call(
                    "newArticleGroup", {"request": request}, what=f"{what}: article group {name!r}", record=True
                )
                result = soap.text(answer, "result")
                if result == "NEW-ARTICLE-GROUP-RESULT-PARENT-NOTFOUND":
                    raise FatalError(f"{what}: article group {self.settings.category_parent_group} (category_parent_group) does not exist")
                if result != "NEW-ARTICLE-GROUP-RESULT-OK":
                    raise result_error(result, None, f"{what}: article group {name!r}")
                number = soap.to_int(answer, "groupNumber")
                if number is None:
                    raise FatalError(f"{what}: newArticleGroup answered OK without a groupNumber")
                groups[number] = name
                by_name[name.casefold()] = number
            numbers.append(number)
        return numbers

    async def vat_code(self, rate: Decimal | None, what: str) -> int | None:
        """The VAT code of ``rate`` from ``getVatGroupList``; None when the till lists no VAT groups."""
        if rate is None:
            return None
        if self._vat is None:
            answer = await self.client.call("getVatGroupList", {}, what="VAT groups")
            vat: dict[int, int] = {}
            for group in soap.many(answer, "vatGroup"):
                code, percentage = soap.to_int(group, "vatCode"), soap.to_int(group, "vatPercentage")
                if code is not None and percentage is not None:
                    vat.setdefault(percentage, code)
            self._vat = vat
        if not self._vat:
            return None
        code = self._vat.get(int(rate))
        if code is None:
            raise RecordError(f"{what}: MplusKASSA has no VAT group of {rate}% (there are: {', '.join(map(str, sorted(self._vat)))})")
        return code

    # -- products ----------------------------------------------------------------------

    def to_product(
        self, product: Mapping[str, Any], article: Mapping[str, Any], *, sku: str | None = None, groups: Mapping[int, str] | None = None
    ) -> Product:
        """A vendor article as a canonical product, with this connection's attribute settings."""
        s = self.settings
        if sku is None:
            plu = (soap.text(article, "pluNumber") or "").strip()
            if s.allocate_article_numbers and plu and numeric(plu) is None:
                sku = plu  # an allocated number: the SKU is kept in pluNumber
        return mapping.article_to_product(
            product,
            article,
            sku=sku,
            currency=s.currency,
            groups=groups,
            colour_attribute=s.colour_attribute,
            size_attribute=s.size_attribute,
            features=s.feature_fields,
        )

    def normalize_product(self, record: Product) -> Product:
        """Prices in cents with both prices set when the rate is known, whole VAT percentages, only
        the attributes the article stores; RecordError for a SKU MplusKASSA cannot number."""
        s = self.settings
        if numeric(record.sku) is None and not s.allocate_article_numbers:
            raise RecordError(
                f"SKU {record.sku!r} is not numeric: MplusKASSA article numbers are numbers only "
                f"(set allocate_article_numbers = true on the connection to give it an allocated number)"
            )
        priced = any(p is not None for p in (record.price_incl_tax, record.price_excl_tax, record.purchase_price))
        if priced and record.currency != s.currency:
            raise RecordError(
                f"article {record.sku!r}: prices are in {record.currency}, the till's in {s.currency} (the connection's currency)"
            )
        if record.tax_rate is not None and record.tax_rate != record.tax_rate.to_integral_value():
            raise RecordError(f"article {record.sku!r}: VAT {record.tax_rate}% is not a whole percentage (MplusKASSA keeps whole ones)")
        cent = mapping.CENT
        incl = record.price_incl_tax.quantize(cent, ROUND_HALF_UP) if record.price_incl_tax is not None else None
        excl = record.price_excl_tax.quantize(cent, ROUND_HALF_UP) if record.price_excl_tax is not None else None
        if record.tax_rate is not None:
            factor = 1 + record.tax_rate / 100
            if incl is None and excl is not None:
                incl = (excl * factor).quantize(cent, ROUND_HALF_UP)
            elif excl is None and incl is not None:
                excl = (incl / factor).quantize(cent, ROUND_HALF_UP)
        kept: list[Attribute] = []
        wanted = [s.colour_attribute, s.size_attribute, *s.feature_fields]
        by_name = {a.name.casefold(): a for a in record.attributes}
        for name in wanted:
            attribute = by_name.get(name.casefold())
            if attribute is not None and attribute.value:
                kept.append(Attribute(name=name, value=attribute.value))
        return record.model_copy(
            update={
                "price_incl_tax": incl,
                "price_excl_tax": excl,
                "tax_rate": Decimal(int(record.tax_rate)) if record.tax_rate is not None else None,
                "purchase_price": record.purchase_price.quantize(cent, ROUND_HALF_UP) if record.purchase_price is not None else None,
                "attributes": tuple(kept),
                "categories": tuple(record.categories) if s.categories else (),
                "ean": record.ean or None,
                "description": record.description or None,
                "unit": record.unit or None,
                "currency": s.currency,
            }
        )

    def variant_group(self, record: Product) -> str | None:
        """The key of the product ``record`` is an article of (None: a product of its own)."""
        s = self.settings
        if s.variant_grouping == "parent_sku":
            return record.parent_sku or None
        if s.variant_grouping == "sku_pattern" and self._pattern is not None:
            match = self._pattern.search(record.sku)
            return match.group("product") if match and match.group("product") else None
        return None

    async def _numbers_free(self, kind: str, numbers: Sequence[int]) -> set[int]:
        """Which of ``numbers`` no article (``kind="article"``) or product has, in one ``getProducts``."""
        field = "articleNumbers" if kind == "article" else "productNumbers"
        request: dict[str, Any] = {"pluNumbers": {}}
        request = {"articleNumbers": list(numbers), **request} if kind == "article" else {**request, "productNumbers": list(numbers)}
        taken: set[int] = set()
        for product in await self._products(request, f"are {len(numbers)} {kind} numbers free ({field})"):
            if kind == "product":
                taken.add(soap.to_int(product, "productNumber") or 0)
            for article in soap.many(soap.one(product, "articleList"), "article"):
                taken.add(soap.to_int(article, "articleNumber") or 0)
        return set(numbers) - taken

    async def _products(self, request: dict[str, Any], what: str) -> list[dict[str, Any]]:
        answer = await self.client.call("getProducts", {"request": request}, what=what)
        return [p for p in soap.many(soap.one(answer, "productList"), "product") if isinstance(p, dict)]

    async def articles_by_sku(self, keys: Sequence[str]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
        """SKU -> (product, article) for the SKUs that exist: numeric ones by article number,
        others (with allocation on) by the pluNumber that keeps them."""
        wanted = list(dict.fromkeys(keys))
        by_number = {n: sku for sku in wanted if (n := numeric(sku)) is not None}
        by_plu = [sku for sku in wanted if numeric(sku) is None] if self.settings.allocate_article_numbers else []
        found: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        for chunk in chunks(list(by_number), LOOKUP_CHUNK):
            request = {"articleNumbers": chunk, "pluNumbers": {}, "includeAllArticlesOfSelectedProducts": True}
            for product in await self._products(request, f"{len(chunk)} articles by number"):
                for article in soap.many(soap.one(product, "articleList"), "article"):
                    sku = by_number.get(soap.to_int(article, "articleNumber") or -1)
                    if sku is not None:
                        found[sku] = (product, article)
        for plus in chunks(by_plu, LOOKUP_CHUNK):
            by_text = {"pluNumbers": {"text": [{"text": sku} for sku in plus]}, "includeAllArticlesOfSelectedProducts": True}
            for product in await self._products(by_text, f"{len(plus)} articles by pluNumber"):
                for article in soap.many(soap.one(product, "articleList"), "article"):
                    plu = soap.text(article, "pluNumber")
                    if plu is not None and plu in plus:  # exact matches only
                        found[plu] = (product, article)
        return found

    async def skus_of(self, numbers: Sequence[int]) -> dict[int, str]:
        """Article number -> SKU for articles whose SKU is not their number (allocated ones, kept
        in ``pluNumber``); empty without allocation."""
        if not self.settings.allocate_article_numbers or not numbers:
            return {}
        skus: dict[int, str] = {}
        request = {"articleNumbers": list(numbers), "pluNumbers": {}}
        for product in await self._products(request, f"SKUs of {len(numbers)} articles"):
            for article in soap.many(soap.one(product, "articleList"), "article"):
                number, plu = soap.to_int(article, "articleNumber"), (soap.text(article, "pluNumber") or "").strip()
                if number is not None and plu and numeric(plu) is None:
                    skus[number] = plu
        return skus

    async def product_by_number(self, number: int, what: str) -> dict[str, Any] | None:
        """The product with ``number`` and its articles, or None."""
        for product in await self._products({"pluNumbers": {}, "productNumbers": [number]}, what):
            if soap.to_int(product, "productNumber") == number:
                return product
        return None

    def _article_body(self, record: Product, number: int, allocated: bool, vat_code: int | None) -> dict[str, Any]:
        s = self.settings
        fields = mapping.article_fields(
            record, vat_code=vat_code, colour_attribute=s.colour_attribute, size_attribute=s.size_attribute, features=s.feature_fields
        )
        fields["articleNumber"] = number
        if allocated:
            fields["pluNumber"] = record.sku
        return mapping.ordered(mapping.ARTICLE_FIELDS, fields)

    @staticmethod
    def _rewritten(product: Mapping[str, Any], articles: list[dict[str, Any]], groups: list[int] | None) -> dict[str, Any]:
        body = {k: v for k, v in product.items() if k in mapping.PRODUCT_FIELDS}
        body["articleList"] = {"article": articles}
        if groups is not None:
            body["groupNumbers"] = groups
        return mapping.ordered(mapping.PRODUCT_FIELDS, body)

    async def create_article(self, record: Product) -> str:
        """Create ``record``'s article (and its product, or add it to its variant group's product)."""
        what = f"article {record.sku!r}"
        number = numeric(record.sku)
        allocated = number is None
        vat_code = await self.vat_code(record.tax_rate, what)
        groups = await self.group_numbers(record.categories, what) if self.settings.categories and record.categories else None
        group = self.variant_group(record)
        for _ in range(5):
            if allocated:
                number = await self.allocator.article_number(record.sku)
                self.context.log.info("mpluskassa_article_number_allocated", sku=record.sku, article_number=number)
            assert number is not None
            article = self._article_body(record, number, allocated, vat_code)
            if group is None:
                product = mapping.ordered(
                    mapping.PRODUCT_FIELDS, {"description": record.name, "articleList": {"article": [article]}, "groupNumbers": groups}
                )
                answer = await self.client.call("createProduct", {"product": product}, what=what, record=True)
                result = soap.text(answer, "result")
                ok = result == "CREATE-PRODUCT-RESULT-OK"
            else:
                product_number = await self._group_product_number(group, what)
                existing = await self.product_by_number(product_number, f"{what}: product {product_number} of group {group!r}")
                if existing is None:
                    product = mapping.ordered(
                        mapping.PRODUCT_FIELDS,
                        {
                            "productNumber": product_number,
                            "description": record.name,
                            "articleList": {"article": [article]},
                            "groupNumbers": groups,
                        },
                    )
                    answer = await self.client.call("createProduct", {"product": product}, what=what, record=True)
                    result = soap.text(answer, "result")
                    ok = result == "CREATE-PRODUCT-RESULT-OK"
                else:
                    kept = [mapping.ordered(mapping.ARTICLE_FIELDS, a) for a in soap.many(soap.one(existing, "articleList"), "article")]
                    body = self._rewritten(existing, [*kept, article], groups)
                    answer = await self.client.call("updateProduct", {"product": body}, what=what, record=True)
                    result = soap.text(answer, "result")
                    ok = result == "UPDATE-PRODUCT-RESULT-OK"
            if ok:
                return str(number)
            if result and result.endswith("ARTICLE-NUMBER-ALREADY-TAKEN") and allocated:
                continue  # taken since we asked: the next allocated number
            raise result_error(result, soap.text(answer, "errorMessage"), what)
        raise RecordError(f"{what}: five allocated article numbers in a row were taken while creating it")

    async def _group_product_number(self, group: str, what: str) -> int:
        """The product number of variant group ``group``, kept per group in the connection's store.

        A numeric key is the product number when MplusKASSA has no product of that number (the
        till numbers its own products too) and no other group claimed it; else, with allocation
        on, the group gets an allocated number (logged), and without it the record fails naming
        the product in the way. Never a product of the till's own, never a second number."""
        preferred = numeric(group)
        allocate = self.settings.allocate_article_numbers
        number = await self.allocator.product_number(group, preferred=preferred, allocate=allocate)
        if number is None:
            if preferred is None:
                raise RecordError(
                    f"{what}: variant group {group!r} is not numeric: MplusKASSA product numbers are numbers only "
                    "(set allocate_article_numbers = true to allocate one)"
                )
            raise RecordError(
                f"{what}: variant group {group!r}: product number {preferred} is already another product's in MplusKASSA "
                "(set allocate_article_numbers = true to give the group a free number instead)"
            )
        if preferred is not None and number != preferred:
            self.context.log.info("mpluskassa_group_number_allocated", group=group, product_number=number, reason="number taken")
        return number

    async def update_article(self, target_id: str, record: Product, fields: frozenset[str]) -> None:
        """Write ``fields`` of ``record`` to article ``target_id``, the product's other articles as they are."""
        what = f"article {record.sku!r}"
        number = int(target_id)
        products = await self._products({"articleNumbers": [number], "pluNumbers": {}, "includeAllArticlesOfSelectedProducts": True}, what)
        product = next(
            (
                p
                for p in products
                if any(soap.to_int(a, "articleNumber") == number for a in soap.many(soap.one(p, "articleList"), "article"))
            ),
            None,
        )
        if product is None:
            raise RecordError(f"{what}: article {number} is no longer in MplusKASSA")
        s = self.settings
        vat_code = await self.vat_code(record.tax_rate, what) if "tax_rate" in fields else None
        new = mapping.article_fields(
            record, vat_code=vat_code, colour_attribute=s.colour_attribute, size_attribute=s.size_attribute, features=s.feature_fields
        )
        by_canonical = {
            "name": ("description",),
            "ean": ("barcode",),
            "description": ("extraText",),
            "price_incl_tax": ("priceIncl",),
            "price_excl_tax": ("priceExcl",),
            "tax_rate": ("vatCode", "vatPercentage"),
            "purchase_price": ("purchasePrice",),
            "unit": ("unit",),
            "active": ("active",),
            "attributes": ("colour", "size", "customFieldList"),
        }
        articles: list[dict[str, Any]] = []
        for article in soap.many(soap.one(product, "articleList"), "article"):
            current = {k: v for k, v in article.items() if k in mapping.ARTICLE_FIELDS}
            if soap.to_int(article, "articleNumber") == number:
                for field in fields & set(by_canonical):
                    for vendor_field in by_canonical[field]:
                        if new.get(vendor_field) is not None:
                            current[vendor_field] = new[vendor_field]
                        else:
                            current.pop(vendor_field, None)
            articles.append(mapping.ordered(mapping.ARTICLE_FIELDS, current))
        groups = None
        if "categories" in fields and s.categories:
            groups = await self.group_numbers(record.categories, what)
        answer = await self.client.call("updateProduct", {"product": self._rewritten(product, articles, groups)}, what=what, record=True)
        result = soap.text(answer, "result")
        if result != "UPDATE-PRODUCT-RESULT-OK":
            raise result_error(result, soap.text(answer, "errorMessage"), what)

    # -- stock -------------------------------------------------------------------------

    def stock_branches(self) -> list[int]:
        """The branches stock is written to and read from; FatalError when none is configured."""
        s = self.settings
        if s.stock_split:
            return list(s.stock_split)
        if s.stock_branch is not None:
            return [s.stock_branch]
        raise FatalError("the connection has neither stock_branch nor stock_split: MplusKASSA keeps stock per branch")

    def stock_amounts(self, available: Decimal) -> dict[int, Decimal]:
        """``available`` per branch: all to ``stock_branch``, or split by the shares of
        ``stock_split`` in whole units, the remainder to the first branch."""
        s = self.settings
        if not s.stock_split:
            return {self.stock_branches()[0]: available}
        total = sum(s.stock_split.values())
        amounts = {b: (available * share / total).quantize(Decimal(1), ROUND_FLOOR) for b, share in s.stock_split.items()}
        first = next(iter(amounts))
        amounts[first] += available - sum(amounts.values())
        return amounts

    async def set_stock(self, article_number: int, record: StockLevel) -> None:
        """``setStock`` per branch (absolute: a retry writes the same amount again)."""
        what = f"stock of article {record.sku!r}"
        for branch, amount in self.stock_amounts(record.available).items():
            value, places = mapping.quantity(amount)
            request: dict[str, Any] = {"branchNumber": branch, "articleNumber": article_number, "amount": value, "decimalPlaces": places}
            if self.settings.stock_employee_number is not None:
                request["employeeNumber"] = self.settings.stock_employee_number
            request["reference"] = "apicenterd"
            answer = await self.client.call("setStock", {"request": request}, what=f"{what} in branch {branch}", record=True)
            result = soap.text(answer, "result")
            if result == "SET-STOCK-RESULT-BRANCH-NOT-FOUND":
                raise FatalError(f"{what}: branch {branch} does not exist in MplusKASSA (stock_branch / stock_split)")
            if result == "SET-STOCK-RESULT-NO-STOCK-ARTICLE":
                raise RecordError(f"{what}: article {article_number} is not a stock article in MplusKASSA")
            if result != "SET-STOCK-RESULT-OK":
                raise result_error(result, None, f"{what} in branch {branch}")

    # -- relations ---------------------------------------------------------------------

    async def relation_by_number(self, number: int) -> dict[str, Any] | None:
        """The relation with ``number``, or None."""
        answer = await self.client.call("getRelations", {"request": {"relationNumbers": [number]}}, what=f"relation {number}")
        for relation in soap.many(soap.one(answer, "relationList"), "relation"):
            if soap.to_int(relation, "relationNumber") == number:
                return dict(relation)
        return None

    async def relation_by_key(self, key: str) -> dict[str, Any] | None:
        """The relation with e-mail ``key`` (exact, case-insensitive), else relation number ``key``."""
        if "@" in key:
            request = {"relation": {"email": key}, "exactMatch": True}
            answer = await self.client.call("findRelationV2", {"request": request}, what=f"relation {key!r}")
            relation = soap.one(answer, "relation")
            ok = soap.text(answer, "result") == "FIND-RELATION-RESULT-OK" and isinstance(relation, dict)
            if ok and (soap.text(relation, "email") or "").strip().lower() == key.strip().lower():
                return dict(relation)
            return None
        number = numeric(key)
        return await self.relation_by_number(number) if number is not None else None

    # -- demo / tests ----------------------------------------------------------------

    @classmethod
    def simulator(cls, *, seed: int = 1, records: int = 0, **options: Any) -> Any:
        """An in-memory MplusQapi (see :mod:`apicenterd_mpluskassa.simulator`)."""
        from .simulator import create_app

        return create_app(seed=seed, records=records, **options)

    @classmethod
    def demo_settings(cls, base_url: str) -> dict[str, Any]:
        """Settings the simulator at ``base_url`` accepts."""
        from .simulator import DEMO_IDENT, DEMO_SECRET

        return {"base_url": base_url, "ident": DEMO_IDENT, "secret": DEMO_SECRET, "stock_branch": 1}
