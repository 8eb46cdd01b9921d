"""End to end through the daemon's engine, in-process: eAccounting <-> HubSpot (products, customers,
deals as orders), CCV SalesPOS orders -> HubSpot deals (the order process into the deal sink), a
second run that writes nothing, a fault mid-run, and a webhook-triggered run."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from apicenterd_ccv_salespos import CCVSalesPOSConnector
from apicenterd_eaccounting import EAccountingConnector
from apicenterd_hubspot import HubSpotConnector
from apicenterd_hubspot.simulator import CLIENT_SECRET

from apicenterd.config import load
from apicenterd.engine import Engine
from apicenterd.registry import load_registry
from apicenterd.state import SQLiteStore

pytestmark = pytest.mark.anyio

HUBSPOT_URL, EACC_URL, CCV_URL = "http://hubspot.test", "http://eaccounting.test", "http://ccv.test"


def toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {toml(v)}' for k, v in value.items()) + " }"
    return json.dumps(str(value))


FLOWS = {
    "products-to-hubspot": {"source": "eaccounting", "target": "hubspot", "entity": "products"},
    "customers-to-hubspot": {"source": "eaccounting", "target": "hubspot", "entity": "customers"},
    "products-from-hubspot": {
        "source": "hubspot",
        "target": "eaccounting",
        "entity": "products",
        "map": [{"field": "tax_rate", "value": 25}],
    },
    "customers-from-hubspot": {"source": "hubspot", "target": "eaccounting", "entity": "customers"},
    "deals-to-eaccounting": {
        "source": "hubspot",
        "target": "eaccounting",
        "entity": "orders",
        "options": {"statuses": ["closedwon"], "document": "order"},
    },
    "orders-to-hubspot": {
        "source": "eaccounting",
        "target": "hubspot",
        "entity": "orders",
        "options": {"document": "order", "missing_products": "create", "custom_fields": {"origin": "eAccounting"}},
        "target_settings": {
            "pipeline": "default",
            "stages": {"ongoing": "appointmentscheduled", "shipped": "contractsent", "invoiced": "closedwon"},
            "custom_properties": {"origin": "eaccounting_origin"},
            "reference_property": "eaccounting_reference",
        },
    },
    "invoices-to-hubspot": {
        "source": "eaccounting",
        "target": "hubspot",
        "entity": "invoices",
        "options": {"source_entity": "invoices", "document": "invoice", "missing_products": "create"},
        "target_settings": {"pipeline": "default", "stages": {"paid": "closedwon", "invoiced": "contractsent"}},
    },
    "ccv-orders-to-hubspot": {
        "source": "salespos",
        "target": "hubspot",
        "entity": "orders",
        "options": {"document": "order", "missing_products": "create", "lines_without_sku": "text"},
        "target_settings": {"pipeline": "default", "default_stage": "closedwon", "stages": {"1": "appointmentscheduled"}},
    },
}


ADMIN_TOKEN = "admin-token-0123456789"  # as the conftest's daemon client sends it
WEBHOOK_URL = "https://sync.example.com/webhooks/hubspot"


def write_config(tmp_path: Path, flows: dict | None = None, hubspot_settings: dict | None = None) -> Path:
    lines = ["[daemon]", 'metrics_address = ""', "", "[state]", f"path = {toml(tmp_path / 'state.db')}", ""]
    lines += ["[admin]", f"token = {toml(ADMIN_TOKEN)}", ""]
    hubspot = {
        **HubSpotConnector.demo_settings(HUBSPOT_URL),
        "webhook_secret": CLIENT_SECRET,
        "webhook_url": WEBHOOK_URL,
        **(hubspot_settings or {}),
    }
    for name, connector, settings in (
        ("hubspot", "hubspot", hubspot),
        ("eaccounting", "eaccounting", EAccountingConnector.demo_settings(EACC_URL)),
        ("salespos", "ccv_salespos", CCVSalesPOSConnector.demo_settings(CCV_URL)),
    ):
        lines += [f"[connections.{name}]", f'connector = "{connector}"', *(f"{k} = {toml(v)}" for k, v in settings.items()), ""]
    for name, flow in {**FLOWS, **(flows or {})}.items():
        lines.append(f"[flows.{name}]")
        lines += ['interval = "1h"']
        for key, value in flow.items():
            if key == "map":
                continue
            lines.append(f"{key} = {toml(value)}")
        for rule in flow.get("map", ()):
            lines += [f"[[flows.{name}.map]]", *(f"{k} = {toml(v)}" for k, v in rule.items())]
        lines.append("")
    path = tmp_path / "apicenterd.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


class Pair:
    """The simulators, the resolved config and a state store; ``run(flow)`` runs it through a fresh engine."""

    def __init__(self, tmp_path: Path, flows: Any = None, hubspot_settings: dict | None = None):
        self.hubspot = HubSpotConnector.simulator(seed=2)
        self.eaccounting = EAccountingConnector.simulator(seed=4, records=30, customers=6)
        self.ccv = CCVSalesPOSConnector.simulator(seed=5, records=10)
        self.hs = self.hubspot.state.sim
        self.hs.search_limit.window.limit = 0  # the engine's limiter keeps to 4/s; the test does not wait for it
        extra = flows(self) if callable(flows) else flows
        self.resolved = load(write_config(tmp_path, extra, hubspot_settings), load_registry())

    def transports(self):
        return {
            "hubspot": httpx.ASGITransport(app=self.hubspot),
            "eaccounting": httpx.ASGITransport(app=self.eaccounting),
            "salespos": httpx.ASGITransport(app=self.ccv),
        }

    async def engine(self):
        store = SQLiteStore(self.resolved.state_path)
        await store.open()
        engine = Engine(self.resolved, store, transports=self.transports(), rate_limits=False, retry_base_delay=0.001)
        return engine, store

    async def run(self, *flows: str):
        engine, store = await self.engine()
        try:
            return [await engine.run_flow(flow) for flow in flows]
        finally:
            await engine.aclose()
            await store.close()


@pytest.fixture
def pair(tmp_path):
    return Pair(tmp_path)


def written(result) -> int:
    return result.counts.get("created", 0) + result.counts.get("updated", 0)


async def test_products_to_hubspot_then_a_second_run_writes_nothing(pair):
    [first] = await pair.run("products-to-hubspot")
    assert first.status == "ok" and first.counts["created"] == 30, first
    assert pair.hs.count("POST", "/crm/v3/objects/products/batch/upsert") == 1
    assert pair.hs.count("POST", "/crm/v3/objects/products/batch/read") == 1
    skus = {p["properties"]["apicenterd_sku"] for p in pair.hs.objects["products"].values()}
    articles = {a["Number"] for a in pair.eaccounting.state.sim.articles.values()}
    assert skus == articles
    pair.hs.reset_counts()
    [second] = await pair.run("products-to-hubspot")
    assert second.status == "ok" and written(second) == 0
    writes = [t for m, t in pair.hs.requests if m in ("POST", "PATCH") and "/search" not in t and "batch/read" not in t]
    assert writes == []
    # the engine hands the sink its batch of new products: one upsert for the 30


async def test_changed_products_are_updated_in_batches_and_a_refused_one_fails_alone(pair):
    [first] = await pair.run("products-to-hubspot")
    assert first.counts["created"] == 30
    eacc = pair.eaccounting.state.sim
    for article in list(eacc.articles.values())[:25]:
        eacc.write_article({**article, "Name": f"{article['Name']} v2"}, article["Id"])
    gone = next(p for p in pair.hs.objects["products"].values() if p["properties"]["apicenterd_sku"] == "EA-00003")
    del pair.hs.objects["products"][gone["id"]]  # deleted in HubSpot meanwhile: its update is refused (207)
    pair.hs.reset_counts()
    [second] = await pair.run("products-to-hubspot")
    assert second.counts["updated"] == 24 and second.counts["failed"] == 1, (second, second.failures)
    [failure] = second.failures
    assert failure[2] == "EA-00003" and "not found" in failure[3].lower(), failure
    assert pair.hs.count("POST", "/crm/v3/objects/products/batch/update") == 1  # the 25 in one call
    assert pair.hs.count("PATCH", "/crm/v3/objects/products") == 0
    names = {p["properties"]["apicenterd_sku"]: p["properties"]["name"] for p in pair.hs.objects["products"].values()}
    changed = {a["Number"]: a["Name"] for a in list(eacc.articles.values())[:25] if a["Number"] != "EA-00003"}
    assert all(names[sku] == name for sku, name in changed.items())


async def test_customers_to_hubspot_as_companies_with_contacts_or_contacts(pair):
    [result] = await pair.run("customers-to-hubspot")
    assert result.status == "ok", result
    eacc = [c for c in pair.eaccounting.state.sim.customers.values() if c.get("EmailAddress")]
    emails = {c["properties"]["email"] for c in pair.hs.objects["contacts"].values()}
    assert {c["EmailAddress"].lower() for c in eacc} <= emails
    companies = [c for c in eacc if not c.get("IsPrivatePerson")]
    assert len(pair.hs.objects["companies"]) == len(companies)
    persons = [c for c in eacc if c.get("IsPrivatePerson")]
    assert persons and companies
    assert pair.hs.count("POST", "/crm/v3/objects/contacts/batch/upsert") == 1  # every contact in one batch
    assert pair.hs.count("POST", "/crm/v3/objects/companies/batch/create") == 1  # every company in another
    assert pair.hs.count("POST", "/crm/v3/objects/companies") == pair.hs.count("POST", "/crm/v3/objects/companies/batch/create")
    for customer in companies:  # each company with its contact as primary contact
        [company] = [c for c in pair.hs.objects["companies"].values() if c["properties"]["name"] == customer["Name"]]
        contact = next(c for c in pair.hs.objects["contacts"].values() if c["properties"]["email"] == customer["EmailAddress"].lower())
        assert contact["properties"]["associatedcompanyid"] == company["id"]
    [again] = await pair.run("customers-to-hubspot")
    assert again.status == "ok" and written(again) == 0, again
    eacc_sim = pair.eaccounting.state.sim
    for customer in eacc:
        eacc_sim.write_customer({**customer, "Telephone": "+46 8 123 45 67"}, customer["Id"])
    pair.hs.reset_counts()
    [changed] = await pair.run("customers-to-hubspot")
    assert changed.status == "ok" and changed.counts["updated"] == len(eacc), changed
    assert pair.hs.count("POST", "/crm/v3/objects/contacts/batch/update") == 1
    assert pair.hs.count("POST", "/crm/v3/objects/companies/batch/update") == (1 if companies else 0)
    assert all(c["properties"].get("phone") == "+46 8 123 45 67" for c in pair.hs.objects["contacts"].values())


CUSTOMER_PROPERTIES = {
    "classification": "lifecyclestage",
    "tax_code": "vat_code",
    "revenue_account": "revenue_account",
    "cost_centre": "cost_centre",
    "cost_unit": "cost_unit",
    "customer_number": "eaccounting_number",
    "custom_fields.segment": "segment",
}


@pytest.fixture
def classified(tmp_path):
    flows = {
        "customers-to-hubspot": {
            "source": "eaccounting",
            "target": "hubspot",
            "entity": "customers",
            "options": {"tax_codes": {"NL": "VAT-NL", "default": "VAT-EU"}, "revenue_accounts": {"NL": "8000", "default": "8100"}},
            "map": [
                {"field": "classification", "from": "kind", "map": {"company": "customer", "person": "lead"}},
                {"field": "cost_centre", "value": "CC-100"},
                {"field": "cost_unit", "value": "CU-7"},
                {"field": "custom_fields.segment", "value": "retail"},
            ],
        }
    }
    return Pair(tmp_path, flows, {"customer_properties": CUSTOMER_PROPERTIES})


async def test_customers_carry_classification_accounts_tax_codes_cost_centre_unit_and_custom_fields(classified):
    """eAccounting customers -> HubSpot with the configured customer properties (created on setup,
    on contacts and companies): the classification as the lifecycle stage (by the flow's map), the
    tax code and revenue account for the customer's country (the flow's tax_codes and
    revenue_accounts), cost centre and unit, a custom field, the eAccounting number; on the company
    of a company customer, on the contact of a person. A second run writes nothing; a customer
    moved abroad is updated (tax code and revenue account by the new country), and only it."""
    pair = classified
    hs = pair.hs
    [result] = await pair.run("customers-to-hubspot")
    assert result.status == "ok" and result.counts["failed"] == 0, (result, result.failures)
    for prop in set(CUSTOMER_PROPERTIES.values()) - {"lifecyclestage"}:  # made on setup, not unique
        assert prop in hs.properties["contacts"] and prop in hs.properties["companies"], prop
        assert not hs.properties["companies"][prop]["hasUniqueValue"]
    eacc = pair.eaccounting.state.sim
    customers = [c for c in eacc.customers.values() if c.get("EmailAddress")]

    def holder(customer: dict) -> dict:
        email = customer["EmailAddress"].lower()
        contact = next(c for c in hs.objects["contacts"].values() if c["properties"]["email"] == email)
        if customer["IsPrivatePerson"]:
            return contact["properties"]
        return hs.objects["companies"][str(contact["properties"]["associatedcompanyid"])]["properties"]

    for customer in customers:
        props = holder(customer)
        nl = customer["InvoiceCountryCode"] == "NL"
        assert props["lifecyclestage"] == ("lead" if customer["IsPrivatePerson"] else "customer"), props
        assert props["vat_code"] == ("VAT-NL" if nl else "VAT-EU") and props["revenue_account"] == ("8000" if nl else "8100")
        assert (props["cost_centre"], props["cost_unit"], props["segment"]) == ("CC-100", "CU-7", "retail")
        assert props["eaccounting_number"] == customer["CustomerNumber"]
    hs.reset_counts()
    [again] = await pair.run("customers-to-hubspot")
    assert again.status == "ok" and written(again) == 0, again
    assert [t for m, t in hs.requests if m in ("POST", "PATCH") and "/search" not in t and "batch/read" not in t] == []
    moved = customers[0]
    eacc.write_customer({**moved, "InvoiceCountryCode": "DE", "InvoiceCity": "Berlin"}, moved["Id"])
    [changed] = await pair.run("customers-to-hubspot")
    assert changed.status == "ok" and changed.counts["updated"] == 1 and changed.counts["failed"] == 0, changed
    props = holder(moved)
    assert (props["vat_code"], props["revenue_account"], props["country"]) == ("VAT-EU", "8100", "DE")


async def test_customers_found_in_hubspot_with_the_same_properties_are_linked_not_written(classified):
    """The look-up reads the configured properties back: a customer already in HubSpot with the
    same values (its link lost, as after a state store restored from an old backup) is linked without a write."""
    pair = classified
    [first] = await pair.run("customers-to-hubspot")
    assert first.status == "ok" and first.counts["failed"] == 0
    import sqlite3

    with sqlite3.connect(pair.resolved.state_path) as db:  # the links and cursor lost (the tokens kept)
        db.execute("DELETE FROM links")
        db.execute("DELETE FROM cursors")
    pair.hs.reset_counts()
    [again] = await pair.run("customers-to-hubspot")
    assert again.status == "ok" and written(again) == 0 and again.counts["unchanged"] == first.counts["created"], again
    assert [t for m, t in pair.hs.requests if m in ("POST", "PATCH") and "/search" not in t and "batch/read" not in t] == []


def test_customer_properties_naming_an_unknown_field_or_a_bad_property_is_a_config_error():
    from apicenterd_hubspot.connector import HubSpotSettings

    with pytest.raises(ValueError, match="'colour' is not a customer field"):
        HubSpotSettings(access_token="x", customer_properties={"colour": "colour"})
    with pytest.raises(ValueError, match="customer_properties.cost_centre: 'Cost Centre' is not a HubSpot property name"):
        HubSpotSettings(access_token="x", customer_properties={"cost_centre": "Cost Centre"})


async def test_hubspot_contacts_become_eaccounting_customers_companies_with_their_contact_and_updates_follow(pair):
    hs = pair.hs
    address = {"address": "Storgatan 1", "zip": "11122", "city": "Stockholm", "country": "SE"}
    hs.create("contacts", {"email": "pia@example.se", "firstname": "Pia", "lastname": "Persson", **address})
    contact = hs.create("contacts", {"email": "bo@bolaget.se", "firstname": "Bo", "lastname": "Lag", "phone": "08-1"})
    company = hs.create("companies", {"name": "Bolaget AB", **address})
    hs.associate("contacts", contact["id"], "companies", company["id"], 1)
    [first] = await pair.run("customers-from-hubspot")
    assert first.status == "ok" and first.counts["created"] == 2, (first, first.failures)
    eacc = pair.eaccounting.state.sim
    by_email = {c["EmailAddress"]: c for c in eacc.customers.values() if c.get("EmailAddress")}
    assert by_email["pia@example.se"]["IsPrivatePerson"] and by_email["pia@example.se"]["Name"] == "Pia Persson"
    bolaget = by_email["bo@bolaget.se"]
    assert bolaget["Name"] == "Bolaget AB" and not bolaget["IsPrivatePerson"] and bolaget["ContactPersonName"] == "Bo Lag"
    [again] = await pair.run("customers-from-hubspot")
    assert again.status == "ok" and written(again) == 0, again
    hs.update("contacts", contact["id"], {"phone": "08-2"})  # changed in HubSpot: the eAccounting customer follows
    [changed] = await pair.run("customers-from-hubspot")
    assert changed.counts["updated"] == 1, (changed, changed.failures)
    assert eacc.customers[bolaget["Id"]]["ContactPersonPhone"] == "08-2"


async def test_hubspot_deals_become_eaccounting_orders_with_customer_and_articles(pair):
    hs = pair.hs
    product = hs.create("products", {"name": "Konsulttimme", "hs_sku": "KONS-1", "price": "950"})
    contact = hs.create(
        "contacts",
        {
            "email": "kund@example.se",
            "firstname": "Karin",
            "lastname": "Kund",
            "address": "Storgatan 1",
            "zip": "11122",
            "city": "Stockholm",
            "country": "SE",
        },
    )
    deal = hs.create("deals", {"dealname": "Avtal", "dealstage": "closedwon", "amount": "1900", "closedate": "2026-04-01T00:00:00.000Z"})
    line = hs.create("line_items", {"name": "Konsulttimme", "quantity": "2", "price": "950", "hs_product_id": product["id"]})
    hs.associate("deals", deal["id"], "line_items", line["id"], 19)
    hs.associate("deals", deal["id"], "contacts", contact["id"], 3)
    hs.create("deals", {"dealname": "Open", "dealstage": "qualifiedtobuy", "amount": "5"})  # not in the stage: not read
    products, orders = await pair.run("products-from-hubspot", "deals-to-eaccounting")
    assert products.status == "ok" and products.counts["created"] == 1, products
    assert orders.status == "ok" and orders.counts["created"] == 1, orders
    eacc = pair.eaccounting.state.sim
    [order] = eacc.orders.values()
    assert order["YourReference"] == f"HS-{deal['id']}"
    customer = eacc.customers[order["CustomerId"]]
    assert customer["EmailAddress"] == "kund@example.se"
    [row] = order["Rows"]
    assert Decimal(str(row["Quantity"])) == 2 and eacc.articles[row["ArticleId"]]["Number"] == "KONS-1"
    [again] = await pair.run("deals-to-eaccounting")
    assert again.status == "ok" and written(again) == 0 and len(eacc.orders) == 1


def deal_flows(pair) -> dict:
    """Closed-won deals as each of eAccounting's documents, debtor by e-mail or the default one,
    articles ensured, payment terms mapped from the deal's own property."""
    default_debtor = next(iter(pair.eaccounting.state.sim.customers))
    options = {
        "statuses": ["closedwon"],
        "missing_products": "create",
        "customer": "default_without_email",
        "default_customer": default_debtor,
        "payment_terms": {"net14": "14 days net", "net30": "30 days net"},
    }
    return {
        f"deals-as-{document}": {
            "source": "hubspot",
            "target": "eaccounting",
            "entity": "orders",
            "options": {**options, "document": document},
            "map": [{"field": "lines.*.tax_rate", "value": 25}],
        }
        for document in ("order", "invoice_draft", "invoice")
    }


