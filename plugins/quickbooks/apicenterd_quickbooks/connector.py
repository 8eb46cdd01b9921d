"""The QuickBooks Online connector: items (products and stock), customers, invoices, sales receipts and estimates."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from apicenterd import (
    Change,
    Connector,
    ConnectorSettings,
    Customer,
    DocumentRequest,
    DocumentSink,
    Entity,
    FatalError,
    Found,
    OAuth2RefreshAuth,
    Order,
    Product,
    RateLimit,
    RecordError,
    Sink,
    Source,
    StockLevel,
    WebhookEvent,
    WebhookRejected,
    WebhookRequest,
)

from . import mapping
from .client import (
    BATCH_MAX,
    DUPLICATE_DOC_NUMBER_CODE,
    DUPLICATE_NAME_CODE,
    STALE_CODE,
    QBOClient,
    QBOError,
    StaleObject,
    query_string,
    verify_webhook,
)

__all__ = ["QuickBooksConnector", "QuickBooksSettings", "OrderSettings"]

PRODUCTION_URL = "https://quickbooks.api.intuit.com"
SANDBOX_URL = "https://sandbox-quickbooks.api.intuit.com"
TOKEN_URL = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"  # noqa: S105 - a URL, not a secret
AUTHORIZE_URL = "https://appcenter.intuit.com/connect/oauth2"
DEFAULT_MINORVERSION = 75
CDC_WINDOW = timedelta(days=30)
FULL_READ = "full-read"
"""The cursor of the stock source, which reads every item every run (it trusts no cursor)."""
CDC_MAX = 1000
"""Objects per entity a cdc answer holds at most [unverified: Intuit's CDC page says 1,000]."""


class QuickBooksSettings(ConnectorSettings):
    """Connection settings of a QuickBooks Online company (realm)."""

    environment: Literal["production", "sandbox"] = Field(default="production", description="Which Intuit API base URL to use")
    base_url: str = Field(default="", description="API root; unset: the environment's (production or sandbox)")
    realm_id: str = Field(min_length=1, pattern=r"^\d+$", description="The company id (realmId from the OAuth callback)")
    token_url: str = Field(default=TOKEN_URL, description="OAuth2 token endpoint (from Intuit's discovery document)")
    authorize_url: str | None = Field(default=None, description="OAuth2 consent page; unset: Intuit's")
    client_id: str = Field(min_length=1, description="OAuth2 client id of the Intuit app")
    client_secret: SecretStr = Field(description="OAuth2 client secret of the Intuit app")
    refresh_token: SecretStr | None = Field(
        default=None, description="Bootstraps an empty token store; rotated tokens are kept in the state store"
    )
    scopes: list[str] | None = Field(default=None, description="Scopes; unset: com.intuit.quickbooks.accounting")
    minorversion: int = Field(default=DEFAULT_MINORVERSION, ge=1, le=999, description="minorversion query parameter on every call")
    concurrency: int = Field(default=10, ge=1, le=10, description="Requests in flight at most (Intuit: 10 per realm and app)")
    page_size: int = Field(default=1000, ge=1, le=1000, description="MAXRESULTS of query pages")
    income_account_id: str | None = Field(default=None, description="IncomeAccountRef of new items (required by QuickBooks for new items)")
    expense_account_id: str | None = Field(default=None, description="ExpenseAccountRef of new inventory items")
    asset_account_id: str | None = Field(default=None, description="AssetAccountRef of new inventory items")
    inventory_items: bool = Field(default=False, description="New items are Inventory (TrackQtyOnHand) instead of NonInventory")
    group_fields: list[str] | dict[str, str] = Field(
        default_factory=list,
        description="Item fields exposed as product attributes: a list (the attribute is named as the field) or "
        'a table attribute name -> item field path, e.g. { colour = "PurchaseDesc" }',
    )
    tax_rates: dict[str, Decimal] = Field(
        default_factory=dict,
        description="SalesTaxCodeRef id -> VAT percentage of items read (QuickBooks items carry a tax code, not a rate)",
    )
    default_tax_rate: Decimal | None = Field(default=None, ge=0, le=100, description="VAT percentage of items without a mapped tax code")
    skip_parent_items: bool = Field(
        default=False,
        description="Do not read an item that is the parent of sub-items as a product of its own (it is their group)",
    )
    currency: str = Field(default="USD", min_length=3, max_length=3, description="The company's home currency")
    webhook_verifier_token: SecretStr | None = Field(
        default=None, description="The app's webhook verifier token (signs intuit-signature); unset: webhooks are refused"
    )

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:  # overrides the required-URL check: empty means "by environment"
        return value.rstrip("/") if value else ""

    @field_validator("group_fields")
    @classmethod
    def _group_fields(cls, value: list[str] | dict[str, str]) -> list[str] | dict[str, str]:
        pairs = value.items() if isinstance(value, dict) else ((f, f) for f in value)
        for name, path in pairs:
            if not name.strip() or not path.strip() or any(not part for part in path.split(".")):
                raise ValueError(f"attribute {name!r} -> item field {path!r}: both must be non-empty (a field path like ParentRef.name)")
        return value

    def attribute_fields(self) -> tuple[tuple[str, str], ...]:
        """(attribute name, item field path) pairs of ``group_fields``."""
        if isinstance(self.group_fields, dict):
            return tuple(self.group_fields.items())
        return tuple((f, f) for f in self.group_fields)

    def api_url(self) -> str:
        return self.base_url or (SANDBOX_URL if self.environment == "sandbox" else PRODUCTION_URL)


def _per_realm(request: httpx.Request) -> str | None:
    return "/".join(request.url.path.split("/")[:4])


def _batches(request: httpx.Request) -> str | None:
    return "batch" if request.url.path.endswith("/batch") else None


class ItemSource(Source[Product]):
    """Items changed since a ``MetaData.LastUpdatedTime`` cursor (query ordered by that time, active and inactive)."""

    connector: QuickBooksConnector
    field_map = {k: ", ".join(v) for k, v in mapping.PRODUCT_FIELDS.items()}

    async def changes(self, since: str | None) -> AsyncIterator[Change]:
        conn = self.connector
        where = "Active IN (true, false)"
        if since:
            where += f" AND MetaData.LastUpdatedTime >= {query_string(since)}"
        statement = f"SELECT * FROM Item WHERE {where} ORDERBY MetaData.LastUpdatedTime"  # noqa: S608 - literals via query_string()
        cursor = since
        categories = await conn.categories()
        parents = await conn.parent_items() if conn.settings.skip_parent_items else set()
        async for items in conn.client.query(statement, entity="Item", what="items", page_size=conn.settings.page_size):
            for item in items:
                if item.get("Type") == "Category":
                    continue  # a category is not a product: it is the products' category
                if str(item.get("Id")) in parents:
                    continue  # the group of its sub-items (skip_parent_items), not an article
                try:
                    cursor = max(cursor or "", mapping.cursor_of(item))
                except ValueError as exc:
                    conn.context.log.warning("quickbooks_bad_last_updated", id=item.get("Id"), error=str(exc))
                yield self.mapped(
                    str(item.get("Id")),
                    cursor,
                    functools.partial(
                        mapping.item_to_product,
                        item,
                        currency=conn.settings.currency,
                        group_fields=conn.settings.attribute_fields(),
                        tax_rates=conn.settings.tax_rates,
                        default_tax_rate=conn.settings.default_tax_rate,
                        categories=categories,
                    ),
                )


def _cursor_or(item: dict[str, Any], default: str) -> str:
    try:
        return mapping.cursor_of(item)
    except ValueError:
        return default


class CustomerSource(Source[Customer]):
    """Customers changed since a cursor: ``cdc`` within its 30-day window, else a full query."""

    connector: QuickBooksConnector
    field_map = {k: ", ".join(v) for k, v in mapping.CUSTOMER_FIELDS.items()}

    async def changes(self, since: str | None) -> AsyncIterator[Change]:
        conn = self.connector
        if since and datetime.fromisoformat(since.replace("Z", "+00:00")) > conn.now() - CDC_WINDOW + timedelta(hours=1):
            changed = await conn.client.cdc(["Customer"], since, what=f"customers changed since {since}")
            if len(changed["Customer"]) >= CDC_MAX:  # cdc answers at most 1,000 objects: the rest by query
                async for change in self._query(since, f" AND MetaData.LastUpdatedTime >= {query_string(since)}"):
                    yield change
                return
            items = sorted(changed["Customer"], key=lambda c: _cursor_or(c, since))
            for item in items:
                if item.get("status") == "Deleted":
                    continue  # nothing to write for a deleted customer (the core has no deletes)
                yield self.mapped(
                    str(item.get("Id")), max(since, _cursor_or(item, since)), functools.partial(mapping.api_to_customer, item)
                )
            return
        async for change in self._query(since, ""):
            yield change

    async def _query(self, since: str | None, condition: str) -> AsyncIterator[Change]:
        conn = self.connector
        statement = f"SELECT * FROM Customer WHERE Active IN (true, false){condition} ORDERBY MetaData.LastUpdatedTime"  # noqa: S608
        cursor = since
        async for items in conn.client.query(statement, entity="Customer", what="customers", page_size=conn.settings.page_size):
            for item in items:
                cursor = max(cursor or "", _cursor_or(item, cursor or ""))
                yield self.mapped(str(item.get("Id")), cursor, functools.partial(mapping.api_to_customer, item))


class StockSource(Source[StockLevel]):
    """Stock of every item, read in full each run: ``QtyOnHand`` on hand, ``QtyOnSalesOrder``
    reserved, ``TrackQtyOnHand`` whether the item's stock is managed at all. QuickBooks changes
    quantities through transactions, and whether that moves the item's ``LastUpdatedTime`` is not
    documented, so no cursor is trusted (one query per 1,000 items; the daemon writes only what
    differs from the target)."""

    connector: QuickBooksConnector
    field_map = {"sku": "Sku (else Name)", "on_hand": "QtyOnHand", "reserved": "QtyOnSalesOrder", "tracked": "TrackQtyOnHand"}

    async def changes(self, since: str | None) -> AsyncIterator[Change]:
        conn = self.connector
        statement = "SELECT * FROM Item WHERE Active IN (true, false) ORDERBY Id"
        async for items in conn.client.query(statement, entity="Item", what="item stock", page_size=conn.settings.page_size):
            for item in items:
                if item.get("Type") not in ("Inventory", "NonInventory", "Service", None):
                    continue  # categories and groups hold no stock
                yield self.mapped(str(item.get("Id")), FULL_READ, functools.partial(mapping.item_to_stock, item))


class ItemSink(Sink[Product]):
    """Items by ``Sku``; updates are sparse with the current ``SyncToken``."""

    connector: QuickBooksConnector
    written_fields = frozenset(mapping.PRODUCT_FIELDS)
    field_map = {k: ", ".join(v) for k, v in mapping.PRODUCT_FIELDS.items()}

    def _found(self, item: dict[str, Any]) -> Found:
        conn = self.connector
        return Found(id=str(item["Id"]), record=mapping.item_to_product(item, currency=conn.settings.currency), vendor=item)

    async def find(self, key: str) -> Found | None:
        item = (await self.connector.items_by_sku([key])).get(key)
        return None if item is None else self._found(item)

    async def find_many(self, keys: Sequence[str]) -> Mapping[str, Found]:
        return {sku: self._found(item) for sku, item in (await self.connector.items_by_sku(keys)).items()}

    async def create(self, record: Product) -> str:
        return await self.connector.create_item(record)

    async def create_many(self, records: Sequence[Product]) -> Sequence[str | RecordError]:
        """The batch's new items through the ``batch`` endpoint, 30 per call; an item whose
        operation faulted fails alone (a duplicate name, 6240, is looked up as :meth:`create` does)."""
        conn = self.connector
        bodies: list[dict[str, Any] | RecordError] = []
        for record in records:
            try:
                bodies.append(conn.item_body(record))
            except RecordError as exc:
                bodies.append(exc)
        writes = [(str(n), "create", body) for n, body in enumerate(bodies) if isinstance(body, dict)]
        answers = await conn.batch_write("Item", writes, what=f"{len(writes)} items") if writes else {}
        results: list[str | RecordError] = []
        for n, (record, body) in enumerate(zip(records, bodies, strict=True)):
            if isinstance(body, RecordError):
                results.append(body)
                continue
            answer = answers[str(n)]
            if isinstance(answer, QBOError) and answer.fault is not None and DUPLICATE_NAME_CODE in answer.fault.codes:
                try:
                    answer = await conn.item_by_duplicate_name(record, body["Name"])
                except RecordError as exc:
                    answer = exc
            results.append(answer)
        return results

    async def update(self, target_id: str, record: Product, fields: frozenset[str]) -> None:
        await self.connector.sparse_update("Item", target_id, mapping.item_fields(record, fields), what=f"item {record.sku!r}")

    async def update_many(self, updates: Sequence[tuple[str, Product, frozenset[str]]]) -> Sequence[RecordError | None]:
        """The batch's changed items: SyncTokens read 30 a query, sparse updates sent 30 a batch call."""
        return await self.connector.sparse_update_many(
            "Item", [(target_id, mapping.item_fields(r, fields), f"item {r.sku!r}") for target_id, r, fields in updates]
        )

    def normalize(self, record: Product) -> Product:
        mapping.check_name(record.name, f"item {record.sku!r} Name")
        cents = Decimal("0.01")
        excl = record.price_excl_tax
        if excl is None and record.price_incl_tax is not None and record.tax_rate is not None:
            excl = record.price_incl_tax / (1 + record.tax_rate / 100)  # QuickBooks item prices are net
        return record.model_copy(
            update={
                "price_excl_tax": excl.quantize(cents) if excl is not None else None,
                "purchase_price": record.purchase_price.quantize(cents) if record.purchase_price is not None else None,
                "description": record.description or None,
            }
        )


class StockSink(Sink[StockLevel]):
    """``QtyOnHand`` of an inventory item (``TrackQtyOnHand``); stock is changed by updating the Item."""

    connector: QuickBooksConnector
    written_fields = frozenset({"available"})
    field_map = {"sku": "Sku", "available": "QtyOnHand"}

    async def find(self, key: str) -> Found | None:
        item = (await self.connector.items_by_sku([key])).get(key)
        return None if item is None else Found(id=str(item["Id"]), record=mapping.item_to_stock(item), vendor=item)

    async def find_many(self, keys: Sequence[str]) -> Mapping[str, Found]:
        items = await self.connector.items_by_sku(keys)
        return {sku: Found(id=str(i["Id"]), record=mapping.item_to_stock(i), vendor=i) for sku, i in items.items()}

    async def create(self, record: StockLevel) -> str:
        raise RecordError(f"no item with Sku {record.sku!r} in QuickBooks; sync products first")

    async def update(self, target_id: str, record: StockLevel, fields: frozenset[str]) -> None:
        if not record.tracked:
            return
        await self.connector.sparse_update(
            "Item", target_id, {"QtyOnHand": record.available}, what=f"stock of item {record.sku!r}", require_tracked=True
        )

    async def update_many(self, updates: Sequence[tuple[str, StockLevel, frozenset[str]]]) -> Sequence[RecordError | None]:
        """The batch's changed quantities: SyncTokens read 30 items a query, sparse ``QtyOnHand``
        updates sent 30 a batch call (a stale token read again and retried once)."""
        return await self.connector.sparse_update_many(
            "Item",
            [(tid, {"QtyOnHand": r.available} if r.tracked else {}, f"stock of item {r.sku!r}") for tid, r, _ in updates],
            require_tracked=True,
        )

    def normalize(self, record: StockLevel) -> StockLevel:
        return record.model_copy(update={"reserved": Decimal(0), "on_hand": record.available, "location": None})


class CustomerSink(Sink[Customer]):
    """Customers by ``PrimaryEmailAddr``; a duplicate ``DisplayName`` (6240) is looked up, not failed."""

    connector: QuickBooksConnector
    written_fields = frozenset(mapping.CUSTOMER_FIELDS)
    field_map = {k: ", ".join(v) for k, v in mapping.CUSTOMER_FIELDS.items()}

    async def find(self, key: str) -> Found | None:
        customer = await self.connector.customer_by_key(key)
        return None if customer is None else Found(id=str(customer["Id"]), record=mapping.api_to_customer(customer), vendor=customer)

    async def find_many(self, keys: Sequence[str]) -> Mapping[str, Found]:
        found: dict[str, Found] = {}
        for key, customer in (await self.connector.customers_by_keys(keys)).items():
            found[key] = Found(id=str(customer["Id"]), record=mapping.api_to_customer(customer), vendor=customer)
        return found

    async def create_many(self, records: Sequence[Customer]) -> Sequence[str | RecordError]:
        """The batch's new customers through the ``batch`` endpoint, 30 per call; one whose
        operation faulted fails alone (a duplicate DisplayName, 6240, is looked up and linked)."""
        conn = self.connector
        bodies: list[dict[str, Any] | RecordError] = []
        for record in records:
            try:
                bodies.append(mapping.customer_fields(record, None))
            except RecordError as exc:
                bodies.append(exc)
        writes = [(str(n), "create", body) for n, body in enumerate(bodies) if isinstance(body, dict)]
        answers = await conn.batch_write("Customer", writes, what=f"{len(writes)} customers") if writes else {}
        results: list[str | RecordError] = []
        for n, (record, body) in enumerate(zip(records, bodies, strict=True)):
            if isinstance(body, RecordError):
                results.append(body)
                continue
            answer = answers[str(n)]
            if isinstance(answer, QBOError) and answer.fault is not None and DUPLICATE_NAME_CODE in answer.fault.codes:
                what = f"customer {record.key()!r}"
                existing = await conn.first("Customer", f"DisplayName = {query_string(body['DisplayName'])}", what=what)
                if existing is not None:
                    conn.context.log.info("quickbooks_duplicate_name_linked", display_name=body["DisplayName"], id=existing["Id"])
                    answer = str(existing["Id"])
            results.append(answer)
        return results

    async def create(self, record: Customer) -> str:
        conn = self.connector
        body = mapping.customer_fields(record, None)
        try:
            answer = await conn.client.request("POST", "customer", what=f"customer {record.key()!r}", body=body)
        except QBOError as exc:
            if exc.fault is None or DUPLICATE_NAME_CODE not in exc.fault.codes:
                raise
            existing = await conn.first("Customer", f"DisplayName = {query_string(body['DisplayName'])}", what=f"customer {record.key()!r}")
            if existing is None:
                raise
            conn.context.log.info("quickbooks_duplicate_name_linked", display_name=body["DisplayName"], id=existing["Id"])
            return str(existing["Id"])
        return _id_of(answer, "Customer", f"customer {record.key()!r}")

    async def update(self, target_id: str, record: Customer, fields: frozenset[str]) -> None:
        await self.connector.sparse_update(
            "Customer", target_id, mapping.customer_fields(record, fields), what=f"customer {record.key()!r}"
        )

    async def update_many(self, updates: Sequence[tuple[str, Customer, frozenset[str]]]) -> Sequence[RecordError | None]:
        """The batch's changed customers: SyncTokens read 30 a query, sparse updates sent 30 a batch call."""
        return await self.connector.sparse_update_many(
            "Customer", [(tid, mapping.customer_fields(r, fields), f"customer {r.key()!r}") for tid, r, fields in updates]
        )

    def normalize(self, record: Customer) -> Customer:
        return mapping.normalize_customer(record)


class OrderSettings(BaseModel):
    """``target_settings`` of an order flow into QuickBooks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    paid_as: Literal["invoice", "sales_receipt"] = Field(
        default="sales_receipt", description="What a paid order becomes (an unpaid one is always an Invoice)"
    )
    shipping_item_id: str | None = Field(default=None, description="Item for shipping lines; unset: QuickBooks' SHIPPING_ITEM_ID line")
    payment_methods: dict[str, str] = Field(default_factory=dict, description="payment_method → PaymentMethodRef id")
    payment_terms: dict[str, str] = Field(default_factory=dict, description="payment_terms → SalesTermRef id")
    deposit_account_id: str | None = Field(default=None, description="DepositToAccountRef of sales receipts")
    text_item_id: str | None = Field(default=None, description="Item for lines without SKU (QuickBooks lines need an item)")
    ship_methods: dict[str, str] = Field(
        default_factory=dict, description="The order's shipping method (custom field ship_method_field) -> ShipMethodRef"
    )
    ship_method_field: str = Field(
        default="delivery_method", min_length=1, description="The order custom field holding its shipping method"
    )


class OrderSink(DocumentSink[Order]):
    """An order as an ``Invoice`` or ``SalesReceipt`` (paid, as ``paid_as`` says), or an ``Estimate``
    (kind ``quote``); its number is the ``DocNumber``, which :meth:`find` searches in all three."""

    connector: QuickBooksConnector
    documents = frozenset({"quote", "order", "invoice"})
    settings = OrderSettings
    written_fields = frozenset({"number", "lines", "customer_id", "created_at", "total"})
    field_map = {
        "number": "DocNumber",
        "customer_id": "CustomerRef",
        "created_at": "TxnDate",
        "lines.*.sku": "Line[].SalesItemLineDetail.ItemRef (by Sku)",
        "lines.*.quantity": "Line[].SalesItemLineDetail.Qty",
        "lines.*.unit_price": "Line[].SalesItemLineDetail.UnitPrice",
        "lines.*.tax_code": "Line[].SalesItemLineDetail.TaxCodeRef",
        "lines.*.account": "Line[].SalesItemLineDetail.ItemAccountRef",
        "payment_method": "PaymentMethodRef (sales receipts)",
        "payment_terms": "SalesTermRef (invoices)",
    }

    async def find(self, number: str) -> Found | None:
        conn = self.connector
        for entity in ("Invoice", "SalesReceipt", "Estimate"):
            found = await conn.first(entity, f"DocNumber = {query_string(number[:21])}", what=f"{entity} {number!r}")
            if found is not None:
                return Found(id=f"{entity}:{found['Id']}", record=None, vendor=found)
        return None

    async def find_many(self, numbers: Sequence[str]) -> Mapping[str, Found]:
        """The documents of many numbers: per document type one query of 30 numbers
        (``DocNumber IN (...)``), the types in :meth:`find`'s order (the first found wins)."""
        conn = self.connector
        by_doc: dict[str, list[str]] = {}
        for number in dict.fromkeys(numbers):
            by_doc.setdefault(number[:21], []).append(number)
        found: dict[str, Found] = {}
        for entity in ("Invoice", "SalesReceipt", "Estimate"):
            wanted = [doc for doc, keys in by_doc.items() if any(k not in found for k in keys)]
            for start in range(0, len(wanted), BATCH_MAX):
                chunk = wanted[start : start + BATCH_MAX]
                statement = f"SELECT * FROM {entity} WHERE DocNumber IN ({', '.join(query_string(n) for n in chunk)})"  # noqa: S608
                async for documents in conn.client.query(statement, entity=entity, what=f"{len(chunk)} {entity} by DocNumber"):
                    for document in documents:
                        for number in by_doc.get(str(document.get("DocNumber")), []):
                            found.setdefault(number, Found(id=f"{entity}:{document['Id']}", record=None, vendor=document))
        return found

    @staticmethod
    def _document(request: DocumentRequest[Order]) -> tuple[str, dict[str, Any]]:
        """The QuickBooks entity and body of ``request``'s document."""
        order = request.record
        settings = request.settings if isinstance(request.settings, OrderSettings) else OrderSettings()
        if request.kind == "quote":
            entity = "Estimate"
        elif order.paid and settings.paid_as == "sales_receipt":
            entity = "SalesReceipt"
        else:
            entity = "Invoice"
        return entity, document_body(order, request, settings, entity)

    async def create_many(self, requests: Sequence[DocumentRequest[Order]]) -> Sequence[str | RecordError]:
        """The batch's documents through the ``batch`` endpoint, 30 per call; one whose operation
        faulted fails alone (a duplicate document number, 6140, is looked up and linked)."""
        conn = self.connector
        bodies: list[tuple[str, dict[str, Any]] | RecordError] = []
        for request in requests:
            try:
                bodies.append(self._document(request))
            except RecordError as exc:
                bodies.append(exc)
        ops = [{"bId": str(n), "operation": "create", b[0]: b[1]} for n, b in enumerate(bodies) if not isinstance(b, RecordError)]
        answers = await conn.client.batch(ops, what=f"{len(ops)} documents") if ops else {}
        results: list[str | RecordError] = []
        for n, (request, body) in enumerate(zip(requests, bodies, strict=True)):
            if isinstance(body, RecordError):
                results.append(body)
                continue
            entity, number = body[0], request.record.number
            what = f"{entity} {number!r}"
            answer = answers.get(str(n))
            if answer is None:
                results.append(RecordError(f"{what}: the batch answer has no result for bId {n}"))
            elif answer.fault is not None and answer.fault.errors:
                error = QBOError(f"{what}: QuickBooks {answer.fault.text()}", fault=answer.fault)
                found = await self.find(number) if DUPLICATE_DOC_NUMBER_CODE in answer.fault.codes else None
                results.append(found.id if found is not None else error)
            elif answer.entity is not None and answer.entity.get("Id"):
                results.append(f"{entity}:{answer.entity['Id']}")
            else:
                results.append(RecordError(f"{what}: bId {n} answered neither an object nor a Fault"))
        return results

    async def create(self, request: DocumentRequest[Order]) -> str:
        order = request.record
        entity, body = self._document(request)
        try:
            answer = await self.connector.client.request("POST", entity.lower(), what=f"{entity} {order.number!r}", body=body)
        except QBOError as exc:
            # a duplicate document number (6140, when the company checks them): the document exists, link it
            if exc.fault is None or DUPLICATE_DOC_NUMBER_CODE not in exc.fault.codes:
                raise
            found = await self.find(order.number)
            if found is None:
                raise
            return found.id
        return f"{entity}:{_id_of(answer, entity, f'{entity} {order.number!r}')}"


_WEBHOOK_ENTITIES = {"Item": (Entity.PRODUCTS, Entity.STOCK), "Customer": (Entity.CUSTOMERS,)}


def webhook_events(body: bytes, realm_id: str) -> list[WebhookEvent]:
    """The events of a webhook body (``eventNotifications[].dataChangeEvent.entities[]``) for
    ``realm_id``; WebhookRejected (malformed) for a body of another shape."""
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise WebhookRejected(f"the body is not JSON ({exc})", malformed=True) from None
    notifications = payload.get("eventNotifications") if isinstance(payload, dict) else None
    if not isinstance(notifications, list):
        raise WebhookRejected("the body has no eventNotifications list", malformed=True)
    events: list[WebhookEvent] = []
    for n, notification in enumerate(notifications):
        change = notification.get("dataChangeEvent") if isinstance(notification, dict) else None
        entities = change.get("entities") if isinstance(change, dict) else None
        if not isinstance(entities, list) or not all(isinstance(e, dict) for e in entities):
            raise WebhookRejected(f"eventNotifications[{n}] has no dataChangeEvent.entities list of objects", malformed=True)
        if str(notification.get("realmId")) != realm_id:
            continue  # another company of the same app
        for entity in entities:
            for canonical in _WEBHOOK_ENTITIES.get(str(entity.get("name")), ()):
                id_ = entity.get("id")
                events.append(WebhookEvent(canonical, str(id_) if id_ is not None else None, str(entity.get("operation") or "")))
    return events


def document_body(order: Order, request: DocumentRequest[Order], settings: OrderSettings, entity: str) -> dict[str, Any]:
    """The JSON of an Invoice / SalesReceipt / Estimate for ``order`` (Finance.xsd element names)."""
    what = f"order {order.number!r}"
    if len(order.number) > 21:
        raise RecordError(f"{what}: DocNumber takes at most 21 characters")
    lines: list[dict[str, Any]] = []
    for n, line in enumerate(order.lines, 1):
        if line.kind == "shipping" and not settings.shipping_item_id:
            lines.append(
                {
                    "Amount": _net(line.unit_price * line.quantity - line.discount, line, order),
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {"ItemRef": {"value": "SHIPPING_ITEM_ID"}},
                }
            )
            continue
        if line.sku:
            item_id = request.article(line.sku).id
        elif line.kind == "shipping":
            item_id = settings.shipping_item_id or ""
        elif settings.text_item_id:
            item_id = settings.text_item_id
        else:
            raise RecordError(f"{what} line {n}: no SKU and no text_item_id in the flow's target_settings")
        unit = _net(line.unit_price, line, order)
        detail: dict[str, Any] = {"ItemRef": {"value": item_id}, "Qty": line.quantity, "UnitPrice": unit}
        if line.tax_code:
            detail["TaxCodeRef"] = {"value": line.tax_code}
        if line.account:
            detail["ItemAccountRef"] = {"value": line.account}
        amount = (unit * line.quantity - _net(line.discount, line, order)).quantize(Decimal("0.01"))
        lines.append(
            {
                "LineNum": n,
                "Description": line.name[:4000],
                "Amount": amount,
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": detail,
            }
        )
    body: dict[str, Any] = {
        "DocNumber": order.number,
        "TxnDate": order.created_at.date().isoformat(),
        "CustomerRef": {"value": request.customer_id},
        "Line": lines,
        "CurrencyRef": {"value": order.currency},
    }
    if order.note:
        body["PrivateNote"] = order.note[:4000]
    if entity != "Estimate" and settings.ship_methods:
        method = order.custom_fields.get(settings.ship_method_field)
        if method not in (None, ""):
            if str(method) in settings.ship_methods:
                body["ShipMethodRef"] = {"value": settings.ship_methods[str(method)]}
            elif "default" in settings.ship_methods:
                body["ShipMethodRef"] = {"value": settings.ship_methods["default"]}
            else:
                known = ", ".join(sorted(settings.ship_methods))
                raise RecordError(f"{what}: shipping method {method!r} is not in target_settings.ship_methods (it maps: {known})")
    if entity == "SalesReceipt":
        method = settings.payment_methods.get(order.payment_method or "")
        if method:
            body["PaymentMethodRef"] = {"value": method}
        if settings.deposit_account_id:
            body["DepositToAccountRef"] = {"value": settings.deposit_account_id}
    if entity == "Invoice":
        term = settings.payment_terms.get(order.payment_terms or "")
        if term:
            body["SalesTermRef"] = {"value": term}
    return body


def _net(amount: Decimal, line: Any, order: Order) -> Decimal:
    """An amount without VAT (QuickBooks item lines are net; its tax code adds the tax)."""
    if line.prices_include_tax and line.tax_rate:
        return (amount / (1 + line.tax_rate / 100)).quantize(Decimal("0.01"))
    return amount.quantize(Decimal("0.01"))


def _id_of(answer: dict[str, Any], entity: str, what: str) -> str:
    obj = answer.get(entity)
    if not isinstance(obj, dict) or not obj.get("Id"):
        raise FatalError(f"{what}: QuickBooks confirmed the create but returned no {entity}.Id")
    return str(obj["Id"])


class QuickBooksConnector(Connector):
    """QuickBooks Online Accounting API v3 (one company, its ``realm_id``).

    Reads items (products) and customers; writes items, stock (``QtyOnHand``), customers and
    orders (Invoice, SalesReceipt or Estimate). OAuth2 with rotating refresh tokens; at most
    500 requests a minute per realm, 40 batches a minute and ``concurrency`` (≤ 10) in flight.
    """

    name: ClassVar[str] = "quickbooks"
    title: ClassVar[str] = "QuickBooks Online"
    Settings: ClassVar[type[ConnectorSettings]] = QuickBooksSettings
    sources = {Entity.PRODUCTS: ItemSource, Entity.STOCK: StockSource, Entity.CUSTOMERS: CustomerSource}
    sinks = {Entity.PRODUCTS: ItemSink, Entity.STOCK: StockSink, Entity.CUSTOMERS: CustomerSink, Entity.ORDERS: OrderSink}
    rate_limits = (
        RateLimit(500, 60.0, name="per_realm", key=_per_realm),
        RateLimit(40, 60.0, name="batch", key=_batches),
    )
    oauth_authorize_url: ClassVar[str | None] = AUTHORIZE_URL
    oauth_scopes: ClassVar[tuple[str, ...]] = ("com.intuit.quickbooks.accounting",)
    default_port: ClassVar[int | None] = 8714

    settings: QuickBooksSettings

    def __init__(self, settings: ConnectorSettings, context: Any):
        super().__init__(settings, context)
        self.api: QBOClient | None = None
        self.now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)

    async def open(self) -> None:
        s = self.settings
        self._token_client = self.context.http_client(base_url=s.token_url, timeout=s.timeout)
        auth = OAuth2RefreshAuth(
            token_client=self._token_client,
            token_url=s.token_url,
            client_id=s.client_id,
            client_secret=s.client_secret.get_secret_value(),
            tokens=self.context.tokens,
            initial_refresh_token=s.refresh_token.get_secret_value() if s.refresh_token else None,
            connection=self.context.name,
        )
        http = self.context.http_client(base_url=s.api_url(), auth=auth, timeout=s.timeout)
        self.api = QBOClient(http, realm_id=s.realm_id, minorversion=s.minorversion, concurrency=s.concurrency, log=self.context.log)

    async def aclose(self) -> None:
        if self.api is not None:
            await self.api.aclose()
            await self._token_client.aclose()
            self.api = None

    async def check(self) -> None:
        """GET companyinfo/{realmId}: proves the token and the realm."""
        await self.client.request("GET", f"companyinfo/{self.settings.realm_id}", what="company info")

    @property
    def client(self) -> QBOClient:
        if self.api is None:
            raise FatalError(f"connection {self.context.name!r}: used before open() or after aclose()")
        return self.api

    async def first(self, entity: str, where: str, *, what: str) -> dict[str, Any] | None:
        statement = f"SELECT * FROM {entity} WHERE {where}"  # noqa: S608 - the query language; literals via query_string()
        async for items in self.client.query(statement, entity=entity, what=what, page_size=2):
            return items[0] if items else None
        return None

    async def categories(self) -> dict[str, str]:
        """Category items (``Type = 'Category'``, minorversion 4 and later): Id → FullyQualifiedName."""
        found: dict[str, str] = {}
        statement = "SELECT * FROM Item WHERE Type = 'Category'"
        async for items in self.client.query(statement, entity="Item", what="item categories", page_size=self.settings.page_size):
            for item in items:
                found[str(item.get("Id"))] = str(item.get("FullyQualifiedName") or item.get("Name"))
        return found

    async def items_by_sku(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Items (active or not) whose ``Sku`` is one of ``keys``, 30 per query (``Sku IN (...)``)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), BATCH_MAX):
            chunk = wanted[start : start + BATCH_MAX]
            where = f"Active IN (true, false) AND Sku IN ({', '.join(query_string(k) for k in chunk)})"
            statement = f"SELECT * FROM Item WHERE {where}"  # noqa: S608 - literals via query_string()
            async for items in self.client.query(statement, entity="Item", what=f"{len(chunk)} items by Sku"):
                for item in items:
                    if item.get("Sku") in chunk:
                        found[item["Sku"]] = item
        return found

    async def customer_by_key(self, key: str) -> dict[str, Any] | None:
        """The customer with e-mail ``key`` (``PrimaryEmailAddr``), else with DisplayName ``key``."""
        field = "PrimaryEmailAddr" if "@" in key else "DisplayName"
        customer = await self.first("Customer", f"Active IN (true, false) AND {field} = {query_string(key)}", what=f"customer {key!r}")
        if customer is not None and field == "PrimaryEmailAddr" and (mapping.email_of(customer) or "").lower() != key.lower():
            return None
        return customer

    def item_body(self, record: Product) -> dict[str, Any]:
        """The JSON of a new item for ``record`` (NonInventory, or Inventory with ``inventory_items``)."""
        s = self.settings
        what = f"item {record.sku!r}"
        if not s.income_account_id:
            raise FatalError(f"{what}: set income_account_id (QuickBooks requires IncomeAccountRef on new items)")
        body = mapping.item_fields(record, None)
        body["IncomeAccountRef"] = {"value": s.income_account_id}
        if s.inventory_items:
            if not (s.expense_account_id and s.asset_account_id):
                raise FatalError(f"{what}: inventory_items needs expense_account_id and asset_account_id")
            body.update(
                Type="Inventory",
                TrackQtyOnHand=True,
                QtyOnHand=record.quantity or Decimal(0),
                InvStartDate=self.now().date().isoformat(),
                ExpenseAccountRef={"value": s.expense_account_id},
                AssetAccountRef={"value": s.asset_account_id},
            )
        else:
            body["Type"] = "NonInventory"
        return body

    async def item_by_duplicate_name(self, record: Product, name: str) -> str:
        """After a 6240 (duplicate name) on an item create: the existing item of that Name when it
        is this SKU's (or has none), else a RecordError naming the other item."""
        what = f"item {record.sku!r}"
        existing = await self.first("Item", f"Name = {query_string(name)}", what=what)
        if existing is None or (existing.get("Sku") and existing.get("Sku") != record.sku):
            raise RecordError(f"{what}: another item already has the Name {name!r} (Id {existing and existing.get('Id')})") from None
        return str(existing["Id"])

    async def create_item(self, record: Product) -> str:
        what = f"item {record.sku!r}"
        body = self.item_body(record)
        try:
            answer = await self.client.request("POST", "item", what=what, body=body)
        except QBOError as exc:
            if exc.fault is None or DUPLICATE_NAME_CODE not in exc.fault.codes:
                raise
            return await self.item_by_duplicate_name(record, body["Name"])
        return _id_of(answer, "Item", what)

    async def parent_items(self) -> set[str]:
        """Ids of items (not categories) that sub-items name as their ``ParentRef``."""
        parents: set[str] = set()
        statement = "SELECT * FROM Item WHERE Active IN (true, false) AND SubItem = true"
        async for items in self.client.query(statement, entity="Item", what="sub-items", page_size=self.settings.page_size):
            for item in items:
                ref = mapping.ref_value(item.get("ParentRef"))
                if ref:
                    parents.add(ref)
        return parents - set(await self.categories())

    async def customers_by_keys(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Customers by e-mail (``PrimaryEmailAddr IN (...)``, 30 per query) or DisplayName, by key."""
        found: dict[str, dict[str, Any]] = {}
        emails = list(dict.fromkeys(k for k in keys if "@" in k))
        for start in range(0, len(emails), BATCH_MAX):
            chunk = emails[start : start + BATCH_MAX]
            wanted: dict[str, list[str]] = {}
            for k in chunk:
                wanted.setdefault(k.lower(), []).append(k)
            where = f"Active IN (true, false) AND PrimaryEmailAddr IN ({', '.join(query_string(k) for k in chunk)})"
            statement = f"SELECT * FROM Customer WHERE {where}"  # noqa: S608 - literals via query_string()
            async for items in self.client.query(statement, entity="Customer", what=f"{len(chunk)} customers by e-mail"):
                for item in items:
                    for key in wanted.get((mapping.email_of(item) or "").lower(), []):
                        found.setdefault(key, item)
        for key in dict.fromkeys(k for k in keys if "@" not in k):
            customer = await self.customer_by_key(key)
            if customer is not None:
                found[key] = customer
        return found

    async def sparse_update(
        self, entity: str, target_id: str, changes: dict[str, Any], *, what: str, require_tracked: bool = False
    ) -> None:
        """A sparse update with the object's current ``SyncToken``; on a stale token (5010) the
        object is read again and the update sent once more, never blindly overwritten twice."""
        if not changes:
            return
        for attempt in (1, 2):
            current = (await self.client.request("GET", f"{entity.lower()}/{target_id}", what=what)).get(entity)
            if not isinstance(current, dict):
                raise FatalError(f"{what}: GET {entity.lower()}/{target_id} returned no {entity}")
            if require_tracked and not current.get("TrackQtyOnHand"):
                raise RecordError(f"{what}: the item does not track quantity (TrackQtyOnHand false); QtyOnHand cannot be set")
            if all(_same(current.get(k), v) for k, v in changes.items()):
                return
            body = {"Id": target_id, "SyncToken": current.get("SyncToken"), "sparse": True, **changes}
            try:
                await self.client.request("POST", entity.lower(), what=what, body=body)
                return
            except StaleObject:
                if attempt == 2:
                    raise
                self.context.log.info("quickbooks_stale_synctoken_retry", entity=entity, id=target_id)

    async def sparse_update_many(
        self, entity: str, updates: Sequence[tuple[str, dict[str, Any], str]], *, require_tracked: bool = False
    ) -> list[RecordError | None]:
        """Sparse updates of many objects (``(Id, changes, what)``): their current ``SyncToken`` read
        30 ids a query, the changed ones sent 30 a ``batch`` call; an object whose token went stale
        meanwhile (5010) goes through :meth:`sparse_update` (read again, retried once), any other
        fault fails that object alone. Per update, None or its RecordError."""
        ids = list(dict.fromkeys(target_id for target_id, changes, _ in updates if changes))
        current: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), BATCH_MAX):
            chunk = ids[start : start + BATCH_MAX]
            active = "Active IN (true, false) AND " if entity in ("Item", "Customer") else ""
            statement = f"SELECT * FROM {entity} WHERE {active}Id IN ({', '.join(query_string(i) for i in chunk)})"  # noqa: S608
            async for objects in self.client.query(statement, entity=entity, what=f"{len(chunk)} {entity} by Id"):
                current.update({str(o.get("Id")): o for o in objects})
        results: list[RecordError | None] = [None] * len(updates)
        writes: list[tuple[str, str, dict[str, Any]]] = []
        for n, (target_id, changes, what) in enumerate(updates):
            obj = current.get(target_id)
            if not changes:
                continue
            if obj is None:
                results[n] = RecordError(f"{what}: {entity} {target_id} is not in QuickBooks (deleted or merged?)")
            elif require_tracked and not obj.get("TrackQtyOnHand"):
                results[n] = RecordError(f"{what}: the item does not track quantity (TrackQtyOnHand false); QtyOnHand cannot be set")
            elif not all(_same(obj.get(k), v) for k, v in changes.items()):
                writes.append((str(n), "update", {"Id": target_id, "SyncToken": obj.get("SyncToken"), "sparse": True, **changes}))
        answers = await self.batch_write(entity, writes, what=f"{len(writes)} {entity} updates") if writes else {}
        for bid, answer in answers.items():
            n = int(bid)
            target_id, changes, what = updates[n]
            if isinstance(answer, QBOError) and answer.fault is not None and STALE_CODE in answer.fault.codes:
                self.context.log.info("quickbooks_stale_synctoken_retry", entity=entity, id=target_id, batched=True)
                try:
                    await self.sparse_update(entity, target_id, changes, what=what, require_tracked=require_tracked)
                except RecordError as exc:
                    results[n] = exc
            elif isinstance(answer, RecordError):
                results[n] = answer
        return results

    async def batch_write(
        self, entity: str, writes: Sequence[tuple[str, str, dict[str, Any]]], *, what: str
    ) -> dict[str, str | RecordError]:
        """``(bId, operation, object)`` writes through the batch endpoint (30 per call); per bId
        the written object's Id, or the :class:`RecordError` of that item's fault."""
        ops = [{"bId": bid, "operation": op, entity: obj} for bid, op, obj in writes]
        results = await self.client.batch(ops, what=what)
        out: dict[str, str | RecordError] = {}
        for bid, _op, _obj in writes:
            result = results.get(bid)
            if result is None:
                out[bid] = RecordError(f"{what}: the batch answer has no result for bId {bid}")
            elif result.fault is not None and result.fault.errors:
                out[bid] = QBOError(f"{what} bId {bid}: QuickBooks {result.fault.text()}", fault=result.fault)
            elif result.entity is not None and result.entity.get("Id"):
                out[bid] = str(result.entity["Id"])
            else:
                out[bid] = RecordError(f"{what}: bId {bid} answered neither an object nor a Fault")
        return out

    async def webhook(self, request: WebhookRequest) -> Sequence[WebhookEvent]:
        """A data-change notification: ``intuit-signature`` checked (base64 HMAC-SHA256 of the raw
        body with the verifier token), then per entity of this company's ``realmId`` an event (``Item``:
        products and stock, ``Customer``: customers; others and other companies' are left out)."""
        token = self.settings.webhook_verifier_token
        if token is None:
            raise WebhookRejected("no webhook verifier token is configured (webhook_verifier_token)")
        if not verify_webhook(token.get_secret_value(), request.body, request.headers.get("intuit-signature")):
            raise WebhookRejected("intuit-signature is missing or is not the HMAC-SHA256 of the body with the verifier token")
        return webhook_events(request.body, self.settings.realm_id)

    @classmethod
    def simulator(cls, *, seed: int = 1, records: int = 0, **options: Any) -> Any:
        from .simulator import create_app

        return create_app(seed=seed, records=records, **options)

    @classmethod
    def demo_settings(cls, base_url: str) -> dict[str, Any]:
        from .simulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REALM, demo_refresh_token

        return {
            "base_url": base_url,
            "token_url": f"{base_url.rstrip('/')}/oauth2/v1/tokens/bearer",
            "client_id": DEMO_CLIENT_ID,
            "client_secret": DEMO_CLIENT_SECRET,
            "refresh_token": demo_refresh_token(),
            "realm_id": DEMO_REALM,
            "income_account_id": "1",
        }


def _same(current: Any, new: Any) -> bool:
    if isinstance(new, Decimal):
        return mapping.to_decimal(current) == new
    return bool(current == new)
