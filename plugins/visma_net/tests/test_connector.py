"""The Visma.net connector against its simulator: auth, paging, deltas, writes, errors."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from apicenterd_visma_net import VismaNetConnector
from apicenterd_visma_net.client import since_params, vendor_time

from apicenterd import (
    Address,
    AuthError,
    Contact,
    Customer,
    Entity,
    FatalError,
    JournalEntry,
    JournalLine,
    Product,
    RateLimited,
    RecordError,
    RetryableError,
)
from apicenterd.testing import MemoryTokenStore, connect
from apicenterd.testing.sim import TokenServer

pytestmark = pytest.mark.anyio


async def _all(conn, entity, since=None):
    return [c async for c in conn.read(entity, since)]


async def test_service_app_gets_a_token_with_its_tenant_and_a_new_one_when_it_expires(app, sim, settings):
    async with connect(VismaNetConnector, settings, app=app) as conn:
        assert len(await _all(conn, Entity.CUSTOMERS)) == 3
        assert sim.token_requests == 1
        await _all(conn, Entity.CUSTOMERS)
        assert sim.token_requests == 1  # reused while valid
        sim.expire_access_tokens()
        assert len(await _all(conn, Entity.CUSTOMERS)) == 3  # 401 -> a new token, the call repeated
        assert sim.token_requests == 2


async def test_a_wrong_tenant_is_an_auth_error_naming_it(app, settings):
    async with connect(VismaNetConnector, {**settings, "tenant_id": "someone-else"}, app=app) as conn:
        with pytest.raises(AuthError, match="someone-else"):
            await _all(conn, Entity.CUSTOMERS)


async def test_paging_reads_every_page_with_page_number_and_size(settings):
    app = VismaNetConnector.simulator(seed=1, records=7)
    async with connect(VismaNetConnector, {**settings, "page_size": 3}, app=app) as conn:
        changes = await _all(conn, Entity.PRODUCTS)
    assert sorted(c.source_id for c in changes) == [f"VN-{n:05d}" for n in range(1, 8)]
    gets = [t for m, t in app.state.sim.requests if m == "GET"]
    assert len(gets) == 3  # 3 + 3 + 1: the short page ends the read


async def test_delta_cursor_sends_last_modified_with_condition_and_reads_only_newer(app, sim, settings):
    async with connect(VismaNetConnector, settings, app=app) as conn:
        first = await _all(conn, Entity.PRODUCTS)
        cursor = first[-1].cursor
        assert all(c.cursor != cursor for c in first[:-1])  # only the last one moves the cursor
        sim.inventory["VN-00002"]["description"] = "Changed"
        sim.inventory["VN-00002"]["lastModifiedDateTime"] = sim.stamp()
        again = await _all(conn, Entity.PRODUCTS, cursor)
    # the changed item, and the newest one again (>=: a tie at the cursor is read again, the engine skips it)
    assert sorted(c.source_id for c in again) == ["VN-00002", "VN-00003"]
    assert again[-1].cursor > cursor and again[0].cursor == cursor


def test_timestamps_without_zone_are_company_local():
    oslo = ZoneInfo("Europe/Oslo")
    assert vendor_time("2024-06-01T12:00:00.000", oslo) == datetime(2024, 6, 1, 10, tzinfo=timezone.utc)
    assert vendor_time("2024-06-01T12:00:00Z", oslo) == datetime(2024, 6, 1, 12, tzinfo=timezone.utc)
    assert since_params("0099-01-01T00:00:00.000000Z", ZoneInfo("UTC"))["lastModifiedDateTime"] == "0099-01-01T00:00:00.000"
    params = since_params("2024-06-01T10:00:00.123456Z", oslo)
    assert params == {"lastModifiedDateTime": "2024-06-01T12:00:00.123", "lastModifiedDateTimeCondition": ">="}


async def test_customer_created_with_field_wrappers_found_by_email_and_updated(app, sim, settings):
    customer = Customer(
        kind="company", name="Fjord AS", email="post@fjord.no",
        contact=Contact(first_name="Kari", last_name="Nordmann"),
        billing_address=Address(street="Karl Johans gate", house_number="1", line2="c/o Nordmann", postcode="0154", city="Oslo", country="NO"),
        vat_number="NO999999999MVA",
    )
    async with connect(VismaNetConnector, settings, app=app) as conn:
        sink = conn.sink(Entity.CUSTOMERS)
        record = sink.normalize(customer)
        new_id = await conn.create(Entity.CUSTOMERS, record)
        assert sim.customers[new_id]["mainContact"]["attention"] == "Kari Nordmann"
        found = await conn.find(Entity.CUSTOMERS, "POST@fjord.no".lower())
        assert found is not None and found.id == new_id
        fields = set(sink.written_fields)
        assert found.record.model_dump(include=fields) == record.model_dump(include=fields)
        await conn.update(Entity.CUSTOMERS, new_id, record.model_copy(update={"name": "Fjord Holding AS"}), frozenset({"name"}))
    assert sim.customers[new_id]["name"] == "Fjord Holding AS"
    assert sim.customers[new_id]["vatRegistrationId"] == "NO999999999MVA"  # untouched by the partial PUT


async def test_inventory_item_by_number_created_201_location_and_updated(app, sim, settings):
    product = Product(sku="NEW 12", name="New item", price_excl_tax=Decimal("10.5"), tax_rate=Decimal(21))
    async with connect(VismaNetConnector, settings, app=app) as conn:
        record = conn.normalize(Entity.PRODUCTS, product)
        assert await conn.find(Entity.PRODUCTS, record.sku) is None
        new_id = await conn.create(Entity.PRODUCTS, record)
        assert new_id == "NEW 12"  # from the Location header, URL-decoded
        assert sim.inventory["NEW 12"]["vatCode"]["id"] == "1"
        found = await conn.find(Entity.PRODUCTS, "NEW 12")
        assert found is not None and found.record == record
        with pytest.raises(RecordError, match="VAT 6%"):
            await conn.create(Entity.PRODUCTS, record.model_copy(update={"sku": "X", "tax_rate": Decimal(6)}))


async def test_stock_is_available_minus_reserved_per_warehouse(app, sim, settings):
    async with connect(VismaNetConnector, {**settings, "warehouse": "WEB"}, app=app) as conn:
        changes = await _all(conn, Entity.STOCK)
    row = next(r for r in sim.summaries["VN-00001"] if r["warehouse"]["id"] == "WEB")
    level = next(c.record for c in changes if c.source_id == "VN-00001")
    assert level.available == row["available"] - row["soBooked"]
    assert level.reserved == row["soBooked"] and level.on_hand == row["onHand"] and level.location == "WEB"


async def test_journal_entry_booked_once_and_never_changed(app, sim, settings):
    entry = JournalEntry(
        number="EA-SALES-2024-05", entry_date=date(2024, 5, 31), description="Sales May",
        lines=(JournalLine(account="1510", debit=Decimal("121.00")), JournalLine(account="3001", credit=Decimal("100.00")),
               JournalLine(account="2611", credit=Decimal("21.00"))),
    )
    async with connect(VismaNetConnector, settings, app=app) as conn:
        assert await conn.find(Entity.JOURNAL, entry.number) is None
        batch = await conn.create(Entity.JOURNAL, entry)
        found = await conn.find(Entity.JOURNAL, entry.number)
        assert found is not None and found.id == batch
        with pytest.raises(RecordError, match="already booked"):
            await conn.update(Entity.JOURNAL, batch, entry, frozenset({"lines"}))
        unbalanced = entry.model_copy(update={"number": "X", "lines": entry.lines[:2]})
        with pytest.raises(RecordError, match="differ"):
            await conn.create(Entity.JOURNAL, unbalanced)
    assert len(sim.journal) == 1


async def test_errors_are_classified(app, sim, settings):
    async with connect(VismaNetConnector, settings, app=app) as conn:
        sim.fail_next(503, {"message": "down"})
        with pytest.raises(RetryableError):
            await _all(conn, Entity.CUSTOMERS)
        sim.fail_next(429, {"message": "Rate limit exceeded"}, headers={"Retry-After": "17"})
        with pytest.raises(RateLimited) as limited:
            await _all(conn, Entity.CUSTOMERS)
        assert limited.value.retry_after == 17
        with pytest.raises(RecordError, match="Description' cannot be empty") as bad:
            await conn.client.create("inventory", {"inventoryNumber": {"value": "Z"}}, what="item Z")
        assert "ExceptionMessageID" in str(bad.value)
        sim.fail_next(404, {"message": "no route"}, path_prefix="/v1/customer")
        with pytest.raises(FatalError, match="base_url"):
            await _all(conn, Entity.CUSTOMERS)


async def test_rate_limit_headers_are_sent_and_429_carries_the_reset(settings):
    app = VismaNetConnector.simulator(seed=1, records=1, rate_limit=2)
    async with connect(VismaNetConnector, settings, app=app, rate_limits=False) as conn:
        response = await conn.client.send("GET", "customer", what="x")
        assert response.headers["X-RateLimit-Limit"] == "2" and response.headers["X-RateLimit-Remaining"] == "1"
        await conn.client.send("GET", "customer", what="x")
        with pytest.raises(RateLimited) as limited:
            await conn.client.send("GET", "customer", what="x")
    assert limited.value.retry_after is not None and 0 < limited.value.retry_after <= 3600


async def test_bad_settings_name_the_field():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="time_zone"):
        VismaNetConnector.Settings.model_validate({"client_id": "a", "client_secret": "b", "time_zone": "Mars/Base"})
    with pytest.raises(ValidationError, match="vat_codes"):
        VismaNetConnector.Settings.model_validate({"client_id": "a", "client_secret": "b", "vat_codes": {"high": "1"}})


async def test_interactive_app_uses_the_refresh_token_and_keeps_the_rotated_one(app, sim, settings):
    assert isinstance(sim.oauth, TokenServer)
    interactive = {k: v for k, v in settings.items() if k != "tenant_id"}
    interactive["refresh_token"] = sim.oauth.demo_refresh_token()
    tokens = MemoryTokenStore()
    async with connect(VismaNetConnector, interactive, app=app, tokens=tokens) as conn:
        assert len(await _all(conn, Entity.CUSTOMERS)) == 3
    saved = await tokens.load()
    assert saved is not None and saved["refresh_token"] != interactive["refresh_token"]  # rotated and kept
    async with connect(VismaNetConnector, interactive, app=app, tokens=tokens) as conn:
        sim.expire_access_tokens()
        assert len(await _all(conn, Entity.CUSTOMERS)) == 3  # the stored token refreshed, not the spent bootstrap one


async def test_company_id_goes_in_the_ipp_company_id_header(app, sim, settings):
    seen = []

    class Spy:
        def __init__(self, inner):
            self.inner, self.state = inner, inner.state

        async def __call__(self, scope, receive, send):
            if scope["type"] == "http":
                seen.append(dict(scope["headers"]).get(b"ipp-company-id"))
            await self.inner(scope, receive, send)

    async with connect(VismaNetConnector, {**settings, "company_id": "1234567"}, app=Spy(app)) as conn:
        await _all(conn, Entity.CUSTOMERS)
    assert seen and all(v == b"1234567" for v in seen[1:])  # the token call aside


async def test_a_bad_answer_is_a_clear_error(app, sim, settings):
    async with connect(VismaNetConnector, settings, app=app) as conn:
        sim.fail_next(200, "<html>maintenance</html>", path_prefix="/v1/customer")
        with pytest.raises(FatalError, match="did not answer JSON"):
            await _all(conn, Entity.CUSTOMERS)
        sim.customers["10001"]["name"] = ""
        changes = await _all(conn, Entity.CUSTOMERS)
    failed = [c for c in changes if c.error]
    assert len(failed) == 1 and "no name" in failed[0].error and failed[0].source_id == "10001"


async def test_the_floor_cursor_reads_from_the_beginning_without_a_filter(app, sim, settings):
    from apicenterd_visma_net.connector import MIN_CURSOR

    async with connect(VismaNetConnector, {**settings, "time_zone": "America/New_York"}, app=app) as conn:
        assert len(await _all(conn, Entity.CUSTOMERS, MIN_CURSOR)) == 3
