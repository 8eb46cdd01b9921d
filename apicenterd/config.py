"""The configuration: one TOML file, ``APICENTERD_*`` environment overrides, secrets by reference.

Loading happens in two steps. :func:`read_config` parses TOML and environment into
:class:`Config` (shape errors). :func:`resolve` then checks what needs the plugins —
connectors exist, their settings validate, flows name defined connections whose
connectors read and write that entity — and resolves secret references. Every
mistake is collected and raised together as :class:`~apicenterd.errors.ConfigError`,
each as ``path: message``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError
from pydantic_settings.sources import InitSettingsSource

from .errors import ConfigError, PluginError
from .filters import Filter
from .flows import OPTIONS, FlowOptions
from .mapping import Mapper, MapRule
from .model import RECORD_TYPES, Entity
from .observe.alerts import AlertsConfig
from .observe.logs import redactor
from .plugin import Connector, ConnectorSettings
from .registry import Registry
from .schedule import Schedule
from .validation import SettingsModel

__all__ = [
    "DaemonConfig",
    "StateConfig",
    "ConnectionConfig",
    "FlowConfig",
    "Config",
    "Connection",
    "Flow",
    "Resolved",
    "read_config",
    "resolve",
    "load",
]


class DaemonConfig(SettingsModel):
    """The ``[daemon]`` table."""

    model_config = ConfigDict(extra="forbid")

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    metrics_address: str | None = Field(default="127.0.0.1:9464", description='host:port for /metrics; "" turns it off')
    shutdown_timeout: float = Field(default=30.0, gt=0)
    circuit_failure_threshold: int = Field(default=5, ge=1)
    """Consecutive failed calls (5xx, timeouts, connection errors) that open a connection's circuit."""
    circuit_recovery_seconds: float = Field(default=30.0, gt=0)
    """How long an open circuit refuses calls before one probe call may go."""
    stall_timeout: float = Field(default=600.0, gt=0)
    """Seconds a flow may go without progress (see Engine.stalled) before the daemon stops
    pinging the systemd watchdog, so that systemd restarts it."""

    @field_validator("metrics_address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if not value:
            return None
        _host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError(f"{value!r} is not host:port (e.g. 127.0.0.1:9464)")
        return value


class StateConfig(SettingsModel):
    """The ``[state]`` table: where cursors, links, tokens, runs and the audit trail live."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["sqlite"] = "sqlite"
    path: Path = Path("apicenterd.db")
    audit_retention_days: int = Field(default=90, ge=1)
    """Days the per-record audit trail (which holds record keys such as e-mail addresses) is kept."""
    dead_letter_retention_days: int = Field(default=30, ge=1)
    """Days a dead letter keeps its record (personal data included) after its last failure. Then a
    resolved or discarded one is deleted; an open one keeps its row (flow, source id, error, attempts,
    dates) without the record: it can be listed and discarded, not replayed."""
    dead_letter_warning_days: int = Field(default=3, ge=0)
    """Days before open dead letters lose their record that an alert says how many per flow (once)."""
    runs_retention_days: int = Field(default=90, ge=1)
    """Days the run history is kept after a run finished (a running run is never deleted)."""
    file_check_seconds: float = Field(default=10.0, gt=0)
    """How often the daemon checks that its state file is still there (deleted or replaced: it stops)."""
    token_key: str | dict[str, str] | None = None
    """Encrypts the stored OAuth tokens: a secret of 16+ characters, best by reference
    (``{ credential = "token_key" }``, ``{ file = "..." }``, ``{ env = "..." }``). Unset: plaintext."""


class ConnectionConfig(BaseModel):
    """A ``[connections.NAME]`` table: ``connector`` plus that connector's own settings."""

    model_config = ConfigDict(extra="allow")

    connector: str


class FlowConfig(SettingsModel):
    """A ``[flows.NAME]`` table."""

    model_config = ConfigDict(extra="forbid")

    source: str
    target: str
    entity: Entity
    interval: str | int | float | None = None
    cron: str | None = None
    enabled: bool = True
    create_only_fields: list[str] = Field(default_factory=list)
    filters: list[Filter] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict)
    map: list[MapRule] = Field(default_factory=list)
    target_settings: dict[str, Any] = Field(default_factory=dict)

    @field_validator("interval", mode="before")
    @classmethod
    def _interval_type(cls, value: Any) -> Any:
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (str, int, float)) or (isinstance(value, float) and not math.isfinite(value))
        ):
            got = f"the boolean {str(value).lower()}" if isinstance(value, bool) else f"{value!r:.40}"
            raise ValueError(f"must be a duration like \"30s\" or \"5m\", or a number of seconds; got {got}")
        return value


class _EnvOverrides(PydanticBaseSettingsSource):
    """The ``APICENTERD_*`` environment, with connection and flow names matched to the file's.

    Environment names are case-insensitive (``APICENTERD_CONNECTIONS__SALESPOS__BASE_URL``),
    so they arrive lower-cased; a table the file calls ``SalesPOS`` must still be the one
    overridden, not a second connection ``salespos``.
    """

    def __init__(self, env: PydanticBaseSettingsSource, file: PydanticBaseSettingsSource):
        super().__init__(env.settings_cls)
        self._env = env
        self._file = file

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # pragma: no cover - __call__ does the work

    def __call__(self) -> dict[str, Any]:
        data = self._env()
        file = self._file.init_kwargs if isinstance(self._file, InitSettingsSource) else {}
        for table in ("connections", "flows"):
            env, known = data.get(table), file.get(table)
            if isinstance(env, dict) and isinstance(known, dict):
                by_lower = {str(k).lower(): k for k in known}
                data[table] = {by_lower.get(str(k).lower(), k): v for k, v in env.items()}
        return data


