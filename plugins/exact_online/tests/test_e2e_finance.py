"""End to end through the daemon's engine, eAccounting (simulator) ⇄ Exact Online (simulator):
sales invoices (direct, processed, with the flow's maps), financial mutations, products with their
item group and free fields, customers with free fields, orders with payment conditions and methods;
each with a second run that writes nothing."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal

import pytest
from apicenterd_exact_online import ExactOnlineConnector

from apicenterd.testing.settle import resolved_config, run_once

eaccounting = pytest.importorskip("apicenterd_eaccounting")
EAccountingConnector = eaccounting.EAccountingConnector

pytestmark = pytest.mark.anyio


@pytest.fixture
def servers(serve_eacc_exact):
    """Both simulators on loopback ports: (eacc_app, exact_app, eacc_url, exact_url)."""
    return serve_eacc_exact(seed=21, records=6, customers=4)


def _resolved(tmp_path, eacc_url, exact_url, flows):
    connections = {
        "eaccounting": ("eaccounting", EAccountingConnector.demo_settings(eacc_url)),
        "exact": ("exact_online", ExactOnlineConnector.demo_settings(exact_url)),
    }
    return resolved_config(tmp_path, connections, flows)


def _forget(resolved) -> None:
    """Drop the links and cursors (as a lost or restored state would): the next run finds what it wrote."""
    with sqlite3.connect(resolved.state_path) as db:
        db.execute("DELETE FROM links")
        db.execute("DELETE FROM cursors")


async def _dead_letters(resolved) -> list[str]:
    with sqlite3.connect(resolved.state_path) as db:
        return [str(row[0]) for row in db.execute("SELECT error FROM dead_letters")]


def _writes(exact_app) -> list[tuple[str, str]]:
    return [r for r in exact_app.state.sim.requests if r[0] in ("POST", "PUT", "DELETE")]


def _gl(sim) -> dict[str, str]:
    """GL account ID → code."""
    return {gid: a["Code"] for gid, a in sim.data["financial/GLAccounts"].items()}


def _book(eacc, customer, rows):
    return eacc.documents.write_invoice(
        {"CustomerId": customer["Id"], "EuThirdParty": False, "RotReducedInvoicingType": 0, "Rows": rows, "InvoiceDate": "2026-05-01"}
    )


async def test_invoices_become_processed_direct_invoices_with_the_flows_maps_once(tmp_path, servers):
    eacc_app, exact_app, eacc_url, exact_url = servers
    eacc, sim = eacc_app.state.sim, exact_app.state.sim
    companies = sorted((c for c in eacc.customers.values() if not c["IsPrivatePerson"]), key=lambda c: c["CustomerNumber"])
    person = next(c for c in eacc.customers.values() if c["IsPrivatePerson"])
    belgian = companies[1]
    belgian["InvoiceCountryCode"] = "BE"
    articles = sorted(eacc.articles.values(), key=lambda a: a["Number"])
    shipping = articles[-1]  # the article the shop books shipping on
    terms = {t["Name"]: t["Id"] for t in eacc.terms.values()}
    rows = [
        {"ArticleId": articles[0]["Id"], "Quantity": 2, "UnitPrice": 10, "DiscountPercentage": Decimal("0.1")},
        {"ArticleId": articles[1]["Id"], "Quantity": 1, "UnitPrice": 5},
        {"ArticleId": shipping["Id"], "Quantity": 1, "UnitPrice": Decimal("6.95")},
    ]
    dutch_invoice = _book(eacc, companies[0], rows)
    belgian_invoice = _book(eacc, belgian, rows[:2])
    private_invoice = _book(eacc, person, rows[1:2])
    rates = {str(eacc.codings[a["CodingId"]]["VatRatePercent"] * 100) for a in articles}
    vat_table = {format(Decimal(r).normalize(), "f"): f"V{format(Decimal(r).normalize(), 'f')}" for r in rates}
    flows = {
        "invoices": {
            "source": "eaccounting",
            "target": "exact",
            "entity": "invoices",
            "interval": "1h",
            "options": {
                "source_entity": "invoices",
                "missing_products": "create",
                "tax_codes": {"NL": {**vat_table, "default": "V0"}, "BE": {"default": "BE0"}},
                "revenue_accounts": {"NL": "8000", "default": "8100"},
                "shipping_sku": shipping["Number"],
                "shipping_account": "8300",
                "payment_terms": {tid: {"30 days net": "30", "14 days net": "14", "Cash": "00"}[name] for name, tid in terms.items()},
                "cost_centre": "CC1",
                "cost_unit": "CU7",
            },
            "target_settings": {"type": "direct", "process": True, "journal": "70"},
        }
    }
    resolved = _resolved(tmp_path, eacc_url, exact_url, flows)

    first = await run_once(resolved, "invoices")
    assert first.status == "ok", first.error
    assert first.counts["created"] == 3 and first.counts["failed"] == 0
    invoices = {i["YourRef"]: i for i in sim.data["salesinvoice/SalesInvoices"].values()}
    assert set(invoices) == {str(i["InvoiceNumber"]) for i in (dutch_invoice, belgian_invoice, private_invoice)}
    gl = _gl(sim)
    items = {iid: i["Code"] for iid, i in sim.data["logistics/Items"].items()}
    customer_terms = {t["Id"]: t["Name"] for t in eacc.terms.values()}
    for invoice in invoices.values():
        assert invoice["Type"] == 8023 and invoice["Journal"] == "70"
        assert invoice["Status"] == 50 and invoice["InvoiceDate"].startswith("2026-05-01")  # processed, dated the source's day
        assert all(line["CostCenter"] == "CC1" and line["CostUnit"] == "CU7" for line in invoice["SalesInvoiceLines"])
    dutch = invoices[str(dutch_invoice["InvoiceNumber"])]
    expected_terms = {"30 days net": "30", "14 days net": "14", "Cash": "00"}[customer_terms[companies[0]["TermsOfPaymentId"]]]
    assert dutch["PaymentCondition"] == expected_terms
    lines = {items[line["Item"]]: line for line in dutch["SalesInvoiceLines"]}
    assert gl[lines[articles[0]["Number"]]["GLAccount"]] == "8000"  # revenue per country
    assert gl[lines[shipping["Number"]]["GLAccount"]] == "8300"  # shipping costs on their own account
    assert Decimal(str(lines[articles[0]["Number"]]["Discount"])) == Decimal("0.1")  # a fraction of the line
    rate = format((eacc.codings[articles[0]["CodingId"]]["VatRatePercent"] * 100).normalize(), "f")
    assert lines[articles[0]["Number"]]["VATCode"] == f"V{rate}"  # VAT code per country and rate
    belgian_lines = invoices[str(belgian_invoice["InvoiceNumber"])]["SalesInvoiceLines"]
    assert {line["VATCode"] for line in belgian_lines} == {"BE0"} and {gl[line["GLAccount"]] for line in belgian_lines} == {"8100"}
    private = invoices[str(private_invoice["InvoiceNumber"])]["SalesInvoiceLines"][0]
    # a private person's prices include VAT in eAccounting; Exact's UnitPrice excludes it
    rate1 = eacc.codings[articles[1]["CodingId"]]["VatRatePercent"]
    assert Decimal(str(private["UnitPrice"])) == (Decimal(5) / (1 + rate1)).quantize(Decimal("0.01"))
    printed = [r for r in sim.requests if r[0] == "POST" and r[1].endswith("/PrintedSalesInvoices")]
    assert len(printed) == 3

    sim.requests.clear()
    second = await run_once(resolved, "invoices")
    assert second.status == "ok", second.error
    assert second.counts["created"] == 0 and second.counts["failed"] == 0
    assert _writes(exact_app) == []
    assert len(sim.data["salesinvoice/SalesInvoices"]) == 3


async def test_an_unmapped_country_fails_the_invoice_naming_the_map_and_a_draft_stays_open(tmp_path, servers):
    eacc_app, exact_app, eacc_url, exact_url = servers
    eacc, sim = eacc_app.state.sim, exact_app.state.sim
    company = next(c for c in eacc.customers.values() if not c["IsPrivatePerson"])
    article = next(iter(eacc.articles.values()))
    company["InvoiceCountryCode"] = "SE"
    _book(eacc, company, [{"ArticleId": article["Id"], "Quantity": 1, "UnitPrice": 3}])
    flows = {
        "invoices": {
            "source": "eaccounting",
            "target": "exact",
            "entity": "invoices",
            "interval": "1h",
            "options": {"source_entity": "invoices", "missing_products": "create", "revenue_accounts": {"NL": "8000", "DE": "8200"}},
        }
    }
    resolved = _resolved(tmp_path, eacc_url, exact_url, flows)
    run = await run_once(resolved, "invoices")
    assert run.status == "ok", run.error
    assert run.counts["failed"] == 1 and run.counts["created"] == 0
    assert sim.data["salesinvoice/SalesInvoices"] == {} and sim.data["crm/Accounts"] == {}


async def test_without_process_an_invoice_is_a_sales_invoice_left_open(tmp_path, servers):
    eacc_app, exact_app, eacc_url, exact_url = servers
    eacc, sim = eacc_app.state.sim, exact_app.state.sim
    company = next(c for c in eacc.customers.values() if not c["IsPrivatePerson"])
    _book(eacc, company, [{"ArticleId": next(iter(eacc.articles)), "Quantity": 1, "UnitPrice": 3}])
    options = {"source_entity": "invoices", "missing_products": "create", "revenue_accounts": {"default": "8200"}}
    flows = {"invoices": {"source": "eaccounting", "target": "exact", "entity": "invoices", "interval": "1h", "options": options}}
    run = await run_once(_resolved(tmp_path, eacc_url, exact_url, flows), "invoices")
    assert run.counts["created"] == 1, run.counts
    (invoice,) = sim.data["salesinvoice/SalesInvoices"].values()
    assert invoice["Type"] == 8020 and invoice["Status"] != 50
    assert not [r for r in sim.requests if r[1].endswith("/PrintedSalesInvoices")]


async def test_vouchers_become_general_journal_entries_with_the_account_map_never_twice(tmp_path, servers):
    eacc_app, exact_app, eacc_url, exact_url = servers
    eacc, sim = eacc_app.state.sim, exact_app.state.sim
    company = next(c for c in eacc.customers.values() if not c["IsPrivatePerson"])
    articles = sorted(eacc.articles.values(), key=lambda a: a["Number"])
    for n in range(2):
        _book(eacc, company, [{"ArticleId": articles[n]["Id"], "Quantity": 1 + n, "UnitPrice": 20}])
    accounts = sorted({str(row["AccountNumber"]) for v in eacc.vouchers.store.values() for row in v["Rows"]})
    assert len(accounts) >= 3
    # receivables → debtors, VAT → VAT payable, every revenue account → 8000
    from apicenterd_eaccounting.sim_vouchers import RECEIVABLES_ACCOUNT, VAT_ACCOUNT

    account_map = {str(RECEIVABLES_ACCOUNT): "1300", str(VAT_ACCOUNT): "1500", "default": "8000"}
    flows = {
        "journal": {
            "source": "eaccounting",
            "target": "exact",
            "entity": "journal",
            "interval": "1h",
            "options": {"accounts": account_map, "cost_unit": "CU7"},
        }
    }
    resolved = _resolved(tmp_path, eacc_url, exact_url, flows)
    first = await run_once(resolved, "journal")
    assert first.status == "ok", first.error
    assert first.counts["created"] == 2 and first.counts["failed"] == 0
    entries = list(sim.data["generaljournalentry/GeneralJournalEntries"].values())
    gl = _gl(sim)
    numbers = {v["NumberAndNumberSeries"] for v in eacc.vouchers.store.values()}
    for entry in entries:
        assert entry["JournalCode"] == "90"
        notes = {line["Notes"] for line in entry["GeneralJournalEntryLines"]}
        assert len(notes) == 1 and notes.pop().split("-")[0] in numbers  # the voucher's number, kept in Notes
        assert {gl[line["GLAccount"]] for line in entry["GeneralJournalEntryLines"]} <= {"1300", "1500", "8000"}
        assert all(line["CostUnit"] == "CU7" for line in entry["GeneralJournalEntryLines"])
        assert sum(Decimal(str(line["AmountFC"])) for line in entry["GeneralJournalEntryLines"]) == 0

    sim.requests.clear()
    second = await run_once(resolved, "journal")
    assert second.status == "ok", second.error
    assert second.counts["created"] == 0 and second.counts["updated"] == 0
    assert _writes(exact_app) == []

    # the links and cursors lost (a restored backup): every entry is found in Exact by its Notes, none booked again
    _forget(resolved)
    third = await run_once(resolved, "journal")
    assert third.status == "ok", third.error
    assert third.counts["created"] == 0 and third.counts["failed"] == 0
    assert len(sim.data["generaljournalentry/GeneralJournalEntries"]) == 2


async def test_an_unmapped_account_fails_the_voucher_naming_it(tmp_path, servers):
    eacc_app, exact_app, eacc_url, exact_url = servers
    eacc, sim = eacc_app.state.sim, exact_app.state.sim
    company = next(c for c in eacc.customers.values() if not c["IsPrivatePerson"])
    _book(eacc, company, [{"ArticleId": next(iter(eacc.articles)), "Quantity": 1, "UnitPrice": 20}])
    flows = {
        "journal": {
            "source": "eaccounting",
            "target": "exact",
            "entity": "journal",
            "interval": "1h",
            "options": {"accounts": {"1510": "1300"}},
        }
    }
    run = await run_once(_resolved(tmp_path, eacc_url, exact_url, flows), "journal")
    assert run.counts["failed"] == 1 and sim.data["generaljournalentry/GeneralJournalEntries"] == {}


async def test_products_carry_item_group_and_free_fields_and_customers_their_free_fields(tmp_path, servers):
    eacc_app, exact_app, eacc_url, exact_url = servers
    sim = exact_app.state.sim
    flows = {
        "products": {
            "source": "eaccounting",
            "target": "exact",
            "entity": "products",
            "interval": "1h",
            "options": {"item_group": "TOOLS", "custom_fields": {"FreeTextField_01": "from eAccounting", "Class_01": "WEB"}},
        },
        "customers": {
            "source": "eaccounting",
            "target": "exact",
            "entity": "customers",
            "interval": "1h",
            "options": {"custom_fields": {"Remarks": "synced by apicenterd"}, "revenue_accounts": {"NL": "8000"}, "tax_codes": {"NL": "2"}},
        },
    }
    resolved = _resolved(tmp_path, eacc_url, exact_url, flows)
    groups = {g["Code"]: gid for gid, g in sim.data["logistics/ItemGroups"].items()}
    first = await run_once(resolved, "products")
    assert first.status == "ok", first.error and first.counts["failed"] == 0
    items = list(sim.data["logistics/Items"].values())
    assert len(items) == len(eacc_app.state.sim.articles)
    assert all(i["ItemGroup"] == groups["TOOLS"] and i["FreeTextField_01"] == "from eAccounting" and i["Class_01"] == "WEB" for i in items)
    customers = await run_once(resolved, "customers")
    assert customers.status == "ok" and customers.counts["failed"] == 0
    accounts = list(sim.data["crm/Accounts"].values())
    assert accounts and all(a["Remarks"] == "synced by apicenterd" and a["SalesVATCode"] == "2" for a in accounts)
    assert {_gl(sim)[a["GLAccountSales"]] for a in accounts} == {"8000"}

    sim.requests.clear()
    assert (await run_once(resolved, "products")).counts["updated"] == 0
    assert (await run_once(resolved, "customers")).counts["updated"] == 0
    assert _writes(exact_app) == []

    # the links and cursors lost: everything is found in Exact as written (group, free fields): linked, nothing written
    _forget(resolved)
    again = await run_once(resolved, "products")
    assert again.counts["created"] == 0 and again.counts["updated"] == 0, again.counts
    assert (await run_once(resolved, "customers")).counts["updated"] == 0
    assert _writes(exact_app) == []

    # the group changed in the flow (and a full read): the items move, once
    _forget(resolved)
    moved = {**flows, "products": {**flows["products"], "options": {**flows["products"]["options"], "item_group": "FOOD"}}}
    changed = await run_once(_resolved(tmp_path, eacc_url, exact_url, moved), "products")
    assert changed.counts["updated"] == len(items)
    assert {i["ItemGroup"] for i in sim.data["logistics/Items"].values()} == {groups["FOOD"]}


@pytest.mark.parametrize("options", [{"item_group": "NOPE"}, {"custom_fields": {"Colour": "red"}}])
async def test_an_unknown_item_group_or_free_field_fails_the_record_naming_it(tmp_path, servers, options):
    eacc_app, exact_app, eacc_url, exact_url = servers
    flows = {"products": {"source": "eaccounting", "target": "exact", "entity": "products", "interval": "1h", "options": options}}
    resolved = _resolved(tmp_path, eacc_url, exact_url, flows)
    run = await run_once(resolved, "products")
    assert run.counts["failed"] == len(eacc_app.state.sim.articles) and run.counts["created"] == 0
    assert exact_app.state.sim.data["logistics/Items"] == {}
    reasons = await _dead_letters(resolved)
    assert reasons and all(("NOPE" if "item_group" in options else "Colour") in r for r in reasons), reasons


async def test_a_customer_cost_centre_is_refused_with_where_to_set_it(tmp_path, servers):
    eacc_app, exact_app, eacc_url, exact_url = servers
    flows = {
        "customers": {
            "source": "eaccounting",
            "target": "exact",
            "entity": "customers",
            "interval": "1h",
            "options": {"cost_centre": "CC1"},
        }
    }
    run = await run_once(_resolved(tmp_path, eacc_url, exact_url, flows), "customers")
    assert run.counts["failed"] == len(eacc_app.state.sim.customers) and exact_app.state.sim.data["crm/Accounts"] == {}


async def test_orders_carry_the_payment_condition_and_its_method_mapped_into_eaccounting(tmp_path, servers):
    eacc_app, exact_app, eacc_url, exact_url = servers
    eacc, sim = eacc_app.state.sim, exact_app.state.sim
    for n in range(1, 3):
        sim._store("logistics/Items", {"Code": f"PAY-{n}", "Description": f"Pay product {n}", "IsSalesItem": True})
    buyer = sim.add_account(
        "Payer BV", "pay@payer.example", code="4001", City="Delft", Country="NL", AddressLine1="Markt 2", Postcode="2611"
    )
    sim.add_order(buyer["ID"], [("PAY-1", 1, 10.0)], payment_condition="30")
    sim.add_order(buyer["ID"], [("PAY-2", 2, 4.0)], payment_condition="IN")
    terms = {t["Name"]: t["Id"] for t in eacc.terms.values()}
    flows = {
        "orders": {
            "source": "exact",
            "target": "eaccounting",
            "entity": "orders",
            "interval": "1h",
            "options": {
                "document": "order",
                "missing_products": "create",
                "payment_terms": {"30": terms["30 days net"], "IN": terms["14 days net"]},
                "payment_methods": {"B": "invoice", "I": "direct_debit", "K": "cash"},
            },
        }
    }
    resolved = _resolved(tmp_path, eacc_url, exact_url, flows)
    first = await run_once(resolved, "orders")
    assert first.status == "ok", first.error
    assert first.counts["created"] == 2 and first.counts["failed"] == 0
    customer = next(c for c in eacc.customers.values() if c.get("EmailAddress") == "pay@payer.example")
    # eAccounting keeps terms on the customer: the mapped terms of the order that created it
    assert customer["TermsOfPaymentId"] in (terms["30 days net"], terms["14 days net"])
    conditions = [r for r in sim.requests if r[1].endswith("/cashflow/PaymentConditions")]
    assert len(conditions) == 1  # the conditions' methods read once

    sim.add_order(buyer["ID"], [("PAY-1", 1, 10.0)], payment_condition="00")  # method K: mapped; terms "00": not in the map
    eacc.requests.clear()
    second = await run_once(resolved, "orders")
    assert second.counts["created"] == 0 and second.counts["failed"] == 1
    assert [r for r in eacc.requests if r[0] in ("POST", "PUT")] == []


def test_the_invoice_payment_method_is_a_payment_condition_when_no_terms(tmp_path):
    from datetime import date

    from apicenterd_exact_online.invoices import ExactInvoiceSettings, invoice_body

    from apicenterd import DocumentRequest, Found, Invoice, InvoiceLine

    invoice = Invoice(
        number="9",
        invoice_date=date(2026, 1, 1),
        total=Decimal(1),
        payment_method="IN",
        cost_unit="CU1",
        lines=(InvoiceLine(kind="shipping", sku="SHIP", unit_price=Decimal(1), account="8300"),),
    )
    request = DocumentRequest(invoice, "invoice", Found("acc"), {"SHIP": Found("item")}, None)
    body = invoice_body(request, settings=ExactInvoiceSettings(), gl_accounts={"8300": "gl"})
    assert body["PaymentCondition"] == "IN"
    assert body["SalesInvoiceLines"][0] == {
        "Description": "SHIP",
        "Quantity": Decimal(1),
        "UnitPrice": Decimal(1),
        "Item": "item",
        "GLAccount": "gl",
        "CostUnit": "CU1",
    }
    with_terms = invoice_body(
        DocumentRequest(invoice.model_copy(update={"payment_terms": "30"}), "invoice", Found("acc"), {"SHIP": Found("item")}, None),
        settings=ExactInvoiceSettings(),
        gl_accounts={"8300": "gl"},
    )
    assert with_terms["PaymentCondition"] == "30"
    assert json.dumps(ExactInvoiceSettings(type="direct", process=True).model_dump()) == json.dumps(
        {"journal": "70", "type": "direct", "process": True, "send_email": False, "document_layout": None}
    )
