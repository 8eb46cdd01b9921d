"""The connector against its simulator, in-process: products, stock, customers, reads, auth, limits."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import httpx
import pytest
from apicenterd_eaccounting import EAccountingConnector
from apicenterd_eaccounting.client import cursor_of

from apicenterd import (
    Address,
    AuthError,
    Contact,
    Customer,
    Entity,
    FatalError,
    Product,
    RateLimited,
    RecordError,
    RetryableError,
    StockLevel,
)
from apicenterd.testing import MemoryTokenStore, connect

pytestmark = pytest.mark.anyio


def mug(**overrides) -> Product:
    """A product with sensible defaults."""
    values = dict(sku="MUG-1", name="Blue mug", price_excl_tax=Decimal("10"), price_incl_tax=Decimal("12.10"), tax_rate=Decimal(21), quantity=Decimal(4))
    values.update(overrides)
    return Product(**values)


def acme(**overrides) -> Customer:
    """A company customer with a contact."""
    values = dict(
        kind="company",
        name="Acme B.V.",
        email="info@acme.example",
        contact=Contact(first_name="Jan", last_name="de Vries"),
        billing_address=Address(street="Kerkstraat", house_number="1", postcode="1011AB", city="Amsterdam", country="NL"),
    )
    values.update(overrides)
    return Customer(**values)


async def test_check_reads_company_settings(app, sim, settings):
    async with connect(EAccountingConnector, settings, app=app) as connector:
        await connector.check()
    assert sim.requests == [("GET", "/v2/companysettings")]


async def test_check_with_a_wrong_secret_is_an_auth_error(app, settings):
    async with connect(EAccountingConnector, {**settings, "client_secret": "wrong"}, app=app) as connector:
        with pytest.raises(AuthError):
            await connector.check()


async def test_create_then_find_product(app, sim, settings):
    async with connect(EAccountingConnector, settings, app=app) as connector:
        assert await connector.find(Entity.PRODUCTS, "MUG-1") is None
        article_id = await connector.create(Entity.PRODUCTS, mug(tax_rate=Decimal(9)))
        found = await connector.find(Entity.PRODUCTS, "MUG-1")
    stored = sim.articles[article_id]
    assert stored["CodingId"] == sim.coding_for(9) and stored["StockBalance"] == 4 and stored["NetPrice"] == Decimal("10.00")
    assert found.id == article_id
    assert (found.record.sku, found.record.price_incl_tax, found.record.tax_rate, found.record.unit) == ("MUG-1", Decimal("12.10"), Decimal(9), "pcs")


async def test_find_quotes_the_sku(app, sim, settings):
    async with connect(EAccountingConnector, settings, app=app) as connector:
        await connector.create(Entity.PRODUCTS, mug(sku="O'NEIL-1"))
        assert (await connector.find(Entity.PRODUCTS, "O'NEIL-1")).record.sku == "O'NEIL-1"
        assert await connector.find(Entity.PRODUCTS, "O'NEIL") is None


async def test_a_duplicate_number_is_a_record_error(app, settings):
    async with connect(EAccountingConnector, settings, app=app) as connector:
        await connector.create(Entity.PRODUCTS, mug())
        with pytest.raises(RecordError, match="already exists"):
            await connector.create(Entity.PRODUCTS, mug())


async def test_a_vat_rate_without_coding_is_a_record_error(app, settings):
    async with connect(EAccountingConnector, settings, app=app) as connector:
        with pytest.raises(RecordError, match=r"no active article account coding in eAccounting has VAT 7% \(there are: 0, 6, 9, 12, 21, 25\)"):
            await connector.create(Entity.PRODUCTS, mug(tax_rate=Decimal(7)))


async def test_configured_coding_and_unit_win(app, sim, settings):
    coding, unit = sim.coding_for(0), list(sim.units)[2]
    async with connect(EAccountingConnector, {**settings, "article_coding_id": coding, "unit_id": unit}, app=app) as connector:
        article_id = await connector.create(Entity.PRODUCTS, mug(tax_rate=None, unit="pallet"))
    assert (sim.articles[article_id]["CodingId"], sim.articles[article_id]["UnitId"]) == (coding, unit)


async def test_the_unit_is_matched_by_code_or_abbreviation(app, sim, settings):
    async with connect(EAccountingConnector, settings, app=app) as connector:
        article_id = await connector.create(Entity.PRODUCTS, mug(unit="KG"))
    assert sim.articles[article_id]["UnitName"] == "Kilogram"


async def test_a_product_in_another_currency_is_a_record_error(app, settings):
    async with connect(EAccountingConnector, settings, app=app) as connector:
        with pytest.raises(RecordError, match="prices are in SEK, the eAccounting company books in EUR"):
            await connector.create(Entity.PRODUCTS, mug(currency="SEK"))


async def test_update_changes_only_the_given_fields(app, sim, settings):
    async with connect(EAccountingConnector, settings, app=app) as connector:
        article_id = await connector.create(Entity.PRODUCTS, mug())
        sim.articles[article_id]["Name"] = "Renamed in eAccounting"
        await connector.update(Entity.PRODUCTS, article_id, mug(price_excl_tax=Decimal("11.5"), name="ignored"), frozenset({"price_excl_tax"}))
    stored = sim.articles[article_id]
    assert stored["NetPrice"] == Decimal("11.50") and stored["Name"] == "Renamed in eAccounting" and stored["GrossPrice"] == Decimal("12.10")


async def test_an_update_that_changes_nothing_spends_no_put(app, sim, settings):
    async with connect(EAccountingConnector, settings, app=app) as connector:
        article_id = await connector.create(Entity.PRODUCTS, mug())
        await connector.update(Entity.PRODUCTS, article_id, mug(ean="123"), frozenset({"name", "price_excl_tax", "active", "ean"}))
    assert sim.count("PUT") == 0


async def test_update_of_a_deleted_article_is_a_record_error(app, settings):
    async with connect(EAccountingConnector, settings, app=app) as connector:
        with pytest.raises(RecordError, match="ResourceNotFound"):
            await connector.update(Entity.PRODUCTS, "0b6c1b7e-5a7a-4f5e-9a3b-2f1d3c4e5f60", mug(), frozenset({"name"}))


async def test_stock_writes_available_into_stock_balance(app, sim, settings):
    async with connect(EAccountingConnector, settings, app=app) as connector:
        article_id = await connector.create(Entity.PRODUCTS, mug())
        found = await connector.find(Entity.STOCK, "MUG-1")
        assert (found.id, found.record.available) == (article_id, Decimal(4))
        level = StockLevel(sku="MUG-1", on_hand=Decimal(10), reserved=Decimal(3), available=Decimal(7))
        await connector.update(Entity.STOCK, article_id, level, frozenset({"available"}))
    assert sim.articles[article_id]["StockBalance"] == 7 and sim.articles[article_id]["StockBalanceAvailable"] == 7


async def test_untracked_stock_is_not_written(app, sim, settings):
    async with connect(EAccountingConnector, settings, app=app) as connector:
        article_id = await connector.create(Entity.PRODUCTS, mug())
        sim.reset_counts()
        await connector.update(Entity.STOCK, article_id, StockLevel(sku="MUG-1", on_hand=0, available=0, tracked=False), frozenset({"available"}))
    assert sim.request_count == 0 and sim.articles[article_id]["StockBalance"] == 4


async def test_stock_for_an_unknown_article_cannot_be_created(app, settings):
    async with connect(EAccountingConnector, settings, app=app) as connector:
        assert await connector.find(Entity.STOCK, "NOPE") is None
        with pytest.raises(RecordError, match="no article with number 'NOPE' in eAccounting; sync products first"):
            await connector.create(Entity.STOCK, StockLevel(sku="NOPE", on_hand=1, available=1))


async def test_read_products_in_cursor_order_and_delta(settings):
    app = EAccountingConnector.simulator(seed=3, records=5)
    sim = app.state.sim
    async with connect(EAccountingConnector, {**settings, "page_size": 2}, app=app) as connector:
        changes = [c async for c in connector.read(Entity.PRODUCTS, None)]
        assert sorted(c.record.sku for c in changes) == [f"EA-{n:05d}" for n in range(1, 6)]
        assert [c.cursor for c in changes] == sorted(c.cursor for c in changes)
        assert sim.count("GET", "/v2/articles") == 3  # 5 articles, 2 a page
        assert {c.source_id for c in changes} == set(sim.articles)
        last = changes[-1].cursor
        await connector.update(Entity.PRODUCTS, changes[0].source_id, changes[0].record.model_copy(update={"name": "Changed"}), frozenset({"name"}))
        delta = [c async for c in connector.read(Entity.PRODUCTS, last)]
    # the boundary record may come again (ties); the changed one must come, the older ones not
    assert "Changed" in [c.record.name for c in delta]
    assert {c.source_id for c in delta} <= {changes[0].source_id, changes[-1].source_id}
    assert all(c.cursor >= last for c in delta) and delta[-1].cursor > last


async def test_read_yields_page_by_page_and_moves_the_cursor_with_the_last_change(settings):
    app = EAccountingConnector.simulator(seed=3, records=9)
    sim = app.state.sim
    async with connect(EAccountingConnector, {**settings, "page_size": 2}, app=app) as connector:
        await connector.read(Entity.PRODUCTS, None).__anext__()  # the lookups a first read makes
        sim.reset_counts()
        pages_when_yielded, changes = [], []
        async with contextlib.aclosing(connector.read(Entity.PRODUCTS, None)) as reader:
            async for change in reader:
                pages_when_yielded.append(sim.count("GET", "/v2/articles"))
                changes.append(change)
    assert pages_when_yielded[0] == 1 and pages_when_yielded[-1] == 5  # not after the last page
    floor = "0001-01-01T00:00:00.000000Z"
    assert [c.cursor for c in changes[:-1]] == [floor] * 8  # older records may be unread: no move
    assert changes[-1].cursor == max(cursor_of(a["ChangedUtc"]) for a in sim.articles.values())


async def test_a_record_changed_before_the_read_moves_the_cursor_to_its_change(settings):
    app = EAccountingConnector.simulator(seed=3, records=3)
    sim = app.state.sim
    first_id = next(iter(sim.articles))
    sim.articles[first_id]["ChangedUtc"] = "2030-01-01T00:00:00.000Z"
    async with connect(EAccountingConnector, {**settings, "page_size": 1}, app=app) as connector:
        changes = [c async for c in connector.read(Entity.PRODUCTS, None)]
    assert len(changes) == 3 and changes[0].source_id == first_id and changes[-1].cursor.startswith("2030-01-01")


async def test_an_unreadable_changed_utc_is_read_first_not_the_end_of_the_run(settings):
    app = EAccountingConnector.simulator(seed=3, records=3)
    sim = app.state.sim
    broken, odd = list(sim.articles)[:2]
    sim.articles[broken]["ChangedUtc"] = "gisteren"  # found by test_fuzz.py: a ValueError here ended the read
    sim.articles[odd].update(Name=12345, NetPrice="NaN")  # and these leaked a ValidationError / InvalidOperation
    async with connect(EAccountingConnector, settings, app=app) as connector:
        changes = [c async for c in connector.read(Entity.PRODUCTS, None)]
    assert {c.source_id for c in changes} == set(sim.articles)
    assert (changes[0].source_id, changes[0].cursor) == (broken, "0001-01-01T00:00:00.000000Z")
    read_odd = next(c.record for c in changes if c.source_id == odd)
    assert (read_odd.name, read_odd.price_excl_tax) == ("", None)


async def test_customers_create_find_update(app, sim, settings):
    async with connect(EAccountingConnector, settings, app=app) as connector:
        assert await connector.find(Entity.CUSTOMERS, "info@acme.example") is None
        customer_id = await connector.create(Entity.CUSTOMERS, acme())
        stored = sim.customers[customer_id]
        assert stored["TermsOfPaymentId"] == sim.company["TermsOfPaymentId"] and stored["IsPrivatePerson"] is False
        assert stored["ContactPersonName"] == "Jan de Vries" and stored["CustomerNumber"]
        sim.customers[customer_id]["EmailAddress"] = "Info@ACME.example"
        found = await connector.find(Entity.CUSTOMERS, "info@acme.example")
        assert found.id == customer_id and found.record.contact.last_name == "de Vries"
        moved = acme(billing_address=Address(street="Dam", house_number="2", postcode="1012JS", city="Amsterdam", country="NL"), name="ignored")
        await connector.update(Entity.CUSTOMERS, customer_id, moved, frozenset({"billing_address"}))
    assert (sim.customers[customer_id]["InvoiceAddress1"], sim.customers[customer_id]["Name"]) == ("Dam 2", "Acme B.V.")


async def test_a_private_person_and_lookup_by_customer_number(app, sim, settings):
    person = acme(kind="person", name="Piet Jansen", email=None, contact=None, customer_number="P-7")
    async with connect(EAccountingConnector, settings, app=app) as connector:
        customer_id = await connector.create(Entity.CUSTOMERS, person)
        found = await connector.find(Entity.CUSTOMERS, person.key())
    assert sim.customers[customer_id]["IsPrivatePerson"] is True and found.id == customer_id and found.record.kind == "person"


async def test_a_customer_without_postcode_is_a_record_error_before_any_call(app, sim, settings):
    async with connect(EAccountingConnector, settings, app=app) as connector:
        await connector.check()
        sim.reset_counts()
        with pytest.raises(RecordError, match="InvoicePostalCode is empty"):
            await connector.create(Entity.CUSTOMERS, acme(billing_address=Address(city="Amsterdam")))
    assert sim.count("POST") == 0


async def test_read_customers_since_a_cursor(settings):
    app = EAccountingConnector.simulator(seed=2, customers=4)
    async with connect(EAccountingConnector, settings, app=app) as connector:
        changes = [c async for c in connector.read(Entity.CUSTOMERS, None)]
        third = changes[2]
        await connector.update(Entity.CUSTOMERS, third.source_id, third.record.model_copy(update={"name": "Customer 3b"}), frozenset({"name"}))
        later = [c async for c in connector.read(Entity.CUSTOMERS, changes[-1].cursor)]
    assert [c.record.name for c in changes] == ["Customer 1", "Customer 2", "Customer 3", "Customer 4"]
    assert [c.record.name for c in later] in (["Customer 3b"], ["Customer 3b", "Customer 4"])  # and the boundary
    assert changes[1].record.kind == "person"


class OrderedStore(MemoryTokenStore):
    """Notes how many API calls the simulator had seen when each token set was saved."""

    def __init__(self, sim):
        super().__init__()
        self.sim, self.saved_at = sim, []

    async def save(self, tokens):
        """Note the call count, then keep ``tokens``."""
        self.saved_at.append((self.sim.request_count, tokens["refresh_token"]))
        await super().save(tokens)


async def test_refresh_tokens_rotate_and_are_stored_before_use(settings):
    app = EAccountingConnector.simulator(token_ttl=3600)
    sim = app.state.sim
    store = OrderedStore(sim)
    async with connect(EAccountingConnector, settings, app=app, tokens=store) as connector:
        await connector.check()
        first = store.tokens["refresh_token"]
        sim.expire_access_tokens()
        await connector.check()  # 401 → refresh with the rotated token → retried
    assert [count for count, _ in store.saved_at] == [0, 2]
    assert first != settings["refresh_token"] and store.tokens["refresh_token"] not in (first, settings["refresh_token"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://eaccounting.test") as raw:
        reused = await raw.post(
            "/connect/token",
            data={"grant_type": "refresh_token", "refresh_token": first},
            auth=(settings["client_id"], settings["client_secret"]),
        )
    assert (reused.status_code, reused.json()) == (400, {"error": "invalid_grant"})


async def test_short_lived_access_tokens_are_used_for_most_of_their_life(settings):
    app = EAccountingConnector.simulator(token_ttl=30)  # refreshed 6 s (20 %) before expiry, not 60 s
    async with connect(EAccountingConnector, settings, app=app) as connector:
        await connector.check()
        await connector.check()
    assert app.state.sim.token_requests == 1 and app.state.sim.request_count == 2


async def test_a_used_bootstrap_token_is_an_auth_error(app, settings):
    async with connect(EAccountingConnector, settings, app=app) as connector:
        await connector.check()
    async with connect(EAccountingConnector, settings, app=app) as connector:  # new, empty token store
        with pytest.raises(AuthError, match="invalid_grant"):
            await connector.check()


async def test_the_per_endpoint_limit_answers_429_with_retry_after(settings):
    app = EAccountingConnector.simulator(rate_limit=2)
    async with connect(EAccountingConnector, settings, app=app, rate_limits=False) as connector:
        await connector.check()
        await connector.check()
        with pytest.raises(RateLimited) as caught:
            await connector.check()
        assert 0 < caught.value.retry_after <= 60 and caught.value.vendor_code == "4010"
        assert await connector.find(Entity.PRODUCTS, "X") is None  # another endpoint, its own budget


async def test_server_errors_are_retryable_and_garbage_is_fatal(app, sim, settings):
    async with connect(EAccountingConnector, settings, app=app) as connector:
        sim.fail_next(503, {"ErrorCode": 5000, "DeveloperErrorMessage": "Service unavailable"})
        with pytest.raises(RetryableError, match="Service unavailable"):
            await connector.find(Entity.PRODUCTS, "X")
        sim.fail_next(200, "<html>login</html>")
        with pytest.raises(FatalError, match="not JSON"):
            await connector.find(Entity.PRODUCTS, "X")
        sim.fail_next(200, {"Items": []})
        with pytest.raises(FatalError, match=r"expected a \{Meta, Data\} page"):
            await connector.find(Entity.PRODUCTS, "X")


async def test_demo_settings_validate_and_the_clock_drives_changed_utc():
    settings = EAccountingConnector.Settings.model_validate(EAccountingConnector.demo_settings("http://127.0.0.1:8702/"))
    assert settings.token_url == "http://127.0.0.1:8702/connect/token" and settings.base_url == "http://127.0.0.1:8702"
    start = datetime(2025, 5, 1, 12, tzinfo=timezone.utc)
    app = EAccountingConnector.simulator(clock=lambda: start)
    async with connect(EAccountingConnector, EAccountingConnector.demo_settings("http://x"), app=app) as connector:
        first = await connector.create(Entity.PRODUCTS, mug(sku="A"))
        second = await connector.create(Entity.PRODUCTS, mug(sku="B"))
    stamps = [app.state.sim.articles[i]["ChangedUtc"] for i in (first, second)]
    assert stamps == ["2025-05-01T12:00:00.000Z", (start + timedelta(milliseconds=1)).strftime("%Y-%m-%dT%H:%M:%S.001Z")]


def test_settings_forbid_unknown_keys_and_strip_v2():
    with pytest.raises(ValueError, match="extra"):
        EAccountingConnector.Settings.model_validate({"client_id": "a", "client_secret": "b", "shop": "x"})
    settings = EAccountingConnector.Settings.model_validate({"client_id": "a", "client_secret": "b", "base_url": "https://eaccountingapi.vismaonline.com/v2/"})
    assert settings.base_url == "https://eaccountingapi.vismaonline.com"


def test_plugin_registers_the_connector():
    from importlib.metadata import entry_points

    (entry,) = [e for e in entry_points(group="apicenterd.connectors") if e.name == "eaccounting"]
    plugin = entry.load()
    registered = []
    plugin.register_connectors(registered.append)
    assert registered == [EAccountingConnector]
    assert EAccountingConnector.written_fields[Entity.STOCK] == frozenset({"available"})
    assert "ean" not in EAccountingConnector.written_fields[Entity.PRODUCTS]


@pytest.mark.anyio
async def test_find_many_looks_articles_up_in_chunks_with_or_filters():
    from apicenterd_eaccounting.connector import FIND_MANY_CHUNK, EAccountingConnector

    from apicenterd import Entity
    from apicenterd.testing import connect

    app = EAccountingConnector.simulator(seed=2, records=60)
    sim = app.state.sim
    numbers = sorted(a["Number"] for a in sim.articles.values())[:55]
    async with connect(EAccountingConnector, EAccountingConnector.demo_settings("http://sim.test"), app=app) as conn:
        sim.requests.clear()
        found = await conn.find_many(Entity.PRODUCTS, [*numbers, "NO-SUCH-SKU"])
        gets = [r for r in sim.requests if r[0] == "GET" and "/v2/articles" in r[1]]
        assert set(found) == set(numbers)
        assert len(gets) == -(-(len(numbers) + 1) // FIND_MANY_CHUNK)  # ceil: one call per chunk
        one = await conn.find(Entity.PRODUCTS, numbers[0])
        assert found[numbers[0]].id == one.id and found[numbers[0]].record == one.record
        stock = await conn.find_many(Entity.STOCK, numbers[:3])
        assert {k: v.id for k, v in stock.items()} == {k: found[k].id for k in numbers[:3]}




@pytest.mark.anyio
async def test_updating_what_the_batch_look_up_found_reads_no_article_again():
    """Adopting articles another tool made: the look-up's GET, then one PUT each (was GET + PUT each)."""
    app = EAccountingConnector.simulator(seed=2, records=12)
    sim = app.state.sim
    numbers, others = sorted(a["Number"] for a in sim.articles.values())[:10], sorted(a["Number"] for a in sim.articles.values())[10:]
    async with connect(EAccountingConnector, EAccountingConnector.demo_settings("http://sim.test"), app=app) as conn:
        found = await conn.find_many(Entity.PRODUCTS, numbers)
        stock = await conn.find_many(Entity.STOCK, others)
        sim.requests.clear()
        for number in numbers:
            record = found[number].record.model_copy(update={"name": f"Renamed {number}"})
            await conn.update_found(Entity.PRODUCTS, found[number], record, frozenset({"name"}))
        for number in others:
            level = StockLevel(sku=number, on_hand=Decimal(41), available=Decimal(41), tracked=True)
            await conn.update_found(Entity.STOCK, stock[number], level, frozenset({"available"}))
    assert [method for method, _ in sim.requests] == ["PUT"] * 12
    articles = {a["Number"]: a for a in sim.articles.values()}
    assert all(articles[n]["Name"] == f"Renamed {n}" for n in numbers)
    assert [Decimal(str(articles[n]["StockBalance"])) for n in others] == [Decimal(41)] * 2



async def test_a_customer_that_cannot_be_mapped_is_a_failed_change_not_skipped(settings):
    """Before: logged (eaccounting_record_skipped) and dropped, never audited nor dead-lettered."""
    app = EAccountingConnector.simulator(seed=2, customers=3)
    sim = app.state.sim
    broken_id = sorted(sim.customers)[1]
    sim.customers[broken_id]["Name"] = ""
    async with connect(EAccountingConnector, settings, app=app) as connector:
        changes = [c async for c in connector.read(Entity.CUSTOMERS, None)]
    assert len(changes) == 3
    (failed,) = [c for c in changes if c.record is None]
    assert failed.source_id == broken_id and "Name" in failed.error
    assert changes[-1].cursor != changes[0].cursor  # the last change still carries the newest cursor
