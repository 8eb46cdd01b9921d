"""The HubSpot connector: products, customers (contacts with their companies) and deals with line
items through the CRM API v3, associations v4; private-app token or OAuth2."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

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
    Invoice,
    OAuth2RefreshAuth,
    Order,
    OrderLine,
    Product,
    RateLimit,
    RateLimitHeaders,
    RecordError,
    Sink,
    Source,
    WebhookEvent,
    WebhookRequest,
    json_body,
)

from . import mapping, webhooks
from .client import BATCH_SIZE, HubSpotClient, cursor_to_ms, modified_property, ms_to_cursor

__all__ = ["HubSpotConnector", "HubSpotSettings", "DealSettings", "ASSOCIATION_TYPES", "RATE_LIMIT_HEADERS"]

ASSOCIATION_TYPES: Mapping[tuple[str, str], int] = {
    ("contacts", "companies"): 1,  # contact -> its primary company
    ("companies", "contacts"): 2,  # company -> its primary contact
    ("deals", "contacts"): 3,
    ("deals", "companies"): 5,  # the deal's primary company
    ("deals", "line_items"): 19,
    ("line_items", "deals"): 20,
}
"""HubSpot-defined association type ids (associations v4) used here."""

RATE_LIMIT_HEADERS = RateLimitHeaders(
    remaining="X-HubSpot-RateLimit-Remaining", limit="X-HubSpot-RateLimit-Max", window_ms="X-HubSpot-RateLimit-Interval-Milliseconds"
)
DAILY_HEADERS = RateLimitHeaders(remaining="X-HubSpot-RateLimit-Daily-Remaining", limit="X-HubSpot-RateLimit-Daily")
_PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]{0,99}$")


TIERS: dict[str, tuple[int, int]] = {"starter": (100, 250_000), "professional": (190, 625_000), "enterprise": (190, 1_000_000)}
"""Tier -> (requests per 10 s, requests a day) of a private app [doc: usage guidelines, README §6]."""


def _search_key(request: httpx.Request) -> str | None:
    """The search endpoints share their own, lower limit."""
    return "search" if request.url.path.endswith("/search") else None


class HubSpotSettings(ConnectorSettings):
    """Connection settings of a HubSpot account: a private-app token, or an OAuth app."""

    base_url: str = Field(default="https://api.hubapi.com", description="API root")
    access_token: SecretStr | None = Field(default=None, description="Private-app access token (static); or use OAuth")
    token_url: str = Field(default="https://api.hubapi.com/oauth/v1/token", description="OAuth2 token endpoint")
    authorize_url: str | None = Field(default=None, description="OAuth2 consent page; unset: https://app.hubspot.com/oauth/authorize")
    client_id: str | None = Field(default=None, description="OAuth app client id")
    client_secret: SecretStr | None = Field(default=None, description="OAuth app client secret (also signs its webhooks)")
    refresh_token: SecretStr | None = Field(default=None, description="Bootstraps an empty token store (else `apicenterd auth`)")
    scopes: list[str] | None = Field(default=None, description="OAuth scopes to ask for; unset: the connector's")
    webhook_secret: SecretStr | None = Field(
        default=None, description="The app's client secret that signs webhooks (X-HubSpot-Signature-v3); unset: client_secret"
    )
    webhook_url: str | None = Field(
        default=None,
        description="The webhook target URL as set in HubSpot (e.g. https://sync.example.com/webhooks/hubspot): "
        "HubSpot signs it, and behind a reverse proxy the daemon sees another; unset: the URL as received",
    )
    sku_property: str = Field(default="apicenterd_sku", description="Unique product property holding the SKU (hs_sku is not unique)")
    order_property: str = Field(default="apicenterd_order", description="Unique deal property holding the external order number")
    line_property: str = Field(default="apicenterd_line", description="Unique line-item property holding <order>/<line>")
    invoice_prefix: str = Field(
        default="INV-",
        min_length=1,
        description="Invoices written as deals: their order_property is this prefix and the invoice number (never an order's)",
    )
    create_properties: bool = Field(default=True, description="Create the unique properties when they are missing")
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$", description="The account's company currency")
    prices_include_tax: bool = Field(default=False, description="Whether HubSpot prices include VAT (they usually do not)")
    deal_stages: list[str] = Field(default_factory=lambda: ["closedwon"], description="Deal stages read as orders")
    lifecycle_stage: str | None = Field(
        default=None, description="Lifecycle stage written on contacts this connector creates (e.g. 'customer'); unset: left to HubSpot"
    )
    tier: Literal["starter", "professional", "enterprise"] = Field(
        default="starter",
        description="The account's HubSpot tier, which sets the limits the daemon keeps to: starter (and free) "
        "100 / 10 s and 250,000 a day; professional 190 / 10 s and 625,000; enterprise 190 / 10 s and 1,000,000",
    )
    api_limit_packs: int = Field(
        default=0, ge=0, le=2, description="API limit increase packs bought (0-2): 250 / 10 s, and 1,000,000 a day more each"
    )
    customer_properties: dict[str, str] = Field(
        default_factory=dict,
        description="Customer field -> HubSpot property, written on the company (a company customer) or the contact "
        "(a person): classification (e.g. lifecyclestage, or a property of yours), tax_code, revenue_account, "
        "payment_terms, payment_method, cost_centre, cost_unit, customer_number, vat_number, coc_number, language, "
        "custom_fields.<name>; a property missing in HubSpot is created (single-line text) with create_properties",
    )
    product_properties: dict[str, str] = Field(
        default_factory=dict,
        description="Product field -> HubSpot product property, written and read back both ways: item_group, ean, "
        "unit, short_description, custom_fields.<name>; a property missing in HubSpot is created (single-line text) "
        "with create_properties",
    )
    payment_terms_property: str | None = Field(default=None, description="Deal property read as the order's payment terms")
    payment_method_property: str | None = Field(default=None, description="Deal property read as the order's payment method")

    @field_validator("sku_property", "order_property", "line_property")
    @classmethod
    def _property_name(cls, value: str) -> str:
        if not _PROPERTY_NAME.match(value):
            raise ValueError(f"{value!r} is not a HubSpot property name (lower case letters, digits and _, starting with a letter)")
        return value

    @field_validator("customer_properties")
    @classmethod
    def _customer_properties(cls, value: dict[str, str]) -> dict[str, str]:
        for field, prop in value.items():
            custom = field.startswith("custom_fields.") and len(field) > len("custom_fields.")
            if field not in mapping.CUSTOMER_EXTRAS and not custom:
                known = ", ".join(sorted(mapping.CUSTOMER_EXTRAS))
                raise ValueError(f"customer_properties: {field!r} is not a customer field HubSpot can take ({known}, custom_fields.<name>)")
            if not _PROPERTY_NAME.match(prop):
                raise ValueError(f"customer_properties.{field}: {prop!r} is not a HubSpot property name (lower case letters, digits and _)")
        return value

    @field_validator("product_properties")
    @classmethod
    def _product_properties(cls, value: dict[str, str]) -> dict[str, str]:
        taken: dict[str, str] = {}
        for field, prop in value.items():
            custom = field.startswith("custom_fields.") and len(field) > len("custom_fields.")
            if field not in mapping.PRODUCT_EXTRAS and not custom:
                known = ", ".join(sorted(mapping.PRODUCT_EXTRAS))
                raise ValueError(f"product_properties: {field!r} is not a product field HubSpot can take ({known}, custom_fields.<name>)")
            if not _PROPERTY_NAME.match(prop):
                raise ValueError(f"product_properties.{field}: {prop!r} is not a HubSpot property name (lower case letters, digits and _)")
            if prop in _PRODUCT_OWN_PROPERTIES:
                raise ValueError(
                    f"product_properties.{field}: {prop!r} is a property the connector writes itself (the product's own fields)"
                )
            if prop in taken:
                raise ValueError(f"product_properties.{field}: {prop!r} is already the property of {taken[prop]}")
            taken[prop] = field
        return value

    @model_validator(mode="after")
    def _product_property_not_sku(self) -> HubSpotSettings:
        for field, prop in self.product_properties.items():
            if prop == self.sku_property:
                raise ValueError(f"product_properties.{field}: {prop!r} is the sku_property")
        return self

    @field_validator("base_url", "token_url")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _one_auth(self) -> HubSpotSettings:
        oauth = self.client_id is not None or self.client_secret is not None
        if self.access_token is not None and oauth:
            raise ValueError("give either access_token (a private app) or client_id and client_secret (an OAuth app), not both")
        if self.access_token is None and not (self.client_id and self.client_secret):
            raise ValueError("no credentials: give access_token (a private app) or client_id and client_secret (an OAuth app)")
        return self

    @property
    def signing_secret(self) -> str | None:
        """The secret webhooks are signed with."""
        secret = self.webhook_secret or self.client_secret
        return secret.get_secret_value() if secret else None


class DealSettings(BaseModel):
    """A flow's ``target_settings`` for orders written as deals."""

    model_config = ConfigDict(extra="forbid")

    pipeline: str = Field(default="default", description="Deal pipeline id")
    stages: dict[str, str] = Field(default_factory=dict, description="Order status -> deal stage id")
    default_stage: str | None = Field(default=None, description="Stage for a status not in stages; unset: such an order fails")
    properties: dict[str, str] = Field(default_factory=dict, description="Fixed deal properties to set on every deal")
    custom_properties: dict[str, str] = Field(
        default_factory=dict,
        description="Order custom field -> deal property (the order's custom_fields, from the source, the flow's "
        "options.custom_fields or a map rule); a field the order lacks is left unset",
    )
    reference_property: str | None = Field(default=None, description="Deal property for the order's reference (e.g. your reference)")


