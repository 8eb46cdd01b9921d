"""Custom fields are named by the system that holds them: between two kinds of connector, only the
custom fields a flow names (its ``custom_fields`` option or a ``map`` rule) reach the target; the
source's own (eAccounting's ``labels``, say) would be unknown fields there."""

from __future__ import annotations

from pathlib import Path

from fakes import product

from apicenterd.config import Config, resolve
from apicenterd.engine import Engine


def engine_for(tmp_path: Path, registry, flow: dict, entity: str = "products") -> Engine:
    raw = {
        "state": {"path": str(tmp_path / "state.db")},
        "connections": {"src": {"connector": "memsource"}, "dst": {"connector": "memtarget"}},
        "flows": {"f": {"source": "src", "target": "dst", "entity": entity, "interval": "1m", **flow}},
    }
    return Engine(resolve(Config(**raw), registry, tmp_path / "apicenterd.toml"), store=None)  # type: ignore[arg-type]


SOURCE_EXTRAS = {"labels": "Outdoor", "coding": "Varor 25%", "brand": "Acme"}


def test_the_sources_own_custom_fields_stay_behind(tmp_path, registry):
    engine = engine_for(tmp_path, registry, {})
    kept = engine._own_custom_fields(engine.resolved.flows["f"], product("A", custom_fields=SOURCE_EXTRAS))
    assert kept.custom_fields == {}


def test_the_ones_a_flow_names_by_option_or_map_rule_go_on(tmp_path, registry):
    flow = {
        "options": {"custom_fields": {"FreeTextField_01": "x"}},
        "map": [{"field": "custom_fields.Brand", "from": "custom_fields.brand"}, {"field": "name", "from": "sku"}],
    }
    engine = engine_for(tmp_path, registry, flow)
    record = product("A", custom_fields={**SOURCE_EXTRAS, "FreeTextField_01": "x", "Brand": "Acme"})
    kept = engine._own_custom_fields(engine.resolved.flows["f"], record)
    assert kept.custom_fields == {"FreeTextField_01": "x", "Brand": "Acme"}


def test_a_map_rule_on_custom_fields_as_a_whole_keeps_them_all(tmp_path, registry):
    engine = engine_for(tmp_path, registry, {"map": [{"field": "custom_fields", "from": "custom_fields"}]})
    record = product("A", custom_fields=SOURCE_EXTRAS)
    assert engine._own_custom_fields(engine.resolved.flows["f"], record).custom_fields == SOURCE_EXTRAS


def test_an_orders_customer_keeps_only_the_custom_fields_a_rule_names(tmp_path, registry):
    from datetime import datetime, timezone
    from decimal import Decimal

    from apicenterd.model import Customer, Order

    engine = engine_for(
        tmp_path,
        registry,
        {"map": [{"field": "customer.custom_fields.Segment", "value": "B2B"}], "target_settings": {"branch_id": "1"}},
        "orders",
    )
    customer = Customer(kind="company", name="Acme", custom_fields={"terms_of_payment": "30 days", "Segment": "B2B"})
    order = Order(number="1", status="new", created_at=datetime(2026, 1, 1, tzinfo=timezone.utc), total=Decimal(1), customer=customer)
    kept = engine._own_custom_fields(engine.resolved.flows["f"], order)
    assert kept.customer.custom_fields == {"Segment": "B2B"}
