"""The public plugin API: hook specifications and the ``Connector`` base class.

A connector plugin is a distribution with an entry point in the group
``apicenterd.connectors`` that points at a module implementing
:func:`register_connectors`::

    # pyproject.toml
    [project.entry-points."apicenterd.connectors"]
    acme = "apicenterd_acme.plugin"

    # apicenterd_acme/plugin.py
    from apicenterd import hookimpl
    from .connector import AcmeConnector

    @hookimpl
    def register_connectors(register):
        register(AcmeConnector)
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

import pluggy
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .errors import RETRY_AFTER_CAP, RecordError
from .model import Entity, Record
from .validation import SettingsModel, check_http_url

if TYPE_CHECKING:  # pragma: no cover
    import httpx

__all__ = [
    "PROJECT",
    "hookspec",
    "hookimpl",
    "Hookspecs",
    "ConnectorSettings",
    "RateLimit",
    "RateLimitHeaders",
    "Change",
    "Found",
    "TokenStore",
    "ConnectionContext",
    "Connector",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_REQUEST_DEADLINE",
]

PROJECT = "apicenterd"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class Hookspecs:
    """The hooks a plugin may implement. All are synchronous; they register objects whose
    methods do the (asynchronous) work."""

    @hookspec
    def register_connectors(self, register: Callable[[type[Connector]], None]) -> None:
        """Register the connector classes this plugin provides.

        Called once when the plugins are loaded. Call ``register(cls)`` for each
        :class:`Connector` subclass. A class that declares something invalid (no name,
        unknown entities, a settings model that does not derive from
        :class:`ConnectorSettings`) is reported with its plugin's name and skipped;
        the other connectors still load.
        """

    @hookspec
    def register_transforms(self, register: Callable[[str, Callable[..., Any]], None]) -> None:
        """Register extra transform functions for the data mapper.

        Call ``register(name, function)``; ``function(value, *args)`` returns the
        transformed value and raises ``ValueError`` with a message when it cannot.
        A name that is already taken is reported and the second one ignored.
        """


DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
"""A connection accepts response bodies up to 64 MiB unless its settings say otherwise."""
DEFAULT_REQUEST_DEADLINE = 120.0
"""Seconds one request may take in total (connect, send, the whole answer) unless set otherwise."""


class ConnectorSettings(SettingsModel):
    """Settings every connection has; a connector subclasses this with its own fields.

    Unknown keys are errors (``extra="forbid"``). Declare secrets as
    ``pydantic.SecretStr``: the config may give them by reference
    (``{ env = "NAME" }``, ``{ file = "/path" }``, ``{ credential = "name" }``)
    and they are redacted from logs. The rules of
    :class:`~apicenterd.validation.SettingsModel` hold for every field, the subclass's too:
    no ``inf``/``nan``, no booleans for numbers, and ``base_url`` and every other setting
    named ``*_url`` is an absolute http(s) URL with a host.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    base_url: str = Field(description="Root URL of the vendor API (sandbox, production or a simulator)")

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        """An absolute http(s) URL with a host (a subclass that redefines the field keeps this check)."""
        return check_http_url(value)

    timeout: float = Field(default=30.0, gt=0, description="Seconds before one HTTP request is given up")
    max_response_bytes: int = Field(
        default=DEFAULT_MAX_RESPONSE_BYTES,
        gt=0,
        description=(
            "Largest response body (bytes, after decompression) accepted from the vendor; a bigger one "
            "fails its request without a retry (a Content-Length above it is refused before reading)"
        ),
    )
    request_deadline: float = Field(
        default=DEFAULT_REQUEST_DEADLINE,
        gt=0,
        allow_inf_nan=False,
        description=(
            "Seconds one HTTP request may take in total: waiting for a connection, sending, and reading "
            "the whole answer (``timeout`` bounds each read); past it the request fails as a timeout"
        ),
    )
    retry_after_cap: float = Field(
        default=RETRY_AFTER_CAP,
        gt=0,
        le=RETRY_AFTER_CAP,
        allow_inf_nan=False,
        description=(
            "Longest pause in seconds a 429's Retry-After (or a wait named in its body) may put on this "
            f"connection; at most {RETRY_AFTER_CAP:g}"
        ),
    )


