"""The simulator against the vendor's swagger: paths, response schemas, required and maxLength rules."""

from __future__ import annotations

import copy
import re
from datetime import datetime
from decimal import Decimal

import jsonschema
import pytest
from apicenterd_eaccounting import EAccountingConnector
from apicenterd_eaccounting.simulator import ARTICLE_RULES, CUSTOMER_RULES

pytestmark = pytest.mark.anyio


def nullable(schema):
    """The swagger's schema with null allowed wherever a type is given.

    Swagger 2.0 cannot say "nullable"; eAccounting (ASP.NET) serialises unset properties as null.
    """
    schema = copy.deepcopy(schema)

    def walk(node):
        """Add null to every typed node below ``node``."""
        if isinstance(node, dict):
            if isinstance(node.get("type"), str):
                node["type"] = [node["type"], "null"]
                if "enum" in node:
                    node["enum"] = [*node["enum"], None]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


@pytest.fixture(scope="module")
def definitions(swagger):
    """The swagger's definitions, nullable."""
    return nullable(swagger["definitions"])


def response_validator(swagger, definitions, path, method="get"):
    """A validator for the 200 response the swagger declares for ``method path``."""
    schema = swagger["paths"][path][method]["responses"]["200"]["schema"]
    return jsonschema.Draft4Validator({**nullable(schema), "definitions": definitions})


def spec_path(path: str) -> str:
    """A path with its parameter names blanked (``/v2/articles/{}``)."""
    return re.sub(r"\{[^}]+\}", "{}", path)


@pytest.fixture
async def api(authorised):
    """An authorised client and the state of a seeded simulator."""
    app = EAccountingConnector.simulator(seed=5, records=3, customers=2)
    client = await authorised(app)
    yield client, app.state.sim
    await client.aclose()


def test_every_simulated_route_is_in_the_swagger(swagger):
    app = EAccountingConnector.simulator()
    spec = {(spec_path(p), m.upper()) for p, methods in swagger["paths"].items() for m in methods}
    served = {
        (spec_path(route.path), method)
        for route in app.routes
        for method in route.methods - {"HEAD"}
        if route.path != "/connect/token"  # Visma's identity server, not the API
    }
    assert served and served <= spec, sorted(served - spec)


@pytest.mark.parametrize(
    ("rules", "definition"), [(ARTICLE_RULES, "ArticleApi"), (CUSTOMER_RULES, "CustomerApi")], ids=["article", "customer"]
)
def test_the_simulators_rules_are_the_swaggers(swagger, rules, definition):
    spec = swagger["definitions"][definition]
    assert set(rules) == set(spec["properties"])
    assert {name for name, rule in rules.items() if rule.required} == set(spec["required"])
    for name, prop in spec["properties"].items():
        assert rules[name].max_length == prop.get("maxLength"), name
        if "maximum" in prop:
            assert (rules[name].minimum, rules[name].maximum) == (Decimal(str(prop["minimum"])), Decimal(str(prop["maximum"]))), name
        read_only = (prop.get("description") or "").startswith("Read-only") or ("$ref" in prop and name == "TermsOfPayment")
        assert not read_only or rules[name].read_only, f"{name} is read-only in the swagger"


@pytest.mark.parametrize(
    ("path", "attribute"),
    [
        ("/v2/articles", None),
        ("/v2/customers", None),
        ("/v2/articleaccountcodings", None),
        ("/v2/units", None),
        ("/v2/termsofpayments", None),
        ("/v2/companysettings", None),
        ("/v2/articles/{articleId}", "articles"),
        ("/v2/customers/{customerId}", "customers"),
        ("/v2/articleaccountcodings/{articleAccountCodingId}", "codings"),
        ("/v2/units/{id}", "units"),
        ("/v2/termsofpayments/{id}", "terms"),
    ],
)
async def test_responses_validate_against_the_swagger(api, swagger, definitions, path, attribute):
    client, sim = api
    url = path if attribute is None else re.sub(r"\{[^}]+\}", next(iter(getattr(sim, attribute))), path)
    response = await client.get(url)
    assert response.status_code == 200, response.text
    body = response.json()
    response_validator(swagger, definitions, path).validate(body)
    if "Meta" in body:
        assert body["Data"] and body["Meta"]["TotalNumberOfResults"] == len(body["Data"])
        datetime.fromisoformat(body["Meta"]["ServerTimeUtc"].replace("Z", "+00:00"))


