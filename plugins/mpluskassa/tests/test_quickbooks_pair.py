"""The QuickBooks Online ⇄ MplusKASSA integration through the daemon's engine, between the two
simulators (the till validating every request against the WSDL):

* QuickBooks items → MplusKASSA products: numeric SKUs as article numbers, a non-numeric SKU a
  record error by default or an allocated number linked (audit), sub-items grouped into one
  product with several articles, attributes and features from item fields, categories, the
  update checkbox and custom filters;
* QuickBooks stock → MplusKASSA (a branch, or split over branches; available − reservations; the
  manage-stock flag);
* MplusKASSA till orders → QuickBooks (status filter, skipped when they exist, the customer by
  e-mail as company / person / the default debtor, items ensured, SalesReceipt or Invoice, tax
  code and revenue account per country, shipping method, payment methods and terms mapped);
* MplusKASSA relations → QuickBooks customers;
* QuickBooks-side orders (any order source; here CCV SalesPOS) → MplusKASSA (createOrderV3).

Every flow runs a second time and writes nothing.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import httpx
import pytest
from apicenterd_ccv_salespos import plugin as ccv_plugin
from apicenterd_ccv_salespos.connector import CCVSalesPOSConnector
from apicenterd_mpluskassa import MplusKassaConnector
from apicenterd_mpluskassa import plugin as mplus_plugin
from apicenterd_quickbooks import QuickBooksConnector
from apicenterd_quickbooks import plugin as qbo_plugin

from apicenterd.config import Config, resolve
from apicenterd.engine import Engine
from apicenterd.registry import load_registry
from apicenterd.state import SQLiteStore

pytestmark = pytest.mark.anyio

TILL_WRITES = ("createProduct", "updateProduct", "setStock", "createRelation", "updateRelation", "createOrderV3", "newArticleGroup")


@pytest.fixture
def registry():
    return load_registry([("qbo", qbo_plugin), ("mpluskassa", mplus_plugin), ("ccv", ccv_plugin)], entry_points=False)


def item(sim, name: str, sku: str | None, **fields) -> dict:
    body = {"Name": name, "Type": "NonInventory", "IncomeAccountRef": {"value": "1"}, "UnitPrice": Decimal("10.00"), **fields}
    if sku is not None:
        body["Sku"] = sku
    return sim.write("Item", "create", body)


def config(tmp_path, registry, flows: dict, *, till: dict | None = None, qbo: dict | None = None):
    raw = {
        "state": {"path": str(tmp_path / "state.db")},
        "connections": {
            "books": {"connector": "quickbooks", **QuickBooksConnector.demo_settings("http://qbo.test"), "currency": "EUR", **(qbo or {})},
            "till": {"connector": "mpluskassa", **MplusKassaConnector.demo_settings("http://till.test:34343"), **(till or {})},
            "shop": {"connector": "ccv_salespos", **CCVSalesPOSConnector.demo_settings("http://shop.test")},
        },
        "flows": {name: {"interval": "1h", **flow} for name, flow in flows.items()},
    }
    return resolve(Config(**raw), registry, tmp_path / "apicenterd.toml")


async def run(resolved, tmp_path, apps, name):
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    engine = Engine(resolved, store, retry_base_delay=0, transports={k: httpx.ASGITransport(app=v) for k, v in apps.items()})
    try:
        result = await engine.run_flow(name)
        audit = await store.audit(flow=name)
    finally:
        await engine.aclose()
        await store.close()
    return result, audit


def till_writes(till_app) -> int:
    return sum(1 for operation, _ in till_app.state.sim.received if operation in TILL_WRITES)


def qbo_writes(qbo_app) -> int:
    sim = qbo_app.state.sim
    return sum(1 for r in sim.requests if r[0] == "POST" and not r[1].endswith("/query") and "/oauth2/" not in r[1])


def failures(audit) -> list[str]:
    return [f"{e.key}: {e.reason}" for e in audit if e.action == "failed"]


@pytest.fixture
def apps(wsdl):
    return {
        "books": QuickBooksConnector.simulator(seed=5),
        "till": MplusKassaConnector.simulator(seed=5, records=3, relations=0, orders=0, wsdl=wsdl),
        "shop": CCVSalesPOSConnector.simulator(seed=5, records=6),
    }


# ---------------------------------------------------------------- products


def catalogue(sim) -> dict[str, dict]:
    """A QuickBooks catalogue: a category with two simple items, a T-shirt parent item with three
    sizes/colours as sub-items, an inactive item, and an item with a non-numeric SKU."""
    shirts = sim.write("Item", "create", {"Name": "Shirts", "Type": "Category"})
    items = {
        "5001": item(sim, "Mug", "5001", ParentRef={"value": shirts["Id"]}, SubItem=True, Description="Big mug"),
        "5002": item(sim, "Cup", "5002", ParentRef={"value": shirts["Id"]}, SubItem=True, PrefVendorRef={"value": "1", "name": "PT"}),
    }
    parent = item(sim, "T-shirt", "6000", ParentRef={"value": shirts["Id"]}, SubItem=True)
    for sku, colour, size in (("6001", "red", "M"), ("6002", "red", "L"), ("6003", "blue", "M")):
        items[sku] = item(
            sim,
            f"T-shirt {colour} {size}",
            sku,
            ParentRef={"value": parent["Id"], "name": "T-shirt"},
            SubItem=True,
            PurchaseDesc=colour,
            ManPartNum=size,
            PrefVendorRef={"value": "1", "name": "PT"},
        )
    items["5003"] = item(sim, "Old saucer", "5003", Active=False)
    items["MUG-XL"] = item(sim, "Mug XL", "MUG-XL")
    return items


PRODUCT_QBO = {
    "skip_parent_items": True,
    "group_fields": {"colour": "PurchaseDesc", "size": "ManPartNum", "country of origin": "PrefVendorRef.name"},
}
PRODUCT_TILL = {"variant_grouping": "parent_sku", "feature_fields": {"country of origin": "Herkomst"}}
PRODUCTS = {"source": "books", "target": "till", "entity": "products", "filters": [{"field": "active", "op": "eq", "value": True}]}


async def test_items_become_till_products_grouped_with_attributes_and_a_second_run_writes_nothing(tmp_path, registry, apps):
    items = catalogue(apps["books"].state.sim)
    till = apps["till"].state.sim
    resolved = config(
        tmp_path,
        registry,
        {"products": PRODUCTS},
        qbo=PRODUCT_QBO,
        till={**PRODUCT_TILL, "allocate_article_numbers": True, "allocation_range": [900000, 999999]},
    )
    first, audit = await run(resolved, tmp_path, apps, "products")
    assert first.status == "ok" and first.counts["failed"] == 0, (first.counts, failures(audit))
    assert first.counts["created"] == 6 and first.counts["skipped"] == 1, first.counts
    assert any(e.key == "5003" and "filtered out" in e.reason for e in audit)  # inactive: a custom filter
    # numeric SKUs are the article numbers; the parent item 6000 is no article of its own
    assert {5001, 5002, 6001, 6002, 6003} <= set(till.article_product) and 6000 not in till.article_product
    # the three sub-items are one product (the parent's group gets an allocated number: "T-shirt" is no number)
    (shirt,) = {till.article_product[n] for n in (6001, 6002, 6003)}
    assert 900000 <= shirt <= 999999
    articles = {a["articleNumber"]: a for a in till.products[shirt]["articles"]}
    assert (articles[6002]["colour"], articles[6002]["size"]) == ("red", "L")
    assert articles[6003]["customFieldList"]["customField"]["fieldName"] == "Herkomst"
    # categories as article groups
    (group,) = [g["groupNumber"] for g in till.groups.values() if g["name"] == "Shirts"]
    assert group in till.products[till.article_product[5001]]["groupNumbers"]
    # a non-numeric SKU got an allocated number, linked and shown in the audit trail
    (allocated,) = [e for e in audit if e.key == "MUG-XL" and e.action == "created"]
    number = int(allocated.target_id)
    assert 900000 <= number <= 999999 and till.products[till.article_product[number]]["articles"][0]["pluNumber"] == "MUG-XL"
    writes = till_writes(apps["till"])
    second, audit2 = await run(resolved, tmp_path, apps, "products")
    assert second.status == "ok" and second.counts["created"] == 0 and second.counts["updated"] == 0, (second.counts, failures(audit2))
    assert till_writes(apps["till"]) == writes
    assert items  # the catalogue was made


async def test_a_non_numeric_sku_is_a_clear_record_error_by_default(tmp_path, registry, apps):
    catalogue(apps["books"].state.sim)
    resolved = config(
        tmp_path, registry, {"products": PRODUCTS}, qbo=PRODUCT_QBO, till={"variant_grouping": "parent_sku", "categories": False}
    )
    first, audit = await run(resolved, tmp_path, apps, "products")
    reasons = {e.key: e.reason for e in audit if e.action == "failed"}
    assert "MUG-XL" in reasons and "SKU 'MUG-XL' is not numeric" in reasons["MUG-XL"], reasons
    assert "allocate_article_numbers = true" in reasons["MUG-XL"]
    # the T-shirt group has no number either, and says so; the simple items are written
    assert all("variant group 'T-shirt' is not numeric" in reasons[s] for s in ("6001", "6002", "6003")), reasons
    assert first.counts["created"] == 2 and first.counts["failed"] == 4, first.counts


@pytest.mark.parametrize("update_existing", [True, False])
async def test_the_update_checkbox_and_create_only_fields(tmp_path, registry, apps, update_existing):
    qbo = apps["books"].state.sim
    till = apps["till"].state.sim
    mug = item(qbo, "Mug", "5001", UnitPrice=Decimal("10.00"))
    item(qbo, "Cup", "5002")
    flow = {"source": "books", "target": "till", "entity": "products", "create_only_fields": ["name"]}
    resolved = config(
        tmp_path, registry, {"products": {**flow, "options": {"update_existing": update_existing}}}, till={"categories": False}
    )
    first, _ = await run(resolved, tmp_path, apps, "products")
    assert first.counts["created"] == 2
    qbo.write("Item", "update", {"Id": mug["Id"], "SyncToken": mug["SyncToken"], "sparse": True, "Name": "Mug new", "UnitPrice": 12})

    def article(number):
        return next(a for a in till.products[till.article_product[number]]["articles"] if a["articleNumber"] == number)

    writes = till_writes(apps["till"])
    second, audit = await run(resolved, tmp_path, apps, "products")
    if update_existing:  # the price is updated, the name never (create_only_fields)
        assert second.counts["updated"] == 1, (second.counts, failures(audit))
        assert int(article(5001)["priceExcl"]) == 1200 and article(5001)["description"] == "Mug"
    else:  # the update checkbox off: the changed item is not written
        assert second.counts["updated"] == 0 and second.counts["skipped"] == 1 and till_writes(apps["till"]) == writes
        assert int(article(5001)["priceExcl"]) == 1000


# ---------------------------------------------------------------- stock


def stocked(sim) -> None:
    for sku, on_hand, reserved, tracked in (("5001", 10, 3, True), ("5002", 7, 0, True), ("5004", 4, 0, False)):
        fields = {"Type": "Inventory", "TrackQtyOnHand": True, "QtyOnHand": on_hand, "QtyOnSalesOrder": reserved}
        fields |= {"ExpenseAccountRef": {"value": "2"}, "AssetAccountRef": {"value": "3"}, "InvStartDate": "2026-01-01"}
        if not tracked:
            fields = {"Type": "NonInventory"}
        item(sim, f"Item {sku}", sku, **fields)


async def test_stock_to_one_branch_available_minus_reservations_and_managed_only(tmp_path, registry, apps):
    stocked(apps["books"].state.sim)
    till = apps["till"].state.sim
    flows = {
        "products": {"source": "books", "target": "till", "entity": "products"},
        "stock": {"source": "books", "target": "till", "entity": "stock"},
    }
    resolved = config(tmp_path, registry, flows, till={"categories": False, "stock_branch": 1})
    assert (await run(resolved, tmp_path, apps, "products"))[0].counts["created"] == 3
    first, audit = await run(resolved, tmp_path, apps, "stock")
    assert first.status == "ok" and first.counts["failed"] == 0, (first.counts, failures(audit))
    assert till.stock[(1, 5001)][0] == 7 and till.stock[(1, 5002)][0] == 7  # 10 on hand - 3 reserved
    assert (1, 5004) not in till.stock and first.counts["skipped"] >= 1  # 5004's stock is not managed in QuickBooks
    writes = till_writes(apps["till"])
    second, _ = await run(resolved, tmp_path, apps, "stock")
    assert second.counts["updated"] == 0 and till_writes(apps["till"]) == writes


async def test_stock_split_over_branches(tmp_path, registry, apps):
    stocked(apps["books"].state.sim)
    till = apps["till"].state.sim
    till.stock[(2, 0)] = (0, 0)  # a second branch
    flows = {
        "products": {"source": "books", "target": "till", "entity": "products"},
        "stock": {"source": "books", "target": "till", "entity": "stock", "options": {"available": "on_hand"}},
    }
    resolved = config(tmp_path, registry, flows, till={"categories": False, "stock_branch": None, "stock_split": {1: 0.7, 2: 0.3}})
    await run(resolved, tmp_path, apps, "products")
    first, audit = await run(resolved, tmp_path, apps, "stock")
    assert first.status == "ok" and first.counts["failed"] == 0, (first.counts, failures(audit))
    assert (till.stock[(1, 5001)][0], till.stock[(2, 5001)][0]) == (7, 3)  # 10 on hand, 70/30
    writes = till_writes(apps["till"])
    second, _ = await run(resolved, tmp_path, apps, "stock")
    assert second.counts["updated"] == 0 and till_writes(apps["till"]) == writes


# ---------------------------------------------------------------- till orders into QuickBooks


def till_orders(till) -> dict[str, dict]:
    """Relations (a company in NL, a person in BE) and six till orders on the seeded articles."""
    company = {"relationNumber": 1, "syncMarker": next(till.markers), "active": True, "name": "Anna de Vries",
               "companyName": "Koffie BV", "contact": "Anna de Vries", "address": "Markt 1", "zipcode": "2801 JE",
               "city": "Gouda", "country": "NL", "email": "inkoop@koffie.example"}  # fmt: skip
    person = {"relationNumber": 2, "syncMarker": next(till.markers), "active": True, "name": "Jan Peeters",
              "address": "Meir 2", "zipcode": "2000", "city": "Antwerpen", "country": "BE", "email": "jan@peeters.example"}  # fmt: skip
    till.relations.update({1: company, 2: person})
    articles = sorted(till.article_product)

    def line(article: int, quantity: int, price: int) -> dict:
        return {"articleNumber": article, "text": f"Artikel {article}",
                "data": {"quantity": quantity, "decimalPlaces": 0, "price": price, "vatPercentage": 21}}  # fmt: skip

    orders = {}
    for name, relation, paid, method, extra in (
        ("paid_company", 1, True, "PIN", {"deliveryMethod": "post"}),
        ("paid_person", 2, True, "CASH", {"deliveryMethod": "pickup"}),
        ("open_company", 1, False, "ACCOUNT", {}),
        ("walk_in", None, True, "PIN", {}),
        ("cancelled", 2, True, "PIN", {}),
        ("already_booked", 2, True, "PIN", {}),
    ):
        order = {"employeeNumber": 1, "entryBranchNumber": 1, "relationNumber": relation, "fullyPaid": paid, "paymentMethod": method}
        stored = till._store_order({**order, **extra}, [line(articles[0], 2, 1210), line(articles[1], 1, 605)], ext=None)
        if name == "cancelled":
            stored["cancelState"] = "ORDER-CANCEL-STATE-COMPLETE"
        orders[name] = stored
    return orders


ORDER_OPTIONS = {
    "statuses": ["paid", "open", "completed"],
    "customer": "default_without_email",
    "default_customer": "1",
    "missing_products": "create",
    "payment_methods": {"PIN": "card", "CASH": "cash", "ACCOUNT": "account"},
    "payment_terms": {"ACCOUNT": "net30", "PIN": "due", "CASH": "due"},
    "tax_codes": {"NL": {"21": "3", "9": "4"}, "BE": {"default": "5"}, "default": {"default": "6"}},
    "revenue_accounts": {"NL": "79", "default": "80"},
}
ORDER_TARGET = {
    "paid_as": "sales_receipt",
    "payment_methods": {"card": "2", "cash": "1"},
    "payment_terms": {"net30": "3", "due": "1"},
    "ship_methods": {"post": "PostNL", "pickup": "Pick-up"},
    "deposit_account_id": "35",
}


async def test_till_orders_into_quickbooks_receipts_and_invoices_with_their_customers_once(tmp_path, registry, apps):
    qbo = apps["books"].state.sim
    till = apps["till"].state.sim
    orders = till_orders(till)
    walk_in = qbo.write("Customer", "create", {"DisplayName": "Walk-in customer"})
    first_article = sorted(till.article_product)[0]
    existing_item = item(qbo, "Till article", str(first_article))  # found, not created again
    booked = orders["already_booked"]
    number = f"{booked['orderNumber']['year']}-{booked['orderNumber']['number']}"
    qbo.write("SalesReceipt", "create", {"DocNumber": number, "CustomerRef": {"value": walk_in["Id"]},
                                         "Line": [{"Amount": 1, "DetailType": "SalesItemLineDetail",
                                                   "SalesItemLineDetail": {"ItemRef": {"value": existing_item["Id"]}}}]})  # fmt: skip
    flows = {"orders": {"source": "till", "target": "books", "entity": "orders", "options": ORDER_OPTIONS, "target_settings": ORDER_TARGET}}
    resolved = config(tmp_path, registry, flows)
    first, audit = await run(resolved, tmp_path, apps, "orders")
    assert first.status == "ok" and first.counts["failed"] == 0, (first.counts, failures(audit))
    assert first.counts["created"] == 4 and first.counts["skipped"] == 2, first.counts  # cancelled (status), already_booked (exists)
    receipts = {r["DocNumber"]: r for r in qbo.store["SalesReceipt"].values()}
    invoices = {r["DocNumber"]: r for r in qbo.store["Invoice"].values()}

    def doc_number(name: str) -> str:
        o = orders[name]
        return f"{o['orderNumber']['year']}-{o['orderNumber']['number']}"

    assert set(invoices) == {doc_number("open_company")}
    assert set(receipts) == {doc_number(n) for n in ("paid_company", "paid_person", "walk_in", "already_booked")}
    customers = {c.get("PrimaryEmailAddr", {}).get("Address"): c for c in qbo.store["Customer"].values()}
    company, person = customers["inkoop@koffie.example"], customers["jan@peeters.example"]
    assert company["CompanyName"] == "Koffie BV" and (company["GivenName"], company["FamilyName"]) == ("Anna", "de Vries")
    assert "CompanyName" not in person and person["FamilyName"] == "Peeters"
    paid_company, paid_person = receipts[doc_number("paid_company")], receipts[doc_number("paid_person")]
    assert paid_company["CustomerRef"]["value"] == company["Id"] and paid_person["CustomerRef"]["value"] == person["Id"]
    # the new debtors went through one batch call together (no POST customer each), before the documents
    assert qbo.count("POST", f"/v3/company/{qbo.realm}/customer") == 0
    assert receipts[doc_number("walk_in")]["CustomerRef"]["value"] == "1"  # the default debtor
    assert paid_company["PaymentMethodRef"]["value"] == "2" and paid_person["PaymentMethodRef"]["value"] == "1"
    assert paid_company["ShipMethodRef"]["value"] == "PostNL" and paid_person["ShipMethodRef"]["value"] == "Pick-up"
    assert paid_company["DepositToAccountRef"]["value"] == "35"
    assert invoices[doc_number("open_company")]["SalesTermRef"]["value"] == "3"
    nl, be = paid_company["Line"][0]["SalesItemLineDetail"], paid_person["Line"][0]["SalesItemLineDetail"]
    assert (nl["TaxCodeRef"]["value"], nl["ItemAccountRef"]["value"]) == ("3", "79")
    assert (be["TaxCodeRef"]["value"], be["ItemAccountRef"]["value"]) == ("5", "80")
    assert nl["UnitPrice"] == Decimal("10.00")  # 12.10 incl. 21% VAT, net in QuickBooks
    # the items: the existing one found, the other created once with the article number as its Sku
    skus = Counter(i.get("Sku") for i in qbo.store["Item"].values())
    assert skus[str(first_article)] == 1 and skus[str(sorted(till.article_product)[1])] == 1
    assert nl["ItemRef"]["value"] == existing_item["Id"]
    writes = qbo_writes(apps["books"])
    second, _ = await run(resolved, tmp_path, apps, "orders")
    assert second.status == "ok" and second.counts["created"] == 0 and qbo_writes(apps["books"]) == writes


async def test_relations_into_quickbooks_customers_in_batches_once(tmp_path, registry, apps):
    qbo = apps["books"].state.sim
    till = apps["till"].state.sim
    till_orders(till)
    for n in range(3, 40):
        till.relations[n] = {"relationNumber": n, "syncMarker": next(till.markers), "active": True, "name": f"Klant {n}",
                             "address": f"Dorpsstraat {n}", "zipcode": "1234 AB", "city": "Utrecht", "country": "NL",
                             "email": f"klant{n}@example.com"}  # fmt: skip
    flows = {"customers": {"source": "till", "target": "books", "entity": "customers"}}
    resolved = config(tmp_path, registry, flows)
    first, audit = await run(resolved, tmp_path, apps, "customers")
    assert first.status == "ok" and first.counts["created"] == 39 and first.counts["failed"] == 0, (first.counts, failures(audit))
    emails = Counter(c["PrimaryEmailAddr"]["Address"] for c in qbo.store["Customer"].values())
    assert len(emails) == 39 and set(emails.values()) == {1}
    assert qbo.count("POST", f"/v3/company/{qbo.realm}/batch") == 2  # 39 creates: batches of 30 and 9
    assert qbo.count("POST", f"/v3/company/{qbo.realm}/customer") == 0
    # a relation changed in the till updates its customer
    till.relations[2] = {**till.relations[2], "telephone": "03-1234567", "syncMarker": next(till.markers)}
    writes = qbo_writes(apps["books"])
    second, audit = await run(resolved, tmp_path, apps, "customers")
    assert second.counts["created"] == 0 and second.counts["updated"] == 1, (second.counts, failures(audit))
    (person,) = [c for c in qbo.store["Customer"].values() if c["PrimaryEmailAddr"]["Address"] == "jan@peeters.example"]
    assert person["PrimaryPhone"]["FreeFormNumber"] == "03-1234567" and qbo_writes(apps["books"]) == writes + 1
    third, _ = await run(resolved, tmp_path, apps, "customers")
    assert third.counts["created"] == 0 and third.counts["updated"] == 0 and qbo_writes(apps["books"]) == writes + 1


# ---------------------------------------------------------------- any order source into the till


async def test_web_orders_into_the_till_with_their_employee_number_once(tmp_path, registry, apps):
    till = apps["till"].state.sim
    flows = {
        "products": {"source": "shop", "target": "till", "entity": "products"},
        "orders": {
            "source": "shop",
            "target": "till",
            "entity": "orders",
            "options": {
                "statuses": ["new", "in_process", "sent", "delivered", "completed", "cancelled", "on_hold", "paid", "pending"],
                "missing_products": "create",
                "shipping_sku": "900001",
                "discount_sku": "900002",
                "document": "order",
            },
            "target_settings": {"text_article_number": 900003},
        },
    }
    resolved = config(tmp_path, registry, flows, till={"allocate_article_numbers": True, "allocation_range": [200000, 299999]})
    await run(resolved, tmp_path, apps, "products")
    first, audit = await run(resolved, tmp_path, apps, "orders")
    assert first.status == "ok" and first.counts["created"] >= 1 and first.counts["failed"] == 0, (first.counts, failures(audit))
    created = [o for o in till.orders.values() if o.get("extOrderId")]
    assert len(created) == first.counts["created"] and {o["employeeNumber"] for o in created} == {999999}
    assert len(till.idempotent) == len(created)
    writes = till_writes(apps["till"])
    second, _ = await run(resolved, tmp_path, apps, "orders")
    assert second.counts["created"] == 0 and till_writes(apps["till"]) == writes


async def test_relations_take_their_countrys_tax_code_and_the_flows_terms_as_quickbooks_customers(tmp_path, registry, apps):
    qbo = apps["books"].state.sim
    till = apps["till"].state.sim
    till_orders(till)  # relation 1 a company in NL, relation 2 a person in BE
    till.relations[3] = {"relationNumber": 3, "syncMarker": next(till.markers), "active": True, "name": "Kunde 3",
                         "address": "Hauptstr. 3", "zipcode": "10115", "city": "Berlin", "country": "DE",
                         "email": "kunde3@example.de"}  # fmt: skip
    options = {"tax_codes": {"NL": "5", "BE": "7"}, "payment_terms": "3"}
    flows = {"customers": {"source": "till", "target": "books", "entity": "customers", "options": options}}
    resolved = config(tmp_path, registry, flows)
    first, audit = await run(resolved, tmp_path, apps, "customers")
    assert first.counts["created"] == 2 and first.counts["failed"] == 1
    (failed,) = failures(audit)
    assert "'DE' is not in options.tax_codes" in failed and "BE, NL" in failed  # the country named, nothing written for it
    customers = {c["PrimaryEmailAddr"]["Address"]: c for c in qbo.store["Customer"].values()}
    assert set(customers) == {"inkoop@koffie.example", "jan@peeters.example"}
    company, person = customers["inkoop@koffie.example"], customers["jan@peeters.example"]
    assert company["DefaultTaxCodeRef"] == {"value": "5"} and person["DefaultTaxCodeRef"] == {"value": "7"}
    assert company["SalesTermRef"] == person["SalesTermRef"] == {"value": "3"}
    # the map changes (a new code for BE, and a default for the rest): the customers are updated, DE created
    writes = qbo_writes(apps["books"])
    options = {"tax_codes": {"NL": "5", "BE": "9", "default": "11"}, "payment_terms": "3"}
    flows["customers"]["options"] = options
    resolved = config(tmp_path, registry, flows)
    for n in (1, 2):  # read again
        till.relations[n] = {**till.relations[n], "syncMarker": next(till.markers)}
    # DE failed as it is: unchanged, it waits out its dead letter's backoff; changed, it is tried now
    till.relations[3] = {**till.relations[3], "telephone": "030-1234", "syncMarker": next(till.markers)}
    second, audit = await run(resolved, tmp_path, apps, "customers")
    assert (second.counts["created"], second.counts["updated"], second.counts["failed"]) == (1, 1, 0), (second.counts, failures(audit))
    customers = {c["PrimaryEmailAddr"]["Address"]: c for c in qbo.store["Customer"].values()}
    assert customers["jan@peeters.example"]["DefaultTaxCodeRef"] == {"value": "9"}
    assert customers["kunde3@example.de"]["DefaultTaxCodeRef"] == {"value": "11"}
    assert qbo_writes(apps["books"]) > writes
    writes = qbo_writes(apps["books"])
    for n in (1, 2, 3):
        till.relations[n] = {**till.relations[n], "syncMarker": next(till.markers)}
    third, _ = await run(resolved, tmp_path, apps, "customers")
    assert third.counts["created"] == third.counts["updated"] == 0 and qbo_writes(apps["books"]) == writes