def _customer_id(target_id: str) -> tuple[str | None, str | None]:
    """``company:C/contact:P`` or ``contact:P`` -> (company id, contact id)."""
    company = contact = None
    for part in target_id.split("/"):
        kind, _, value = part.partition(":")
        if kind == "company" and value:
            company = value
        elif kind == "contact" and value:
            contact = value
    if contact is None and company is None:
        raise RecordError(f"{target_id!r} is not a HubSpot customer id (contact:ID or company:ID/contact:ID)")
    return company, contact


def _customer_target(company_id: str | None, contact_id: str) -> str:
    return f"company:{company_id}/contact:{contact_id}" if company_id else f"contact:{contact_id}"


def _assoc(to_id: str, type_id: int) -> dict[str, Any]:
    return {"to": {"id": to_id}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]}


# -- sources ---------------------------------------------------------------------------------


def _cursor(item: Mapping[str, Any], object_type: str, since: str | None) -> str | None:
    """The cursor of one object: its modification stamp (``since`` when it has none)."""
    value = (item.get("properties") or {}).get(modified_property(object_type)) or item.get("updatedAt")
    try:
        return ms_to_cursor(cursor_to_ms(str(value))) if value else since
    except ValueError:
        return since


_PRODUCT_OWN_PROPERTIES = ("name", "price", "description", "hs_sku", "hs_cost_of_goods_sold")
"""The product properties the connector writes from the canonical fields (no ``product_properties`` target)."""


def _product_props(s: HubSpotSettings) -> list[str]:
    """The product properties read: the connector's own, the SKU property and the configured extras."""
    return [*_PRODUCT_OWN_PROPERTIES, s.sku_property, *dict.fromkeys(s.product_properties.values())]


class ProductSource(Source[Product]):
    """Products modified since the cursor (``hs_lastmodifieddate``), through the search API."""

    connector: HubSpotConnector
    field_map = dict(mapping.PRODUCT_FIELDS)

    async def changes(self, since: str | None) -> AsyncIterator[Change]:
        conn = self.connector
        s = conn.settings
        props = _product_props(s)  # a product_properties property missing in HubSpot reads as empty
        async for item in conn.client.modified_since(
            "products", cursor_to_ms(since) if since else None, props, what=f"products modified since {since or 'the beginning'}"
        ):
            cursor = _cursor(item, "products", since)
            yield self.mapped(
                str(item.get("id")), cursor, functools.partial(mapping.to_product, item, s.sku_property, s.currency, s.product_properties)
            )


