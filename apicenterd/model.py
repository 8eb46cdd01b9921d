"""The canonical records that every connector maps to and from; flows never see vendor JSON."""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

__all__ = [
    "Entity",
    "Record",
    "Address",
    "Contact",
    "Customer",
    "Attribute",
    "Product",
    "StockLevel",
    "OrderLine",
    "Order",
    "InvoiceLine",
    "Invoice",
    "Shipment",
    "JournalLine",
    "JournalEntry",
    "RECORD_TYPES",
]

Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
"""An ISO 4217 currency code such as ``EUR``."""

Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
"""An ISO 3166-1 alpha-2 country code such as ``NL``."""


class Entity(str, enum.Enum):  # noqa: UP042 - str() and format() of a member are relied on as they are
    """The kinds of record a flow can move."""

    PRODUCTS = "products"
    STOCK = "stock"
    CUSTOMERS = "customers"
    ORDERS = "orders"
    INVOICES = "invoices"
    SHIPMENTS = "shipments"
    JOURNAL = "journal"

    def __str__(self) -> str:  # "products", not "Entity.PRODUCTS", in messages
        return self.value


class Record(BaseModel):
    """Base of every canonical record: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def key(self) -> str:
        """The natural key a target looks this record up by (SKU, e-mail, order number)."""
        raise NotImplementedError


class Address(BaseModel):
    """A postal address; street and house number are kept apart because many targets want them so."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    street: str = ""
    house_number: str = ""
    house_number_suffix: str = ""
    line2: str = ""
    postcode: str = ""
    city: str = ""
    region: str = ""
    country: Country | None = None


class Contact(BaseModel):
    """A person at a company customer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    first_name: str = ""
    last_name: str = ""
    email: str | None = None
    phone: str | None = None

    @property
    def full_name(self) -> str:
        """First and last name joined, without stray spaces."""
        return " ".join(p for p in (self.first_name, self.last_name) if p)


class Customer(Record):
    """A debtor: a company (with a contact person) or a private person."""

    kind: Literal["company", "person"]
    name: str = Field(description="Company name, or the person's full name")
    email: str | None = None
    phone: str | None = None
    contact: Contact | None = None
    billing_address: Address = Address()
    shipping_address: Address | None = None
    vat_number: str | None = None
    coc_number: str | None = None
    customer_number: str | None = None
    language: str | None = None
    currency: Currency | None = None
    tax_code: str | None = Field(default=None, description="The target's VAT code for this debtor, set by the flow")
    revenue_account: str | None = Field(default=None, description="The target's revenue account, set by the flow")
    payment_terms: str | None = Field(default=None, description="The target's payment terms code, set by the flow")
    payment_method: str | None = Field(default=None, description="The target's payment method code, set by the flow")
    classification: str | None = Field(
        default=None, description="A customer class or segment (e.g. a CRM lifecycle stage), set by the flow's map"
    )
    cost_centre: str | None = None
    cost_unit: str | None = None
    custom_fields: dict[str, Any] = Field(
        default_factory=dict, description="The target's custom (free) fields by name, from the source or flow settings"
    )

    @field_validator("email")
    @classmethod
    def _normalise_email(cls, value: str | None) -> str | None:
        """Trimmed and lower-cased; blank is None (so it never becomes a lookup key)."""
        value = value.strip().lower() if value else None
        return value or None

    def key(self) -> str:
        """Customers are matched by e-mail address (case-insensitive), else by customer number."""
        return self.email or self.customer_number or self.name


class Attribute(BaseModel):
    """A product attribute such as colour=red."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    value: str


class Product(Record):
    """A sellable article, simple or a variant of a parent product."""

    sku: Annotated[str, StringConstraints(min_length=1)]
    name: str
    ean: str | None = Field(default=None, description="EAN / GTIN barcode")
    short_description: str | None = None
    description: str | None = Field(default=None, description="Long description (may contain HTML)")
    price_excl_tax: Decimal | None = None
    price_incl_tax: Decimal | None = None
    tax_rate: Decimal | None = Field(default=None, description="VAT percentage, e.g. 21")
    purchase_price: Decimal | None = None
    currency: Currency = "EUR"
    quantity: Decimal | None = Field(default=None, description="Stock on hand, where the source keeps it on the product")
    unit: str | None = None
    type: Literal["simple", "variant"] = "simple"
    parent_sku: str | None = None
    attributes: tuple[Attribute, ...] = ()
    categories: tuple[str, ...] = ()
    images: tuple[str, ...] = ()
    active: bool = True
    weight_kg: Decimal | None = None
    item_group: str | None = Field(default=None, description="The target's item group / assortment code, set by the flow")
    custom_fields: dict[str, Any] = Field(
        default_factory=dict, description="The target's custom (free) fields by name, from the source or flow settings"
    )

    def key(self) -> str:
        """Products are matched by SKU."""
        return self.sku


