"""The daemon's Prometheus metrics, all prefixed ``apicenterd_``."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

__all__ = [
    "records",
    "runs",
    "run_duration",
    "last_success",
    "api_requests",
    "api_duration",
    "rate_limit_wait",
    "rate_limit_remaining",
    "circuit_open",
    "rate_limit_pause",
    "rate_limit_waiting",
    "rate_limit_waiting_seconds",
    "connection_paused",
    "auth_failures",
    "run_progress",
    "run_progress_rate",
    "run_remaining_seconds",
    "alert_deliveries",
    "alerts_dropped",
    "webhooks",
    "day_budget_left",
    "budget_resume",
    "expected_completion",
    "workers_alive",
    "jobs_due",
    "jobs_stalled",
    "schedule_lag",
    "serve",
]

records = Counter(
    "apicenterd_records",
    "Records handled, by flow, entity and action "
    "(created, updated, unchanged, waiting: a failed record waiting out its retry backoff, skipped, failed)",
    ["flow", "entity", "action"],
)
runs = Counter(
    "apicenterd_flow_runs", "Flow runs, by flow and outcome (ok, failed, stopped: cut off by shutdown)", ["flow", "status"]
)
run_duration = Histogram(
    "apicenterd_flow_run_duration_seconds",
    "Wall time of one flow run",
    ["flow"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
last_success = Gauge(
    "apicenterd_flow_last_success_timestamp_seconds", "Unix time the flow last finished a run without error", ["flow"]
)
api_requests = Counter(
    "apicenterd_api_requests",
    "Calls to vendor APIs, by connection, HTTP method and status (or timeout / error)",
    ["connection", "method", "status"],
)
api_duration = Histogram(
    "apicenterd_api_request_duration_seconds",
    "Latency of vendor API calls",
    ["connection", "method"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
rate_limit_wait = Counter(
    "apicenterd_rate_limit_wait_seconds", "Time spent waiting for a connection's rate limit", ["connection"]
)
rate_limit_remaining = Gauge(
    "apicenterd_rate_limit_remaining",
    "Calls left in the vendor's current window, as its rate-limit headers last reported, by connection and limit",
    ["connection", "limit"],
)
circuit_open = Gauge(
    "apicenterd_circuit_open",
    "1 while a connection's circuit breaker is open (calls fail fast until a probe succeeds), else 0",
    ["connection"],
)

rate_limit_pause = Gauge(
    "apicenterd_rate_limit_pause_seconds",
    "Seconds left of the pause a vendor's 429 (Retry-After, capped at the connection's retry_after_cap) "
    "put on a connection; 0 when no pause holds it",
    ["connection"],
)
rate_limit_waiting = Gauge(
    "apicenterd_rate_limit_waiting",
    "Calls on a connection waiting now for a rate-limit slot or a vendor's pause (0 when none)",
    ["connection"],
)
rate_limit_waiting_seconds = Gauge(
    "apicenterd_rate_limit_waiting_seconds",
    "How long the call that has waited longest for a connection's rate limit has been waiting, now "
    "(0 when no call waits); apicenterd_rate_limit_wait_seconds_total counts a wait only once it is over",
    ["connection"],
)
connection_paused = Gauge(
    "apicenterd_connection_paused",
    "1 while a connection is paused because the vendor rejected its credentials (its flows do not run until "
    "`apicenterd auth CONNECTION` and a reload), else 0",
    ["connection"],
)
auth_failures = Counter(
    "apicenterd_auth_failures",
    "Credentials a vendor rejected, by connection: a refresh token refused (invalid_grant), a 401/403 "
    "that a refresh did not cure, tokens that cannot be decrypted; each pauses the connection",
    ["connection"],
)
run_progress = Gauge(
    "apicenterd_run_records",
    "Records settled so far by the run of a flow in progress (0 between runs)",
    ["flow"],
)
run_progress_rate = Gauge(
    "apicenterd_run_records_per_second",
    "Records per second of the run of a flow in progress (0 between runs)",
    ["flow"],
)
run_remaining_seconds = Gauge(
    "apicenterd_run_remaining_seconds",
    "Estimated seconds left of the run of a flow in progress, where its source says how many records or "
    "pages there are (-1 when unknown, 0 between runs)",
    ["flow"],
)
alert_deliveries = Counter(
    "apicenterd_alert_deliveries",
    "Alert deliveries by channel (webhook, email) and outcome (sent; failed: every attempt failed or timed out)",
    ["channel", "outcome"],
)
alerts_dropped = Counter(
    "apicenterd_alerts_dropped",
    "Alerts never sent, by reason (queue_full: the oldest queued was dropped; shutdown: the final flush ran out of time)",
    ["reason"],
)

webhooks = Counter(
    "apicenterd_webhooks",
    "Vendor webhooks received, by connection and result (accepted; unverified: no or a wrong signature; "
    "malformed; too_large; unknown: no such connection, or one whose connector takes none; unavailable: the daemon "
    "was not ready)",
    ["connection", "result"],
)

day_budget_left = Gauge(
    "apicenterd_day_budget_left",
    "Calls left in a connection's day budget (a declared day limit, e.g. Exact Online's 5,000), as the "
    "vendor last reported them or as counted here",
    ["connection"],
)
budget_resume = Gauge(
    "apicenterd_flow_budget_resume_timestamp_seconds",
    "Unix time a flow whose share of a day budget is spent goes on (0: not deferred)",
    ["flow"],
)
expected_completion = Gauge(
    "apicenterd_flow_expected_completion_timestamp_seconds",
    "Unix time a deferred flow is expected to have caught up with its source at its share of the day budget "
    "(0: not deferred, or its source cannot tell how much is left)",
    ["flow"],
)


# Several daemons on one PostgreSQL (``[state] url``): what this daemon sees of the shared job queue
# (checked every ``[state] worker_heartbeat_seconds``; absent with SQLite state)
workers_alive = Gauge(
    "apicenterd_workers_alive",
    "Daemons on the PostgreSQL state with a heartbeat younger than [state] worker_stall_seconds, as this daemon sees them",
)
jobs_due = Gauge(
    "apicenterd_jobs_due",
    "Flow runs due and not started yet (waiting for a free daemon or for the flow's run in progress)",
)
jobs_stalled = Gauge(
    "apicenterd_jobs_stalled",
    "Flow runs held by a daemon that stopped answering (no heartbeat for [state] worker_stall_seconds); the next "
    "check of a live daemon queues them again",
)
schedule_lag = Histogram(
    "apicenterd_schedule_lag_seconds",
    "Seconds from a flow run's due time to its start on this daemon (PostgreSQL state: jobs)",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
)


def serve(address: str) -> tuple[str, int]:
    """Serve ``/metrics`` on ``host:port`` (the process and platform collectors included)."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    server, _thread = start_http_server(int(port), addr=host)
    return host, server.server_port
