"""``access_token``: a static token instead of OAuth2 refresh — used as it is, never refreshed, and a
rejection is one AuthError that says what to do (no refresh, no retry)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from apicenterd_eaccounting import EAccountingConnector
from pydantic import ValidationError

from apicenterd import AuthError, Entity, Product
from apicenterd.testing import connect

pytestmark = pytest.mark.anyio

TOKEN = "static-token-for-the-benchmark"


@pytest.fixture
def app():
    return EAccountingConnector.simulator(seed=7, static_token=TOKEN)


def static(base_url: str = "http://eaccounting.test", **more) -> dict:
    return {"base_url": base_url, "access_token": TOKEN, **more}


async def test_a_static_token_signs_every_call_and_no_token_is_ever_requested(app):
    sim = app.state.sim
    async with connect(EAccountingConnector, static(), app=app) as connector:
        await connector.check()
        await connector.create(
            Entity.PRODUCTS,
            Product(sku="MUG-1", name="Blue mug", price_excl_tax=Decimal(10), price_incl_tax=Decimal("12.10"), tax_rate=Decimal(21)),
        )
        assert (await connector.find(Entity.PRODUCTS, "MUG-1")).record.sku == "MUG-1"
    assert sim.oauth.token_requests == 0
    assert [a["Number"] for a in sim.articles.values()] == ["MUG-1"]


async def test_a_rejected_static_token_is_one_auth_error_naming_the_fix(app):
    sim = app.state.sim
    sim.expire_access_tokens()  # revoked, or past its lifetime
    async with connect(EAccountingConnector, static(), app=app, name="eacc") as connector:
        with pytest.raises(AuthError) as exc:
            await connector.check()
    message = str(exc.value)
    assert exc.value.status == 401 and exc.value.vendor_code == "4005"
    assert "rejected the static access_token" in message and "[connections.eacc] access_token" in message
    assert TOKEN not in message
    # one call, no refresh attempt, no retry
    assert sim.requests == [("GET", "/v2/companysettings")] and sim.oauth.token_requests == 0


async def test_a_wrong_static_token_is_rejected_the_same_way():
    app = EAccountingConnector.simulator(seed=7)  # knows no static token
    async with connect(EAccountingConnector, static(), app=app) as connector:
        with pytest.raises(AuthError, match="static access_token"):
            await connector.check()
    assert app.state.sim.oauth.token_requests == 0


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (static(refresh_token="rt"), "access_token (a static token, never refreshed) and refresh_token (OAuth2 refresh) exclude each other"),
        (static(client_id="c", client_secret="s"), "and client_id, client_secret (OAuth2 refresh) exclude each other: remove them"),
        ({"base_url": "http://e.test", "access_token": "  "}, "access_token is empty"),
        ({"base_url": "http://e.test"}, "client_id and client_secret are required for OAuth2 (or give a static access_token instead)"),
        ({"base_url": "http://e.test", "client_id": "c"}, "client_secret is required for OAuth2"),
    ],
)
def test_settings_take_one_way_to_sign_in(settings, expected):
    with pytest.raises(ValidationError) as exc:
        EAccountingConnector.Settings.model_validate(settings)
    assert expected in str(exc.value)


def test_oauth_settings_still_validate():
    settings = EAccountingConnector.Settings.model_validate(EAccountingConnector.demo_settings("http://e.test"))
    assert settings.access_token is None and settings.client_id
