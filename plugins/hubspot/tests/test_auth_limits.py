"""Credentials (private-app token or OAuth app, refreshed by the token's lifetime, never on a 401),
settings errors, and the rate limits: declared, read from the headers, 429s by policy."""

from __future__ import annotations

import httpx
import pytest
from apicenterd_hubspot import HubSpotConnector
from apicenterd_hubspot.client import HubSpotClient
from apicenterd_hubspot.simulator import CLIENT_ID, CLIENT_SECRET, DEMO_TOKEN
from pydantic import ValidationError

from apicenterd import AuthError, Entity, RateLimited, RecordError, RetryableError
from apicenterd.testing import MemoryTokenStore, connect

pytestmark = pytest.mark.anyio


def oauth_settings(sim) -> dict:
    return {
        "base_url": "http://hubspot.test",
        "token_url": "http://hubspot.test/oauth/v1/token",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": sim.oauth.demo_refresh_token(),
    }


async def test_oauth_refreshes_once_with_the_credentials_in_the_form_and_then_by_lifetime(app, sim):
    # the simulator's token endpoint takes the client credentials as form fields only (client_secret_post)
    assert sim.oauth.client_auth == "post"
    tokens = MemoryTokenStore()
    async with connect(HubSpotConnector, oauth_settings(sim), app=app, tokens=tokens) as hs:
        await hs.find(Entity.PRODUCTS, "X")
        await hs.find(Entity.PRODUCTS, "Y")
        assert sim.token_requests == 1
        saved = await tokens.load()
        assert saved["expires_in"] == 1800  # HubSpot's access tokens live 30 minutes
        # the lifetime is spent (as if 30 minutes passed): the next call refreshes first
        await tokens.save({**saved, "expires_at": 0})
        hs._api.http.auth._tokens = None  # the auth reads the store again, as after a restart
        await hs.find(Entity.PRODUCTS, "Z")
        assert sim.token_requests == 2


async def test_a_401_is_an_auth_error_and_no_refresh(app, sim):
    tokens = MemoryTokenStore()
    async with connect(HubSpotConnector, oauth_settings(sim), app=app, tokens=tokens) as hs:
        await hs.find(Entity.PRODUCTS, "X")
        sim.expire_access_tokens()  # the vendor refuses the token before its lifetime is over
        with pytest.raises(AuthError, match="INVALID_AUTHENTICATION"):
            await hs.find(Entity.PRODUCTS, "Y")
    assert sim.token_requests == 1


@pytest.mark.parametrize(
    "settings, message",
    [
        ({}, "no credentials: give access_token"),
        ({"access_token": "t", "client_id": "c", "client_secret": "s"}, "not both"),
        ({"client_id": "c"}, "no credentials"),
        ({"access_token": "t", "sku_property": "Bad Name"}, "'Bad Name' is not a HubSpot property name"),
        ({"access_token": "t", "currency": "euro"}, "currency"),
    ],
)
def test_settings_errors_name_what_is_wrong(settings, message):
    with pytest.raises(ValidationError, match=message):
        HubSpotConnector.Settings.model_validate(settings)


def test_the_declared_limits_and_the_search_bucket():
    limits = {limit.name: limit for limit in HubSpotConnector.rate_limits}
    assert (limits["ten_secondly"].requests, limits["ten_secondly"].period) == (100, 10.0)
    assert limits["ten_secondly"].headers.remaining == "X-HubSpot-RateLimit-Remaining"
    assert limits["ten_secondly"].headers.window_ms == "X-HubSpot-RateLimit-Interval-Milliseconds"
    assert limits["daily"].headers.remaining == "X-HubSpot-RateLimit-Daily-Remaining"
    search = limits["search"]
    assert search.requests <= 5 and search.period == 1.0
    assert search.key(httpx.Request("POST", "https://api.hubapi.com/crm/v3/objects/deals/search")) == "search"
    assert search.key(httpx.Request("POST", "https://api.hubapi.com/crm/v3/objects/deals/batch/read")) is None


