"""The flow kinds: per entity, the options a flow takes and how a source record is prepared for the target."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from .model import Customer, Entity, Invoice, JournalEntry, Order, Product, Record, StockLevel
from .validation import SettingsModel

__all__ = [
    "FlowOptions",
    "ProductOptions",
    "StockOptions",
    "OrderOptions",
    "CustomerOptions",
    "InvoiceOptions",
    "JournalOptions",
    "OPTIONS",
    "Skip",
    "prepare",
    "customer_maps",
]


class FlowOptions(SettingsModel):
    """Options every flow kind accepts."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ProductOptions(FlowOptions):
    """Options of a products flow."""

    update_existing: bool = True
    """Update products that exist in the target; false: only create missing ones."""
    item_group: str | None = None
    """The target's item group (assortment) code for every product (unless ``item_groups`` maps its category)."""
    item_groups: dict[str, str] = Field(default_factory=dict)
    """Source category (the product's first one in it) → the target's item group code."""
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    """Constant values for the target's custom (free) fields by name (added to ``Product.custom_fields``)."""


class StockOptions(FlowOptions):
    """Options of a stock flow."""

    available: Literal["on_hand_minus_reserved", "on_hand", "source"] = "on_hand_minus_reserved"
    """How the available quantity written to the target is computed: on hand minus
    sales reservations (default), on hand alone, or the source's own figure."""
    manage_stock: bool = True
    """Write stock only for SKUs whose stock the source manages; false: write every SKU
    (untracked ones as their on-hand figure, usually 0)."""
    allow_negative: bool = False
    """Write negative availability as is; false: write 0 instead."""


class OrderOptions(FlowOptions):
    """Options of an orders flow: the order process and its value maps."""

    statuses: list[str] = Field(default_factory=list)
    """Only orders whose (canonical) status is listed; empty: every status."""
    require_paid: bool = False
    """Only orders that are paid."""
    document: Literal["quote", "order", "invoice_draft", "invoice"] = "order"
    """What to create in the target; the target connector must support it."""
    customer: Literal["match", "default", "default_without_email"] = "match"
    """match: find the debtor by e-mail (create or update it); default: always the default debtor;
    default_without_email: the default debtor for orders without an e-mail address."""
    default_customer: str | None = None
    """The target's id of the default debtor."""
    customer_create_only_fields: list[str] = Field(default_factory=list)
    """Customer fields written when the debtor is created, never on update."""
    update_customers: bool = True
    """Update a debtor found by e-mail with the order's customer data."""
    missing_products: Literal["fail", "create"] = "fail"
    """A SKU the target lacks: fail the order naming it, or create the product from the line."""
    lines_without_sku: Literal["text", "article", "fail"] = "text"
    """A product line without SKU (a custom row, an engraving): a text line in the document
    (name, quantity and price, no article), booked on ``fallback_sku`` ("article"), or the
    whole order fails ("fail")."""
    fallback_sku: str | None = None
    """The target's article for product lines without SKU when lines_without_sku = "article"."""
    payment_methods: dict[str, str] | None = None
    """Source payment method → target code. When set, a method it lacks is a record error."""
    payment_terms: dict[str, str] | None = None
    """Source payment terms (or payment method, when the order has no terms) → target terms code."""
    tax_codes: dict[str, dict[str, str]] = Field(default_factory=dict)
    """Country (or "default") → {VAT rate → tax code, "default" → code}. When set, a line whose
    country and rate it lacks is a record error."""
    revenue_accounts: dict[str, str] = Field(default_factory=dict)
    """Country (or "default") → revenue account for product lines."""
    cost_centre: str | None = None
    cost_unit: str | None = None
    shipping_sku: str | None = None
    """Book shipping costs as their own line with this article."""
    shipping_account: str | None = None
    discount_sku: str | None = None
    """Book order-level discounts as their own line with this article."""
    fee_sku: str | None = None
    """Book payment and other fees as their own line with this article."""
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    """Constant values for the target's custom fields (passed in ``Order.custom_fields``)."""

    @model_validator(mode="after")
    def _default_customer(self) -> OrderOptions:
        if self.customer != "match" and not self.default_customer:
            raise ValueError(f"customer = {self.customer!r} needs default_customer (the target's debtor id)")
        if self.lines_without_sku == "article" and not self.fallback_sku:
            raise ValueError('lines_without_sku = "article" needs fallback_sku (the target\'s article for such lines)')
        return self


class CustomerOptions(FlowOptions):
    """Options of a customers flow (also used for the debtor an order flow writes)."""

    tax_codes: dict[str, str] = Field(default_factory=dict)
    """Country (or "default") → the target's VAT code for debtors there. When set, a customer
    whose country it lacks is a record error."""
    revenue_accounts: dict[str, str] = Field(default_factory=dict)
    """Country (or "default") → the target's revenue account for debtors there."""
    payment_terms: str | None = None
    """The target's payment terms code for new and updated debtors."""
    payment_method: str | None = None
    """The target's payment method code for new and updated debtors."""
    cost_centre: str | None = None
    """The target's cost centre for debtors."""
    cost_unit: str | None = None
    """The target's cost unit for debtors."""
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    """Constant values for the target's custom (free) fields by name (added to ``Customer.custom_fields``)."""
    update_existing: bool = True