def valid_article(sim, **overrides):
    """A POST /v2/articles body the swagger accepts."""
    body = {"IsActive": True, "Number": "C-1", "Name": "Conformance", "CodingId": sim.coding_for(21), "UnitId": next(iter(sim.units)), "NetPrice": 1.5}
    body.update(overrides)
    return body


def valid_customer(sim, **overrides):
    """A POST /v2/customers body the swagger accepts."""
    body = {"Name": "Conformance", "InvoiceCity": "Utrecht", "InvoicePostalCode": "3511AA", "TermsOfPaymentId": next(iter(sim.terms)), "IsPrivatePerson": False, "IsActive": True}
    body.update(overrides)
    return body


async def test_created_article_and_customer_validate(api, swagger, definitions):
    client, sim = api
    article = await client.post("/v2/articles", json=valid_article(sim))
    customer = await client.post("/v2/customers", json=valid_customer(sim))
    response_validator(swagger, definitions, "/v2/articles", "post").validate(article.json())
    response_validator(swagger, definitions, "/v2/customers", "post").validate(customer.json())
    assert article.json()["CodingName"] and customer.json()["TermsOfPayment"]["Id"] == customer.json()["TermsOfPaymentId"]


BODIES = {"ArticleApi": ("/v2/articles", valid_article), "CustomerApi": ("/v2/customers", valid_customer)}


def required_cases(swagger):
    """Every (definition, required property) pair of the bodies tested."""
    return [(d, p) for d in BODIES for p in swagger["definitions"][d]["required"]]


def length_cases(swagger):
    """Every (definition, property, maxLength) of the bodies tested."""
    return [(d, p, s["maxLength"]) for d in BODIES for p, s in swagger["definitions"][d]["properties"].items() if "maxLength" in s and "Read-only" not in s.get("description", "")]


@pytest.fixture(scope="module")
def spec_cases(swagger):
    """The rule cases read from the swagger."""
    return {"required": required_cases(swagger), "length": length_cases(swagger)}


async def test_the_simulator_rejects_each_missing_required_property(api, spec_cases):
    client, sim = api
    assert len(spec_cases["required"]) == 11
    for definition, prop in spec_cases["required"]:
        path, valid = BODIES[definition]
        body = valid(sim)
        body.pop(prop, None)
        response = await client.post(path, json=body)
        assert response.status_code == 400, (definition, prop)
        error = response.json()
        assert error["ErrorCode"] == 2000 and f"{prop}: The {prop} field is required." in error["DeveloperErrorMessage"]
        assert error["ErrorId"]


async def test_the_simulator_enforces_every_max_length(api, spec_cases):
    client, sim = api
    assert len(spec_cases["length"]) >= 30
    for n, (definition, prop, limit) in enumerate(spec_cases["length"]):
        path, valid = BODIES[definition]
        unique = {"Number": f"L-{n}"} if definition == "ArticleApi" else {}
        too_long = await client.post(path, json=valid(sim, **{**unique, prop: "x" * (limit + 1)}))
        assert too_long.status_code == 400, (definition, prop)
        assert f"maximum length of {limit}" in too_long.json()["DeveloperErrorMessage"]
        just_right = await client.post(path, json=valid(sim, **{**unique, prop: "y" * limit}))
        assert just_right.status_code == 200, (definition, prop, just_right.text)


async def test_the_simulator_enforces_minimum_maximum_and_types(api, swagger):
    client, sim = api
    for prop in ("NetPrice", "GrossPrice"):
        spec = swagger["definitions"]["ArticleApi"]["properties"][prop]
        for value in (spec["minimum"] - 1, spec["maximum"] + 1):
            response = await client.post("/v2/articles", json=valid_article(sim, **{prop: value}))
            assert response.status_code == 400 and prop in response.json()["DeveloperErrorMessage"]
    for prop, value in (("IsActive", "yes"), ("CodingId", "not-a-guid"), ("NetPrice", "cheap"), ("NetPrice", 1.234)):
        response = await client.post("/v2/articles", json=valid_article(sim, **{prop: value}))
        assert response.status_code == 400 and response.json()["DeveloperErrorMessage"].startswith(prop), (prop, value)


