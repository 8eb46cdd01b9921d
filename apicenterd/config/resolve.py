"""Reading and resolving the configuration: TOML and environment into :class:`Config`, then checked against
the installed connectors into a :class:`Resolved` ready to run."""

from __future__ import annotations

import copy
import dataclasses
import os
import re
import tomllib
from collections.abc import Collection, Mapping
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
from .schema import ENVIRONMENT, Config, ConnectionConfig, environment_overrides
from .secrets import (
    SECRET_FORMS,
    UNREAD_SECRET,
    UNRESOLVED,
    _admin_token,
    _is_reference,
    _secret_values,
    _settings_with_secrets,
    _token_key,
)


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
    writes_in_flight: int | None = None
    """Records of one batch taken to the target at once, as configured (None: the connection's or the default)."""


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


def _problems(exc: ValidationError | list[Any], prefix: str = "", *, skip_input: str | None = None) -> list[str]:
    out = []
    for err in exc if isinstance(exc, list) else exc.errors(include_url=False):
        if skip_input is not None and err.get("input") == skip_input:
            continue
        where = _loc(err["loc"])
        where = f"{prefix}.{where}" if prefix and where else (prefix or where)
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown setting"
        elif err["type"] == "missing":
            message = "required setting is missing"
        elif err["type"] in ("string_type", "url_type") and isinstance(err.get("input"), dict):
            given = ", ".join(f"{k} = ..." for k in list(err["input"])[:3])
            message = f"expected a string, or a secret by reference: {SECRET_FORMS}; got {{ {given} }}"
        out.append(f"{where}: {message}")
    return out


_PART = re.compile(r"\[(\d+)\]|\.?([^.\[]+)")


def _path_of(problem: str) -> list[str | int]:
    """The setting a problem names (``flows.f.filters[0].op: ...``) as its parts."""
    where = problem.split(": ", 1)[0]
    return [int(m.group(1)) if m.group(1) is not None else m.group(2) for m in _PART.finditer(where)]


def _env_variable(parts: list[str | int], env: Mapping[str, Any]) -> str | None:
    """The ``APICENTERD_*`` variable that set the setting at ``parts`` (or a value holding it), if one did."""
    node: Any = env
    depth = 0
    for part in parts:
        if not isinstance(node, dict) or not isinstance(part, str):
            break
        key = next((k for k in node if str(k).lower() == part.lower()), None)
        if key is None:
            return None
        node, depth = node[key], depth + 1
        if not isinstance(node, dict):
            break
    if isinstance(node, dict) or depth == 0:  # a table only partly from the environment: the file's
        return None
    wanted = ("APICENTERD_" + "__".join(str(p) for p in parts[:depth])).upper()
    return next((name for name in os.environ if name.upper() == wanted), wanted)


def _blame_environment(problems: list[str], env: Mapping[str, Any]) -> list[str]:
    """Each problem whose setting came from an ``APICENTERD_*`` variable, said of that variable (not the file)."""
    out = []
    for problem in problems:
        variable = _env_variable(_path_of(problem), env) if env else None
        out.append(f"environment {variable}: {problem}" if variable else problem)
    return out


def _prune(raw: dict[str, Any], env: dict[str, Any], loc: tuple[Any, ...]) -> bool:
    """Take out of ``raw`` and ``env`` the deepest table key on ``loc`` (a whole list, not one of its items), so
    that a configuration read again without it shows its other mistakes. False if neither held anything there."""
    removed = False
    for data in (raw, env):
        node: Any = data
        holder: tuple[dict[str, Any], str] | None = None
        for part in loc:
            if not isinstance(node, dict) or not isinstance(part, str):
                break
            key = next((k for k in node if str(k).lower() == part.lower()), None) if data is env else (part if part in node else None)
            if key is None:
                break
            holder, node = (node, key), node[key]
        if holder is not None:
            del holder[0][holder[1]]
            removed = True
    return removed


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
    config, problems, _broken = _parse(raw)
    if problems:
        raise ConfigError(problems)
    assert config is not None
    return config