@pytest.mark.parametrize(
    "tier, packs, per_ten, daily",
    [
        (None, 0, 100, 250_000),
        ("starter", 0, 100, 250_000),
        ("professional", 0, 190, 625_000),
        ("enterprise", 0, 190, 1_000_000),
        ("professional", 2, 250, 2_625_000),
    ],
)
def test_the_limits_the_daemon_keeps_to_follow_the_tier(settings, tier, packs, per_ten, daily):
    extra = {"api_limit_packs": packs, **({"tier": tier} if tier else {})}
    parsed = HubSpotConnector.Settings.model_validate({**settings, **extra})
    limits = {limit.name: limit for limit in HubSpotConnector.limits_for(parsed)}
    assert (limits["ten_secondly"].requests, limits["daily"].requests, limits["search"].requests) == (per_ten, daily, 4)


def test_the_engine_keeps_to_the_connections_tier(tmp_path, settings):
    from apicenterd.engine import Engine
    from apicenterd.registry import load_registry

    text = "\n".join(
        ["[state]", f'path = "{tmp_path / "s.db"}"', "[connections.hubspot]", 'connector = "hubspot"']
        + [f'{k} = "{v}"' for k, v in {**settings, "tier": "enterprise"}.items()]
    )
    (tmp_path / "c.toml").write_text(text)
    from apicenterd.config import load

    resolved = load(tmp_path / "c.toml", load_registry())
    engine = Engine(resolved, store=None)  # type: ignore[arg-type]
    limits = {limit.name: limit.requests for limit in engine._declared_limits("hubspot", resolved.connections["hubspot"])}
    assert limits == {"ten_secondly": 190, "daily": 1_000_000, "search": 4}


@pytest.mark.parametrize("bad, message", [({"tier": "gold"}, "tier"), ({"api_limit_packs": 3}, "api_limit_packs")])
def test_a_bad_tier_or_pack_count_names_the_setting(settings, bad, message):
    with pytest.raises(ValueError, match=message):
        HubSpotConnector.Settings.model_validate({**settings, **bad})


async def test_the_simulator_sends_the_rate_limit_headers(app, sim, settings):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hubspot.test") as client:
        response = await client.get("/crm/v3/objects/products", headers={"Authorization": f"Bearer {DEMO_TOKEN}"})
    assert response.headers["X-HubSpot-RateLimit-Max"] == "100"
    assert response.headers["X-HubSpot-RateLimit-Remaining"] == "99"
    assert response.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert response.headers["X-HubSpot-RateLimit-Daily"] == "250000"


@pytest.mark.parametrize(
    "policy, wait",
    [("TEN_SECONDLY_ROLLING", 10.0), ("SECONDLY", 10.0), ("DAILY", 3600.0)],
)
async def test_a_429_is_rate_limited_with_the_wait_of_its_policy(policy, wait):
    body = {
        "status": "error",
        "message": "You have reached your limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": "c-1",
        "policyName": policy,
    }
    transport = httpx.MockTransport(lambda r: httpx.Response(429, json=body))
    log = type("Log", (), {"warning": lambda *a, **k: None, "info": lambda *a, **k: None})()
    client = HubSpotClient(httpx.AsyncClient(transport=transport, base_url="https://api.hubapi.com"), log)
    with pytest.raises(RateLimited) as info:
        await client.json("GET", "/crm/v3/objects/products", "products")
    assert info.value.retry_after == wait and "correlationId c-1" in str(info.value)


@pytest.mark.parametrize(
    "status, body, kind, text",
    [
        (
            400,
            {"status": "error", "message": "Property values were not valid", "correlationId": "c", "category": "VALIDATION_ERROR"},
            RecordError,
            "VALIDATION_ERROR",
        ),
        (
            409,
            {"status": "error", "message": "Contact already exists", "correlationId": "c", "category": "CONFLICT"},
            RecordError,
            "CONFLICT",
        ),
        (
            403,
            {
                "status": "error",
                "message": "This app hasn't been granted all required scopes",
                "correlationId": "c",
                "category": "MISSING_SCOPES",
            },
            AuthError,
            "MISSING_SCOPES",
        ),
        (502, "<html>Bad gateway</html>", RetryableError, "HTTP 502"),
    ],
)
async def test_error_bodies_are_classified(status, body, kind, text):
    response = httpx.Response(status, json=body) if isinstance(body, dict) else httpx.Response(status, text=body)
    transport = httpx.MockTransport(lambda r: response)
    log = type("Log", (), {"warning": lambda *a, **k: None})()
    client = HubSpotClient(httpx.AsyncClient(transport=transport, base_url="https://api.hubapi.com"), log)
    with pytest.raises(kind, match=text):
        await client.json("POST", "/crm/v3/objects/contacts", "contact")
