"""The simulator and the connector against HubSpot's OpenAPI files: every simulated route is in
them, every request the connector sends matches its request schema, and every answer the
simulator gives matches the response schema of its status.

Two documented deviations of the connector from the files are allowed and named here:
the search request's ``sorts`` items are objects ``{propertyName, direction}`` (HubSpot's search
documentation; the file types them as strings), and a first search page has no ``after`` (the
file marks it required; the documentation's examples leave it out)."""

from __future__ import annotations

import copy
import json
import re
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import jsonschema
import pytest
from apicenterd_hubspot import HubSpotConnector
from apicenterd_hubspot.connector import DealSettings

from apicenterd import Contact, Customer, DocumentRequest, Entity, Found, Order, OrderLine, Product
from apicenterd.testing import connect

pytestmark = pytest.mark.anyio

SPEC_FILES = (
    "crm-products-v3",
    "crm-contacts-v3",
    "crm-companies-v3",
    "crm-deals-v3",
    "crm-line-items-v3",
    "crm-objects-generic-v3",
    "crm-associations-v4",
    "crm-properties-v3",
    "auth-oauth-v1",
)


def nullable(node: Any) -> Any:
    """A schema with null allowed where a string is: HubSpot answers null for a property asked for but unset."""
    node = copy.deepcopy(node)

    def walk(n: Any) -> None:
        if isinstance(n, dict):
            if n.get("type") == "string":
                n["type"] = ["string", "null"]
            for v in n.values():
                walk(v)
        elif isinstance(n, list):
            for v in n:
                walk(v)

    walk(node)
    return node


class Operation:
    def __init__(self, spec: dict, path: str, method: str, op: dict):
        self.spec, self.path, self.method, self.op = spec, path, method, op
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path))
        self.regex = re.compile(f"^{pattern}$")
        self.specific = path.count("{")

    def schema(self, node: dict) -> dict:
        return {**node, "components": self.spec.get("components", {})}

    def request_schema(self) -> dict | None:
        content = (self.op.get("requestBody") or {}).get("content") or {}
        body = content.get("application/json")
        return self.schema(body["schema"]) if body else None

    def response_schema(self, status: int) -> dict | None:
        response = self.op["responses"].get(str(status)) or self.op["responses"].get("default")
        if response is None:
            raise AssertionError(f"{self.method} {self.path}: status {status} is not in the spec")
        if "$ref" in response:
            response = self.spec["components"]["responses"][response["$ref"].split("/")[-1]]
        content = response.get("content") or {}
        body = content.get("application/json") or content.get("*/*")
        return self.schema(body["schema"]) if body else None


@pytest.fixture(scope="module")
def operations(hubspot_spec) -> list[Operation]:
    ops = []
    for name in SPEC_FILES:
        spec = hubspot_spec(name)
        for path, methods in spec["paths"].items():
            for method, op in methods.items():
                if method in ("get", "post", "put", "patch", "delete"):
                    ops.append(Operation(spec, path, method.upper(), op))
    return ops


def operation_for(operations: list[Operation], method: str, path: str) -> Operation:
    matches = [op for op in operations if op.method == method and op.regex.match(path)]
    if not matches:
        raise AssertionError(f"{method} {path} is in none of HubSpot's OpenAPI files")
    return min(matches, key=lambda op: op.specific)  # the object's own file before the generic one


class Recorder:
    """An ASGI wrapper keeping every request and answer (method, path, body, status, answer)."""

    def __init__(self, app):
        self.app, self.calls = app, []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        chunks, answer, status = [], [], {}

        async def recv():
            message = await receive()
            chunks.append(message.get("body", b""))
            return message

        async def snd(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            elif message["type"] == "http.response.body":
                answer.append(message.get("body", b""))
            await send(message)

        await self.app(scope, recv, snd)
        self.calls.append((scope["method"], scope["path"], b"".join(chunks), status["code"], b"".join(answer)))


def validate(schema: dict, document: Any, where: str) -> None:
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(document), key=lambda e: list(e.path))
    assert not errors, f"{where}: {errors[0].message} at {list(errors[0].path)}"


def test_every_simulated_route_is_in_the_spec(operations):
    app = HubSpotConnector.simulator()
    examples = {
        "{object_type}": "products",
        "{object_id}": "1",
        "{op}": "read",
        "{from_type}": "deals",
        "{to_type}": "line_items",
        "{name}": "hs_sku",
    }
    for route in app.routes:
        path = route.path
        for placeholder, value in examples.items():
            path = path.replace(placeholder, value)
        for method in route.methods - {"HEAD"}:
            operation_for(operations, method, path)


