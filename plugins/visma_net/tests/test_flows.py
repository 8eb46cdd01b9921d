"""End to end through the daemon's engine: the eAccounting and Visma.net simulators on loopback
(ephemeral ports), a config file between them, each flow run twice (the second writes nothing)."""

from __future__ import annotations

import contextlib
from datetime import datetime, timezone
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

WRITES = ("POST", "PUT", "PATCH", "DELETE")


@pytest.fixture
def pair(tmp_path, write_pair_config):
    """``start(ea_records, vn_records, flows)``: both simulators served, the config resolved;
    returns (ea_app, vn_app, resolved)."""
    registry = load_registry()

    def start(flows: dict[str, dict[str, Any]], *, ea: dict | None = None, vn: dict | None = None, vn_settings: dict | None = None):
        ea_app = EAccountingConnector.simulator(seed=5, **(ea or {}))
        vn_app = VismaNetConnector.simulator(seed=5, **(vn or {}))
        ea_url = stack.enter_context(serve_app(ea_app))
        vn_url = stack.enter_context(serve_app(vn_app))
        urls.update(ea=ea_url, vn=vn_url)
        return ea_app, vn_app, load(write_pair_config(tmp_path, ea_url, vn_url, flows, vn_settings), registry)

    def rewrite(flows: dict[str, dict[str, Any]], vn_settings: dict | None = None) -> Any:
        """The same simulators, a new config (the flows changed)."""
        return load(write_pair_config(tmp_path, urls["ea"], urls["vn"], flows, vn_settings), registry)

    urls: dict[str, str] = {}
    start.rewrite = rewrite  # type: ignore[attr-defined]

    with contextlib.ExitStack() as stack:
        yield start


def writes(app: Any) -> list[tuple[str, str]]:
    return [r for r in app.state.sim.requests if r[0] in WRITES]


async def twice(resolved: Any, flow: str, target: Any) -> Any:
    """Run ``flow``; then again, which must write nothing to ``target``."""
    first = await run_once(resolved, flow)
    assert first.status == "ok", first.error
    assert first.counts["failed"] == 0, first.counts
    target.state.sim.requests.clear()
    second = await run_once(resolved, flow)
    assert second.status == "ok", second.error
    assert second.counts["created"] == 0 and second.counts["updated"] == 0, second.counts
    assert writes(target) == []
    return first


async def test_customers_from_eaccounting_become_visma_net_customers_once(pair):
    ea, vn, resolved = pair({"customers": {"source": "eaccounting", "target": "vismanet", "entity": "customers", "interval": "1h"}},
                            ea={"records": 0, "customers": 6})  # fmt: skip
    first = await twice(resolved, "customers", vn)
    assert first.counts["created"] == 6
    emails = sorted(str(c.get("EmailAddress") or "").lower() for c in ea.state.sim.customers.values())
    written = sorted(str(c["mainContact"]["email"]).lower() for c in vn.state.sim.customers.values())
    assert written == emails


async def test_customers_carry_custom_fields_codes_per_country_and_the_update_checkbox(pair):
    """The flow's constants and maps (``map`` rules, ``tax_codes``/``revenue_accounts`` per country) land in
    the customer's attribute lines, VAT zone, sales account, default payment method and class; a field in
    ``create_only_fields`` is written on create only, the others on update too."""

    def flow(payment: str, account: str, create_only: list[str]) -> dict[str, Any]:
        return {"customers": {
            "source": "eaccounting", "target": "vismanet", "entity": "customers", "interval": "1h",
            "create_only_fields": create_only,
            "map": [{"field": "custom_fields.segment", "value": "B2B"}, {"field": "custom_fields.ignored", "value": "x"},
                    {"field": "payment_method", "value": payment}, {"field": "classification", "value": "RETAIL"}],
            "options": {"tax_codes": {"NL": "DOMESTIC", "default": "EXPORT"}, "revenue_accounts": {"default": account}},
        }}  # fmt: skip

    custom = {"customer_custom_fields": {"segment": "SEGMENT"}}
    ea, vn, resolved = pair(flow("BANK", "3000", []), ea={"records": 0, "customers": 3}, vn_settings=custom)
    first = await twice(resolved, "customers", vn)
    assert first.counts["created"] == 3
    countries = {str(c.get("EmailAddress") or "").lower(): c.get("InvoiceCountryCode") for c in ea.state.sim.customers.values()}
    for customer in vn.state.sim.customers.values():
        assert customer["attributes"] == [{"id": "SEGMENT", "value": "B2B", "description": "Segment"}]
        assert customer["glAccounts"]["salesAccount"]["number"] == "3000"
        assert customer["defaultPaymentMethodId"] == "BANK"
        assert customer["customerClass"]["id"] == "RETAIL"
        country = countries[customer["mainContact"]["email"].lower()]
        assert customer["vatZone"]["id"] == ("DOMESTIC" if country == "NL" else "EXPORT")
    # the update checkbox: the revenue account is create-only now, the payment method is not
    resolved = pair.rewrite(flow("CARD", "3010", ["revenue_account"]), custom)
    for customer in ea.state.sim.customers.values():  # read again (the delta would skip them)
        customer["ChangedUtc"] = datetime.now(timezone.utc).isoformat()
    vn.state.sim.requests.clear()
    again = await run_once(resolved, "customers")
    assert again.status == "ok" and again.counts["failed"] == 0, again.counts
    assert again.counts["updated"] == 3, again.counts
    assert {m for m, _ in writes(vn)} == {"PUT"}
    for customer in vn.state.sim.customers.values():
        assert customer["defaultPaymentMethodId"] == "CARD"
        assert customer["glAccounts"]["salesAccount"]["number"] == "3000"


