"""The order process's pure steps: value maps (payment, tax codes, accounts), shipping and
discount lines, enrichment. The calls to the target are the engine's (see Engine._process_order)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from .errors import RecordError
from .flows import OrderOptions, Skip
from .model import Invoice, InvoiceLine, Order, OrderLine, Product

__all__ = ["select", "apply_maps", "missing_product", "rate_key", "order_to_invoice", "invoice_to_order"]


def select(order: Order, options: OrderOptions) -> Order | Skip:
    """Step 1: keep only orders in the configured statuses (and paid, when required)."""
    if isinstance(order, Invoice):
        order = invoice_to_order(order)
    if options.statuses and order.status not in options.statuses:
        return Skip(f"status {order.status!r} is not one of {options.statuses}")
    if options.require_paid and not order.paid:
        return Skip("not paid (require_paid = true)")
    return order


def rate_key(rate: Decimal | None) -> str:
    """A VAT rate as the tax map spells it: ``21``, ``9``, ``5.5``."""
    if rate is None:
        return "none"
    return format(rate.normalize(), "f")


def _lookup(table: Mapping[str, Any], key: str, what: str, where: str) -> Any:
    if key in table:
        return table[key]
    if "default" in table:
        return table["default"]
    known = ", ".join(sorted(table)) or "none"
    raise RecordError(f"{what} {key!r} is not in {where} (it has: {known}; add it or a \"default\")")


def apply_maps(order: Order, options: OrderOptions, flow: str, target_fields: Mapping[str, Any]) -> Order:
    """Steps 2 and 6: enrichment, payment and tax maps, accounts, shipping and discount lines.

    A value missing from a configured map is a RecordError naming the value and the map.
    """
    where = f"flows.{flow}.options"
    country = ((order.shipping_address or order.billing_address).country or "") if order else ""
    payment_method = order.payment_method
    if options.payment_methods is not None:
        if payment_method is None:
            raise RecordError(f"order {order.number}: has no payment method, and {where}.payment_methods is set")
        payment_method = _lookup_strict(options.payment_methods, payment_method, "payment method", f"{where}.payment_methods")
    payment_terms = order.payment_terms
    if options.payment_terms is not None:
        source = payment_terms or order.payment_method
        if source is None:
            raise RecordError(f"order {order.number}: has no payment terms or method to map with {where}.payment_terms")
        payment_terms = _lookup_strict(options.payment_terms, source, "payment terms", f"{where}.payment_terms")

    lines = []
    for line in order.lines:
        update: dict[str, Any] = {}
        if options.tax_codes:
            table = options.tax_codes.get(country) or options.tax_codes.get("default")
            if table is None:
                known = ", ".join(sorted(options.tax_codes))
                raise RecordError(f"country {country or '(none)'!r} is not in {where}.tax_codes (it has: {known})")
            update["tax_code"] = _lookup(table, rate_key(line.tax_rate), "VAT rate", f"{where}.tax_codes.{country or 'default'}")
        if line.kind == "product" and options.revenue_accounts:
            update["account"] = _lookup(options.revenue_accounts, country, "country", f"{where}.revenue_accounts")
        if line.kind == "shipping":
            if options.shipping_sku:
                update["sku"] = options.shipping_sku
            if options.shipping_account:
                update["account"] = options.shipping_account
        if line.kind == "discount" and options.discount_sku:
            update["sku"] = options.discount_sku
        if line.kind == "fee" and options.fee_sku:
            update["sku"] = options.fee_sku
        if options.cost_centre:
            update["cost_centre"] = options.cost_centre
        if options.cost_unit:
            update["cost_unit"] = options.cost_unit
        lines.append(line.model_copy(update=update) if update else line)

    return order.model_copy(
        update={
            "lines": tuple(lines),
            "payment_method": payment_method,
            "payment_terms": payment_terms,
            "document": options.document,
            "target_fields": {**order.target_fields, **dict(target_fields)},
            "custom_fields": {**order.custom_fields, **options.custom_fields},
            "cost_centre": options.cost_centre or order.cost_centre,
            "cost_unit": options.cost_unit or order.cost_unit,
        }
    )


def _lookup_strict(table: Mapping[str, str], key: str, what: str, where: str) -> str:
    if key in table:
        return table[key]
    known = ", ".join(sorted(table)) or "none"
    raise RecordError(f"{what} {key!r} is not in {where} (it maps: {known})")


def missing_product(line: OrderLine, order: Order) -> Product:
    """Step 5 (missing_products = create): the product to create for a line's unknown SKU.
    Shipping, discount and fee articles get price 0: each order line carries its own amount."""
    price = line.unit_price if line.kind == "product" else Decimal(0)
    return Product(
        sku=line.sku or "",
        name=line.name or line.sku or "",
        currency=order.currency,
        # an order-level discount line often has no rate of its own: take the order's highest
        tax_rate=line.tax_rate if line.tax_rate is not None else max(
            (other.tax_rate for other in order.lines if other.tax_rate is not None), default=None
        ),
        price_incl_tax=price if line.prices_include_tax else None,
        price_excl_tax=None if line.prices_include_tax else price,
    )


def order_to_invoice(order: Order) -> Invoice:
    """The invoice for an order (invoices flow with ``source_entity = "orders"``): same number,
    customer, lines, totals; dated the order's day."""
    prices_include_tax = all(line.prices_include_tax for line in order.lines) if order.lines else True
    return Invoice(
        number=order.number,
        order_number=order.number,
        invoice_date=order.created_at.date(),
        currency=order.currency,
        customer=order.customer,
        lines=tuple(
            InvoiceLine(
                sku=line.sku,
                description=line.name,
                quantity=line.quantity,
                unit_price=line.unit_price,
                discount=line.discount,
                tax_rate=line.tax_rate,
                tax_code=line.tax_code,
                account=line.account,
                cost_centre=line.cost_centre,
            )
            for line in order.lines
        ),
        total=order.total,
        total_tax=order.total_tax,
        prices_include_tax=prices_include_tax,
        paid=order.paid,
        payment_terms=order.payment_terms,
        customer_id=order.customer_id,
        target_fields=order.target_fields,
    )


def invoice_to_order(invoice: Invoice) -> Order:
    """A source invoice in the order process's shape, so the same maps and checks apply."""
    from datetime import datetime, time, timezone

    address = invoice.customer.billing_address if invoice.customer else None
    return Order(
        number=invoice.number,
        status="paid" if invoice.paid else "invoiced",
        created_at=datetime.combine(invoice.invoice_date, time(0), tzinfo=timezone.utc),
        currency=invoice.currency,
        customer=invoice.customer,
        billing_address=address or Order.model_fields["billing_address"].default,
        lines=tuple(
            OrderLine(
                sku=line.sku,
                name=line.description,
                quantity=line.quantity,
                unit_price=line.unit_price,
                prices_include_tax=invoice.prices_include_tax,
                discount=line.discount,
                tax_rate=line.tax_rate,
                tax_code=line.tax_code,
                account=line.account,
                cost_centre=line.cost_centre,
            )
            for line in invoice.lines
        ),
        total=invoice.total,
        total_tax=invoice.total_tax,
        paid=invoice.paid,
        payment_terms=invoice.payment_terms,
    )