class Config(BaseSettings):
    """The whole file. Environment variables ``APICENTERD_<SECTION>__<KEY>`` override it."""

    model_config = SettingsConfigDict(
        env_prefix="APICENTERD_", env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    daemon: DaemonConfig = DaemonConfig()
    state: StateConfig = StateConfig()
    alerts: AlertsConfig = AlertsConfig()
    connections: dict[str, ConnectionConfig] = Field(default_factory=dict)
    flows: dict[str, FlowConfig] = Field(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # environment first: it overrides the file, which arrives as init arguments
        return (_EnvOverrides(env_settings, init_settings), init_settings)


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

    @property
    def state_path(self) -> Path:
        """The state database, relative paths taken from the config file's folder."""
        path = self.config.state.path
        return path if path.is_absolute() else (self.path.parent / path).resolve()


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


def _resolve_secret(value: Any, where: str) -> Any:
    """Replace ``{env=...}``, ``{file=...}`` or ``{credential=...}`` by the secret it names."""
    if not (isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("env", "file", "credential")):
        return value
    kind, ref = next(iter(value.items()))
    if not isinstance(ref, str) or not ref:
        raise ValueError(f"{where}: {kind} reference must be a non-empty string")
    if kind == "env":
        if ref not in os.environ:
            raise ValueError(f"{where}: environment variable {ref} is not set")
        if not os.environ[ref].strip():
            raise ValueError(f"{where}: environment variable {ref} is empty")
        return os.environ[ref]
    if kind == "credential":
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise ValueError(
                f"{where}: credential {ref!r} needs $CREDENTIALS_DIRECTORY (set by systemd LoadCredential=)"
            )
        file = Path(directory) / ref
    else:
        file = Path(ref)
    return _read_secret_file(file, where)


MAX_SECRET_BYTES = 64 * 1024
"""A secret file larger than this is refused: a key or token is a few hundred bytes, a bigger
file is the wrong file (a log, a database, /dev/zero through a symbolic link)."""


def _read_secret_file(file: Path, where: str) -> str:
    """The stripped text of a secret file; ValueError unless it is a readable, non-empty, small
    regular file of UTF-8 text. A FIFO, directory or device is refused before it is opened and
    the file is opened non-blocking, so a reader never waits for a writer that never comes."""
    try:
        if not stat.S_ISREG(os.stat(file).st_mode):
            raise ValueError(f"{where}: secret file {file} is not a regular file ({_file_kind(file)})")
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):  # replaced between the two looks
                raise ValueError(f"{where}: secret file {file} is not a regular file")
            data = handle.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"{where}: cannot read secret file {file}: {exc.strerror or exc}") from None
    if len(data) > MAX_SECRET_BYTES:
        raise ValueError(f"{where}: secret file {file} is larger than {MAX_SECRET_BYTES} bytes; is it the right file?")
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError(f"{where}: secret file {file} is not UTF-8 text") from None
    if not text:
        raise ValueError(f"{where}: secret file {file} is empty")
    return text


def _file_kind(file: Path) -> str:
    mode = os.stat(file).st_mode
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):  # fmt: skip
        if test(mode):
            return kind
    return "not a file"


def _settings_with_secrets(
    cfg: ConnectionConfig, where: str, problems: list[str], secrets: set[str]
) -> dict[str, Any]:
    settings = {}
    for key, value in (cfg.model_extra or {}).items():
        try:
            settings[key] = _resolve_secret(value, f"{where}.{key}")
        except ValueError as exc:
            problems.append(str(exc))
            settings[key] = "<unresolved secret>"  # reported once; keep checking the other settings
            continue
        if settings[key] is not value and isinstance(settings[key], str):
            secrets.add(settings[key])  # given by reference: a secret, whatever the field's type
    return settings


_SECRET_NAME_PARTS = ("token", "secret", "password", "private_key", "api_key", "apikey")
"""A plain ``str`` setting whose name contains one of these is a secret too (a static API token
a plugin forgot to declare as ``SecretStr``)."""


def _secret_values(settings: BaseModel) -> set[str]:
    """Every secret in a connection's settings: ``SecretStr`` fields, and ``str`` fields named like a secret."""
    found = set()
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            found.add(value.get_secret_value())
        elif isinstance(value, str) and any(part in name.lower() for part in _SECRET_NAME_PARTS):
            found.add(value)
    return found


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
            )
    token_key = _token_key(config.state, problems, secrets)
    if problems:
        raise ConfigError(problems)
    redactor.add(secrets)
    return Resolved(
        path=path, config=config, connections=connections, flows=flows, secrets=frozenset(secrets), token_key=token_key
    )


def _token_key(state: StateConfig, problems: list[str], secrets: set[str]) -> str | None:
    """``[state] token_key`` resolved and checked (a secret however it is given)."""
    from .tokencrypt import TokenCipher

    if state.token_key is None:
        return None
    try:
        key = _resolve_secret(state.token_key, "state.token_key")
        if not isinstance(key, str):
            raise ValueError("state.token_key: give a secret string, or { credential = ... }, { file = ... } or { env = ... }")
        secrets.add(key)
        TokenCipher(key)
    except ValueError as exc:
        message = str(exc)
        problems.append(message if message.startswith("state.token_key") else f"state.token_key: {message}")
        return None
    return key


def load(path: str | os.PathLike[str], registry: Registry) -> Resolved:
    """Read and resolve the configuration at ``path``."""
    config = read_config(path)
    return resolve(config, registry, Path(path).resolve())