async def test_products_carry_custom_fields_and_item_group(pair):
    flows = {"products": {
        "source": "eaccounting", "target": "vismanet", "entity": "products", "interval": "1h",
        "map": [{"field": "custom_fields.brand", "value": "Acme"}, {"field": "item_group", "value": "GOODS"}],
    }}  # fmt: skip
    ea, vn, resolved = pair(flows, ea={"records": 3}, vn_settings={"item_custom_fields": {"brand": "BRAND"}})
    first = await twice(resolved, "products", vn)
    assert first.counts["created"] == 3
    for item in vn.state.sim.inventory.values():
        assert {"id": "BRAND", "value": "Acme", "description": "Brand"} in item["attributes"]
        assert item["itemClass"] == {"id": "GOODS"}


async def test_products_from_eaccounting_become_inventory_items_by_number(pair):
    ea, vn, resolved = pair({"products": {"source": "eaccounting", "target": "vismanet", "entity": "products", "interval": "1h"}},
                            ea={"records": 8})  # fmt: skip
    first = await twice(resolved, "products", vn)
    articles = {a["Number"]: a for a in ea.state.sim.articles.values()}
    assert first.counts["created"] == len(articles)
    assert set(vn.state.sim.inventory) == set(articles)
    for number, article in articles.items():
        assert Decimal(str(vn.state.sim.inventory[number]["defaultPrice"])) == Decimal(str(article["NetPrice"])).quantize(Decimal("0.01"))
    # a price change in eAccounting is one PUT of one wrapped field
    some = next(iter(ea.state.sim.articles.values()))
    some["NetPrice"] = Decimal("77.70")
    some["ChangedUtc"] = datetime.now(timezone.utc).isoformat()
    vn.state.sim.requests.clear()
    again = await run_once(resolved, "products")
    assert again.counts["updated"] == 1, again.counts
    assert writes(vn) == [("PUT", f"/v1/inventory/{some['Number']}")]
    assert vn.state.sim.inventory[some["Number"]]["defaultPrice"] == Decimal("77.70")


async def test_stock_and_orders_from_visma_net_into_eaccounting(pair):
    flows = {
        "items": {"source": "vismanet", "target": "eaccounting", "entity": "products", "interval": "1h"},
        # "source": the connector's figure (stock_quantity, available - soBooked by default), not the core's on hand - reserved
        "stock": {"source": "vismanet", "target": "eaccounting", "entity": "stock", "interval": "1h", "options": {"available": "source"}},
        "orders": {"source": "vismanet", "target": "eaccounting", "entity": "orders", "interval": "1h",
                   "options": {"document": "order"}},
    }  # fmt: skip
    ea, vn, resolved = pair(flows, ea={"records": 0}, vn={"records": 4})
    await twice(resolved, "items", ea)
    await twice(resolved, "stock", ea)
    by_number = {a["Number"]: a for a in ea.state.sim.articles.values()}
    for sku, rows in vn.state.sim.summaries.items():
        expected = sum(r["available"] - r["soBooked"] for r in rows)
        assert Decimal(str(by_number[sku]["StockBalance"])) == expected
    debtor = next(iter(vn.state.sim.customers.values()))
    vn.state.sim.add_order({
        "status": "Open", "date": "2024-05-01T10:00:00", "currency": "EUR",
        "customer": {"number": debtor["number"], "name": debtor["name"]},
        "lines": [{"lineNbr": 1, "inventory": {"number": "VN-00001", "description": "Item 1"}, "quantity": Decimal(2),
                   "unitPrice": Decimal("10.00"), "discountAmount": Decimal(0), "lineDescription": "Item 1"}],
        "orderTotal": Decimal("20.00"), "taxTotal": Decimal("4.20"),
    })  # fmt: skip
    first = await twice(resolved, "orders", ea)
    assert first.counts["created"] == 1
    orders = list(ea.state.sim.orders.values()) if hasattr(ea.state.sim, "orders") else []
    assert len(orders) == 1
    customer = next(c for c in ea.state.sim.customers.values() if c.get("EmailAddress") == debtor["mainContact"]["email"])
    assert orders[0]["CustomerId"] == customer["Id"]