@pytest.mark.parametrize("document, store", [("order", "orders"), ("invoice_draft", "invoice_drafts"), ("invoice", "invoices")])
async def test_won_deals_become_eaccounting_documents_with_their_debtor_articles_and_terms(tmp_path, document, store):
    """A deal with a company and its contact (a company debtor with that contact person), one with a
    contact (a person), one with neither (the default debtor); a product only HubSpot has is
    created in eAccounting on the way; the deal's payment terms mapped to eAccounting's."""
    pair = Pair(tmp_path, deal_flows, {"payment_terms_property": "payment_terms"})
    hs = pair.hs
    hs.properties["deals"]["payment_terms"] = {"name": "payment_terms", "type": "string", "hasUniqueValue": False}
    product = hs.create("products", {"name": "Support", "hs_sku": "SUP-1", "price": "500"})
    contact = hs.create(
        "contacts",
        {
            "email": "eva@firman.se",
            "firstname": "Eva",
            "lastname": "Ek",
            "address": "Kungsgatan 3",
            "zip": "11143",
            "city": "Stockholm",
            "country": "SE",
        },
    )
    company = hs.create("companies", {"name": "Firman AB", "address": "Kungsgatan 3", "zip": "11143", "city": "Stockholm", "country": "SE"})
    hs.associate("contacts", contact["id"], "companies", company["id"], 1)
    person = hs.create(
        "contacts",
        {
            "email": "per@example.se",
            "firstname": "Per",
            "lastname": "Son",
            "address": "Byv. 1",
            "zip": "12345",
            "city": "Ort",
            "country": "SE",
        },
    )
    deals = {}
    for name, who in (
        ("company", [("contacts", contact, 3), ("companies", company, 5)]),
        ("person", [("contacts", person, 3)]),
        ("nobody", []),
    ):
        deal = hs.create("deals", {"dealname": name, "dealstage": "closedwon", "amount": "1000", "payment_terms": "net14",
                                   "closedate": "2026-04-01T00:00:00.000Z"})  # fmt: skip
        line = hs.create("line_items", {"name": "Support", "quantity": "2", "price": "500", "hs_product_id": product["id"]})
        hs.associate("deals", deal["id"], "line_items", line["id"], 19)
        for kind, obj, type_id in who:
            hs.associate("deals", deal["id"], kind, obj["id"], type_id)
        deals[name] = deal
    eacc = pair.eaccounting.state.sim
    default_debtor = next(iter(eacc.customers))  # as deal_flows configured it
    [result] = await pair.run(f"deals-as-{document}")
    assert result.status == "ok" and result.counts["created"] == 3, (result, result.failures)
    made = {d["YourReference"]: d for d in getattr(eacc, store).values()}
    assert set(made) == {f"HS-{d['id']}" for d in deals.values()}
    article = eacc.article_by_number("SUP-1")
    assert article is not None  # ensured on the way
    for name, deal in deals.items():
        doc = made[f"HS-{deal['id']}"]
        [row] = doc["Rows"]
        assert row["ArticleId"] == article["Id"] and Decimal(str(row["Quantity"])) == 2
        debtor = eacc.customers[doc["CustomerId"]]
        if name == "company":
            assert debtor["Name"] == "Firman AB" and not debtor["IsPrivatePerson"] and debtor["ContactPersonEmail"] == "eva@firman.se"
        elif name == "person":
            assert debtor["EmailAddress"] == "per@example.se" and debtor["IsPrivatePerson"]
        else:
            assert doc["CustomerId"] == default_debtor
        if document == "invoice":
            assert doc["DueDate"][:10] == "2026-04-15"  # 14 days net
    [again] = await pair.run(f"deals-as-{document}")
    assert again.status == "ok" and written(again) == 0 and len(getattr(eacc, store)) == 3