async def test_duplicate_numbers_conflict_and_unknown_references_fail(api):
    client, sim = api
    taken = next(iter(sim.articles.values()))["Number"]
    conflict = await client.post("/v2/articles", json=valid_article(sim, Number=taken))
    assert conflict.status_code == 400 and conflict.json()["ErrorCode"] == 4000
    unknown = await client.post("/v2/articles", json=valid_article(sim, CodingId="0b6c1b7e-5a7a-4f5e-9a3b-2f1d3c4e5f60"))
    assert unknown.status_code == 400 and unknown.json()["ErrorCode"] == 3000


async def test_read_only_properties_are_ignored_on_write(api):
    client, sim = api
    body = valid_article(sim, Id="0b6c1b7e-5a7a-4f5e-9a3b-2f1d3c4e5f60", ChangedUtc="1999-01-01T00:00:00Z", StockBalanceAvailable=99, UnitName="bogus")
    created = (await client.post("/v2/articles", json=body)).json()
    assert created["Id"] != body["Id"] and created["ChangedUtc"] != body["ChangedUtc"]
    assert created["StockBalanceAvailable"] == 0 and created["UnitName"] != "bogus"


async def test_paging_filter_and_orderby(api):
    client, sim = api
    listed = (await client.get("/v2/articles", params={"$pagesize": 2, "$page": 2, "$orderby": "Number desc"})).json()
    assert listed["Meta"]["TotalNumberOfPages"] == 2 and [a["Number"] for a in listed["Data"]] == ["EA-00001"]
    filtered = (await client.get("/v2/articles", params={"$filter": "Number eq 'ea-00002' and IsActive eq true"})).json()
    assert [a["Number"] for a in filtered["Data"]] == ["EA-00002"]
    since = (await client.get("/v2/articles", params={"$filter": "ChangedUtc ge 2024-01-01T00:02:00Z"})).json()
    assert sorted(a["Number"] for a in since["Data"]) == ["EA-00002", "EA-00003"]
    for bad in ({"$filter": "substringof('x', Name)"}, {"$filter": "Colour eq 'red'"}, {"$top": "1"}, {"$page": "zero"}):
        response = await client.get("/v2/articles", params=bad)
        assert response.status_code == 400 and response.json()["ErrorCode"] == 2000, bad


async def test_missing_or_expired_tokens_get_401_and_bad_clients_get_invalid_client(api):
    client, sim = api
    anonymous = await client.get("/v2/articles", headers={"Authorization": ""})
    assert anonymous.status_code == 401 and anonymous.json()["ErrorCode"] == 4005
    sim.expire_access_tokens()
    assert (await client.get("/v2/articles")).status_code == 401
    wrong = await client.post("/connect/token", data={"grant_type": "refresh_token", "refresh_token": "x"}, auth=("someone", "else"))
    assert (wrong.status_code, wrong.json()) == (401, {"error": "invalid_client"})


# -- sales documents --------------------------------------------------------------------------

from apicenterd_eaccounting.sim_rules import (  # noqa: E402
    DRAFT_ROW_RULES,
    DRAFT_RULES,
    INVOICE_ROW_RULES,
    INVOICE_RULES,
    ORDER_ROW_RULES,
    ORDER_RULES,
    PERSON_RULES,
)

SALES_RULES = {
    "OrderApi": ORDER_RULES,
    "OrderRowApi": ORDER_ROW_RULES,
    "CustomerInvoiceDraftApi": DRAFT_RULES,
    "CustomerInvoiceDraftRowApi": DRAFT_ROW_RULES,
    "CustomerInvoiceApi": INVOICE_RULES,
    "CustomerInvoiceRowApi": INVOICE_ROW_RULES,
    "SalesDocumentRotRutReductionPersonApi": PERSON_RULES,
}
SPEC_TYPES = {("string", "uuid"): "uuid", ("string", "date-time"): "datetime", ("string", None): "string", ("number", "double"): "number",
              ("integer", "int32"): "integer", ("boolean", None): "boolean", ("array", None): "array"}