async def _buffered(items: AsyncIterator[dict[str, Any]], size: int = BATCH_SIZE) -> AsyncIterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    async for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class CustomerSource(Source[Customer]):
    """Contacts modified since the cursor (``lastmodifieddate``), each with its primary company
    (read in one batch per 100 contacts): a company with its contact person, or a person."""

    connector: HubSpotConnector
    field_map = dict(mapping.CUSTOMER_FIELDS)

    async def changes(self, since: str | None) -> AsyncIterator[Change]:
        conn = self.connector
        items = conn.client.modified_since(
            "contacts", cursor_to_ms(since) if since else None, mapping.CONTACT_PROPERTIES, what="contacts modified"
        )
        async for batch in _buffered(items):
            company_ids = [
                str(c["properties"]["associatedcompanyid"]) for c in batch if (c.get("properties") or {}).get("associatedcompanyid")
            ]
            companies = await conn.client.read_by("companies", None, company_ids, mapping.COMPANY_PROPERTIES, what="companies of contacts")
            for contact in batch:
                company = companies.get(str((contact.get("properties") or {}).get("associatedcompanyid") or ""))
                yield self.mapped(
                    str(contact.get("id")),
                    _cursor(contact, "contacts", since),
                    functools.partial(mapping.to_customer, contact, company),
                )


class DealSource(Source[Order]):
    """Deals in the configured stages (``deal_stages``) modified since the cursor, as orders with
    their line items and customer (associations v4, batch reads: a few calls per 100 deals).
    Deals this connector created from orders (their ``order_property`` set) are left out."""

    field_map = {
        "number": "HS-<deal id>",
        "status": "dealstage",
        "total": "amount",
        "currency": "deal_currency_code",
        "lines": "line_items",
    }

    connector: HubSpotConnector

    async def changes(self, since: str | None) -> AsyncIterator[Change]:
        conn = self.connector
        s = conn.settings
        api = conn.client
        deal_props = [
            "dealname",
            "amount",
            "dealstage",
            "pipeline",
            "closedate",
            "createdate",
            "deal_currency_code",
            "description",
            s.order_property,
        ]
        deal_props += [p for p in (s.payment_terms_property, s.payment_method_property) if p]
        filters = [{"propertyName": "dealstage", "operator": "IN", "values": list(s.deal_stages)}]
        items = api.modified_since("deals", cursor_to_ms(since) if since else None, deal_props, what="deals modified", filters=filters)
        async for batch in _buffered(items):
            ids = [str(d.get("id")) for d in batch]
            lines_of = await api.associated("deals", "line_items", ids, what="line items of deals")
            contacts_of = await api.associated("deals", "contacts", ids, what="contacts of deals")
            companies_of = await api.associated("deals", "companies", ids, what="companies of deals")
            line_items = await api.read_by(
                "line_items",
                None,
                [i for v in lines_of.values() for i in v],
                ["name", "quantity", "price", "discount", "hs_product_id", "hs_sku"],
                what="line items",
            )
            product_ids = [
                str(li["properties"].get("hs_product_id"))
                for li in line_items.values()
                if (li.get("properties") or {}).get("hs_product_id")
            ]
            products = await api.read_by("products", None, product_ids, ["hs_sku", s.sku_property], what="products of line items")
            skus = {pid: str(p["properties"].get(s.sku_property) or p["properties"].get("hs_sku") or "") for pid, p in products.items()}
            contacts = await api.read_by(
                "contacts", None, [v[0] for v in contacts_of.values() if v], mapping.CONTACT_PROPERTIES, what="contacts of deals"
            )
            companies = await api.read_by(
                "companies", None, [v[0] for v in companies_of.values() if v], mapping.COMPANY_PROPERTIES, what="companies of deals"
            )
            for deal in batch:
                deal_id = str(deal.get("id"))
                cursor = _cursor(deal, "deals", since)
                if (deal.get("properties") or {}).get(s.order_property):
                    continue  # written here from another system's order: not read back as a new order
                contact = contacts.get(next(iter(contacts_of.get(deal_id) or ()), ""))
                company = companies.get(next(iter(companies_of.get(deal_id) or ()), ""))
                items_of = [line_items[i] for i in lines_of.get(deal_id) or () if i in line_items]

                def convert(
                    deal: dict[str, Any] = deal,
                    contact: Any = contact,
                    company: Any = company,
                    items_of: Any = items_of,
                    skus: dict[str, str] = skus,
                ) -> Order:
                    customer = mapping.to_customer(contact, company) if (contact or company) else None
                    return mapping.to_order(
                        deal,
                        items_of,
                        skus,
                        customer,
                        currency=s.currency,
                        prices_include_tax=s.prices_include_tax,
                        payment_terms_property=s.payment_terms_property,
                        payment_method_property=s.payment_method_property,
                    )

                yield self.mapped(deal_id, cursor, convert)


# -- sinks -------------------------------------------------------------------------------------


