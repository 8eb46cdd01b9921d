"""Conformance against the vendor's WSDL (not against the connector): every request the connector
sends and every answer the simulator gives is validated against the WSDL's schema; the field
orders the code relies on are the WSDL's; nothing is fetched from the network."""

from __future__ import annotations

import socket
from datetime import datetime, timezone
from decimal import Decimal

import httpx
import pytest
from apicenterd_mpluskassa import MplusKassaConnector, mapping
from apicenterd_mpluskassa.client import RESPONSE_NAMES
from apicenterd_mpluskassa.schema import body_errors, load_schema
from apicenterd_mpluskassa.simulator import OPERATIONS, fault_xml
from lxml import etree

from apicenterd import Address, Attribute, Customer, Entity, Order, OrderLine, Product, StockLevel
from apicenterd.testing import connect

pytestmark = pytest.mark.anyio

XS = "http://www.w3.org/2001/XMLSchema"
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
ENV = "{http://schemas.xmlsoap.org/soap/envelope/}"


def wsdl_sequences(wsdl) -> dict[str, list[str]]:
    """Every named complexType's element sequence, base types' elements first."""
    schema = etree.parse(str(wsdl)).find(f".//{{{XS}}}schema")
    types = {t.get("name"): t for t in schema.findall(f"{{{XS}}}complexType")}

    def sequence(name: str) -> list[str]:
        node = types[name]
        out: list[str] = []
        extension = node.find(f".//{{{XS}}}extension")
        if extension is not None:
            out += sequence(extension.get("base").split(":")[1])
        seq = node.find(f".//{{{XS}}}sequence")
        return out + ([e.get("name") for e in seq.findall(f"{{{XS}}}element")] if seq is not None else [])

    return {name: sequence(name) for name in types}


def wsdl_operations(wsdl) -> dict[str, tuple[str, str]]:
    """operation -> (input element, output element), from the messages of the port type."""
    root = etree.parse(str(wsdl)).getroot()
    messages = {m.get("name"): m.find(f"{{{WSDL_NS}}}part").get("element").split(":")[1] for m in root.findall(f"{{{WSDL_NS}}}message")}
    out = {}
    for op in root.find(f"{{{WSDL_NS}}}portType").findall(f"{{{WSDL_NS}}}operation"):
        name_in = op.find(f"{{{WSDL_NS}}}input").get("message").split(":")[1]
        name_out = op.find(f"{{{WSDL_NS}}}output").get("message").split(":")[1]
        out[op.get("name")] = (messages[name_in], messages[name_out])
    return out


@pytest.mark.parametrize(
    ("fields", "wsdl_type"),
    [
        (mapping.PRODUCT_FIELDS, "Product"),
        (mapping.ARTICLE_FIELDS, "Article"),
        (mapping.RELATION_FIELDS, "Relation"),
        (mapping.ORDER_FIELDS, "Order"),
        (mapping.LINE_FIELDS, "Line"),
        (mapping.LINEDATA_FIELDS, "LineData"),
        (mapping.ADDRESS_FIELDS, "Address"),
        (mapping.CREATE_ORDER_V3_FIELDS, "CreateOrderV3Request"),
    ],
)
def test_field_orders_are_the_wsdls(wsdl, fields, wsdl_type):
    assert list(fields) == wsdl_sequences(wsdl)[wsdl_type]


def test_every_simulated_operation_and_answer_name_is_the_wsdls(wsdl):
    operations = wsdl_operations(wsdl)
    for operation in OPERATIONS:
        assert operation in operations, operation
        expected = RESPONSE_NAMES.get(operation, f"{operation}Response")
        assert operations[operation][1].lower() == expected.lower(), operation
        assert operations[operation][0] == operation  # the request element is named after the operation


def test_create_order_v3_carries_an_idempotency_key_in_the_wsdl(wsdl):
    assert wsdl_sequences(wsdl)["CreateOrderV3Request"][0] == "idempotencyKey"


class Recorder:
    """An ASGI wrapper around the simulator that keeps every request body, answer body and status."""

    def __init__(self, app):
        self.app = app
        self.exchanges: list[tuple[bytes, bytes, int]] = []

    async def __call__(self, scope, receive, send):
        request, answer, status = [], [], [0]

        async def receive_and_keep():
            message = await receive()
            request.append(message.get("body", b""))
            return message

        async def keep_and_send(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            elif message["type"] == "http.response.body":
                answer.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive_and_keep, keep_and_send)
        self.exchanges.append((b"".join(request), b"".join(answer), status[0]))


def body_child(xml: bytes):
    root = etree.fromstring(xml)
    assert root.tag == f"{ENV}Envelope"
    (body,) = root.findall(f"{ENV}Body")
    (child,) = list(body)
    return child