@pytest.mark.parametrize("definition", sorted(SALES_RULES))
def test_the_simulators_sales_rules_are_the_swaggers(swagger, definition):
    rules, spec = SALES_RULES[definition], swagger["definitions"][definition]
    assert set(rules) == set(spec["properties"])
    assert {name for name, rule in rules.items() if rule.required} == set(spec.get("required", []))
    for name, prop in spec["properties"].items():
        rule = rules[name]
        assert rule.type == SPEC_TYPES[(prop["type"], prop.get("format"))], name
        assert rule.max_length == prop.get("maxLength"), name
        assert rule.minimum == (Decimal(str(prop["minimum"])) if "minimum" in prop else None), name
        assert rule.maximum == (Decimal(str(prop["maximum"])) if "maximum" in prop else None), name
        assert rule.enum == (tuple(prop["enum"]) if "enum" in prop else None), name
        decimals = re.search(r"\{1,(\d)\}", prop.get("pattern", ""))
        assert rule.decimals == (int(decimals.group(1)) if decimals else None), name
        assert rule.read_only == ("read-only" in (prop.get("description") or "").lower()), name
        ref = prop.get("items", {}).get("$ref", "").rpartition("/")[2]
        assert (rule.items is SALES_RULES[ref]) if ref else rule.items is None, name


async def _documents(client, sim):
    """One order, one invoice draft and one invoice, created through the simulator's API."""
    order = await client.post("/v2/orders", json=valid_order(sim))
    draft = await client.post("/v2/customerinvoicedrafts", json=valid_draft(sim))
    invoice = await client.post("/v2/customerinvoices", json=valid_invoice(sim))
    assert (order.status_code, draft.status_code, invoice.status_code) == (200, 200, 200), (order.text, draft.text, invoice.text)
    return order, draft, invoice


def valid_order(sim, **overrides):
    """A POST /v2/orders body the swagger accepts: the required properties and one article row."""
    body = {
        "Amount": 12.1, "CustomerId": next(iter(sim.customers)), "CurrencyCode": "EUR", "VatAmount": 2.1, "RoundingsAmount": 0,
        "InvoiceCity": "Utrecht", "InvoiceCountryCode": "NL", "InvoiceCustomerName": "Conformance", "InvoicePostalCode": "3511AA",
        "EuThirdParty": False, "CustomerIsPrivatePerson": False, "OrderDate": "2024-05-01", "Status": 2,
        "RotReducedInvoicingType": 0, "ReverseChargeOnConstructionServices": False, "YourReference": "C-1",
        "Rows": [{"LineNumber": 1, "IsTextRow": False, "IsWorkCost": False, "EligibleForReverseChargeOnVat": False, "ArticleId": next(iter(sim.articles)), "Quantity": 1, "UnitPrice": 10}],
    }
    body.update(overrides)
    return body


def valid_draft(sim, **overrides):
    """A POST /v2/customerinvoicedrafts body the swagger accepts."""
    body = {
        "CustomerId": next(iter(sim.customers)), "RotReducedInvoicingType": 0, "InvoiceCustomerName": "Conformance", "InvoicePostalCode": "3511AA",
        "InvoiceCity": "Utrecht", "InvoiceCountryCode": "NL", "EuThirdParty": False, "CustomerIsPrivatePerson": False, "YourReference": "C-2",
        "Rows": [{"LineNumber": 1, "IsTextRow": False, "Text": "Row", "ReversedConstructionServicesVatFree": False, "ArticleId": next(iter(sim.articles)), "Quantity": 2}],
    }
    body.update(overrides)
    return body


def valid_invoice(sim, **overrides):
    """A POST /v2/customerinvoices body the swagger accepts."""
    body = {
        "EuThirdParty": False, "CustomerId": next(iter(sim.customers)), "RotReducedInvoicingType": 0, "YourReference": "C-3",
        "Rows": [{"ArticleId": next(iter(sim.articles)), "Quantity": 1, "UnitPrice": 10}, {"Text": "A text row"}],
    }
    body.update(overrides)
    return body


