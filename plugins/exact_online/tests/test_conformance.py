"""The simulator and the connector's requests against the vendor's SDK model file (field names) and
the SDK's read-only flags (apicenterd_exact_online.sdk), and the simulator against the spec fixtures."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import date
from decimal import Decimal

import pytest
from apicenterd_exact_online import ExactOnlineConnector, mapping
from apicenterd_exact_online.invoices import ExactInvoiceSettings
from apicenterd_exact_online.sdk import READ_ONLY, RESOURCES, SDK_MODEL
from apicenterd_exact_online.simulator import WRITABLE

from apicenterd import Address, Contact, Customer, DocumentRequest, Entity, Found, Invoice, InvoiceLine, JournalEntry, JournalLine, Product
from apicenterd.testing import connect


@pytest.fixture(scope="module")
def sdk_fields(spec_dir) -> dict[str, set[str]]:
    """SDK model (``CRM.Account``) → its property names, from ExactOnline.Client.Models.xml."""
    fields: dict[str, set[str]] = {}
    tree = ET.parse(spec_dir / "ExactOnline.Client.Models.xml")  # noqa: S314 - the vendor's own file, read in a test
    for member in tree.getroot().iter("member"):
        name = member.get("name", "")
        if name.startswith("P:ExactOnline.Client.Models."):
            model, _, prop = name[len("P:ExactOnline.Client.Models.") :].rpartition(".")
            fields.setdefault(model, set()).add(prop)
    return fields


def test_every_model_and_read_only_flag_is_in_the_sdk(sdk_fields):
    for model in set(SDK_MODEL.values()):
        assert model in sdk_fields, model
    for model, names in READ_ONLY.items():
        assert names <= sdk_fields[model], (model, sorted(names - sdk_fields[model]))


def test_the_simulator_accepts_only_writable_sdk_fields(sdk_fields):
    for resource, names in WRITABLE.items():
        model = RESOURCES[resource]
        assert names <= sdk_fields[model], (resource, sorted(names - sdk_fields[model]))
        assert not names & READ_ONLY[model], (resource, sorted(names & READ_ONLY[model]))


def test_the_schema_files_errors_are_not_repeated(sdk_fields):
    """The third-party schemas list Item.SalesPrice and friends; the SDK has none of them."""
    for wrong in ("SalesPrice", "PurchasePrice", "SalesUnit", "SalesCurrency", "Blocked"):
        assert wrong not in sdk_fields["Logistics.Item"]
        assert wrong not in WRITABLE["logistics/Items"]
    assert "IsSales" in READ_ONLY["CRM.Account"] and "Type" in READ_ONLY["CRM.Account"]


def test_selects_name_sdk_fields(sdk_fields):
    assert set(mapping.ITEM_SELECT) - {"Timestamp"} <= sdk_fields["Logistics.Item"]  # Timestamp: the sync API's
    assert set(mapping.PRICE_SELECT) <= sdk_fields["Logistics.SalesItemPrice"]
    assert set(mapping.ACCOUNT_SELECT) <= sdk_fields["CRM.Account"]
    assert set(mapping.STOCK_SELECT) <= sdk_fields["Inventory.ItemWarehouse"]
    assert set(mapping.DELIVERY_SELECT) <= sdk_fields["SalesOrder.GoodsDelivery"]
    orders = set(mapping.ORDER_SELECT)
    assert orders <= sdk_fields["SalesOrder.SalesOrder"] | {"Modified"}, sorted(orders - sdk_fields["SalesOrder.SalesOrder"])


def test_the_fixture_item_has_sdk_field_names(spec_dir, sdk_fields):
    item = json.loads((spec_dir / "fixtures" / "picqer-items.json").read_text())["d"]["results"][0]
    unknown = set(item) - sdk_fields["Logistics.Item"] - {"__metadata"}
    # the fixture is older/newer than the SDK in a few properties; most must agree
    assert len(unknown) <= len(item) // 5, sorted(unknown)
    assert item["__metadata"]["type"] == "Exact.Web.Api.Models.Item"


@pytest.mark.anyio
async def test_every_write_the_connector_sends_is_sdk_conformant(sdk_fields):
    app = ExactOnlineConnector.simulator(seed=5, records=2, customers=1)
    sim = app.state.sim
    settings = ExactOnlineConnector.demo_settings("http://exact.test")
    async with connect(ExactOnlineConnector, settings, app=app) as conn:
        products = conn.sink(Entity.PRODUCTS)
        new = Product(
            sku="C-1",
            name="Conformance",
            price_excl_tax=Decimal("1.00"),
            ean="123",
            unit="pc",
            description="Long",
            item_group="FOOD",
            custom_fields={
                name: 1 if "Number" in name else True if "Bool" in name else "2026-01-31" if "Date" in name else "x"
                for name in mapping.ITEM_FREE_FIELDS
            },
        )
        item_id = await products.create(products.normalize(new))
        changed = new.model_copy(update={"name": "Other", "price_excl_tax": Decimal("2.00"), "active": False, "ean": "456"})
        await products.update(item_id, products.normalize(changed), frozenset(mapping.PRODUCT_FIELDS))
        customers = conn.sink(Entity.CUSTOMERS)
        customer = Customer(
            kind="company",
            name="Co",
            email="co@example.com",
            phone="1",
            vat_number="NL1",
            coc_number="2",
            customer_number="9",
            contact=Contact(first_name="A", last_name="B", email="a@example.com", phone="3"),
            billing_address=Address(street="S", house_number="1", postcode="P", city="C", country="NL"),
            custom_fields={"Remarks": "r", "Website": "w", "SearchCode": "s", "TradeName": "t"},
        )
        account_id = await customers.create(customers.normalize(customer))
        await customers.update(account_id, customers.normalize(customer), frozenset(mapping.CUSTOMER_FIELDS))
        journal = conn.sink(Entity.JOURNAL)
        entry = JournalEntry(
            number="7",
            entry_date=date(2026, 1, 2),
            lines=(
                JournalLine(account="1100", debit=Decimal(5), description="in", cost_centre="C", cost_unit="U"),
                JournalLine(account="8000", credit=Decimal(5)),
            ),
        )
        await journal.create(journal.normalize(entry))
        await journal.create(journal.normalize(entry.model_copy(update={"number": "F12-20260102"})))  # kept in Notes
        debtor = next(iter(sim.data["crm/Accounts"]))
        invoice = Invoice(
            number="I-1",
            invoice_date=date(2026, 1, 3),
            due_date=date(2026, 2, 3),
            total=Decimal("2.42"),
            customer_id=debtor,
            payment_terms="30",
            lines=(
                InvoiceLine(
                    sku="EX-00001",
                    unit_price=Decimal("1.21"),
                    tax_rate=Decimal(21),
                    tax_code="2",
                    discount=Decimal("0.10"),
                    account="8000",
                    cost_centre="C",
                    cost_unit="U",
                ),
                InvoiceLine(description="text", unit_price=Decimal("1.21"), tax_rate=Decimal(21)),
            ),
        )
        await conn.create(Entity.INVOICES, conn.document_sink(Entity.INVOICES).normalize(invoice))
        sink = conn.document_sink(Entity.INVOICES)
        direct = invoice.model_copy(update={"number": "I-2", "payment_terms": None, "payment_method": "IN", "cost_unit": "U"})
        request = DocumentRequest(
            sink.normalize(direct),
            "invoice",
            Found(debtor),
            {"EX-00001": Found(next(iter(sim.data["logistics/Items"])))},
            ExactInvoiceSettings(type="direct", process=True, send_email=False),
        )
        await sink.create(request)
    assert sim.writes
    for method, path, raw in sim.writes:
        resource = re.sub(r"^/api/v1/\d+/|\(guid'.*'\)$", "", path)
        model = RESOURCES[resource]
        body = json.loads(raw)
        assert set(body) <= sdk_fields[model], (method, path, sorted(set(body) - sdk_fields[model]))
        assert not set(body) & READ_ONLY[model], (method, path, sorted(set(body) & READ_ONLY[model]))
        for nested in set(body) & set(SDK_MODEL):
            line_model = SDK_MODEL[nested]
            for line in body[nested]:
                assert set(line) <= sdk_fields[line_model], (nested, sorted(set(line) - sdk_fields[line_model]))
                assert not set(line) & READ_ONLY[line_model], (nested, sorted(set(line) & READ_ONLY[line_model]))
    written = {path.rsplit("/", 1)[-1] for _, path, _ in sim.writes}
    assert written >= {"GeneralJournalEntries", "SalesInvoices", "Items", "Accounts", "PrintedSalesInvoices"}
    bodies = [json.loads(raw) for _, _, raw in sim.writes]
    # the new properties were sent (so the checks above covered them)
    assert any("ItemGroup" in b and "FreeTextField_01" in b and "FreeDateField_05" in b and "Class_10" in b for b in bodies)
    assert any("Remarks" in b and "TradeName" in b for b in bodies)
    assert any(any("CostUnit" in line for line in b.get("SalesInvoiceLines", ())) for b in bodies)
    assert any(any("Notes" in line and "CostUnit" in line for line in b.get("GeneralJournalEntryLines", ())) for b in bodies)


def test_the_free_fields_and_new_resources_are_the_sdks(sdk_fields):
    """Item and Account free fields, the resources the connector now reads or posts, and what they select."""
    assert set(mapping.ITEM_FREE_FIELDS) <= sdk_fields["Logistics.Item"] - READ_ONLY["Logistics.Item"]
    assert set(mapping.ACCOUNT_FREE_FIELDS) <= sdk_fields["CRM.Account"] - READ_ONLY["CRM.Account"]
    assert {"ItemGroup", "ItemGroupCode"} <= sdk_fields["Logistics.Item"]
    assert {"ID", "Code", "PaymentMethod"} <= sdk_fields["Cashflow.PaymentCondition"]
    assert {"ID", "Code", "AccountClassificationName"} <= sdk_fields["CRM.AccountClassification"]
    assert {"ID", "SequenceNumber"} <= sdk_fields["CRM.AccountClassificationName"]
    assert {"ID", "Code", "Percentage"} <= sdk_fields["VAT.VATCode"]
    assert set(mapping.ORDER_LINE_SELECT) <= sdk_fields["SalesOrder.SalesOrderLine"]
    assert {"ID", "Code"} <= sdk_fields["Logistics.ItemGroup"]
    assert {"ID", "EntryID", "Notes"} <= sdk_fields["GeneralJournalEntry.GeneralJournalEntryLine"]
    assert {"InvoiceID", "InvoiceDate", "SendEmailToCustomer", "DocumentLayout"} <= sdk_fields["SalesInvoice.PrintedSalesInvoice"]
    # what the SDK has no writable field for, the connector does not pretend to write
    assert "Costcenter" in READ_ONLY["CRM.Account"] and "CostUnit" not in sdk_fields["CRM.Account"]
    assert "PaymentMethod" not in sdk_fields["SalesInvoice.SalesInvoice"]