MAX_ROUNDS = 20
"""Times a configuration with mistakes is read again without the settings found wrong."""


def _parse(raw: dict[str, Any]) -> tuple[Config | None, list[str], set[tuple[str, str]]]:
    """``raw`` (the file) with the environment as :class:`Config`: with every mistake found, each said of
    where it is (the file, or the ``APICENTERD_*`` variable). A mistake does not hide the others: the
    settings found wrong are taken out and the rest read again, so the Config returned (None if even
    that fails) holds what was right, for :func:`resolve` to check further. The third value: the
    connections and flows found wrong (``("flows", NAME)``): resolve leaves them be, so that what
    taking a setting out did to them is not said as another mistake."""
    problems = [f"{key}: unknown setting" for key in sorted(k for k in raw if k.startswith("_"))]
    raw = {k: v for k, v in raw.items() if not k.startswith("_")}  # Config(**raw) would take them as its own arguments
    try:
        env = environment_overrides()
    except SettingsError as exc:  # an APICENTERD_* variable that does not parse (e.g. bad JSON)
        return None, [*problems, f"environment: {exc}"], set()
    raw, env = copy.deepcopy(raw), copy.deepcopy(env)
    broken: set[tuple[str, str]] = set()
    taken_out: set[tuple[str, ...]] = set()
    for _round in range(MAX_ROUNDS):
        token = ENVIRONMENT.set(env)
        try:
            config = Config(**raw)
        except ValidationError as exc:
            pruned = False
            tainted = {key[:-1] for key in taken_out if len(key) > 1}  # tables a setting was taken out of
            for err in exc.errors(include_url=False):
                loc = err["loc"]
                table = next((t for t in tainted if _key(loc)[: len(t)] == t), None)
                if table is not None:
                    # what taking a wrong setting out did to its table (a required one missing, "interval or
                    # cron"): the mistake was said; the table goes
                    loc = loc[: len(table)]
                else:
                    problems += _blame_environment(_problems_of([err]), env)
                if err["type"] != "extra_forbidden":  # an unknown setting taken out changes nothing else
                    if len(loc) >= 2 and loc[0] in ("connections", "flows"):
                        broken.add((str(loc[0]), str(loc[1])))
                    taken_out.add(_key(loc))
                pruned |= _prune(raw, env, loc)
            if not pruned:
                return None, problems, broken
            continue
        except SettingsError as exc:
            return None, [*problems, f"environment: {exc}"], broken
        except (RecursionError, MemoryError) as exc:
            return None, [*problems, f"cannot be checked: {type(exc).__name__} (values nested too deeply or too large)"], broken
        finally:
            ENVIRONMENT.reset(token)
        return config, problems, broken
    return None, problems, broken


