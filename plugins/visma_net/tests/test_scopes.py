"""Scopes per operation: the simulator enforces them per request, the connector asks for what its
use needs (one table of operation → scope), and a 403 for a missing scope is a clear AuthError."""

from __future__ import annotations

import httpx
import pytest
from apicenterd_visma_net import VismaNetConnector
from apicenterd_visma_net.client import OPERATION_SCOPES, ClientCredentialsAuth, scope_for, scopes_for
from apicenterd_visma_net.connector import INTERACTIVE_SCOPES, SERVICE_SCOPES

from apicenterd import AuthError, Customer, Entity
from apicenterd.testing import MemoryTokenStore, connect

pytestmark = pytest.mark.anyio

READ, CREATE, UPDATE, DELETE = (f"vismanet_erp_service_api:{op}" for op in ("read", "create", "update", "delete"))


async def _token(app, scopes: str) -> str:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://vn.test") as client:
        from apicenterd_visma_net.simulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_TENANT

        answer = await client.post("/connect/token", data={"grant_type": "client_credentials", "client_id": DEMO_CLIENT_ID,
                                                          "client_secret": DEMO_CLIENT_SECRET, "tenant_id": DEMO_TENANT,
                                                          "scope": scopes})  # fmt: skip
        assert answer.status_code == 200, answer.text
        return str(answer.json()["access_token"])


@pytest.mark.parametrize(
    ("method", "path", "body", "scope"),
    [
        ("GET", "/v1/customer", None, READ),
        ("POST", "/v1/customer", {"name": {"value": "X"}}, CREATE),
        ("PUT", "/v1/customer/10001", {"name": {"value": "X"}}, UPDATE),
    ],
)
async def test_the_simulator_refuses_a_token_without_the_operations_scope_with_403(app, method, path, body, scope):
    others = " ".join(s for s in (READ, CREATE, UPDATE, DELETE) if s != scope)
    token = await _token(app, others)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://vn.test") as client:
        answer = await client.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 403
    assert answer.json()["ExceptionType"] == "IPPException" and answer.json()["ExceptionFaultCode"] == "403"
    assert answer.headers["WWW-Authenticate"] == f'Bearer error="insufficient_scope", scope="{scope}"'
    # with the scope the same call passes the scope gate (whatever the route then says)
    token = await _token(app, scope)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://vn.test") as client:
        answer = await client.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code != 403


@pytest.mark.parametrize(
    ("method", "scope"), [("GET", READ), ("POST", CREATE), ("PUT", UPDATE), ("PATCH", UPDATE), ("DELETE", DELETE)]
)
async def test_the_scope_gate_asks_each_method_for_its_scope(app, sim, method, scope):
    """The gate itself, for every method (the simulator routes no PATCH or DELETE the connector would call)."""
    from starlette.requests import Request

    from apicenterd.testing.sim import VendorError

    def request(token: str) -> Request:
        return Request({"type": "http", "method": method, "path": "/v1/customer/1", "query_string": b"",
                        "headers": [(b"authorization", f"Bearer {token}".encode())]})  # fmt: skip

    with pytest.raises(VendorError) as refused:
        sim.scope_gate(request(await _token(app, " ".join(s for s in (READ, CREATE, UPDATE, DELETE) if s != scope))))
    assert refused.value.status == 403 and scope in refused.value.headers["WWW-Authenticate"]
    assert sim.scope_gate(request(await _token(app, scope))) is None


async def test_the_simulator_refuses_a_scope_the_app_is_not_approved_for(app, sim):
    sim.approved_scopes = frozenset({READ})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://vn.test") as client:
        from apicenterd_visma_net.simulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_TENANT

        answer = await client.post("/connect/token", data={"grant_type": "client_credentials", "client_id": DEMO_CLIENT_ID,
                                                          "client_secret": DEMO_CLIENT_SECRET, "tenant_id": DEMO_TENANT,
                                                          "scope": f"{READ} {CREATE}"})  # fmt: skip
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_scope"


def test_every_default_scope_comes_from_the_one_operation_table():
    assert OPERATION_SCOPES == {"GET": "read", "POST": "create", "PUT": "update", "PATCH": "update", "DELETE": "delete"}
    assert SERVICE_SCOPES == (READ, CREATE, UPDATE)
    assert INTERACTIVE_SCOPES == ("openid", "offline_access", "vismanet_erp_interactive_api:read",
                                  "vismanet_erp_interactive_api:create", "vismanet_erp_interactive_api:update")  # fmt: skip
    assert scope_for("patch", "vismanet_erp_service_api") == UPDATE
    assert scopes_for(["DELETE", "GET", "GET"], "vismanet_erp_service_api") == (READ, DELETE)


async def test_a_connection_used_only_as_a_source_asks_for_read_only(app, sim, settings):
    async with connect(VismaNetConnector, settings, app=app) as conn:
        await conn.check()
        assert len([c async for c in conn.read(Entity.CUSTOMERS, None)]) == 3
        assert len([c async for c in conn.read(Entity.PRODUCTS, None)]) == 3
    assert sim.scope_requests == [(READ,)]


