"""The simulator checked against CCV-SHOP-API.md (not against the client): keys, verbs, errors, paging, limits."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from apicenterd_ccv_salespos import CCVSalesPOSConnector
from apicenterd_ccv_salespos.simulator import DEMO_PRIVATE_KEY, DEMO_PUBLIC_KEY

pytestmark = pytest.mark.anyio
ROOT = "http://myshop.test"
API = "/api/rest/v1/"


# -- reading the doc ------------------------------------------------------------------------


def _strip_groups(text: str) -> str:
    """``text`` without parenthesised remarks, innermost first."""
    while (stripped := re.sub(r"\([^()]*\)", "", text)) != text:
        text = stripped
    return text


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside {} or []."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += (char in "{[" and 1) or (char in "}]" and -1) or 0
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [p.strip() for p in [*parts, current] if p.strip()]


def parse_keys(listing: str) -> dict[str, set[str] | None]:
    """The doc's key listing (``a, b {x, y}|null, c[{...}]``) as {key: sub-keys of its object, or None}."""
    keys: dict[str, set[str] | None] = {}
    for part in _split_top(_strip_groups(listing)):
        name = re.match(r"[\w*]+", part)
        if name is None:  # "..." / "…": the doc lists the rest elsewhere
            continue
        sub = re.match(r"[\w*]+\s*\{([^{}]*)\}", part)
        keys[name.group(0)] = (set(parse_keys(sub.group(1))) or None) if sub else None
    return keys


def segment(doc: str, starts: str) -> str:
    """The first `backticked` span of the doc that starts with ``starts``."""
    for line in doc.splitlines():
        if line.startswith("```"):
            continue
        for span in re.findall(r"`([^`]+)`", line):
            if span.startswith(starts):
                return span
    pytest.fail(f"CCV-SHOP-API.md has no `{starts}...` listing any more; update this test")


def line_with(doc: str, marker: str) -> str:
    """The doc's line containing ``marker``."""
    for line in doc.splitlines():
        if marker in line:
            return line
    pytest.fail(f"CCV-SHOP-API.md has no line with {marker!r} any more; update this test")


@pytest.fixture(scope="module")
def doc(doc_text) -> str:
    """The vendor doc's text (skips when it is absent)."""
    return doc_text


# -- talking to the simulator with a signer built from the doc --------------------------------


@pytest.fixture
def app():
    """A seeded simulator."""
    return CCVSalesPOSConnector.simulator(seed=5, records=12)