async def test_orders_become_deals_with_line_items_products_created_on_the_way_and_skipped_next_time(pair):
    [result] = await pair.run("ccv-orders-to-hubspot")
    assert result.status == "ok" and result.counts.get("created", 0) > 0, result
    hs = pair.hs
    deals = list(hs.objects["deals"].values())
    assert len(deals) == result.counts["created"]
    for deal in deals:
        props = deal["properties"]
        assert props["apicenterd_order"] and props["pipeline"] == "default"
        lines = hs.associations.get(("deals", "line_items"), {}).get(deal["id"], {})
        assert lines, f"deal {deal['id']} has no line items"
        assert deal["id"] in hs.associations.get(("deals", "contacts"), {})
    with_product = [li for li in hs.objects["line_items"].values() if li["properties"].get("hs_product_id")]
    assert with_product and all(li["properties"]["hs_product_id"] in hs.objects["products"] for li in with_product)
    [again] = await pair.run("ccv-orders-to-hubspot")
    assert again.status == "ok" and written(again) == 0 and len(hs.objects["deals"]) == len(deals)


def eaccounting_orders(pair, count: int) -> list[dict]:
    from apicenterd_eaccounting.sim_seed_orders import seed_orders

    pair.hs.ten_secondly.window.limit = 0  # the engine keeps to 100/10 s; the test does not wait for it
    for name in ("eaccounting_origin", "eaccounting_reference"):  # custom deal properties, as made in HubSpot
        pair.hs.properties["deals"][name] = {"name": name, "type": "string", "hasUniqueValue": False}
    return seed_orders(pair.eaccounting.state.sim, count, seed=7)