async def test_a_sink_adds_the_scopes_of_its_operations_as_it_first_needs_them(app, sim, settings):
    async with connect(VismaNetConnector, settings, app=app) as conn:
        sink = conn.sink(Entity.CUSTOMERS)
        record = sink.normalize(Customer(kind="company", name="Fjord AS", email="post@fjord.no"))
        assert await conn.find(Entity.CUSTOMERS, "post@fjord.no") is None  # GET: read
        new_id = await conn.create(Entity.CUSTOMERS, record)  # POST: read + create
        await conn.update(Entity.CUSTOMERS, new_id, record.model_copy(update={"name": "Fjord Holding AS"}), frozenset({"name"}))
        await conn.create(Entity.CUSTOMERS, record.model_copy(update={"email": "b@fjord.no"}))  # the token already has it
    assert sim.scope_requests == [tuple(sorted({READ})), tuple(sorted({READ, CREATE})), tuple(sorted({READ, CREATE, UPDATE}))]
    assert sim.customers[new_id]["name"] == "Fjord Holding AS"


async def test_a_fixed_scopes_setting_is_asked_for_as_it_is(app, sim, settings):
    async with connect(VismaNetConnector, {**settings, "scopes": [READ, CREATE]}, app=app) as conn:
        await conn.check()
    assert sim.scope_requests == [tuple(sorted({READ, CREATE}))]


async def test_a_missing_scope_is_an_auth_error_naming_operation_scope_and_setting_not_retried(app, sim, settings):
    async with connect(VismaNetConnector, {**settings, "scopes": [READ]}, app=app) as conn:
        sink = conn.sink(Entity.CUSTOMERS)
        record = sink.normalize(Customer(kind="company", name="Fjord AS", email="post@fjord.no"))
        sim.reset_counts()
        with pytest.raises(AuthError) as caught:
            await conn.create(Entity.CUSTOMERS, record)
    message = str(caught.value)
    assert "creating" in message and repr(CREATE) in message and "scopes setting of connection" in message
    assert caught.value.status == 403 and caught.value.vendor_code == "insufficient_scope"
    assert caught.value.reauthorize is False and "apicenterd auth" not in message  # a service app: the portal is the fix
    assert [m for m, _ in sim.requests] == ["POST"]  # one call: not repeated, no new token asked for
    assert sim.scope_requests == [(READ,)]
    assert all(c.get("name") != "Fjord AS" for c in sim.customers.values())  # nothing was written


async def test_an_unapproved_scope_names_it_at_the_token_request(app, sim, settings):
    sim.approved_scopes = frozenset({READ})
    async with connect(VismaNetConnector, settings, app=app) as conn:
        await conn.check()  # read: approved
        sink = conn.sink(Entity.CUSTOMERS)
        with pytest.raises(AuthError, match="vismanet_erp_service_api:create") as caught:
            await conn.create(Entity.CUSTOMERS, sink.normalize(Customer(kind="company", name="Fjord AS", email="f@x.no")))
    assert caught.value.reauthorize is False  # client credentials: `apicenterd auth` would not help
    assert all(m == "GET" for m, _ in sim.requests)  # the POST never went out without its scope


async def test_an_interactive_token_without_consent_to_update_is_a_clear_error(app, sim, settings):
    interactive = {k: v for k, v in settings.items() if k != "tenant_id"}
    interactive["refresh_token"] = sim.oauth.demo_refresh_token()
    interactive["scopes"] = ["openid", "offline_access", "vismanet_erp_interactive_api:read", "vismanet_erp_interactive_api:create"]
    sim.interactive_scopes = frozenset({"vismanet_erp_interactive_api:read", "vismanet_erp_interactive_api:create"})
    async with connect(VismaNetConnector, interactive, app=app, tokens=MemoryTokenStore()) as conn:
        sink = conn.sink(Entity.CUSTOMERS)
        record = sink.normalize(Customer(kind="company", name="Fjord AS", email="post@fjord.no"))
        new_id = await conn.create(Entity.CUSTOMERS, record)
        with pytest.raises(AuthError) as caught:
            await conn.update(Entity.CUSTOMERS, new_id, record.model_copy(update={"name": "Other"}), frozenset({"name"}))
    message = str(caught.value)
    assert "updating" in message and "'vismanet_erp_interactive_api:update'" in message
    assert "scopes setting" in message and "apicenterd auth" in message
    assert caught.value.reauthorize is True  # a user's consent: `apicenterd auth` is the fix
    assert sim.customers[new_id]["name"] == "Fjord AS"


async def test_a_403_that_is_not_about_scopes_stays_a_plain_auth_error(app, sim, settings):
    sim.fail_next(403, body={"ExceptionType": "IPPException", "ExceptionMessage": "No license for this company.",
                                                       "ExceptionFaultCode": "12027"})  # fmt: skip
    async with connect(VismaNetConnector, settings, app=app) as conn:
        with pytest.raises(AuthError) as caught:
            await conn.check()
    assert "No license for this company" in str(caught.value) and caught.value.vendor_code != "insufficient_scope"


def test_the_auth_keeps_what_the_token_answer_granted():
    async def run() -> ClientCredentialsAuth:
        def handler(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, json={"access_token": "a", "expires_in": 3600, "scope": READ})

        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            auth = ClientCredentialsAuth(token_client=client, token_url="https://t", client_id="c", client_secret="s",
                                         tenant_id="t", scopes=(READ, CREATE))  # fmt: skip
            await auth._fresh()
            return auth

    import anyio

    auth = anyio.run(run)
    assert auth.asked == (READ, CREATE) and auth.granted == frozenset({READ})
