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

import abc
import dataclasses
import inspect
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, Protocol, TypeVar

import pluggy
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .errors import RETRY_AFTER_CAP, RecordError, WebhookRejected
from .model import RECORD_TYPES, Entity, Invoice, Order, Record
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
    "Source",
    "Sink",
    "DocumentSink",
    "DocumentRequest",
    "DOCUMENT_TYPES",
    "WebhookRequest",
    "WebhookEvent",
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
    daily_reserve: int = Field(
        default=0,
        ge=0,
        description=(
            "Calls of a declared day limit (a RateLimit of a day or longer) kept back for work outside the "
            "flows (apicenterd check, people); the flows on the connection share the rest by priority"
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
    client_rate_limit: bool = Field(
        default=True,
        description=(
            "false runs the connection without the connector's declared client-side rate limit (a benchmark "
            "against a simulator, an account whose limit the vendor raised); the vendor's 429s and Retry-After "
            "still pause it. Logged as a warning when the connection opens, and by `apicenterd check`"
        ),
    )

    writes_in_flight: int | None = Field(
        default=None,
        ge=1,
        le=32,
        description=(
            "Records of one batch the flows writing to this connection take to it at once (1-32); unset: the "
            "engine's default (4) capped by the sink's own declaration. A sink whose writes are not independent "
            "stays at 1; a flow's own writes_in_flight overrides this"
        ),
    )

    @field_validator("client_rate_limit", mode="before")
    @classmethod
    def _switch(cls, value: Any) -> Any:
        """``true`` or ``false`` (an environment override's text too), nothing pydantic would guess at."""
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, got {value!r:.40}")
        return value


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

    Each connector declares its own vendor's headers (the vendor presets live in their plugins),
    e.g. Exact Online's minutely limit::

        RateLimitHeaders(remaining="X-RateLimit-Minutely-Remaining", reset="X-RateLimit-Minutely-Reset",
                         reset_unit="epoch_ms", limit="X-RateLimit-Minutely-Limit")
    """

    remaining: str
    reset: str | None = None
    reset_unit: ResetUnit = "seconds"
    limit: str | None = None
    window_ms: str | None = None


    def __post_init__(self) -> None:
        if self.reset_unit not in ("seconds", "milliseconds", "epoch_seconds", "epoch_ms"):
            raise ValueError(
                f"RateLimitHeaders.reset_unit {self.reset_unit!r} is not one of seconds, milliseconds, epoch_seconds, epoch_ms"
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
    ``RateLimit(60, 60, name="minutely", headers=EXACT_MINUTELY)`` with ``EXACT_MINUTELY`` as above).
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
    """A record that exists in a target: its id there, its current content in canonical form, and
    (optionally) the vendor's item as it was read.

    ``vendor`` is for the connector itself: the order process hands the customer and articles it
    found back to the :class:`DocumentSink` in a :class:`DocumentRequest`, so a sink that needs
    more of them than the canonical record holds (an article's VAT coding, a debtor's terms) has
    them without a second call and without a cache of its own."""

    id: str
    record: Record | None = None
    vendor: Mapping[str, Any] | None = None


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

    async def pause(self, seconds: float, *, reason: str) -> None:
        """Hold every request of this connection for ``seconds`` (a vendor's 429 with a
        Retry-After), at most the connection's ``retry_after_cap``; the pause outlives a
        restart. The daemon calls this; a connector rarely needs to."""

    def circuit(self) -> tuple[bool, str]:
        """Whether this connection's circuit breaker is open (failing fast), and the last error
        that opened it ("" when closed or when the connection has no breaker)."""

    @property
    def retry_after_cap(self) -> float:
        """The longest pause in seconds a vendor may put on this connection."""

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


RecordT = TypeVar("RecordT", bound=Record)
"""The canonical record type a source yields or a sink writes (``Product``, ``Customer``, ...)."""
DocumentT = TypeVar("DocumentT", Order, Invoice)
"""The canonical document a :class:`DocumentSink` creates: an ``Order`` or an ``Invoice``."""

DOCUMENT_TYPES = ("quote", "order", "invoice_draft", "invoice")
"""What an order may become in a target (``Order.document``, a flow's ``options.document``)."""


class Source(abc.ABC, Generic[RecordT]):
    """Reads one entity out of a vendor: its changes since a cursor, as canonical records.

    Declare it in :attr:`Connector.sources`; the connector builds one per connection
    (``SourceClass(connector)``), so a source reaches its vendor through ``self.connector``
    (annotate it with your connector's class for type checking).

    **The cursor contract.** :meth:`changes` yields :class:`Change` objects in cursor order;
    ``since`` is the ``cursor`` of the last change the daemon settled (``None``: from the
    beginning). A cursor is opaque to the daemon and must not decrease from one change to the
    next; reading ``since`` a cursor may yield that cursor's change again. Yield as you page:
    the daemon settles in batches and memory must not grow with the read. An API that pages
    in another order than the cursor's gives every change the ``since`` it was read from and
    the newest cursor to the last change only.

    **Errors.** A vendor item that cannot be turned into a canonical record is not skipped:
    yield it with :meth:`mapped` (or ``Change(source_id, None, cursor, error=...)``) so the
    daemon audits it as failed and puts it in the dead-letter queue. A failure of the read
    itself raises (``RetryableError``, ``RateLimited``, ``AuthError``, ``FatalError``).
    """

    field_map: ClassVar[Mapping[str, str]] = {}
    """Canonical field path -> the vendor field it is read from (``apicenterd flows mapping``)."""

    def __init__(self, connector: Connector) -> None:
        self.connector = connector

    @abc.abstractmethod
    def changes(self, since: str | None) -> AsyncIterator[Change]:
        """Yield the records changed at or after cursor ``since`` (None: all), in cursor order."""

    async def backlog(self, since: str | None) -> int | None:
        """Optional: how many records :meth:`changes` yields from ``since`` (about; None: cannot
        tell, the default). Asked only when a run stops for its share of a day budget, with the
        cursor that run read from (the daemon takes off what the run handled), for the expected
        completion in ``flows list``, ``runs``, the admin API and the metrics. It should cost one
        call at most, and one to another vendor than the budgeted one where it can (that one's
        share is spent: a call to it raises ``BudgetSpent`` and the figure stays unknown); e.g. a
        list envelope's total for the same filter, or an OData ``$count``.
        """
        return None

    @staticmethod
    def mapped(source_id: str, cursor: str | None, convert: Callable[[], RecordT]) -> Change:
        """A :class:`Change` for one vendor item: ``convert()``'s record, or, when it raises
        ``RecordError`` or ``ValueError`` (pydantic's ValidationError included), a ``KeyError``
        (a field the item lacks), a ``TypeError`` or an ``ArithmeticError`` (``Decimal("n/a")``),
        a failed change carrying the reason: one bad item never stops the read."""
        try:
            return Change(source_id=source_id, record=convert(), cursor=cursor)
        except KeyError as exc:
            return Change(source_id=source_id, record=None, cursor=cursor, error=f"the vendor's item has no field {exc}")
        except ArithmeticError as exc:  # decimal's InvalidOperation says only "[<class 'decimal.ConversionSyntax'>]"
            return Change(source_id=source_id, record=None, cursor=cursor, error=f"a number cannot be read ({type(exc).__name__})")
        except (RecordError, ValueError, TypeError) as exc:
            return Change(source_id=source_id, record=None, cursor=cursor, error=str(exc) or type(exc).__name__)


class Sink(abc.ABC, Generic[RecordT]):
    """Writes one entity into a vendor: products, stock, customers (not documents: see
    :class:`DocumentSink`). Declare it in :attr:`Connector.sinks`; built as ``SinkClass(connector)``.

    The daemon decides *whether* to write (hashes, links, the dead-letter queue); a sink only
    looks up, creates and updates. A record is created only after :meth:`find` said it does not
    exist, and linked only after :meth:`create` returned the vendor's id.

    **Errors.** ``RecordError`` for one record the vendor refuses (the run goes on, the record is
    dead-lettered); ``RetryableError``/``RateLimited`` for what a retry may cure; ``AuthError``
    pauses the connection; ``FatalError`` (and a ``RecordError`` the kit classifies as the
    configuration's) fails the run with one clear error.
    """

    written_fields: ClassVar[frozenset[str] | None] = None
    """The canonical fields this target stores; the daemon hashes, compares and diffs only these,
    so a change the target cannot hold costs no call. None: every field of the record."""
    field_map: ClassVar[Mapping[str, str]] = {}
    """Canonical field path -> the vendor field it is written to (documentation only)."""
    writes_in_flight: ClassVar[int] = 1
    """How many records of one batch the engine may take to this sink at once (the engine's own
    bound, 4, caps it). Records with the same key are never in flight together; raise this only
    when writes of different keys never touch one shared target object (variants grouped into one
    product, say, must stay at 1)."""

    def __init__(self, connector: Connector) -> None:
        self.connector = connector

    @abc.abstractmethod
    async def find(self, key: str) -> Found | None:
        """The record whose natural key (``Record.key()``) is ``key``; None if there is none."""

    async def find_many(self, keys: Sequence[str]) -> Mapping[str, Found]:
        """Optional: look many keys up in few calls; the found ones by key (missing ones left out).
        Implement it and the daemon asks once per batch instead of calling :meth:`find` per record."""
        raise NotImplementedError

    @property
    def batch_lookup(self) -> bool:
        """Whether this sink implements :meth:`find_many`."""
        return type(self).find_many is not Sink.find_many

    @abc.abstractmethod
    async def create(self, record: RecordT) -> str:
        """Create ``record``; return its id once the vendor confirmed it."""

    async def create_many(self, records: Sequence[RecordT]) -> Sequence[str | RecordError]:
        """Optional: create ``records`` in few calls (the vendor's batch endpoint). Return, per
        record and in order, its new id once the vendor confirmed it, or the :class:`RecordError`
        that refused that one record (a partial failure fails only its records). A failure of the
        whole call raises (``RetryableError``, ...): the daemon looks the records up by key before
        it tries again, so none is created twice. Implement it (with :meth:`find_many`) and the
        daemon creates the new records of a batch together, settling them in the source's order."""
        raise NotImplementedError

    @property
    def batch_create(self) -> bool:
        """Whether this sink implements :meth:`create_many`."""
        return type(self).create_many is not Sink.create_many

    @abc.abstractmethod
    async def update(self, target_id: str, record: RecordT, fields: frozenset[str]) -> None:
        """Write the canonical ``fields`` of ``record`` to ``target_id``; leave every other field as it is."""

    async def update_many(self, updates: Sequence[tuple[str, RecordT, frozenset[str]]]) -> Sequence[RecordError | None]:
        """Optional: write many updates in few calls (the vendor's batch endpoint). ``updates`` are
        ``(target_id, record, fields)`` as :meth:`update` takes them. Return, per update and in
        order, None once the vendor confirmed it, or the :class:`RecordError` that refused that one
        record (a partial failure fails only its records). A failure of the whole call raises
        (``RetryableError``, ...) and the daemon sends the updates again, so they must be safe to
        repeat (write values, never increments). Implement it and the daemon sends a batch's
        updates together, settling them in the source's order."""
        raise NotImplementedError

    @property
    def batch_update(self) -> bool:
        """Whether this sink implements :meth:`update_many`."""
        return type(self).update_many is not Sink.update_many

    async def update_found(self, found: Found, record: RecordT, fields: frozenset[str]) -> None:
        """Update the record a look-up by key just returned (``found``, from :meth:`find` or
        :meth:`find_many`). A target whose update is a read-modify-write (a PUT of the whole
        object) overrides this to start from ``found.vendor`` instead of reading it again.
        Default: :meth:`update` of ``found.id``."""
        await self.update(found.id, record, fields)

    def normalize(self, record: RecordT) -> RecordT:
        """``record`` as this target stores it (money rounded, texts cut, ...): the daemon hashes
        and compares this form. Raise ``RecordError`` for what the vendor would refuse. Default: as is."""
        return record


@dataclasses.dataclass(frozen=True)
class DocumentRequest(Generic[DocumentT]):
    """What the order process hands a :class:`DocumentSink`: the document and everything the core
    resolved for it in this target.

    ``record``
        The order or invoice, the flow's maps applied and normalized by the sink.
    ``kind``
        The document type to create: one of the sink's ``documents``.
    ``customer``
        The debtor (found by e-mail and updated, or created; the configured default debtor has
        ``Found(id)`` only). None only when the flow gives no customer at all.
    ``articles``
        Per SKU of the lines: the target's article (found or created by the order process).
        A line without SKU (a text line) has none.
    ``settings``
        The flow's ``target_settings``, validated by the sink's ``settings`` model (None without one).
    """

    record: DocumentT
    kind: str
    customer: Found | None
    articles: Mapping[str, Found]
    settings: BaseModel | None = None

    @property
    def customer_id(self) -> str:
        """The debtor's id in the target; RecordError when the process found none."""
        if self.customer is None or not self.customer.id:
            raise RecordError(f"{self.record.key()}: no customer in the target (set the flow's default_customer)")
        return self.customer.id

    def article(self, sku: str) -> Found:
        """The target's article for ``sku``; RecordError when the order process resolved none."""
        try:
            return self.articles[sku]
        except KeyError:
            raise RecordError(f"{self.record.key()}: SKU {sku!r} is not in the target") from None


class DocumentSink(abc.ABC, Generic[DocumentT]):
    """Creates orders or invoices in a vendor. Declare it in :attr:`Connector.sinks` for
    ``Entity.ORDERS`` or ``Entity.INVOICES``; built as ``SinkClass(connector)``.

    The daemon runs the order process (status filter, maps, skip if the document exists, the
    debtor by e-mail, the articles) once for every target, through the connector's customer and
    product sinks, and calls :meth:`create` with a :class:`DocumentRequest` holding all it
    resolved: a document sink needs no look-ups of its own and keeps no caches.
    """

    documents: ClassVar[frozenset[str]] = frozenset({"order"})
    """The document types :meth:`create` accepts (any of :data:`DOCUMENT_TYPES`); a flow asking
    for another is a configuration error."""
    settings: ClassVar[type[BaseModel] | None] = None
    """A pydantic model of what a flow writing here must (or may) give that the source lacks
    (a store id, a branch, an employee number): the flow's ``target_settings`` is validated
    against it by ``apicenterd check`` and arrives as ``DocumentRequest.settings``."""
    written_fields: ClassVar[frozenset[str] | None] = None
    """The canonical fields the target stores (for dry-run diffs)."""
    field_map: ClassVar[Mapping[str, str]] = {}
    """Canonical field path -> vendor field (documentation only)."""

    def __init__(self, connector: Connector) -> None:
        self.connector = connector

    @abc.abstractmethod
    async def find(self, number: str) -> Found | None:
        """The document created earlier for order (or invoice) ``number``; None if there is none."""

    @abc.abstractmethod
    async def create(self, request: DocumentRequest[DocumentT]) -> str:
        """Create the document; return its id once the vendor confirmed it."""

    async def find_many(self, numbers: Sequence[str]) -> Mapping[str, Found]:
        """Optional: the documents created earlier for many order (or invoice) numbers, in few
        calls; the found ones by number. Implement it and the daemon asks once per batch."""
        raise NotImplementedError

    @property
    def batch_lookup(self) -> bool:
        """Whether this sink implements :meth:`find_many`."""
        return type(self).find_many is not DocumentSink.find_many

    async def create_many(self, requests: Sequence[DocumentRequest[DocumentT]]) -> Sequence[str | RecordError]:
        """Optional: create many documents in few calls (the vendor's batch endpoint), as
        :meth:`Sink.create_many` does for records: per request and in order, the new id or the
        :class:`RecordError` that refused that one; a failure of the whole call raises, and the
        daemon looks the documents up by number (:meth:`find_many`) before it tries again.
        Implement it with :meth:`find_many` and the daemon creates a batch's documents together
        (their debtors and articles resolved first, one order at a time)."""
        raise NotImplementedError

    @property
    def batch_create(self) -> bool:
        """Whether this sink implements :meth:`create_many` (and :meth:`find_many`, which its retries need)."""
        return type(self).create_many is not DocumentSink.create_many and self.batch_lookup

    def normalize(self, record: DocumentT) -> DocumentT:
        """``record`` as the target stores it; RecordError for what it would refuse. Default: as is."""
        return record


AnySink = Sink[Any] | DocumentSink[Any]


@dataclasses.dataclass(frozen=True)
class WebhookRequest:
    """A webhook as the daemon received it, for :meth:`Connector.webhook` to verify.

    ``method``
        The HTTP method (``POST`` in practice).
    ``url``
        The full URL the vendor called, query included, as the daemon saw it (behind a reverse
        proxy: as the proxy passed it on). A vendor that signs the URL needs the public one: take
        it from the connection's settings, not from here.
    ``headers``
        The request headers, names lower-cased.
    ``body``
        The raw body, exactly as received (verify signatures over these bytes, not over
        re-serialised JSON). At most ``[admin] max_webhook_bytes``.
    """

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes

    @property
    def query(self) -> dict[str, str]:
        """The URL's query parameters (the last value of a repeated name)."""
        import urllib.parse

        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.url).query, keep_blank_values=True))