class ProductSink(Sink[Product]):
    """Products by the unique SKU property: looked up in batches of 100, created by batch upsert on
    that property (a retry after a lost answer cannot make a second product), updated by id."""

    connector: HubSpotConnector
    written_fields = frozenset(mapping.PRODUCT_FIELDS)
    field_map = dict(mapping.PRODUCT_FIELDS)

    def _found(self, item: dict[str, Any]) -> Found:
        s = self.connector.settings
        return Found(id=str(item["id"]), record=mapping.to_product(item, s.sku_property, s.currency, s.product_properties), vendor=item)

    async def find(self, key: str) -> Found | None:
        return (await self.find_many([key])).get(key)

    async def find_many(self, keys: Sequence[str]) -> Mapping[str, Found]:
        conn = self.connector
        await conn.setup()
        await conn.setup_products()
        s = conn.settings
        props = _product_props(s)
        found = await conn.client.read_by("products", s.sku_property, keys, props, what="products by SKU")
        return {key: self._found(item) for key, item in found.items()}

    def normalize(self, record: Product) -> Product:
        return mapping.normalize_product(record, self.connector.settings.product_properties)

    async def create(self, record: Product) -> str:
        conn = self.connector
        await conn.setup()
        await conn.setup_products()
        s = conn.settings
        props = mapping.product_properties(record, None, s.sku_property, s.product_properties)
        outcome = await conn.client.batch(
            "products",
            "upsert",
            [{"idProperty": s.sku_property, "id": record.sku, "properties": props}],
            [record.sku],
            what=f"product {record.sku!r}",
            result_key=s.sku_property,
        )
        if record.sku in outcome.errors:
            raise RecordError(f"product {record.sku!r}: {outcome.errors[record.sku]}")
        if record.sku not in outcome.results:
            raise FatalError(f"product {record.sku!r}: the upsert answered no result for it")
        return str(outcome.results[record.sku]["id"])

    async def create_many(self, records: Sequence[Product]) -> Sequence[str | RecordError]:
        """The batch's new products in ``batch/upsert`` calls of 100 on the SKU property; an input the
        207 answer refuses fails alone."""
        conn = self.connector
        await conn.setup()
        await conn.setup_products()
        s = conn.settings
        inputs = [
            {
                "idProperty": s.sku_property,
                "id": r.sku,
                "properties": mapping.product_properties(r, None, s.sku_property, s.product_properties),
            }
            for r in records
        ]
        keys = [r.sku for r in records]
        outcome = await conn.client.batch("products", "upsert", inputs, keys, what=f"{len(records)} products", result_key=s.sku_property)
        results: list[str | RecordError] = []
        for sku in keys:
            if sku in outcome.results:
                results.append(str(outcome.results[sku]["id"]))
            else:
                results.append(RecordError(f"product {sku!r}: {outcome.errors.get(sku, 'the upsert answered no result for it')}"))
        return results

    async def update(self, target_id: str, record: Product, fields: frozenset[str]) -> None:
        conn = self.connector
        await conn.setup_products()
        props = mapping.product_properties(record, fields, conn.settings.sku_property, conn.settings.product_properties)
        await conn.client.json("PATCH", f"/crm/v3/objects/products/{target_id}", f"product {record.sku!r}", json={"properties": props})

    async def update_many(self, updates: Sequence[tuple[str, Product, frozenset[str]]]) -> Sequence[RecordError | None]:
        """The batch's changed products in ``batch/update`` calls of 100 by id; an input the 207
        answer refuses fails alone."""
        s = self.connector.settings
        await self.connector.setup_products()
        inputs = [
            (tid, {"id": tid, "properties": mapping.product_properties(r, f, s.sku_property, s.product_properties)})
            for tid, r, f in updates
        ]
        failed = await _batch_update(self.connector.client, "products", inputs, f"{len(updates)} products")
        return [RecordError(f"product {r.sku!r}: {failed[tid]}") if tid in failed else None for tid, r, _ in updates]


async def _batch_update(api: HubSpotClient, object_type: str, inputs: Sequence[tuple[str, dict[str, Any]]], what: str) -> dict[str, str]:
    """``batch/update`` of ``(id, input)`` by object id, 100 a call: the refused ids with the reason.
    An id given twice goes in a later call (a batch names each input by its id)."""
    failed: dict[str, str] = {}
    rest = list(inputs)
    while rest:
        seen: set[str] = set()
        now: list[tuple[str, dict[str, Any]]] = []
        later: list[tuple[str, dict[str, Any]]] = []
        for object_id, item in rest:
            (later if object_id in seen else now).append((object_id, item))
            seen.add(object_id)
        keys = [object_id for object_id, _ in now]
        outcome = await api.batch(object_type, "update", [item for _, item in now], keys, what=what)
        for object_id in keys:
            if object_id in outcome.errors:
                failed[object_id] = outcome.errors[object_id]
            elif object_id not in outcome.results:
                failed[object_id] = "the batch update answered no result for it"
        rest = later
    return failed


