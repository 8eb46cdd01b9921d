"""Sales documents in eAccounting: find an order or invoice by its reference across orders,
invoice drafts and invoices, and create one after resolving debtor, articles, cost centres,
delivery method/term and terms of payment."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from apicenterd import DocumentRequest, FatalError, Found, Invoice, Order, Product, RecordError

from . import documents
from .client import EAccountingClient, odata_string
from .documents import DOCUMENT_PATHS, Article, Debtor, Line, Resolved

__all__ = ["SalesDocuments", "ORDER_KINDS", "INVOICE_KINDS"]

ORDER_KINDS = ("order", "invoice_draft", "invoice")
"""Where an order may be: created as any of these, or converted from an order or draft since."""

INVOICE_KINDS = ("invoice_draft", "invoice")
"""Where an invoice may be: a draft, or booked (a draft is converted into an invoice)."""



class SalesDocuments:
    """The order and invoice side of :class:`~apicenterd_eaccounting.EAccountingConnector`: it is
    handed the debtor and articles the order process resolved (a :class:`~apicenterd.DocumentRequest`)
    and keeps no look-ups of its own beyond the company's lists (cost centres, terms, delivery codes)."""

    def __init__(
        self,
        api: EAccountingClient,
        log: Any,
        *,
        company: Callable[[], Awaitable[dict[str, Any]]],
        vat_rates: Callable[[], Awaitable[Mapping[str, Decimal | None]]],
    ):
        self.api = api
        self.log = log
        self._company = company
        self._vat_rates = vat_rates
        self._lists: dict[str, list[dict[str, Any]]] = {}
        self._warned_codes = False

    # -- look-ups ----------------------------------------------------------------------

    async def _list(self, path: str, what: str) -> list[dict[str, Any]]:
        if path not in self._lists:
            self._lists[path] = await self.api.all(path, what=what)
        return self._lists[path]

    async def debtor(self, customer: Found | None, what: str) -> Debtor:
        """The debtor the order process resolved: from the customer it found (no call), else one GET
        by its id; RecordError if there is none or eAccounting has no such customer."""
        if customer is None or not customer.id:
            raise RecordError(f"{what}: no customer_id (the flow must find or create the eAccounting customer first)")
        if customer.vendor is not None:
            return Debtor.from_api(customer.vendor)
        customer_id = customer.id
        try:
            found = await self.api.get_object(f"/v2/customers/{customer_id}", what=f"{what}: customer {customer_id}")
        except RecordError as exc:
            if exc.status in (400, 404):
                raise RecordError(f"{what}: no customer with Id {customer_id!r} in eAccounting ({exc})", status=exc.status) from None
            raise
        return Debtor.from_api(found)

    async def articles(self, resolved: Mapping[str, Found]) -> dict[str, Article]:
        """What each row needs of the articles the order process resolved (VAT from the canonical
        product, else from the article's account coding)."""
        out: dict[str, Article] = {}
        rates: Mapping[str, Decimal | None] | None = None
        for sku, found in resolved.items():
            record, vendor = found.record, found.vendor or {}
            vat = record.tax_rate if isinstance(record, Product) else None
            if vat is None and vendor.get("CodingId"):
                rates = rates if rates is not None else await self._vat_rates()
                vat = rates.get(vendor["CodingId"])
            name = record.name if isinstance(record, Product) else str(vendor.get("Name") or "")
            out[sku] = Article(found.id, sku, name, vat)
        return out

    async def _dimensions(self, lines: list[Line], what: str) -> dict[tuple[int, str], str]:
        wanted = {(1, ln.cost_centre) for ln in lines if ln.cost_centre} | {(2, ln.cost_unit) for ln in lines if ln.cost_unit}
        if not wanted:
            return {}
        centres = sorted(await self._list("/v2/costcenters", "cost centres"), key=lambda c: c.get("Number") or 0)
        out: dict[tuple[int, str], str] = {}
        for dimension, code in wanted:
            centre = next((c for c in centres if c.get("Number") == dimension), None)
            if centre is None and len(centres) >= dimension:
                centre = centres[dimension - 1]
            if centre is None or not centre.get("IsActive", True):
                raise RecordError(f"{what}: eAccounting has no active cost centre {dimension} for {code!r}")
            wanted_code = code.strip().lower()
            item = next(
                (
                    i
                    for i in centre.get("Items") or []
                    if i.get("IsActive", True) and wanted_code in {str(i.get(k) or "").strip().lower() for k in ("ShortName", "Name", "Id")}
                ),
                None,
            )
            if item is None:
                known = ", ".join(sorted(str(i.get("ShortName")) for i in centre.get("Items") or [] if i.get("IsActive", True))) or "none"
                raise RecordError(f"{what}: cost centre {centre.get('Name')!r} has no active item {code!r} (it has: {known})")
            out[(dimension, code)] = str(item["Id"])
        return out

    async def _coded(self, path: str, code: str | None, what: str, label: str) -> dict[str, str] | None:
        if not code:
            return None
        entries = await self._list(path, label)
        entry = next((e for e in entries if str(e.get("Code") or "").lower() == code.lower()), None)
        if entry is None:
            known = ", ".join(sorted(str(e.get("Code")) for e in entries)) or "none"
            raise RecordError(f"{what}: eAccounting has no {label} with Code {code!r} (it has: {known})")
        return {"Code": entry["Code"], "Name": entry.get("Name")}

    async def terms(self, code: str, what: str) -> dict[str, Any]:
        """The terms of payment ``code`` names: a TermsOfPaymentId, or a Name / NameEnglish (any case)."""
        entries = await self._list("/v2/termsofpayments", "terms of payment")
        wanted = code.strip().lower()
        for entry in entries:
            if wanted in {str(entry.get(k) or "").strip().lower() for k in ("Id", "Name", "NameEnglish")}:
                return entry
        known = ", ".join(sorted(str(e.get("Name")) for e in entries)) or "none"
        raise RecordError(f"{what}: eAccounting has no terms of payment {code!r} (it has: {known})")

    # -- find --------------------------------------------------------------------------

    async def find(self, key: str, kinds: tuple[str, ...], *, as_invoice: bool = False) -> Found | None:
        """The first document of ``kinds`` whose YourReference is ``key`` (one GET per kind searched)."""
        show_excl = None
        for kind in kinds:
            path = DOCUMENT_PATHS[kind]
            if len(key) > documents.REFERENCE_LIMITS[kind]:
                continue  # cannot have been stored there
            matches = await self.api.first(path, f"YourReference eq {odata_string(key)}", what=f"{kind} with YourReference {key!r}")
            exact = [d for d in matches if d.get("YourReference") == key]
            if not exact:
                continue
            if len(exact) > 1:
                self.log.warning("eaccounting_reference_ambiguous", kind=kind, reference=key, ids=[d.get("Id") for d in exact])
            doc = exact[0]
            if show_excl is None:
                show_excl = bool((await self._company()).get("ShowPricesExclVatPC"))
            record: Order | Invoice | None
            try:
                if as_invoice:
                    record = documents.document_to_invoice(doc, kind, show_prices_excl_vat_pc=show_excl)
                else:
                    record = documents.document_to_order(doc, kind, show_prices_excl_vat_pc=show_excl)
            except (ValueError, RecordError) as exc:
                self.log.warning("eaccounting_document_unreadable", kind=kind, id=doc.get("Id"), error=str(exc))
                record = None
            return Found(id=str(doc["Id"]), record=record)
        return None

    # -- create ------------------------------------------------------------------------

    async def _resolve(
        self,
        lines: list[Line],
        *,
        kind: str,
        request: DocumentRequest[Any],
        currency: str,
        what: str,
        payment_terms: str | None,
        day: date,
    ) -> Resolved:
        debtor = await self.debtor(request.customer, what)
        company = await self._company()
        articles = await self.articles(request.articles)
        missing = documents.missing_skus(lines, articles)
        if missing:
            raise RecordError(f"{what}: SKU not in eAccounting: {', '.join(missing)} (create the articles first)")
        company_currency = (company.get("CurrencyCode") or "EUR").upper()
        if kind != "order":
            # drafts and invoices are in the customer's currency (InvoiceCurrencyCode / CurrencyCode are read-only)
            document_currency = debtor.currency or company_currency
            if document_currency != currency:
                raise RecordError(
                    f"{what}: it is in {currency}, but an eAccounting {kind} for this customer is in {document_currency} "
                    "(the customer's CurrencyCode)"
                )
        due_date = None
        if payment_terms:
            terms = await self.terms(payment_terms, what)
            if kind == "invoice":
                due_date = day + timedelta(days=int(terms.get("NumberOfDays") or 0))
            elif terms.get("Id") != debtor.terms_id:
                self.log.warning(
                    "eaccounting_terms_follow_customer",
                    document=what,
                    wanted=terms.get("Name"),
                    customer_terms=debtor.terms_id,
                    reason="orders and invoice drafts take the customer's TermsOfPaymentId",
                )
        return Resolved(
            debtor=debtor,
            includes_vat=documents.includes_vat(debtor.is_private, bool(company.get("ShowPricesExclVatPC"))),
            currency=currency,
            country=(company.get("CountryCode") or "").upper() or None,
            articles=articles,
            dimensions=await self._dimensions(lines, what),
            due_date=due_date,
        )

    def _warn_codes(self, has_codes: bool) -> None:
        if has_codes and not self._warned_codes:
            self._warned_codes = True
            self.log.warning(
                "eaccounting_line_codes_not_stored",
                reason="eAccounting rows have no VAT code or account: VAT and revenue account follow the article's "
                "account coding (CodingId); tax_code and account of lines are not written",
            )

    async def create_order(self, request: DocumentRequest[Order]) -> str:
        """POST the order as the document ``request.kind`` asks for (default: an order); its new Id."""
        order = request.record
        kind = request.kind or "order"
        what = f"order {order.number}"
        if kind not in DOCUMENT_PATHS:
            raise RecordError(f"{what}: eAccounting cannot create a {kind!r} (it creates: {', '.join(DOCUMENT_PATHS)})")
        settings = documents.order_settings(order)
        lines = documents.order_lines(order, settings)
        self._warn_codes(any(ln.tax_code or ln.account for ln in order.lines))
        resolved = await self._resolve(
            lines,
            kind=kind,
            request=request,
            currency=order.currency,
            what=what,
            payment_terms=order.payment_terms,
            day=order.created_at.date(),
        )
        if kind != "invoice":
            resolved = dataclasses.replace(
                resolved,
                delivery_method=await self._coded("/v2/deliverymethods", settings.delivery_method_code, what, "delivery method"),
                delivery_term=await self._coded("/v2/deliveryterms", settings.delivery_term_code, what, "delivery term"),
            )
        body = documents.order_body(order, kind, resolved, settings)
        return await self._post(kind, body, order.number, what, expected=order.total)

    async def create_invoice(self, request: DocumentRequest[Invoice]) -> str:
        """POST the invoice as an invoice draft or invoice (its ``target_fields.document``); its new Id."""
        invoice = request.record
        settings = documents.invoice_settings(invoice)
        kind = settings.document
        what = f"invoice {invoice.number}"
        lines = documents.invoice_lines(invoice, settings)
        self._warn_codes(any(ln.tax_code or ln.account for ln in invoice.lines))
        resolved = await self._resolve(
            lines,
            kind=kind,
            request=request,
            currency=invoice.currency,
            what=what,
            payment_terms=invoice.payment_terms if invoice.due_date is None else None,
            day=invoice.invoice_date,
        )
        body = documents.invoice_body(invoice, kind, resolved, settings)
        return await self._post(kind, body, invoice.number, what, expected=invoice.total)

    async def _post(self, kind: str, body: dict[str, Any], reference: str, what: str, *, expected: Decimal) -> str:
        path = DOCUMENT_PATHS[kind]
        created = await self.api.post(path, body, what=what)
        if kind == "invoice":
            # POST /v2/customerinvoices answers InvoiceUrlApi ({Url}), not the invoice: find its Id by reference
            found = await self.api.first(path, f"YourReference eq {odata_string(reference)}", what=f"{what} just created")
            exact = sorted((d for d in found if d.get("YourReference") == reference), key=lambda d: str(d.get("CreatedUtc") or ""))
            if not exact or not exact[-1].get("Id"):
                url = created.get("Url") if isinstance(created, dict) else None
                raise FatalError(f"{what}: eAccounting created the invoice ({url}) but GET {path} does not find it by YourReference")
            created = exact[-1]
        if not isinstance(created, dict) or not created.get("Id"):
            raise FatalError(f"{what}: eAccounting confirmed the {kind} but returned no Id")
        total = created.get("Amount") if kind == "order" else created.get("TotalAmount")
        if total is not None and Decimal(str(total)) != expected:
            self.log.warning(
                "eaccounting_total_differs", document=what, kind=kind, id=created["Id"], eaccounting=str(total), source=str(expected)
            )
        return str(created["Id"])