class StockLevel(Record):
    """How much of one SKU there is at one location."""

    sku: Annotated[str, StringConstraints(min_length=1)]
    location: str | None = None
    on_hand: Decimal
    reserved: Decimal = Decimal(0)
    available: Decimal
    tracked: bool = Field(default=True, description="Whether the source manages stock for this SKU at all")

    def key(self) -> str:
        """Stock is matched by SKU."""
        return self.sku


class OrderLine(BaseModel):
    """One line of an order: a product, shipping costs, a discount, a fee, or a text line (a
    description without article or amount, e.g. a custom row the order process keeps as text)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["product", "shipping", "discount", "fee", "text"] = "product"
    sku: str | None = None
    name: str = ""
    quantity: Decimal = Decimal(1)
    unit_price: Decimal = Field(description="Price per unit before the line discount")
    prices_include_tax: bool = True
    discount: Decimal = Field(default=Decimal(0), description="Discount amount for the whole line")
    tax_rate: Decimal | None = None
    total: Decimal | None = None
    tax_code: str | None = Field(default=None, description="The target's VAT code, set by the order flow's tax map")
    account: str | None = Field(default=None, description="The target's revenue account, set by the order flow")
    cost_centre: str | None = None
    cost_unit: str | None = None


class Order(Record):
    """A sales order from a shop or a till."""

    number: Annotated[str, StringConstraints(min_length=1)] = Field(description="The source's order number")
    status: str
    created_at: datetime
    currency: Currency = "EUR"
    customer: Customer | None = None
    billing_address: Address = Address()
    shipping_address: Address | None = None
    lines: tuple[OrderLine, ...] = ()
    total: Decimal
    total_tax: Decimal | None = None
    paid: bool = False
    payment_method: str | None = None
    payment_terms: str | None = None
    reference: str | None = None
    note: str | None = None
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    document: Literal["quote", "order", "invoice_draft", "invoice"] | None = Field(
        default=None, description="What the order flow asks the target to create (its `document` option)"
    )
    customer_id: str | None = Field(default=None, description="The target's id of the debtor, set by the order flow")
    target_fields: dict[str, Any] = Field(
        default_factory=dict,
        description="Values the target requires and the source lacks (store id, branch, employee), from flow settings",
    )
    cost_centre: str | None = None
    cost_unit: str | None = None

    def key(self) -> str:
        """Orders are matched by the source's order number."""
        return self.number


class InvoiceLine(BaseModel):
    """One line of an invoice."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["product", "shipping", "discount", "fee", "text"] = "product"
    sku: str | None = None
    description: str = ""
    quantity: Decimal = Decimal(1)
    unit_price: Decimal
    discount: Decimal = Decimal(0)
    tax_rate: Decimal | None = None
    tax_code: str | None = None
    account: str | None = None
    cost_centre: str | None = None
    cost_unit: str | None = None


class Invoice(Record):
    """A sales invoice."""

    number: Annotated[str, StringConstraints(min_length=1)]
    order_number: str | None = None
    invoice_date: date
    due_date: date | None = None
    currency: Currency = "EUR"
    customer: Customer | None = None
    lines: tuple[InvoiceLine, ...] = ()
    total: Decimal
    total_tax: Decimal | None = None
    prices_include_tax: bool = True
    paid: bool = False
    payment_terms: str | None = None
    payment_method: str | None = None
    customer_id: str | None = Field(default=None, description="The target's id of the debtor, set by the flow")
    target_fields: dict[str, Any] = Field(default_factory=dict)
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    cost_centre: str | None = None
    cost_unit: str | None = None

    def key(self) -> str:
        """Invoices are matched by their number."""
        return self.number


class Shipment(Record):
    """A parcel sent for an order, with its track and trace code."""

    order_number: Annotated[str, StringConstraints(min_length=1)]
    tracking_code: str
    carrier: str | None = None
    tracking_url: str | None = None
    shipped_at: datetime | None = None
    lines: tuple[OrderLine, ...] = ()

    def key(self) -> str:
        """A shipment is matched by its order and tracking code (an order may have several)."""
        return f"{self.order_number}/{self.tracking_code}"


class JournalLine(BaseModel):
    """One debit or credit line of a journal entry."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account: str
    debit: Decimal = Decimal(0)
    credit: Decimal = Decimal(0)
    description: str = ""
    cost_centre: str | None = None
    cost_unit: str | None = None


class JournalEntry(Record):
    """A booked journal entry (e.g. a till's daily cash-up)."""

    number: Annotated[str, StringConstraints(min_length=1)]
    entry_date: date
    currency: Currency = "EUR"
    description: str = ""
    lines: tuple[JournalLine, ...] = ()

    def key(self) -> str:
        """Journal entries are matched by their number."""
        return self.number


RECORD_TYPES: dict[Entity, type[Record]] = {
    Entity.PRODUCTS: Product,
    Entity.STOCK: StockLevel,
    Entity.CUSTOMERS: Customer,
    Entity.ORDERS: Order,
    Entity.INVOICES: Invoice,
    Entity.SHIPMENTS: Shipment,
    Entity.JOURNAL: JournalEntry,
}
"""Which canonical record type each entity carries."""