ResetUnit = Literal["seconds", "milliseconds", "epoch_seconds", "epoch_ms"]


@dataclasses.dataclass(frozen=True)
class RateLimitHeaders:
    """The response headers in which a vendor reports what is left of one limit.

    ``remaining``
        Calls left in the current window (required).
    ``reset``
        When the window resets, in ``reset_unit``: ``"seconds"`` or ``"milliseconds"`` from
        now, ``"epoch_seconds"`` or ``"epoch_ms"`` (Unix time). Epoch times are read against
        the response's ``Date`` header when it has one, so a skewed local clock does no harm.
        Without ``reset``, a window is taken to end at most one ``period`` after the response.
    ``limit``
        The window's size in calls. A lower number than the declared ``RateLimit.requests``
        is adopted; a higher one is ignored (the daemon never exceeds the declared limit).
    ``window_ms``
        A header giving the window's length in milliseconds (HubSpot); ``limit`` is adopted
        only when it agrees with the declared ``period``.

    Presets: :attr:`EXACT_MINUTELY`, :attr:`EXACT_DAILY`, :attr:`VISMA_NET`,
    :attr:`HUBSPOT` (the 10-second limit) and :attr:`HUBSPOT_SECONDLY`.
    """

    remaining: str
    reset: str | None = None
    reset_unit: ResetUnit = "seconds"
    limit: str | None = None
    window_ms: str | None = None

    EXACT_MINUTELY: ClassVar[RateLimitHeaders]
    EXACT_DAILY: ClassVar[RateLimitHeaders]
    VISMA_NET: ClassVar[RateLimitHeaders]
    HUBSPOT: ClassVar[RateLimitHeaders]
    HUBSPOT_SECONDLY: ClassVar[RateLimitHeaders]

    def __post_init__(self) -> None:
        if self.reset_unit not in ("seconds", "milliseconds", "epoch_seconds", "epoch_ms"):
            raise ValueError(
                f"RateLimitHeaders.reset_unit {self.reset_unit!r} is not one of seconds, milliseconds, epoch_seconds, epoch_ms"
            )


RateLimitHeaders.EXACT_MINUTELY = RateLimitHeaders(
    remaining="X-RateLimit-Minutely-Remaining",
    reset="X-RateLimit-Minutely-Reset",
    reset_unit="epoch_ms",
    limit="X-RateLimit-Minutely-Limit",
)
RateLimitHeaders.EXACT_DAILY = RateLimitHeaders(
    remaining="X-RateLimit-Remaining", reset="X-RateLimit-Reset", reset_unit="epoch_ms", limit="X-RateLimit-Limit"
)
# Visma documents the reset "in seconds" without saying from when; a value that only makes
# sense as Unix time is read as one (see apicenterd.http).
RateLimitHeaders.VISMA_NET = RateLimitHeaders(
    remaining="X-RateLimit-Remaining", reset="X-RateLimit-Reset", reset_unit="seconds", limit="X-RateLimit-Limit"
)
RateLimitHeaders.HUBSPOT = RateLimitHeaders(
    remaining="X-HubSpot-RateLimit-Remaining",
    limit="X-HubSpot-RateLimit-Max",
    window_ms="X-HubSpot-RateLimit-Interval-Milliseconds",
)
RateLimitHeaders.HUBSPOT_SECONDLY = RateLimitHeaders(
    remaining="X-HubSpot-RateLimit-Secondly-Remaining", limit="X-HubSpot-RateLimit-Secondly"
)


