"""The order process, written once for every target: its pure steps (value maps for payment,
tax codes and accounts, shipping and discount lines, lines without SKU) and :class:`OrderProcess`,
which finds or creates the debtor and the articles and hands the document sink all of it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .compare import differing_fields
from .errors import RecordError
from .flows import OrderOptions, Skip
from .model import Entity, Invoice, InvoiceLine, Order, OrderLine, Product
from .plugin import Change, DocumentRequest, Found
from .state import Link

if TYPE_CHECKING:  # pragma: no cover
    from .engine import Engine
    from .flowrun import FlowRun

PENDING_DEBTOR = "\x00pending-debtor:"
"""The id prefix of a debtor collected for the batch's ``create_many`` (replaced before the documents are sent)."""

__all__ = [
    "OrderProcess", "lines_without_sku", "select", "apply_maps", "missing_product", "rate_key", "order_to_invoice", "invoice_to_order",
]


def select(order: Order | Invoice, options: OrderOptions) -> Order | Skip:
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
        if line.kind == "product" and options.shipping_sku and line.sku == options.shipping_sku:
            line = line.model_copy(update={"kind": "shipping"})  # the source books shipping on the shipping article
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
                kind=line.kind,
                sku=line.sku,
                description=line.name,
                quantity=line.quantity,
                unit_price=line.unit_price,
                discount=line.discount,
                tax_rate=line.tax_rate,
                tax_code=line.tax_code,
                account=line.account,
                cost_centre=line.cost_centre,
                cost_unit=line.cost_unit,
            )
            for line in order.lines
        ),
        total=order.total,
        total_tax=order.total_tax,
        prices_include_tax=prices_include_tax,
        paid=order.paid,
        payment_terms=order.payment_terms,
        payment_method=order.payment_method,
        customer_id=order.customer_id,
        target_fields=order.target_fields,
        custom_fields=order.custom_fields,
        cost_centre=order.cost_centre,
        cost_unit=order.cost_unit,
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
                kind=line.kind,
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
                cost_unit=line.cost_unit,
            )
            for line in invoice.lines
        ),
        total=invoice.total,
        total_tax=invoice.total_tax,
        paid=invoice.paid,
        payment_terms=invoice.payment_terms,
        payment_method=invoice.payment_method,
        custom_fields=invoice.custom_fields,
        cost_centre=invoice.cost_centre,
        cost_unit=invoice.cost_unit,
    )


