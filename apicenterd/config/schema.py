"""The configuration file's shape: the pydantic models of its tables, with ``APICENTERD_*`` environment overrides."""

from __future__ import annotations

import copy
import math
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.sources import InitSettingsSource

from ..filters import Filter
from ..mapping import MapRule
from ..model import Entity
from ..observe.alerts import AlertsConfig
from ..validation import SettingsModel

WRITES_IN_FLIGHT_MAX = 32
"""The most records of one batch a flow or connection may ask to have in flight at once."""


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
    """The SQLite state file (the default store), relative to the config file's folder."""
    url: str | None = None
    """A PostgreSQL database instead of the SQLite file: ``postgresql://user:password@host:5432/database``
    (libpq's URL; ``?options=-csearch_path%3Dschema`` etc. as libpq takes them). Best by reference when it
    holds a password (``APICENTERD_STATE__URL`` in the environment)."""
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
    worker_concurrency: int = Field(default=10, ge=1, le=1000)
    """PostgreSQL state (several daemons): how many flows this daemon runs at once (each holds a
    database connection for its flow lock while it runs)."""
    worker_heartbeat_seconds: float = Field(default=10.0, gt=0)
    """PostgreSQL state: how often each daemon tells the database it is alive, and checks the queue
    (flows without a job get one; stalled jobs go back to the queue)."""
    worker_poll_seconds: float = Field(default=1.0, gt=0)
    """PostgreSQL state: how often an idle daemon looks for runs that came due (a run due now waits at
    most this long for a free daemon; a run queued for now starts at once)."""
    worker_stall_seconds: float = Field(default=60.0, gt=0)
    """PostgreSQL state: a daemon silent for this long is taken for dead; another daemon runs its
    flows (from their settled cursors). At least three heartbeats."""

    @model_validator(mode="after")
    def _stall_after_heartbeats(self) -> StateConfig:
        if self.worker_stall_seconds < 3 * self.worker_heartbeat_seconds:
            raise ValueError(
                f"worker_stall_seconds ({self.worker_stall_seconds:g}) must be at least three heartbeats "
                f"(3 × worker_heartbeat_seconds = {3 * self.worker_heartbeat_seconds:g}): a live daemon would be taken for dead"
            )
        return self

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError as exc:
            raise ValueError(f"is not a URL ({exc}); e.g. postgresql://apicenterd@127.0.0.1:5432/apicenterd") from None
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError(
                f"scheme {parts.scheme or '(none)'!r} is not supported: the state url must be a PostgreSQL URL, "
                "e.g. postgresql://apicenterd@127.0.0.1:5432/apicenterd (leave url out for the SQLite file in path)"
            )
        if not parts.path.strip("/"):
            raise ValueError("names no database: e.g. postgresql://apicenterd@127.0.0.1:5432/apicenterd")
        return value


def _host_port(value: str, example: str) -> str:
    """``value`` if it is ``host:port`` with a TCP port; ValueError naming an example otherwise."""
    _host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{value!r} is not host:port (e.g. {example})")
    return value


class AdminConfig(SettingsModel):
    """The ``[admin]`` table: the daemon's HTTP server for the admin API, the dashboard page and
    vendor webhooks. Off until ``token`` is set."""

    model_config = ConfigDict(extra="forbid")

    address: str = Field(default="127.0.0.1:9465", description="host:port to listen on (loopback: put a TLS proxy in front)")
    token: str | dict[str, str] | None = None
    """The bearer token the admin API and the dashboard ask for (16+ characters), best by reference:
    ``{ credential = "admin_token" }``, ``{ file = "..." }`` or ``{ env = "..." }``. Unset: no server."""
    webhook_debounce_seconds: float = Field(default=2.0, ge=0, le=3600)
    """Webhooks for one flow within this many seconds start one run."""
    max_webhook_bytes: int = Field(default=1024 * 1024, ge=1024)
    """A larger webhook body is rejected (413) without being read further."""

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return _host_port(value, "127.0.0.1:9465")

    @property
    def enabled(self) -> bool:
        """Whether the daemon serves the admin API (a token is configured)."""
        return self.token is not None


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
    priority: int = Field(default=0, ge=-1000, le=1000)
    """On a connection with a day budget (Exact Online's 5,000 calls a day), flows of a higher
    priority are served first: a flow stops for the day when the calls left would no longer cover
    what the flows of a higher priority still need today (see apicenterd.budget)."""
    create_only_fields: list[str] = Field(default_factory=list)
    filters: list[Filter] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict)
    map: list[MapRule] = Field(default_factory=list)
    target_settings: dict[str, Any] = Field(default_factory=dict)
    writes_in_flight: int | None = Field(default=None, ge=1, le=WRITES_IN_FLIGHT_MAX)
    """Records of one batch taken to the target at once (1–32); unset: the connection's
    ``writes_in_flight``, else the engine's default (4) capped by what the target's sink declares.
    More than 1 is refused for a sink whose writes of different keys are not independent."""

    @field_validator("interval", mode="before")
    @classmethod
    def _interval_type(cls, value: Any) -> Any:
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (str, int, float)) or (isinstance(value, float) and not math.isfinite(value))
        ):
            got = f"the boolean {str(value).lower()}" if isinstance(value, bool) else f"{value!r:.40}"
            raise ValueError(f"must be a duration like \"30s\" or \"5m\"; got {got}")
        number = value if isinstance(value, (int, float)) else _bare_number(value)
        if number is not None:  # 15 what? seconds in the code, minutes in many a scheduler: the file says which
            shown = f"{number:g}" if isinstance(number, float) else str(number)
            raise ValueError(
                f"{value!r:.40} has no unit: write \"{shown}s\" (seconds), \"{shown}m\" (minutes) or \"{shown}h\" (hours)"
            )
        return value


ENVIRONMENT: ContextVar[dict[str, Any] | None] = ContextVar("apicenterd_config_environment", default=None)
"""The ``APICENTERD_*`` overrides to use instead of reading the environment (set while a configuration
with mistakes is read again without the settings found wrong, to report every other mistake)."""


def environment_overrides() -> dict[str, Any]:
    """The ``APICENTERD_*`` environment as nested settings (names lower-cased), as :class:`Config` reads it."""
    from pydantic_settings import EnvSettingsSource

    return EnvSettingsSource(Config)()


def _bare_number(text: str | None) -> float | None:
    """``text`` as a number when it is only one (``"15"``, ``" 1.5 "``), else None."""
    if text is None:
        return None
    try:
        number = float(text.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


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
        fixed = ENVIRONMENT.get()
        data = copy.deepcopy(fixed) if fixed is not None else self._env()
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
    admin: AdminConfig = AdminConfig()
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