async def test_eaccounting_orders_become_deals_with_line_items_customers_and_new_products_once(pair):
    """eAccounting orders -> HubSpot deals through the order process: the customer found or made
    (company with its contact, or a contact), products missing in HubSpot created on the way, the
    deal with its line items and associations, stage by the status map, amount, currency, close
    date, custom fields; a second run writes nothing."""
    orders = eaccounting_orders(pair, 12)
    eacc = pair.eaccounting.state.sim
    [result] = await pair.run("orders-to-hubspot")
    assert result.status == "ok" and result.counts["created"] == 12, (result, result.failures)
    hs = pair.hs
    deals = {d["properties"]["apicenterd_order"]: d for d in hs.objects["deals"].values()}
    assert sorted(deals) == sorted(str(o["Number"]) for o in orders)
    stages = {2: "appointmentscheduled", 3: "contractsent", 4: "closedwon"}
    products_by_id = hs.objects["products"]
    used = {row["ArticleNumber"] for o in orders for row in o["Rows"]}
    assert {p["properties"]["apicenterd_sku"] for p in products_by_id.values()} == used  # made on the way, each once
    for order in orders:
        deal = deals[str(order["Number"])]
        props = deal["properties"]
        assert props["dealstage"] == stages[order["Status"]] and props["pipeline"] == "default"
        assert Decimal(props["amount"]) == Decimal(str(order["Amount"])) and props["deal_currency_code"] == "EUR"
        closed = datetime.fromtimestamp(int(props["closedate"]) / 1000, timezone.utc)
        assert closed.date().isoformat() == order["OrderDate"][:10]
        assert props["eaccounting_origin"] == "eAccounting" and props["eaccounting_reference"] == order["YourReference"]
        line_ids = hs.associations[("deals", "line_items")][deal["id"]]
        lines = [hs.objects["line_items"][i]["properties"] for i in line_ids]
        assert sorted((li["hs_sku"], Decimal(li["quantity"])) for li in lines) == sorted(
            (row["ArticleNumber"], Decimal(str(row["Quantity"]))) for row in order["Rows"]
        )
        assert all(products_by_id[li["hs_product_id"]]["properties"]["apicenterd_sku"] == li["hs_sku"] for li in lines)
        customer = eacc.customers[order["CustomerId"]]
        [contact_id] = hs.associations[("deals", "contacts")][deal["id"]]
        assert hs.objects["contacts"][contact_id]["properties"]["email"] == customer["EmailAddress"].lower()
        companies = hs.associations.get(("deals", "companies"), {}).get(deal["id"], {})
        if customer["IsPrivatePerson"]:
            assert not companies
        else:
            [company_id] = companies
            assert hs.objects["companies"][company_id]["properties"]["name"] == customer["Name"]
    pair.hs.reset_counts()
    [again] = await pair.run("orders-to-hubspot")
    assert again.status == "ok" and written(again) == 0, again
    writes = [t for m, t in pair.hs.requests if m in ("POST", "PATCH", "PUT") and "/search" not in t and "batch/read" not in t]
    assert writes == [] and len(hs.objects["deals"]) == 12