class CustomerSink(Sink[Customer]):
    """Customers by e-mail: a contact (a person), or a company with that contact as its primary
    contact. Contacts are upserted by ``email`` (HubSpot's unique contact key)."""

    connector: HubSpotConnector
    written_fields = frozenset(mapping.CUSTOMER_FIELDS)
    field_map = dict(mapping.CUSTOMER_FIELDS)

    async def find(self, key: str) -> Found | None:
        return (await self.find_many([key])).get(key)

    async def find_many(self, keys: Sequence[str]) -> Mapping[str, Found]:
        api = self.connector.client
        emails = [k.strip().lower() for k in keys if "@" in k]
        extras = self.connector.settings.customer_properties
        await self.connector.setup_customers()
        wanted = tuple(dict.fromkeys(extras.values()))
        contacts = await api.read_by("contacts", "email", emails, mapping.CONTACT_PROPERTIES + wanted, what="contacts by e-mail")
        company_ids = [
            str(c["properties"]["associatedcompanyid"]) for c in contacts.values() if (c.get("properties") or {}).get("associatedcompanyid")
        ]
        companies = await api.read_by("companies", None, company_ids, mapping.COMPANY_PROPERTIES + wanted, what="companies of contacts")
        found: dict[str, Found] = {}
        for key in keys:
            contact = contacts.get(key.strip().lower())
            if contact is None:
                continue
            company_id = str((contact.get("properties") or {}).get("associatedcompanyid") or "") or None
            company = companies.get(company_id or "")
            found[key] = Found(
                id=_customer_target(company_id if company else None, str(contact["id"])),
                record=mapping.to_customer(contact, company, extras),
                vendor={"contact": contact, "company": company},
            )
        return found

    def normalize(self, record: Customer) -> Customer:
        return mapping.normalize_customer(record, self.connector.settings.customer_properties)

    def _contact_props(self, record: Customer) -> dict[str, str]:
        """The contact's properties: a person's with the configured extra fields (a company's go on the company)."""
        props = mapping.contact_properties(record)
        if record.kind == "person":
            props.update(mapping.extra_properties(record, self.connector.settings.customer_properties))
        return props

    def _company_props(self, record: Customer) -> dict[str, str]:
        return {**mapping.company_properties(record), **mapping.extra_properties(record, self.connector.settings.customer_properties)}

    def _new_contact(self, record: Customer) -> dict[str, str]:
        props = self._contact_props(record)
        if self.connector.settings.lifecycle_stage and "lifecyclestage" not in props:
            props["lifecyclestage"] = self.connector.settings.lifecycle_stage
        return props

    async def _upsert_contact(self, record: Customer) -> str:
        assert record.email
        outcome = await self.connector.client.batch(
            "contacts",
            "upsert",
            [{"idProperty": "email", "id": record.email, "properties": self._new_contact(record)}],
            [record.email],
            what=f"contact {record.email!r}",
            result_key="email",
        )
        if record.email in outcome.errors:
            raise RecordError(f"contact {record.email!r}: {outcome.errors[record.email]}")
        if record.email not in outcome.results:
            raise FatalError(f"contact {record.email!r}: the upsert answered no result for it")
        return str(outcome.results[record.email]["id"])

    async def create_many(self, records: Sequence[Customer]) -> Sequence[str | RecordError]:
        """Every contact (the persons, and the companies' contact persons) in ``batch/upsert`` calls
        of 100 on ``email``, then the companies in ``batch/create`` calls of 100, each associated
        with its contact as primary contact. A refused input fails its record alone. (A retry after
        a lost company answer finds the company through its contact: no company twice.)"""
        results: dict[int, str | RecordError] = {}
        api = self.connector.client
        await self.connector.setup_customers()
        with_email = [(n, r) for n, r in enumerate(records) if r.email]
        for n, r in enumerate(records):
            if not r.email:
                results[n] = RecordError(f"customer {r.name!r}: no e-mail address (HubSpot contacts are found by e-mail)")
        contact_ids: dict[int, str] = {}
        if with_email:
            keys = list(dict.fromkeys(str(r.email) for _, r in with_email))
            first = {str(r.email): r for _, r in reversed(with_email)}  # one input per e-mail: the first record's
            inputs = [{"idProperty": "email", "id": email, "properties": self._new_contact(first[email])} for email in keys]
            outcome = await api.batch("contacts", "upsert", inputs, keys, what=f"{len(keys)} contacts", result_key="email")
            for n, r in with_email:
                email = str(r.email)
                if email in outcome.results:
                    contact_ids[n] = str(outcome.results[email]["id"])
                else:
                    results[n] = RecordError(f"contact {email!r}: {outcome.errors.get(email, 'the upsert answered no result for it')}")
        companies = [(n, records[n]) for n in contact_ids if records[n].kind == "company"]
        for n in contact_ids:
            if records[n].kind != "company":
                results[n] = _customer_target(None, contact_ids[n])
        if companies:
            keys = [f"{n}:{r.email}" for n, r in companies]  # objectWriteTraceId: unique within the call
            company_inputs: list[dict[str, Any]] = [
                {
                    "properties": self._company_props(r),
                    "associations": [_assoc(contact_ids[n], ASSOCIATION_TYPES[("companies", "contacts")])],
                }
                for n, r in companies
            ]
            outcome = await api.batch("companies", "create", company_inputs, keys, what=f"{len(companies)} companies")
            for (n, r), key in zip(companies, keys, strict=True):
                if key in outcome.results:
                    results[n] = _customer_target(str(outcome.results[key]["id"]), contact_ids[n])
                else:
                    results[n] = RecordError(f"company {r.name!r}: {outcome.errors.get(key, 'the batch create answered no result for it')}")
        return [results[n] for n in range(len(records))]

    async def create(self, record: Customer) -> str:
        await self.connector.setup_customers()
        contact_id = await self._upsert_contact(record)
        if record.kind != "company":
            return _customer_target(None, contact_id)
        company = await self.connector.client.json(
            "POST",
            "/crm/v3/objects/companies",
            f"company {record.name!r}",
            json={
                "properties": self._company_props(record),
                "associations": [_assoc(contact_id, ASSOCIATION_TYPES[("companies", "contacts")])],
            },
        )
        return _customer_target(str(company["id"]), contact_id)

    async def update(self, target_id: str, record: Customer, fields: frozenset[str]) -> None:
        api = self.connector.client
        await self.connector.setup_customers()
        company_id, contact_id = _customer_id(target_id)
        if contact_id:
            await api.json(
                "PATCH",
                f"/crm/v3/objects/contacts/{contact_id}",
                f"contact {record.email!r}",
                json={"properties": self._contact_props(record)},
            )
        if record.kind == "company":
            if company_id:
                await api.json(
                    "PATCH",
                    f"/crm/v3/objects/companies/{company_id}",
                    f"company {record.name!r}",
                    json={"properties": self._company_props(record)},
                )
            elif contact_id:  # a person became a company: give the contact its company
                await api.json(
                    "POST",
                    "/crm/v3/objects/companies",
                    f"company {record.name!r}",
                    json={
                        "properties": self._company_props(record),
                        "associations": [_assoc(contact_id, ASSOCIATION_TYPES[("companies", "contacts")])],
                    },
                )

    async def update_many(self, updates: Sequence[tuple[str, Customer, frozenset[str]]]) -> Sequence[RecordError | None]:
        """The batch's contacts in one ``batch/update`` and their companies in another (100 a call);
        a person who became a company (a company to create) is updated on its own."""
        results: dict[int, RecordError | None] = {}
        await self.connector.setup_customers()
        contacts: list[tuple[int, str, dict[str, Any]]] = []
        companies: list[tuple[int, str, dict[str, Any]]] = []
        for n, (target_id, record, fields) in enumerate(updates):
            try:
                company_id, contact_id = _customer_id(target_id)
            except RecordError as exc:
                results[n] = exc
                continue
            if record.kind == "company" and not company_id:
                try:
                    await self.update(target_id, record, fields)
                    results[n] = None
                except RecordError as exc:
                    results[n] = exc
                continue
            if contact_id:
                contacts.append((n, contact_id, {"id": contact_id, "properties": self._contact_props(record)}))
            if record.kind == "company" and company_id:
                companies.append((n, company_id, {"id": company_id, "properties": self._company_props(record)}))
        api = self.connector.client
        for object_type, batch in (("contacts", contacts), ("companies", companies)):
            if not batch:
                continue
            failed = await _batch_update(api, object_type, [(i, item) for _, i, item in batch], f"{len(batch)} {object_type}")
            for n, object_id, _ in batch:
                if object_id in failed and results.get(n) is None:
                    results[n] = RecordError(f"customer {updates[n][1].email!r}: {object_type[:-1]} {object_id}: {failed[object_id]}")
                else:
                    results.setdefault(n, None)
        return [results.get(n) for n in range(len(updates))]


