"""Alert notifications: a webhook (JSON, Slack-compatible ``text``) and e-mail, sent when a flow
starts failing and once when it recovers, when records fail (which, and why), and when a
connection is paused for re-authorisation. No storms: a state is announced on its change.

Deciding is instant and never waits for a receiver: :meth:`Alerter.send` only queues. One
sender task (:meth:`Alerter.run`, started by the daemon) delivers, each attempt under a total
deadline, with retries; a one-shot command delivers with :meth:`Alerter.flush` at its end."""

from __future__ import annotations

import collections
import dataclasses
import smtplib
import socket
import threading
import time
from email.message import EmailMessage
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import httpx
from pydantic import ConfigDict, Field, SecretStr

from ..validation import SettingsModel
from . import metrics
from .logs import get_logger, redactor

__all__ = ["AlertsConfig", "EmailConfig", "Alert", "Alerter"]

MAX_RECORDS_LISTED = 20


class EmailConfig(SettingsModel):
    """``[alerts.email]``: where alert mails go."""

    model_config = ConfigDict(extra="forbid")

    smtp_host: str
    smtp_port: int = 25
    starttls: bool = False
    username: str | None = None
    password: SecretStr | None = None
    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1)


class AlertsConfig(SettingsModel):
    """``[alerts]``: where notifications go; nothing configured, nothing sent (logs and metrics still are).

    Alerts are queued and sent by their own task, so a slow or stuck receiver never holds up a
    flow or the shutdown: each attempt (the whole HTTP exchange, body included; the whole SMTP
    conversation) has ``timeout`` seconds, a failed one is tried ``retries`` more times with a
    growing pause, at most ``queue_size`` alerts wait (beyond that the oldest is dropped, logged
    and counted), and at shutdown what is still queued gets ``flush_timeout`` seconds."""

    model_config = ConfigDict(extra="forbid")

    webhook_url: str | None = None
    webhook_headers: dict[str, str] = Field(default_factory=dict)
    email: EmailConfig | None = None
    timeout: float = Field(default=10.0, gt=0)
    """Seconds one delivery attempt may take in all (connect, send, the whole answer)."""
    retries: int = Field(default=2, ge=0)
    """Further attempts after a failed one (1 s, 2 s, 4 s ... apart)."""
    queue_size: int = Field(default=100, ge=1)
    """Alerts waiting to be sent; when full, the oldest is dropped (logged, counted)."""
    flush_timeout: float = Field(default=5.0, ge=0)
    """Seconds the daemon's shutdown (and a one-shot command's end) waits for queued alerts."""


@dataclasses.dataclass(frozen=True)
class Alert:
    """One notification."""

    kind: str  # flow_failing | flow_recovered | records_failed | connection_paused | circuit_open | circuit_closed
    # | dead_letters_expiring | state_failed
    subject: str
    text: str
    flow: str | None = None
    connection: str | None = None
    records: tuple[dict[str, str], ...] = ()
    at: float = dataclasses.field(default_factory=time.time)

    def as_json(self) -> dict[str, Any]:
        """The webhook body."""
        return {
            "text": f"{self.subject}\n{self.text}",
            "kind": self.kind,
            "subject": self.subject,
            "flow": self.flow,
            "connection": self.connection,
            "records": list(self.records),
            "host": socket.gethostname(),
            "at": self.at,
        }


class _Refused(Exception):
    """The receiver answered, but not with success."""

    def __init__(self, status: int):
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retryable = status == 429 or status >= 500


SENT_KEPT = 100
"""Alerts an :class:`Alerter` remembers in ``sent`` (the latest ones)."""