class OrderProcess:
    """The order process of one order (orders and invoices flows), for every target:

    1. status filter (:func:`select`, in the flow's prepare step), 2. maps (:func:`apply_maps`),
    3. skip if it exists (linked, or found by number), 4. the debtor by e-mail (a company with its
    contact, a person, or the default debtor), 5. the articles (found, or created when
    ``missing_products = "create"``), lines without SKU as ``lines_without_sku`` says, 6. the
    document: a :class:`~apicenterd.DocumentSink` gets a :class:`~apicenterd.DocumentRequest`
    with all of it, so it needs no look-ups of its own.

    The calls go through the engine (retries, 429 pauses, dry-run plans)."""

    def __init__(self, engine: Engine, run: FlowRun, log: Any):
        self.engine = engine
        self.run_ = run
        self.flow = run.flow
        self.target = run.target
        self.log = log
        options = run.flow.options
        assert isinstance(options, OrderOptions)
        self.options = options

    async def _find(self, what: str, entity: Entity, key: str) -> Found | None:
        """``key`` of ``entity`` in the target: from the batch's look-ups if they asked, else one call
        (a debtor or article found is kept for the batch's next orders)."""
        run = self.run_
        if entity is self.flow.entity and key in run.looked_up:
            return run.looked_up[key]
        if (entity, key) in run.order_lookups:
            return run.order_lookups[(entity, key)]
        found: Found | None = await self.engine.call(run, self.log, what, self.target.find, entity, key)
        if entity is not self.flow.entity:
            run.order_lookups[(entity, key)] = found
        return found

    def _known(self, entity: Entity, key: str, found: Found) -> None:
        """Note a debtor or article just written, for the batch's next orders."""
        self.run_.order_lookups[(entity, key)] = found

    def _batched_documents(self) -> bool:
        """Whether this run's documents are collected for the document sink's ``create_many``."""
        entity = self.flow.entity
        return (
            self.run_.deferred is not None
            and not self.engine.dry_run
            and entity in self.target.sinks
            and self.target.document_sink(entity).batch_create
        )

    async def run(self, change: Change, order: Order, settle: Callable[..., Awaitable[str]]) -> str:
        """Take ``order`` to the target; settle it; the action."""
        flow, entity, run = self.flow, self.flow.entity, self.run_
        if run.deferred is not None and any(k == order.number or h["source_id"] == change.source_id for k, h in run.in_flight()):
            await self.engine._flush(run)  # a second change of an order (or number) being created: create the first now
        link = await self.engine.link(self.run_, change.source_id)
        if link is not None:
            return await settle("skipped", target_id=link.target_id, reason="exists: already created (linked)")

        def order_link(target_id: str) -> Link:
            return Link(flow.source, str(entity), change.source_id, flow.target, target_id, "")

        found = await self._find(f"find {entity} {order.number}", entity, order.number)
        if found is not None:
            self.log.info(self.engine.said("order exists in target, linked"), target_id=found.id)
            return await settle("skipped", target_id=found.id, reason="exists: found in target by order number", link=order_link(found.id))

        order = apply_maps(order, self.options, flow.name, flow.target_settings)
        order = lines_without_sku(order, self.options)
        customer = await self.customer(order)
        order = order.model_copy(update={"customer_id": customer.id if customer else None})
        articles = await self.articles(order)

        document: Order | Invoice = order_to_invoice(order) if entity is Entity.INVOICES else order
        document = self.target.normalize(entity, document)  # type: ignore[assignment]
        fields = frozenset(self.target.written_fields.get(entity) or type(document).model_fields)
        create: Callable[[], Awaitable[str]] | None = None
        if entity in self.target.sinks:
            sink = self.target.document_sink(entity)
            kind = (order.document or "order") if isinstance(document, Order) else str(document.target_fields.get("document") or "invoice")
            settings_model = sink.settings
            settings = settings_model.model_validate(dict(flow.target_settings)) if settings_model is not None else None
            request: DocumentRequest[Any] = DocumentRequest(document, kind, customer, articles, settings)

            async def create_document() -> str:
                return await sink.create(request)

            create = create_document
            if run.deferred is not None and sink.batch_create and not self.engine.dry_run:
                return self._defer(change, order, request, order_link, settle)

        target_id = await self.engine.write(self.run_, self.log, "create", entity, None, document, fields, None, create=create)
        if order.number in run.looked_up:  # a second source record with this number finds it
            run.looked_up[order.number] = Found(target_id, None)
        self.log.info(
            self.engine.said(f"{'order' if entity is Entity.ORDERS else 'invoice'} created"),
            target_id=target_id,
            document=order.document,
            customer_id=order.customer_id,
        )
        return await settle("created", target_id=target_id, link=order_link(target_id))

    def _defer(
        self,
        change: Change,
        order: Order,
        request: DocumentRequest[Any],
        order_link: Callable[[str], Link],
        settle: Callable[..., Awaitable[str]],
    ) -> str:
        """Collect the document for the batch's ``create_many``; settled after it, in the source's order."""
        holder: dict[str, Any] = {"source_id": change.source_id, "link": order_link}
        self.run_.pending_documents.append((order.number, request, holder))
        log = self.log
        entity = self.flow.entity

        async def created() -> str:  # called once the batch's deferral is over: settle() settles at once
            result = holder.get("result")
            if isinstance(result, str):
                log.info(
                    f"{'order' if entity is Entity.ORDERS else 'invoice'} created",
                    target_id=result,
                    document=order.document,
                    customer_id=holder.get("customer_id", order.customer_id),
                    batched=True,
                )
                return await settle("created", target_id=result, link=order_link(result))
            reason = str(result) if result is not None else "the batch create gave no answer for this document"
            log.warning("record failed", reason=reason)
            return await settle("failed", reason=reason)

        assert self.run_.deferred is not None
        self.run_.deferred.append(created)
        return "created"

    async def customer(self, order: Order) -> Found | None:
        """Step 4: the debtor in the target (found by e-mail and updated, created, or the default)."""
        options = self.options
        customer = order.customer
        if options.customer == "default" or (options.customer == "default_without_email" and not (customer and customer.email)):
            return Found(options.default_customer) if options.default_customer else None
        if customer is None or not customer.email:
            raise RecordError(
                f"order {order.number}: has no customer e-mail to match a debtor by; "
                f"set options.customer = \"default_without_email\" with a default_customer"
            )
        if order.payment_terms and not customer.payment_terms:
            # some targets keep terms only on the debtor (eAccounting): carry the mapped terms there
            customer = customer.model_copy(update={"payment_terms": order.payment_terms})
        customer = self.target.normalize(Entity.CUSTOMERS, customer)  # type: ignore[assignment]
        fields = frozenset(self.target.written_fields.get(Entity.CUSTOMERS) or type(customer).model_fields)
        found = await self._find(f"find customer {customer.email}", Entity.CUSTOMERS, customer.key())
        if found is None:
            if self._batched_documents() and self.engine.batch_creates(Entity.CUSTOMERS, self.run_):
                # created with the batch's other new debtors, just before its documents (which
                # get the debtor's id then): one batch call instead of one create per debtor
                self.run_.pending_debtors[customer.key()] = customer
                placeholder = Found(PENDING_DEBTOR + customer.key(), customer)
                self._known(Entity.CUSTOMERS, customer.key(), placeholder)
                return placeholder
            cid = await self.engine.write(self.run_, self.log, "create", Entity.CUSTOMERS, None, customer, fields, None)
            self.log.info(self.engine.said("customer created"), target_id=cid, kind=customer.kind)
            self._known(Entity.CUSTOMERS, customer.key(), Found(cid, customer))
            return Found(cid, customer)
        if found.id.startswith(PENDING_DEBTOR):  # a debtor of this batch, not created yet: as collected
            return found
        if options.update_customers:
            changed = differing_fields(customer, found.record, fields - set(options.customer_create_only_fields))
            if changed:
                await self.engine.write(self.run_, self.log, "update", Entity.CUSTOMERS, found.id, customer, changed, found.record)
                self.log.info(self.engine.said("customer updated"), target_id=found.id, fields=sorted(changed))
                self._known(Entity.CUSTOMERS, customer.key(), Found(found.id, customer))
                return Found(found.id, customer)  # its vendor item is stale now
        return found

    async def articles(self, order: Order) -> dict[str, Found]:
        """Step 5: the target's article for each SKU of the lines (created when missing and
        ``missing_products = "create"``; else RecordError naming the missing ones)."""
        missing: list[str] = []
        articles: dict[str, Found] = {}
        for line in order.lines:
            if not line.sku or line.sku in articles:
                continue
            found = await self._find(f"find product {line.sku}", Entity.PRODUCTS, line.sku)
            if found is not None:
                articles[line.sku] = found
                continue
            if self.options.missing_products == "create":
                product = self.target.normalize(Entity.PRODUCTS, missing_product(line, order))
                fields = frozenset(self.target.written_fields.get(Entity.PRODUCTS) or type(product).model_fields)
                pid = await self.engine.write(self.run_, self.log, "create", Entity.PRODUCTS, None, product, fields, None)
                self.log.info(self.engine.said("product created for order"), sku=line.sku, target_id=pid)
                articles[line.sku] = Found(pid, product)
                self._known(Entity.PRODUCTS, line.sku, articles[line.sku])
            else:
                missing.append(line.sku)
        if missing:
            raise RecordError(f"order {order.number}: SKU not in target: {', '.join(missing)} (missing_products = \"fail\")")
        return articles