@dataclasses.dataclass(frozen=True)
class WebhookEvent:
    """One change a webhook announces: the daemon runs the connection's flows that read ``entity``
    (debounced). ``source_id`` and ``kind`` (the vendor's event name) are for logs; the flow still
    reads through the API from its cursor, so a webhook never writes anything by itself."""

    entity: Entity
    source_id: str | None = None
    kind: str = ""


class Connector:
    """Base class of every connector: one external system, spoken to through its API.

    A connector declares, per entity, a :class:`Source` (it can read that entity) and/or a
    sink (:class:`Sink`, or :class:`DocumentSink` for orders and invoices), and owns what they
    share: the settings, the HTTP clients (made in :meth:`open`), the vendor's rate limits.
    A connector fetches and translates; the daemon owns scheduling, retries, rate limiting,
    state, logging, alerting and the order process.

    Class attributes:

    ``name``
        The connector's identifier in configuration (``connector = "eaccounting"``).
    ``title``
        A human name, shown by ``apicenterd plugins``.
    ``Settings``
        A :class:`ConnectorSettings` subclass validating the connection's config table.
    ``sources`` / ``sinks``
        Entity -> the :class:`Source` / :class:`Sink` / :class:`DocumentSink` class for it.
        Everything else per entity follows from them: ``reads`` and ``writes`` (the entities
        declared), ``written_fields``, ``field_map``, ``documents`` and ``flow_settings`` (read
        these, do not set them).
    ``rate_limits``
        The vendor's documented limits; the daemon never exceeds them.
    ``oauth_authorize_url`` / ``oauth_scopes``
        For OAuth2 connectors: where ``apicenterd auth CONNECTION`` sends the operator to
        authorise, and the scopes it asks for (the settings then need ``token_url``,
        ``client_id`` and ``client_secret``).
    ``oauth_client_auth``
        How the token endpoint takes the client credentials: ``"basic"`` (HTTP Basic) or
        ``"post"`` (form fields ``client_id``/``client_secret``, e.g. HubSpot).
    ``default_port``
        The loopback port :meth:`simulator` listens on in ``apicenterd demo``.

    Webhooks: a connector whose vendor sends webhooks overrides :meth:`webhook`; the daemon
    then receives them on ``/webhooks/<connection>`` (see :meth:`webhook`).

    The methods :meth:`read`, :meth:`find`, :meth:`find_many`, :meth:`create`, :meth:`update`
    and :meth:`normalize` take an entity and hand the call to its source or sink: the daemon
    and tests use them; a connector does not override them.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    Settings: ClassVar[type[ConnectorSettings]] = ConnectorSettings
    sources: ClassVar[Mapping[Entity, type[Source[Any]]]] = {}
    sinks: ClassVar[Mapping[Entity, type[Sink[Any]] | type[DocumentSink[Any]]]] = {}
    rate_limits: ClassVar[tuple[RateLimit, ...]] = ()
    oauth_authorize_url: ClassVar[str | None] = None
    oauth_scopes: ClassVar[tuple[str, ...]] = ()
    oauth_client_auth: ClassVar[str] = "basic"
    default_port: ClassVar[int | None] = None
    simulator_seeds: ClassVar[Mapping[str, str]] = {}
    """Entity -> the :meth:`simulator` option that seeds that many of it (e.g. ``{"products":
    "records", "customers": "customers", "orders": "orders"}``): the demo seeds every entity a
    flow reads (:func:`apicenterd.testing.sim.seed_options`). Empty: ``records`` seeds what it seeds."""

    # derived from sources and sinks (see __init_subclass__)
    reads: ClassVar[frozenset[Entity]] = frozenset()
    writes: ClassVar[frozenset[Entity]] = frozenset()
    written_fields: ClassVar[Mapping[Entity, frozenset[str]]] = {}
    field_map: ClassVar[Mapping[Entity, Mapping[str, str]]] = {}
    documents: ClassVar[frozenset[str]] = frozenset()
    flow_settings: ClassVar[Mapping[Entity, type[BaseModel]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.sources and not cls.sinks:
            return  # an abstract intermediate class (or one the registry will refuse)
        cls.reads = frozenset(cls.sources)
        cls.writes = frozenset(cls.sinks)
        cls.written_fields = {e: s.written_fields for e, s in cls.sinks.items() if s.written_fields is not None}
        field_map: dict[Entity, dict[str, str]] = {}
        for parts in (cls.sources, cls.sinks):
            for entity, part in parts.items():
                if part.field_map:
                    field_map.setdefault(entity, {}).update(part.field_map)
        cls.field_map = field_map
        documents: set[str] = set()
        flow_settings: dict[Entity, type[BaseModel]] = {}
        for entity, sink in cls.sinks.items():
            if isinstance(sink, type) and issubclass(sink, DocumentSink):
                documents |= sink.documents
                if sink.settings is not None:
                    flow_settings[entity] = sink.settings
        cls.documents = frozenset(documents)
        cls.flow_settings = flow_settings

    def __init__(self, settings: ConnectorSettings, context: ConnectionContext):
        self.settings = settings
        self.context = context
        self._parts: dict[tuple[str, Entity], Any] = {}

    async def open(self) -> None:
        """Prepare for work (create HTTP clients). Called once before any other call."""

    async def aclose(self) -> None:
        """Release what :meth:`open` acquired. Called once at shutdown or reload."""

    async def check(self) -> None:
        """Verify credentials and reachability with one cheap call; raise on failure.

        ``apicenterd check --connect`` calls it for every connection, after :meth:`open`. Override it
        with the vendor's cheapest authenticated call (a company-settings or "who am I" endpoint, one
        record of one page): it must write nothing. The default reads the first change of the first
        entity the connector reads (one page), and does nothing for a connector that only writes."""
        for entity in sorted(self.sources, key=str):
            reader = self.read(entity, None)
            try:
                async for _change in reader:
                    break
            finally:
                await reader.aclose()  # type: ignore[attr-defined]  # an async generator
            return

    async def webhook(self, request: WebhookRequest) -> Sequence[WebhookEvent]:
        """Verify a webhook the vendor sent to ``/webhooks/<connection>`` and say what changed.

        Override this if the vendor sends webhooks. Check the vendor's signature over
        ``request.body`` (and whatever else it signs) with the connection's secret, in constant
        time (``hmac.compare_digest``), and return one :class:`WebhookEvent` per announced change.
        Raise :class:`~apicenterd.errors.WebhookRejected` with a clear reason for a request that is
        not signed, wrongly signed, too old (replay), or that cannot be understood
        (``malformed=True``); the daemon answers 401 or 400 with that reason and counts it in
        ``apicenterd_webhooks_total``.

        A vendor whose signature is undocumented: treat the webhook as a trigger only (the flow
        re-reads through the signed API, so a forged webhook costs at most one early run), and
        say so in the connector's README. Do no vendor calls here: the daemon answers the vendor
        at once and runs the flows afterwards, debounced. The default refuses every webhook.
        """
        raise WebhookRejected(f"connector {self.name!r} does not take webhooks")

    @classmethod
    def oauth_consent_url(cls, settings: ConnectorSettings) -> str | None:
        """The OAuth2 consent page (without its query) for a connection with ``settings``: where
        ``apicenterd auth CONNECTION`` sends the operator; None if the connector has none.

        The default is the settings' ``authorize_url`` when they have one set, else
        :attr:`oauth_authorize_url`. Override it when the page follows from other settings: a
        sandbox ``token_url`` has a sandbox consent page, a regional ``base_url`` a regional one.
        """
        return getattr(settings, "authorize_url", None) or cls.oauth_authorize_url

    @classmethod
    def takes_webhooks(cls) -> bool:
        """Whether this connector overrides :meth:`webhook`."""
        return cls.webhook is not Connector.webhook

    # -- the declared parts -------------------------------------------------------------

    def _part(self, kind: str, table: Mapping[Entity, type[Any]], entity: Entity, verb: str) -> Any:
        part = self._parts.get((kind, entity))
        if part is None:
            cls = table.get(entity)
            if cls is None:
                raise RecordError(f"connector {self.name!r} cannot {verb} {entity}")
            part = self._parts[(kind, entity)] = cls(self)
        return part

    def source(self, entity: Entity) -> Source[Any]:
        """This connection's source of ``entity``; RecordError when the connector has none."""
        part: Source[Any] = self._part("source", self.sources, entity, "read")
        return part

    def sink(self, entity: Entity) -> Sink[Any]:
        """This connection's sink of ``entity`` (not a document sink); RecordError when it has none."""
        part = self._part("sink", self.sinks, entity, "write")
        if not isinstance(part, Sink):
            raise RecordError(f"connector {self.name!r} writes {entity} as documents (use document_sink)")
        return part

    def document_sink(self, entity: Entity) -> DocumentSink[Any]:
        """This connection's document sink of ``entity`` (orders, invoices); RecordError when it has none."""
        part = self._part("sink", self.sinks, entity, "write")
        if not isinstance(part, DocumentSink):
            raise RecordError(f"connector {self.name!r} has no document sink for {entity}")
        return part

    def _any_sink(self, entity: Entity) -> AnySink:
        part: AnySink = self._part("sink", self.sinks, entity, "write")
        return part

    # -- by entity (the daemon's and tests' door; not overridden) -----------------------

    def read(self, entity: Entity, since: str | None) -> AsyncIterator[Change]:
        """Yield the records of ``entity`` changed at or after cursor ``since`` (None: all), in cursor order."""
        return self.source(entity).changes(since)

    async def backlog(self, entity: Entity, since: str | None) -> int | None:
        """Records of ``entity`` still to read from cursor ``since``, when the source can tell (see Source.backlog)."""
        return await self.source(entity).backlog(since)

    async def find(self, entity: Entity, key: str) -> Found | None:
        """Look a record up by its natural key (``Record.key()``); None if it does not exist."""
        return await self._any_sink(entity).find(key)

    async def find_many(self, entity: Entity, keys: Sequence[str]) -> Mapping[str, Found]:
        """Look many keys up: in few calls when the sink implements ``find_many``, else one by one."""
        sink = self._any_sink(entity)
        if sink.batch_lookup:
            return await sink.find_many(keys)
        found: dict[str, Found] = {}
        for key in dict.fromkeys(keys):
            one = await sink.find(key)
            if one is not None:
                found[key] = one
        return found

    async def create(self, entity: Entity, record: Record) -> str:
        """Create ``record``; for a document sink the customer (``customer_id``) and articles are
        looked up first (the daemon's order process does this itself, with what it resolved)."""
        sink = self._any_sink(entity)
        if isinstance(sink, DocumentSink):
            return await sink.create(await self.document_request(entity, record))
        return await sink.create(_expect(entity, record))

    async def create_many(self, entity: Entity, records: Sequence[Record]) -> Sequence[str | RecordError]:
        """Create ``records`` together (the sink's ``create_many``, else one ``create`` each): per
        record, its id or the RecordError that refused it."""
        sink = self._any_sink(entity)
        if not isinstance(sink, Sink):
            raise RecordError(f"connector {self.name!r} writes {entity} as documents, one at a time")
        typed = [_expect(entity, record) for record in records]
        if sink.batch_create:
            return await sink.create_many(typed)
        results: list[str | RecordError] = []
        for record in typed:
            try:
                results.append(await sink.create(record))
            except RecordError as exc:
                results.append(exc)
        return results

    async def update(self, entity: Entity, target_id: str, record: Record, fields: frozenset[str]) -> None:
        """Write the canonical ``fields`` of ``record`` to the existing record ``target_id``."""
        sink = self._any_sink(entity)
        if isinstance(sink, DocumentSink):
            raise RecordError(
                f"{entity} {record.key()!r} exists in the target ({target_id}); apicenterd does not change sales documents there"
            )
        await sink.update(target_id, _expect(entity, record), fields)

    async def update_many(self, entity: Entity, updates: Sequence[tuple[str, Record, frozenset[str]]]) -> Sequence[RecordError | None]:
        """Write many updates ``(target_id, record, fields)`` together (the sink's ``update_many``,
        else one ``update`` each): per update, None or the RecordError that refused it."""
        sink = self._any_sink(entity)
        if not isinstance(sink, Sink):
            raise RecordError(f"connector {self.name!r} writes {entity} as documents; apicenterd does not change them")
        typed = [(target_id, _expect(entity, record), fields) for target_id, record, fields in updates]
        if sink.batch_update:
            return await sink.update_many(typed)
        results: list[RecordError | None] = []
        for target_id, record, fields in typed:
            try:
                await sink.update(target_id, record, fields)
                results.append(None)
            except RecordError as exc:
                results.append(exc)
        return results

    async def update_found(self, entity: Entity, found: Found, record: Record, fields: frozenset[str]) -> None:
        """Write the canonical ``fields`` of ``record`` to the record a look-up by key returned (see
        :meth:`Sink.update_found`)."""
        sink = self._any_sink(entity)
        if isinstance(sink, DocumentSink):
            await self.update(entity, found.id, record, fields)  # refused, with the reason
            return
        await sink.update_found(found, _expect(entity, record), fields)

    def normalize(self, entity: Entity, record: Record) -> Record:
        """``record`` as this target will store it (see :meth:`Sink.normalize`)."""
        normalized: Record = self._any_sink(entity).normalize(_expect(entity, record))
        return normalized

    async def document_request(
        self, entity: Entity, record: Record, *, settings: BaseModel | None = None
    ) -> DocumentRequest[Any]:
        """A :class:`DocumentRequest` for a document whose ``customer_id`` is set, its articles
        looked up one by one (for direct use and tests; the order process builds its own)."""
        document = _expect(entity, record)
        assert isinstance(document, (Order, Invoice))
        skus = list(dict.fromkeys(line.sku for line in document.lines if line.sku))
        articles: dict[str, Found] = {}
        if skus and Entity.PRODUCTS in self.sinks:
            articles = dict(await self.find_many(Entity.PRODUCTS, skus))
        kind = document.document if isinstance(document, Order) else str(document.target_fields.get("document") or "invoice")
        customer = Found(document.customer_id) if document.customer_id else None
        return DocumentRequest(document, kind or "order", customer, articles, settings)

    @classmethod
    def limits_for(cls, settings: Any) -> tuple[RateLimit, ...]:
        """The rate limits of a connection with these ``settings``: :attr:`rate_limits` unless the
        vendor's limits depend on the account (a plan or tier in the settings); the daemon keeps to these."""
        return tuple(cls.rate_limits)

    @classmethod
    def simulator(cls, *, seed: int = 1, records: int = 0, **options: Any) -> Any:
        """An ASGI application that behaves like the vendor's API for the endpoints this
        connector uses, seeded with ``records`` generated records; None if there is none."""
        return None

    @classmethod
    def demo_settings(cls, base_url: str) -> dict[str, Any]:
        """Connection settings that work against :meth:`simulator` at ``base_url``."""
        return {"base_url": base_url}


def _expect(entity: Entity, record: Record) -> Any:
    """``record`` if it is the canonical type of ``entity`` (RecordError otherwise)."""
    kind = RECORD_TYPES[entity]
    if not isinstance(record, kind):
        raise RecordError(f"{entity}: expected a {kind.__name__}, got {type(record).__name__}")
    return record


def abstract_methods(cls: type) -> list[str]:
    """The abstract methods ``cls`` leaves unimplemented (empty for a complete class)."""
    return sorted(getattr(cls, "__abstractmethods__", ())) if inspect.isabstract(cls) else []