class Alerter:
    """Decides what is worth an alert and queues it; a sender delivers it. Never raises, never blocks.

    ``send`` and the deciding methods (``flow_result``, ``circuit``, ``connection_paused``)
    are plain methods that return at once: they may be called anywhere, also in a
    cancelled or shielded section. Delivery happens in :meth:`run` (a long-lived task) or
    :meth:`flush` (a bounded drain at the end of a one-shot command or of the daemon)."""

    def __init__(
        self,
        config: AlertsConfig | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry_delay: float = 1.0,
    ):
        self.config = config or AlertsConfig()
        self.sent: collections.deque[Alert] = collections.deque(maxlen=SENT_KEPT)
        """The latest :data:`SENT_KEPT` alerts decided on (queued), in order; what a receiver got is
        in the metrics and logs. Bounded: the daemon runs for months."""
        self._failing: dict[str, bool] = {}
        self._paused: set[str] = set()
        self._circuits: set[str] = set()
        self._transport = transport
        self._retry_delay = retry_delay
        self._queue: collections.deque[Alert] = collections.deque()
        self._inflight: list[Alert] = []
        self._wake: anyio.Event | None = None
        self._idle: anyio.Event | None = None
        self.log = get_logger(component="alerts")

    # ---------------------------------------------------------------- deciding

    def flow_result(
        self, flow: str, status: str, error: str | None, failures: list[tuple[str, str, str, str]], failed: int | None = None
    ) -> None:
        """After a run: alert on the change to failing and on recovery, and on failed records
        (``failed``: how many failed, when ``failures`` lists only the first of them)."""
        failing = status == "failed"
        was = self._failing.get(flow, False)
        if status in ("failed", "ok"):  # a stopped run says nothing about the flow's health
            self._failing[flow] = failing
        if failing and not was:
            self.send(Alert("flow_failing", f"apicenterd: flow {flow} is failing", error or "the run failed", flow=flow))
        elif was and not failing and status == "ok":
            self.send(Alert("flow_recovered", f"apicenterd: flow {flow} recovered", "the last run finished without error", flow=flow))
        mine = [f for f in failures if f[0] == flow]
        total = max(failed or 0, len(mine))
        if mine:
            records = tuple({"source_id": s, "key": k, "reason": r} for _, s, k, r in mine[:MAX_RECORDS_LISTED])
            more = f"\n... and {total - len(records)} more" if total > len(records) else ""
            lines = "\n".join(f"- {r['key']} (source id {r['source_id']}): {r['reason']}" for r in records)
            self.send(
                Alert(
                    "records_failed",
                    f"apicenterd: {total} record(s) failed in flow {flow}",
                    f"{lines}{more}\nThey are in the dead-letter queue: apicenterd dlq list --flow {flow}",
                    flow=flow,
                    records=records,
                )
            )

    def circuit(self, connection: str, is_open: bool, error: str) -> None:
        """Once when a connection's circuit breaker is found open, once when it has closed again."""
        was = connection in self._circuits
        if is_open and not was:
            self._circuits.add(connection)
            self.send(
                Alert(
                    "circuit_open",
                    f"apicenterd: connection {connection} is failing: circuit open",
                    f"Calls to {connection} fail fast after repeated failures (last: {error or 'unknown'}); "
                    "a probe call retries it periodically. Check the vendor's status page and the network.",
                    connection=connection,
                )
            )
        elif was and not is_open:
            self._circuits.discard(connection)
            recovered = f"apicenterd: connection {connection} recovered"
            self.send(Alert("circuit_closed", recovered, "the circuit closed", connection=connection))

    def connection_paused(self, connection: str, reason: str, *, reauthorize: bool = True) -> None:
        """Once per pause: the connection needs an operator (re-authorisation; or, ``reauthorize``
        False, the fix that ``reason``, the connector's message, names)."""
        if connection in self._paused:
            return
        self._paused.add(connection)
        if reauthorize:
            subject = f"apicenterd: connection {connection} paused: re-authorise it"
            text = f"{reason}\nRun: apicenterd auth {connection} --config FILE, then systemctl reload apicenterd"
        else:
            subject = f"apicenterd: connection {connection} paused: its credentials need fixing"
            text = f"{reason}\nFix what it says (re-authorising does not help), then: systemctl reload apicenterd"
        self.send(Alert("connection_paused", subject, text, connection=connection))

    def dead_letters_expiring(self, flow: str, count: int, days: int) -> None:
        """Open dead letters of ``flow`` lose their record within ``days`` days (retention); the store
        counts each letter once, so this is said once."""
        when = f"within {days} day(s)" if days > 0 else "now"
        self.send(
            Alert(
                "dead_letters_expiring",
                f"apicenterd: {count} open dead letter(s) of flow {flow} lose their record {when}",
                f"{count} record(s) of flow {flow} failed and were neither replayed nor discarded. Their record "
                f"data (personal data) is removed {when} ([state] dead_letter_retention_days); the failure itself "
                "stays listed, but can no longer be replayed.\n"
                f"See them: apicenterd dlq list --flow {flow}; replay them after fixing the cause: "
                f"apicenterd dlq replay --flow {flow}; or give up on them: apicenterd dlq discard --flow {flow}",
                flow=flow,
            )
        )

    def state_failed(self, message: str) -> None:
        """The state file cannot be used (deleted, damaged, disk full at start): the daemon stops."""
        self.send(Alert("state_failed", "apicenterd: the state file cannot be used; the daemon stopped", message))

    # ---------------------------------------------------------------- queueing

    @property
    def pending(self) -> int:
        """Alerts queued or being delivered."""
        return len(self._queue) + len(self._inflight)

    def send(self, alert: Alert) -> None:
        """Queue ``alert`` (secrets scrubbed) for every configured channel; returns at once.

        When ``queue_size`` alerts are already waiting, the oldest is dropped: logged with its
        subject and counted in ``apicenterd_alerts_dropped_total{reason="queue_full"}``."""
        alert = dataclasses.replace(alert, subject=redactor.scrub(alert.subject), text=redactor.scrub(alert.text))
        self.sent.append(alert)
        self.log.warning("alert", kind=alert.kind, subject=alert.subject, flow=alert.flow, connection=alert.connection)
        if not self._channels():
            return
        while len(self._queue) >= self.config.queue_size:
            dropped = self._queue.popleft()
            metrics.alerts_dropped.labels("queue_full").inc()
            self.log.error(
                "alert queue full: oldest alert dropped unsent",
                dropped_kind=dropped.kind,
                dropped_subject=dropped.subject,
                queue_size=self.config.queue_size,
            )
        self._queue.append(alert)
        if self._wake is not None:
            self._wake.set()

    def _channels(self) -> list[str]:
        return (["webhook"] if self.config.webhook_url else []) + (["email"] if self.config.email is not None else [])

    # ---------------------------------------------------------------- delivering

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """The sender: deliver queued alerts, one after the other, until cancelled."""
        task_status.started()
        while True:
            if not self._queue:
                self._wake = anyio.Event()
                await self._wake.wait()
                continue
            await self._deliver_next()

    async def flush(self, timeout: float | None = None) -> list[Alert]:  # noqa: ASYNC109 - a deadline with a configured default
        """Deliver what is queued within ``timeout`` seconds (default ``flush_timeout``); log and
        count what is left unsent (``reason="shutdown"``), forget it, and return it."""
        timeout = self.config.flush_timeout if timeout is None else timeout
        with anyio.move_on_after(timeout):
            while self._queue or self._inflight:
                if self._queue:
                    await self._deliver_next()
                else:  # the sender task is delivering the last one
                    self._idle = anyio.Event()
                    await self._idle.wait()
        left = [*self._inflight, *self._queue]
        self._queue.clear()
        if left:
            metrics.alerts_dropped.labels("shutdown").inc(len(left))
            self.log.error(
                "alerts not sent: the receiver did not take them in time",
                count=len(left),
                alerts=[f"{a.kind}: {a.subject}" for a in left],
                flush_timeout=timeout,
            )
        return left

    async def _deliver_next(self) -> None:
        alert = self._queue.popleft()
        self._inflight.append(alert)
        delivered = False
        try:
            async with anyio.create_task_group() as tg:
                for channel in self._channels():
                    tg.start_soon(self._deliver, channel, alert)
            delivered = True
        finally:
            self._inflight.remove(alert)
            if not delivered:  # cut off (shutdown): still unsent, first in line
                self._queue.appendleft(alert)
            if self._idle is not None:
                self._idle.set()

    async def _deliver(self, channel: str, alert: Alert) -> None:
        """Up to ``retries + 1`` attempts of ``timeout`` seconds each, with a doubling pause."""
        attempts = self.config.retries + 1
        error = ""
        for attempt in range(1, attempts + 1):
            try:
                with anyio.fail_after(self.config.timeout):
                    if channel == "webhook":
                        await self._post(alert)
                    else:
                        await self._mail_in_thread(alert)
            except TimeoutError:
                error = f"no complete answer within {self.config.timeout:g} s"
            except _Refused as exc:
                error = str(exc)
                if not exc.retryable:
                    attempts = attempt
                    break
            except (httpx.HTTPError, OSError, smtplib.SMTPException) as exc:
                error = f"{type(exc).__name__}: {exc}"
            else:
                metrics.alert_deliveries.labels(channel, "sent").inc()
                return
            if attempt < attempts:
                delay = self._retry_delay * 2 ** (attempt - 1)
                self.log.warning(f"alert {channel} failed, trying again", kind=alert.kind, attempt=attempt, delay=delay, error=error)
                await anyio.sleep(delay)
        metrics.alert_deliveries.labels(channel, "failed").inc()
        self.log.error(f"alert {channel} failed", kind=alert.kind, subject=alert.subject, attempts=attempts, error=error)

    async def _post(self, alert: Alert) -> None:
        async with httpx.AsyncClient(timeout=self.config.timeout, transport=self._transport) as client:
            response = await client.post(self.config.webhook_url or "", json=alert.as_json(), headers=self.config.webhook_headers)
        if response.status_code >= 300:
            raise _Refused(response.status_code)

    async def _mail_in_thread(self, alert: Alert) -> None:
        """SMTP in a daemon thread: a receiver that stalls is left behind (its own socket timeout
        ends it), never waited for by the event loop or at process exit."""
        done = anyio.Event()
        outcome: list[BaseException] = []
        token = anyio.lowlevel.current_token()

        def work() -> None:
            try:
                self._mail(alert)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting task, which raises it
                outcome.append(exc)
            try:
                anyio.from_thread.run_sync(done.set, token=token)
            except RuntimeError:  # the event loop is gone: nobody waits any more
                pass

        threading.Thread(target=work, name="apicenterd-alert-mail", daemon=True).start()
        await done.wait()
        if outcome:
            raise outcome[0]

    def _mail(self, alert: Alert) -> None:
        cfg = self.config.email
        assert cfg is not None
        message = EmailMessage()
        message["Subject"] = alert.subject
        message["From"] = cfg.sender
        message["To"] = ", ".join(cfg.to)
        message.set_content(alert.text)
        with smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=self.config.timeout) as smtp:
            if cfg.starttls:
                smtp.starttls()
            if cfg.username and cfg.password:
                smtp.login(cfg.username, cfg.password.get_secret_value())
            smtp.send_message(message)
