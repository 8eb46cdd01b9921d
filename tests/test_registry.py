"""registry: every broken plugin is reported by name and reason and skipped; the others still load."""

from __future__ import annotations

import importlib.metadata
import inspect
import re
import sys
import types
from pathlib import Path

import fakes
import pytest

from apicenterd import Connector, Entity, PluginError, Product, Sink, Source, hookimpl
from apicenterd.plugin import Hookspecs
from apicenterd.registry import ENTRY_POINT_GROUP, load_registry

# --- building fake plugins ------------------------------------------------------------------------


class ProductSource(Source[Product]):
    async def changes(self, since):  # pragma: no cover - never run
        yield


class ProductSink(Sink[Product]):
    async def find(self, key):  # pragma: no cover
        return None

    async def create(self, record):  # pragma: no cover
        return "1"

    async def update(self, target_id, record, fields):  # pragma: no cover
        return None


class HalfSink(Sink[Product]):
    """Leaves create() and update() unimplemented."""

    async def find(self, key):  # pragma: no cover
        return None


def connector(name: str, **attrs) -> type[Connector]:
    """A connector class called ``name`` that reads and writes products unless told otherwise."""
    body = {"name": name, "sources": {Entity.PRODUCTS: ProductSource}, "sinks": {Entity.PRODUCTS: ProductSink}}
    body.update(attrs)
    return type(f"{name.title()}Connector", (Connector,), body)


def plugin(*classes, name: str = "plugin", raises: Exception | None = None, **hooks) -> types.ModuleType:
    """A plugin module registering ``classes`` (then raising ``raises``), plus extra ``hooks``."""
    module = types.ModuleType(name)

    @hookimpl
    def register_connectors(register):
        for cls in classes:
            register(cls)
        if raises is not None:
            raise raises

    module.register_connectors = register_connectors
    for hook_name, function in hooks.items():
        setattr(module, hook_name, hookimpl(function))
    return module


def failures(reg) -> dict[str, str]:
    return dict(reg.failures)


@pytest.fixture(autouse=True)
def no_load_plugins(monkeypatch):
    monkeypatch.delenv("APICENTERD_LOAD_PLUGINS", raising=False)


# --- register_connectors ----------------------------------------------------------------------------


def test_good_plugins_load_with_their_origin():
    reg = load_registry([("fakes", fakes)], entry_points=False)
    assert reg.connectors == {"memsource": fakes.MemorySource, "memtarget": fakes.MemoryTarget}
    assert reg.origins["memsource"].plugin == "fakes"
    assert reg.failures == []
    assert reg.connector("memtarget") is fakes.MemoryTarget


def test_unknown_connector_lists_installed():
    reg = load_registry([("fakes", fakes)], entry_points=False)
    with pytest.raises(PluginError, match=r"no connector named 'nope' \(installed: memsource, memtarget\)"):
        reg.connector("nope")


@pytest.mark.parametrize(
    "bad, reason",
    [
        (object, "is not a subclass of apicenterd.Connector"),
        ("memsource", "is not a subclass of apicenterd.Connector"),
        (connector("Bad-Name"), "must be lower-case letters, digits and _"),
        (connector(""), "must be lower-case letters, digits and _"),
        (connector("nothing", sources={}, sinks={}), "declares no sources and no sinks"),
        (connector("halfsink", sinks={Entity.PRODUCTS: HalfSink}), "does not implement create(), update()"),
        (connector("badkey", sources={"products": ProductSource}), "the key must be an apicenterd.Entity"),
        (connector("wrongtype", sinks={Entity.CUSTOMERS: ProductSink}), "handles Product, but customers are Customer"),
        (connector("notasource", sources={Entity.PRODUCTS: ProductSink}), "must be a subclass of apicenterd.Source"),
        (connector("badsettings", Settings=dict), "Settings must derive from apicenterd.ConnectorSettings"),
    ],
)
def test_invalid_connector_is_reported_and_skipped(bad, reason):
    good = connector("good")
    reg = load_registry([("broken", plugin(bad, good)), ("fakes", fakes)], entry_points=False)
    assert list(failures(reg)) == ["broken"]
    assert reason in failures(reg)["broken"]
    assert set(reg.connectors) == {"good", "memsource", "memtarget"}


