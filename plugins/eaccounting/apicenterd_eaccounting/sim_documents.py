"""The simulator's sales documents: orders, customer invoice drafts and customer invoices, with
the swagger's shapes and rules, referential checks and the totals computed server-side."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from .sim_rules import (
    DRAFT_ROW_RULES,
    DRAFT_RULES,
    INVOICE_ROW_RULES,
    INVOICE_RULES,
    ORDER_ROW_RULES,
    ORDER_RULES,
    VendorError,
    parse_time,
    validate,
)

if TYPE_CHECKING:  # pragma: no cover
    from .simulator import Simulator

__all__ = ["seed_cost_centers", "seed_delivery_methods", "seed_delivery_terms", "Documents"]

CENT = Decimal("0.01")


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _day(value: str | None) -> str | None:
    """A date as ASP.NET serialises it: ``2024-05-01T00:00:00``."""
    if not value:
        return None
    return parse_time(value).strftime("%Y-%m-%dT00:00:00")


def seed_cost_centers(new_id: Callable[[], str]) -> dict[str, dict[str, Any]]:
    """Two cost centres (dimension 1: departments, 2: projects) with a few items each."""
    centres = {}
    for number, name, items in ((1, "Department", ("SALES", "WEB", "OLD")), (2, "Region", ("NORTH", "SOUTH"))):
        centre_id = new_id()
        centres[centre_id] = {
            "Id": centre_id,
            "Name": name,
            "Number": number,
            "IsActive": True,
            "Items": [
                {"CostCenterId": centre_id, "Id": new_id(), "Name": short.title(), "ShortName": short, "IsActive": short != "OLD"}
                for short in items
            ],
        }
    return centres


def _coded(new_id: Callable[[], str], pairs: tuple[tuple[str, str], ...]) -> dict[str, dict[str, Any]]:
    return {i: {"Id": i, "Code": code, "Name": name} for code, name in pairs for i in [new_id()]}


def seed_delivery_methods(new_id: Callable[[], str]) -> dict[str, dict[str, Any]]:
    """A few delivery methods (Code, Name)."""
    return _coded(new_id, (("POST", "Parcel post"), ("PICKUP", "Pick-up")))


def seed_delivery_terms(new_id: Callable[[], str]) -> dict[str, dict[str, Any]]:
    """A few delivery terms (Code, Name)."""
    return _coded(new_id, (("FCA", "Free carrier"), ("DAP", "Delivered at place")))


class Documents:
    """The sales documents of one simulated company (``sim.orders``, ``sim.invoice_drafts``, ``sim.invoices``)."""

    def __init__(self, sim: Simulator):
        self.sim = sim
        self.order_number = 0

    # -- shared rules --------------------------------------------------------------------

    def _customer(self, customer_id: str) -> dict[str, Any]:
        customer = self.sim.customers.get(customer_id)
        if customer is None:
            raise VendorError(400, 3000, f"ResourceNotFound - CustomerId {customer_id} does not exist.")
        return customer

    def includes_vat(self, customer: Mapping[str, Any]) -> bool:
        """IncludesVat as eAccounting sets it on creation: private persons, unless the company shows them prices excl. VAT."""
        return bool(customer.get("IsPrivatePerson")) and not self.sim.company.get("ShowPricesExclVatPC")

    def _cost_item(self, item_id: str, where: str) -> None:
        items = {i["Id"] for c in self.sim.cost_centers.values() for i in c["Items"]}
        if item_id not in items:
            raise VendorError(400, 3000, f"ResourceNotFound - {where} {item_id} does not exist.")

    def price_rows(self, rows: list[dict[str, Any]], kind: str, included: bool) -> tuple[list[dict[str, Any]], Decimal, Decimal]:
        """The stored rows (article data filled in), and the document's total incl. VAT and its VAT.

        VAT is computed per row at the rate of the article's coding and rounded to cents; an
        absent UnitPrice is the article's price in the document's price mode.
        """
        out, amount, vat = [], Decimal(0), Decimal(0)
        for n, row in enumerate(rows):
            where = f"Rows[{n}]"
            text_row = row.get("IsTextRow") if kind != "invoice" else not row.get("ArticleId")
            stored = dict(row)
            for dimension in (1, 2, 3):
                if row.get(f"CostCenterItemId{dimension}"):
                    self._cost_item(row[f"CostCenterItemId{dimension}"], f"{where}.CostCenterItemId{dimension}")
            if text_row:
                stored.update(ArticleId=None, UnitPrice=None, Quantity=None, DiscountPercentage=None)
                if kind == "invoice":
                    stored.update(Id=str(uuid.uuid4()), LineNumber=n + 1, IsTextRow=True, IsWorkCost=False)
                    stored.update(AmountNoVat=Decimal(0), PercentVat=Decimal(0))
                out.append(stored)
                continue
            article_id = row.get("ArticleId")
            if not article_id:
                raise VendorError(400, 2000, f"{where}.ArticleId: The ArticleId field is required when IsTextRow is false.")
            article = self.sim.articles.get(article_id)
            if article is None:
                raise VendorError(400, 3000, f"ResourceNotFound - {where}.ArticleId {article_id} does not exist.")
            rate = self.sim.codings[article["CodingId"]]["VatRatePercent"] * 100
            price = row.get("UnitPrice")
            if price is None:
                price = article["GrossPrice"] if included else article["NetPrice"]
            price = Decimal(price or 0)
            quantity = Decimal(row["Quantity"]) if row.get("Quantity") is not None else Decimal(1)
            discount = Decimal(row.get("DiscountPercentage") or 0)
            line = _cents(quantity * price * (1 - discount))
            line_vat = _cents(line * rate / (100 + rate)) if included else _cents(line * rate / 100)
            amount += line if included else line + line_vat
            vat += line_vat
            unit = self.sim.units.get(article["UnitId"], {})
            stored.update(
                ArticleId=article_id,
                ArticleNumber=article["Number"],
                Text=row.get("Text") or article["Name"],
                UnitPrice=price,
                Quantity=quantity,
                DiscountPercentage=discount,
            )
            if kind == "order":
                stored.setdefault("Id", None)
                stored["Id"] = stored["Id"] or str(uuid.uuid4())
                stored["DeliveredQuantity"] = stored.get("DeliveredQuantity") or Decimal(0)
            elif kind == "invoice_draft":
                stored.update(VatRateId=article["CodingId"], UnitAbbreviation=unit.get("Abbreviation"), UnitName=unit.get("Name"))
            else:
                stored.update(
                    Id=str(uuid.uuid4()),
                    LineNumber=n + 1,
                    IsTextRow=False,
                    AmountNoVat=line - line_vat if included else line,
                    PercentVat=rate / 100,
                    UnitAbbreviation=unit.get("Abbreviation"),
                    UnitAbbreviationEnglish=unit.get("Abbreviation"),
                    UnitId=article["UnitId"],
                    IsWorkCost=False,
                )
            out.append(stored)
        return out, amount, vat

    @staticmethod
    def _blank(rules: Mapping[str, Any]) -> dict[str, Any]:
        return dict.fromkeys(rules)

    # -- writes ----------------------------------------------------------------------------

    def write_order(self, body: Any) -> dict[str, Any]:
        """POST /v2/orders: validated, CustomerId and ArticleIds checked, Amount/VatAmount computed."""
        clean = validate(body, ORDER_RULES)
        customer = self._customer(clean["CustomerId"])
        included = self.includes_vat(customer)
        rows, amount, vat = self.price_rows(clean.get("Rows") or [], "order", included)
        self.order_number += 1
        now = self.sim._utc_now()
        order = self._blank(ORDER_RULES)
        order.update(clean)
        order.update(
            Id=self.sim._id(),
            Number=clean.get("Number") or self.order_number,
            CreatedUtc=now,
            ModifiedUtc=now,
            OrderDate=_day(clean["OrderDate"]),
            DeliveryDate=_day(clean.get("DeliveryDate")),
            ShippedDateTime=_day(clean.get("ShippedDateTime")),
            # unverified: eAccounting is assumed to compute the totals from the rows, not trust the client's
            Amount=amount,
            VatAmount=vat,
            RoundingsAmount=Decimal(0),
            DeliveredAmount=Decimal(0),
            DeliveredVatAmount=Decimal(0),
            DeliveredRoundingsAmount=Decimal(0),
            Rows=[{**self._blank(ORDER_ROW_RULES), **row} for row in rows],
            Persons=clean.get("Persons") or [],
        )
        self.sim.orders[order["Id"]] = order
        return order

    def write_draft(self, body: Any) -> dict[str, Any]:
        """POST /v2/customerinvoicedrafts: validated, references checked, totals and IncludesVat set."""
        clean = validate(body, DRAFT_RULES)
        customer = self._customer(clean["CustomerId"])
        return self._store_draft(clean, customer)

    def _store_draft(self, clean: dict[str, Any], customer: dict[str, Any]) -> dict[str, Any]:
        included = self.includes_vat(customer)
        rows, amount, vat = self.price_rows(clean.get("Rows") or [], "invoice_draft", included)
        draft = self._blank(DRAFT_RULES)
        draft.update(clean)
        draft.update(
            Id=self.sim._id(),
            CreatedUtc=self.sim._utc_now(),
            InvoiceDate=_day(clean.get("InvoiceDate")),
            DeliveryDate=_day(clean.get("DeliveryDate")),
            InvoiceCurrencyCode=customer.get("CurrencyCode") or self.sim.company["CurrencyCode"],
            CustomerNumber=customer.get("CustomerNumber"),
            IncludesVat=included,
            ReverseChargeOnConstructionServices=bool(customer.get("ReverseChargeOnConstructionServices")),
            TotalAmount=amount,
            TotalVatAmount=vat,
            TotalRoundings=Decimal(0),
            TotalAmountBaseCurrency=amount,
            TotalVatAmountBaseCurrency=vat,
            SalesDocumentAttachments=[],
            Rows=[{**self._blank(DRAFT_ROW_RULES), **row} for row in rows],
            Persons=clean.get("Persons") or [],
        )
        self.sim.invoice_drafts[draft["Id"]] = draft
        return draft

    def write_invoice(self, body: Any) -> dict[str, Any]:
        """POST /v2/customerinvoices: the invoice is booked with the customer's addresses and terms."""
        clean = validate(body, INVOICE_RULES)
        customer = self._customer(clean["CustomerId"])
        return self._store_invoice(clean, customer)

    def _store_invoice(self, clean: dict[str, Any], customer: dict[str, Any]) -> dict[str, Any]:
        included = self.includes_vat(customer)
        rows, amount, vat = self.price_rows(clean.get("Rows") or [], "invoice", included)
        terms = self.sim.terms[customer["TermsOfPaymentId"]]
        invoice_date = _day(clean.get("InvoiceDate")) or self.sim._clock().strftime("%Y-%m-%dT00:00:00")
        due = _day(clean.get("DueDate"))
        if not due:
            due = (datetime.fromisoformat(invoice_date) + timedelta(days=terms["NumberOfDays"])).strftime("%Y-%m-%dT00:00:00")
        number = self.sim.company["NextCustomerInvoiceNumber"]
        self.sim.company["NextCustomerInvoiceNumber"] = number + 1
        now = self.sim._utc_now()
        invoice = self._blank(INVOICE_RULES)
        invoice.update(clean)
        invoice.update(
            Id=self.sim._id(),
            CurrencyCode=customer.get("CurrencyCode") or self.sim.company["CurrencyCode"],
            CreatedByUserId=str(uuid.UUID(int=1)),
            TotalAmount=amount,
            TotalVatAmount=vat,
            TotalRoundings=Decimal(0),
            TotalAmountInvoiceCurrency=amount,
            TotalVatAmountInvoiceCurrency=vat,
            InvoiceDate=invoice_date,
            DueDate=due,
            DeliveryDate=_day(clean.get("DeliveryDate")),
            RotReducedInvoicingPercent=Decimal(0),
            RotReducedInvoicingAutomaticDistribution=False,
            InvoiceCustomerName=customer["Name"],
            **{f"Invoice{p}": customer.get(f"Invoice{p}") for p in ("Address1", "Address2", "PostalCode", "City", "CountryCode")},
            DeliveryCustomerName=customer.get("DeliveryCustomerName"),
            **{f"Delivery{p}": customer.get(f"Delivery{p}") for p in ("Address1", "PostalCode", "City", "CountryCode")},
            CustomerIsPrivatePerson=bool(customer.get("IsPrivatePerson")),
            TermsOfPaymentId=customer["TermsOfPaymentId"],
            CustomerEmail=customer.get("EmailAddress"),
            InvoiceNumber=number,
            CustomerNumber=customer.get("CustomerNumber"),
            PaymentReferenceNumber=str(number),
            SalesDocumentAttachments=[],
            HasAutoInvoiceError=False,
            IsNotDelivered=False,
            ReverseChargeOnConstructionServices=bool(customer.get("ReverseChargeOnConstructionServices")),
            RemainingAmount=amount,
            RemainingAmountInvoiceCurrency=amount,
            VoucherNumber=f"F {number}",
            VoucherId=self.sim._id(),
            CreatedUtc=now,
            ModifiedUtc=now,
            ReversedConstructionVatInvoicing=False,
            IncludesVat=included,
            Rows=[{**self._blank(INVOICE_ROW_RULES), **row} for row in rows],
            Persons=clean.get("Persons") or [],
        )
        self.sim.invoices[invoice["Id"]] = invoice
        self.sim.vouchers.book_invoice(invoice)  # booking an invoice makes its voucher
        return invoice

    # -- what a user does in eAccounting (for tests) -----------------------------------------

    def invoice_order(self, order_id: str) -> dict[str, Any]:
        """Turn an order into an invoice draft, as the "create invoice" button does; the order becomes Invoiced."""
        order = self.sim.orders[order_id]
        customer = self._customer(order["CustomerId"])
        keep = {k: order.get(k) for k in DRAFT_RULES if k in ORDER_RULES and not DRAFT_RULES[k].read_only and k != "Rows"}
        rows = [
            {k: row.get(k) for k in DRAFT_ROW_RULES if k in row and not DRAFT_ROW_RULES[k].read_only}
            | {"ReversedConstructionServicesVatFree": False, "Text": row.get("Text") or ""}
            for row in order["Rows"]
        ]
        order["Status"] = 4
        order["ModifiedUtc"] = self.sim._utc_now()
        kept = {k: v for k, v in keep.items() if v is not None}
        draft = self._store_draft({**kept, "InvoiceDate": order["OrderDate"], "Rows": rows}, customer)
        return draft

    def convert_draft(self, draft_id: str) -> dict[str, Any]:
        """Book a draft as an invoice (what ``POST /v2/customerinvoicedrafts/{id}/convert`` does); the draft is gone."""
        draft = self.sim.invoice_drafts.pop(draft_id)
        customer = self._customer(draft["CustomerId"])
        rows = [
            {k: row.get(k) for k in INVOICE_ROW_RULES if k in row and not INVOICE_ROW_RULES[k].read_only}
            | ({"ArticleId": None} if row.get("IsTextRow") else {})
            for row in draft["Rows"]
        ]
        keep = {k: draft.get(k) for k in INVOICE_RULES if k in DRAFT_RULES and not INVOICE_RULES[k].read_only and k != "Rows"}
        return self._store_invoice({**{k: v for k, v in keep.items() if v is not None}, "Rows": rows}, customer)
