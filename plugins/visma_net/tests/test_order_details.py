"""eAccounting orders into Visma.net through the engine, the details the issue lists: the carrier
(``shipVia``) and delivery terms by the flow's maps, discounts, VAT code per country, the customer
invoice variant with revenue accounts per country, an order with an unmapped carrier failing alone,
and nothing written on a second run."""

from __future__ import annotations

import contextlib
import json
from decimal import Decimal
from typing import Any

import pytest
from apicenterd_eaccounting import EAccountingConnector
from apicenterd_visma_net import VismaNetConnector

from apicenterd.config import load
from apicenterd.registry import load_registry
from apicenterd.testing import serve_app
from apicenterd.testing.settle import run_once

pytestmark = pytest.mark.anyio


def writes(app: Any) -> list[tuple[str, str]]:
    return [r for r in app.state.sim.requests if r[0] in ("POST", "PUT", "PATCH", "DELETE")]


class Bodies:
    """ASGI middleware keeping the JSON body of every POST to the API as (path, body)."""

    def __init__(self, app: Any):
        self.app, self.state, self.posted = app, app.state, []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"].startswith("/connect"):
            return await self.app(scope, receive, send)
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        self.posted.append((scope["path"], json.loads(body or b"null")))

        async def replay():
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)


def order_body(customer: dict, articles: list[dict], delivery: str | None, terms: str | None = None) -> dict:
    body = {
        "CustomerId": customer["Id"], "OrderDate": "2024-05-01", "CurrencyCode": "EUR", "CustomerIsPrivatePerson": False,
        "Amount": 0, "VatAmount": 0, "RoundingsAmount": 0, "InvoiceCity": "Oslo", "InvoiceCountryCode": "NO",
        "InvoiceCustomerName": customer["Name"], "InvoicePostalCode": "0150", "EuThirdParty": False, "Status": 2,
        "RotReducedInvoicingType": 0, "ReverseChargeOnConstructionServices": False,
        "Rows": [{"LineNumber": n + 1, "ArticleId": a["Id"], "Quantity": 2, "UnitPrice": 10, "Text": "Line", "IsTextRow": False,
                  "IsWorkCost": False, "EligibleForReverseChargeOnVat": False, "DiscountPercentage": Decimal("0.25") if n == 0 else 0}
                 for n, a in enumerate(articles)],
    }  # fmt: skip
    if delivery:
        body["DeliveryMethodCode"] = delivery
    if terms:
        body["DeliveryTermCode"] = terms
    return body


@pytest.fixture
def pair(tmp_path, write_pair_config):
    def start(flows: dict[str, dict[str, Any]], orders: list[tuple[str | None, str | None]]):
        ea_app = EAccountingConnector.simulator(seed=5, records=3, customers=2)
        sim = ea_app.state.sim
        customer = next(c for c in sim.customers.values() if not c["IsPrivatePerson"])
        articles = sorted(sim.articles.values(), key=lambda a: a["Number"])[:2]
        made = [sim.documents.write_order(order_body(customer, articles, d, t)) for d, t in orders]
        vn_app = Bodies(VismaNetConnector.simulator(seed=5))
        ea_url = stack.enter_context(serve_app(ea_app))
        vn_url = stack.enter_context(serve_app(vn_app))
        return ea_app, vn_app, made, load(write_pair_config(tmp_path, ea_url, vn_url, flows), load_registry())

    with contextlib.ExitStack() as stack:
        yield start


PRODUCTS = {"source": "eaccounting", "target": "vismanet", "entity": "products", "interval": "1h"}


