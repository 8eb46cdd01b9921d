"""Shared by the admin API tests: a daemon-like backend over a real engine and state store, a client
whose every answer is checked against the served OpenAPI description, and a connector that takes
signed webhooks."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
from collections.abc import AsyncIterator
from typing import Any

import anyio
import fakes
import httpx
import jsonschema
from pydantic import SecretStr

from apicenterd import ConnectorSettings, Entity, WebhookEvent, WebhookRejected, WebhookRequest, hookimpl
from apicenterd.admin import Backend, build_app, openapi
from apicenterd.config import Config, resolve
from apicenterd.engine import Engine
from apicenterd.state import SQLiteStore

TOKEN = "admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class HookSettings(ConnectorSettings):
    base_url: str = "http://memory.invalid"
    webhook_secret: SecretStr = SecretStr("whsec-0123456789")


class HookSource(fakes.MemorySource):
    """A memory source whose vendor signs webhooks: ``x-signature`` = hex HMAC-SHA256(secret, body);
    the body is ``{"entity": "products", "id": "..."}`` lines."""

    name = "hooksource"
    Settings = HookSettings

    async def webhook(self, request: WebhookRequest) -> list[WebhookEvent]:
        import json

        given = request.headers.get("x-signature")
        if not given:
            raise WebhookRejected("no x-signature header")
        secret = self.settings.webhook_secret.get_secret_value().encode()
        if not hmac.compare_digest(given, hmac.new(secret, request.body, hashlib.sha256).hexdigest()):
            raise WebhookRejected("x-signature does not match the body")
        try:
            data = json.loads(request.body)
            return [WebhookEvent(Entity(data["entity"]), str(data.get("id")), "changed")]
        except (ValueError, KeyError, TypeError) as exc:
            raise WebhookRejected(f"body is not an event: {exc}", malformed=True) from None


def sign(body: bytes, secret: str = "whsec-0123456789") -> dict[str, str]:
    """The header HookSource's vendor would send."""
    return {"x-signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


class _HookPlugin:
    @hookimpl
    def register_connectors(self, register):
        register(HookSource)


def registry_with_hooks():
    from apicenterd.registry import load_registry

    fakes.MemoryStore.reset()
    return load_registry([("fakes", fakes), ("hooks", _HookPlugin())], entry_points=False)


def make_resolved(tmp_path, registry, *, source: str = "hooksource", **admin: Any):
    raw = {
        "state": {"path": str(tmp_path / "state.db")},
        "admin": {"token": TOKEN, **admin},
        "connections": {"src": {"connector": source}, "dst": {"connector": "memtarget"}},
        "flows": {
            "products": {"source": "src", "target": "dst", "entity": "products", "interval": "1h"},
            "stock": {"source": "src", "target": "dst", "entity": "stock", "interval": "1h"},
        },
    }
    return resolve(Config(**raw), registry, tmp_path / "apicenterd.toml")


# ---------------------------------------------------------------- the OpenAPI check

_DOC = openapi()


def _template(path: str, method: str) -> str:
    """The OpenAPI path template that ``path`` matches."""
    for template, ops in _DOC["paths"].items():
        # a source id may hold slashes; other parameters are one segment
        pattern = "^" + re.sub(r"\{([^}]+)\}", lambda m: ".+" if m[1] == "source_id" else "[^/]+", template) + "$"
        if re.match(pattern, path) and method.lower() in ops:
            return template
    raise AssertionError(f"{method} {path} is not in the OpenAPI description")


def check_against_openapi(method: str, path: str, response: httpx.Response) -> None:
    """Fail unless the description has ``response``'s status for this operation and its body fits the schema."""
    op = _DOC["paths"][_template(path, method)][method.lower()]
    documented = op["responses"].get(str(response.status_code))
    assert documented is not None, f"{method} {path}: status {response.status_code} is not documented ({response.text[:200]})"
    schema = documented["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator({**schema, "components": _DOC["components"]}).validate(response.json())


class CheckedClient:
    """An httpx client on the app whose every answer is checked against the OpenAPI description."""

    def __init__(self, client: httpx.AsyncClient):
        self.client = client
        self.seen: set[tuple[str, str, int]] = set()

    async def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        kw.setdefault("headers", AUTH)
        response = await self.client.request(method, path, **kw)
        if response.headers.get("content-type", "").startswith("application/json") and path != "/openapi.json":
            check_against_openapi(method, path.split("?")[0], response)
            self.seen.add((method, _template(path.split("?")[0], method), response.status_code))
        return response

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("POST", path, **kw)


@contextlib.asynccontextmanager
async def admin_client(resolved, tmp_path, *, sleep=anyio.sleep, reload=None) -> AsyncIterator[tuple[CheckedClient, Backend, Engine]]:
    """The admin app over a real engine and state store (the engine is not serving schedules)."""
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    engine = Engine(resolved, store, retry_base_delay=0)
    backend = Backend(lambda: resolved, store, lambda: engine, reload, debounce=resolved.config.admin.webhook_debounce_seconds, sleep=sleep)
    app = build_app(backend, resolved.admin_token)
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(backend.serve)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin.test") as client:
                yield CheckedClient(client), backend, engine
            tg.cancel_scope.cancel()
    finally:
        await engine.aclose()
        await store.close()