def test_read_only_connector_needs_no_write_methods():
    ro = connector("readonly", sinks={})
    reg = load_registry([("ro", plugin(ro))], entry_points=False)
    assert reg.failures == [] and reg.connectors == {"readonly": ro}


def test_register_connectors_raising_skips_the_whole_plugin():
    half = connector("half")
    reg = load_registry(
        [("broken", plugin(half, raises=RuntimeError("vendor SDK missing"))), ("fakes", fakes)], entry_points=False
    )
    assert failures(reg) == {"broken": "register_connectors failed: RuntimeError: vendor SDK missing"}
    assert set(reg.connectors) == {"memsource", "memtarget"}


def test_duplicate_connector_name_keeps_the_first():
    first, second = connector("shop"), connector("shop")
    reg = load_registry([("one", plugin(first)), ("two", plugin(second))], entry_points=False)
    assert reg.connectors["shop"] is first
    assert failures(reg) == {"two": "connector name 'shop' is already registered by plugin 'one'"}


def test_unknown_hook_is_reported_and_the_plugin_skipped():
    typo = plugin(connector("typo"), register_conectors=lambda register: None)
    reg = load_registry([("typo", typo), ("fakes", fakes)], entry_points=False)
    assert list(failures(reg)) == ["typo"]
    assert "unknown hook 'register_conectors'" in failures(reg)["typo"]
    assert set(reg.connectors) == {"memsource", "memtarget"}
    assert not reg.pm.has_plugin("typo")


def test_two_plugins_with_unknown_hooks_are_each_blamed():
    a = plugin(connector("aaa"), name="a", register_a=lambda register: None)
    b = plugin(connector("bbb"), name="b", register_b=lambda register: None)
    reg = load_registry([("a", a), ("b", b), ("fakes", fakes)], entry_points=False)
    assert "'register_a'" in failures(reg)["a"] and "'register_b'" in failures(reg)["b"]
    assert set(reg.connectors) == {"memsource", "memtarget"}


def test_hookimpl_with_wrong_arguments_is_reported():
    module = types.ModuleType("wrongargs")
    module.register_connectors = hookimpl(lambda registr: None)
    reg = load_registry([("wrongargs", module), ("fakes", fakes)], entry_points=False)
    assert list(failures(reg)) == ["wrongargs"] and "registr" in failures(reg)["wrongargs"]
    assert set(reg.connectors) == {"memsource", "memtarget"}


# --- register_transforms ----------------------------------------------------------------------------


def test_register_transforms():
    def upper(value):
        return str(value).upper()

    def lower(value):
        return str(value).lower()

    calls = []

    def register_transforms(register):
        calls.append(register)
        register("upper", upper)
        register("Bad Name", upper)
        register("nocall", "not callable")

    def register_transforms_again(register):
        register("upper", lower)
        register("lower", lower)

    reg = load_registry(
        [
            ("one", plugin(register_transforms=register_transforms)),
            ("two", plugin(register_transforms=register_transforms_again)),
        ],
        entry_points=False,
    )
    assert len(calls) == 1
    assert reg.transforms == {"upper": upper, "lower": lower}
    assert reg.transforms["upper"]("abc") == "ABC"
    assert reg.failures == [
        ("one", "transform 'Bad Name' needs a lower-case name and a callable"),
        ("one", "transform 'nocall' needs a lower-case name and a callable"),
        ("two", "transform 'upper' is already registered"),
    ]


def test_register_transforms_raising_keeps_none_of_that_plugin():
    def register_transforms(register):
        register("half", str)
        raise ValueError("boom")

    reg = load_registry([("bad", plugin(register_transforms=register_transforms))], entry_points=False)
    assert reg.transforms == {}
    assert failures(reg) == {"bad": "register_transforms failed: ValueError: boom"}


# --- entry points -------------------------------------------------------------------------------------