@pytest.fixture
async def api(app, doc_auth):
    """An HTTP client on the simulator that signs with the doc-derived signer."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=ROOT, auth=doc_auth(DEMO_PUBLIC_KEY, DEMO_PRIVATE_KEY)
    ) as client:
        yield client


async def first_item(api: httpx.AsyncClient, resource: str) -> dict[str, Any]:
    """The first item of a collection."""
    response = await api.get(API + resource)
    assert response.status_code == 200, response.text
    return response.json()["items"][0]


def assert_keys(actual: dict[str, Any], documented: dict[str, set[str] | None], what: str) -> None:
    """``actual`` has exactly the documented keys (``x_*`` wildcards matched by prefix), and documented sub-keys."""
    wildcards = [k[:-1] for k in documented if k.endswith("*")]
    plain = {k for k in documented if not k.endswith("*")}
    extra = {k for k in actual if k not in plain and not any(k.startswith(w) for w in wildcards)}
    assert not extra, f"{what}: keys not in the doc: {sorted(extra)}"
    assert not plain - set(actual), f"{what}: documented keys missing: {sorted(plain - set(actual))}"
    for key, sub in documented.items():
        if sub and isinstance(actual.get(key), dict):
            assert set(actual[key]) == sub, f"{what}.{key}: {sorted(actual[key])} != documented {sorted(sub)}"


# -- the conformance tests -------------------------------------------------------------------


async def test_product_keys_are_the_documented_ones(doc, api):
    documented = parse_keys(segment(doc, "href, id, is_active"))
    links = parse_keys(segment(doc, "productlabels,"))
    assert len(documented) > 60 and "marktplaats_*" in documented
    first = await first_item(api, "products/")
    patched = await api.patch(API + f"products/{first['id']}/", json={"brand_id": 3, "color_id": 2, "supplier_id": 9})
    assert patched.status_code == 204
    product = (await api.get(API + f"products/{first['id']}/")).json()
    assert product["brand"] and product["color"] and product["supplier"]
    assert_keys(product, {**documented, **links}, "product")
    count = int(re.search(r"marktplaats_\* \((\d+) keys\)", doc).group(1))
    assert len([k for k in product if k.startswith("marktplaats_")]) == count
    link_shape = set(parse_keys(segment(doc, "{href[,collection]}").strip("{}").replace("[", "").replace("]", "")))
    for link in links:
        assert set(product[link]) <= link_shape and "href" in product[link]
    listed = (await api.get(API + "products/", params={"productnumber": product["productnumber"]})).json()["items"]
    assert listed == [product]


async def test_products_answer_is_active_but_take_active(doc, api):
    assert "GET geeft is_active / POST heeft active" in doc
    refused = await api.post(API + "products/", json={"name": "Drop 250 g", "price": 2.49, "is_active": False})
    assert refused.status_code == 400
    created = await api.post(API + "products/", json={"name": "Drop 250 g", "price": 2.49, "active": False})
    assert created.status_code in (200, 201)
    assert created.json()["is_active"] is False and "active" not in created.json()


async def test_order_keys_are_the_documented_ones(doc, api):
    documented = parse_keys(segment(doc, "href, id, ordernumber_prefix"))
    order = await first_item(api, "orders/")
    assert_keys(order, documented, "order")
    assert isinstance(order["user"]["id"], str)  # "id (string!)"
    assert order["href"].startswith(ROOT + API + "orders/") and order["href"].endswith("/")


async def test_customer_keys_are_the_documented_ones(doc, api):
    customer_line = line_with(doc, "`customer` (Personalinfo)")
    billing = parse_keys(segment(doc, "billingaddress {"))["billingaddress"]
    listed = [s for s in re.findall(r"`(\w+)`", customer_line.split("…")[0]) if s != "customer"]
    assert "minus first/last name and fax" in customer_line
    customer = (await first_item(api, "orders/"))["customer"]
    assert set(customer["billingaddress"]) == billing
    assert set(customer["deliveryaddress"]) == billing - {"first_name", "last_name", "fax"}
    assert set(listed) <= set(customer), sorted(set(listed) - set(customer))
    assert customer["customertype"] in re.findall(r'"(b2\w)"', customer_line)


async def test_order_row_keys_are_the_documented_ones(doc, api, app):
    documented = parse_keys(segment(doc, "href, id, order_id"))
    order_id = next(iter(app.state.sim.orders))
    response = await api.get(API + f"orders/{order_id}/orderrows/")
    assert response.status_code == 200
    row = response.json()["items"][0]
    assert_keys(row, documented, "order row")
    assert row["total_price"] == pytest.approx((row["price"] - row["discount"]) * row["count"])


async def test_collection_body_and_links_follow_the_doc(doc, api):
    keys = re.findall(r'"(\w+)"', segment(doc, '{"href","start"'))
    page1 = (await api.get(API + "products/", params={"orderby": "id", "start": 0, "size": 5})).json()
    assert list(page1) == keys
    assert (page1["start"], page1["size"], page1["previous"]) == (0, 5, None)
    seen = [i["id"] for i in page1["items"]]
    link = page1["next"]
    while link:
        assert link.startswith(ROOT + API + "products/") and "orderby=id" in link
        page = (await api.get(link.removeprefix(ROOT))).json()
        assert page["previous"] and "start=0" in page["first"]
        seen += [i["id"] for i in page["items"]]
        link = page["next"]
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 12


async def test_orderby_modifydate_desc_and_filters(api, app):
    sim = app.state.sim
    items = (await api.get(API + "products/", params={"orderby": "modifydate_desc", "size": 250})).json()["items"]
    dates = [i["modifydate"] for i in items]
    assert dates == sorted(dates, reverse=True) and len(items) == len(sim.products)
    wanted = next(iter(sim.products.values()))["productnumber"]
    found = (await api.get(API + "products/", params={"productnumber": wanted})).json()["items"]
    assert [i["productnumber"] for i in found] == [wanted]
    assert (await api.get(API + "products/", params={"orderby": "price"})).status_code == 400


async def test_dates_use_the_captured_wire_format(api):
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", (await first_item(api, "products/"))["modifydate"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", (await first_item(api, "orders/"))["create_date"])


async def test_status_codes_per_verb(doc, api, app):
    line = line_with(doc, "Status codes (EX")
    codes = {verb: {int(c) for c in re.findall(r"\d+", spec)} for verb, spec in re.findall(r"(GET|POST|PATCH|PUT|DELETE) \*\*([^*]+)\*\*", line)}  # fmt: skip
    sim = app.state.sim
    pid, oid = min(sim.products), min(sim.orders)
    assert (await api.get(API + f"products/{pid}/")).status_code in codes["GET"]
    assert (await api.get(API + f"products/{pid}")).status_code in codes["GET"]  # trailing slash optional
    assert (await api.post(API + "products/", json={"name": "Kaas", "price": 5})).status_code in codes["POST"]
    assert (await api.patch(API + f"products/{pid}/", json={"stock": 3})).status_code in codes["PATCH"]
    patch = await api.patch(API + f"orders/{oid}/", json={"status": 5, "track_and_trace_code": "3SABC1", "track_and_trace_carrier": "PostNL", "mail": True})  # fmt: skip
    assert patch.status_code in codes["PATCH"] and patch.content == b""
    assert sim.orders[oid]["track_and_trace_code"] == "3SABC1" and sim.orders[oid]["status"] == 5
    assert (await api.delete(API + f"products/{pid}/")).status_code in codes["DELETE"]
    assert (await api.get(API + f"products/{pid}/")).status_code == 404


async def test_patch_bumps_modifydate_and_is_visible(api, app):
    sim = app.state.sim
    pid = min(sim.products)
    before = sim.products[pid]["modifydate"]
    assert (await api.patch(API + f"products/{pid}/", json={"stock": 11, "active": False})).status_code == 204
    after = (await api.get(API + f"products/{pid}/")).json()
    assert (after["stock"], after["is_active"]) == (11, False) and after["modifydate"] > before


async def test_every_documented_status_is_accepted_and_no_other(doc, api, app):
    statuses = [int(n) for n in re.findall(r"(\d+) [A-Z]", line_with(doc, "Statuses (JDK"))]
    assert statuses == list(range(1, len(statuses) + 1))
    oid = min(app.state.sim.orders)
    for status in statuses:
        assert (await api.patch(API + f"orders/{oid}/", json={"status": status})).status_code == 204
    assert (await api.patch(API + f"orders/{oid}/", json={"status": statuses[-1] + 1})).status_code == 400
    assert {o["status"] for o in app.state.sim.orders.values()} <= set(statuses)


async def test_errors_have_the_documented_body(doc, api, app, doc_auth):
    keys = re.findall(r"\*\*`(\w+)`\*\*", line_with(doc, "Error body:"))
    pid = min(app.state.sim.products)
    responses = [
        await api.get(API + "products/999999/"),
        await api.get(API + "nosuchresource/"),
        await api.patch(API + f"products/{pid}/", json={"colour": "red"}),
        await api.patch(API + f"products/{pid}/", json={"price": "cheap"}),
        await api.post(API + "products/", json={"productnumber": "X-1"}),
        await api.patch(API + f"products/{pid}/", content=b"{not json"),
    ]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ROOT) as unsigned:
        responses.append(await unsigned.get(API + "products/"))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=ROOT, auth=doc_auth(DEMO_PUBLIC_KEY, "wrong")
    ) as badly_signed:
        responses.append(await badly_signed.get(API + "products/"))
    assert [r.status_code for r in responses] == [404, 404, 400, 400, 400, 400, 401, 401]
    for response in responses:
        body = response.json()
        assert sorted(body) == sorted(keys)
        assert body["status"] == response.status_code and body["code"].startswith(f"{response.status_code}.")
    assert responses[1].json()["code"] == "404.20"  # documented: invalid resource name


async def test_responses_are_signed_as_documented(api, expected_hash):
    response = await api.get(API + "products/", params={"size": 2})
    uri = response.request.url.raw_path.decode()
    assert response.headers["x-hash"] == expected_hash(
        DEMO_PRIVATE_KEY, DEMO_PUBLIC_KEY, "GET", uri, response.content, response.headers["x-date"]
    )


async def test_rate_limits_are_the_documented_ones_per_resource_and_method(doc, doc_auth):
    get_limit, write_limit = (int(n) for n in re.search(r"GET (\d+)/min and POST/PATCH/PUT/DELETE (\d+)/min", doc).groups())
    app = CCVSalesPOSConnector.simulator(seed=1, records=2)
    pid = min(app.state.sim.products)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=ROOT, auth=doc_auth(DEMO_PUBLIC_KEY, DEMO_PRIVATE_KEY)
    ) as api:
        for _ in range(get_limit):
            assert (await api.get(API + f"products/{pid}/")).status_code == 200
        limited = await api.get(API + "products/")
        assert limited.status_code == 429 and limited.json()["code"] == "429.10"
        assert (await api.get(API + "orders/")).status_code == 200  # another resource has its own budget
        for _ in range(write_limit):
            assert (await api.patch(API + f"products/{pid}/", json={"stock": 1})).status_code == 204
        assert (await api.patch(API + f"products/{pid}/", json={"stock": 1})).json()["code"] == "429.10"
        assert (await api.post(API + "products/", json={"name": "Mok", "price": 6})).status_code == 201
    assert "`429.10`" in doc and "`429.11`" in doc


# -- orders, statuses and shipments (doc §6, §7) ---------------------------------------------------


def order_filters(doc: str) -> tuple[set[str], set[str]]:
    """The documented ``GET /orders/`` list filters and orderby fields (§6)."""
    line = line_with(doc, "List filters (JDK `Parameters/Orders/All.php`)")
    filters_part, orderby_part = line.split("orderby:")
    return set(re.findall(r"`(\w+)`", filters_part.split(":", 1)[1])), set(re.findall(r"`(\w+)`", orderby_part))


def documented_patch(doc: str) -> dict[str, Any]:
    """The §7 ``PATCH /orders/:id/`` example body."""
    import json

    return json.loads(segment(doc, '{"status": 5'))


async def test_order_patch_takes_the_documented_track_and_trace_fields(doc, api, app):
    body = documented_patch(doc)
    assert {"status", "track_and_trace_code", "track_and_trace_carrier", "mail"} <= set(body) and body["status"] == 5
    sim = app.state.sim
    oid = min(sim.orders)
    response = await api.patch(API + f"orders/{oid}/", json={**body, "track_and_trace_code": "3SDOC1", "track_and_trace_carrier": "MyParcel"})
    assert response.status_code == 204 and response.content == b""
    order = (await api.get(API + f"orders/{oid}/")).json()
    assert (order["status"], order["track_and_trace_code"], order["track_and_trace_carrier"]) == (5, "3SDOC1", "MyParcel")
    assert order["track_and_trace_deeplink"]  # read-only, derived by the server
    keys = re.findall(r"\*\*`(\w+)`\*\*", line_with(doc, "Error body:"))
    for bad in ({"shipment_status": 5}, {"track_and_trace_deeplink": "https://x"}, {"status": 0}, {"status": "5"},
                {"mail": "yes"}, {"status": True}):  # fmt: skip
        refused = await api.patch(API + f"orders/{oid}/", json=bad)
        assert refused.status_code == 400, bad
        assert sorted(refused.json()) == sorted(keys) and refused.json()["code"].startswith("400.")


def test_the_connector_sends_only_documented_patch_fields(doc, order):
    from apicenterd_ccv_salespos.mapping import shipment_patch

    from apicenterd import Shipment

    documented = documented_patch(doc)
    body = shipment_patch(order, Shipment(order_number="1", tracking_code="3SABC", carrier="PostNL"), mail=True)
    assert set(body) <= set(documented) and body["status"] == documented["status"]
    assert isinstance(body["mail"], type(documented["mail"]))


def test_status_names_follow_the_documented_statuses(doc):
    from apicenterd_ccv_salespos.mapping import ORDER_STATUSES

    listing = line_with(doc, "Statuses (JDK").split(":", 1)[1].split("**")[0]
    documented = {int(n): name.strip() for n, name in re.findall(r"(\d+) ([A-Z][a-z ]+?)(?=,|\. |$)", listing)}
    assert sorted(documented) == list(range(1, 15))
    derived = {n: re.sub(r"^is_", "", name.lower().replace(" ", "_")) for n, name in documented.items()}
    assert dict(ORDER_STATUSES) == derived


async def test_every_seeded_order_and_row_has_the_documented_keys(doc, doc_auth):
    documented = parse_keys(segment(doc, "href, id, ordernumber_prefix"))
    row_keys = parse_keys(segment(doc, "href, id, order_id"))
    app = CCVSalesPOSConnector.simulator(seed=2, records=60, unknown_sku=True)
    sim = app.state.sim
    sim.add_order([(min(sim.products), 1)], is_completed=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=ROOT, auth=doc_auth(DEMO_PUBLIC_KEY, DEMO_PRIVATE_KEY)
    ) as api:
        for completed in ("true", "false"):
            orders = (await api.get(API + "orders/", params={"size": 250, "is_completed": completed})).json()["items"]
            assert orders
            for order in orders:
                assert_keys(order, documented, f"order {order['id']}")
                assert order["status"] in range(1, 15)
                assert (order["ordernumber"] is None) is (not order["is_completed"])  # "null if not completed"
                rows = (await api.get(API + f"orders/{order['id']}/orderrows/")).json()["items"]
                for row in rows:
                    assert_keys(row, row_keys, f"order row {row['id']}")
                total = sum(r["total_price"] for r in rows) + order["total_shipping"] - order["total_discounts"]
                assert order["total_price"] == pytest.approx(total)
    coupons = [o for o in sim.orders.values() if o["total_discounts"]]
    assert coupons and all(o["discountcoupon"]["code"] for o in coupons)
    assert {o["customer"]["customertype"] for o in sim.orders.values()} == {"b2b", "b2c"}
    assert {o["paid"] for o in sim.orders.values()} == {True, False}


async def test_the_connector_uses_only_documented_order_filters_and_no_packages(doc):
    from urllib.parse import parse_qsl, urlsplit

    from apicenterd import Entity, Shipment
    from apicenterd.testing import connect

    filters, orderby = order_filters(doc)
    assert {"ordernumber", "status", "is_paid", "min_create_date", "is_completed"} <= filters
    app = CCVSalesPOSConnector.simulator(seed=1, records=20)
    sim = app.state.sim
    order = next(o for o in sim.orders.values() if not o["track_and_trace_code"] and o["status"] != 8)
    async with connect(CCVSalesPOSConnector, CCVSalesPOSConnector.demo_settings(ROOT), app=app) as connector:
        changes = [c async for c in connector.read(Entity.ORDERS, None)]
        [c async for c in connector.read(Entity.ORDERS, changes[-1].cursor)]
        [c async for c in connector.read(Entity.CUSTOMERS, None)]
        [c async for c in connector.read(Entity.STOCK, None)]
        await connector.create(Entity.SHIPMENTS, Shipment(order_number=order["ordernumber_full"], tracking_code="3SDOC2"))
    used = [(m, urlsplit(uri)) for m, uri in sim.requests]
    assert not [u for _, u in used if "packages" in u.path]  # §7: /packages is not shipments
    assert ("PATCH", f"{API}orders/{order['id']}/") in [(m, u.path) for m, u in used]
    for _, url in used:
        if url.path == API + "orders/":
            for name, value in parse_qsl(url.query):
                assert name in filters | {"orderby", "start", "size"}, name
                if name == "orderby":
                    assert value.removesuffix("_desc") in orderby