async def exercise(conn) -> None:
    """Every operation the connector can send, once at least."""
    await conn.check()
    for entity in (Entity.PRODUCTS, Entity.STOCK, Entity.CUSTOMERS, Entity.ORDERS):
        [c async for c in conn.read(entity, None)]
    product = conn.normalize(
        Entity.PRODUCTS,
        Product(
            sku="777",
            name="Mok",
            price_incl_tax=Decimal("7.50"),
            tax_rate=Decimal(21),
            categories=("Keuken",),
            attributes=(Attribute(name="colour", value="rood"), Attribute(name="Origin", value="NL")),
        ),
    )
    await conn.create(Entity.PRODUCTS, product)
    await conn.update(Entity.PRODUCTS, "777", product.model_copy(update={"name": "Mok groot"}), frozenset({"name", "attributes"}))
    variant = conn.normalize(
        Entity.PRODUCTS,
        Product(sku="TSHIRT-RED", name="T-shirt rood", parent_sku="TSHIRT", tax_rate=Decimal(21), price_incl_tax=Decimal(20)),
    )
    await conn.create(Entity.PRODUCTS, variant)
    found = await conn.find(Entity.STOCK, "777")
    await conn.update(
        Entity.STOCK, found.id, StockLevel(sku="777", on_hand=Decimal("2.5"), available=Decimal("2.5")), frozenset({"available"})
    )
    customer = conn.normalize(
        Entity.CUSTOMERS,
        Customer(
            kind="company",
            name="Bakkerij BV",
            email="bakker@example.com",
            billing_address=Address(street="Markt", house_number="1", postcode="1234 AB", city="Gouda", country="NL"),
        ),
    )
    relation = await conn.create(Entity.CUSTOMERS, customer)
    assert await conn.find(Entity.CUSTOMERS, "bakker@example.com") is not None
    await conn.update(Entity.CUSTOMERS, relation, customer.model_copy(update={"name": "Bakkerij de Bruin BV"}), frozenset({"name"}))
    order = Order(
        number="WEB-1",
        status="paid",
        created_at=datetime(2026, 1, 2, tzinfo=timezone.utc),
        total=Decimal("15.00"),
        lines=(OrderLine(sku="777", name="Mok", quantity=Decimal(2), unit_price=Decimal("7.50"), discount=Decimal("1.00")),),
        customer_id=relation,
        document="order",
    )
    await conn.create(Entity.ORDERS, order)
    assert await conn.find(Entity.ORDERS, "WEB-1") is not None


async def test_every_request_and_every_answer_is_valid_against_the_wsdl(wsdl, schema):
    app = MplusKassaConnector.simulator(seed=5, records=3, relations=2, orders=3)  # not validating: this test does
    recorder = Recorder(app)
    settings = {
        **MplusKassaConnector.demo_settings("http://mplus.test"),
        "allocate_article_numbers": True,
        "variant_grouping": "parent_sku",
        "feature_fields": {"Origin": "CountryOfOrigin"},
    }
    async with connect(MplusKassaConnector, settings, app=recorder) as conn:
        await exercise(conn)
    sent = {etree.QName(body_child(request)).localname for request, _, _ in recorder.exchanges}
    assert sent >= {
        "getApiVersion",
        "getProducts",
        "createProduct",
        "updateProduct",
        "getStock",
        "setStock",
        "getRelations",
        "findRelationV2",
        "createRelation",
        "updateRelation",
        "getOrders",
        "findOrder",
        "createOrderV3",
        "getArticleGroups",
        "newArticleGroup",
        "getVatGroupList",
    }
    for request, answer, status in recorder.exchanges:
        child = body_child(request)
        assert body_errors(schema, child) == [], etree.tostring(child)[:400]
        assert status == 200, answer[:300]
        reply = body_child(answer)
        assert body_errors(schema, reply) == [], etree.tostring(reply)[:400]


async def test_the_validating_simulator_faults_an_invalid_request(app):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://mplus.test") as http:
        bad = (
            b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ns="urn:mplusqapi"><e:Body>'
            b"<ns:getProducts><ns:request><ns:articleNumbers>ABC-1</ns:articleNumbers><ns:pluNumbers/></ns:request></ns:getProducts>"
            b"</e:Body></e:Envelope>"
        )
        response = await http.post("/", params={"ident": "apicenterd-demo", "secret": "mplus-demo-secret"}, content=bad)
    assert response.status_code == 500
    fault = body_child(response.content)
    assert fault.tag == f"{ENV}Fault"
    assert fault.findtext("faultcode") == "SOAP-ENV:Client"
    assert "Validation constraint violation" in fault.findtext("faultstring")


def test_the_simulators_faults_are_soap_1_1_faults():
    fault = body_child(fault_xml("Server", "boom"))
    assert [c.tag for c in fault] == ["faultcode", "faultstring"]


async def test_nothing_is_fetched_from_the_network(wsdl, monkeypatch):
    def refuse(self, address):
        raise AssertionError(f"network access to {address!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    schema = load_schema(wsdl)  # the SOAP-encoding import comes from the local copy
    app = MplusKassaConnector.simulator(seed=1, records=2, wsdl=wsdl)
    async with connect(MplusKassaConnector, MplusKassaConnector.demo_settings("http://mplus.test"), app=app) as conn:
        await conn.check()
        assert len([c async for c in conn.read(Entity.PRODUCTS, None)]) == 2
    assert schema is not None
