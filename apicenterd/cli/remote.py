"""The on-call commands through the running daemon's admin API.

``runs``, ``dlq list``, ``dlq replay``, ``flows run`` and ``reload`` ask the daemon when ``[admin]``
is configured and the daemon answers there: the admin API's address is ``[admin] address``
(``0.0.0.0``/``::`` are asked on loopback), the token ``[admin] token`` or, if set,
``$APICENTERD_ADMIN_TOKEN``; ``$APICENTERD_ADMIN_URL`` overrides the address (e.g. through the
reverse proxy). When nothing answers there (the daemon is not running), the commands work on the
state store directly, as before. ``--local`` forces that.

Only ``[admin]`` is read for this, so the commands need none of the connections' secrets (which
systemd hands only to the daemon). A token given as ``{ credential = "NAME" }`` is read, outside
systemd (no ``$CREDENTIALS_DIRECTORY``), from ``/etc/apicenterd/credentials/NAME`` (the folder the
unit loads it from; ``$APICENTERD_CREDENTIALS_DIR`` names another).
"""

from __future__ import annotations

import os
from typing import Any

import httpx

from . import Usage

__all__ = ["Remote", "find_daemon", "admin_token"]

CONNECT_TIMEOUT = 3.0
"""Seconds to wait for the daemon's admin API to accept the connection."""


class Remote:
    """A client of one daemon's admin API."""

    def __init__(self, url: str, token: str):
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}

    def call(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None, read_timeout: float | None = 60.0
    ) -> tuple[int, Any]:
        """``(status, JSON body)`` of one request; Usage naming the daemon when the answer is not JSON or refused."""
        timeout = httpx.Timeout(read_timeout, connect=CONNECT_TIMEOUT)
        params = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = httpx.request(method, self.url + path, headers=self._headers, json=json, params=params, timeout=timeout)
        except httpx.HTTPError as exc:
            raise Usage(f"the daemon's admin API at {self.url} did not answer {method} {path}: {exc}") from None
        try:
            body = response.json()
        except ValueError:
            raise Usage(f"the daemon's admin API at {self.url} answered {response.status_code} without JSON to {method} {path}") from None
        if response.status_code == 401:
            raise Usage(
                f"the daemon's admin API at {self.url} refused the token ({body.get('error')}): "
                "use the daemon's [admin] token, or set APICENTERD_ADMIN_TOKEN"
            )
        return response.status_code, body


def _url(address: str) -> str:
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0"):  # noqa: S104 - a daemon listening on every address is asked on loopback
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def admin_token(reference: object) -> str | None:
    """The admin token for a command run outside the daemon: ``$APICENTERD_ADMIN_TOKEN``, else the
    ``[admin] token`` reference resolved (a credential from the unit's folder when not under systemd)."""
    from ..config.secrets import _resolve_secret

    if os.environ.get("APICENTERD_ADMIN_TOKEN"):
        return os.environ["APICENTERD_ADMIN_TOKEN"]
    if reference is None:
        return None
    try:
        token = _resolve_secret(reference, "admin.token")
    except ValueError:
        return None
    return token if isinstance(token, str) and token else None


def find_daemon(config: str, *, local: bool = False) -> Remote | None:
    """The admin API of the daemon running ``config``, or None: ``local``, no ``[admin]`` token to be had,
    the file cannot be read, or nothing answers at the address."""
    from ..config import read_config

    if local:
        return None
    try:
        admin = read_config(config).admin
    except Exception:  # noqa: BLE001 - a file that cannot be read: the local command says why
        return None
    token = admin_token(admin.token)
    if not token:
        return None
    url = os.environ.get("APICENTERD_ADMIN_URL") or _url(admin.address)
    try:
        answer = httpx.get(url.rstrip("/") + "/healthz", timeout=CONNECT_TIMEOUT)
    except httpx.HTTPError:
        return None  # no daemon there: work on the state store
    if answer.status_code != 200:
        return None
    return Remote(url, token)
