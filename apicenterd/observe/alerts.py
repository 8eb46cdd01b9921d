"""Alert notifications: a webhook (JSON, Slack-compatible ``text``) and e-mail, sent when a flow
starts failing and once when it recovers, when records fail (which, and why), and when a
connection is paused for re-authorisation. No storms: a state is announced on its change."""

from __future__ import annotations

import dataclasses
import smtplib
import socket
import time
from email.message import EmailMessage
from typing import Any

import anyio
import anyio.to_thread
import httpx
from pydantic import ConfigDict, Field, SecretStr

from ..validation import SettingsModel
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
    """``[alerts]``: where notifications go; nothing configured, nothing sent (logs and metrics still are)."""

    model_config = ConfigDict(extra="forbid")

    webhook_url: str | None = None
    webhook_headers: dict[str, str] = Field(default_factory=dict)
    email: EmailConfig | None = None
    timeout: float = Field(default=10.0, gt=0)


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


class Alerter:
    """Decides what is worth an alert and sends it; failures to send are logged, never raised."""

    def __init__(self, config: AlertsConfig | None = None, *, transport: httpx.AsyncBaseTransport | None = None):
        self.config = config or AlertsConfig()
        self.sent: list[Alert] = []
        self._failing: dict[str, bool] = {}
        self._paused: set[str] = set()
        self._circuits: set[str] = set()
        self._transport = transport
        self.log = get_logger(component="alerts")

    async def flow_result(self, flow: str, status: str, error: str | None, failures: list[tuple[str, str, str, str]]) -> None:
        """After a run: alert on the change to failing and on recovery, and on failed records."""
        failing = status == "failed"
        was = self._failing.get(flow, False)
        self._failing[flow] = failing
        if failing and not was:
            await self.send(Alert("flow_failing", f"apicenterd: flow {flow} is failing", error or "the run failed", flow=flow))
        elif was and not failing and status == "ok":
            await self.send(Alert("flow_recovered", f"apicenterd: flow {flow} recovered", "the last run finished without error", flow=flow))
        mine = [f for f in failures if f[0] == flow]
        if mine:
            records = tuple({"source_id": s, "key": k, "reason": r} for _, s, k, r in mine[:MAX_RECORDS_LISTED])
            more = f"\n... and {len(mine) - MAX_RECORDS_LISTED} more" if len(mine) > MAX_RECORDS_LISTED else ""
            lines = "\n".join(f"- {r['key']} (source id {r['source_id']}): {r['reason']}" for r in records)
            await self.send(
                Alert(
                    "records_failed",
                    f"apicenterd: {len(mine)} record(s) failed in flow {flow}",
                    f"{lines}{more}\nThey are in the dead-letter queue: apicenterd dlq list --flow {flow}",
                    flow=flow,
                    records=records,
                )
            )

    async def circuit(self, connection: str, is_open: bool, error: str) -> None:
        """Once when a connection's circuit breaker is found open, once when it has closed again."""
        was = connection in self._circuits
        if is_open and not was:
            self._circuits.add(connection)
            await self.send(
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
            await self.send(Alert("circuit_closed", f"apicenterd: connection {connection} recovered", "the circuit closed", connection=connection))

    async def connection_paused(self, connection: str, reason: str) -> None:
        """Once per pause: the connection needs an operator (re-authorisation)."""
        if connection in self._paused:
            return
        self._paused.add(connection)
        await self.send(
            Alert(
                "connection_paused",
                f"apicenterd: connection {connection} paused: re-authorise it",
                f"{reason}\nRun: apicenterd auth {connection} --config FILE, then systemctl reload apicenterd",
                connection=connection,
            )
        )

    async def dead_letters_expiring(self, flow: str, count: int, days: int) -> None:
        """Open dead letters of ``flow`` lose their record within ``days`` days (retention); the store
        counts each letter once, so this is said once."""
        when = f"within {days} day(s)" if days > 0 else "now"
        await self.send(
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

    async def state_failed(self, message: str) -> None:
        """The state file cannot be used (deleted, damaged, disk full at start): the daemon stops."""
        await self.send(Alert("state_failed", "apicenterd: the state file cannot be used; the daemon stopped", message))

    async def send(self, alert: Alert) -> None:
        """Deliver ``alert`` to every configured channel (secrets scrubbed)."""
        alert = dataclasses.replace(alert, subject=redactor.scrub(alert.subject), text=redactor.scrub(alert.text))
        self.sent.append(alert)
        self.log.warning("alert", kind=alert.kind, subject=alert.subject, flow=alert.flow, connection=alert.connection)
        if self.config.webhook_url:
            try:
                async with httpx.AsyncClient(timeout=self.config.timeout, transport=self._transport) as client:
                    response = await client.post(self.config.webhook_url, json=alert.as_json(), headers=self.config.webhook_headers)
                if response.status_code >= 300:
                    self.log.error("alert webhook refused", status=response.status_code)
            except httpx.HTTPError as exc:
                self.log.error("alert webhook failed", error=f"{type(exc).__name__}: {exc}")
        if self.config.email is not None:
            try:
                await anyio.to_thread.run_sync(self._mail, alert)
            except (OSError, smtplib.SMTPException) as exc:
                self.log.error("alert e-mail failed", error=f"{type(exc).__name__}: {exc}")

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