class InvoiceOptions(OrderOptions):
    """Options of an invoices flow: the order process, writing invoices."""

    source_entity: Literal["invoices", "orders"] = "invoices"
    """Read the source's invoices, or make invoices from its (paid) orders."""
    document: Literal["quote", "order", "invoice_draft", "invoice"] = "invoice"


class JournalOptions(FlowOptions):
    """Options of a journal flow (financial mutations)."""

    accounts: dict[str, str] = Field(default_factory=dict)
    """Source GL account → the target's GL account ("default" for the rest). When set, a line on
    an account it lacks (and no "default") is a record error; unset: the source's account as it is."""
    cost_centre: str | None = None
    """The target's cost centre for lines that have none."""
    cost_unit: str | None = None
    """The target's cost unit for lines that have none."""


OPTIONS: dict[Entity, type[FlowOptions]] = {
    Entity.PRODUCTS: ProductOptions,
    Entity.STOCK: StockOptions,
    Entity.ORDERS: OrderOptions,
    Entity.CUSTOMERS: CustomerOptions,
    Entity.INVOICES: InvoiceOptions,
    Entity.JOURNAL: JournalOptions,
}
"""The options model of each flow kind; kinds not listed take no options."""


@dataclasses.dataclass(frozen=True)
class Skip:
    """A record the flow deliberately does not write, and why."""

    reason: str


def prepare(entity: Entity, options: FlowOptions, record: Record) -> Record | Skip:
    """Apply the flow kind's own rules to a source record before mapping."""
    if entity is Entity.STOCK and isinstance(record, StockLevel) and isinstance(options, StockOptions):
        return _prepare_stock(options, record)
    if entity in (Entity.ORDERS, Entity.INVOICES) and isinstance(options, OrderOptions) and isinstance(record, (Order, Invoice)):
        from .orders import select

        return select(record, options)
    if entity is Entity.CUSTOMERS and isinstance(options, CustomerOptions) and isinstance(record, Customer):
        return customer_maps(record, options, "")
    if entity is Entity.PRODUCTS and isinstance(options, ProductOptions) and isinstance(record, Product):
        return _prepare_product(options, record)
    if entity is Entity.JOURNAL and isinstance(options, JournalOptions) and isinstance(record, JournalEntry):
        return _prepare_journal(options, record)
    return record


def _prepare_product(options: ProductOptions, product: Product) -> Product:
    update: dict[str, Any] = {}
    group = next((options.item_groups[c] for c in product.categories if c in options.item_groups), None) or options.item_group
    if group and not product.item_group:
        update["item_group"] = group
    if options.custom_fields:
        update["custom_fields"] = {**product.custom_fields, **options.custom_fields}
    return product.model_copy(update=update) if update else product


def _prepare_journal(options: JournalOptions, entry: JournalEntry) -> JournalEntry:
    """The flow's account map and cost centre and unit on each line; RecordError for an unmapped account."""
    from .errors import RecordError

    if not (options.accounts or options.cost_centre or options.cost_unit):
        return entry
    lines = []
    for n, line in enumerate(entry.lines, 1):
        update: dict[str, Any] = {}
        if options.accounts:
            account = options.accounts.get(line.account, options.accounts.get("default"))
            if account is None:
                known = ", ".join(sorted(options.accounts))
                raise RecordError(
                    f"journal entry {entry.number}: line {n}: account {line.account!r} is not in options.accounts (it has: {known})"
                )
            update["account"] = account
        if options.cost_centre and not line.cost_centre:
            update["cost_centre"] = options.cost_centre
        if options.cost_unit and not line.cost_unit:
            update["cost_unit"] = options.cost_unit
        lines.append(line.model_copy(update=update) if update else line)
    return entry.model_copy(update={"lines": tuple(lines)})


def customer_maps(customer: Customer, options: CustomerOptions, where: str) -> Customer:
    """A customer with the flow's tax code, revenue account and payment terms for its country;
    RecordError when a configured map lacks the country."""
    from .errors import RecordError

    country = customer.billing_address.country or ""
    update: dict[str, Any] = {}
    for attr, table in (("tax_code", options.tax_codes), ("revenue_account", options.revenue_accounts)):
        if not table:
            continue
        value = table.get(country, table.get("default"))
        if value is None:
            known = ", ".join(sorted(table))
            raise RecordError(
                f"customer {customer.key()}: country {country or '(none)'!r} is not in {where}options.{attr}s (it has: {known})"
            )
        update[attr] = value
    if options.payment_terms:
        update["payment_terms"] = options.payment_terms
    for attr in ("payment_method", "cost_centre", "cost_unit"):
        if getattr(options, attr):
            update[attr] = getattr(options, attr)
    if options.custom_fields:
        update["custom_fields"] = {**customer.custom_fields, **options.custom_fields}
    return customer.model_copy(update=update) if update else customer


def _prepare_stock(options: StockOptions, level: StockLevel) -> StockLevel | Skip:
    if options.manage_stock and not level.tracked:
        return Skip("stock not managed for this SKU in the source (manage_stock = true)")
    if options.available == "on_hand_minus_reserved":
        available = level.on_hand - level.reserved
    elif options.available == "on_hand":
        available = level.on_hand
    else:
        available = level.available
    if not options.allow_negative and available < 0:
        available = Decimal(0)
    return level.model_copy(update={"available": available})
