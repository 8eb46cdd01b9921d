"""Seeding the simulator with sales orders (for flows that read eAccounting's orders: tests, the
benchmark, the demo): each through the simulator's own ``POST /v2/orders`` rules."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .simulator import Simulator

__all__ = ["seed_orders"]


def seed_orders(sim: Simulator, count: int, *, seed: int = 1, statuses: tuple[int, ...] = (2, 3, 4), rows: int = 3) -> list[dict[str, Any]]:
    """Add ``count`` orders to ``sim``: customers taken in turn from its customers (seed some
    first: ``customers=``), one to ``rows`` article rows from its articles (``records=``), a status
    from ``statuses`` (``OrderApi.Status``: 1 draft, 2 ongoing, 3 shipped, 4 invoiced), dates in
    May 2024. Deterministic for a seed. Returns the stored orders, as ``GET /v2/orders`` shows them."""
    customers = list(sim.customers.values())
    articles = list(sim.articles.values())
    if not customers or not articles:
        raise ValueError("seed_orders: the simulator needs customers and articles first (customers=, records=)")
    rng = random.Random(seed)
    made = []
    for n in range(count):
        customer = customers[n % len(customers)]
        picked = rng.sample(articles, k=min(len(articles), rng.randint(1, rows)))
        body = {
            "CustomerId": customer["Id"],
            "OrderDate": f"2024-05-{1 + n % 28:02d}",
            "CurrencyCode": "EUR",
            "CustomerIsPrivatePerson": bool(customer.get("IsPrivatePerson")),
            "YourReference": f"seed {n + 1}",
            "Amount": 0,
            "VatAmount": 0,
            "RoundingsAmount": 0,
            "InvoiceAddress1": customer.get("InvoiceAddress1"),
            "InvoiceCity": customer.get("InvoiceCity") or "Utrecht",
            "InvoiceCountryCode": customer.get("InvoiceCountryCode") or "NL",
            "InvoiceCustomerName": customer["Name"],
            "InvoicePostalCode": customer.get("InvoicePostalCode") or "1000AA",
            "EuThirdParty": False,
            "Status": statuses[n % len(statuses)],
            "RotReducedInvoicingType": 0,
            "ReverseChargeOnConstructionServices": False,
            "Rows": [
                {
                    "LineNumber": line,
                    "ArticleId": article["Id"],
                    "Quantity": rng.randint(1, 5),
                    "UnitPrice": article.get("NetPrice") or Decimal(1),
                    "Text": article["Name"],
                    "IsTextRow": False,
                    "IsWorkCost": False,
                    "EligibleForReverseChargeOnVat": False,
                }
                for line, article in enumerate(picked, start=1)
            ],
        }
        made.append(sim.documents.write_order(body))
    return made