@pytest.fixture
def entry_points(monkeypatch):
    """Replace the installed entry points by fake ones: add(name, module_or_path) → registered."""
    eps: list[importlib.metadata.EntryPoint] = []

    def add(name: str, target: types.ModuleType | str, dist: str = "apicenterd-fake", version: str = "1.2.3"):
        if isinstance(target, types.ModuleType):
            module_name = f"_apicenterd_test_plugin_{name}"
            monkeypatch.setitem(sys.modules, module_name, target)
            target = module_name
        ep = importlib.metadata.EntryPoint(name, target, ENTRY_POINT_GROUP)
        ep._for(types.SimpleNamespace(name=dist, version=version))
        eps.append(ep)

    def fake_entry_points(**params):
        assert params == {"group": ENTRY_POINT_GROUP}
        return [ep for ep in eps if ep.group == params["group"]]

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    return add


def test_entry_points_load_with_distribution(entry_points):
    entry_points("fakes", fakes, dist="apicenterd-memory", version="0.9")
    reg = load_registry()
    assert set(reg.connectors) == {"memsource", "memtarget"}
    origin = reg.origins["memsource"]
    assert (origin.plugin, origin.distribution, origin.version) == ("fakes", "apicenterd-memory", "0.9")


def test_entry_point_that_fails_to_import_is_reported(entry_points):
    entry_points("missing", "apicenterd_no_such_module_xyz", dist="apicenterd-missing")
    entry_points("fakes", fakes)
    reg = load_registry()
    reason = failures(reg)["missing"]
    assert reason.startswith("failed to load from apicenterd-missing: ModuleNotFoundError")
    assert "apicenterd_no_such_module_xyz" in reason
    assert set(reg.connectors) == {"memsource", "memtarget"}


def test_entry_point_with_unknown_hook_is_reported(entry_points):
    entry_points("typo", plugin(connector("typo"), register_conectorz=lambda register: None))
    entry_points("fakes", fakes)
    reg = load_registry()
    assert list(failures(reg)) == ["typo"] and "register_conectorz" in failures(reg)["typo"]
    assert set(reg.connectors) == {"memsource", "memtarget"}


def test_directly_registered_plugin_is_blamed_not_the_next_entry_point(entry_points):
    entry_points("fakes", fakes)
    typo = plugin(connector("typo"), register_x=lambda register: None)
    reg = load_registry([("typo", typo)])
    assert list(failures(reg)) == ["typo"]
    assert set(reg.connectors) == {"memsource", "memtarget"}


def test_entry_points_off(entry_points):
    entry_points("fakes", fakes)
    assert load_registry(entry_points=False).connectors == {}


def test_load_plugins_narrows(entry_points, monkeypatch):
    entry_points("fakes", fakes)
    entry_points("other", plugin(connector("other")))
    entry_points("broken", "apicenterd_no_such_module_xyz")
    monkeypatch.setenv("APICENTERD_LOAD_PLUGINS", " other , ")
    reg = load_registry()
    assert set(reg.connectors) == {"other"} and reg.failures == []
    monkeypatch.setenv("APICENTERD_LOAD_PLUGINS", "fakes,other")
    assert set(load_registry().connectors) == {"memsource", "memtarget", "other"}
    monkeypatch.setenv("APICENTERD_LOAD_PLUGINS", "")
    assert load_registry().connectors == {}


def test_directly_registered_module_wins_over_entry_point_of_same_name(entry_points):
    entry_points("fakes", plugin(connector("other")))
    reg = load_registry([("fakes", fakes)])
    assert set(reg.connectors) == {"memsource", "memtarget"} and reg.failures == []


# --- every hook has a test (datasette style) --------------------------------------------------------


def test_every_hookspec_has_a_test():
    hooks = [name for name, _ in inspect.getmembers(Hookspecs, inspect.isfunction) if not name.startswith("_")]
    assert hooks, "no hookspecs found"
    sources = "\n".join(p.read_text(encoding="utf-8") for p in Path(__file__).parent.glob("test_*.py"))
    untested = [h for h in hooks if not re.search(rf"def test_\w*{h}\w*\(", sources)]
    assert untested == [], f"hooks without a test named after them: {untested}"