class DealSink(DocumentSink[Order]):
    """An order as a deal with its line items, associated with the customer's contact and company.

    Idempotent: the line items are upserted by their unique reference (``<order>/<n>``), then the
    deal is created with all its associations in one call; :meth:`find` finds it by the unique
    ``order_property``, so an order whose deal exists is skipped and a retry never makes two."""

    connector: HubSpotConnector
    documents = frozenset({"order"})
    settings = DealSettings
    written_fields = frozenset({"number", "status", "total", "currency", "created_at", "lines", "customer"})
    field_map = {
        "number": "<order_property>",
        "status": "dealstage (by stages)",
        "total": "amount",
        "currency": "deal_currency_code",
        "created_at": "closedate",
        "lines": "line_items",
    }

    async def find(self, number: str) -> Found | None:
        conn = self.connector
        await conn.setup()
        found = await conn.client.read_by(
            "deals", conn.settings.order_property, [number], ["dealname", conn.settings.order_property], what=f"deal of order {number!r}"
        )
        deal = found.get(number)
        return Found(id=str(deal["id"]), vendor=deal) if deal else None

    async def find_many(self, numbers: Sequence[str]) -> Mapping[str, Found]:
        """The deals of many orders by ``order_property``, 100 a call."""
        conn = self.connector
        await conn.setup()
        prop = conn.settings.order_property
        found = await conn.client.read_by("deals", prop, numbers, ["dealname", prop], what=f"deals of {len(numbers)} orders")
        return {number: Found(id=str(deal["id"]), vendor=deal) for number, deal in found.items()}

    def _deal(self, request: DocumentRequest[Order]) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
        """The deal's properties and associations (less its line items), its line-item inputs and their keys."""
        s = self.connector.settings
        order = request.record
        options = request.settings if isinstance(request.settings, DealSettings) else DealSettings()
        stage = options.stages.get(order.status, options.default_stage)
        if not stage:
            raise RecordError(
                f"order {order.number}: status {order.status!r} has no deal stage "
                f"(target_settings.stages: {sorted(options.stages)}; no default_stage)"
            )
        inputs, keys = [], []
        for n, line in enumerate(order.lines, start=1):
            if line.kind == "text":  # no money, no line item (its number stays taken: references do not shift)
                continue
            product_id = request.article(line.sku).id if line.sku else None
            props = mapping.line_item_properties(order, n, line, product_id, s.line_property)
            keys.append(props[s.line_property])
            inputs.append({"idProperty": s.line_property, "id": props[s.line_property], "properties": props})
        associations = []
        if request.customer is not None and request.customer.id:
            company_id, contact_id = _customer_id(request.customer.id)
            if contact_id:
                associations.append(_assoc(contact_id, ASSOCIATION_TYPES[("deals", "contacts")]))
            if company_id:
                associations.append(_assoc(company_id, ASSOCIATION_TYPES[("deals", "companies")]))
        extra = dict(options.properties)
        for field, prop in options.custom_properties.items():
            value = order.custom_fields.get(field)
            if value is not None and value != "":
                extra[prop] = mapping.text(value) if not isinstance(value, str) else value
        if options.reference_property and order.reference:
            extra[options.reference_property] = order.reference
        props = mapping.deal_properties(order, order_property=s.order_property, pipeline=options.pipeline, stage=stage, extra=extra)
        return {"properties": props, "associations": associations}, inputs, keys

    async def _line_items(self, inputs: list[dict[str, Any]], keys: list[str], what: str) -> tuple[dict[str, str], dict[str, str]]:
        """Upsert line items by ``line_property`` (100 a call): their ids and the refused ones, by key."""
        if not inputs:
            return {}, {}
        s = self.connector.settings
        outcome = await self.connector.client.batch("line_items", "upsert", inputs, keys, what=what, result_key=s.line_property)
        ids = {k: str(outcome.results[k]["id"]) for k in keys if k in outcome.results}
        refused = {k: outcome.errors.get(k, "the upsert answered no result for it") for k in keys if k not in ids}
        return ids, refused

    async def create(self, request: DocumentRequest[Order]) -> str:
        conn = self.connector
        await conn.setup()
        order = request.record
        deal, inputs, keys = self._deal(request)
        line_ids, refused = await self._line_items(inputs, keys, f"line items of order {order.number}")
        if refused:
            raise RecordError(f"order {order.number}: line items refused: {'; '.join(f'{k}: {e}' for k, e in list(refused.items())[:3])}")
        deal["associations"] += [_assoc(line_ids[k], ASSOCIATION_TYPES[("deals", "line_items")]) for k in keys]
        created = await conn.client.json("POST", "/crm/v3/objects/deals", f"deal of order {order.number}", json=deal)
        return str(created["id"])

    async def create_many(self, requests: Sequence[DocumentRequest[Order]]) -> Sequence[str | RecordError]:
        """The batch's deals: every line item in ``batch/upsert`` calls of 100 (by ``line_property``),
        then the deals in ``batch/create`` calls of 100 with their associations. A deal whose line
        items or create the 207 refuses fails alone."""
        conn = self.connector
        await conn.setup()
        s = conn.settings
        results: dict[int, str | RecordError] = {}
        deals: dict[int, tuple[dict[str, Any], list[str]]] = {}
        all_inputs: list[dict[str, Any]] = []
        all_keys: list[str] = []
        for n, request in enumerate(requests):
            try:
                deal, inputs, keys = self._deal(request)
            except RecordError as exc:
                results[n] = exc
                continue
            deals[n] = (deal, keys)
            all_inputs += inputs
            all_keys += keys
        line_ids, refused = await self._line_items(all_inputs, all_keys, f"line items of {len(deals)} orders")
        inputs, numbers = [], []
        for n, (deal, keys) in deals.items():
            number = requests[n].record.number
            bad = [f"{k}: {refused[k]}" for k in keys if k in refused]
            if bad:
                results[n] = RecordError(f"order {number}: line items refused: {'; '.join(bad[:3])}")
                continue
            deal["associations"] += [_assoc(line_ids[k], ASSOCIATION_TYPES[("deals", "line_items")]) for k in keys]
            inputs.append(deal)
            numbers.append(number)
        if inputs:
            outcome = await conn.client.batch("deals", "create", inputs, numbers, what=f"{len(inputs)} deals", result_key=s.order_property)
            for n in deals:
                if n in results:
                    continue
                number = requests[n].record.number
                if number in outcome.results:
                    results[n] = str(outcome.results[number]["id"])
                else:
                    reason = outcome.errors.get(number, "the batch create answered no result for it")
                    results[n] = RecordError(f"deal of order {number}: {reason}")
        return [results[n] for n in range(len(requests))]

    def normalize(self, record: Order) -> Order:
        for line in record.lines:
            if line.kind != "text" and line.quantity <= 0:
                raise RecordError(f"order {record.number}: a line with quantity {line.quantity} cannot be a HubSpot line item")
        return record.model_copy(update={"total": record.total.quantize(Decimal("0.01"))})


