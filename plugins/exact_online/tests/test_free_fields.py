"""Free date fields of items (``FreeDateField_01``-``05``) and account classifications given by code."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from apicenterd_exact_online import ExactOnlineConnector, mapping

from apicenterd import Customer, Entity, Product, RecordError
from apicenterd.testing import connect

pytestmark = pytest.mark.anyio


async def test_an_item_free_date_field_is_written_and_read_back_as_a_date(app, sim, settings):
    product = Product(
        sku="D-1",
        name="Dated",
        price_excl_tax=Decimal("3.00"),
        custom_fields={"FreeDateField_02": "2026-03-01", "FreeDateField_05": date(2025, 12, 31), "FreeTextField_01": "x"},
    )
    async with connect(ExactOnlineConnector, settings, app=app) as conn:
        sink = conn.sink(Entity.PRODUCTS)
        record = sink.normalize(product)
        assert record.custom_fields["FreeDateField_05"] == "2025-12-31"
        item_id = await sink.create(record)
        stored = sim.data["logistics/Items"][item_id]
        assert stored["FreeDateField_02"].startswith("/Date(")  # Exact keeps an Edm.DateTime
        found = await sink.find("D-1")
        assert found is not None and found.record.custom_fields == record.custom_fields  # equal: nothing to update
        later = sink.normalize(product.model_copy(update={"custom_fields": {**product.custom_fields, "FreeDateField_02": "2026-04-02"}}))
        await sink.update(item_id, later, frozenset({"custom_fields"}))
        found = await sink.find("D-1")
        assert found is not None and found.record.custom_fields["FreeDateField_02"] == "2026-04-02"


@pytest.mark.parametrize("value", ["01-03-2026", "soon", 20260301])
async def test_a_free_date_field_that_is_not_a_date_fails_the_record_named(app, settings, value):
    async with connect(ExactOnlineConnector, settings, app=app) as conn:
        product = Product(sku="D-2", name="Bad", custom_fields={"FreeDateField_01": value})
        with pytest.raises(RecordError, match=r"product 'D-2': custom field FreeDateField_01 is a date field .*is not a date"):
            conn.sink(Entity.PRODUCTS).normalize(product)


def test_a_date_from_exact_is_read_as_its_day():
    assert mapping.custom_values({"FreeDateField_03": "/Date(1772323200000)/"}, mapping.ITEM_FREE_FIELDS) == {
        "FreeDateField_03": "2026-03-01"
    }


def _classified(sim, code_of):
    names = {n["ID"]: n["SequenceNumber"] for n in sim.data["crm/AccountClassificationNames"].values()}
    return {(names[c["AccountClassificationName"]], c["Code"]): c["ID"] for c in sim.data["crm/AccountClassifications"].values()}[code_of]


async def test_account_classifications_are_given_by_code_and_resolved_once(app, sim, settings):
    first = Customer(
        kind="company", name="Gold North BV", email="gn@example.com", custom_fields={"Classification1": "A", "Classification2": "A"}
    )
    second = Customer(
        kind="company", name="Silver BV", email="s@example.com", custom_fields={"Classification1": "B", "Classification2": "A"}
    )
    async with connect(ExactOnlineConnector, settings, app=app) as conn:
        sink = conn.sink(Entity.CUSTOMERS)
        one = await sink.create(sink.normalize(first))
        two = await sink.create(sink.normalize(second))
        account = sim.data["crm/Accounts"][one]
        # the same code in two classifications: each the entry of its own SequenceNumber
        assert account["Classification1"] == _classified(sim, (1, "A")) and account["Classification2"] == _classified(sim, (2, "A"))
        assert sim.data["crm/Accounts"][two]["Classification1"] == _classified(sim, (1, "B"))
        found = await sink.find("gn@example.com")
        assert found is not None and found.record.custom_fields == {"Classification1": "A", "Classification2": "A"}
        await sink.update(
            two, sink.normalize(second.model_copy(update={"custom_fields": {"Classification1": "A"}})), frozenset({"custom_fields"})
        )
        assert sim.data["crm/Accounts"][two]["Classification1"] == _classified(sim, (1, "A"))
    lookups = [t for m, t in sim.requests if t.endswith(("/crm/AccountClassifications", "/crm/AccountClassificationNames"))]
    # the names once; each code once (A answers for classifications 1 and 2); the find knew the IDs
    assert len(lookups) == 1 + 2


async def test_an_unknown_classification_code_fails_the_customer_naming_it(app, sim, settings):
    customer = Customer(kind="company", name="Nobody BV", email="n@example.com", custom_fields={"Classification2": "B"})  # B is in 1, not 2
    async with connect(ExactOnlineConnector, settings, app=app) as conn:
        sink = conn.sink(Entity.CUSTOMERS)
        with pytest.raises(
            RecordError, match=r"custom field Classification2: account classification code 'B' not found in classification 2"
        ):
            await sink.create(sink.normalize(customer))
    assert sim.data["crm/Accounts"] == {}