async def exercise(app) -> None:
    """Every kind of call the connector makes: setup, products, customers, deals, the three sources."""
    settings = {
        **HubSpotConnector.demo_settings("http://hubspot.test"),
        # customer fields to properties: created on setup (POST /crm/v3/properties/...), written, read back
        "customer_properties": {"classification": "lifecyclestage", "tax_code": "vat_code", "custom_fields.segment": "segment"},
        # product fields to product properties likewise
        "product_properties": {"item_group": "item_group", "custom_fields.coding": "vat_coding"},
    }
    sim = app.app.state.sim if hasattr(app, "app") else app.state.sim
    sim.search_limit.window.limit = 0
    async with connect(HubSpotConnector, settings, app=app, rate_limits=False) as hs:
        pid = await hs.create(
            Entity.PRODUCTS,
            hs.normalize(
                Entity.PRODUCTS,
                Product(sku="A-1", name="A", price_excl_tax=Decimal("5.00"), item_group="GOODS", custom_fields={"coding": "25%"}),
            ),
        )
        await hs.update(
            Entity.PRODUCTS,
            pid,
            Product(sku="A-1", name="A2", price_excl_tax=Decimal("6.00"), custom_fields={"coding": "12%"}),
            frozenset({"name", "price_excl_tax", "custom_fields"}),
        )
        products = await hs.find_many(Entity.PRODUCTS, ["A-1", "B-2"])
        assert (products["A-1"].record.item_group, products["A-1"].record.custom_fields) == ("GOODS", {"coding": "12%"})
        assert {"item_group", "vat_coding"} <= set(sim.properties["products"])
        made = await hs.create_many(Entity.PRODUCTS, [Product(sku="C-3", name="C", custom_fields={"coding": "0%"})])
        assert all(isinstance(m, str) for m in made), made
        person = hs.normalize(
            Entity.CUSTOMERS, Customer(kind="person", name="Pia Persson", email="pia@example.com", classification="lead", tax_code="25")
        )
        company = hs.normalize(
            Entity.CUSTOMERS,
            Customer(
                kind="company",
                name="Bolaget AB",
                email="info@bolaget.se",
                contact=Contact(first_name="Bo", last_name="Lag"),
                classification="customer",
                custom_fields={"segment": "retail"},
            ),
        )
        await hs.create(Entity.CUSTOMERS, person)
        cid = await hs.create(Entity.CUSTOMERS, company)
        await hs.update(Entity.CUSTOMERS, cid, company.model_copy(update={"phone": "+46 8 123"}), frozenset({"phone"}))
        found = await hs.find(Entity.CUSTOMERS, "info@bolaget.se")
        assert found is not None and found.record is not None
        assert (found.record.classification, found.record.custom_fields) == ("customer", {"segment": "retail"})
        assert "vat_code" in sim.properties["companies"] and "segment" in sim.properties["contacts"]
        made = await hs.create_many(
            Entity.CUSTOMERS,
            [
                hs.normalize(Entity.CUSTOMERS, Customer(kind="person", name="Ola Olsson", email="ola@example.com")),
                hs.normalize(Entity.CUSTOMERS, Customer(kind="company", name="Firma AB", email="info@firma.se")),
            ],
        )
        assert all(isinstance(m, str) for m in made), made
        # batched updates (batch/update of products, contacts and companies)
        refused = await hs.update_many(
            Entity.PRODUCTS,
            [(pid, Product(sku="A-1", name="A3", price_excl_tax=Decimal("7.00"), item_group="TOOLS"), frozenset({"name", "item_group"}))],
        )
        assert list(refused) == [None]
        refused = await hs.update_many(Entity.CUSTOMERS, [(cid, company.model_copy(update={"phone": "+46 8 999"}), frozenset({"phone"}))])
        assert list(refused) == [None]
        order = Order(
            number="7",
            status="new",
            created_at=datetime(2026, 3, 1, tzinfo=timezone.utc),
            total=Decimal("12.00"),
            lines=(OrderLine(sku="A-1", quantity=Decimal(2), unit_price=Decimal("6.00")),),
        )
        sink = hs.document_sink(Entity.ORDERS)
        deal_id = await sink.create(DocumentRequest(order, "order", found, {"A-1": Found(pid)}, DealSettings(stages={"new": "closedwon"})))
        await sink.find("7")
        # a batch's deals: line items upserted together, deals by batch/create, looked up by number
        eight = order.model_copy(update={"number": "8"})
        [batched] = await sink.create_many(
            [DocumentRequest(eight, "order", found, {"A-1": Found(pid)}, DealSettings(stages={"new": "closedwon"}))]
        )
        assert isinstance(batched, str) and set(await sink.find_many(["7", "8", "9"])) == {"7", "8"}
        # a deal made in HubSpot (no order reference) in the stage read as orders
        deal = sim.create("deals", {"dealname": "Big", "dealstage": "closedwon", "amount": "12", "closedate": "2026-03-02T00:00:00.000Z"})
        line = sim.create("line_items", {"name": "A", "quantity": "1", "price": "12", "hs_product_id": pid})
        sim.associate("deals", deal["id"], "line_items", line["id"], 19)
        sim.associate("deals", deal["id"], "contacts", found.id.split("contact:")[1], 3)
        for entity in (Entity.PRODUCTS, Entity.CUSTOMERS, Entity.ORDERS):
            changes = [c async for c in hs.read(entity, None)]
            assert changes and all(c.error is None for c in changes), [c.error for c in changes if c.error]
        assert deal_id in sim.objects["deals"]