def _invoice_as_order(invoice: Invoice, number: str) -> Order:
    """An invoice in the deal sink's shape: status ``paid`` or ``invoiced``, closed on its date."""
    return Order(
        number=number,
        status="paid" if invoice.paid else "invoiced",
        created_at=datetime.combine(invoice.invoice_date, datetime.min.time(), tzinfo=timezone.utc),
        currency=invoice.currency,
        customer=invoice.customer,
        lines=tuple(
            OrderLine(
                kind="product" if line.sku or line.quantity else "text",
                sku=line.sku,
                name=line.description,
                quantity=line.quantity,
                unit_price=line.unit_price,
                prices_include_tax=invoice.prices_include_tax,
                discount=line.discount,
                tax_rate=line.tax_rate,
            )
            for line in invoice.lines
        ),
        total=invoice.total,
        total_tax=invoice.total_tax,
        paid=invoice.paid,
        payment_terms=invoice.payment_terms,
        customer_id=invoice.customer_id,
    )


class InvoiceDealSink(DocumentSink[Invoice]):
    """An invoice as a deal, as :class:`DealSink` writes an order: its ``order_property`` is
    ``invoice_prefix`` + the invoice number (so invoice and order numbers never meet), the stage
    by its status (``paid`` or ``invoiced``) through ``stages`` / ``default_stage``."""

    connector: HubSpotConnector
    documents = frozenset({"invoice", "invoice_draft", "order"})
    settings = DealSettings
    written_fields = frozenset({"number", "total", "currency", "invoice_date", "lines", "customer", "paid"})
    field_map = {
        "number": "<order_property> = <invoice_prefix><number>",
        "paid": "dealstage (stages: paid / invoiced)",
        "total": "amount",
        "currency": "deal_currency_code",
        "invoice_date": "closedate",
        "lines": "line_items",
    }

    def __init__(self, connector: Connector) -> None:
        super().__init__(connector)
        self.deals = DealSink(connector)

    def _request(self, request: DocumentRequest[Invoice]) -> DocumentRequest[Order]:
        order = _invoice_as_order(request.record, self.connector.settings.invoice_prefix + request.record.number)
        return DocumentRequest(order, "order", request.customer, request.articles, request.settings)

    async def find(self, number: str) -> Found | None:
        return (await self.find_many([number])).get(number)

    async def find_many(self, numbers: Sequence[str]) -> Mapping[str, Found]:
        prefix = self.connector.settings.invoice_prefix
        found = await self.deals.find_many([prefix + n for n in numbers])
        return {n: found[prefix + n] for n in numbers if prefix + n in found}

    async def create(self, request: DocumentRequest[Invoice]) -> str:
        return await self.deals.create(self._request(request))

    async def create_many(self, requests: Sequence[DocumentRequest[Invoice]]) -> Sequence[str | RecordError]:
        return await self.deals.create_many([self._request(r) for r in requests])

    def normalize(self, record: Invoice) -> Invoice:
        for line in record.lines:
            if line.sku and line.quantity <= 0:
                raise RecordError(f"invoice {record.number}: a line with quantity {line.quantity} cannot be a HubSpot line item")
        return record.model_copy(update={"total": record.total.quantize(Decimal("0.01"))})