async def test_sales_responses_validate_against_the_swagger(api, swagger, definitions):
    client, sim = api
    order, draft, invoice = await _documents(client, sim)
    response_validator(swagger, definitions, "/v2/orders", "post").validate(order.json())
    response_validator(swagger, definitions, "/v2/customerinvoicedrafts", "post").validate(draft.json())
    response_validator(swagger, definitions, "/v2/customerinvoices", "post").validate(invoice.json())
    assert set(invoice.json()) == {"Url"}
    ids = {"orders": order.json()["Id"], "customerinvoicedrafts": draft.json()["Id"], "customerinvoices": next(iter(sim.invoices))}
    singles = {
        "/v2/orders/{id}": ids["orders"], "/v2/customerinvoicedrafts/{invoiceDraftId}": ids["customerinvoicedrafts"],
        "/v2/customerinvoices/{invoiceId}": ids["customerinvoices"], "/v2/deliverymethods/{deliveryMethodId}": next(iter(sim.delivery_methods)),
        "/v2/deliveryterms/{deliveryTermId}": next(iter(sim.delivery_terms)),
    }
    for path in ("/v2/orders", "/v2/customerinvoicedrafts", "/v2/customerinvoices", "/v2/deliverymethods", "/v2/deliveryterms", "/v2/costcenters", *singles):
        url = re.sub(r"\{[^}]+\}", singles.get(path, ""), path)
        response = await client.get(url)
        assert response.status_code == 200, (path, response.text)
        response_validator(swagger, definitions, path).validate(response.json())
        if "Meta" in response.json():
            assert response.json()["Data"], path


async def test_totals_are_computed_by_the_server(api):
    client, sim = api
    order, draft, invoice = await _documents(client, sim)
    article = next(iter(sim.articles.values()))
    rate = sim.codings[article["CodingId"]]["VatRatePercent"]
    # the order's row: 1 x 10.00 excl. VAT; the draft's: 2 x the article's NetPrice (no UnitPrice given)
    assert (Decimal(str(order.json()["Amount"])), Decimal(str(order.json()["VatAmount"]))) == (
        (10 * (1 + rate)).quantize(Decimal("0.01")), (10 * rate).quantize(Decimal("0.01")))
    net = 2 * article["NetPrice"]
    assert Decimal(str(draft.json()["TotalAmount"])) == (net + (net * rate).quantize(Decimal("0.01")))
    booked = next(iter(sim.invoices.values()))
    assert booked["TotalAmount"] == (10 * (1 + rate)).quantize(Decimal("0.01")) and booked["Rows"][1]["IsTextRow"] is True
    assert booked["InvoiceCity"] == sim.customers[booked["CustomerId"]]["InvoiceCity"]  # read-only: from the customer


SALES_BODIES = {
    "OrderApi": ("/v2/orders", valid_order, None),
    "CustomerInvoiceDraftApi": ("/v2/customerinvoicedrafts", valid_draft, None),
    "CustomerInvoiceApi": ("/v2/customerinvoices", valid_invoice, None),
    "OrderRowApi": ("/v2/orders", valid_order, "Rows"),
    "CustomerInvoiceDraftRowApi": ("/v2/customerinvoicedrafts", valid_draft, "Rows"),
    "CustomerInvoiceRowApi": ("/v2/customerinvoices", valid_invoice, "Rows"),
}


def _with(valid, sim, nested, prop, value=None, *, drop=False):
    body = valid(sim)
    target = body["Rows"][0] if nested else body
    if drop:
        target.pop(prop, None)
    else:
        target[prop] = value
    return body


async def test_the_simulator_rejects_each_missing_required_sales_property(api, swagger):
    client, sim = api
    cases = [(d, p) for d in SALES_BODIES for p in swagger["definitions"][d].get("required", [])]
    assert len(cases) == 15 + 4 + 8 + 4 + 4
    for definition, prop in cases:
        path, valid, nested = SALES_BODIES[definition]
        response = await client.post(path, json=_with(valid, sim, nested, prop, drop=True))
        name = f"Rows[0].{prop}" if nested else prop
        assert response.status_code == 400, (definition, prop)
        assert f"{name}: The {prop} field is required." in response.json()["DeveloperErrorMessage"], (definition, prop)