async def test_eaccounting_invoices_become_deals_numbered_apart_from_orders_once(pair):
    """eAccounting customer invoices -> HubSpot deals (order_property "INV-<number>", so invoice 1
    and order 1 are two deals), with line items (a text row carries no line item), the customer,
    products created on the way, the stage by paid / invoiced; a second run writes nothing."""
    eaccounting_orders(pair, 1)  # order number 1 ...
    eacc = pair.eaccounting.state.sim
    customers, articles = list(eacc.customers.values()), list(eacc.articles.values())
    invoices = []
    for n in range(3):  # ... and invoice numbers 1, 2, 3
        rows = [{"ArticleId": articles[n]["Id"], "Quantity": n + 1, "UnitPrice": Decimal("10.00")}, {"Text": "Thank you"}]
        invoices.append(eacc.documents.write_invoice({"EuThirdParty": False, "CustomerId": customers[n]["Id"], "RotReducedInvoicingType": 0,
                                                      "YourReference": f"ref {n}", "InvoiceDate": f"2026-03-0{n + 1}", "Rows": rows}))  # fmt: skip
    invoices[0]["RemainingAmount"] = Decimal(0)  # paid
    [orders, result] = await pair.run("orders-to-hubspot", "invoices-to-hubspot")
    assert orders.counts["created"] == 1 and result.status == "ok" and result.counts["created"] == 3, (result, result.failures)
    hs = pair.hs
    deals = {d["properties"]["apicenterd_order"]: d for d in hs.objects["deals"].values()}
    assert set(deals) == {"1", "INV-1", "INV-2", "INV-3"}
    for n, invoice in enumerate(invoices):
        deal = deals[f"INV-{invoice['InvoiceNumber']}"]
        assert deal["properties"]["dealstage"] == ("closedwon" if n == 0 else "contractsent")
        assert Decimal(deal["properties"]["amount"]) == Decimal(str(invoice["TotalAmount"]))
        [line_id] = hs.associations[("deals", "line_items")][deal["id"]]
        line = hs.objects["line_items"][line_id]["properties"]
        assert line["hs_sku"] == articles[n]["Number"] and Decimal(line["quantity"]) == n + 1
        [contact_id] = hs.associations[("deals", "contacts")][deal["id"]]
        assert hs.objects["contacts"][contact_id]["properties"]["email"] == customers[n]["EmailAddress"].lower()
    pair.hs.reset_counts()
    [again] = await pair.run("invoices-to-hubspot")
    assert again.status == "ok" and written(again) == 0 and len(hs.objects["deals"]) == 4


