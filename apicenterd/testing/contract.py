"""The contract test kit: the tests every connector, bundled or third-party, must pass.

Use it in your plugin's tests::

    from apicenterd.testing.contract import ConnectorContract

    class TestAcmeContract(ConnectorContract):
        connector = AcmeConnector
        samples = {Entity.PRODUCTS: Product(sku="CONTRACT-1", name="Contract test product")}

By default the connector talks to its own :meth:`~apicenterd.Connector.simulator` in-process,
with :meth:`~apicenterd.Connector.demo_settings`. A connector without a simulator (one that
reads a file, say) overrides only the ``settings`` fixture; override ``app`` too to point a
connector elsewhere (a vendor sandbox: ``app`` returns None and ``settings`` the sandbox's).

``samples`` holds one record per written entity to create; unset (None), the kit uses
:data:`DEFAULT_SAMPLES` for the written entities it has one for (products, customers), and
entities without a sample are only checked for look-ups. ``update_changes`` maps an entity to
the field changes an update test applies; unset, products get a new name when the sink
writes names. A connector that only reads runs the declaration and read tests; the write
tests skip saying so.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

from ..model import RECORD_TYPES, Address, Customer, Entity, Product, Record
from ..plugin import Connector, RateLimit
from ..registry import ENTRY_POINT_GROUP, validate_connector
from .connect import connect

__all__ = ["ConnectorContract", "DEFAULT_SAMPLES"]

SIMULATOR_URL = "http://simulator.test"

DEFAULT_SAMPLES: Mapping[Entity, Record] = {
    Entity.PRODUCTS: Product(
        sku="APICENTERD-CONTRACT-1",
        name="Contract test product",
        description="Created by the apicenterd contract tests",
        price_excl_tax=Decimal("10.00"),
        price_incl_tax=Decimal("12.10"),
        tax_rate=Decimal("21"),
    ),
    Entity.CUSTOMERS: Customer(
        kind="person",
        name="Contract Tester",
        email="contract-test@example.com",
        billing_address=Address(street="Stationsweg", house_number="1", postcode="1234 AB", city="Utrecht", country="NL"),
    ),
}
"""The records the write tests create when a contract names no ``samples`` of its own."""


class ConnectorContract:
    """Subclass with ``connector = YourConnector``; pytest collects the tests below."""

    connector: ClassVar[type[Connector]]
    samples: ClassVar[Mapping[Entity, Record] | None] = None
    """One record per written entity to create (None: :data:`DEFAULT_SAMPLES` for the written entities)."""
    update_changes: ClassVar[Mapping[Entity, Mapping[str, Any]] | None] = None
    """Entity -> the field changes the update test applies (None: a new product name, if names are written)."""
    read_limit: ClassVar[int] = 50
    """Read at most this many records per entity in the read tests."""

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    def app(self) -> Any:
        """The ASGI app the connector talks to: its simulator, seeded (None without one: real I/O)."""
        return self.connector.simulator(seed=1, records=5)

    @pytest.fixture
    def settings(self, app: Any) -> dict[str, Any]:
        """Connection settings that work against ``app`` (a connector without a simulator overrides this)."""
        if app is None:
            pytest.skip(
                f"{self.connector.name} has no simulator: override the settings fixture of "
                f"{type(self).__name__} with settings that work in a test (and app, for a sandbox)"
            )
        return self.connector.demo_settings(SIMULATOR_URL)

    def write_samples(self) -> dict[Entity, Record]:
        """The records the write tests create: ``samples``, or the defaults for the written entities."""
        if self.samples is not None:
            return dict(self.samples)
        return {entity: record for entity, record in DEFAULT_SAMPLES.items() if entity in self.connector.writes}

    def write_changes(self) -> dict[Entity, Mapping[str, Any]]:
        """The updates the update test applies: ``update_changes``, or a product rename."""
        if self.update_changes is not None:
            return dict(self.update_changes)
        if Entity.PRODUCTS not in self.write_samples():
            return {}
        written = self.connector.written_fields.get(Entity.PRODUCTS)
        if written is not None and "name" not in written:
            return {}
        return {Entity.PRODUCTS: {"name": "Contract test product, renamed"}}

    def _skip_unless_writes(self) -> None:
        if not self.connector.writes:
            pytest.skip(f"{self.connector.name} writes nothing (it only reads)")

    # ---------------------------------------------------------------- declarations

    def test_declaration_is_valid(self) -> None:
        """Name, settings model, entities and implemented methods agree."""
        validate_connector(self.connector)
        assert self.connector.reads or self.connector.writes, "a connector must read or write something"

    def test_is_registered_through_an_entry_point(self) -> None:
        """Installed, the distribution exposes a plugin in the ``apicenterd.connectors`` group."""
        from ..registry import load_registry

        names = [ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)]
        assert names, f"no entry points in group {ENTRY_POINT_GROUP!r}: is the plugin installed?"
        registry = load_registry()
        found = registry.connectors.get(self.connector.name)
        assert found is self.connector, (
            f"no connector {self.connector.name!r} came from the entry points (found: {sorted(registry.connectors)}, "
            f"failed: {registry.failures}): is the distribution installed (pip install -e .), with "
            f"{self.connector.name} = \"<package>.plugin\" under [project.entry-points.\"{ENTRY_POINT_GROUP}\"]?"
            if found is None
            else f"connector {self.connector.name!r} from the entry points is {found!r}, not {self.connector!r}"
        )

    def test_settings_reject_unknown_keys(self, settings: dict[str, Any]) -> None:
        """A typo in the config is an error, not silently ignored."""
        with pytest.raises(ValidationError) as exc:
            self.connector.Settings.model_validate({**settings, "no_such_setting_xyz": 1})
        assert any(e["type"] == "extra_forbidden" for e in exc.value.errors())

    def test_base_url_is_a_setting(self, settings: dict[str, Any]) -> None:
        """The API base URL is a setting (sandbox, production, simulator), and the client uses it."""
        assert "base_url" in self.connector.Settings.model_fields
        moved = self.connector.Settings.model_validate({**settings, "base_url": "http://elsewhere.test"})
        assert moved.base_url.rstrip("/").startswith("http://elsewhere.test")

    def test_rate_limits_are_sane(self) -> None:
        """Declared limits allow at least one call in a positive period."""
        for limit in self.connector.rate_limits:
            assert isinstance(limit, RateLimit)
            assert limit.requests >= 1 and limit.period > 0

    def test_written_fields_are_canonical(self) -> None:
        """Every field a connector claims to store exists on the canonical record."""
        for entity, fields in self.connector.written_fields.items():
            assert entity in self.connector.writes, f"written_fields names {entity}, which is not in writes"
            unknown = set(fields) - set(RECORD_TYPES[entity].model_fields)
            assert not unknown, f"{entity}: not canonical fields: {sorted(unknown)}"

    # ---------------------------------------------------------------- behaviour

    @pytest.mark.anyio
    async def test_normalize_is_idempotent(self, app: Any, settings: dict[str, Any]) -> None:
        """The daemon hashes the normalized form: normalizing it again changes nothing (no phantom diffs)."""
        self._skip_unless_writes()
        samples = self.write_samples()
        if not samples:
            pytest.skip("no samples given")
        async with connect(self.connector, settings, app=app) as conn:
            for entity, record in samples.items():
                once = conn.normalize(entity, record)
                assert conn.normalize(entity, once) == once, f"{entity}: normalize is not idempotent"

    @pytest.mark.anyio
    async def test_check_passes(self, app: Any, settings: dict[str, Any]) -> None:
        """``check()`` succeeds with working credentials."""
        async with connect(self.connector, settings, app=app) as conn:
            await conn.check()

    @pytest.mark.anyio
    async def test_read_yields_canonical_records_in_cursor_order(self, app: Any, settings: dict[str, Any]) -> None:
        """Each read entity yields its record type, string ids and non-decreasing cursors."""
        async with connect(self.connector, settings, app=app) as conn:
            for entity in sorted(self.connector.reads, key=str):
                previous = None
                count = 0
                reader = conn.read(entity, None)
                async for change in reader:
                    if change.record is None:  # a record the source reports as unreadable
                        assert change.error, f"{entity}: a Change without record must carry an error"
                        continue
                    assert isinstance(change.record, RECORD_TYPES[entity]), (entity, type(change.record))
                    assert isinstance(change.source_id, str) and change.source_id
                    assert isinstance(change.cursor, str)
                    if previous is not None:
                        assert change.cursor >= previous, f"{entity}: cursor went back from {previous} to {change.cursor}"
                    previous = change.cursor
                    count += 1
                    if count >= self.read_limit:
                        break
                if hasattr(reader, "aclose"):  # a generator left early must be closed (its HTTP calls)
                    await reader.aclose()

    @pytest.mark.anyio
    async def test_read_since_last_cursor_is_a_suffix(self, app: Any, settings: dict[str, Any]) -> None:
        """Reading since the last cursor returns no record that came before it."""
        async with connect(self.connector, settings, app=app) as conn:
            for entity in sorted(self.connector.reads, key=str):
                changes = [c async for c in conn.read(entity, None)]
                if not changes:
                    continue
                last = changes[-1].cursor
                assert last is not None, f"{entity}: a change read since None has no cursor"
                again = [c async for c in conn.read(entity, last)]
                assert all(c.cursor is not None and c.cursor >= last for c in again)
                assert len(again) <= len(changes)

    @pytest.mark.anyio
    async def test_find_unknown_key_returns_none(self, app: Any, settings: dict[str, Any]) -> None:
        """Looking up a key that does not exist is None, not an error."""
        self._skip_unless_writes()
        async with connect(self.connector, settings, app=app) as conn:
            for entity in sorted(self.connector.writes, key=str):
                assert await conn.find(entity, "apicenterd-contract-no-such-key@example.invalid") is None

    @pytest.mark.anyio
    async def test_create_then_find_by_key(self, app: Any, settings: dict[str, Any]) -> None:
        """A created record is found by its key under the id create returned, one by one and in a batch."""
        self._skip_unless_writes()
        samples = self.write_samples()
        if not samples:
            pytest.skip("no samples given")
        async with connect(self.connector, settings, app=app) as conn:
            for entity, record in samples.items():
                record = conn.normalize(entity, record)
                new_id = await conn.create(entity, record)
                assert isinstance(new_id, str) and new_id
                found = await conn.find(entity, record.key())
                assert found is not None and found.id == new_id
                if found.record is not None:
                    assert isinstance(found.record, RECORD_TYPES[entity]), (entity, type(found.record))
                    assert found.record.key() == record.key(), f"{entity}: found {found.record.key()!r} for {record.key()!r}"
                if not self.connector.sinks:  # TRANSITION: a connector not yet on sources and sinks
                    continue
                many = await conn.find_many(entity, [record.key(), "apicenterd-contract-no-such-key@example.invalid"])
                assert set(many) == {record.key()} and many[record.key()].id == new_id, f"{entity}: find_many {many}"

    @pytest.mark.anyio
    async def test_update_writes_only_the_given_fields(self, app: Any, settings: dict[str, Any]) -> None:
        """An update changes the named fields and leaves the others as they were."""
        self._skip_unless_writes()
        changes_by_entity = self.write_changes()
        if not changes_by_entity:
            pytest.skip("no update_changes given")
        samples = self.write_samples()
        async with connect(self.connector, settings, app=app) as conn:
            for entity, changes in changes_by_entity.items():
                record = conn.normalize(entity, samples[entity])
                new_id = await conn.create(entity, record)
                changed = conn.normalize(entity, record.model_copy(update=dict(changes)))
                await conn.update(entity, new_id, changed, frozenset(changes))
                found = await conn.find(entity, record.key())
                assert found is not None and found.record is not None
                for field in changes:
                    assert getattr(found.record, field) == getattr(changed, field), field
                untouched = set(self.connector.written_fields.get(entity, ())) - set(changes) - {"sku"}
                for field in untouched:
                    assert getattr(found.record, field) == getattr(record, field), f"{field} changed by an update of {sorted(changes)}"