async def test_the_simulator_enforces_every_sales_max_length(api, swagger):
    client, sim = api
    cases = [
        (d, p, s["maxLength"]) for d in SALES_BODIES for p, s in swagger["definitions"][d]["properties"].items()
        if "maxLength" in s and "read-only" not in (s.get("description") or "").lower()
    ]
    assert len(cases) == 48
    for definition, prop, limit in cases:
        path, valid, nested = SALES_BODIES[definition]
        too_long = await client.post(path, json=_with(valid, sim, nested, prop, "x" * (limit + 1)))
        assert too_long.status_code == 400 and f"maximum length of {limit}" in too_long.json()["DeveloperErrorMessage"], (definition, prop)
        just_right = await client.post(path, json=_with(valid, sim, nested, prop, "y" * limit))
        assert just_right.status_code == 200, (definition, prop, just_right.text)


async def test_the_simulator_enforces_sales_ranges_enums_and_decimals(api):
    client, sim = api
    for path, valid, nested, prop, value in (
        ("/v2/orders", valid_order, False, "Status", 5),
        ("/v2/orders", valid_order, False, "RotReducedInvoicingType", 3),
        ("/v2/orders", valid_order, False, "Amount", 1.234),
        ("/v2/orders", valid_order, False, "OrderDate", "first of May"),
        ("/v2/orders", valid_order, True, "LineNumber", 1001),
        ("/v2/orders", valid_order, True, "DiscountPercentage", 1.5),
        ("/v2/orders", valid_order, True, "Quantity", 1.23456),
        ("/v2/customerinvoicedrafts", valid_draft, True, "Quantity", 1.234),
        ("/v2/customerinvoices", valid_invoice, True, "UnitPrice", 1.001),
    ):
        response = await client.post(path, json=_with(valid, sim, nested, prop, value))
        name = f"Rows[0].{prop}" if nested else prop
        assert response.status_code == 400 and response.json()["DeveloperErrorMessage"].startswith(name), (path, prop, response.text)


async def test_unknown_customer_article_and_cost_centre_item_are_refused(api):
    client, sim = api
    unknown = "0b6c1b7e-5a7a-4f5e-9a3b-2f1d3c4e5f60"
    for path, valid in (("/v2/orders", valid_order), ("/v2/customerinvoicedrafts", valid_draft), ("/v2/customerinvoices", valid_invoice)):
        response = await client.post(path, json=valid(sim, CustomerId=unknown))
        assert (response.status_code, response.json()["ErrorCode"]) == (400, 3000) and f"CustomerId {unknown}" in response.json()["DeveloperErrorMessage"]
        response = await client.post(path, json=_with(valid, sim, True, "ArticleId", unknown))
        assert (response.status_code, response.json()["ErrorCode"]) == (400, 3000) and "Rows[0].ArticleId" in response.json()["DeveloperErrorMessage"]
        response = await client.post(path, json=_with(valid, sim, True, "CostCenterItemId1", unknown))
        assert response.status_code == 400 and "CostCenterItemId1" in response.json()["DeveloperErrorMessage"], path
    no_article = await client.post("/v2/customerinvoicedrafts", json=_with(valid_draft, sim, True, "ArticleId", drop=True))
    assert no_article.status_code == 400 and "ArticleId field is required when IsTextRow is false" in no_article.json()["DeveloperErrorMessage"]
    assert not sim.orders and not sim.invoice_drafts and not sim.invoices


async def test_sales_documents_filter_on_your_reference(api):
    client, sim = api
    await _documents(client, sim)
    for path, reference in (("/v2/orders", "C-1"), ("/v2/customerinvoicedrafts", "C-2"), ("/v2/customerinvoices", "C-3")):
        hit = (await client.get(path, params={"$filter": f"YourReference eq '{reference}'"})).json()
        miss = (await client.get(path, params={"$filter": "YourReference eq 'C-9'"})).json()
        assert [d["YourReference"] for d in hit["Data"]] == [reference] and miss["Data"] == [], path
    assert (await client.get("/v2/orders/0b6c1b7e-5a7a-4f5e-9a3b-2f1d3c4e5f60")).status_code == 404


async def test_new_endpoints_need_a_token(api):
    client, sim = api
    for path in ("/v2/orders", "/v2/customerinvoicedrafts", "/v2/customerinvoices", "/v2/costcenters"):
        response = await client.get(path, headers={"Authorization": ""})
        assert response.status_code == 401 and response.json()["ErrorCode"] == 4005, path
