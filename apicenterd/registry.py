"""Plugin discovery: load connector plugins from entry points, validate them, report failures."""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import os
import re
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pluggy

from .errors import PluginError
from .model import RECORD_TYPES, Entity
from .plugin import DOCUMENT_TYPES, PROJECT, Connector, ConnectorSettings, DocumentSink, Hookspecs, Sink, Source, abstract_methods

__all__ = ["ENTRY_POINT_GROUP", "PluginInfo", "Registry", "load_registry"]

ENTRY_POINT_GROUP = "apicenterd.connectors"
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclasses.dataclass(frozen=True)
class PluginInfo:
    """Where a connector came from."""

    plugin: str
    distribution: str
    version: str


@dataclasses.dataclass
class Registry:
    """The loaded connectors and transforms, and the plugins that failed with their reasons."""

    pm: pluggy.PluginManager
    connectors: dict[str, type[Connector]] = dataclasses.field(default_factory=dict)
    origins: dict[str, PluginInfo] = dataclasses.field(default_factory=dict)
    transforms: dict[str, Callable[..., Any]] = dataclasses.field(default_factory=dict)
    failures: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def connector(self, name: str) -> type[Connector]:
        """The connector class called ``name``; PluginError listing the known ones if none."""
        try:
            return self.connectors[name]
        except KeyError:
            known = ", ".join(sorted(self.connectors)) or "none"
            raise PluginError(f"no connector named {name!r} (installed: {known})") from None


def validate_connector(cls: Any) -> None:
    """Raise PluginError saying what is wrong with a registered connector class."""
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise PluginError(f"{cls!r} is not a subclass of apicenterd.Connector")
    if not isinstance(cls.name, str) or not NAME_RE.match(cls.name):
        raise PluginError(f"{cls.__qualname__}.name {cls.name!r} must be lower-case letters, digits and _")
    if not (isinstance(cls.Settings, type) and issubclass(cls.Settings, ConnectorSettings)):
        raise PluginError(f"{cls.__qualname__}.Settings must derive from apicenterd.ConnectorSettings")
    if not cls.sources and not cls.sinks:
        raise PluginError(f"{cls.__qualname__} declares no sources and no sinks: it can neither read nor write anything")
    for kind, table in (("sources", cls.sources), ("sinks", cls.sinks)):
        if not isinstance(table, Mapping):
            raise PluginError(f"{cls.__qualname__}.{kind} must map apicenterd.Entity to classes, got {table!r}")
        for entity, part in table.items():
            _validate_part(cls, kind, entity, part)


def _validate_part(cls: type[Connector], kind: str, entity: Any, part: Any) -> None:
    """Raise PluginError naming what is wrong with one declared source or sink."""
    where = f"{cls.__qualname__}.{kind}[{entity!r}]"
    if not isinstance(entity, Entity):
        raise PluginError(f"{where}: the key must be an apicenterd.Entity")
    documents = entity in (Entity.ORDERS, Entity.INVOICES)
    if kind == "sources":
        base: type = Source
    else:
        base = DocumentSink if documents else Sink
    if not (isinstance(part, type) and issubclass(part, base)):
        raise PluginError(f"{where} must be a subclass of apicenterd.{base.__name__}, got {part!r}")
    missing = abstract_methods(part)
    if missing:
        raise PluginError(f"{where}: {part.__qualname__} does not implement {', '.join(m + '()' for m in missing)}")
    declared = _record_type(part, base)
    if declared is not None and declared is not typing.Any and declared is not RECORD_TYPES[entity] and isinstance(declared, type):
        raise PluginError(
            f"{where}: {part.__qualname__} handles {declared.__name__}, but {entity} are {RECORD_TYPES[entity].__name__}"
        )
    if issubclass(part, DocumentSink):
        bad = sorted(set(part.documents) - set(DOCUMENT_TYPES))
        if bad:
            raise PluginError(f"{where}: unknown document types {bad} (known: quote, order, invoice_draft, invoice)")