async def test_faults_on_the_way_are_retried_and_nothing_is_created_twice(pair):
    ea, vn, resolved = pair({"products": {"source": "eaccounting", "target": "vismanet", "entity": "products", "interval": "1h"}},
                            ea={"records": 5})  # fmt: skip
    vn.state.sim.fail_next(503, {"message": "Service Unavailable"}, times=2, path_prefix="/v1/inventory")
    first = await run_once(resolved, "products")
    assert first.status == "ok", first.error
    assert first.counts["failed"] == 0 and first.counts["created"] == 5, first.counts
    assert len(vn.state.sim.inventory) == 5
    posts = [r for r in vn.state.sim.requests if r[0] == "POST"]
    assert len(posts) == 5  # each item POSTed once: the 503s hit look-ups, retried


async def test_a_record_visma_net_refuses_fails_alone_and_the_flow_goes_on(pair):
    ea, vn, resolved = pair({"products": {"source": "eaccounting", "target": "vismanet", "entity": "products", "interval": "1h"}},
                            ea={"records": 4})  # fmt: skip
    vn.state.sim.fail_next(400, {"ExceptionType": "IPPException", "ExceptionMessage": "Error: 'Item Class' cannot be empty.",
                                 "ExceptionFaultCode": "10", "ExceptionMessageID": "10_x"}, path_prefix="/v1/inventory", times=1)  # fmt: skip
    first = await run_once(resolved, "products")
    assert first.counts["failed"] == 1 and first.counts["created"] == 3, first.counts


async def test_eaccounting_orders_become_sales_orders_with_branch_and_order_type_once(pair):
    flows = {
        "products": {"source": "eaccounting", "target": "vismanet", "entity": "products", "interval": "1h"},
        "orders": {"source": "eaccounting", "target": "vismanet", "entity": "orders", "interval": "1h",
                   "options": {"document": "order"}, "target_settings": {"order_type": "SO", "branch": "2"}},
    }  # fmt: skip
    ea, vn, resolved = pair(flows, ea={"records": 3, "customers": 2}, vn={"require_branch": True})
    await twice(resolved, "products", vn)
    ea_sim = ea.state.sim
    customer = next(iter(ea_sim.customers.values()))
    article = next(iter(ea_sim.articles.values()))
    order = ea_sim.documents.write_order({
        "CustomerId": customer["Id"], "OrderDate": "2024-05-01", "CurrencyCode": "SEK", "CustomerIsPrivatePerson": False,
        "YourReference": "web 1", "Amount": 0, "VatAmount": 0, "RoundingsAmount": 0, "InvoiceCity": "Oslo",
        "InvoiceCountryCode": "NO", "InvoiceCustomerName": customer["Name"], "InvoicePostalCode": "0150", "EuThirdParty": False,
        "Status": 2, "RotReducedInvoicingType": 0, "ReverseChargeOnConstructionServices": False,
        "Rows": [{"LineNumber": 1, "ArticleId": article["Id"], "Quantity": 2, "UnitPrice": 10, "Text": "Line", "IsTextRow": False,
                  "IsWorkCost": False, "EligibleForReverseChargeOnVat": False}],
    })  # fmt: skip
    first = await twice(resolved, "orders", vn)
    assert first.counts["created"] == 1, first.counts
    made = [o for o in vn.state.sim.orders.values() if o["customerRefNo"] == str(order["Number"])]
    assert len(made) == 1 and made[0]["orderType"] == "SO"
    assert made[0]["lines"][0]["inventory"]["number"] == article["Number"]
    debtor = vn.state.sim.customers[made[0]["customer"]["number"]]
    assert debtor["mainContact"]["email"].lower() == str(customer["EmailAddress"]).lower()


async def test_a_flow_writing_without_the_create_scope_stops_once_with_an_error_naming_it(pair):
    """A token without ``:create`` (scopes narrowed to read): the first POST's 403 ends the run with
    an error naming the operation, the scope and the setting; nothing is retried or written."""
    ea, vn, resolved = pair({"customers": {"source": "eaccounting", "target": "vismanet", "entity": "customers", "interval": "1h"}},
                            ea={"records": 0, "customers": 3}, vn_settings={"scopes": ["vismanet_erp_service_api:read"]})  # fmt: skip
    result = await run_once(resolved, "customers")
    assert result.status == "failed" and result.error.startswith("AuthError"), result
    assert "vismanet_erp_service_api:create" in str(result.error) and "scopes setting" in str(result.error), result.error
    assert [m for m, _ in writes(vn)] == ["POST"]  # the first write refused, not repeated, no other tried
    assert vn.state.sim.customers == {}
