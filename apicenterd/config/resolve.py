"""Reading and resolving the configuration: TOML and environment into :class:`Config`, then checked against
the installed connectors into a :class:`Resolved` ready to run."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import SettingsError

from ..errors import ConfigError, PluginError
from ..filters import Filter
from ..flows import OPTIONS, FlowOptions
from ..mapping import Mapper, MapRule
from ..model import RECORD_TYPES, Entity
from ..observe.logs import redactor
from ..plugin import Connector, ConnectorSettings
from ..registry import Registry
from ..schedule import Schedule
from .schema import Config
from .secrets import _admin_token, _secret_values, _settings_with_secrets, _token_key


@dataclasses.dataclass(frozen=True)
class Connection:
    """A resolved connection: its connector class and validated settings."""

    name: str
    connector: type[Connector]
    settings: ConnectorSettings


@dataclasses.dataclass(frozen=True)
class Flow:
    """A resolved flow."""

    name: str
    source: str
    target: str
    entity: Entity
    schedule: Schedule
    enabled: bool
    create_only_fields: frozenset[str]
    filters: tuple[Filter, ...]
    options: FlowOptions
    read_entity: Entity | None = None
    mapper: Mapper | None = None
    rules: tuple[MapRule, ...] = ()
    target_settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    priority: int = 0
    """Its share of a connection's day budget: higher goes first (see apicenterd.budget)."""


@dataclasses.dataclass(frozen=True)
class Resolved:
    """A configuration that passed every check, ready to run."""

    path: Path
    config: Config
    connections: dict[str, Connection]
    flows: dict[str, Flow]
    secrets: frozenset[str]
    token_key: str | None = None
    """``[state] token_key`` resolved: the secret the stored tokens are encrypted with (None: plaintext)."""
    admin_token: str | None = None
    """``[admin] token`` resolved: the admin API's bearer token (None: no admin server)."""

    @property
    def state_path(self) -> Path:
        """The state database, relative paths taken from the config file's folder."""
        path = self.config.state.path
        return path if path.is_absolute() else (self.path.parent / path).resolve()

    @property
    def state_where(self) -> str:
        """Where the state is, for messages: the PostgreSQL URL (password left out) or the SQLite file."""
        if self.config.state.url:
            from ..state.postgres import redact_url

            return redact_url(self.config.state.url)
        return str(self.state_path)


def _loc(loc: tuple[Any, ...]) -> str:
    """``("flows", "f", "filters", 0, "op")`` as ``flows.f.filters[0].op``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _problems(exc: ValidationError, prefix: str = "") -> list[str]:
    out = []
    for err in exc.errors(include_url=False):
        where = _loc(err["loc"])
        where = f"{prefix}.{where}" if prefix and where else (prefix or where)
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown setting"
        elif err["type"] == "missing":
            message = "required setting is missing"
        out.append(f"{where}: {message}")
    return out


def read_config(path: str | os.PathLike[str]) -> Config:
    """Parse the TOML file at ``path`` with environment overrides; ConfigError on any mistake."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from None
    except MemoryError:
        raise ConfigError([f"{path}: cannot read: too large for memory"]) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    except RecursionError:  # arrays or inline tables nested hundreds deep
        raise ConfigError([f"{path}: not valid TOML: arrays or tables nested too deeply"]) from None
    except MemoryError:
        raise ConfigError([f"{path}: not valid TOML: too large to parse"]) from None
    except Exception as exc:  # noqa: BLE001 - whatever else the parser trips on is the file's fault, said so
        raise ConfigError([f"{path}: not valid TOML: {type(exc).__name__}: {exc}"]) from None
    private = sorted(k for k in raw if k.startswith("_"))
    if private:  # Config(**raw) would take them as pydantic-settings arguments (_env_file, _secrets_dir, ...)
        raise ConfigError([f"{key}: unknown setting" for key in private])
    try:
        return Config(**raw)
    except ValidationError as exc:
        raise ConfigError(_problems(exc)) from None
    except SettingsError as exc:  # an APICENTERD_* variable that does not parse (e.g. bad JSON)
        raise ConfigError([f"environment: {exc}"]) from None
    except (RecursionError, MemoryError) as exc:
        raise ConfigError([f"{path}: cannot be checked: {type(exc).__name__} (values nested too deeply or too large)"]) from None