def _key(loc: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple(str(part).lower() for part in loc)


def _problems_of(errors: list[Any]) -> list[str]:
    """:func:`_problems` of some of a ValidationError's errors."""
    return _problems(errors)


def resolve(
    config: Config,
    registry: Registry,
    path: Path,
    *,
    secrets_of: bool | Collection[str] = True,
    leave_out: Collection[str] = (),
    broken: Collection[tuple[str, str]] = (),
) -> Resolved:
    """Check ``config`` against the installed connectors; ConfigError listing every mistake.
    ``broken``: connections and flows (``("flows", NAME)``) already reported wrong: not checked again.

    ``secrets_of``: which connections' secrets are resolved (and settings fully checked): every one
    (True, the daemon and ``check``), none (False: the read-only commands, which touch no vendor and
    so need none of the secrets systemd hands to the daemon alone), or the named ones (a command that
    acts on one flow or connection). A connection left out keeps its references unread and its
    settings unchecked. ``leave_out``: settings not read for the resolved connections (``auth`` does
    not read the ``refresh_token`` it is there to produce). ``[state] token_key`` is resolved unless
    ``secrets_of`` is False; ``[admin] token`` only when it is True."""
    problems: list[str] = []
    connections: dict[str, Connection] = {}
    secrets: set[str] = set()
    for name, cfg in config.connections.items():
        where = f"connections.{name}"
        if ("connections", name) in broken:
            continue
        try:
            cls = registry.connector(cfg.connector)
        except PluginError as exc:
            problems.append(f"{where}.connector: {exc}")
            continue
        if secrets_of is True or (secrets_of is not False and name in secrets_of):
            raw = _settings_with_secrets(cfg, where, problems, secrets, leave_out=leave_out)
            try:
                settings = cls.Settings.model_validate(raw)
            except ValidationError as exc:
                problems.extend(_problems(exc, where, skip_input=UNRESOLVED))  # an unresolved secret: said once, above
                continue
            secrets |= _secret_values(settings)
        else:
            settings = _unchecked_settings(cls, cfg)
        connections[name] = Connection(name, cls, settings)

    defined = ", ".join(sorted(config.connections)) or "none"
    flows: dict[str, Flow] = {}
    for name, fc in config.flows.items():
        where = f"flows.{name}"
        if ("flows", name) in broken:
            continue
        before = len(problems)
        ends: dict[str, type[Connector] | None] = {}
        for end in ("source", "target"):
            conn = getattr(fc, end)
            if ("connections", conn) in broken:
                ends[end] = None
            elif conn not in config.connections:
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
        if target_cls is not None and fc.writes_in_flight is not None and fc.writes_in_flight > 1:
            sink_cls = target_cls.sinks.get(fc.entity)
            if sink_cls is not None and int(getattr(sink_cls, "writes_in_flight", 1)) <= 1:
                problems.append(
                    f'{where}.writes_in_flight: {fc.writes_in_flight} writes at once, but connector "{target_cls.name}" '
                    f"writes {fc.entity} one at a time (its writes of different records are not independent): "
                    "leave it out or set 1"
                )
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
                writes_in_flight=fc.writes_in_flight,
            )
    token_key = _token_key(config.state, problems, secrets) if secrets_of is not False else None
    admin_token = _admin_token(config.admin, problems, secrets) if secrets_of is True else None
    if problems:
        raise ConfigError(problems)
    redactor.add(secrets)
    return Resolved(
        path=path, config=config, connections=connections, flows=flows, secrets=frozenset(secrets), token_key=token_key,
        admin_token=admin_token,
    )


def _unchecked_settings(cls: type[Connector], cfg: ConnectionConfig) -> ConnectorSettings:
    """A connection's settings for a command that does not talk to it: secret references are not
    read (a placeholder stands in), and settings the connector would refuse are kept as they are."""
    raw: dict[str, Any] = {k: (UNREAD_SECRET if _is_reference(v) else v) for k, v in (cfg.model_extra or {}).items()}
    try:
        return cls.Settings.model_validate(raw)
    except ValidationError:
        return cls.Settings.model_construct(None, **raw)


def load(
    path: str | os.PathLike[str],
    registry: Registry,
    *,
    secrets_of: bool | Collection[str] = True,
    leave_out: Collection[str] = (),
) -> Resolved:
    """Read and resolve the configuration at ``path`` (see :func:`resolve` for ``secrets_of`` and ``leave_out``).
    ConfigError lists every mistake: those in the file's shape, and those found checking what was right,
    each said of the file or of the ``APICENTERD_*`` variable that set it."""
    broken: set[tuple[str, str]] = set()
    try:
        config: Config | None = read_config(path)
        problems: list[str] = []
    except ConfigError as exc:
        raw = _raw(path)
        if raw is None:
            raise
        config, problems, broken = _parse(raw)
        problems = problems or list(exc.problems)
    if config is not None:
        try:
            resolved = resolve(config, registry, Path(path).resolve(), secrets_of=secrets_of, leave_out=leave_out, broken=broken)
        except ConfigError as more:
            try:
                env = environment_overrides()
            except SettingsError:
                env = {}
            problems += [p for p in _blame_environment(list(more.problems), env) if p not in problems]
        else:
            if not problems:
                return resolved
    raise ConfigError(problems)


def _raw(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The TOML file's tables, or None if it cannot be read or parsed (read_config said why)."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - read_config reported it
        return None