async def test_an_order_whose_deal_exists_is_skipped_and_an_unmapped_status_fails_alone(pair):
    orders = eaccounting_orders(pair, 3)
    eacc = pair.eaccounting.state.sim
    first = orders[0]
    pair.hs.properties["deals"]["apicenterd_order"] = {"name": "apicenterd_order", "type": "string", "hasUniqueValue": True}
    pair.hs.create("deals", {"dealname": "made by hand", "apicenterd_order": str(first["Number"]), "dealstage": "closedwon"})
    eacc.orders[orders[1]["Id"]]["Status"] = 1  # draft: not in the stage map, no default_stage
    [result] = await pair.run("orders-to-hubspot")
    assert result.counts["created"] == 1 and result.counts["failed"] == 1, (result, result.failures)
    assert result.counts["unchanged"] + result.counts["skipped"] == 1
    [failure] = result.failures
    assert "'draft' has no deal stage" in failure[3]
    assert len(pair.hs.objects["deals"]) == 2


async def test_a_fault_mid_run_loses_nothing_and_the_next_run_finishes(pair):
    pair.hs.fail_next(
        503,
        {"status": "error", "message": "down", "correlationId": "c", "category": "INTERNAL"},
        times=6,
        path_prefix="/crm/v3/objects/products/batch/upsert",
    )
    [first] = await pair.run("products-to-hubspot")  # 4 attempts, all refused: the run fails
    [second] = await pair.run("products-to-hubspot")  # 2 more refused, then through
    assert first.status == "failed" and "correlationId c" in (first.error or "")
    assert second.status == "ok" and second.counts["created"] == 30, (first, second)
    skus = [p["properties"]["apicenterd_sku"] for p in pair.hs.objects["products"].values()]
    assert len(skus) == len(set(skus)) == 30  # nothing twice, nothing lost


async def test_a_signed_webhook_runs_the_flow_and_a_bad_one_runs_nothing(pair, daemon, gate):
    """Through the daemon's /webhooks/hubspot: a bad signature is refused and runs nothing; a signed
    delivery is answered at once and runs the flow that reads products from HubSpot (debounced)."""
    pair.hs.create("products", {"name": "Ny", "hs_sku": "NY-1", "price": "10"})
    engine, store = await pair.engine()
    try:
        async with daemon(pair.resolved, engine, store, sleep=gate.sleep) as (client, backend):
            body, headers = pair.hs.webhook_request(WEBHOOK_URL, [{"objectId": 1, "subscriptionType": "product.creation", "occurredAt": 1}])
            bad = await client.post("/webhooks/hubspot", content=body, headers={**headers, "X-HubSpot-Signature-v3": "AAAA"})
            assert bad.status_code == 401 and "does not match" in bad.json()["error"]
            assert backend.debouncer.scheduled == 0
            ok = await client.post("/webhooks/hubspot", content=body, headers=headers)
            assert ok.status_code == 202 and ok.json() == {"accepted": 1, "flows": ["products-from-hubspot"]}
            assert not any(a["Number"] == "NY-1" for a in pair.eaccounting.state.sim.articles.values())  # answered before the run
            ran = backend.ran
            gate.open()
            await ran.wait()
            assert any(a["Number"] == "NY-1" for a in pair.eaccounting.state.sim.articles.values())
            assert engine.last_result is not None and engine.last_result.flow == "products-from-hubspot"
            assert engine.last_result.status == "ok" and engine.last_result.counts["created"] == 1
    finally:
        await engine.aclose()
        await store.close()