async def test_every_request_the_connector_sends_matches_the_spec(operations):
    app = HubSpotConnector.simulator()
    recorder = Recorder(app)
    await exercise(recorder)
    seen = set()
    for method, path, body, _status, _answer in recorder.calls:
        operation = operation_for(operations, method, path)
        seen.add((method, operation.path))
        schema = operation.request_schema()
        if schema is None:
            assert not body, f"{method} {path} sends a body the spec does not declare"
            continue
        document = json.loads(body)
        if path.endswith("/search"):  # the two documented deviations (module docstring)
            assert all(set(s) == {"propertyName", "direction"} for s in document["sorts"])
            document = {**document, "sorts": [s["propertyName"] for s in document["sorts"]], "after": document.get("after", "")}
        validate(schema, document, f"{method} {path} request")
    assert {m for m, _ in seen} >= {"GET", "POST", "PATCH"} and len(seen) >= 8, sorted(seen)


async def test_every_answer_of_the_simulator_matches_the_spec(operations):
    app = HubSpotConnector.simulator()
    recorder = Recorder(app)
    await exercise(recorder)
    statuses = set()
    for method, path, _body, status, answer in recorder.calls:
        operation = operation_for(operations, method, path)
        statuses.add(status)
        schema = operation.response_schema(status)
        if schema is None or not answer:
            continue
        validate(nullable(schema), json.loads(answer), f"{method} {path} answer {status}")
    assert {200, 201, 207} <= statuses, statuses  # batch reads of missing SKUs answer 207


@pytest.mark.parametrize(
    "status, trigger",
    [
        (400, None),
        (401, None),
        (409, None),
        (429, lambda sim: setattr(sim.ten_secondly.window, "limit", 1)),
    ],
)
async def test_error_answers_match_the_error_schema(operations, status, trigger):
    import httpx
    from apicenterd_hubspot.simulator import DEMO_TOKEN

    app = HubSpotConnector.simulator()
    sim = app.state.sim
    headers = {"Authorization": f"Bearer {DEMO_TOKEN}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hubspot.test") as client:
        if status == 401:
            headers = {"Authorization": "Bearer nope"}
            response = await client.get("/crm/v3/objects/products", headers=headers)
        elif status == 409:
            await client.post("/crm/v3/objects/contacts", json={"properties": {"email": "a@b.c"}, "associations": []}, headers=headers)
            response = await client.post(
                "/crm/v3/objects/contacts", json={"properties": {"email": "A@b.c"}, "associations": []}, headers=headers
            )
        elif status == 400:
            response = await client.post(
                "/crm/v3/objects/products", json={"properties": {"nope": "1"}, "associations": []}, headers=headers
            )
        else:
            trigger(sim)
            await client.get("/crm/v3/objects/products", headers=headers)
            response = await client.get("/crm/v3/objects/products", headers=headers)
    assert response.status_code == status
    body = response.json()
    operation = operation_for(operations, "GET", "/crm/v3/objects/products")
    validate(operation.response_schema(status), body, f"{status} answer")  # the default: Error
    assert body["correlationId"] and body["category"]
    if status == 429:
        assert body["policyName"] == "TEN_SECONDLY_ROLLING" and response.headers["X-HubSpot-RateLimit-Remaining"] == "0"