def _record_type(part: type, base: type) -> Any:
    """The record type a source or sink class names in its generic base (``Sink[Product]``), if any."""
    for klass in part.__mro__:
        for orig in getattr(klass, "__orig_bases__", ()):
            if typing.get_origin(orig) is base:
                args = typing.get_args(orig)
                return args[0] if args and not isinstance(args[0], typing.TypeVar) else None
    return None


def _identity(obj: object) -> object:
    return obj


def _plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(Hookspecs)
    return pm


def load_registry(
    modules: Iterable[tuple[str, object]] | None = None,
    *,
    entry_points: bool = True,
) -> Registry:
    """Load plugins and collect their connectors.

    ``modules`` are ``(name, module_or_object)`` pairs registered directly (tests do
    this). Entry points of group ``apicenterd.connectors`` load unless
    ``entry_points`` is false; the environment variable ``APICENTERD_LOAD_PLUGINS``
    (comma-separated entry point names) narrows which.
    """
    pm = _plugin_manager()
    reg = Registry(pm)
    dist_of: dict[str, PluginInfo] = {}

    def add(name: str, load: Callable[[], object], info: PluginInfo, how: str) -> None:
        # one broken plugin never stops the others. Every plugin before this one passed
        # check_pending or was unregistered, so an unknown hook found now is this one's.
        try:
            obj = load()
            pm.register(obj, name=name)
            pm.check_pending()
        except Exception as exc:  # noqa: BLE001 - a broken plugin is reported and skipped; the others load
            if pm.has_plugin(name):
                pm.unregister(name=name)
            reg.failures.append((name, f"{how}{type(exc).__name__}: {exc}"))
            return
        dist_of[name] = info

    for name, obj in modules or ():
        add(name, functools.partial(_identity, obj), PluginInfo(name, "(registered)", ""), "")

    if entry_points:
        wanted = os.environ.get("APICENTERD_LOAD_PLUGINS")
        allow = {n.strip() for n in wanted.split(",") if n.strip()} if wanted is not None else None
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if allow is not None and ep.name not in allow:
                continue
            if pm.has_plugin(ep.name) or any(name == ep.name for name, _ in reg.failures):
                continue
            dist = ep.dist.name if ep.dist else "?"
            version = ep.dist.version if ep.dist else "?"
            add(ep.name, ep.load, PluginInfo(ep.name, dist, version), f"failed to load from {dist}: ")

    for impl in pm.hook.register_connectors.get_hookimpls():
        plugin_name = impl.plugin_name

        def register(cls: Any, _plugin: str = plugin_name) -> None:
            try:
                validate_connector(cls)
            except PluginError as exc:
                reg.failures.append((_plugin, str(exc)))
                return
            if cls.name in reg.connectors and reg.connectors[cls.name] is not cls:
                other = reg.origins[cls.name].plugin
                reg.failures.append((_plugin, f"connector name {cls.name!r} is already registered by plugin {other!r}"))
                return
            reg.connectors[cls.name] = cls
            reg.origins[cls.name] = dist_of.get(_plugin, PluginInfo(_plugin, "?", "?"))

        kept = dict(reg.connectors), dict(reg.origins)
        try:
            impl.function(register=register)
        except Exception as exc:  # noqa: BLE001 - a half-registered plugin is skipped whole
            reg.connectors, reg.origins = kept
            reg.failures.append((plugin_name, f"register_connectors failed: {type(exc).__name__}: {exc}"))

    for impl in pm.hook.register_transforms.get_hookimpls():
        plugin_name = impl.plugin_name

        def register_transform(name: str, function: Callable[..., Any], _plugin: str = plugin_name) -> None:
            if not isinstance(name, str) or not NAME_RE.match(name) or not callable(function):
                reg.failures.append((_plugin, f"transform {name!r} needs a lower-case name and a callable"))
                return
            if name in reg.transforms:
                reg.failures.append((_plugin, f"transform {name!r} is already registered"))
                return
            reg.transforms[name] = function

        kept_transforms = dict(reg.transforms)
        try:
            impl.function(register=register_transform)
        except Exception as exc:  # noqa: BLE001 - a plugin whose transforms fail to register is skipped
            reg.transforms = kept_transforms
            reg.failures.append((plugin_name, f"register_transforms failed: {type(exc).__name__}: {exc}"))
    return reg