async def test_carrier_terms_discount_and_vat_code_reach_the_sales_order_and_an_unmapped_carrier_fails_alone(pair):
    orders_flow = {
        "source": "eaccounting", "target": "vismanet", "entity": "orders", "interval": "1h",
        "options": {"document": "order", "tax_codes": {"NO": {"default": "1"}, "default": {"default": "3"}}},
        "target_settings": {"order_type": "SO", "ship_via": {"POSTEN": "POST", "HENT": "PICKUP"}, "shipping_terms": {"default": "FCA"}},
    }  # fmt: skip
    ea, vn, made, resolved = pair({"products": PRODUCTS, "orders": orders_flow}, [("POSTEN", None), ("HENT", "DAP"), ("COURIER", None)])
    assert (await run_once(resolved, "products")).counts["created"] == 3
    first = await run_once(resolved, "orders")
    assert first.counts["created"] == 2 and first.counts["failed"] == 1, first.counts
    by_ref = {o["customerRefNo"]: o for o in vn.state.sim.orders.values()}
    assert by_ref[str(made[0]["Number"])]["shipVia"]["id"] == "POST"
    assert by_ref[str(made[1]["Number"])]["shipVia"]["id"] == "PICKUP"
    assert {o["shippingTerms"]["id"] for o in by_ref.values()} == {"FCA"}
    assert str(made[2]["Number"]) not in by_ref  # "COURIER" is not in ship_via and there is no default
    lines = by_ref[str(made[0]["Number"])]["lines"]
    assert [Decimal(str(line["discountAmount"])) for line in lines] == [Decimal("5.00"), Decimal(0)]  # 25 % of 2 x 10
    posted = [b for p, b in vn.posted if p.endswith("/salesorder")]
    assert posted and all(line["taxCategory"] == {"value": "1"} for body in posted for line in body["lines"])
    vn.state.sim.requests.clear()
    second = await run_once(resolved, "orders")
    assert second.counts["created"] == 0 and writes(vn) == [], second.counts


async def test_as_customer_invoices_with_revenue_accounts_per_country_once(pair):
    orders_flow = {
        "source": "eaccounting", "target": "vismanet", "entity": "orders", "interval": "1h",
        "options": {"document": "invoice", "revenue_accounts": {"NO": "3000", "default": "3100"}},
    }  # fmt: skip
    ea, vn, made, resolved = pair({"products": PRODUCTS, "orders": orders_flow}, [(None, None)])
    await run_once(resolved, "products")
    first = await run_once(resolved, "orders")
    assert first.counts["created"] == 1, first.counts
    invoices = [i for i in vn.state.sim.invoices.values() if i["externalReference"] == str(made[0]["Number"])]
    assert len(invoices) == 1
    posted = [b for p, b in vn.posted if p.endswith("/customerinvoice")]
    assert [line["accountNumber"] for line in posted[0]["invoiceLines"]] == [{"value": "3000"}] * 2
    vn.state.sim.requests.clear()
    second = await run_once(resolved, "orders")
    assert second.counts["created"] == 0 and writes(vn) == [], second.counts


async def test_a_customer_without_e_mail_goes_to_the_default_debtor_the_others_are_matched_or_created(tmp_path, write_pair_config):
    ea_app = EAccountingConnector.simulator(seed=5, records=2, customers=2)
    sim = ea_app.state.sim
    company = next(c for c in sim.customers.values() if not c["IsPrivatePerson"])
    person = next(c for c in sim.customers.values() if c["IsPrivatePerson"])
    person.update(EmailAddress=None)  # a walk-in customer without e-mail
    articles = sorted(sim.articles.values(), key=lambda a: a["Number"])[:1]
    with_mail = sim.documents.write_order(order_body(company, articles, None))
    without = sim.documents.write_order(order_body(person, articles, None))
    vn_app = VismaNetConnector.simulator(seed=5)
    vn = vn_app.state.sim
    vn.customers["D-1"] = {"number": "D-1", "name": "Cash sales", "status": "Active", "mainContact": {"email": "kassa@example.com"},
                           "lastModifiedDateTime": vn.stamp()}  # fmt: skip
    flows = {
        "products": PRODUCTS,
        "orders": {"source": "eaccounting", "target": "vismanet", "entity": "orders", "interval": "1h",
                   "options": {"document": "order", "customer": "default_without_email", "default_customer": "D-1"}},
    }  # fmt: skip
    with contextlib.ExitStack() as stack:
        ea_url = stack.enter_context(serve_app(ea_app))
        vn_url = stack.enter_context(serve_app(vn_app))
        resolved = load(write_pair_config(tmp_path, ea_url, vn_url, flows), load_registry())
        await run_once(resolved, "products")
        first = await run_once(resolved, "orders")
        assert first.counts["created"] == 2 and first.counts["failed"] == 0, first.counts
        by_ref = {o["customerRefNo"]: o for o in vn.orders.values()}
        assert by_ref[str(without["Number"])]["customer"]["number"] == "D-1"
        debtor = vn.customers[by_ref[str(with_mail["Number"])]["customer"]["number"]]
        assert debtor["number"] != "D-1" and debtor["mainContact"]["email"].lower() == str(company["EmailAddress"]).lower()
        vn.requests.clear()
        second = await run_once(resolved, "orders")
        assert second.counts["created"] == 0 and writes(vn_app) == [], second.counts