def lines_without_sku(order: Order, options: OrderOptions) -> Order:
    """Product lines without SKU (a custom row, an engraving) as ``options.lines_without_sku`` says:
    ``text`` keeps them as text lines (``kind = "text"``: their name, no article; one with an amount
    is a RecordError, so no money is left out of the document silently), ``article`` books them on
    ``options.fallback_sku``, ``fail`` fails the order naming them."""
    loose = [n for n, line in enumerate(order.lines, 1) if line.kind == "product" and not line.sku]
    if not loose:
        return order
    mode = options.lines_without_sku
    if mode == "fail":
        raise RecordError(
            f"order {order.number}: line(s) {', '.join(map(str, loose))} have no SKU "
            "(set options.lines_without_sku = \"text\", or \"article\" with a fallback_sku)"
        )
    lines = list(order.lines)
    for n in loose:
        line = lines[n - 1]
        if mode == "article":
            lines[n - 1] = line.model_copy(update={"sku": options.fallback_sku})
            continue
        amount = line.quantity * line.unit_price - line.discount
        if amount != 0:
            raise RecordError(
                f"order {order.number}: line {n} ({line.name or 'no name'}) has no SKU and an amount of {amount}: "
                "a text line cannot carry it; set options.lines_without_sku = \"article\" with a fallback_sku"
            )
        lines[n - 1] = line.model_copy(update={"kind": "text"})
    return order.model_copy(update={"lines": tuple(lines)})