@dataclasses.dataclass(frozen=True)
class RateLimit:
    """A vendor's documented limit: at most ``requests`` calls in any ``period`` seconds.

    ``key`` sorts requests into separately counted buckets (e.g. eAccounting counts
    per endpoint, CCV per resource and method); when it returns ``None`` for a request,
    this limit does not apply to that request (so GETs and writes can have limits of
    their own). ``key=None`` counts every request of the connection together.
    ``name`` appears in metrics and logs.

    ``headers`` names the response headers in which the vendor reports this limit's
    remaining calls and reset (:class:`RateLimitHeaders`, e.g.
    ``RateLimit(60, 60, name="minutely", headers=RateLimitHeaders.EXACT_MINUTELY)``).
    The daemon then also waits when the vendor says the window is spent (another app
    on the same credential, a restart mid-window), and adopts a lower limit it reports.
    """

    requests: int
    period: float
    name: str = "default"
    key: Callable[[httpx.Request], str | None] | None = None
    headers: RateLimitHeaders | None = None


@dataclasses.dataclass(frozen=True)
class Change:
    """One record read from a source.

    ``cursor`` is opaque to the engine, must not decrease from one change to the
    next, and is what the engine passes back as ``since`` after this change is
    settled (``None`` only for replays). Reading ``since`` a cursor may return that cursor's change again
    (ties at second resolution are common); the engine skips what did not change.

    A source must yield as it pages (the engine settles in batches; memory must not grow
    with the read). One whose API pages in another order than its cursor's gives every
    change the cursor it was read ``since`` (so the cursor does not move past records not
    read yet) and the newest cursor with the last change only.
    """

    source_id: str
    record: Record | None
    cursor: str | None
    error: str | None = None
    """Set (with ``record=None``) when the source has this record but it cannot be mapped: the
    daemon records it as failed with this reason, and the run goes on."""


@dataclasses.dataclass(frozen=True)
class Found:
    """A record that exists in a target: its id there, and its current content in canonical form."""

    id: str
    record: Record | None = None


class TokenStore(Protocol):
    """Durable storage of a connection's OAuth tokens (backed by the state store)."""

    async def load(self) -> dict[str, Any] | None:
        """The last saved token set, or None."""

    async def save(self, tokens: Mapping[str, Any]) -> None:
        """Persist ``tokens``; returns only once they are durable."""