def webhooks_counted(result: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("apicenterd_webhooks_total", {"connection": "hubspot", "result": result}) or 0.0


async def test_a_deal_won_in_hubspot_reaches_eaccounting_by_webhook_and_forged_or_old_deliveries_run_nothing(pair, daemon, gate):
    """Through the daemon's /webhooks/hubspot: a deal moved to closed won is delivered (v3-signed),
    answered at once, and the debounced run of the deals flow re-reads it through the API and makes
    the eAccounting order; a forged signature and a delivery older than five minutes are refused
    (401), counted in apicenterd_webhooks_total and run nothing."""
    hs = pair.hs
    product = hs.create("products", {"name": "Licens", "hs_sku": "LIC-1", "price": "1200"})
    contact = hs.create("contacts", {"email": "inkop@bolaget.se", "firstname": "Ina", "lastname": "Köp"})
    company = hs.create("companies", {"name": "Bolaget AB", "address": "Hamngatan 2", "zip": "41106", "city": "Göteborg", "country": "SE"})
    hs.associate("contacts", contact["id"], "companies", company["id"], 1)
    deal = hs.create("deals", {"dealname": "Licenser", "dealstage": "contractsent", "amount": "3600"})
    line = hs.create("line_items", {"name": "Licens", "quantity": "3", "price": "1200", "hs_product_id": product["id"]})
    hs.associate("deals", deal["id"], "line_items", line["id"], 19)
    hs.associate("deals", deal["id"], "contacts", contact["id"], 3)
    hs.associate("deals", deal["id"], "companies", company["id"], 5)
    [products] = await pair.run("products-from-hubspot")
    assert products.counts["created"] == 1
    hs.update("deals", deal["id"], {"dealstage": "closedwon"})  # the sales team wins it
    event = {"objectId": int(deal["id"]), "subscriptionType": "deal.propertyChange", "propertyName": "dealstage", "occurredAt": 1}
    engine, store = await pair.engine()
    eacc = pair.eaccounting.state.sim
    try:
        async with daemon(pair.resolved, engine, store, sleep=gate.sleep) as (client, backend):
            unverified = webhooks_counted("unverified")
            accepted = webhooks_counted("accepted")
            body, headers = hs.webhook_request(WEBHOOK_URL, [event])
            forged = await client.post("/webhooks/hubspot", content=body, headers={**headers, "X-HubSpot-Signature-v3": "AAAA"})
            assert forged.status_code == 401 and "does not match" in forged.json()["error"]
            old_body, old_headers = hs.webhook_request(WEBHOOK_URL, [event], timestamp_ms=int((time.time() - 360) * 1000))
            old = await client.post("/webhooks/hubspot", content=old_body, headers=old_headers)
            assert old.status_code == 401 and "more than 5 minutes" in old.json()["error"], old.json()
            assert webhooks_counted("unverified") == unverified + 2
            assert backend.debouncer.scheduled == 0 and not eacc.orders  # nothing ran for them
            ok = await client.post("/webhooks/hubspot", content=body, headers=headers)
            assert ok.status_code == 202 and ok.json() == {"accepted": 1, "flows": ["deals-to-eaccounting"]}
            assert webhooks_counted("accepted") == accepted + 1
            assert not eacc.orders  # answered before the run
            ran = backend.ran
            gate.open()
            await ran.wait()
        assert engine.last_result is not None and engine.last_result.flow == "deals-to-eaccounting"
        assert engine.last_result.status == "ok" and engine.last_result.counts["created"] == 1, engine.last_result
        [order] = eacc.orders.values()
        assert order["YourReference"] == f"HS-{deal['id']}"
        customer = eacc.customers[order["CustomerId"]]
        assert customer["Name"] == "Bolaget AB" and not customer["IsPrivatePerson"]
        assert customer["EmailAddress"] == "inkop@bolaget.se"
        [row] = order["Rows"]
        assert Decimal(str(row["Quantity"])) == 3 and eacc.articles[row["ArticleId"]]["Number"] == "LIC-1"
    finally:
        await engine.aclose()
        await store.close()


def test_the_example_config_passes_check(monkeypatch, capsys):
    from apicenterd import cli

    root = Path(__file__).resolve().parents[3]
    for name, value in {
        "DEMO_HUBSPOT_ACCESS_TOKEN": HubSpotConnector.demo_settings(HUBSPOT_URL)["access_token"],
        **{
            f"DEMO_EACCOUNTING_{k.upper()}": v
            for k, v in EAccountingConnector.demo_settings(EACC_URL).items()
            if k in ("client_id", "client_secret", "refresh_token")
        },
    }.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["check", "--config", str(root / "etc" / "eaccounting-hubspot.example.toml")]) == 0, capsys.readouterr().err


PRODUCT_PROPERTIES = {"item_group": "item_group", "custom_fields.coding": "vat_coding", "custom_fields.origin": "origin_system"}


