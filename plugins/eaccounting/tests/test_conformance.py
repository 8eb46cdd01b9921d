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
        read_only = (prop.get("description") or "").startswith("Read-only") or "$ref" in prop and name == "TermsOfPayment"
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