class ConnectionContext(Protocol):
    """What the daemon hands a connector: its name, durable token storage, logging and HTTP."""

    name: str
    tokens: TokenStore
    log: Any

    def http_client(
        self,
        *,
        base_url: str,
        auth: httpx.Auth | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> httpx.AsyncClient:
        """An httpx client for this connection: rate limited by the connector's
        :attr:`Connector.rate_limits`, counted in metrics, and raising
        :class:`~apicenterd.RetryableError` on timeouts and connection errors. Every
        response body is read before the client returns it, at most the connection's
        ``max_response_bytes`` (:class:`~apicenterd.ResponseTooLarge` beyond), and every
        request must finish within its ``request_deadline`` (a RetryableError beyond)."""


class Connector:
    """Base class of every connector: one external system, spoken to through its API.

    Subclasses set the class attributes and implement the methods for the entities they
    declare. A connector fetches and translates; the daemon owns scheduling, retries,
    rate limiting, state, logging and alerting.

    Class attributes:

    ``name``
        The connector's identifier in configuration (``connector = "eaccounting"``).
    ``title``
        A human name, shown by ``apicenterd plugins``.
    ``Settings``
        A :class:`ConnectorSettings` subclass validating the connection's config table.
    ``reads`` / ``writes``
        The entities :meth:`read` can produce and :meth:`create` / :meth:`update` accept.
    ``rate_limits``
        The vendor's documented limits; the daemon never exceeds them.
    ``written_fields``
        Per written entity, the canonical field names this target stores. The daemon
        hashes, compares and diffs only these, so a change the target cannot hold
        costs no call. An entity not listed: every field counts.
    ``field_map``
        Per entity, canonical field path → the vendor field it is read from or written to
        (e.g. ``"sku": "Number"``), shown by ``apicenterd flows mapping``. Documentation only.
    ``oauth_authorize_url`` / ``oauth_scopes``
        For OAuth2 connectors: where ``apicenterd auth CONNECTION`` sends the operator to
        authorise, and the scopes it asks for (the settings then need ``token_url``,
        ``client_id`` and ``client_secret``).
    ``documents``
        The document types :meth:`create` accepts for ``Entity.ORDERS`` (``Order.document``):
        any of ``quote``, ``order``, ``invoice_draft``, ``invoice``. An order flow asking for
        another is a configuration error.
    ``flow_settings``
        Per written entity, a pydantic model of what a flow writing it must (or may) give
        that the source lacks: a store id, a branch, an employee number with a default. The
        flow's ``target_settings`` table is validated against it by ``apicenterd check`` and
        arrives as ``Order.target_fields``.
    ``default_port``
        The loopback port :meth:`simulator` listens on in ``apicenterd demo``.

    Errors: raise the classes in :mod:`apicenterd.errors` (``RecordError`` for one
    bad record, ``RateLimited`` for 429, ``AuthError``, ``RetryableError``,
    ``FatalError``). Never let vendor exceptions escape unclassified.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    Settings: ClassVar[type[ConnectorSettings]] = ConnectorSettings
    reads: ClassVar[frozenset[Entity]] = frozenset()
    writes: ClassVar[frozenset[Entity]] = frozenset()
    rate_limits: ClassVar[tuple[RateLimit, ...]] = ()
    written_fields: ClassVar[Mapping[Entity, frozenset[str]]] = {}
    documents: ClassVar[frozenset[str]] = frozenset()
    oauth_authorize_url: ClassVar[str | None] = None
    oauth_scopes: ClassVar[tuple[str, ...]] = ()
    field_map: ClassVar[Mapping[Entity, Mapping[str, str]]] = {}
    flow_settings: ClassVar[Mapping[Entity, type[BaseModel]]] = {}
    default_port: ClassVar[int | None] = None

    def __init__(self, settings: ConnectorSettings, context: ConnectionContext):
        self.settings = settings
        self.context = context

    async def open(self) -> None:
        """Prepare for work (create HTTP clients). Called once before any other call."""

    async def aclose(self) -> None:
        """Release what :meth:`open` acquired. Called once at shutdown or reload."""

    async def check(self) -> None:
        """Verify credentials and reachability with one cheap call; raise on failure."""

    def read(self, entity: Entity, since: str | None) -> AsyncIterator[Change]:
        """Yield the records of ``entity`` changed at or after cursor ``since`` (None: all),
        in cursor order."""
        raise RecordError(f"connector {self.name!r} cannot read {entity}")

    async def find(self, entity: Entity, key: str) -> Found | None:
        """Look a record up by its natural key (``Record.key()``); None if it does not exist."""
        raise RecordError(f"connector {self.name!r} cannot look up {entity}")

    async def find_many(self, entity: Entity, keys: Sequence[str]) -> Mapping[str, Found]:
        """Optional: look many keys up in few calls (a batch endpoint, an ``or`` filter); return the
        found ones by key, leaving out the missing. When a connector implements it, the daemon asks
        it once per batch of records instead of calling :meth:`find` for each."""
        raise NotImplementedError

    async def create(self, entity: Entity, record: Record) -> str:
        """Create ``record`` and return its id in this system, once the system confirmed it."""
        raise RecordError(f"connector {self.name!r} cannot create {entity}")

    async def update(self, entity: Entity, target_id: str, record: Record, fields: frozenset[str]) -> None:
        """Write the canonical ``fields`` of ``record`` to the existing record ``target_id``,
        leaving every other field in the target as it is."""
        raise RecordError(f"connector {self.name!r} cannot update {entity}")

    def normalize(self, entity: Entity, record: Record) -> Record:
        """``record`` as this target will store it (money rounded to the target's decimals,
        texts cut to its lengths, ...). The daemon hashes and compares this form, so a
        difference the target cannot hold never costs a call. Default: unchanged."""
        return record

    @classmethod
    def simulator(cls, *, seed: int = 1, records: int = 0, **options: Any) -> Any:
        """An ASGI application that behaves like the vendor's API for the endpoints this
        connector uses, seeded with ``records`` generated records; None if there is none."""
        return None

    @classmethod
    def demo_settings(cls, base_url: str) -> dict[str, Any]:
        """Connection settings that work against :meth:`simulator` at ``base_url``."""
        return {"base_url": base_url}