@pytest.fixture
def product_fields(tmp_path):
    flows = {
        "products-to-hubspot": {
            "source": "eaccounting",
            "target": "hubspot",
            "entity": "products",
            "options": {"custom_fields": {"origin": "eAccounting"}},
            "map": [
                {"field": "item_group", "value": "GOODS"},
                {"field": "custom_fields.coding", "from": "custom_fields.coding"},
            ],
        }
    }
    return Pair(tmp_path, flows, {"product_properties": PRODUCT_PROPERTIES})


async def test_products_carry_item_group_and_the_custom_fields_the_flow_names(product_fields):
    """eAccounting articles -> HubSpot products with the configured product properties (created on
    setup): the item group and the custom fields the flow names (its custom_fields option and a map
    rule custom_fields.coding). A second run writes nothing; a changed coding updates that product only."""
    pair = product_fields
    hs = pair.hs
    [result] = await pair.run("products-to-hubspot")
    assert result.status == "ok" and result.counts["created"] == 30 and result.counts["failed"] == 0, (result, result.failures)
    for prop in PRODUCT_PROPERTIES.values():  # made on setup, as text, not unique
        assert prop in hs.properties["products"] and not hs.properties["products"][prop]["hasUniqueValue"], prop
    eacc = pair.eaccounting.state.sim
    by_sku = {p["properties"]["apicenterd_sku"]: p["properties"] for p in hs.objects["products"].values()}
    codings = {a["Number"]: (a.get("CodingName") or "") for a in eacc.articles.values()}
    assert any(codings.values())
    for sku, coding in codings.items():
        props = by_sku[sku]
        assert (props["item_group"], props["origin_system"], props.get("vat_coding") or "") == ("GOODS", "eAccounting", coding.strip())
        assert "name_english" not in props and "labels" not in props  # eAccounting's fields the flow does not name stay behind
    hs.reset_counts()
    [again] = await pair.run("products-to-hubspot")
    assert again.status == "ok" and written(again) == 0, again
    assert [t for m, t in hs.requests if m in ("POST", "PATCH") and "/search" not in t and "batch/read" not in t] == []
    article = next(a for a in eacc.articles.values() if a.get("CodingName"))
    other = next(c for c in eacc.codings.values() if c["Name"] != article["CodingName"])  # another coding: another CodingName
    eacc.write_article({**article, "CodingId": other["Id"]}, article["Id"])
    [changed] = await pair.run("products-to-hubspot")
    assert changed.status == "ok" and changed.counts["updated"] == 1 and changed.counts["failed"] == 0, changed
    product = next(p for p in hs.objects["products"].values() if p["properties"]["apicenterd_sku"] == article["Number"])
    assert product["properties"]["vat_coding"] == other["Name"] != article["CodingName"]
    others = {sku: p["vat_coding"] for sku, p in by_sku.items() if sku != article["Number"]}
    now = {p["properties"]["apicenterd_sku"]: p["properties"].get("vat_coding") for p in hs.objects["products"].values()}
    assert all(now[sku] == coding for sku, coding in others.items())


async def test_hubspot_products_read_their_configured_properties_into_item_group_and_custom_fields(product_fields):
    """HubSpot -> canonical: the product source reads the configured properties back (an empty one is
    left out of custom_fields, an unset item group is None)."""
    from apicenterd import Entity
    from apicenterd.testing import connect

    hs = product_fields.hs
    settings = {**HubSpotConnector.demo_settings(HUBSPOT_URL), "product_properties": PRODUCT_PROPERTIES}
    async with connect(HubSpotConnector, settings, app=product_fields.hubspot, rate_limits=False) as conn:
        assert isinstance(conn, HubSpotConnector)
        await conn.setup()  # the SKU property
        await conn.setup_products()  # and the configured ones
        hs.create("products", {"name": "Pen", "apicenterd_sku": "P-1", "price": "2", "item_group": "OFFICE", "vat_coding": "25%"})
        hs.create("products", {"name": "Ink", "hs_sku": "P-2", "price": "3", "vat_coding": ""})
        changes = [c async for c in conn.read(Entity.PRODUCTS, None)]
    records = {c.record.sku: c.record for c in changes if c.record is not None}
    assert (records["P-1"].item_group, records["P-1"].custom_fields) == ("OFFICE", {"coding": "25%"})
    assert (records["P-2"].item_group, records["P-2"].custom_fields) == (None, {})


def test_product_properties_naming_an_unknown_field_or_a_bad_property_is_a_config_error():
    from apicenterd_hubspot.connector import HubSpotSettings

    with pytest.raises(ValueError, match="product_properties: 'colour' is not a product field HubSpot can take"):
        HubSpotSettings(access_token="x", product_properties={"colour": "colour"})
    with pytest.raises(ValueError, match="product_properties.item_group: 'Item Group' is not a HubSpot property name"):
        HubSpotSettings(access_token="x", product_properties={"item_group": "Item Group"})
    with pytest.raises(ValueError, match="product_properties.custom_fields.x: 'price' is a property the connector writes itself"):
        HubSpotSettings(access_token="x", product_properties={"custom_fields.x": "price"})
    with pytest.raises(ValueError, match="product_properties.custom_fields.b: 'group' is already the property of custom_fields.a"):
        HubSpotSettings(access_token="x", product_properties={"custom_fields.a": "group", "custom_fields.b": "group"})
    with pytest.raises(ValueError, match="product_properties.item_group: 'apicenterd_sku' is the sku_property"):
        HubSpotSettings(access_token="x", product_properties={"item_group": "apicenterd_sku"})
    with pytest.raises(ValueError, match="product_properties: 'custom_fields.' is not a product field"):
        HubSpotSettings(access_token="x", product_properties={"custom_fields.": "x"})