class HubSpotConnector(Connector):
    """HubSpot CRM: products, customers and deals (as orders) both ways; signed webhooks as triggers."""

    name = "hubspot"
    title = "HubSpot CRM"
    Settings = HubSpotSettings
    sources = {Entity.PRODUCTS: ProductSource, Entity.CUSTOMERS: CustomerSource, Entity.ORDERS: DealSource}
    sinks = {Entity.PRODUCTS: ProductSink, Entity.CUSTOMERS: CustomerSink, Entity.ORDERS: DealSink, Entity.INVOICES: InvoiceDealSink}
    # [doc] developers.hubspot.com usage guidelines (shared/api-specs README §6): 100/10 s on the lowest
    # tier (a higher tier's -Max header is not adopted: the declared limit is never exceeded), 250,000 a day,
    # and the search endpoints' own lower limit (4/s in the older docs, 5/s in the newer: 4 is kept).
    rate_limits = (
        RateLimit(100, 10.0, name="ten_secondly", headers=RATE_LIMIT_HEADERS),
        RateLimit(250_000, 86_400.0, name="daily", headers=DAILY_HEADERS),
        RateLimit(4, 1.0, name="search", key=_search_key),
    )

    @classmethod
    def limits_for(cls, settings: Any) -> tuple[RateLimit, ...]:
        """The limits of the account's ``tier`` and ``api_limit_packs`` (usage guidelines, README §6);
        the search endpoints' own limit is the same on every tier."""
        tier = getattr(settings, "tier", "starter")
        packs = int(getattr(settings, "api_limit_packs", 0) or 0)
        per_ten, daily = TIERS.get(tier, TIERS["starter"])
        if packs:
            per_ten, daily = 250, daily + 1_000_000 * packs
        return (
            RateLimit(per_ten, 10.0, name="ten_secondly", headers=RATE_LIMIT_HEADERS),
            RateLimit(daily, 86_400.0, name="daily", headers=DAILY_HEADERS),
            RateLimit(4, 1.0, name="search", key=_search_key),
        )

    oauth_authorize_url: ClassVar[str | None] = "https://app.hubspot.com/oauth/authorize"
    oauth_scopes: ClassVar[tuple[str, ...]] = (
        "crm.objects.contacts.read",
        "crm.objects.contacts.write",
        "crm.objects.companies.read",
        "crm.objects.companies.write",
        "crm.objects.deals.read",
        "crm.objects.deals.write",
        "crm.objects.line_items.read",
        "crm.objects.line_items.write",
        "e-commerce",
        "crm.schemas.contacts.write",
        "crm.schemas.companies.write",
        "crm.schemas.deals.write",
        "crm.schemas.line_items.write",
    )
    oauth_client_auth: ClassVar[str] = "post"
    default_port: ClassVar[int | None] = 8706

    settings: HubSpotSettings

    def __init__(self, settings: ConnectorSettings, context: Any):
        super().__init__(settings, context)
        self._api: HubSpotClient | None = None
        self._token_client: httpx.AsyncClient | None = None
        self._setup_done = False
        self._customer_setup_done = False
        self._product_setup_done = False
        self.webhook_clock = time.time

    async def open(self) -> None:
        """Create the authenticated API client (a static bearer token, or OAuth2 refreshed by its lifetime)."""
        s = self.settings
        auth: httpx.Auth | None = None
        headers: dict[str, str] = {}
        if s.access_token is not None:
            headers["Authorization"] = f"Bearer {s.access_token.get_secret_value()}"
        else:
            assert s.client_id and s.client_secret
            self._token_client = self.context.http_client(base_url=s.token_url, timeout=s.timeout)
            auth = OAuth2RefreshAuth(
                token_client=self._token_client,
                token_url=s.token_url,
                client_id=s.client_id,
                client_secret=s.client_secret.get_secret_value(),
                tokens=self.context.tokens,
                initial_refresh_token=s.refresh_token.get_secret_value() if s.refresh_token else None,
                connection=self.context.name,
                refresh_on_401=False,  # HubSpot: a 401 is no signal to refresh; refresh by the token's lifetime
                client_auth="post",
            )
        http = self.context.http_client(base_url=s.base_url, auth=auth, headers=headers, timeout=s.timeout)
        self._api = HubSpotClient(http, self.context.log)

    async def aclose(self) -> None:
        """Close the HTTP clients."""
        if self._api is not None:
            await self._api.http.aclose()
            self._api = None
        if self._token_client is not None:
            await self._token_client.aclose()
            self._token_client = None

    @property
    def client(self) -> HubSpotClient:
        """The API client (after :meth:`open`)."""
        if self._api is None:
            raise FatalError("the HubSpot connection is not open")
        return self._api

    async def webhook(self, request: WebhookRequest) -> Sequence[WebhookEvent]:
        """A v3-signed delivery's events (signature and five-minute age checked first: WebhookRejected,
        answered 401; a body that is not HubSpot's array of events: WebhookRejected ``malformed``, 400)."""
        s = self.settings
        webhooks.verify_v3(
            s.signing_secret,
            request.method,
            request.url,
            request.headers,
            request.body,
            clock=self.webhook_clock,
            public_urls=[s.webhook_url] if s.webhook_url else [],
        )
        return webhooks.parse_events(request.body)

    async def check(self) -> None:
        """One cheap call that writes nothing: ``GET`` the SKU property (proves the token and its scopes).
        A missing property is fine with ``create_properties`` (the first run creates it); one that is not
        unique, or missing without it, fails as the first run would."""
        s = self.settings
        what = f"products property {s.sku_property!r}"
        response = await self.client.call("GET", f"/crm/v3/properties/products/{s.sku_property}", what, not_found="none")
        if response.status_code == 200:
            if not (json_body(response, what) or {}).get("hasUniqueValue"):
                raise FatalError(f"{what} exists but is not unique (hasUniqueValue false): configure another property name")
        elif not s.create_properties:
            raise FatalError(f"{what} does not exist; create it as a unique single-line text property, or set create_properties = true")

    async def setup(self) -> None:
        """Make sure the unique properties exist (created when ``create_properties``); once per connection."""
        if self._setup_done:
            return
        s = self.settings
        for object_type, name, label in (
            ("products", s.sku_property, "SKU (apicenterd)"),
            ("deals", s.order_property, "Order number (apicenterd)"),
            ("line_items", s.line_property, "Order line (apicenterd)"),
        ):
            await self.client.ensure_unique_property(object_type, name, label, create=s.create_properties)
        self._setup_done = True

    async def setup_customers(self) -> None:
        """Make sure the properties ``customer_properties`` writes exist on contacts and companies
        (created as single-line text when missing and ``create_properties``); once per connection."""
        if self._customer_setup_done:
            return
        s = self.settings
        for prop in dict.fromkeys(s.customer_properties.values()):
            for object_type in ("contacts", "companies"):
                await self.client.ensure_property(object_type, prop, prop.replace("_", " ").capitalize(), create=s.create_properties)
        self._customer_setup_done = True

    async def setup_products(self) -> None:
        """Make sure the product properties ``product_properties`` writes and reads exist (created as
        single-line text when missing and ``create_properties``); once per connection."""
        if self._product_setup_done:
            return
        s = self.settings
        for prop in dict.fromkeys(s.product_properties.values()):
            label = prop.replace("_", " ").capitalize()
            await self.client.ensure_property("products", prop, label, create=s.create_properties, setting="product_properties")
        self._product_setup_done = True

    @classmethod
    def simulator(cls, *, seed: int = 1, records: int = 0, **options: Any) -> Any:
        """The HubSpot simulator (see :mod:`.simulator`)."""
        from .simulator import create_app

        return create_app(seed=seed, records=records, **options)

    @classmethod
    def demo_settings(cls, base_url: str) -> dict[str, Any]:
        """A private-app token the simulator accepts."""
        from .simulator import DEMO_TOKEN

        return {"base_url": base_url, "access_token": DEMO_TOKEN}