def resolve(config: Config, registry: Registry, path: Path) -> Resolved:
    """Check ``config`` against the installed connectors; ConfigError listing every mistake."""
    problems: list[str] = []
    connections: dict[str, Connection] = {}
    secrets: set[str] = set()
    for name, cfg in config.connections.items():
        where = f"connections.{name}"
        try:
            cls = registry.connector(cfg.connector)
        except PluginError as exc:
            problems.append(f"{where}.connector: {exc}")
            continue
        raw = _settings_with_secrets(cfg, where, problems, secrets)
        try:
            settings = cls.Settings.model_validate(raw)
        except ValidationError as exc:
            problems.extend(_problems(exc, where))
            continue
        secrets |= _secret_values(settings)
        connections[name] = Connection(name, cls, settings)

    defined = ", ".join(sorted(config.connections)) or "none"
    flows: dict[str, Flow] = {}
    for name, fc in config.flows.items():
        where = f"flows.{name}"
        before = len(problems)
        ends: dict[str, type[Connector] | None] = {}
        for end in ("source", "target"):
            conn = getattr(fc, end)
            if conn not in config.connections:
                problems.append(f'{where}.{end}: connection "{conn}" is not defined (defined: {defined})')
                ends[end] = None
            else:
                ends[end] = connections[conn].connector if conn in connections else None
        read_entity = fc.entity
        if fc.entity is Entity.INVOICES and fc.options.get("source_entity") in ("orders", "invoices"):
            read_entity = Entity(fc.options["source_entity"])
        if ends["source"] is not None and read_entity not in ends["source"].reads:
            can = ", ".join(sorted(map(str, ends["source"].reads))) or "nothing"
            problems.append(
                f'{where}.{"entity" if read_entity is fc.entity else "options.source_entity"}: connector '
                f'"{ends["source"].name}" (connection "{fc.source}") cannot read {read_entity} (it reads: {can})'
            )
        if ends["target"] is not None and fc.entity not in ends["target"].writes:
            can = ", ".join(sorted(map(str, ends["target"].writes))) or "nothing"
            problems.append(
                f'{where}.entity: connector "{ends["target"].name}" (connection "{fc.target}") cannot write '
                f"{fc.entity} (it writes: {can})"
            )
        if fc.source == fc.target:
            problems.append(f"{where}.target: source and target are the same connection {fc.source!r}")
        schedule: Schedule | None = None
        try:
            schedule = Schedule.parse(fc.interval, fc.cron)
        except ValueError as exc:
            problems.append(f"{where}.{'cron' if fc.cron is not None else 'interval'}: {exc}")
        fields = RECORD_TYPES[fc.entity].model_fields
        for i, field in enumerate(fc.create_only_fields):
            if field not in fields:
                problems.append(
                    f"{where}.create_only_fields[{i}]: {fc.entity} have no field {field!r} "
                    f"(fields: {', '.join(fields)})"
                )
        for i, flt in enumerate(fc.filters):
            top = flt.field.split(".")[0]
            if top not in fields:
                problems.append(f"{where}.filters[{i}].field: {fc.entity} have no field {top!r}")
        options_model = OPTIONS.get(fc.entity, FlowOptions)
        try:
            options = options_model.model_validate(fc.options)
        except ValidationError as exc:
            problems.extend(_problems(exc, f"{where}.options"))
            options = None
        target_cls = ends["target"]
        document = getattr(options, "document", None)
        if target_cls is not None and document is not None and document not in target_cls.documents:
            can = ", ".join(sorted(target_cls.documents)) or "none"
            problems.append(
                f'{where}.options.document: connector "{target_cls.name}" (connection "{fc.target}") cannot create '
                f"{document!r} (it creates: {can})"
            )
        target_settings: dict[str, Any] = {}
        if target_cls is not None:
            settings_model = target_cls.flow_settings.get(fc.entity)
            if settings_model is None:
                if fc.target_settings:
                    problems.append(f'{where}.target_settings: connector "{target_cls.name}" takes no target settings for {fc.entity}')
            else:
                try:
                    target_settings = settings_model.model_validate(fc.target_settings).model_dump()
                except ValidationError as exc:
                    problems.extend(_problems(exc, f"{where}.target_settings"))
        mapper = Mapper(name, RECORD_TYPES[fc.entity], fc.map, registry.transforms) if fc.map else None
        if mapper is not None:
            problems.extend(f"{where}.map{p}" for p in mapper.problems())
        if len(problems) == before:
            assert schedule is not None and options is not None  # no problems: both were parsed
            flows[name] = Flow(
                name=name,
                source=fc.source,
                target=fc.target,
                entity=fc.entity,
                schedule=schedule,
                enabled=fc.enabled,
                create_only_fields=frozenset(fc.create_only_fields),
                filters=tuple(fc.filters),
                options=options,
                read_entity=read_entity,
                mapper=mapper,
                rules=tuple(fc.map),
                target_settings=target_settings,
                priority=fc.priority,
            )
    token_key = _token_key(config.state, problems, secrets)
    admin_token = _admin_token(config.admin, problems, secrets)
    if problems:
        raise ConfigError(problems)
    redactor.add(secrets)
    return Resolved(
        path=path, config=config, connections=connections, flows=flows, secrets=frozenset(secrets), token_key=token_key,
        admin_token=admin_token,
    )


def load(path: str | os.PathLike[str], registry: Registry) -> Resolved:
    """Read and resolve the configuration at ``path``."""
    config = read_config(path)
    return resolve(config, registry, Path(path).resolve())
